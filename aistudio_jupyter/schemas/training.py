"""The built-in trainer's request: ``POST /models/train`` validates it, the job process reads it.

One schema for both ends: the server refuses a bad spec with 422 before a job exists, and the
trainer (``runtime/trainer``) parses the very same JSON from ``AISTUDIO_JOB_SPEC``, so the two
cannot disagree about a field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from .common import Name, StrictModel
from .jobs import JobResources

Column = Annotated[str, StringConstraints(min_length=1, max_length=256)]
#: ``package.module:function``; imported only inside the job process, never by the server
EntryPoint = Annotated[str, StringConstraints(max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")]
ResourceId = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z]+_[0-9a-z]+$")]


class ModelSource(StrictModel):
    """Where the network comes from: a layer-list spec (``aistudio_jupyter.modelspec``) or a
    Python entry point called as ``function(input_dim=…, outputs=…, **kwargs)``."""

    spec: dict[str, Any] | None = Field(None, description="A model spec: {'input_shape': [...], 'layers': [...]}")
    entry_point: EntryPoint | None = Field(None, description="'module:function' returning a torch.nn.Module")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the entry point")

    @model_validator(mode="after")
    def _one_source(self) -> ModelSource:
        if (self.spec is None) == (self.entry_point is None):
            raise ValueError("give exactly one of 'spec' and 'entry_point'")
        if self.kwargs and self.entry_point is None:
            raise ValueError("'kwargs' go with 'entry_point'")
        return self


class Hyperparameters(StrictModel):
    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(32, ge=1, le=65_536)
    learning_rate: float = Field(1e-3, gt=0, le=10)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD only")
    weight_decay: float = Field(0.0, ge=0, le=1)
    schedule: Literal["constant", "cosine", "step", "linear_warmup"] = "constant"
    warmup_steps: int = Field(0, ge=0, le=10_000_000, description="linear_warmup: steps to reach the learning rate")
    step_epochs: int = Field(10, ge=1, le=10_000, description="step: epochs between decays")
    gamma: float = Field(0.1, gt=0, le=1, description="step: decay factor")
    mixed_precision: Literal["no", "bf16", "fp16"] = Field("no", description="autocast on CUDA; bf16 also on CPU; fp16 falls back to full precision on CPU")
    gradient_accumulation: int = Field(1, ge=1, le=1024, description="micro-batches per optimizer step")
    max_grad_norm: float | None = Field(None, gt=0, le=1e6)
    early_stopping_patience: int | None = Field(None, ge=1, le=10_000, description="stop after this many epochs without a better validation loss")
    seed: int = Field(0, ge=0, le=2**32 - 1)


class TrainSpec(StrictModel):
    """Body of ``POST /models/train``."""

    dataset: ResourceId = Field(description="Dataset id")
    dataset_version: int | None = Field(None, ge=1, le=10**9, description="Version number; the latest when left out (fixed at submission)")
    target: Column
    features: list[Column] | None = Field(None, min_length=1, max_length=10_000, description="Input columns; every other column when left out")
    task: Literal["classification", "regression"]
    model: ModelSource
    model_name: Name = Field(description="The model the trained weights are registered under (created when new)")
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    validation_split: float = Field(0.2, ge=0, le=0.9)
    checkpoint_every: int = Field(200, ge=0, le=10_000_000, description="Optimizer steps between checkpoints; 0: only at the end")
    resume_from_job: ResourceId | None = Field(None, description="Start from that train job's latest checkpoint")
    name: Name | None = Field(None, description="The job's name")
    resources: JobResources = Field(default_factory=JobResources)

    @model_validator(mode="after")
    def _target_not_feature(self) -> TrainSpec:
        if self.features is not None:
            if self.target in self.features:
                raise ValueError(f"the target {self.target!r} cannot also be a feature")
            if len(set(self.features)) != len(self.features):
                raise ValueError("features repeat a column")
        return self


class TrainJobSpec(TrainSpec):
    """What the server stores as a train job's spec: the request with everything resolved."""

    dataset_version: int = Field(ge=1)
    dataset_version_id: str
    features: list[Column] = Field(min_length=1)
    model_id: str
