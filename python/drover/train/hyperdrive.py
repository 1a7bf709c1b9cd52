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

import re
from typing import Mapping, Optional

from drover.estimator import Estimator
from drover.exceptions import ParameterError
from drover.train._hyperdrive_run import HyperDriveChildRun, HyperDriveRun, submit
from drover.train._hyperdrive_space import (_MAX_MINUTES, _MAX_TRIALS, BanditPolicy,
                                            BayesianParameterSampling, GridParameterSampling,
                                            MedianStoppingPolicy, NoTerminationPolicy,
                                            ParameterExpression, PrimaryMetricGoal,
                                            RandomParameterSampling, TruncationSelectionPolicy,
                                            _integer, _number_text, _Policy, _real, _Sampling,
                                            choice, loguniform, normal, quniform, randint,
                                            uniform)

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


__all__ = ["choice", "uniform", "loguniform", "normal", "quniform", "randint",
           "RandomParameterSampling", "GridParameterSampling", "BayesianParameterSampling",
           "BanditPolicy", "MedianStoppingPolicy", "TruncationSelectionPolicy",
           "NoTerminationPolicy", "PrimaryMetricGoal", "HyperDriveConfig", "HyperDriveRun",
           "HyperDriveChildRun", "ParameterExpression"]
