"""`from drover.train.estimator import Estimator`, the import path users know."""

from drover.estimator import Estimator

__all__ = ["Estimator"]
