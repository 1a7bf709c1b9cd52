"""Unit tests of drover.train.hyperdrive without a server: every HyperDrive object becomes its
SweepSpec field exactly, hostile values are refused naming the argument before anything is
sent, and Experiment.submit of a HyperDriveConfig uploads the snapshot once and submits one
sweep with an idempotency key.

Run by ctest (python_sdk_hyperdrive_unit_test) with PYTHONPATH=<build>/python.
"""

import math
import types

import pytest

from drover.estimator import Estimator
from drover.exceptions import ParameterError, RunFailedError
from drover.experiment import Experiment
from drover.train.hyperdrive import (BanditPolicy, BayesianParameterSampling,
                                     GridParameterSampling, HyperDriveConfig, HyperDriveRun,
                                     MedianStoppingPolicy, NoTerminationPolicy,
                                     PrimaryMetricGoal, RandomParameterSampling,
                                     TruncationSelectionPolicy, choice, loguniform, normal,
                                     quniform, randint, uniform)
from drover.v1 import job_pb2, sweep_pb2, sweep_service_pb2

NAN = float("nan")
INF = float("inf")


@pytest.fixture
def project(tmp_path):
    (tmp_path / "train.py").write_text("print('hi')\n")
    return str(tmp_path)


def est(**kwargs):
    kwargs.setdefault("entry_script", "train.py")
    return Estimator(**kwargs)


def config(**kwargs):
    kwargs.setdefault("estimator", est())
    kwargs.setdefault("hyperparameter_sampling",
                      RandomParameterSampling({"lr": uniform(0.01, 0.1)}, seed=1))
    kwargs.setdefault("primary_metric_name", "accuracy")
    kwargs.setdefault("primary_metric_goal", PrimaryMetricGoal.MAXIMIZE)
    kwargs.setdefault("max_total_runs", 8)
    return HyperDriveConfig(**kwargs)


def dist(expression):
    return expression.to_proto()


# ---- distributions: each becomes its ParameterDistribution exactly

def test_each_distribution_becomes_its_proto():
    assert dist(uniform(0, 0.5)) == sweep_pb2.ParameterDistribution(
        uniform=sweep_pb2.Uniform(min=0.0, max=0.5))
    assert dist(loguniform(math.log(1e-5), math.log(1e-1))) == sweep_pb2.ParameterDistribution(
        loguniform=sweep_pb2.LogUniform(min=math.log(1e-5), max=math.log(1e-1)))
    assert dist(normal(10, 3)) == sweep_pb2.ParameterDistribution(
        normal=sweep_pb2.Normal(mu=10.0, sigma=3.0))
    assert dist(quniform(64, 512, 64)) == sweep_pb2.ParameterDistribution(
        quniform=sweep_pb2.QUniform(min=64.0, max=512.0, q=64.0))
    assert dist(randint(1000)) == sweep_pb2.ParameterDistribution(
        randint=sweep_pb2.RandInt(upper=1000))
    assert dist(choice(32, 0.5, "adam")) == sweep_pb2.ParameterDistribution(
        choice=sweep_pb2.Choice(values=[sweep_pb2.ParameterValue(number=32),
                                        sweep_pb2.ParameterValue(number=0.5),
                                        sweep_pb2.ParameterValue(text="adam")]))


def test_choice_takes_one_list_or_range_as_hyperdrive_does():
    assert choice([1, 2, 3]) == choice(1, 2, 3) == choice(range(1, 4)) == choice((1, 2, 3))
    assert dist(choice(range(2))).choice.values[1].number == 1
    assert repr(choice(32, 0.5, "adam")) == "choice(32, 0.5, 'adam')"


