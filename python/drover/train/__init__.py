"""Estimators by framework (`from drover.train.dnn import PyTorch`) and hyperparameter sweeps
(`from drover.train.hyperdrive import HyperDriveConfig, ...`)."""
