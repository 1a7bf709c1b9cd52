"""Hyperparameter sweeps in the shape of Azure ML HyperDrive: `from drover.train.hyperdrive
import ...` (docs/python-sdk.md, "Hyperparameter sweeps"; the rules are docs/sweeps.md).

    from drover.train.hyperdrive import (BanditPolicy, HyperDriveConfig, PrimaryMetricGoal,
                                         RandomParameterSampling, choice, loguniform)
    sampling = RandomParameterSampling({"lr": loguniform(-11.5, -2.3),
                                        "batch_size": choice(32, 64, 128)}, seed=7)
    config = HyperDriveConfig(estimator=est, hyperparameter_sampling=sampling,
                              policy=BanditPolicy(slack_factor=0.1),
                              primary_metric_name="accuracy",
                              primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                              max_total_runs=20, max_concurrent_runs=4)
    hd_run = Experiment(ws, "mnist").submit(config)
    hd_run.wait_for_completion(show_output=True)
    best = hd_run.get_best_run_by_primary_metric()

Each trial runs the estimator's script with `--NAME VALUE` appended for each parameter (in the
byte order of the names), so the script reads them with argparse. Every argument is checked
when the object is made: a bad one raises ParameterError whose message starts with the
argument's name, before anything is uploaded or sent.
"""

import decimal
import enum
import math
import numbers
import re
import secrets
import sys
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional

from drover.estimator import Estimator
from drover.exceptions import ParameterError, RunFailedError, ServerError
from drover.run import Run

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}\Z")
_MAX_INTERVAL = 1_000_000
_MAX_TRIALS = 10_000
_EXACT_INTEGERS = 2 ** 53
_MAX_MINUTES = 365 * 24 * 60


def _real(name: str, value, what: str = "a number") -> float:
    """`value` as a finite float; bools, text, NaN and infinities refused naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name}: {value!r} ({type(value).__name__}) is not {what}")
    v = float(value)
    if not math.isfinite(v):
        raise ParameterError(f"{name}: {value!r} is not a finite number")
    return v


def _integer(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{name}: {value!r} ({type(value).__name__}) is not an integer; "
                             f"give one from {low} to {high}")
    if not low <= value <= high:
        raise ParameterError(f"{name}: {value} is out of range; give {low} to {high}")
    return int(value)


# ---- parameter expressions (the search space)

class ParameterExpression:
    """One parameter's distribution, made by choice(), uniform() and the others."""

    kind = ""

    def __init__(self, **fields):
        self.fields = fields

    def to_proto(self):
        """The drover.v1.ParameterDistribution."""
        from drover.v1 import sweep_pb2

        out = sweep_pb2.ParameterDistribution()
        if self.kind == "choice":
            for value in self.fields["values"]:
                v = out.choice.values.add()
                if isinstance(value, str):
                    v.text = value
                else:
                    v.number = value
        else:
            message = getattr(out, self.kind)
            for key, value in self.fields.items():
                setattr(message, key, value)
        return out

    def __eq__(self, other):
        return isinstance(other, ParameterExpression) and (self.kind, self.fields) == \
            (other.kind, other.fields)

    def __repr__(self):
        if self.kind == "choice":
            return "choice(" + ", ".join(repr(v) if isinstance(v, str) else _number_text(v)
                                         for v in self.fields["values"]) + ")"
        return f"{self.kind}(" + ", ".join(f"{v!r}" for v in self.fields.values()) + ")"


def _number_text(v: float) -> str:
    """How droverd writes a number on the script's command line: integers up to 2^53 as
    integers, others as C++'s std::to_chars does (the shortest digits that read back
    exactly, fixed or scientific, whichever is shorter: "0.001", "1e-04", "1e+16")."""
    if v == 0:
        return "-0" if math.copysign(1, v) < 0 else "0"
    if v.is_integer() and abs(v) <= _EXACT_INTEGERS:
        return str(int(v))
    d = decimal.Decimal(repr(v))
    sign, digits, exponent = d.as_tuple()
    while len(digits) > 1 and digits[-1] == 0:
        digits = digits[:-1]
        exponent += 1
    text = "".join(map(str, digits))
    point = len(digits) + exponent  # the decimal point's place after the first digit's
    if point <= 0:
        fixed = "0." + "0" * -point + text
    elif point >= len(text):
        fixed = str(abs(int(v)))  # as libstdc++: the exact integer, same length as padded
    else:
        fixed = text[:point] + "." + text[point:]
    power = point - 1
    scientific = text[0] + ("." + text[1:] if len(text) > 1 else "") + \
        ("e-" if power < 0 else "e+") + f"{abs(power):02d}"
    out = fixed if len(fixed) <= len(scientific) else scientific
    return ("-" if sign else "") + out


