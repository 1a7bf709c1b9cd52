"""End-to-end tests of drover.train.hyperdrive against a real droverd and drover-agent of the
build (sdk_cluster.py): a HyperDriveConfig submitted with Experiment.submit runs its trials
in runc containers, and the HyperDriveRun finds the best one. Root only; run by ctest as
python_sdk_sweep_e2e_test (labels e2e, sqlite-only) with PYTHONPATH=<build>/python and
DROVER_BUILD_DIR=<build>.
"""

import contextlib
import io
import os
import textwrap
import time

import pytest

from drover import Estimator, Experiment, RunFailedError, ServerError
from drover.train.hyperdrive import (BanditPolicy, GridParameterSampling, HyperDriveConfig,
                                     HyperDriveRun, PrimaryMetricGoal, RandomParameterSampling,
                                     choice, quniform, uniform)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs jobs in runc containers: root only")


@pytest.fixture(scope="module")
def cluster():
    from sdk_cluster import started_cluster

    yield from started_cluster()


def write_project(tmp_path, script: str) -> str:
    folder = tmp_path / "project"
    folder.mkdir(exist_ok=True)
    (folder / "train.py").write_text(textwrap.dedent(script))
    return str(folder)


# Logs a known function of its parameters at three steps; the last value is the best.
OBJECTIVE = """\
import argparse, drover
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
parser.add_argument("--x", type=float)
parser.add_argument("--width", type=int)
parser.add_argument("--opt")
args = parser.parse_args()
run = drover.Run.get_context()
target = -(args.x - 3.0) ** 2 - (0.5 if args.opt == "sgd" else 0.0) + args.width / 1000.0
for step in range(args.epochs):
    run.log("score", target - (args.epochs - 1 - step))
print("x", args.x, "width", args.width, "opt", args.opt, "score", target, flush=True)
"""


def objective(p):
    return -(p["x"] - 3.0) ** 2 - (0.5 if p["opt"] == "sgd" else 0.0) + p["width"] / 1000.0


def test_a_random_sweep_finds_the_trial_with_the_best_logged_value(cluster, tmp_path):
    ws = cluster.ws
    exp = Experiment(ws, "sdk-sweep")
    est = Estimator(source_directory=write_project(tmp_path, OBJECTIVE), entry_script="train.py",
                    script_params={"--epochs": 3})
    sampling = RandomParameterSampling({"--x": uniform(0, 6), "width": quniform(0, 64, 16),
                                        "opt": choice("adam", "sgd")}, seed=11)
    config = HyperDriveConfig(estimator=est, hyperparameter_sampling=sampling,
                              primary_metric_name="score",
                              primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                              max_total_runs=4, max_concurrent_runs=2, max_duration_minutes=10)
    started = time.monotonic()
    hd = exp.submit(config, tags={"purpose": "sweep-test"}, idempotency_key="sweep-e2e-1")
    assert hd.id.startswith("s-")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        details = hd.wait_for_completion(show_output=True, poll_interval=0.5)
    printed = out.getvalue()
    assert details["status"] == "Completed", (details, printed, cluster.logs())
    assert details["reason"] == "TRIAL_LIMIT trials=4"
    assert hd.get_status() == "Completed"

    children = list(hd.get_children())
    assert [c.trial_index for c in children] == [0, 1, 2, 3]
    assert len({c.id for c in children}) == 4
    for child in children:
        p = child.hyperparameters
        assert sorted(p) == ["opt", "width", "x"], p
        assert 0 <= p["x"] <= 6 and p["width"] in (0, 16, 32, 48, 64) and \
            p["opt"] in ("adam", "sgd")
        assert isinstance(p["width"], int) and isinstance(p["opt"], str)
        assert child.get_status() == "Completed"
        # The value the script computed from its arguments is what the test computes.
        assert child.get_metrics()["score"] == [objective(p) - 2, objective(p) - 1,
                                                objective(p)]
        assert child.best_primary_metric == objective(p)
        d = child.get_details()
        assert d["hyperparameters"] == p and d["trialIndex"] == child.trial_index
        assert d["experiment"] == "sdk-sweep"
        assert d["tags"]["purpose"] == "sweep-test" and d["tags"]["drover.sweep"] == hd.id
        args = [a["value"] for a in d["spec"]["arguments"]]
        assert args[:2] == ["--epochs", "3"] and args[2::2] == ["--opt", "--width", "--x"]
        assert f"trial {child.trial_index} {child.id}: Completed, score {objective(p):g}" \
            in printed
    # The seed decides the trials: all four draws differ.
    assert len({c.hyperparameters["x"] for c in children}) == 4

    best = hd.get_best_run_by_primary_metric()
    expected = max(children, key=lambda c: (objective(c.hyperparameters), -c.trial_index))
    assert best.id == expected.id and best.hyperparameters == expected.hyperparameters
    assert details["bestResult"] == objective(expected.hyperparameters)
    assert printed.endswith(f"best: trial {expected.trial_index} {expected.id}, score "
                            f"{objective(expected.hyperparameters):g}\n"), printed
    ranked = hd.get_children_sorted_by_primary_metric()
    assert [r["run_id"] for r in ranked] == \
        [c.id for c in sorted(children, key=lambda c: (-objective(c.hyperparameters),
                                                        c.trial_index))]
    assert hd.get_metrics()[best.id]["score"][-1] == objective(best.hyperparameters)

    # The same key is the same sweep; a reattached HyperDriveRun sees it all.
    again = exp.submit(config, tags={"purpose": "sweep-test"}, idempotency_key="sweep-e2e-1")
    assert again.id == hd.id
    reattached = HyperDriveRun(exp, hd.id)
    assert reattached.get_best_run_by_primary_metric().id == best.id
    assert reattached.get_hyperparameters() == {c.id: c.hyperparameters for c in children}
    # Another key is another sweep; the same seed draws the same trials.
    other = exp.submit(config, idempotency_key="sweep-e2e-2")
    assert other.id != hd.id
    other.wait_for_completion()
    assert [c.hyperparameters for c in other.get_children()] == \
        [c.hyperparameters for c in children]
    assert time.monotonic() - started < 60, "the sweeps took over a minute"


