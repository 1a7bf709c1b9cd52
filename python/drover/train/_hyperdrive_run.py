"""A submitted sweep of drover.train.hyperdrive (its public names are imported from there):
the submit itself, the HyperDriveRun that follows it and its trials as runs."""

import re
import sys
import time
from typing import Any, Dict, Iterator, List, Optional

from drover.exceptions import ParameterError, RunFailedError, ServerError
from drover.run import Run
from drover.train._hyperdrive_space import _EXACT_INTEGERS, _integer, _number_text, _real

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


def submit(experiment, config: "HyperDriveConfig", tags, idempotency_key: str,
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
