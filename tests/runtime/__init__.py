"""Tests of code that runs inside kernels: the Python client and how kernels find their server."""
