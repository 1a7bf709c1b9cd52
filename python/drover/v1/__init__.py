"""Drover API v1: the gRPC stubs, generated from proto/drover/v1 at build time.

CMake writes `<build>/python/drover/v1/*_pb2.py` and `*_pb2_grpc.py` beside this file;
`pip install ./python` generates them into the installed package (python/setup.py). They are
never committed.
"""
