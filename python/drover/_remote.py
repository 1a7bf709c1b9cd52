"""What a client-side Run does through droverd: status, logs, metrics, outputs, cancel.
Internal (drover.run.Run delegates here); imports grpcio and the stubs.
"""

import hashlib
import html
import os
import shutil
import sys
import tarfile
import tempfile
import time
from typing import Dict, Iterable, List, Optional

from google.protobuf import json_format

from drover._connection import RECONNECT_DELAYS
from drover.exceptions import DroverError, ParameterError, RunFailedError, ServerError
from drover.v1 import agent_pb2, blob_pb2, job_pb2, job_service_pb2

STATE_NAMES = {
    "QUEUED": "Queued", "PREPARING": "Preparing", "STARTING": "Starting",
    "RUNNING": "Running", "FINALIZING": "Finalizing", "CANCEL_REQUESTED": "CancelRequested",
    "COMPLETED": "Completed", "FAILED": "Failed", "CANCELED": "Canceled",
    "STATE_UNSPECIFIED": "NotStarted",
}
TERMINAL = (job_pb2.JobStatus.COMPLETED, job_pb2.JobStatus.FAILED, job_pb2.JobStatus.CANCELED)


def normalize_id(run_id) -> str:
    """"42" and 42 are taken for "j-42". Raises ParameterError naming run_id."""
    text = str(run_id) if isinstance(run_id, int) and not isinstance(run_id, bool) else run_id
    if not isinstance(text, str) or not text:
        raise ParameterError(f"run_id: {run_id!r} is not a run id such as 'j-42'")
    if text.isdigit():
        text = "j-" + text
    if not (text.startswith("j-") and text[2:].isdigit()):
        raise ParameterError(f"run_id: {run_id!r} is not a run id such as 'j-42'")
    return text


def state_name(status) -> str:
    return STATE_NAMES[job_pb2.JobStatus.State.Name(status.state)]


