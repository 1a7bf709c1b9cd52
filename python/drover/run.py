"""`Run`: the handle a training script logs metrics through (see the package docstring).

File format (one JSON object per line, written with a single `write(2)` so that lines of
threads never interleave), read by drover-agent and droverd:

    {"n": "loss", "s": 3, "t": 1764170000.123, "v": 0.25}
    {"tags": {"optimizer": "adam"}, "t": 1764170000.2}

`n` metric name, `s` step (an integer >= 0), `t` seconds since the epoch, `v` the value: a
JSON number, or the string "NaN", "Infinity" or "-Infinity".
"""

import json
import math
import os
import sys
import threading
import time
from typing import Any, Dict, Iterable, List, Optional

from drover.exceptions import DroverError, ParameterError

MAX_NAME_BYTES = 256
MAX_TAG_BYTES = 1024


class MetricsError(ValueError):
    """A metric call with a bad argument; the message names it and says what to do."""


def _check_name(name, what="name"):
    if not isinstance(name, str) or not name:
        raise MetricsError(f"metric {what} must be a non-empty string, got {name!r}")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise MetricsError(f"metric {what} {name[:40]!r}... is over {MAX_NAME_BYTES} bytes")
    if any(ord(c) < 0x20 or c == "\x7f" for c in name):
        raise MetricsError(f"metric {what} {name!r} contains a control character")
    return name


def _number(name, value):
    """The value as a float (bools, ints, numpy and torch scalars included)."""
    if isinstance(value, str) or value is None:
        raise MetricsError(
            f"metric {name!r}: value {value!r} is not a number; log numbers (use set_tags for text)")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MetricsError(
            f"metric {name!r}: value of type {type(value).__name__} is not a number") from None


def _json_value(v):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