@pytest.mark.parametrize("make,named", [
    (lambda: choice(), "options"),
    (lambda: choice([]), "options"),
    (lambda: choice(*range(1001)), "options"),
    (lambda: choice(1, NAN), r"options\[1\]"),
    (lambda: choice(INF), r"options\[0\]"),
    (lambda: choice(True, False), r"options\[0\]"),
    (lambda: choice(None), r"options\[0\]"),
    (lambda: choice(b"x"), r"options\[0\]"),
    (lambda: choice(1, 2, 1), r"options\[2\]"),
    (lambda: choice(64, 64.0), r"options\[1\]"),
    (lambda: choice(64, "64"), r"options\[1\]"),
    (lambda: choice("-x"), r"options\[0\]"),
    (lambda: choice("a\0b"), r"options\[0\]"),
    (lambda: choice("x" * 1025), r"options\[0\]"),
    (lambda: choice(2 ** 53 + 1), r"options\[0\]"),
    (lambda: uniform(NAN, 1), "min_value"),
    (lambda: uniform(0, INF), "max_value"),
    (lambda: uniform(1, 0), "max_value"),
    (lambda: uniform(1, 1), "max_value"),
    (lambda: uniform(-1e308, 1e308), "max_value"),
    (lambda: uniform("0", 1), "min_value"),
    (lambda: uniform(False, 1), "min_value"),
    (lambda: uniform(0, None), "max_value"),
    (lambda: loguniform(-1, 1000), "max_value"),
    (lambda: loguniform(-701, 0), "min_value"),
    (lambda: loguniform(-2, -3), "max_value"),
    (lambda: loguniform(-INF, 0), "min_value"),
    (lambda: normal(NAN, 1), "mu"),
    (lambda: normal(0, 0), "sigma"),
    (lambda: normal(0, -1), "sigma"),
    (lambda: normal(0, INF), "sigma"),
    (lambda: normal(True, 1), "mu"),
    (lambda: normal(1e301, 1), "mu"),
    (lambda: quniform(0, 10, 0), "q"),
    (lambda: quniform(0, 10, -1), "q"),
    (lambda: quniform(0, 10, NAN), "q"),
    (lambda: quniform(0, 1e16, 1), "q"),
    (lambda: quniform(10, 0, 1), "max_value"),
    (lambda: randint(0), "upper"),
    (lambda: randint(-5), "upper"),
    (lambda: randint(2 ** 53 + 1), "upper"),
    (lambda: randint(5.0), "upper"),
    (lambda: randint(True), "upper"),
    (lambda: randint("5"), "upper"),
])
def test_a_bad_distribution_argument_raises_naming_it(make, named):
    with pytest.raises(ParameterError, match="^" + named + ":"):
        make()


# What droverd's FormatParameterValue (integers as integers, else std::to_chars) printed for
# each, read off libstdc++ 12.
@pytest.mark.parametrize("value,text", [
    (0.0001, "1e-04"), (0.001, "0.001"), (1e-05, "1e-05"), (1e16, "1e+16"), (64.0, "64"),
    (0.30000000000000004, "0.30000000000000004"), (123456.789, "123456.789"),
    (1.5e300, "1.5e+300"), (2.0 ** 53, "9007199254740992"), (2.0 ** 53 + 2, "9007199254740994"),
    (-0.0, "-0"), (0.0, "0"), (-0.0001, "-1e-04"), (1e21, "1e+21"),
    (1234567890123456789.0, "1234567890123456768"), (5e-324, "5e-324"), (1e-7, "1e-07"),
    (0.000123, "0.000123"), (12345678.9, "12345678.9")])
def test_numbers_are_written_as_droverd_writes_them_on_the_command_line(value, text):
    from drover.train.hyperdrive import _number_text

    assert _number_text(value) == text


def test_a_text_that_reaches_the_script_as_a_numbers_text_is_a_repetition():
    with pytest.raises(ParameterError, match=r"^options\[1\]: '1e-04' repeats options\[0\]"):
        choice(0.0001, "1e-04")
    choice(0.0001, "0.0001")  # different texts on the command line


def test_loguniform_bounds_written_as_values_get_the_logarithm_reminder():
    with pytest.raises(ParameterError, match="natural logarithms"):
        loguniform(1e-5, 1e3)


# ---- sampling

