"""Drover's in-job Python API: log metrics from a training script.

    import drover
    run = drover.Run.get_context()
    run.log("loss", 0.25, step=100)

Inside a Drover job every call appends one JSON line to this rank's metrics file, which the
node's agent ships to droverd (`drover metrics JOB`). Outside Drover the same calls print the
values to stdout, so a script runs unchanged on a laptop. Standard library only.
"""

from drover.run import Run, MetricsError

__all__ = ["Run", "MetricsError"]
