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


class Run:
    """The current job's run. Get it with `Run.get_context()`; one per process."""

    _context = None
    _context_lock = threading.Lock()

    def __init__(self, path=None, stream=None):
        # Inside Drover: DROVER_METRICS_DIR and DROVER_RANK name this rank's file.
        self._lock = threading.Lock()
        self._steps = {}  # name -> next automatic step
        self._fd = None
        self._stream = stream
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
        self.rank = int(os.environ.get("DROVER_RANK", "0"))
        self.world_size = int(os.environ.get("DROVER_WORLD_SIZE", "1"))

    @classmethod
    def get_context(cls):
        """The run of this process (created on first use)."""
        with cls._context_lock:
            if cls._context is None:
                cls._context = cls()
            return cls._context

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
        """Sets run tags (text), for example `run.set_tags({"optimizer": "adam"})`."""
        merged = dict(tags or {})
        merged.update(more)
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
            self._emit([{"tags": merged, "t": time.time()}],
                       "tags " + " ".join(f"{k}={v}" for k, v in merged.items()))

    def set_tag(self, name, value):
        self.set_tags({name: value})