class RemoteRun:
    """One run as droverd knows it. Not thread-safe (one per Run)."""

    def __init__(self, conn, run_id: str, job=None):
        self.conn = conn
        self.id = run_id
        self.job = job if job is not None else self.refresh()
        self._outputs_tar: Optional[str] = None

    def refresh(self):
        self.job = self.conn.call(self.conn.jobs.GetJob,
                                  job_service_pb2.GetJobRequest(job_id=self.id))
        return self.job

    def details(self) -> dict:
        job = self.refresh()
        s = job.status
        out = {
            "runId": job.id,
            "status": state_name(s),
            "experiment": job.spec.experiment,
            "owner": job.owner,
            "reason": s.reason,
            "message": s.message,
            "cause": job_pb2.JobStatus.Cause.Name(s.cause) if s.cause else "",
            "attempt": s.attempt,
            "nodes": list(s.nodes),
            "tags": dict(job.spec.tags),
            "createTimeUtc": job.create_time.ToJsonString() if job.HasField("create_time") else None,
            "startTimeUtc": s.start_time.ToJsonString() if s.HasField("start_time") else None,
            "endTimeUtc": s.end_time.ToJsonString() if s.HasField("end_time") else None,
            "exits": [json_format.MessageToDict(e, preserving_proto_field_name=True)
                      for e in s.exits],
            "outputsDigest": s.outputs_digest,
            "spec": json_format.MessageToDict(job.spec, preserving_proto_field_name=True),
        }
        return out

    # ---- waiting and output

    def _watch_until_ended(self):
        """The job once it is terminal, following WatchJob (reconnecting after droverd
        restarts)."""
        failures = 0
        while True:
            try:
                for answer in self.conn.stream(self.conn.jobs.WatchJob,
                                               job_service_pb2.WatchJobRequest(job_id=self.id)):
                    failures = 0
                    self.job = answer.job
                    if answer.job.status.state in TERMINAL:
                        return self.job
            except ServerError as e:
                if e.code not in ("UNAVAILABLE", "CANCELLED") or failures >= len(RECONNECT_DELAYS):
                    raise
                time.sleep(RECONNECT_DELAYS[failures])
                failures += 1
            job = self.refresh()
            if job.status.state in TERMINAL:
                return job

    def _stream_logs(self, out, err):
        """Prints every rank's stdout and stderr as it arrives, line by line, prefixed with
        `[rank N]` when the run has several processes; returns when the job ended."""
        spec = self.job.spec
        world = max(spec.node_count, 1) * max(spec.process_count_per_node, 1)
        printed: Dict[tuple, int] = {}  # (attempt, rank, stream) -> bytes printed
        partial: Dict[tuple, bytes] = {}
        attempt_seen = 0
        failures = 0

        def emit(rank, stream, text: bytes, final=False):
            key = (rank, stream)
            data = partial.pop(key, b"") + text
            lines = data.split(b"\n")
            rest = lines.pop()
            if final and rest:
                lines.append(rest)
                rest = b""
            if rest:
                partial[key] = rest
            target = err if stream == agent_pb2.STDERR else out
            for line in lines:
                prefix = f"[rank {rank}] " if world > 1 else ""
                target.write(prefix + line.decode("utf-8", "replace") + "\n")
            target.flush()

        while True:
            request = job_service_pb2.StreamLogsRequest(job_id=self.id, follow=True,
                                                        from_attempt=attempt_seen)
            try:
                for answer in self.conn.stream(self.conn.jobs.StreamLogs, request):
                    failures = 0
                    if answer.HasField("next_attempt"):
                        attempt_seen = answer.next_attempt.attempt
                        for rank, stream in list(partial):
                            emit(rank, stream, b"", final=True)
                        out.write(f"--- run {self.id}: attempt {attempt_seen}\n")
                        continue
                    if answer.data:
                        attempt_seen = answer.attempt
                        key = (answer.attempt, answer.rank, answer.stream)
                        have = printed.get(key, 0)
                        skip = have - answer.offset
                        if skip < len(answer.data):
                            emit(answer.rank, answer.stream, answer.data[max(skip, 0):])
                            printed[key] = answer.offset + len(answer.data)
                    if answer.HasField("job"):
                        self.job = answer.job
                for rank, stream in list(partial):
                    emit(rank, stream, b"", final=True)
                return
            except ServerError as e:
                if e.code not in ("UNAVAILABLE", "CANCELLED") or failures >= len(RECONNECT_DELAYS):
                    raise
                time.sleep(RECONNECT_DELAYS[failures])
                failures += 1

    def wait(self, show_output: bool, raise_on_error: bool) -> dict:
        if show_output:
            self._stream_logs(sys.stdout, sys.stderr)
        job = self._watch_until_ended()
        s = job.status
        if raise_on_error and s.state != job_pb2.JobStatus.COMPLETED:
            raise RunFailedError(self.id, state_name(s),
                                 job_pb2.JobStatus.Cause.Name(s.cause), s.message)
        return self.details()

    # ---- metrics

    def metrics(self, name: Optional[str], rank: Optional[int]):
        """(name -> value or values, tags the script set)."""
        series: Dict[str, Dict[int, List[tuple]]] = {}
        tags: Dict[str, str] = {}
        token = ""
        while True:
            answer = self.conn.call(self.conn.jobs.GetMetrics, job_service_pb2.GetMetricsRequest(
                job_id=self.id, names=[name] if name else [], page_token=token,
                sources=[job_service_pb2.MetricSeries.USER]))
            tags.update(answer.tags)
            for s in answer.series:
                points = series.setdefault(s.name, {}).setdefault(s.rank, [])
                points.extend(zip(s.steps, s.values))
            token = answer.next_page_token
            if not token:
                break
        result = {}
        for metric, by_rank in series.items():
            if rank is not None:
                if rank not in by_rank:
                    continue
                chosen = by_rank[rank]
            else:
                chosen = by_rank[min(by_rank)]
            values = [v for _, v in sorted(chosen, key=lambda p: p[0])]
            result[metric] = values[0] if len(values) == 1 else values
        return result, tags

    # ---- outputs

    def _outputs(self) -> Optional[str]:
        """The path of the downloaded outputs tar, None when the run has no outputs.
        Raises DroverError while the run has not ended."""
        if self._outputs_tar is not None:
            return self._outputs_tar
        job = self.refresh()
        s = job.status
        if s.state not in TERMINAL:
            raise DroverError(f"run {self.id} is {state_name(s)}; its outputs are uploaded "
                              "when it ends (wait_for_completion() first)")
        if not s.outputs_digest:
            return None
        fd, path = tempfile.mkstemp(prefix=f"drover-{self.id}-outputs-", suffix=".tar")
        written = 0
        digest = hashlib.sha256()
        failures = 0
        try:
            with os.fdopen(fd, "wb") as f:
                while True:
                    try:
                        for chunk in self.conn.stream(
                                self.conn.blobs.DownloadBlob,
                                blob_pb2.DownloadBlobRequest(digest=s.outputs_digest,
                                                             offset=written, job_id=self.id)):
                            skip = written - chunk.offset
                            if skip < 0:
                                raise DroverError(f"droverd sent bytes from {chunk.offset}, "
                                                  f"expected {written}")
                            data = chunk.chunk[skip:]
                            f.write(data)
                            digest.update(data)
                            written += len(data)
                        break
                    except ServerError as e:
                        if e.code != "UNAVAILABLE" or failures >= len(RECONNECT_DELAYS):
                            raise
                        time.sleep(RECONNECT_DELAYS[failures])
                        failures += 1
            if "sha256:" + digest.hexdigest() != s.outputs_digest:
                raise DroverError(f"the outputs of {self.id} do not match their digest "
                                  f"{s.outputs_digest}; download them again")
        except BaseException:
            os.unlink(path)
            raise
        self._outputs_tar = path
        return path

    def close(self):
        if self._outputs_tar is not None:
            try:
                os.unlink(self._outputs_tar)
            except OSError:
                pass
            self._outputs_tar = None

    def file_names(self) -> List[str]:
        path = self._outputs()
        if path is None:
            return []
        with tarfile.open(path) as tar:
            return ["outputs/" + m.name.lstrip("./") for m in tar.getmembers() if m.isfile()]

    @staticmethod
    def _safe_target(root: str, name: str) -> str:
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if name.startswith("/") or ".." in parts:
            raise DroverError(f"outputs: refused entry '{name}' (absolute or with '..')")
        return os.path.join(root, *parts)

    def download_file(self, name: str, output_file_path: Optional[str]) -> str:
        if not isinstance(name, str) or not name.startswith("outputs/"):
            raise ParameterError(f"name: {name!r} is not a run file; see get_file_names(), "
                                 "for example 'outputs/model.pt'")
        member_name = name[len("outputs/"):]
        path = self._outputs()
        if path is None:
            raise ServerError("NOT_FOUND", f"run {self.id} has no outputs")
        with tarfile.open(path) as tar:
            member = next((m for m in tar.getmembers()
                           if m.isfile() and m.name.lstrip("./") == member_name), None)
            if member is None:
                raise ServerError("NOT_FOUND", f"run {self.id} has no file '{name}'; see "
                                  "get_file_names()")
            if output_file_path is None:
                output_file_path = os.path.basename(member_name)
            elif os.path.isdir(output_file_path):
                output_file_path = os.path.join(output_file_path, os.path.basename(member_name))
            parent = os.path.dirname(output_file_path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            with tar.extractfile(member) as src, open(output_file_path, "wb") as dst:
                shutil.copyfileobj(src, dst)
        return output_file_path

    def download_files(self, prefix: str, output_directory: Optional[str],
                       append_prefix: bool) -> List[str]:
        prefix = (prefix or "").strip("/")
        root = output_directory or os.getcwd()
        path = self._outputs()
        written = []
        if path is None:
            return written
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                name = "outputs/" + member.name.lstrip("./")
                if prefix and not (name == prefix or name.startswith(prefix + "/")):
                    continue
                relative = name if append_prefix or not prefix else name[len(prefix):]
                target = self._safe_target(root, relative)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                if member.mode & 0o100:
                    os.chmod(target, 0o755)
                written.append(target)
        return written

    def cancel(self, reason: str):
        self.job = self.conn.call(self.conn.jobs.CancelJob,
                                  job_service_pb2.CancelJobRequest(job_id=self.id, reason=reason))
        return self.job

    def tag(self, tags: Dict[str, str], remove: Iterable[str] = ()):
        """Sets `tags` and removes the keys in `remove` on droverd; safe to retry."""
        request = job_service_pb2.UpdateJobTagsRequest(job_id=self.id, set=tags,
                                                       remove=list(remove))
        self.job = self.conn.call(self.conn.jobs.UpdateJobTags, request)
        return self.job

    def html(self) -> str:
        """The run as an HTML table (Jupyter): status and the latest value of each metric."""
        job = self.refresh()
        s = job.status
        rows = [("Run", job.id), ("Experiment", job.spec.experiment),
                ("Status", state_name(s)), ("Reason", s.reason), ("Message", s.message),
                ("Nodes", ", ".join(s.nodes))]
        try:
            metrics, _ = self.metrics(None, None)
        except DroverError:
            metrics = {}
        for name, value in sorted(metrics.items()):
            latest = value[-1] if isinstance(value, list) else value
            rows.append((f"metric {name}", f"{latest:g}"))
        cells = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                        f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
                        for k, v in rows if v != "")
        return f"<table>{cells}</table>"