class _JobExperiment:
    """The experiment of the run a job script runs in (`run.experiment.name`)."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"Experiment({self.name!r})"


def _not_remote(method):
    raise DroverError(f"{method}: this Run is the job's own (Run.get_context()); reattach to a "
                      "run from a client with Run(Experiment(ws, NAME), RUN_ID)")


class Run:
    """A run, in one of two roles:

    - In a job: `Run.get_context()`, the handle a training script logs metrics through
      (one per process). `run.id` is the job's id, `run.experiment.name` its experiment
      ($DROVER_EXPERIMENT) and `run.get_tags()` its tags ($DROVER_TAGS, a JSON object, plus
      what the script set); no grpcio needed.
    - In a client: returned by `Experiment.submit`, or reattached with
      `Run(experiment, run_id)` (raises ServerError NOT_FOUND for an unknown id); tracks
      the run through droverd (status, output, metrics, files, cancel).
    """

    _context = None
    _context_lock = threading.Lock()

    def __init__(self, experiment=None, run_id=None, *, path=None, stream=None, _job=None):
        self._lock = threading.Lock()
        self._steps = {}  # name -> next automatic step
        self._fd = None
        self._stream = stream
        self._tags = {}  # set with set_tags by this process
        self._remote = None
        if isinstance(experiment, (str, os.PathLike)) and run_id is None and path is None:
            # Run(PATH): the metrics file, as the first positional parameter was before Run
            # also reattached to runs.
            experiment, path = None, os.fspath(experiment)
        if experiment is not None:
            from drover._remote import RemoteRun, normalize_id

            if run_id is None:
                raise ParameterError("run_id: Run(experiment, run_id) needs the run's id, "
                                     "for example 'j-42'")
            self.experiment = experiment
            self._remote = RemoteRun(experiment.workspace._connection, normalize_id(run_id),
                                     _job)
            self.id = self.job_id = self._remote.id
            self.path = None
            self.rank = 0
            self.world_size = 1
            return
        # Inside Drover: DROVER_METRICS_DIR and DROVER_RANK name this rank's file.
        if path is None:
            directory = os.environ.get("DROVER_METRICS_DIR")
            rank = os.environ.get("DROVER_RANK", "0")
            if directory:
                path = os.path.join(directory, f"rank-{rank}.metrics")
        self.path = path
        if path is not None:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        elif stream is None:
            self._stream = sys.stdout
        self.job_id = os.environ.get("DROVER_JOB_ID", "")
        self.id = self.job_id
        self.experiment = _JobExperiment(os.environ.get("DROVER_EXPERIMENT", ""))
        self.rank = int(os.environ.get("DROVER_RANK", "0"))
        self.world_size = int(os.environ.get("DROVER_WORLD_SIZE", "1"))
        # A task of a job array (drover submit --array): its array's id, its index and the
        # array's size; None, None, 0 for a job that is no array task.
        self.array_id: Optional[str] = os.environ.get("DROVER_ARRAY_ID") or None
        index = os.environ.get("DROVER_ARRAY_INDEX", "")
        self.array_index: Optional[int] = int(index) if index.isdigit() else None
        size = os.environ.get("DROVER_ARRAY_SIZE", "")
        self.array_size: int = int(size) if size.isdigit() else 0

    @classmethod
    def get_context(cls):
        """The run of this process (created on first use). Needs only the standard library."""
        with cls._context_lock:
            if cls._context is None:
                cls._context = cls()
            return cls._context

    @property
    def input_datasets(self) -> Dict[str, str]:
        """In a job: the estimator's `inputs` by name (data_reference_name) -> their local
        paths ($DROVER_INPUT_<name>). Empty outside Drover and in a client."""
        prefix = "DROVER_INPUT_"
        if self._remote is not None:
            return {}
        return {k[len(prefix):]: v for k, v in os.environ.items()
                if k.startswith(prefix) and len(k) > len(prefix)}

    @property
    def offline(self):
        """True outside Drover: calls print instead of recording."""
        return self._fd is None

    def _next_step(self, name, step):
        if step is None:
            step = self._steps.get(name, 0)
        elif isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise MetricsError(f"metric {name!r}: step {step!r} is not an integer >= 0")
        self._steps[name] = step + 1
        return step

    def _emit(self, records, text):
        if self._remote is not None:
            raise DroverError("log: metrics are logged by the job's own script "
                              "(Run.get_context().log(...)), not from a client")
        if self._fd is None:
            print(text, file=self._stream, flush=True)
            return
        data = "".join(json.dumps(r, separators=(",", ":"), allow_nan=False) + "\n"
                       for r in records).encode()
        view = memoryview(data)
        while view:  # a regular file takes it all at once; loop for the rule's sake
            written = os.write(self._fd, view)
            view = view[written:]

    def log(self, name, value, step=None, description=""):
        """Records `value` (a number) of metric `name` at `step` (default: the name's next)."""
        _check_name(name)
        v = _number(name, value)
        with self._lock:
            s = self._next_step(name, step)
            self._emit([{"n": name, "s": s, "t": time.time(), "v": _json_value(v)}],
                       f"metric {name}={v:g} step={s}")

    def log_list(self, name, values, description=""):
        """Records each of `values` as the name's next steps."""
        _check_name(name)
        numbers = [_number(name, v) for v in values]
        with self._lock:
            now = time.time()
            records = [{"n": name, "s": self._next_step(name, None), "t": now,
                        "v": _json_value(v)} for v in numbers]
            if records:
                self._emit(records, f"metric {name}=[{', '.join(f'{v:g}' for v in numbers)}]")

    def log_row(self, name, description="", **columns):
        """Records one row of table `name`: each column `c` is metric `name/c`, all at the
        table's next step."""
        _check_name(name)
        if not columns:
            raise MetricsError(f"metric {name!r}: log_row needs at least one column=value")
        values = {c: _number(f"{name}/{c}", v) for c, v in columns.items()}
        with self._lock:
            s = self._next_step(name, None)
            now = time.time()
            records = [{"n": _check_name(f"{name}/{c}"), "s": s, "t": now, "v": _json_value(v)}
                       for c, v in values.items()]
            text = " ".join(f"{c}={v:g}" for c, v in values.items())
            self._emit(records, f"metric {name} row {s}: {text}")

    def set_tags(self, tags=None, **more):
        """Sets run tags (text), for example `run.set_tags({"optimizer": "adam"})`. In a job
        they are recorded with the metrics; from a client droverd changes the run's tags, as
        tag() does for one."""
        merged = dict(tags or {})
        merged.update(more)
        if self._remote is not None:
            self._remote.tag({str(k): "" if v is None else str(v) for k, v in merged.items()})
            return
        for k, v in merged.items():
            _check_name(k, "tag name")
            if not isinstance(v, str):
                v = str(v)
            if len(v.encode()) > MAX_TAG_BYTES:
                raise MetricsError(f"tag {k!r}: value is over {MAX_TAG_BYTES} bytes")
            merged[k] = v
        if not merged:
            return
        with self._lock:
            self._tags.update(merged)
            self._emit([{"tags": merged, "t": time.time()}],
                       "tags " + " ".join(f"{k}={v}" for k, v in merged.items()))

    def set_tag(self, name, value):
        self.set_tags({name: value})

    def get_tags(self) -> Dict[str, str]:
        """The run's tags. In a job: $DROVER_TAGS (a JSON object) and what this process set.
        In a client: the tags given at submit and those the script set. Raises ServerError
        (client)."""
        if self._remote is None:
            tags = {}
            try:
                given = json.loads(os.environ.get("DROVER_TAGS", "{}"))
                if isinstance(given, dict):
                    tags.update({str(k): str(v) for k, v in given.items()})
            except ValueError:
                pass
            tags.update(self._tags)
            return tags
        tags = dict(self._remote.refresh().spec.tags)
        tags.update(self._remote.metrics(None, None)[1])
        return tags

    # ---- Client side: the run as droverd knows it (grpcio needed).

    def _client(self, method):
        if self._remote is None:
            _not_remote(method)
        return self._remote

    def get_status(self) -> str:
        """"Queued", "Preparing", "Starting", "Running", "Finalizing", "CancelRequested",
        "Completed", "Failed" or "Canceled". Raises ServerError."""
        from drover._remote import state_name

        return state_name(self._client("get_status").refresh().status)

    def get_details(self) -> Dict[str, Any]:
        """The run as a dict: runId, status, experiment, owner, reason, message, cause,
        attempt, nodes, tags, times (createTimeUtc, startTimeUtc, endTimeUtc), exits (how each
        rank ended), outputsDigest and spec (the effective JobSpec). Raises ServerError."""
        return self._client("get_details").details()

    def wait_for_completion(self, show_output: bool = False,
                            raise_on_error: bool = True) -> Dict[str, Any]:
        """Waits until the run ended and returns get_details(). With `show_output`, prints
        every rank's stdout (to sys.stdout) and stderr (to sys.stderr) live, each line
        prefixed with `[rank N]` when the run has several processes. Raises RunFailedError
        with droverd's message (naming the first failing rank) when the run failed or was
        canceled and `raise_on_error`; ServerError when droverd cannot be reached."""
        return self._client("wait_for_completion").wait(show_output, raise_on_error)

    def get_metrics(self, name: Optional[str] = None,
                    rank: Optional[int] = None) -> Dict[str, Any]:
        """The metrics the script logged: name -> the values by step (a list), or the value
        when there is one. `rank`: whose values (default: the lowest rank that logged each
        name). Raises ServerError."""
        return self._client("get_metrics").metrics(name, rank)[0]

    def get_file_names(self) -> List[str]:
        """The files of the run's outputs/ folder ("outputs/model.pt"), uploaded when the run
        ended. Raises DroverError while it has not ended, ServerError."""
        return self._client("get_file_names").file_names()

    def download_file(self, name: str, output_file_path: Optional[str] = None) -> str:
        """Writes run file `name` ("outputs/model.pt") to `output_file_path` (a file, or a
        folder to put it in; default: its base name here). Returns the path written. Raises
        ServerError NOT_FOUND for a file the run does not have."""
        return self._client("download_file").download_file(name, output_file_path)

    def download_files(self, prefix: str = "outputs", output_directory: Optional[str] = None,
                       append_prefix: bool = True) -> List[str]:
        """Writes the run files whose names start with `prefix` under `output_directory`
        (default: here), as `outputs/...` (without the prefix when not `append_prefix`).
        Returns the paths written."""
        return self._client("download_files").download_files(prefix, output_directory,
                                                             append_prefix)

    def cancel(self, reason: str = "") -> None:
        """Asks droverd to cancel the run (only its owner and admins may); returns at once,
        wait_for_completion(raise_on_error=False) waits for the end. Raises ServerError."""
        self._client("cancel").cancel(reason)

    def tag(self, key: str, value: Optional[str] = None) -> None:
        """Sets tag `key` to `value` (its str; None: "") on the run. In a job: as set_tag.
        From a client: droverd changes the submitted run's tags (only its owner and admins
        may), durably, before this returns; get_tags() and get_details() show it. Raises
        ServerError: INVALID_ARGUMENT naming the tag ("tags['bad key']: ...") for a key or
        value outside the rules of submit's tags or a 65th tag, PERMISSION_DENIED for
        another user's run."""
        value = "" if value is None else str(value)
        if self._remote is None:
            self.set_tag(key, value)
            return
        self._remote.tag({str(key): value})

    def remove_tags(self, keys: Iterable[str]) -> None:
        """From a client: removes the tags `keys` from the run (a key it does not have is no
        error), durably, before this returns; only its owner and admins may. Raises
        ServerError; DroverError in a job, whose tags are changed from a client."""
        if isinstance(keys, str):
            keys = [keys]
        self._client("remove_tags").tag({}, remove=[str(k) for k in keys])

    def show(self, interval: float = 2.0) -> None:
        """In Jupyter: shows the run as a table (status, reason, nodes, the latest value of
        each metric) and updates it in place every `interval` seconds until the run ended.
        Needs IPython (present in every notebook). Raises ServerError."""
        from IPython.display import HTML, display

        from drover._remote import TERMINAL

        remote = self._client("show")
        handle = display(HTML(remote.html()), display_id=True)
        while remote.job.status.state not in TERMINAL:
            time.sleep(interval)
            handle.update(HTML(remote.html()))

    def _repr_html_(self):
        if self._remote is None:
            return None
        return self._remote.html()

    def __repr__(self):
        if self._remote is None:
            return f"Run(id={self.id!r}, rank={self.rank})"
        return f"Run(id={self.id!r}, experiment={self.experiment.name!r})"