SLEEPER = """\
import argparse, time, drover
parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int)
args = parser.parse_args()
run = drover.Run.get_context()
run.log("score", args.n)
time.sleep(300)
"""


def test_a_canceled_sweep_starts_nothing_more_and_cancels_its_trials(cluster, tmp_path):
    exp = Experiment(cluster.ws, "sdk-sweep")
    est = Estimator(source_directory=write_project(tmp_path, SLEEPER), entry_script="train.py")
    config = HyperDriveConfig(estimator=est,
                              hyperparameter_sampling=GridParameterSampling(
                                  {"n": choice(1, 2, 3, 4, 5, 6)}),
                              primary_metric_name="score",
                              primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
                              max_concurrent_runs=2)
    hd = exp.submit(config)
    assert hd.get_details()["spec"]["max_total_trials"] == 6
    deadline = time.monotonic() + 60
    while hd.get_best_run_by_primary_metric() is None:
        assert time.monotonic() < deadline, (hd.get_details(), cluster.logs())
        time.sleep(0.3)
    hd.cancel()
    with pytest.raises(RunFailedError, match="canceled"):
        hd.wait_for_completion(poll_interval=0.3)
    details = hd.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Canceled"
    children = list(hd.get_children())
    assert 1 <= len(children) <= 2, [c.id for c in children]
    assert [c.hyperparameters["n"] for c in children] == [1, 2][:len(children)]
    # wait_for_completion returned once the trials' jobs ended too.
    assert [c.get_status() for c in children] == ["Canceled"] * len(children)
    assert len(list(hd.get_children())) == len(children)


def test_what_only_droverd_checks_comes_back_as_its_error_naming_the_field(cluster):
    exp = Experiment(cluster.ws, "sdk-sweep")
    # 1024 arguments are a valid job; with the trial's `--n VALUE` appended they are not.
    est = Estimator(entry_script="train.py", arguments=["a"] * 1024)
    config = HyperDriveConfig(estimator=est,
                              hyperparameter_sampling=RandomParameterSampling(
                                  {"n": choice(1, 2)}, seed=3),
                              primary_metric_name="score",
                              primary_metric_goal=PrimaryMetricGoal.MAXIMIZE, max_total_runs=2)
    with pytest.raises(ServerError) as e:
        exp.submit(config)
    assert e.value.code == "INVALID_ARGUMENT", e.value
    assert e.value.message.startswith("sweep.search_space: with the parameters appended"), \
        e.value.message
    assert "1026 arguments are too many" in e.value.message


STEADY = """\
import argparse, time, drover
parser = argparse.ArgumentParser()
parser.add_argument("--level", type=int)
args = parser.parse_args()
run = drover.Run.get_context()
for step in range(3):
    run.log("score", args.level)
if args.level < 10:
    time.sleep(300)  # only the bandit policy ends this one
"""


def test_the_bandit_policy_stops_a_trial_and_the_sdk_shows_why(cluster, tmp_path):
    exp = Experiment(cluster.ws, "sdk-sweep")
    est = Estimator(source_directory=write_project(tmp_path, STEADY), entry_script="train.py")
    # One trial at a time: trial 0 logs 10 three times and ends; trial 1 logs 1, more than
    # slack_amount 2 below 10 at interval 1, so it is stopped there.
    config = HyperDriveConfig(estimator=est,
                              hyperparameter_sampling=GridParameterSampling(
                                  {"level": choice(10, 1)}),
                              policy=BanditPolicy(slack_amount=2),
                              primary_metric_name="score",
                              primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                              max_concurrent_runs=1)
    hd = exp.submit(config)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        details = hd.wait_for_completion(show_output=True, poll_interval=0.3)
    printed = out.getvalue()
    assert details["status"] == "Completed" and details["reason"] == "GRID_DONE trials=2", \
        (details, printed, cluster.logs())
    first, second = hd.get_children()
    assert first.hyperparameters == {"level": 10} and first.get_status() == "Completed"
    assert first.stopped_early is None and first.best_primary_metric == 10
    assert second.hyperparameters == {"level": 1} and second.best_primary_metric == 1
    assert second.stopped_early.startswith("bandit policy at interval 1"), second.stopped_early
    d = second.get_details()
    assert d["status"] == "Canceled" and d["cause"] == "EARLY_TERMINATED", d
    assert f"trial 1 {second.id}: Canceled, score 1 (stopped early: bandit policy at " \
        "interval 1" in printed, printed
    assert hd.get_best_run_by_primary_metric().id == first.id
