"""Data references: datastore paths a run gets as local paths on its node, as the CLI's
`ds://NAME/PATH?mode=...` arguments (docs/datastores.md). Standard library only.

    ds = Datastore.get(ws, "datasets")
    est = Estimator(..., script_params={"--data": ds.path("mnist").as_download(),
                                        "--root": ds})              # ds: its root, mounted
"""

import re
from typing import Optional

from drover.exceptions import ParameterError

MOUNT = "mount"
DOWNLOAD = "download"
UPLOAD = "upload"
_MODES = (MOUNT, DOWNLOAD, UPLOAD)


def check_relative_path(what: str, path: str) -> str:
    """`path` if it is a relative path inside a datastore: no "..", no leading "/", no NUL,
    at most 1024 bytes. Raises ParameterError naming `what`."""
    if not isinstance(path, str):
        raise ParameterError(f"{what}: the path must be a string, got {type(path).__name__}")
    if path.startswith("/"):
        raise ParameterError(f"{what}: '{path}' must be relative to the datastore's root")
    if ".." in path.split("/"):
        raise ParameterError(f"{what}: '{path}' may not contain '..'")
    if "\0" in path or len(path.encode()) > 1024:
        raise ParameterError(f"{what}: the path has a NUL byte or is over 1024 bytes")
    return path.strip("/")


_INPUT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")


def check_input_name(what: str, name: str) -> str:
    """`name` if it can name an input (DROVER_INPUT_<name>): 1-63 characters of
    [A-Za-z0-9_] starting with a letter. Raises ParameterError naming `what`."""
    if not isinstance(name, str) or not _INPUT_NAME.fullmatch(name):
        raise ParameterError(f"{what}: {name!r} is not 1-63 characters of [A-Za-z0-9_] "
                             "starting with a letter (it names $DROVER_INPUT_<name>)")
    return name


class DataReference:
    """A path in a datastore and how the run gets it: `mode` "mount" (read-only unless
    `read_write`), "download" (copied in before the start) or "upload" (an empty folder
    copied to the datastore when the run ends). As a script parameter it becomes a JobSpec
    `Argument.data`; in an estimator's `inputs=` a JobSpec `DataInput` whose path the script
    finds in $DROVER_INPUT_<data_reference_name> (default: the datastore's name, '-' as '_')
    and in `Run.get_context().input_datasets`."""

    def __init__(self, datastore: str, path: str = "", mode: str = MOUNT,
                 read_write: bool = False, data_reference_name: Optional[str] = None):
        if mode not in _MODES:
            raise ParameterError(f"mode: '{mode}' is not one of mount, download, upload")
        if read_write and mode != MOUNT:
            raise ParameterError("read_write: only a mount can be writable (as_mount(read_write=True))")
        self.datastore = datastore
        self.path = check_relative_path(f"datastore '{datastore}' path", path)
        self.mode = mode
        self.read_write = bool(read_write)
        if data_reference_name is not None:
            check_input_name("data_reference_name", data_reference_name)
        self._name = data_reference_name

    @property
    def data_reference_name(self) -> str:
        """The input's name: as given, or the datastore's name with '-' as '_'."""
        return self._name if self._name is not None else self.datastore.replace("-", "_")

    def _with(self, mode: str, read_write: bool = False,
              data_reference_name: Optional[str] = None) -> "DataReference":
        return DataReference(self.datastore, self.path, mode, read_write,
                             data_reference_name if data_reference_name is not None else self._name)

    def as_mount(self, read_write: bool = False,
                 data_reference_name: Optional[str] = None) -> "DataReference":
        return self._with(MOUNT, read_write, data_reference_name)

    def as_download(self, data_reference_name: Optional[str] = None) -> "DataReference":
        return self._with(DOWNLOAD, False, data_reference_name)

    def as_upload(self, data_reference_name: Optional[str] = None) -> "DataReference":
        return self._with(UPLOAD, False, data_reference_name)

    def to_url(self) -> str:
        """The CLI's spelling: ds://NAME/PATH[?mode=...][&rw=true]."""
        url = f"ds://{self.datastore}/{self.path}"
        query = []
        if self.mode != MOUNT:
            query.append(f"mode={self.mode}")
        if self.read_write:
            query.append("rw=true")
        return url + ("?" + "&".join(query) if query else "")

    def __eq__(self, other):
        return isinstance(other, DataReference) and (
            (self.datastore, self.path, self.mode, self.read_write) ==
            (other.datastore, other.path, other.mode, other.read_write))

    def __hash__(self):
        return hash((self.datastore, self.path, self.mode, self.read_write))

    def __repr__(self):
        return f"DataReference({self.to_url()!r})"


class OutputTarget:
    """A datastore folder that receives the run's `outputs/` folder when it ends
    (JobSpec `outputs`). Make one with `ds.path("runs/7").as_output()` or pass a
    DataReference in `outputs=`."""

    def __init__(self, datastore: str, path: str):
        self.datastore = datastore
        self.path = check_relative_path("outputs", path)
        if not self.path:
            raise ParameterError(f"outputs: needs a folder inside datastore '{datastore}', "
                                 "for example ds.path('runs/7')")
