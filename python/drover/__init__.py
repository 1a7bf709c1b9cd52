"""Drover's Python package: the in-job API and the client SDK.

In a job (standard library only; every job container gets this package):

    import drover
    run = drover.Run.get_context()
    run.log("loss", 0.25, step=100)

Inside a Drover job every call appends one JSON line to this rank's metrics file, which the
node's agent ships to droverd (`drover metrics JOB`). Outside Drover the same calls print the
values to stdout, so a script runs unchanged on a laptop.

From a client (needs grpcio and protobuf; docs/python-sdk.md):

    from drover import Workspace, Experiment, Datastore
    from drover.train.dnn import PyTorch
    ws = Workspace.from_config()
    run = Experiment(ws, "mnist").submit(PyTorch(source_directory=".", entry_script="train.py"))
    run.wait_for_completion(show_output=True)

The client names below are imported on first use, so `import drover` never needs grpcio.
"""

from drover.exceptions import DroverError, ParameterError, RunFailedError, ServerError
from drover.run import Run, MetricsError

_LAZY = {
    "Workspace": "drover.workspace",
    "ComputeTarget": "drover.workspace",
    "Datastore": "drover.workspace",
    "DataReference": "drover.data",
    "Experiment": "drover.experiment",
    "Estimator": "drover.estimator",
}

__all__ = ["Run", "MetricsError", "DroverError", "ParameterError", "RunFailedError",
           "ServerError"] + sorted(_LAZY)


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'drover' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
