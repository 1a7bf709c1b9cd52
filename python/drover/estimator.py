"""Estimators: what to run and how, as the training platform users come from writes it.

    est = Estimator(source_directory="./proj", entry_script="train.py",
                    script_params={"--data": ds.path("mnist"), "--epochs": 10},
                    compute_target="gpu", use_gpu=True, node_count=2,
                    distributed_backend="pytorch")

Every parameter is checked when the estimator is made (ParameterError naming it), so a bad
combination is refused before anything is uploaded; `to_job_spec()` turns it into the
JobSpec droverd runs (docs/python-sdk.md lists each parameter's field). Needs protobuf (not
grpcio) for `to_job_spec`.
"""

import numbers
import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from drover.data import DataReference, OutputTarget, check_input_name, check_relative_path
from drover.exceptions import ParameterError

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_IMAGE = re.compile(r"[A-Za-z0-9._/:@-]{1,512}\Z")
_SIZE = re.compile(r"\s*(\d+)\s*([bkmgt]?)(?:i?b)?\s*\Z", re.I)
_BACKENDS = {None: "NONE", "mpi": "MPI", "pytorch": "PYTORCH"}
MAX_RUN_SECONDS = 365 * 24 * 3600


def _int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{name}: must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ParameterError(f"{name}: {value} is out of range ({low} to {high})")
    return int(value)


def _packages(name: str, value: Optional[Iterable[str]]) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        raise ParameterError(f"{name}: give a list of requirement strings, for example "
                             f"[{value!r}]")
    packages = list(value)
    if len(packages) > 256:
        raise ParameterError(f"{name}: {len(packages)} entries; at most 256")
    for p in packages:
        if not isinstance(p, str) or not p or len(p.encode()) > 512:
            raise ParameterError(f"{name}: {p!r} is not a requirement string of 1-512 bytes")
        if any(c.isspace() or not c.isprintable() or ord(c) > 0x7E for c in p):
            raise ParameterError(f"{name}: {p!r} has whitespace or a character that is not "
                                 "printable ASCII; give one requirement per entry")
        if p.startswith("-"):
            raise ParameterError(f"{name}: {p!r} is an option, not a package; pip and conda "
                                 "options belong in the cluster's configuration")
    return packages