def test_random_sampling_keeps_its_seed_and_draws_one_when_none_is_given():
    s = RandomParameterSampling({"--lr": uniform(0, 1)}, seed=0)
    assert s.parameter_space == {"lr": uniform(0, 1)} and s.seed == 0
    assert s.to_proto() == sweep_pb2.Sampling(method=sweep_pb2.Sampling.RANDOM, seed=0)
    seeds = {RandomParameterSampling({"lr": uniform(0, 1)}).seed for _ in range(4)}
    assert len(seeds) == 4 and all(0 <= x < 2 ** 64 for x in seeds)
    assert RandomParameterSampling({"lr": uniform(0, 1)}, seed=2 ** 64 - 1).seed == 2 ** 64 - 1


def test_bayesian_is_tpe_and_grid_is_grid():
    assert BayesianParameterSampling({"lr": uniform(0, 1)}, seed=5).to_proto() == \
        sweep_pb2.Sampling(method=sweep_pb2.Sampling.TPE, seed=5)
    grid = GridParameterSampling({"a": choice(1, 2, 3), "b": choice("x", "y")})
    assert grid.to_proto().method == sweep_pb2.Sampling.GRID and grid.grid_size == 6


@pytest.mark.parametrize("make,named", [
    (lambda: RandomParameterSampling({}), "parameter_space"),
    (lambda: RandomParameterSampling([("lr", uniform(0, 1))]), "parameter_space"),
    (lambda: RandomParameterSampling({"lr": [0.1, 0.2]}), r"parameter_space\['lr'\]"),
    (lambda: RandomParameterSampling({"lr": 0.1}), r"parameter_space\['lr'\]"),
    (lambda: RandomParameterSampling({"1lr": uniform(0, 1)}), "parameter_space"),
    (lambda: RandomParameterSampling({"l r": uniform(0, 1)}), "parameter_space"),
    (lambda: RandomParameterSampling({"": uniform(0, 1)}), "parameter_space"),
    (lambda: RandomParameterSampling({"x" * 64: uniform(0, 1)}), "parameter_space"),
    (lambda: RandomParameterSampling({3: uniform(0, 1)}), "parameter_space"),
    (lambda: RandomParameterSampling({"lr": uniform(0, 1), "--lr": uniform(0, 1)}),
     "parameter_space"),
    (lambda: RandomParameterSampling({f"p{i}": uniform(0, 1) for i in range(65)}),
     "parameter_space"),
    (lambda: RandomParameterSampling({"lr": uniform(0, 1)}, seed=-1), "seed"),
    (lambda: RandomParameterSampling({"lr": uniform(0, 1)}, seed=2 ** 64), "seed"),
    (lambda: RandomParameterSampling({"lr": uniform(0, 1)}, seed=1.5), "seed"),
    (lambda: RandomParameterSampling({"lr": uniform(0, 1)}, seed=True), "seed"),
    (lambda: BayesianParameterSampling({"lr": uniform(0, 1)}, seed="7"), "seed"),
    (lambda: GridParameterSampling({"a": choice(1, 2), "lr": uniform(0, 1)}),
     r"parameter_space\['lr'\]"),
    (lambda: GridParameterSampling({f"p{i}": choice(*range(10)) for i in range(5)}),
     "parameter_space"),
])
def test_a_bad_sampling_raises_naming_it(make, named):
    with pytest.raises(ParameterError, match="^" + named + ":"):
        make()


# ---- policies

def test_each_policy_becomes_its_early_termination():
    spec = config(policy=BanditPolicy(slack_factor=0.1, evaluation_interval=2,
                                      delay_evaluation=5)).to_sweep_spec("mnist")
    assert spec.early_termination == sweep_pb2.EarlyTermination(bandit=sweep_pb2.BanditPolicy(
        slack_factor=0.1, evaluation_interval=2, delay_evaluation=5))
    spec = config(policy=BanditPolicy(slack_amount=0.25)).to_sweep_spec("mnist")
    assert spec.early_termination.bandit.WhichOneof("slack") == "slack_amount"
    assert spec.early_termination.bandit.slack_amount == 0.25
    assert spec.early_termination.bandit.evaluation_interval == 1
    assert spec.early_termination.bandit.delay_evaluation == 0
    spec = config(policy=MedianStoppingPolicy(evaluation_interval=3)).to_sweep_spec("mnist")
    assert spec.early_termination == sweep_pb2.EarlyTermination(
        median_stopping=sweep_pb2.MedianStoppingPolicy(evaluation_interval=3))
    spec = config(policy=TruncationSelectionPolicy(20, delay_evaluation=4)).to_sweep_spec("m")
    assert spec.early_termination == sweep_pb2.EarlyTermination(
        truncation_selection=sweep_pb2.TruncationSelectionPolicy(
            truncation_percentage=20, evaluation_interval=1, delay_evaluation=4))
    for none in (None, NoTerminationPolicy(), NoTerminationPolicy):
        assert not config(policy=none).to_sweep_spec("mnist").HasField("early_termination")


