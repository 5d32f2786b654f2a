"""Code that runs inside kernels and job processes: the API client, tracking, training."""

from .tracking import Run, track  # noqa: E402
from .training import TrainJob, train  # noqa: E402

__all__ = ["Run", "TrainJob", "track", "train"]