def choice(*options) -> ParameterExpression:
    """One of `options`, each equally likely: `choice(16, 32, 64)`, `choice("adam", "sgd")`,
    or one list or range: `choice([16, 32, 64])`, `choice(range(1, 5))`. 1-1000 distinct
    values, each a finite number or a text (at most 1024 bytes of UTF-8, no NUL, not starting
    with '-'). A number reaches the script as its shortest exact text ("64", "0.001"); a
    bool is refused (give 0 and 1, or the texts the script parses)."""
    if len(options) == 1 and isinstance(options[0], (list, tuple, range)):
        options = tuple(options[0])
    if not options:
        raise ParameterError("options: choice() needs at least one value, for example "
                             "choice(16, 32, 64)")
    if len(options) > 1000:
        raise ParameterError(f"options: {len(options)} values; choice takes at most 1000")
    values: List[Any] = []
    seen: Dict[str, int] = {}
    for i, value in enumerate(options):
        name = f"options[{i}]"
        if isinstance(value, str):
            if "\0" in value or len(value.encode()) > 1024:
                raise ParameterError(f"{name}: {value[:40]!r} has a NUL byte or is over "
                                     "1024 bytes")
            if value.startswith("-"):
                raise ParameterError(f"{name}: {value!r} starts with '-', which argparse "
                                     "would read as an option; give it as a number or "
                                     "without the dash")
            text, stored = value, value
        elif isinstance(value, bool):
            raise ParameterError(f"{name}: {value!r} is a bool; give 0 and 1, or the texts "
                                 "the script parses ('true', 'false')")
        elif isinstance(value, numbers.Integral):
            if abs(int(value)) > _EXACT_INTEGERS:
                raise ParameterError(f"{name}: {value} is larger than 2^53 and would not "
                                     "reach the script exactly; give it as a text")
            stored = float(value)
            text = _number_text(stored)
        else:
            stored = _real(name, value, "a number or a text")
            text = _number_text(stored)
        if text in seen:
            raise ParameterError(f"{name}: {value!r} repeats options[{seen[text]}] (both reach "
                                 f"the script as '{text}'); give each value once")
        seen[text] = i
        values.append(stored)
    return _expression("choice", values=tuple(values))


def _expression(kind: str, **fields) -> ParameterExpression:
    expression = ParameterExpression(**fields)
    expression.kind = kind
    return expression


def _bounds(function: str, min_value, max_value):
    low = _real("min_value", min_value)
    high = _real("max_value", max_value)
    if not low < high:
        raise ParameterError(f"max_value: {function}({min_value!r}, {max_value!r}) needs "
                             "min_value below max_value")
    if not math.isfinite(high - low):
        raise ParameterError(f"max_value: {function}({min_value!r}, {max_value!r}): the range "
                             "is too wide to draw from")
    return low, high


def uniform(min_value, max_value) -> ParameterExpression:
    """A real number uniformly distributed in [min_value, max_value]."""
    low, high = _bounds("uniform", min_value, max_value)
    return _expression("uniform", min=low, max=high)


def loguniform(min_value, max_value) -> ParameterExpression:
    """exp(uniform(min_value, max_value)), as HyperDrive and hyperopt: the bounds are NATURAL
    LOGARITHMS of the values. For a learning rate from 1e-5 to 1e-1 write
    `loguniform(math.log(1e-5), math.log(1e-1))` (-11.51 to -2.30). Both bounds in
    [-700, 700]."""
    low, high = _bounds("loguniform", min_value, max_value)
    for name, v, given in (("min_value", low, min_value), ("max_value", high, max_value)):
        if not -700 <= v <= 700:
            raise ParameterError(f"{name}: {given!r} is out of range; loguniform's bounds are "
                                 "natural logarithms (math.log(1e-5) = -11.51): use -700 to "
                                 "700")
    return _expression("loguniform", min=low, max=high)


def normal(mu, sigma) -> ParameterExpression:
    """A real number normally distributed with mean `mu` and standard deviation `sigma`
    (unbounded); both at most 1e300 in magnitude, sigma above 0."""
    m = _real("mu", mu)
    s = _real("sigma", sigma)
    if abs(m) > 1e300:
        raise ParameterError(f"mu: {mu!r} is over 1e300 in magnitude")
    if not 0 < s <= 1e300:
        raise ParameterError(f"sigma: {sigma!r} must be above 0 (and at most 1e300)")
    return _expression("normal", mu=m, sigma=s)