@pytest.mark.parametrize("make,named", [
    (lambda: BanditPolicy(), "slack_factor"),
    (lambda: BanditPolicy(slack_factor=0.1, slack_amount=1), "slack_factor"),
    (lambda: BanditPolicy(slack_factor=0), "slack_factor"),
    (lambda: BanditPolicy(slack_factor=-0.1), "slack_factor"),
    (lambda: BanditPolicy(slack_factor=1001), "slack_factor"),
    (lambda: BanditPolicy(slack_factor=NAN), "slack_factor"),
    (lambda: BanditPolicy(slack_factor=True), "slack_factor"),
    (lambda: BanditPolicy(slack_amount=INF), "slack_amount"),
    (lambda: BanditPolicy(slack_amount=0), "slack_amount"),
    (lambda: BanditPolicy(slack_amount="0.1"), "slack_amount"),
    (lambda: BanditPolicy(slack_factor=0.1, evaluation_interval=0), "evaluation_interval"),
    (lambda: BanditPolicy(slack_factor=0.1, evaluation_interval=1.0), "evaluation_interval"),
    (lambda: BanditPolicy(slack_factor=0.1, evaluation_interval=10 ** 6 + 1),
     "evaluation_interval"),
    (lambda: BanditPolicy(slack_factor=0.1, delay_evaluation=-1), "delay_evaluation"),
    (lambda: MedianStoppingPolicy(delay_evaluation=True), "delay_evaluation"),
    (lambda: MedianStoppingPolicy(evaluation_interval=None), "evaluation_interval"),
    (lambda: TruncationSelectionPolicy(0), "truncation_percentage"),
    (lambda: TruncationSelectionPolicy(100), "truncation_percentage"),
    (lambda: TruncationSelectionPolicy(20.5), "truncation_percentage"),
    (lambda: TruncationSelectionPolicy(NAN), "truncation_percentage"),
])
def test_a_bad_policy_argument_raises_naming_it(make, named):
    with pytest.raises(ParameterError, match="^" + named + ":"):
        make()


# ---- HyperDriveConfig: the SweepSpec, field by field

def test_the_sweep_spec_is_built_exactly(project):
    e = Estimator(project, entry_script="train.py", script_params={"--epochs": 3},
                  max_run_duration_seconds=600, priority=5)
    sampling = RandomParameterSampling({"--lr": loguniform(-11.5, -2.3),
                                        "batch_size": choice(32, 64),
                                        "optimizer": choice("adam", "sgd")}, seed=42)
    c = HyperDriveConfig(estimator=e, hyperparameter_sampling=sampling,
                         policy=BanditPolicy(slack_factor=0.2, delay_evaluation=3),
                         primary_metric_name="accuracy",
                         primary_metric_goal=PrimaryMetricGoal.MAXIMIZE, max_total_runs=20,
                         max_concurrent_runs=4, max_duration_minutes=90.5, name="lr-search")
    spec = c.to_sweep_spec("mnist", "sha256:" + "ab" * 32, {"team": "nlp"}, "key-1")
    expected = sweep_pb2.SweepSpec(
        name="lr-search",
        trial_template=e.to_job_spec("mnist", "sha256:" + "ab" * 32, {"team": "nlp"}, ""),
        sampling=sweep_pb2.Sampling(method=sweep_pb2.Sampling.RANDOM, seed=42),
        primary_metric_name="accuracy", primary_metric_goal=sweep_pb2.MAXIMIZE,
        max_total_trials=20, max_concurrent_trials=4,
        early_termination=sweep_pb2.EarlyTermination(bandit=sweep_pb2.BanditPolicy(
            slack_factor=0.2, evaluation_interval=1, delay_evaluation=3)),
        idempotency_key="key-1")
    expected.max_duration.seconds = 5430
    expected.search_space["lr"].loguniform.min = -11.5
    expected.search_space["lr"].loguniform.max = -2.3
    expected.search_space["batch_size"].choice.values.add().number = 32
    expected.search_space["batch_size"].choice.values.add().number = 64
    expected.search_space["optimizer"].choice.values.add().text = "adam"
    expected.search_space["optimizer"].choice.values.add().text = "sgd"
    assert spec == expected
    t = spec.trial_template
    assert t.idempotency_key == "" and t.experiment == "mnist" and t.priority == 5
    assert [a.value for a in t.arguments] == ["--epochs", "3"]
    assert t.max_run_duration.seconds == 600 and dict(t.tags) == {"team": "nlp"}
    assert not spec.HasField("max_trial_duration")


