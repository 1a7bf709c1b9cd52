"""Experiment: a named group of runs; submits estimators.

    exp = Experiment(ws, "mnist")
    run = exp.submit(est, tags={"lr": "0.1"})
    for r in exp.get_runs(): print(r.id, r.get_status())
"""

import os
import re
import uuid
from typing import Iterator, Mapping, Optional

from drover import snapshot
from drover.estimator import Estimator
from drover.exceptions import ParameterError

_EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_TAG_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,62}\Z")
_CHUNK = 1 << 20


def check_tags(tags: Optional[Mapping[str, object]]) -> dict:
    """`tags` as str -> str. Raises ParameterError naming `tags` (at most 64; keys 1-63 of
    [A-Za-z0-9._/-] starting with a letter or digit; values at most 256 bytes)."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise ParameterError("tags: give a dict of name: value")
    if len(tags) > 64:
        raise ParameterError(f"tags: {len(tags)} tags; at most 64")
    out = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not _TAG_KEY.match(key):
            raise ParameterError(f"tags: key {key!r} is not 1-63 characters of [A-Za-z0-9._/-] "
                                 "starting with a letter or digit")
        text = value if isinstance(value, str) else str(value)
        if len(text.encode()) > 256:
            raise ParameterError(f"tags: {key}'s value is over 256 bytes")
        out[key] = text
    return out


def upload_snapshot(conn, estimator: Estimator, show_upload: bool) -> str:
    """Packs `estimator`'s source_directory into a snapshot and uploads it unless droverd has
    its digest already; returns the digest ("" without a source_directory)."""
    from drover.v1 import blob_pb2

    if estimator.source_directory is None:
        return ""
    snap = snapshot.build(estimator.source_directory)
    try:
        digest = snap.digest
        present = conn.call(conn.blobs.StatBlob, blob_pb2.StatBlobRequest(digest=digest)).present
        if show_upload:
            print(f"snapshot {digest} ({snap.size} bytes, {snap.files} entries)"
                  + (" already on droverd" if present else ": uploading"))
        if not present:
            def requests():
                yield blob_pb2.UploadBlobRequest(header=blob_pb2.UploadBlobRequest.Header(
                    digest=digest, size=snap.size))
                with open(snap.path, "rb") as f:
                    while True:
                        chunk = f.read(_CHUNK)
                        if not chunk:
                            return
                        yield blob_pb2.UploadBlobRequest(chunk=chunk)

            conn.upload(conn.blobs.UploadBlob, requests)
    finally:
        os.unlink(snap.path)
    return digest


class Experiment:
    """The runs of one experiment (JobSpec `experiment`) in a workspace."""

    def __init__(self, workspace, name: str):
        if not isinstance(name, str) or not _EXPERIMENT_NAME.match(name):
            raise ParameterError(f"name: experiment {name!r} is not 1-128 characters of "
                                 "[A-Za-z0-9._-] starting with a letter or digit")
        self.workspace = workspace
        self.name = name

    def __repr__(self):
        return f"Experiment({self.name!r})"

    def submit(self, config, tags: Optional[Mapping[str, object]] = None, *,
               idempotency_key: Optional[str] = None, show_upload: bool = False):
        """Submits `config` and returns its Run; a HyperDriveConfig becomes a sweep, and
        its HyperDriveRun is returned (drover.train.hyperdrive). The source_directory is
        packed into a snapshot (docs/snapshots.md) and uploaded unless droverd has its
        digest already.
        The submit carries an idempotency key (`idempotency_key`, else a fresh one), so it is
        retried safely when droverd is briefly unavailable, and submitting again with the
        same key returns the first run.

        Raises ParameterError (before anything is uploaded) for a bad `config` or `tags`;
        ServerError with droverd's message (naming the JobSpec field) when droverd refuses."""
        from drover.run import Run
        from drover.train.hyperdrive import HyperDriveConfig
        from drover.v1 import job_service_pb2

        if not isinstance(config, (Estimator, HyperDriveConfig)):
            raise ParameterError(f"config: {config!r} is not an Estimator (drover.Estimator, "
                                 "drover.train.dnn.PyTorch) or a HyperDriveConfig")
        tags = check_tags(tags)
        if idempotency_key is not None and (
                not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= 128 or
                any(not 0x20 <= ord(c) <= 0x7E for c in idempotency_key)):
            raise ParameterError("idempotency_key: 1-128 printable ASCII characters")
        key = idempotency_key or "sdk-" + uuid.uuid4().hex
        if isinstance(config, HyperDriveConfig):
            from drover.train import hyperdrive

            return hyperdrive.submit(self, config, tags, key, show_upload)
        # Everything is checked before the snapshot is built or sent.
        config.to_job_spec(self.name, "", tags, key)
        conn = self.workspace._connection
        digest = upload_snapshot(conn, config, show_upload)
        spec = config.to_job_spec(self.name, digest, tags, key)
        answer = conn.call(conn.jobs.SubmitJob, job_service_pb2.SubmitJobRequest(spec=spec))
        return Run(self, answer.job.id, _job=answer.job)

    def get_runs(self, tags: Optional[str] = None) -> Iterator:
        """The experiment's runs, newest first (the caller's own; viewers and admins see
        everyone's). `tags`: only runs with this tag ("KEY" or "KEY=VALUE"). Raises
        ServerError."""
        from drover.run import Run
        from drover.v1 import job_service_pb2

        conn = self.workspace._connection
        token = ""
        while True:
            answer = conn.call(conn.jobs.ListJobs, job_service_pb2.ListJobsRequest(
                experiment=self.name, tag=tags or "", page_size=100, page_token=token))
            for job in answer.jobs:
                yield Run(self, job.id, _job=job)
            token = answer.next_page_token
            if not token:
                return
