"""The train job's spec: the same pydantic model the server validated ``POST /models/train`` with."""

from __future__ import annotations

import json
from pathlib import Path

from ...schemas.training import Hyperparameters, ModelSource, TrainJobSpec, TrainSpec

__all__ = ["Hyperparameters", "ModelSource", "TrainJobSpec", "TrainSpec", "load_job_spec"]


def load_job_spec(path: str | Path) -> TrainJobSpec:
    """Read ``AISTUDIO_JOB_SPEC``: the job's spec, or a job record holding it under ``spec``."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, dict) and isinstance(data.get("spec"), dict) and "kind" in data:
        data = data["spec"]
    return TrainJobSpec.model_validate(data)
