"""The built-in trainer: a train job's process (``python -m aistudio_jupyter.runtime.trainer``).

``data`` turns a dataset version into standardised tensors, ``loop`` trains any module on
them (pure: no server needed, so tests and notebooks can run it in-process), ``checkpoint``
packs the whole training state into one safetensors file, and ``__main__`` wires them to the
API: spec in, metrics and checkpoints out, a registered model version at the end.
"""