def test_defaults_leave_optional_fields_unset():
    spec = config(primary_metric_goal="minimize").to_sweep_spec("mnist")
    assert spec.primary_metric_goal == sweep_pb2.MINIMIZE
    assert spec.max_total_trials == 8 and spec.max_concurrent_trials == 0
    assert not spec.HasField("max_duration") and not spec.HasField("early_termination")
    assert spec.name == "" and spec.idempotency_key == ""
    grid = config(hyperparameter_sampling=GridParameterSampling({"a": choice(1, 2)}),
                  max_total_runs=None).to_sweep_spec("mnist")
    assert grid.max_total_trials == 0 and grid.sampling.method == sweep_pb2.Sampling.GRID


@pytest.mark.parametrize("kwargs,named", [
    ({"estimator": None}, "estimator"),
    ({"estimator": "train.py"}, "estimator"),
    ({"hyperparameter_sampling": {"lr": uniform(0, 1)}}, "hyperparameter_sampling"),
    ({"hyperparameter_sampling": None}, "hyperparameter_sampling"),
    ({"policy": "bandit"}, "policy"),
    ({"policy": BanditPolicy}, "policy"),
    ({"primary_metric_name": ""}, "primary_metric_name"),
    ({"primary_metric_name": None}, "primary_metric_name"),
    ({"primary_metric_name": "acc\nuracy"}, "primary_metric_name"),
    ({"primary_metric_name": "x" * 257}, "primary_metric_name"),
    ({"primary_metric_name": 3}, "primary_metric_name"),
    ({"primary_metric_goal": None}, "primary_metric_goal"),
    ({"primary_metric_goal": "up"}, "primary_metric_goal"),
    ({"primary_metric_goal": 1}, "primary_metric_goal"),
    ({"max_total_runs": None}, "max_total_runs"),
    ({"max_total_runs": 0}, "max_total_runs"),
    ({"max_total_runs": -3}, "max_total_runs"),
    ({"max_total_runs": 10001}, "max_total_runs"),
    ({"max_total_runs": 4.0}, "max_total_runs"),
    ({"max_total_runs": True}, "max_total_runs"),
    ({"max_total_runs": "4"}, "max_total_runs"),
    ({"max_concurrent_runs": 0}, "max_concurrent_runs"),
    ({"max_concurrent_runs": -1}, "max_concurrent_runs"),
    ({"max_concurrent_runs": False}, "max_concurrent_runs"),
    ({"max_duration_minutes": 0}, "max_duration_minutes"),
    ({"max_duration_minutes": -5}, "max_duration_minutes"),
    ({"max_duration_minutes": NAN}, "max_duration_minutes"),
    ({"max_duration_minutes": INF}, "max_duration_minutes"),
    ({"max_duration_minutes": 365 * 24 * 60 + 1}, "max_duration_minutes"),
    ({"max_duration_minutes": True}, "max_duration_minutes"),
    ({"max_duration_minutes": "60"}, "max_duration_minutes"),
    ({"name": "bad name"}, "name"),
    ({"estimator": est(script_params={"--lr": 0.1})}, "hyperparameter_sampling"),
    ({"estimator": est(arguments=["--lr=0.1"])}, "hyperparameter_sampling"),
])
def test_a_bad_config_argument_raises_naming_it(kwargs, named):
    with pytest.raises(ParameterError, match="^" + named + ":"):
        config(**kwargs)