def _environment(name: str, value: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ParameterError(f"{name}: give a dict of NAME: value")
    env = {}
    for key, v in value.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key) or len(key) > 256:
            raise ParameterError(f"{name}: {key!r} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
        if key.startswith("DROVER_"):
            raise ParameterError(f"{name}: {key} starts with DROVER_, which Drover reserves "
                                 "for the variables it sets")
        if v is None or isinstance(v, (dict, list, tuple)):
            raise ParameterError(f"{name}: {key}'s value {v!r} is not a string or number")
        text = v if isinstance(v, str) else str(v)
        if "\0" in text or len(text.encode()) > 32 * 1024:
            raise ParameterError(f"{name}: {key}'s value has a NUL byte or is over 32 KiB")
        env[key] = text
    return env


def parse_shm_size(value: Union[str, int, None]) -> Optional[int]:
    """`shm_size` in MiB: docker's spelling ("2g", "512m", "1048576k") or an int of bytes.
    None: the default (1024 MiB). Raises ParameterError naming shm_size."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ParameterError(f"shm_size: {value!r} is not a size such as '2g' or '512m'")
    if isinstance(value, numbers.Integral):
        size = int(value)
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ParameterError(f"shm_size: {value!r} is not a size such as '2g' or '512m'")
        unit = match.group(2).lower()
        size = int(match.group(1)) * {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20,
                                      "g": 1 << 30, "t": 1 << 40}[unit]
    if size < 0 or size % (1 << 20):
        raise ParameterError(f"shm_size: {value!r} is not a whole number of MiB")
    mib = size >> 20
    if mib > 1048576:
        raise ParameterError(f"shm_size: {value!r} is over 1 TiB")
    return mib


def _argument_value(name: str, value: Any) -> Union[str, DataReference]:
    from drover.workspace import Datastore

    if isinstance(value, DataReference):
        return value
    if isinstance(value, Datastore):
        return value.as_mount()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (str, numbers.Number)):
        text = value if isinstance(value, str) else str(value)
        if "\0" in text or len(text.encode()) > 32 * 1024:
            raise ParameterError(f"{name}: {text[:40]!r} has a NUL byte or is over 32 KiB")
        return text
    raise ParameterError(f"{name}: {value!r} ({type(value).__name__}) is not a string, number, "
                         "Datastore or DataReference")


class Estimator:
    """A training run to submit with `Experiment.submit`. Raises ParameterError, naming the
    parameter, for any bad value or combination (see docs/python-sdk.md for each one's
    JobSpec field)."""

    _framework = "Estimator"

    def __init__(self, source_directory: Optional[str] = None, *,
                 entry_script: Optional[str] = None,
                 script_params: Optional[Mapping[str, Any]] = None,
                 arguments: Optional[Sequence[Any]] = None,
                 compute_target: Any = None,
                 node_count: int = 1,
                 process_count_per_node: int = 1,
                 distributed_backend: Optional[str] = None,
                 use_gpu: bool = False,
                 gpu_count: Optional[int] = None,
                 cpu_count: Optional[float] = None,
                 memory_mib: Optional[int] = None,
                 shm_size: Union[str, int, None] = None,
                 pip_packages: Optional[Sequence[str]] = None,
                 conda_packages: Optional[Sequence[str]] = None,
                 horovod: bool = False,
                 environment_variables: Optional[Mapping[str, Any]] = None,
                 secret_environment_variables: Optional[Mapping[str, Any]] = None,
                 custom_docker_image: Optional[str] = None,
                 max_run_duration_seconds: Optional[float] = None,
                 inputs: Optional[Sequence[Any]] = None,
                 outputs: Optional[Sequence[Any]] = None,
                 priority: int = 0,
                 max_retries: int = 0,
                 name: Optional[str] = None):
        from drover.workspace import ComputeTarget, Datastore

        # What is run.
        if source_directory is not None:
            if not isinstance(source_directory, (str, os.PathLike)):
                raise ParameterError("source_directory: must be a folder path")
            source_directory = os.fspath(source_directory)
            if not os.path.isdir(source_directory):
                raise ParameterError(f"source_directory: '{source_directory}' is not a folder")
        if not entry_script or not isinstance(entry_script, str):
            raise ParameterError("entry_script: required, the script to run relative to "
                                 "source_directory (for example 'train.py')")
        if entry_script.startswith("/") or ".." in entry_script.split("/") or \
                "\0" in entry_script or len(entry_script.encode()) > 1024:
            raise ParameterError(f"entry_script: '{entry_script}' must be a path relative to "
                                 "source_directory, without '..'")
        if source_directory is not None and \
                not os.path.isfile(os.path.join(source_directory, entry_script)):
            raise ParameterError(f"entry_script: '{entry_script}' is not a file in "
                                 f"source_directory '{source_directory}'")
        self.source_directory = source_directory
        self.entry_script = entry_script

        # Its arguments: script_params first, in order, then `arguments`.
        args: List[Union[str, DataReference]] = []
        if script_params is not None:
            if not isinstance(script_params, Mapping):
                raise ParameterError("script_params: give a dict of '--flag': value")
            for key, value in script_params.items():
                if not isinstance(key, str) or not key:
                    raise ParameterError(f"script_params: key {key!r} is not a non-empty string")
                if value is False:
                    continue
                args.append(key)
                if value is None or value is True:
                    continue
                values = value if isinstance(value, (list, tuple)) else [value]
                args.extend(_argument_value(f"script_params[{key!r}]", v) for v in values)
        if arguments is not None:
            if isinstance(arguments, (str, bytes)) or not isinstance(arguments, Sequence):
                raise ParameterError("arguments: give a list, for example ['--epochs', 10]")
            args.extend(_argument_value(f"arguments[{i}]", v) for i, v in enumerate(arguments))
        if len(args) > 1024:
            raise ParameterError(f"script_params: {len(args)} arguments in all; at most 1024")
        self.script_params = dict(script_params or {})
        self.arguments = args

        # Where it runs.
        if compute_target is None:
            compute_target = "default"
        if isinstance(compute_target, ComputeTarget):
            compute_target = compute_target.name
        elif isinstance(compute_target, str):
            compute_target = ComputeTarget(None, compute_target).name
        else:
            raise ParameterError("compute_target: give a ComputeTarget or a target's name")
        self.compute_target = compute_target

        # How many processes, and how they find each other.
        self.node_count = _int("node_count", node_count, 1, 1024)
        self.process_count_per_node = _int("process_count_per_node", process_count_per_node,
                                           1, 256)
        backend = distributed_backend.lower() if isinstance(distributed_backend, str) \
            else distributed_backend
        if backend not in _BACKENDS:
            raise ParameterError(f"distributed_backend: {distributed_backend!r} is not None, "
                                 "'mpi' or 'pytorch'")
        if backend is None and self.node_count > 1:
            raise ParameterError(f"distributed_backend: node_count={self.node_count} needs "
                                 "distributed_backend='mpi' or 'pytorch'")
        self.distributed_backend = backend
        if not isinstance(horovod, bool):
            raise ParameterError(f"horovod: must be True or False, got {horovod!r}")
        if horovod and backend != "mpi":
            raise ParameterError(f"horovod: Horovod runs under mpirun; it needs "
                                 f"distributed_backend='mpi', not {distributed_backend!r}")
        self.horovod = horovod

        # Resources.
        if not isinstance(use_gpu, bool):
            raise ParameterError(f"use_gpu: must be True or False, got {use_gpu!r}")
        self.use_gpu = use_gpu
        if gpu_count is not None:
            gpu_count = _int("gpu_count", gpu_count, 0, 64)
            if gpu_count > 0 and not use_gpu:
                raise ParameterError(f"gpu_count: {gpu_count} GPUs need use_gpu=True")
        self.gpu_count = gpu_count
        if cpu_count is not None:
            if isinstance(cpu_count, bool) or not isinstance(cpu_count, numbers.Real) or \
                    not 0 < cpu_count <= 1024:
                raise ParameterError(f"cpu_count: {cpu_count!r} is not a number of cores "
                                     "above 0 and at most 1024")
        self.cpu_count = cpu_count
        if memory_mib is not None:
            memory_mib = _int("memory_mib", memory_mib, 1, 16777216)
        self.memory_mib = memory_mib
        self.shm_size = shm_size
        self._shm_mib = parse_shm_size(shm_size)

        # Environment.
        self.pip_packages = _packages("pip_packages", pip_packages)
        self.conda_packages = _packages("conda_packages", conda_packages)
        self.environment_variables = _environment("environment_variables",
                                                  environment_variables)
        self.secret_environment_variables = _environment("secret_environment_variables",
                                                         secret_environment_variables)
        both = set(self.environment_variables) & set(self.secret_environment_variables)
        if both:
            raise ParameterError(f"secret_environment_variables: {sorted(both)[0]} is also in "
                                 "environment_variables; give each variable once")
        if custom_docker_image is not None:
            if not isinstance(custom_docker_image, str) or not _IMAGE.match(custom_docker_image):
                raise ParameterError(f"custom_docker_image: {custom_docker_image!r} is not an "
                                     "image reference (registry/name:tag, name@sha256:..., "
                                     "docker://... or 'host')")
        self.custom_docker_image = custom_docker_image

        # Limits and policy.
        if max_run_duration_seconds is not None:
            if isinstance(max_run_duration_seconds, bool) or \
                    not isinstance(max_run_duration_seconds, numbers.Real) or \
                    not 0 <= max_run_duration_seconds <= MAX_RUN_SECONDS:
                raise ParameterError(f"max_run_duration_seconds: {max_run_duration_seconds!r} "
                                     "is not a number of seconds from 0 (no limit) to 365 days")
        self.max_run_duration_seconds = max_run_duration_seconds
        self.priority = _int("priority", priority, -1000, 1000)
        self.max_retries = _int("max_retries", max_retries, 0, 100)
        if name is not None and (not isinstance(name, str) or not _JOB_NAME.match(name)):
            raise ParameterError(f"name: {name!r} is not 1-128 characters of [A-Za-z0-9._-] "
                                 "starting with a letter or digit")
        self.name = name

        # Data: `inputs` reach the script in $DROVER_INPUT_<name> (JobSpec inputs), whether or
        # not they are script parameters too (then they are made available once).
        self.inputs = []
        names = {}
        for i, item in enumerate(inputs or []):
            ref = item.as_mount() if isinstance(item, Datastore) else item
            if not isinstance(ref, DataReference):
                raise ParameterError(f"inputs[{i}]: {item!r} is not a Datastore or DataReference")
            name = check_input_name(f"inputs[{i}]: data_reference_name", ref.data_reference_name)
            if name in names:
                raise ParameterError(
                    f"inputs[{i}]: the name '{name}' is used by inputs[{names[name]}]; name "
                    f"each, for example {ref.datastore}.path('...').as_mount("
                    "data_reference_name='train')")
            names[name] = i
            self.inputs.append(ref)
        if len(self.inputs) > 64:
            raise ParameterError(f"inputs: {len(self.inputs)} inputs; at most 64")
        self.outputs = []
        for i, item in enumerate(outputs or []):
            if isinstance(item, OutputTarget):
                target = item
            elif isinstance(item, DataReference):
                target = OutputTarget(item.datastore, item.path)
            elif isinstance(item, Datastore):
                raise ParameterError(f"outputs[{i}]: give a folder in datastore '{item.name}', "
                                     f"for example {item.name}.path('runs/7')")
            else:
                raise ParameterError(f"outputs[{i}]: {item!r} is not a DataReference")
            self.outputs.append(target)
        if len(self.outputs) > 16:
            raise ParameterError(f"outputs: {len(self.outputs)} targets; at most 16")

    def to_job_spec(self, experiment: str = "", snapshot_digest: str = "",
                    tags: Optional[Mapping[str, str]] = None, idempotency_key: str = ""):
        """The JobSpec (drover.v1.job_pb2.JobSpec) this estimator becomes, in `experiment`
        with the uploaded snapshot `snapshot_digest`."""
        from google.protobuf import duration_pb2  # noqa: F401 (JobSpec's Duration)
        from drover.v1 import job_pb2

        spec = job_pb2.JobSpec()
        if self.name:
            spec.name = self.name
        if experiment:
            spec.experiment = experiment
        for key, value in (tags or {}).items():
            spec.tags[key] = str(value)
        if snapshot_digest:
            spec.source_snapshot = snapshot_digest
        spec.entry_script = self.entry_script
        def fill(out, ref):
            out.datastore = ref.datastore
            out.path = ref.path
            out.mode = {"mount": job_pb2.DataReference.MOUNT,
                        "download": job_pb2.DataReference.DOWNLOAD,
                        "upload": job_pb2.DataReference.UPLOAD}[ref.mode]
            out.read_write = ref.read_write

        for arg in self.arguments:
            out = spec.arguments.add()
            if isinstance(arg, DataReference):
                fill(out.data, arg)
            else:
                out.value = arg
        for ref in self.inputs:
            out = spec.inputs.add()
            out.name = ref.data_reference_name
            fill(out.data, ref)
        spec.compute_target = self.compute_target
        env = spec.environment
        if self.custom_docker_image:
            env.image = self.custom_docker_image
        env.pip_packages.extend(self.pip_packages)
        env.conda_packages.extend(self.conda_packages)
        env.env.update(self.environment_variables)
        env.env.update(self.secret_environment_variables)
        env.secret_env.extend(sorted(self.secret_environment_variables))
        env.use_gpu = self.use_gpu
        env.horovod = self.horovod
        spec.node_count = self.node_count
        spec.process_count_per_node = self.process_count_per_node
        spec.distributed_backend = job_pb2.JobSpec.DistributedBackend.Value(
            _BACKENDS[self.distributed_backend])
        if self.cpu_count is not None:
            spec.resources.cpus = float(self.cpu_count)
        if self.memory_mib is not None:
            spec.resources.memory_mib = self.memory_mib
        if self.gpu_count is not None:
            spec.resources.gpus = self.gpu_count
        if self._shm_mib is not None:
            spec.resources.shm_mib = self._shm_mib
        if self.max_run_duration_seconds:
            seconds = float(self.max_run_duration_seconds)
            spec.max_run_duration.seconds = int(seconds)
            spec.max_run_duration.nanos = int(round((seconds - int(seconds)) * 1e9)) % 10**9
        spec.priority = self.priority
        spec.max_retries = self.max_retries
        for target in self.outputs:
            out = spec.outputs.add()
            out.datastore = target.datastore
            out.path = target.path
        if idempotency_key:
            spec.idempotency_key = idempotency_key
        return spec

    def __repr__(self):
        return (f"{self._framework}(entry_script={self.entry_script!r}, "
                f"source_directory={self.source_directory!r}, node_count={self.node_count}, "
                f"process_count_per_node={self.process_count_per_node}, "
                f"distributed_backend={self.distributed_backend!r})")