def quniform(min_value, max_value, q) -> ParameterExpression:
    """round(uniform(min_value, max_value) / q) * q, halves rounded away from zero: a
    multiple of `q` that may lie up to q/2 outside the range when a bound is not a multiple
    of `q`. `q` above 0; no bound more than 1e15 times `q` in magnitude."""
    low, high = _bounds("quniform", min_value, max_value)
    step = _real("q", q)
    if not step > 0:
        raise ParameterError(f"q: {q!r} must be above 0")
    if max(abs(low), abs(high)) / step > 1e15:
        raise ParameterError(f"q: {q!r} is too small for the range ({min_value!r}, "
                             f"{max_value!r}): a bound is more than 1e15 steps of q")
    return _expression("quniform", min=low, max=high, q=step)


def randint(upper) -> ParameterExpression:
    """An integer uniformly distributed in [0, upper), upper excluded; 1 <= upper <= 2^53."""
    return _expression("randint", upper=_integer("upper", upper, 1, _EXACT_INTEGERS))


# ---- sampling

def _space(parameter_space) -> Dict[str, ParameterExpression]:
    if not isinstance(parameter_space, Mapping):
        raise ParameterError("parameter_space: give a dict of name: distribution, for example "
                             "{'lr': uniform(0.01, 0.1)}")
    if not 1 <= len(parameter_space) <= 64:
        raise ParameterError(f"parameter_space: {len(parameter_space)} parameters; give 1 to "
                             "64")
    space: Dict[str, ParameterExpression] = {}
    for key, expression in parameter_space.items():
        # HyperDrive's spaces name parameters as flags ("--lr"); the dashes are droverd's.
        name = key[2:] if isinstance(key, str) and key.startswith("--") else key
        if not isinstance(name, str) or not _NAME.match(name):
            raise ParameterError(f"parameter_space: {key!r} is not a parameter name: 1-63 "
                                 "characters of [A-Za-z0-9_-] starting with a letter, "
                                 "optionally after '--'")
        if name in space:
            raise ParameterError(f"parameter_space: '{key}' names '{name}' a second time")
        if not isinstance(expression, ParameterExpression):
            raise ParameterError(f"parameter_space['{key}']: {expression!r} is not a "
                                 "distribution; use choice(...), uniform(...), "
                                 "loguniform(...), normal(...), quniform(...) or randint(...)")
        space[name] = expression
    return space


def _seed(seed) -> int:
    if seed is None:
        return secrets.randbits(63)
    return _integer("seed", seed, 0, 2 ** 64 - 1)


class _Sampling:
    method = ""

    def __init__(self, parameter_space):
        self.parameter_space = _space(parameter_space)
        self.seed = 0

    def to_proto(self):
        from drover.v1 import sweep_pb2

        return sweep_pb2.Sampling(method=sweep_pb2.Sampling.Method.Value(self.method),
                                  seed=self.seed)

    def __repr__(self):
        return f"{type(self).__name__}({self.parameter_space!r})"


class RandomParameterSampling(_Sampling):
    """Independent draws from each distribution. `seed` (0 to 2^64-1) makes the sweep's trials
    repeat: trial i's parameters depend only on the seed, i and the space. Without one a
    random seed is drawn here and kept in `self.seed` (so a retried submit of this config is
    the same sweep)."""

    method = "RANDOM"

    def __init__(self, parameter_space, seed: Optional[int] = None):
        super().__init__(parameter_space)
        self.seed = _seed(seed)


class GridParameterSampling(_Sampling):
    """Every combination of the `choice` values, each once (at most 10,000 combinations);
    every parameter must be a choice, as in HyperDrive."""

    method = "GRID"

    def __init__(self, parameter_space):
        super().__init__(parameter_space)
        size = 1
        for name, expression in self.parameter_space.items():
            if expression.kind != "choice":
                raise ParameterError(f"parameter_space['{name}']: grid sampling needs every "
                                     f"parameter to be a choice, and this one is {expression!r}; "
                                     "list its values as a choice, or use "
                                     "RandomParameterSampling")
            size *= len(expression.fields["values"])
        if size > _MAX_TRIALS:
            raise ParameterError(f"parameter_space: the grid has {size} combinations; at most "
                                 f"{_MAX_TRIALS}")
        self.grid_size = size


class BayesianParameterSampling(_Sampling):
    """Model-based sampling: droverd's Tree-structured Parzen Estimator (TPE), random for the
    first trials, then drawn where finished trials with good results are dense. Any
    distribution kind. `seed` as in RandomParameterSampling."""

    method = "TPE"

    def __init__(self, parameter_space, seed: Optional[int] = None):
        super().__init__(parameter_space)
        self.seed = _seed(seed)


# ---- early termination

class _Policy:
    def __init__(self, evaluation_interval, delay_evaluation):
        self.evaluation_interval = _integer("evaluation_interval", evaluation_interval, 1,
                                            _MAX_INTERVAL)
        self.delay_evaluation = _integer("delay_evaluation", delay_evaluation, 0, _MAX_INTERVAL)