def test_an_estimator_flag_that_only_starts_like_a_parameter_is_fine():
    config(estimator=est(arguments=["--lrate", "1", "--lr_decay=2"]))


# ---- submit and the HyperDriveRun, against a fake droverd

class FakeConnection:
    """Records every call; answers like droverd for one sweep."""

    def __init__(self, sweep=None):
        self.calls = []
        self.jobs = types.SimpleNamespace(SubmitJob="SubmitJob", GetJob="GetJob",
                                          ListJobs="ListJobs", GetMetrics="GetMetrics")
        self.blobs = types.SimpleNamespace(StatBlob="StatBlob", UploadBlob="UploadBlob")
        self.sweeps = types.SimpleNamespace(SubmitSweep="SubmitSweep", GetSweep="GetSweep",
                                            CancelSweep="CancelSweep")
        self.sweep = sweep
        self.steps = []  # changes to the sweep, one before each GetSweep answer

    def call(self, method, request, **kwargs):
        from drover.v1 import blob_pb2, job_service_pb2

        self.calls.append((method, request))
        if method == "StatBlob":
            return blob_pb2.StatBlobResponse(present=False)
        if method == "SubmitSweep":
            self.sweep = sweep_pb2.Sweep(id="s-00000000000000aa", spec=request.spec)
            return sweep_service_pb2.SubmitSweepResponse(sweep=self.sweep, created=True)
        if method == "GetSweep":
            assert request.sweep_id == self.sweep.id
            if self.steps:
                self.steps.pop(0)(self.sweep)
            return self.sweep
        if method == "CancelSweep":
            self.sweep.status.state = sweep_pb2.SweepStatus.CANCELED
            return self.sweep
        if method == "ListJobs":
            assert request.tag == "drover.sweep=" + self.sweep.id
            return job_service_pb2.ListJobsResponse(jobs=[
                job_pb2.Job(id=t.job_id, spec=job_pb2.JobSpec(experiment="mnist"))
                for t in self.sweep.trials])
        raise AssertionError(method)

    def upload(self, method, requests, **kwargs):
        from drover.v1 import blob_pb2

        self.calls.append((method, None))
        messages = list(requests())
        return blob_pb2.UploadBlobResponse(digest=messages[0].header.digest, created=True)


def fake_experiment(sweep=None):
    ws = types.SimpleNamespace(_connection=FakeConnection(sweep))
    return Experiment(ws, "mnist"), ws._connection


def test_submit_uploads_the_snapshot_then_submits_one_sweep_with_a_key(project):
    exp, conn = fake_experiment()
    c = config(estimator=Estimator(project, entry_script="train.py"))
    hd = exp.submit(c, tags={"team": "nlp"})
    assert [m for m, _ in conn.calls] == ["StatBlob", "UploadBlob", "SubmitSweep"]
    spec = conn.calls[-1][1].spec
    assert spec.idempotency_key.startswith("sdk-")
    assert spec.trial_template.source_snapshot == conn.calls[0][1].digest
    assert spec.trial_template.idempotency_key == ""
    assert dict(spec.trial_template.tags) == {"team": "nlp"}
    assert spec == c.to_sweep_spec("mnist", conn.calls[0][1].digest, {"team": "nlp"},
                                   spec.idempotency_key)
    assert isinstance(hd, HyperDriveRun) and hd.id == "s-00000000000000aa"
    assert hd.experiment is exp

    exp, conn = fake_experiment()
    exp.submit(config(), idempotency_key="mine")
    assert [m for m, _ in conn.calls] == ["SubmitSweep"]
    assert conn.calls[0][1].spec.idempotency_key == "mine"


def test_a_bad_submit_sends_nothing():
    exp, conn = fake_experiment()
    with pytest.raises(ParameterError, match="^tags:"):
        exp.submit(config(), tags={"bad key": 1})
    with pytest.raises(ParameterError, match="^idempotency_key:"):
        exp.submit(config(), idempotency_key="x" * 129)
    with pytest.raises(ParameterError, match="^config:"):
        exp.submit(RandomParameterSampling({"lr": uniform(0, 1)}))
    assert conn.calls == []


