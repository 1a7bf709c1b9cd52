"""Deep-learning framework estimators: `from drover.train.dnn import PyTorch`."""

from typing import Optional

from drover.estimator import Estimator
from drover.exceptions import ParameterError


class PyTorch(Estimator):
    """An Estimator for a PyTorch script; takes every Estimator parameter.

    `framework_version` ("2.1.0"), when given, adds `torch==VERSION` to `pip_packages`;
    without it the image's own torch is used (the host image's python3-torch).
    `distributed_backend='pytorch'` gives every process torch.distributed's variables
    (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK); 'mpi' starts the processes with
    mpirun and, unless `horovod=False`, builds Horovod into the job's environment (once per
    node and image, cached), so that `import horovod.torch as hvd` works in the script."""

    _framework = "PyTorch"

    def __init__(self, source_directory: Optional[str] = None, *,
                 framework_version: Optional[str] = None,
                 horovod: Optional[bool] = None, **kwargs):
        if horovod is None:
            backend = kwargs.get("distributed_backend")
            horovod = isinstance(backend, str) and backend.lower() == "mpi"
        kwargs["horovod"] = horovod
        if framework_version is not None:
            if not isinstance(framework_version, str) or not framework_version or \
                    any(c.isspace() for c in framework_version):
                raise ParameterError(f"framework_version: {framework_version!r} is not a "
                                     "version such as '2.1.0'")
            pip = kwargs.get("pip_packages") or []
            if isinstance(pip, str):  # Estimator refuses it, naming pip_packages
                raise ParameterError(f"pip_packages: give a list of requirement strings, "
                                     f"for example [{pip!r}]")
            pip = list(pip)
            if any(p.split("=")[0].split("<")[0].split(">")[0] == "torch" for p in pip
                   if isinstance(p, str)):
                raise ParameterError("framework_version: pip_packages names torch too; give "
                                     "the version in one place")
            kwargs["pip_packages"] = pip + [f"torch=={framework_version}"]
        self.framework_version = framework_version
        super().__init__(source_directory, **kwargs)


__all__ = ["PyTorch"]
