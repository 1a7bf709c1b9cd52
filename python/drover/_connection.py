"""The gRPC connection to droverd: channel, credentials, the token on every call, retries
after UNAVAILABLE, following the droverd that leads among several (server="A,B": a standby
answers UNAVAILABLE naming the leader in the trailing metadata `drover-leader`, followed only
when it is exactly one of the given addresses) and the translation of gRPC errors into
`ServerError`. Internal; imports
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


# The trailing metadata key a standby droverd names the leader's "HOST:PORT" in.
LEADER_METADATA = "drover-leader"


def parse_servers(server: str) -> list:
    """The droverd addresses of `server`: "HOST:PORT" or "HOST:PORT,HOST:PORT" (one leads,
    the others stand by); a "unix:PATH" target as is. Raises ParameterError for an empty
    entry or one with spaces."""
    if server.startswith("unix:") or "," not in server:
        return [server]
    parts = server.split(",")
    if any(not p or any(c.isspace() for c in p) for p in parts):
        raise ParameterError(
            f"server: '{server}' is not a list of droverd addresses; write HOST:PORT or "
            "HOST:PORT,HOST:PORT (one per droverd, no spaces)")
    return parts


def next_server(servers: list, current: int, trailing_metadata) -> int:
    """Which of `servers` to ask after droverd `current` answered UNAVAILABLE with
    `trailing_metadata` ((key, value) pairs, or None): the leader a standby named when it is
    exactly one of `servers` (a standby cannot send the client anywhere else), otherwise
    the next one."""
    for key, value in trailing_metadata or ():
        if key == LEADER_METADATA and value in servers and servers.index(value) != current:
            return servers.index(value)
    return (current + 1) % len(servers)


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
        self.servers = parse_servers(self.server)
        self._current = 0
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
        self._credentials = credentials
        self._connect()

    def _connect(self) -> None:
        """A channel to the droverd in use and the stubs on it."""
        self.channel = grpc.secure_channel(self.servers[self._current], self._credentials,
                                           options=_CHANNEL_OPTIONS)
        self.jobs = job_service_pb2_grpc.JobServiceStub(self.channel)
        self.admin = admin_service_pb2_grpc.AdminServiceStub(self.channel)
        self.blobs = blob_pb2_grpc.BlobServiceStub(self.channel)

    def _follow(self, method: Callable, e: "grpc.RpcError", leader_only: bool):
        """After `method` failed UNAVAILABLE (`e`) on one of several droverds: switches to
        the one `next_server` names and returns the same method on it; None (nothing
        switched) with one droverd, for a method of no stub of this connection, or, with
        `leader_only`, when no standby named a known leader (the call may have reached a
        droverd that then died: not repeated)."""
        if len(self.servers) < 2:
            return None
        trailing = e.trailing_metadata() if hasattr(e, "trailing_metadata") else None
        target = next_server(self.servers, self._current, trailing)
        named = any(k == LEADER_METADATA and v in self.servers for k, v in trailing or ())
        if leader_only and not named:
            return None
        for stub_name in ("jobs", "admin", "blobs"):
            for name, bound in vars(getattr(self, stub_name)).items():
                if bound is method:
                    self._current = target
                    self._connect()  # the old channel stays open for calls in flight
                    return getattr(getattr(self, stub_name), name)
        return None

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
        follows = 0
        while True:
            try:
                return method(request, timeout=timeout or self.timeout, metadata=self._metadata)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNAVAILABLE and follows < len(self.servers) - 1:
                    # A standby did nothing: following it is safe for every call.
                    followed = self._follow(method, e, leader_only=not retry)
                    if followed is not None:
                        method = followed
                        follows += 1
                        continue
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