class BanditPolicy(_Policy):
    """Stops a trial whose best primary metric so far is worse than the best trial's by more
    than the slack: give exactly one of `slack_factor` (a ratio, above 0, at most 1000) or
    `slack_amount` (in the metric's units, above 0). Applied at every `evaluation_interval`-th
    logged value from the `delay_evaluation`-th on."""

    def __init__(self, slack_factor=None, slack_amount=None, evaluation_interval=1,
                 delay_evaluation=0):
        super().__init__(evaluation_interval, delay_evaluation)
        if (slack_factor is None) == (slack_amount is None):
            raise ParameterError("slack_factor: give exactly one of slack_factor and "
                                 "slack_amount")
        if slack_factor is not None:
            slack_factor = _real("slack_factor", slack_factor)
            if not 0 < slack_factor <= 1000:
                raise ParameterError(f"slack_factor: {slack_factor!r} must be above 0 and at "
                                     "most 1000")
        if slack_amount is not None:
            slack_amount = _real("slack_amount", slack_amount)
            if not slack_amount > 0:
                raise ParameterError(f"slack_amount: {slack_amount!r} must be above 0")
        self.slack_factor = slack_factor
        self.slack_amount = slack_amount

    def _fill(self, early):
        b = early.bandit
        if self.slack_factor is not None:
            b.slack_factor = self.slack_factor
        else:
            b.slack_amount = self.slack_amount
        b.evaluation_interval = self.evaluation_interval
        b.delay_evaluation = self.delay_evaluation


class MedianStoppingPolicy(_Policy):
    """Stops a trial whose best primary metric so far is worse than the median of the
    trials' running averages."""

    def __init__(self, evaluation_interval=1, delay_evaluation=0):
        super().__init__(evaluation_interval, delay_evaluation)

    def _fill(self, early):
        early.median_stopping.evaluation_interval = self.evaluation_interval
        early.median_stopping.delay_evaluation = self.delay_evaluation


class TruncationSelectionPolicy(_Policy):
    """Stops the trials among the lowest `truncation_percentage` percent (1-99) by their
    best primary metric so far."""

    def __init__(self, truncation_percentage, evaluation_interval=1, delay_evaluation=0):
        super().__init__(evaluation_interval, delay_evaluation)
        self.truncation_percentage = _integer("truncation_percentage", truncation_percentage,
                                              1, 99)

    def _fill(self, early):
        t = early.truncation_selection
        t.truncation_percentage = self.truncation_percentage
        t.evaluation_interval = self.evaluation_interval
        t.delay_evaluation = self.delay_evaluation


class NoTerminationPolicy:
    """Every trial runs to its end (as `policy=None`)."""


class PrimaryMetricGoal(str, enum.Enum):
    """Whether a higher or a lower primary metric is better."""

    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"


# ---- the sweep