def swept():
    """A running sweep with three trials: 1 is best for MAXIMIZE, 2 has no result yet."""
    s = sweep_pb2.Sweep(id="s-00000000000000aa")
    s.spec.primary_metric_name = "accuracy"
    s.spec.primary_metric_goal = sweep_pb2.MAXIMIZE
    s.status.state = sweep_pb2.SweepStatus.RUNNING
    for i, (lr, opt, result) in enumerate([(0.5, "adam", 0.7), (64.0, "sgd", 0.9),
                                           (1e-05, "adam", None)]):
        t = s.trials.add(index=i, job_id=f"j-{10 + i}", job_state=job_pb2.JobStatus.RUNNING)
        t.parameters["lr"].number = lr
        t.parameters["optimizer"].text = opt
        if result is not None:
            t.result = result
            t.intervals = 3
    s.trials[0].stop.rule = "bandit"
    s.trials[0].stop.message = "bandit policy at interval 3"
    s.trials[0].job_state = job_pb2.JobStatus.CANCELED
    s.best_trial_index = 1
    s.best_result = 0.9
    s.trial_count = 3
    return s


def test_children_carry_their_hyperparameters_and_the_best_is_droverds():
    exp, conn = fake_experiment(swept())
    hd = HyperDriveRun(exp, "s-00000000000000aa")
    assert hd.get_status() == "Running"
    children = list(hd.get_children())
    assert [c.id for c in children] == ["j-10", "j-11", "j-12"]
    assert [c.hyperparameters for c in children] == [
        {"lr": 0.5, "optimizer": "adam"}, {"lr": 64, "optimizer": "sgd"},
        {"lr": 1e-05, "optimizer": "adam"}]
    assert isinstance(children[1].hyperparameters["lr"], int)
    assert [c.trial_index for c in children] == [0, 1, 2]
    assert [c.best_primary_metric for c in children] == [0.7, 0.9, None]
    assert children[0].stopped_early == "bandit policy at interval 3"
    assert children[1].stopped_early is None
    best = hd.get_best_run_by_primary_metric()
    assert best.id == "j-11" and best.hyperparameters == {"lr": 64, "optimizer": "sgd"}
    assert hd.get_hyperparameters()["j-12"] == {"lr": 1e-05, "optimizer": "adam"}
    ranked = hd.get_children_sorted_by_primary_metric()
    assert [r["run_id"] for r in ranked] == ["j-11", "j-10", "j-12"]
    assert ranked[0] == {"run_id": "j-11", "hyperparameters": {"lr": 64, "optimizer": "sgd"},
                         "best_primary_metric": 0.9, "status": "Running"}
    assert ranked[1]["status"] == "Canceled"
    assert [r["run_id"] for r in hd.get_children_sorted_by_primary_metric(
        top=1, discard_no_metric=True)] == ["j-11"]
    assert [r["run_id"] for r in hd.get_children_sorted_by_primary_metric(
        reverse=True, discard_no_metric=True)] == ["j-10", "j-11"]
    # For MINIMIZE the lower result ranks first.
    conn.sweep.spec.primary_metric_goal = sweep_pb2.MINIMIZE
    assert [r["run_id"] for r in hd.get_children_sorted_by_primary_metric()] == \
        ["j-10", "j-11", "j-12"]


def test_best_run_is_none_while_no_trial_has_a_result():
    s = swept()
    s.ClearField("best_trial_index")
    s.ClearField("best_result")
    exp, _ = fake_experiment(s)
    hd = HyperDriveRun(exp, "s-00000000000000aa")
    assert hd.get_best_run_by_primary_metric() is None
    assert hd.get_details()["bestTrialIndex"] is None


def set_state(state, trials=None):
    def step(sweep):
        sweep.status.state = state
        for t in sweep.trials:
            if trials is not None and t.job_state == job_pb2.JobStatus.RUNNING:
                t.job_state = trials
    return step


