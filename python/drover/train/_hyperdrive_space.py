"""The search space, sampling and early-termination policies of drover.train.hyperdrive (its
public names are imported from there): each object checks its arguments when made and
becomes part of a SweepSpec."""

import decimal
import enum
import math
import numbers
import re
import secrets
from typing import Any, Dict, List, Mapping, Optional

from drover.exceptions import ParameterError

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