class HyperDriveConfig:
    """A sweep of `estimator` over `hyperparameter_sampling`'s space, to submit with
    `Experiment.submit`.

    - `primary_metric_name`: what the script logs with `run.log(NAME, value)` (1-256 bytes of
      UTF-8, no control characters); a trial's result is the best value it logged.
    - `primary_metric_goal`: PrimaryMetricGoal.MAXIMIZE or MINIMIZE (or those texts).
    - `max_total_runs`: trials started at most, 1-10000; required except for grid sampling
      (default: the grid's size).
    - `max_concurrent_runs`: trials running at once at most, 1-10000 (default: all).
    - `max_duration_minutes`: after this long no trial starts and the running ones are
      canceled (above 0, at most 365 days; None: no limit).
    - `policy`: BanditPolicy, MedianStoppingPolicy, TruncationSelectionPolicy,
      NoTerminationPolicy or None.
    - `name`: the sweep's name (1-128 of [A-Za-z0-9._-]), optional.
    A trial's time limit is the estimator's `max_run_duration_seconds`."""

    def __init__(self, hyperparameter_sampling=None, primary_metric_name=None,
                 primary_metric_goal=None, max_total_runs=None, max_concurrent_runs=None,
                 max_duration_minutes=None, policy=None, estimator=None, *,
                 name: Optional[str] = None):
        if not isinstance(estimator, Estimator):
            raise ParameterError(f"estimator: {estimator!r} is not an Estimator "
                                 "(drover.Estimator, drover.train.dnn.PyTorch)")
        if not isinstance(hyperparameter_sampling, _Sampling):
            raise ParameterError(f"hyperparameter_sampling: {hyperparameter_sampling!r} is not "
                                 "RandomParameterSampling, GridParameterSampling or "
                                 "BayesianParameterSampling")
        if isinstance(policy, type) and issubclass(policy, NoTerminationPolicy):
            policy = None
        if isinstance(policy, NoTerminationPolicy):
            policy = None
        if policy is not None and not isinstance(policy, _Policy):
            raise ParameterError(f"policy: {policy!r} is not BanditPolicy, "
                                 "MedianStoppingPolicy, TruncationSelectionPolicy, "
                                 "NoTerminationPolicy or None")
        if not isinstance(primary_metric_name, str) or not primary_metric_name or \
                len(primary_metric_name.encode()) > 256 or \
                any(ord(c) < 0x20 or c == "\x7f" for c in primary_metric_name):
            raise ParameterError(f"primary_metric_name: {primary_metric_name!r} is not a "
                                 "metric name (1-256 bytes, no control characters), the name "
                                 "the script logs with run.log")
        goal = primary_metric_goal
        if isinstance(goal, str) and not isinstance(goal, PrimaryMetricGoal) and \
                goal.upper() in PrimaryMetricGoal.__members__:
            goal = PrimaryMetricGoal[goal.upper()]
        if not isinstance(goal, PrimaryMetricGoal):
            raise ParameterError(f"primary_metric_goal: {primary_metric_goal!r} is not "
                                 "PrimaryMetricGoal.MAXIMIZE or PrimaryMetricGoal.MINIMIZE")
        if max_total_runs is None:
            if not isinstance(hyperparameter_sampling, GridParameterSampling):
                raise ParameterError("max_total_runs: required (1-10000) for random and "
                                     "Bayesian sampling")
        else:
            max_total_runs = _integer("max_total_runs", max_total_runs, 1, _MAX_TRIALS)
        if max_concurrent_runs is not None:
            max_concurrent_runs = _integer("max_concurrent_runs", max_concurrent_runs, 1,
                                           _MAX_TRIALS)
        if max_duration_minutes is not None:
            minutes = _real("max_duration_minutes", max_duration_minutes, "a number of minutes")
            if not 0 < minutes <= _MAX_MINUTES:
                raise ParameterError(f"max_duration_minutes: {max_duration_minutes!r} must be "
                                     f"above 0 and at most {_MAX_MINUTES} (365 days); None for "
                                     "no limit")
        if name is not None and (not isinstance(name, str) or
                                 not re.match(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z", name)):
            raise ParameterError(f"name: {name!r} is not 1-128 characters of [A-Za-z0-9._-] "
                                 "starting with a letter or digit")
        # A parameter's flag passed by the estimator too would reach the script twice.
        for parameter in hyperparameter_sampling.parameter_space:
            flag = "--" + parameter
            for i, arg in enumerate(estimator.arguments):
                if isinstance(arg, str) and (arg == flag or arg.startswith(flag + "=")):
                    raise ParameterError(
                        f"hyperparameter_sampling: parameter '{parameter}': the estimator "
                        f"already passes '{arg}' (its argument {i}); remove it from "
                        "script_params/arguments, or rename the parameter")
        self.estimator = estimator
        self.hyperparameter_sampling = hyperparameter_sampling
        self.policy = policy
        self.primary_metric_name = primary_metric_name
        self.primary_metric_goal = goal
        self.max_total_runs = max_total_runs
        self.max_concurrent_runs = max_concurrent_runs
        self.max_duration_minutes = max_duration_minutes
        self.name = name

    def to_sweep_spec(self, experiment: str = "", snapshot_digest: str = "",
                      tags: Optional[Mapping[str, str]] = None, idempotency_key: str = ""):
        """The SweepSpec (drover.v1.sweep_pb2.SweepSpec) this config becomes: the estimator's
        JobSpec (in `experiment`, with snapshot `snapshot_digest` and `tags`) as the trial
        template."""
        from drover.v1 import sweep_pb2

        spec = sweep_pb2.SweepSpec()
        if self.name:
            spec.name = self.name
        spec.trial_template.CopyFrom(self.estimator.to_job_spec(experiment, snapshot_digest,
                                                                tags, ""))
        for name, expression in self.hyperparameter_sampling.parameter_space.items():
            spec.search_space[name].CopyFrom(expression.to_proto())
        spec.sampling.CopyFrom(self.hyperparameter_sampling.to_proto())
        spec.primary_metric_name = self.primary_metric_name
        spec.primary_metric_goal = sweep_pb2.MetricGoal.Value(self.primary_metric_goal.value)
        if self.max_total_runs is not None:
            spec.max_total_trials = self.max_total_runs
        if self.max_concurrent_runs is not None:
            spec.max_concurrent_trials = self.max_concurrent_runs
        if self.max_duration_minutes is not None:
            seconds = float(self.max_duration_minutes) * 60
            spec.max_duration.seconds = int(seconds)
            spec.max_duration.nanos = int(round((seconds - int(seconds)) * 1e9)) % 10 ** 9
        if self.policy is not None:
            self.policy._fill(spec.early_termination)
        if idempotency_key:
            spec.idempotency_key = idempotency_key
        return spec

    def __repr__(self):
        return (f"HyperDriveConfig(estimator={self.estimator!r}, "
                f"hyperparameter_sampling={self.hyperparameter_sampling!r}, "
                f"primary_metric_name={self.primary_metric_name!r}, "
                f"primary_metric_goal={self.primary_metric_goal.value}, "
                f"max_total_runs={self.max_total_runs!r})")


# ---- the submitted sweep

_SWEEP_STATES = {"QUEUED": "Queued", "RUNNING": "Running", "COMPLETED": "Completed",
                 "CANCELED": "Canceled", "FAILED": "Failed", "STATE_UNSPECIFIED": "NotStarted"}
_SWEEP_ID = re.compile(r"s-[0-9a-f]{16}\Z")


def _sweeps(conn):
    """The SweepService stub of connection `conn` (made on first use)."""
    stub = getattr(conn, "sweeps", None)
    if stub is None:
        from drover.v1 import sweep_service_pb2_grpc

        stub = sweep_service_pb2_grpc.SweepServiceStub(conn.channel)
        conn.sweeps = stub
    return stub


def _value(v):
    """A ParameterValue as Python: text as str, an integral number as int (as the script
    gets it), another number as float."""
    if v.WhichOneof("kind") == "text":
        return v.text
    n = v.number
    if n.is_integer() and abs(n) <= _EXACT_INTEGERS:
        return int(n)
    return n


def _script_text(v) -> str:
    """A ParameterValue as the script reads it on its command line."""
    return v.text if v.WhichOneof("kind") == "text" else _number_text(v.number)


def _parameters(trial) -> Dict[str, Any]:
    return {name: _value(trial.parameters[name]) for name in sorted(trial.parameters)}


def submit(experiment, config: HyperDriveConfig, tags, idempotency_key: str,
           show_upload: bool) -> "HyperDriveRun":
    """Experiment.submit for a HyperDriveConfig: uploads the snapshot, then SubmitSweep."""
    from drover.experiment import upload_snapshot
    from drover.v1 import sweep_service_pb2

    # Everything is checked before the snapshot is built or sent.
    config.to_sweep_spec(experiment.name, "", tags, idempotency_key)
    conn = experiment.workspace._connection
    digest = upload_snapshot(conn, config.estimator, show_upload)
    spec = config.to_sweep_spec(experiment.name, digest, tags, idempotency_key)
    answer = conn.call(_sweeps(conn).SubmitSweep, sweep_service_pb2.SubmitSweepRequest(spec=spec))
    return HyperDriveRun(experiment, answer.sweep.id, _sweep=answer.sweep)


class HyperDriveChildRun(Run):
    """One trial of a sweep: a Run of its job (HyperDriveRun.get_children) with
    `hyperparameters`, `trial_index`, `best_primary_metric` and `stopped_early`."""

    hyperparameters: Dict[str, Any] = {}
    trial_index = -1
    best_primary_metric: Optional[float] = None
    stopped_early: Optional[str] = None

    def get_details(self) -> Dict[str, Any]:
        """Run.get_details() with `hyperparameters` and `trialIndex` added."""
        details = super().get_details()
        details["hyperparameters"] = dict(self.hyperparameters)
        details["trialIndex"] = self.trial_index
        return details


class HyperDriveRun:
    """A submitted sweep (`Experiment.submit(HyperDriveConfig(...))`), or reattached with
    `HyperDriveRun(experiment, "s-...")` (ServerError NOT_FOUND for an unknown id)."""

    def __init__(self, experiment, run_id: str, *, _sweep=None):
        if not isinstance(run_id, str) or not _SWEEP_ID.match(run_id):
            raise ParameterError(f"run_id: {run_id!r} is not a sweep id such as "
                                 "'s-0123456789abcdef'")
        self.experiment = experiment
        self.id = run_id
        self._conn = experiment.workspace._connection
        self._sweep = _sweep if _sweep is not None else self._refresh()

    def _refresh(self):
        from drover.v1 import sweep_service_pb2

        self._sweep = self._conn.call(_sweeps(self._conn).GetSweep,
                                      sweep_service_pb2.GetSweepRequest(sweep_id=self.id))
        return self._sweep

    @property
    def hyperparameter_sampling_method(self) -> str:
        from drover.v1 import sweep_pb2

        return sweep_pb2.Sampling.Method.Name(self._sweep.spec.sampling.method)

    def _state(self, sweep) -> str:
        from drover.v1 import sweep_pb2

        return _SWEEP_STATES[sweep_pb2.SweepStatus.State.Name(sweep.status.state)]

    def get_status(self) -> str:
        """"Queued", "Running", "Completed", "Canceled" or "Failed". Raises ServerError."""
        return self._state(self._refresh())

    def get_details(self) -> Dict[str, Any]:
        """The sweep as a dict: runId, status, reason, message, owner, name, trialCount,
        bestTrialIndex and bestResult (None while no trial has a result), createTimeUtc,
        endTimeUtc and spec (the effective SweepSpec)."""
        from google.protobuf import json_format

        sweep = self._refresh()
        s = sweep.status
        return {
            "runId": sweep.id,
            "status": self._state(sweep),
            "reason": s.reason,
            "message": s.message,
            "owner": sweep.owner,
            "name": sweep.spec.name,
            "trialCount": sweep.trial_count,
            "bestTrialIndex": sweep.best_trial_index if sweep.HasField("best_trial_index")
            else None,
            "bestResult": sweep.best_result if sweep.HasField("best_result") else None,
            "createTimeUtc": sweep.create_time.ToJsonString()
            if sweep.HasField("create_time") else None,
            "endTimeUtc": s.end_time.ToJsonString() if s.HasField("end_time") else None,
            "spec": json_format.MessageToDict(sweep.spec, preserving_proto_field_name=True),
        }

    def _ended(self, sweep) -> bool:
        from drover.v1 import sweep_pb2

        return sweep.status.state in (sweep_pb2.SweepStatus.COMPLETED,
                                      sweep_pb2.SweepStatus.CANCELED,
                                      sweep_pb2.SweepStatus.FAILED)

    def wait_for_completion(self, show_output: bool = False, raise_on_error: bool = True,
                            poll_interval: float = 1.0) -> Dict[str, Any]:
        """Waits until the sweep ended and every trial it started ended (a canceled sweep's
        trials are canceled), and returns get_details(); asks droverd every `poll_interval`
        seconds (0 to 3600), riding out a droverd restart. With `show_output`, prints a line
        when a trial starts, ends or is stopped early, and the sweep's end with its best
        trial. Raises RunFailedError when the sweep FAILED or was CANCELED and
        `raise_on_error`."""
        poll_interval = _real("poll_interval", poll_interval, "a number of seconds")
        if not 0 <= poll_interval <= 3600:
            raise ParameterError(f"poll_interval: {poll_interval!r} is not 0 to 3600 seconds")
        from drover._connection import RECONNECT_DELAYS
        from drover._remote import TERMINAL
        from drover.v1 import job_pb2

        shown: Dict[int, int] = {}  # trial index -> job state shown
        failures = 0
        metric = self._sweep.spec.primary_metric_name
        while True:
            try:
                sweep = self._refresh()
                failures = 0
            except ServerError as e:
                if e.code != "UNAVAILABLE" or failures >= len(RECONNECT_DELAYS):
                    raise
                time.sleep(RECONNECT_DELAYS[failures])
                failures += 1
                continue
            if show_output:
                for trial in sweep.trials:
                    state = trial.job_state
                    if shown.get(trial.index) == state:
                        continue
                    params = " ".join(f"--{k} {_script_text(trial.parameters[k])}"
                                      for k in sorted(trial.parameters))
                    if trial.index not in shown:
                        print(f"trial {trial.index} {trial.job_id}: {params}", flush=True)
                    if state in TERMINAL:
                        result = f"{metric} {trial.result:g}" if trial.HasField("result") \
                            else f"no {metric}"
                        how = job_pb2.JobStatus.State.Name(state).capitalize()
                        stop = f" (stopped early: {trial.stop.message})" if trial.stop.rule \
                            else ""
                        print(f"trial {trial.index} {trial.job_id}: {how}, {result}{stop}",
                              flush=True)
                    shown[trial.index] = state
            # A canceled sweep ends at once; its trials' jobs end right after.
            if self._ended(sweep) and all(t.job_state in TERMINAL for t in sweep.trials):
                break
            time.sleep(poll_interval)
        state = self._state(sweep)
        if show_output:
            best = ""
            if sweep.HasField("best_trial_index"):
                t = next((t for t in sweep.trials if t.index == sweep.best_trial_index), None)
                if t is not None:
                    best = f"; best: trial {t.index} {t.job_id}, {metric} {sweep.best_result:g}"
            print(f"sweep {self.id}: {state} ({sweep.status.reason}){best}", flush=True)
        if raise_on_error and state in ("Failed", "Canceled"):
            raise RunFailedError(self.id, state, sweep.status.reason, sweep.status.message)
        return self.get_details()

    def cancel(self) -> None:
        """Cancels the sweep: no trial starts after it and the running ones are canceled.
        Returns at once; wait_for_completion(raise_on_error=False) waits for the end."""
        from drover.v1 import sweep_service_pb2

        self._sweep = self._conn.call(_sweeps(self._conn).CancelSweep,
                                      sweep_service_pb2.CancelSweepRequest(sweep_id=self.id))

    def _trial_runs(self, trials) -> List:
        """`trials` (SweepTrial messages) as child runs, in index order."""
        from drover.v1 import job_service_pb2

        jobs = {}
        if trials:
            token = ""
            while True:
                answer = self._conn.call(self._conn.jobs.ListJobs, job_service_pb2.ListJobsRequest(
                    tag=f"drover.sweep={self.id}", page_size=1000, page_token=token))
                jobs.update((job.id, job) for job in answer.jobs)
                token = answer.next_page_token
                if not token:
                    break
        runs = []
        for trial in sorted(trials, key=lambda t: t.index):
            run = HyperDriveChildRun(self.experiment, trial.job_id, _job=jobs.get(trial.job_id))
            run.trial_index = trial.index
            run.hyperparameters = _parameters(trial)
            run.best_primary_metric = trial.result if trial.HasField("result") else None
            run.stopped_early = trial.stop.message or None
            runs.append(run)
        return runs

    def get_children(self) -> Iterator:
        """The trials started so far, in the order started, each a Run of its job (status,
        metrics, files, cancel as any run) with `hyperparameters` (name -> value as the
        script got it: int, float or str), `trial_index`, `best_primary_metric` (its result,
        None while it logged none) and `stopped_early` (the early-termination line, or
        None); get_details() adds hyperparameters and trialIndex."""
        return iter(self._trial_runs(self._refresh().trials))

    def get_hyperparameters(self) -> Dict[str, Dict[str, Any]]:
        """Trial run id -> its parameters."""
        return {t.job_id: _parameters(t) for t in self._refresh().trials}

    def get_children_sorted_by_primary_metric(self, top: int = 0, reverse: bool = False,
                                              discard_no_metric: bool = False) -> List[dict]:
        """The trials ranked best first by the primary metric (trials without a result
        last, or left out with `discard_no_metric`; `reverse`: worst first), the first `top`
        (0: all), each {"run_id", "hyperparameters", "best_primary_metric", "status"}."""
        from drover._remote import STATE_NAMES
        from drover.v1 import job_pb2, sweep_pb2

        top = _integer("top", top, 0, sys.maxsize)
        sweep = self._refresh()
        sign = -1 if sweep.spec.primary_metric_goal == sweep_pb2.MAXIMIZE else 1
        rows = []
        for t in sorted(sweep.trials, key=lambda t: t.index):
            if discard_no_metric and not t.HasField("result"):
                continue
            rows.append({"run_id": t.job_id, "hyperparameters": _parameters(t),
                         "best_primary_metric": t.result if t.HasField("result") else None,
                         "status": STATE_NAMES[job_pb2.JobStatus.State.Name(t.job_state)]})
        with_result = sorted((r for r in rows if r["best_primary_metric"] is not None),
                             key=lambda r: sign * r["best_primary_metric"])
        rows = with_result + [r for r in rows if r["best_primary_metric"] is None]
        if reverse:
            rows.reverse()
        return rows[:top] if top else rows

    def get_best_run_by_primary_metric(self):
        """The trial with the best result (droverd's best_trial_index: the highest primary
        metric for MAXIMIZE, the lowest for MINIMIZE, the earlier trial among equal ones), as
        get_children() gives it; None while no trial logged a finite value."""
        sweep = self._refresh()
        if not sweep.HasField("best_trial_index"):
            return None
        runs = self._trial_runs([t for t in sweep.trials if t.index == sweep.best_trial_index])
        return runs[0] if runs else None

    def get_metrics(self) -> Dict[str, Dict[str, Any]]:
        """Trial run id -> that trial's get_metrics() (one call per trial)."""
        return {run.id: run.get_metrics() for run in self._trial_runs(self._refresh().trials)}

    def __repr__(self):
        return f"HyperDriveRun(id={self.id!r}, experiment={self.experiment.name!r})"


__all__ = ["choice", "uniform", "loguniform", "normal", "quniform", "randint",
           "RandomParameterSampling", "GridParameterSampling", "BayesianParameterSampling",
           "BanditPolicy", "MedianStoppingPolicy", "TruncationSelectionPolicy",
           "NoTerminationPolicy", "PrimaryMetricGoal", "HyperDriveConfig", "HyperDriveRun",
           "HyperDriveChildRun", "ParameterExpression"]
