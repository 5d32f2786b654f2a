"""What this host offers jobs: GPU indexes (NVML, else an already-imported torch) and CPU slots."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("aistudio.executors")


def nvml_gpus() -> list[int] | None:
    """GPU indexes NVML reports; None when NVML or its driver is missing."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver: a CPU machine
        return None
    try:
        return list(range(pynvml.nvmlDeviceGetCount()))
    except Exception:
        log.debug("NVML device count failed", exc_info=True)
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def torch_gpus() -> list[int] | None:
    """GPU indexes from torch, only when torch is already imported: importing it costs seconds
    and initialising CUDA in the server would pin GPU memory for nothing."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return list(range(torch.cuda.device_count()))
    except Exception:
        return None


def detect_gpus() -> list[int]:
    """This host's GPU indexes, or [] on a CPU-only machine."""
    found = nvml_gpus()
    if found is None:
        found = torch_gpus()
    return found or []