def test_wait_prints_the_trials_until_the_sweep_and_its_trials_ended(capsys):
    exp, conn = fake_experiment(swept())
    hd = HyperDriveRun(exp, "s-00000000000000aa")
    conn.steps = [set_state(sweep_pb2.SweepStatus.RUNNING),
                  set_state(sweep_pb2.SweepStatus.COMPLETED, job_pb2.JobStatus.COMPLETED)]
    details = hd.wait_for_completion(show_output=True, poll_interval=0)
    assert details["status"] == "Completed" and details["bestResult"] == 0.9
    assert conn.steps == []
    out = capsys.readouterr().out
    assert out == (
        "trial 0 j-10: --lr 0.5 --optimizer adam\n"
        "trial 0 j-10: Canceled, accuracy 0.7 (stopped early: bandit policy at interval 3)\n"
        "trial 1 j-11: --lr 64 --optimizer sgd\n"
        "trial 2 j-12: --lr 1e-05 --optimizer adam\n"
        "trial 1 j-11: Completed, accuracy 0.9\n"
        "trial 2 j-12: Completed, no accuracy\n"
        "sweep s-00000000000000aa: Completed (); best: trial 1 j-11, accuracy 0.9\n")


def test_wait_for_a_canceled_sweep_waits_for_its_trials_then_raises():
    exp, conn = fake_experiment(swept())
    hd = HyperDriveRun(exp, "s-00000000000000aa")
    hd.cancel()
    assert [m for m, _ in conn.calls][-1] == "CancelSweep"
    # Canceled, its trials still running for two more answers.
    conn.steps = [set_state(sweep_pb2.SweepStatus.CANCELED),
                  set_state(sweep_pb2.SweepStatus.CANCELED),
                  set_state(sweep_pb2.SweepStatus.CANCELED, job_pb2.JobStatus.CANCELED)]
    with pytest.raises(RunFailedError, match="s-00000000000000aa canceled"):
        hd.wait_for_completion(poll_interval=0)
    assert conn.steps == []
    assert hd.wait_for_completion(raise_on_error=False)["status"] == "Canceled"


def test_wait_rides_out_a_droverd_restart(monkeypatch):
    from drover import _connection
    from drover.exceptions import ServerError

    monkeypatch.setattr(_connection, "RECONNECT_DELAYS", (0, 0, 0))
    exp, conn = fake_experiment(swept())
    hd = HyperDriveRun(exp, "s-00000000000000aa")

    def unavailable(sweep):
        raise ServerError("UNAVAILABLE", "cannot reach droverd")

    conn.steps = [unavailable, unavailable,
                  set_state(sweep_pb2.SweepStatus.COMPLETED, job_pb2.JobStatus.COMPLETED)]
    assert hd.wait_for_completion(poll_interval=0)["status"] == "Completed"
    conn.steps = [unavailable] * 4
    with pytest.raises(ServerError, match="cannot reach droverd"):
        hd.wait_for_completion(poll_interval=0)


@pytest.mark.parametrize("interval", [-1, NAN, INF, 3601, "1", True, None])
def test_a_bad_poll_interval_is_refused_before_any_call(interval):
    exp, conn = fake_experiment(swept())
    hd = HyperDriveRun(exp, "s-00000000000000aa")
    calls = len(conn.calls)
    with pytest.raises(ParameterError, match="^poll_interval:"):
        hd.wait_for_completion(poll_interval=interval)
    assert len(conn.calls) == calls


@pytest.mark.parametrize("top", [-1, 1.5, True, "3"])
def test_a_bad_top_is_refused(top):
    exp, _ = fake_experiment(swept())
    with pytest.raises(ParameterError, match="^top:"):
        HyperDriveRun(exp, "s-00000000000000aa").get_children_sorted_by_primary_metric(top=top)


@pytest.mark.parametrize("bad", ["j-1", "s-123", "", None, 7, "s-00000000000000AA"])
def test_a_bad_sweep_id_is_refused(bad):
    exp, conn = fake_experiment(swept())
    with pytest.raises(ParameterError, match="^run_id:"):
        HyperDriveRun(exp, bad)
    assert conn.calls == []
