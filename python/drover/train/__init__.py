"""Estimators by framework: `from drover.train.dnn import PyTorch`."""
