"""The gRPC connection to droverd: channel, credentials, the token on every call, retries
after UNAVAILABLE and the translation of gRPC errors into `ServerError`. Internal; imports
grpcio (never imported by `import drover` or in-job code). One per Workspace; the stubs
are thread-safe, so a Workspace may be used from several threads.
"""

import time
from typing import Callable, Iterator, Optional

import grpc

from drover import _config
from drover.exceptions import ParameterError, ServerError
from drover.v1 import admin_service_pb2_grpc, blob_pb2_grpc, job_service_pb2_grpc

# Waits before each retry of a call that failed UNAVAILABLE (droverd restarting), as the
# CLI's kRetryDelays: a dead server is reported within two seconds.
RETRY_DELAYS = (0.25, 0.5, 1.0)
# Waits before reconnecting a stream that already delivered something (droverd is known to
# exist, so give a restart about half a minute), as the CLI's kReconnectDelays.
RECONNECT_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 12.0)

_CHANNEL_OPTIONS = [
    # A restarting droverd is found again within the retries, not after gRPC's 1-120 s.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.service_config_disable_resolution", 1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


class Connection:
    """A channel to droverd with the caller's token. `settings`: _config.Settings.

    Raises ParameterError when the token has characters no drover token has or the CA file
    holds no certificate (nothing is sent then)."""

    def __init__(self, settings: _config.Settings, timeout: float = 30.0):
        self.server = settings.server
        self.timeout = timeout
        token = settings.token or ""
        if any(not (0x21 <= ord(c) <= 0x7E) for c in token):
            raise ParameterError(
                "token: has a space, line break or other character no drover token has; copy "
                "it again from drover user create (token=, DROVER_TOKEN or the config file)")
        if len(token) > 256:
            raise ParameterError(
                "token: longer than any drover token; copy it again from drover user create")
        self._metadata = (("authorization", "Bearer " + token),) if token else ()
        if self.server.startswith("unix:"):
            # droverd's local admin socket: no TLS, the socket's mode decides.
            credentials = grpc.local_channel_credentials(grpc.LocalConnectionType.UDS)
        else:
            try:
                with open(settings.ca, "rb") as f:
                    ca = f.read()
            except OSError:
                ca = b""
            if b"-----BEGIN CERTIFICATE-----" not in ca:
                raise ParameterError(
                    f"ca: {settings.ca_source}: cannot read a certificate from '{settings.ca}'; "
                    "give droverd's CA certificate (droverd writes it to "
                    "<state-dir>/tls/ca.crt) with ca= or DROVER_CA")
            credentials = grpc.ssl_channel_credentials(root_certificates=ca)
        self.channel = grpc.secure_channel(self.server, credentials, options=_CHANNEL_OPTIONS)
        self.jobs = job_service_pb2_grpc.JobServiceStub(self.channel)
        self.admin = admin_service_pb2_grpc.AdminServiceStub(self.channel)
        self.blobs = blob_pb2_grpc.BlobServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def error(self, e: "grpc.RpcError") -> ServerError:
        """The ServerError for a failed call: droverd's message, or what went wrong on the way."""
        code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
        details = (e.details() if hasattr(e, "details") else "") or ""
        details = " ".join(details.split())
        if code == grpc.StatusCode.UNAVAILABLE:
            message = (f"cannot reach droverd at {self.server} ({details or 'unavailable'}); "
                       "is it running? set server= or DROVER_SERVER")
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            message = (f"droverd at {self.server} did not answer within {self.timeout:g}s; "
                       "retry, or allow longer with Workspace(timeout=...)")
        else:
            message = details or f"droverd answered {code.name} without a message"
        return ServerError(code.name, message)

    def call(self, method: Callable, request, *, retry: bool = True,
             timeout: Optional[float] = None):
        """Calls the unary `method` (a stub's) with `request`. Retried after UNAVAILABLE when
        `retry` (only for calls that are safe to repeat). Raises ServerError."""
        delays = RETRY_DELAYS if retry else ()
        attempt = 0
        while True:
            try:
                return method(request, timeout=timeout or self.timeout, metadata=self._metadata)
            except grpc.RpcError as e:
                if attempt < len(delays) and e.code() == grpc.StatusCode.UNAVAILABLE:
                    time.sleep(delays[attempt])
                    attempt += 1
                    continue
                raise self.error(e) from None

    def stream(self, method: Callable, request, *, timeout: Optional[float] = None) -> Iterator:
        """The answers of the server-streaming `method`; no deadline unless `timeout`.
        Raises ServerError (while iterating)."""
        try:
            for answer in method(request, timeout=timeout, metadata=self._metadata):
                yield answer
        except grpc.RpcError as e:
            raise self.error(e) from None

    def upload(self, method: Callable, requests: Callable[[], Iterator], *, retry: bool = True):
        """Calls the client-streaming `method` with the requests `requests()` yields (called
        again for every retry). Raises ServerError."""
        delays = RETRY_DELAYS if retry else ()
        attempt = 0
        while True:
            try:
                return method(requests(), metadata=self._metadata)
            except grpc.RpcError as e:
                if attempt < len(delays) and e.code() == grpc.StatusCode.UNAVAILABLE:
                    time.sleep(delays[attempt])
                    attempt += 1
                    continue
                raise self.error(e) from None
