"""Workspace (a connection to droverd), ComputeTarget and Datastore.

    ws = Workspace.from_config()                 # the CLI's config file and DROVER_* variables
    ws = Workspace(server="droverd:7070", token="drv_...", ca="/etc/drover/ca.crt")
    gpu = ComputeTarget(ws, "gpu")
    ds = Datastore.get(ws, "datasets")
"""

import re
from typing import Dict, Optional

from drover import _config
from drover.data import DataReference, MOUNT, DOWNLOAD, UPLOAD
from drover.exceptions import ParameterError, ServerError

_TARGET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}\Z")


class Workspace:
    """droverd and the caller's identity. Each of `server`, `token` and `ca` left None is
    taken as the drover CLI takes it: DROVER_SERVER / DROVER_TOKEN / DROVER_CA, else the
    config file `drover login` writes (`config_file`, else $DROVER_CONFIG, else
    ~/.config/drover/config), else localhost:7070, no token, /etc/drover/ca.crt.
    `server` may be unix:PATH (droverd's local admin socket). `timeout`: seconds a unary
    call may take.

    Raises ParameterError for a token no drover token looks like or a CA file without a
    certificate. Nothing is sent until a call needs droverd."""

    def __init__(self, server: Optional[str] = None, token: Optional[str] = None,
                 ca: Optional[str] = None, *, config_file: Optional[str] = None,
                 timeout: float = 30.0):
        from drover._connection import Connection  # grpcio only when a client is made

        self.settings = _config.resolve(server, token, ca, config_file)
        self._connection = Connection(self.settings, timeout=timeout)

    @classmethod
    def from_config(cls, path: Optional[str] = None, **kwargs) -> "Workspace":
        """The workspace the drover CLI would use: the config file at `path` (default: the
        CLI's), with DROVER_SERVER, DROVER_TOKEN and DROVER_CA taking precedence."""
        return cls(config_file=path, **kwargs)

    @property
    def server(self) -> str:
        return self.settings.server

    def close(self) -> None:
        self._connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"Workspace(server={self.settings.server!r})"

    @property
    def compute_targets(self) -> Dict[str, "ComputeTarget"]:
        """Every compute target droverd knows, by name ("default", every node, included).
        Raises ServerError."""
        from drover.v1 import admin_service_pb2

        answer = self._connection.call(self._connection.admin.ListComputeTargets,
                                       admin_service_pb2.ListComputeTargetsRequest())
        targets = {"default": ComputeTarget(self, "default", _checked=True)}
        for t in answer.targets:
            targets[t.name] = ComputeTarget(self, t.name, _proto=t)
        return targets

    @property
    def datastores(self) -> Dict[str, "Datastore"]:
        """Every registered datastore, by name. Raises ServerError."""
        from drover.v1 import admin_service_pb2

        answer = self._connection.call(self._connection.admin.ListDatastores,
                                       admin_service_pb2.ListDatastoresRequest())
        return {d.name: Datastore(self, d.name, _proto=d) for d in answer.datastores}

    def get_default_datastore(self) -> "Datastore":
        """The datastore named "default", else the only one registered. Raises DroverError
        naming what to do when there is neither."""
        stores = self.datastores
        if "default" in stores:
            return stores["default"]
        if len(stores) == 1:
            return next(iter(stores.values()))
        raise ServerError("NOT_FOUND", (
            "no default datastore: register one named 'default' (drover datastore create "
            "default ...) or pick one with Datastore.get(ws, NAME); registered: "
            + (", ".join(sorted(stores)) or "none")))


class ComputeTarget:
    """A named pool of nodes (JobSpec `compute_target`). `ComputeTarget(ws, "gpu")` checks
    that droverd knows it (raises ServerError NOT_FOUND otherwise; "default", every node,
    always exists); a user who may not list targets gets the name unchecked, and droverd
    checks it at submit."""

    def __init__(self, workspace: Optional[Workspace], name: str, *, _proto=None,
                 _checked: bool = False):
        if not isinstance(name, str) or not _TARGET_NAME.match(name):
            raise ParameterError(f"compute_target: '{name}' is not a target name (1-63 "
                                 "characters of [a-z0-9_-], starting with a letter or digit)")
        self.workspace = workspace
        self.name = name
        self._proto = _proto
        if workspace is not None and _proto is None and not _checked and name != "default":
            try:
                found = workspace.compute_targets.get(name)
            except ServerError as e:
                if e.code != "PERMISSION_DENIED":
                    raise
                found = self
            if found is None:
                raise ServerError("NOT_FOUND", f"compute target '{name}' does not exist; "
                                  "see ws.compute_targets or drover target list")
            self._proto = found._proto

    def __repr__(self):
        return f"ComputeTarget({self.name!r})"


class Datastore:
    """A registered datastore. As a script parameter on its own it mounts the datastore's
    root read-only; `ds.path("mnist")` is a DataReference to a path in it, with
    `.as_mount()`, `.as_download()` and `.as_upload()`."""

    def __init__(self, workspace: Optional[Workspace], name: str, *, _proto=None):
        if not isinstance(name, str) or not _TARGET_NAME.match(name):
            raise ParameterError(f"datastore: '{name}' is not a datastore name (1-63 "
                                 "characters of [a-z0-9_-], starting with a letter or digit)")
        self.workspace = workspace
        self.name = name
        self._proto = _proto

    @staticmethod
    def get(workspace: Workspace, name: str) -> "Datastore":
        """The registered datastore `name`. Raises ServerError NOT_FOUND naming the
        registered ones when droverd has none of that name."""
        stores = workspace.datastores
        if name not in stores:
            raise ServerError("NOT_FOUND", f"datastore '{name}' is not registered; registered: "
                              + (", ".join(sorted(stores)) or "none"))
        return stores[name]

    @property
    def datastore_type(self) -> str:
        """"hostpath" or "rclone" ("" when not read from droverd)."""
        if self._proto is None:
            return ""
        from drover.v1 import datastore_pb2

        return datastore_pb2.Datastore.Type.Name(self._proto.type).lower()

    @property
    def allow_write(self) -> bool:
        return bool(self._proto is not None and self._proto.allow_write)

    def path(self, path: str = "") -> DataReference:
        """A path inside the datastore, mounted read-only unless changed with as_*()."""
        return DataReference(self.name, path, MOUNT)

    def as_mount(self, read_write: bool = False,
                 data_reference_name: Optional[str] = None) -> DataReference:
        return DataReference(self.name, "", MOUNT, read_write, data_reference_name)

    def as_download(self, data_reference_name: Optional[str] = None) -> DataReference:
        return DataReference(self.name, "", DOWNLOAD, data_reference_name=data_reference_name)

    def as_upload(self, data_reference_name: Optional[str] = None) -> DataReference:
        return DataReference(self.name, "", UPLOAD, data_reference_name=data_reference_name)

    def __repr__(self):
        return f"Datastore({self.name!r})"
