"""`POST /compute/estimate`: memory, time and cost of training a model on known GPUs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from ..modelspec import ModelSpec
from .common import StrictModel

GIB = 1024**3


class GPU(BaseModel):
    """One GPU model: memory and datasheet peak dense (no sparsity) TFLOPS per precision."""

    name: str
    memory_bytes: int
    #: precision → peak dense TFLOPS; None where the GPU has no such arithmetic
    tflops: dict[str, float | None]


def _gpu(name: str, gib: float, fp32: float, fp16: float, bf16: float | None) -> GPU:
    # mixed precision runs matmuls on the tensor cores at the half-precision rate
    return GPU(name=name, memory_bytes=int(gib * GIB), tflops={"fp32": fp32, "fp16_mixed": fp16, "bf16_mixed": bf16, "bf16": bf16})


#: datasheet numbers; memory as the card's nominal size (the estimate reserves the CUDA context
#: and allocator slack on top). fp32 is the CUDA-core rate: torch leaves TF32 matmuls off.
GPUS: dict[str, GPU] = {
    "h100-80gb": _gpu("NVIDIA H100 80GB SXM", 80, 67.0, 989.0, 989.0),
    "h200-141gb": _gpu("NVIDIA H200 141GB", 141, 67.0, 989.0, 989.0),
    "a100-80gb": _gpu("NVIDIA A100 80GB", 80, 19.5, 312.0, 312.0),
    "a100-40gb": _gpu("NVIDIA A100 40GB", 40, 19.5, 312.0, 312.0),
    "l4": _gpu("NVIDIA L4 24GB", 24, 30.3, 121.0, 121.0),
    "a10g": _gpu("NVIDIA A10G 24GB", 24, 31.2, 125.0, 125.0),
    "rtx-4090": _gpu("NVIDIA GeForce RTX 4090 24GB", 24, 82.6, 165.2, 165.2),
    "t4": _gpu("NVIDIA T4 16GB", 16, 8.1, 65.0, None),
    "v100-32gb": _gpu("NVIDIA V100 32GB", 32, 15.7, 125.0, None),
    "v100-16gb": _gpu("NVIDIA V100 16GB", 16, 15.7, 125.0, None),
}

GpuType = Literal["h100-80gb", "h200-141gb", "a100-80gb", "a100-40gb", "l4", "a10g", "rtx-4090", "t4", "v100-32gb", "v100-16gb"]
assert set(GpuType.__args__) == set(GPUS)
Precision = Literal["fp32", "fp16_mixed", "bf16_mixed", "bf16"]
OptimizerName = Literal["sgd", "sgd_momentum", "adam", "adamw"]


class TransformerDims(StrictModel):
    """A decoder-style language model: token embedding tied with the output head, ``layers``
    pre-norm blocks of attention (with biases) and a two-matrix feed-forward, a final norm."""

    layers: int = Field(ge=1, le=1024)
    d_model: int = Field(ge=1, le=131_072)
    heads: int = Field(ge=1, le=1024)
    ffn: int | None = Field(None, ge=1, le=1_048_576, description="Feed-forward width; default 4 × d_model.")
    vocab: int = Field(ge=1, le=4_194_304)
    seq_len: int = Field(ge=1, le=1_048_576)

    @model_validator(mode="after")
    def _heads_divide_width(self):
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        return self


class EstimateIn(StrictModel):
    """What to train and where. Give exactly one of ``model``, ``parameter_count`` or ``transformer``."""

    model: ModelSpec | None = Field(None, description="A model spec (as for POST /models/train).")
    outputs: int | None = Field(None, ge=1, le=1_048_576, description="Resolves the spec's out_features 'auto'.")
    parameter_count: int | None = Field(None, ge=1, le=10**13, description="Only the size is known: activations are not estimated.")
    transformer: TransformerDims | None = None
    sequence_length: int | None = Field(None, ge=1, le=1_048_576, description="Tokens per sample, with parameter_count (FLOPs = 6 × parameters × tokens).")
    batch_size: int = Field(32, ge=1, le=1_048_576, description="Samples per GPU per forward pass (the micro-batch).")
    gradient_accumulation: int = Field(1, ge=1, le=65_536, description="Micro-batches per optimizer step.")
    precision: Precision = Field("fp32", description="fp32; fp16_mixed / bf16_mixed (torch.autocast with fp32 weights); bf16 (weights and optimizer state in bfloat16).")
    optimizer: OptimizerName = "adamw"
    activation_checkpointing: bool = Field(False, description="Recompute activations in backward: less memory, one more forward's compute.")
    dataset_size: int | None = Field(None, ge=1, le=10**13, description="Samples per epoch.")
    epochs: float = Field(1.0, gt=0, le=100_000)
    gpu: GpuType = "h100-80gb"
    gpus: int = Field(1, ge=1, le=4096, description="Data-parallel GPUs (each holds a full replica).")
    utilization: float = Field(0.4, gt=0, le=1, description="Fraction of the GPU's peak FLOPS the training reaches (model FLOPs utilisation).")
    measure: bool = Field(False, description="Also run a few real training steps of the model spec on this server's device (CPU or GPU) and extrapolate.")
    measure_steps: int = Field(5, ge=2, le=50, description="Steps to time in measured mode; the first is a warm-up and not counted.")

    @model_validator(mode="after")
    def _one_model(self):
        given = [name for name in ("model", "parameter_count", "transformer") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of model, parameter_count or transformer (got {', '.join(given) or 'none'})")
        if self.sequence_length is not None and self.parameter_count is None:
            raise ValueError("sequence_length goes with parameter_count; a model spec's input_shape and transformer.seq_len set it otherwise")
        if self.measure and self.model is None:
            raise ValueError("measure needs a model spec (model)")
        return self


class MemoryBreakdown(BaseModel):
    """Bytes on each GPU. ``peak_bytes`` predicts ``torch.cuda.max_memory_allocated``; the parts
    do not all coexist (gradients appear as backward frees activations), so it is not their sum."""

    weights: int
    gradients: int
    optimizer_state: int = Field(description="Adam/AdamW: two moments; SGD with momentum: one buffer; in the weights' dtype.")
    activations: int = Field(description="Saved for backward at the end of forward, for one micro-batch; includes the input batch and, under autocast, half-precision weight copies.")
    optimizer_step_temporaries: int = Field(description="Buffers the optimizer step allocates for a moment (foreach Adam: one per parameter).")
    ddp_buckets: int = Field(description="Gradient buckets DistributedDataParallel adds with more than one GPU.")
    peak_bytes: int = Field(description="Predicted peak of allocated memory during a training step.")
    cuda_context: int = Field(description="CUDA context, kernels and cuBLAS workspace: outside the allocator's count.")
    allocator_slack: int = Field(description="Headroom for the caching allocator's fragmentation.")
    total_bytes: int = Field(description="peak_bytes + cuda_context + allocator_slack: what the GPU must hold.")
    gpu_memory_bytes: int
    fits: bool
    utilisation_of_gpu_memory: float


class ComputeOut(BaseModel):
    flops_per_sample: float = Field(description="Training FLOPs for one sample (forward + backward, + recompute with checkpointing).")
    flops_per_step: float = Field(description="Training FLOPs of one optimizer step over all GPUs and accumulated micro-batches.")
    samples_per_step: int
    peak_tflops_per_gpu: float
    utilization: float
    samples_per_second: float
    step_seconds: float
    epoch_seconds: float | None = None
    total_seconds: float | None = None
    gpu_hours: float | None = None
    cost: float | None = None
    price_per_gpu_hour: float


class LayerOut(BaseModel):
    index: int
    type: str
    input_shape: list[int]
    output_shape: list[int]
    params: int
    param_tensors: int
    flops: int
    saved_elements: int
    saved_fixed_bytes: int


class MeasuredOut(BaseModel):
    """A few real training steps of the model spec on random data, in a child process."""

    device: str
    steps: int
    batch_size: int
    samples_per_second: float
    step_seconds: float
    peak_memory_bytes: int
    memory_kind: Literal["cuda_max_memory_allocated", "cpu_rss_delta"]
    epoch_seconds: float | None = None
    total_seconds: float | None = None


class EstimateOut(BaseModel):
    parameters: int
    parameter_tensors: int | None = Field(None, description="Parameter tensors (optimizers keep per-tensor step counters); unknown for parameter_count.")
    gpu: GpuType
    gpu_name: str
    gpus: int
    precision: Precision
    optimizer: OptimizerName
    memory: MemoryBreakdown
    compute: ComputeOut
    advice: list[str] = Field(description="What to change when it does not fit or is slow.")
    assumptions: list[str]
    layers: list[LayerOut] | None = Field(None, description="Per-layer shapes and sizes, when a model spec was given.")
    measured: MeasuredOut | None = None
    measure_error: str | None = Field(None, description="Why the measured run gave no numbers (timeout, out of memory, ...).")
