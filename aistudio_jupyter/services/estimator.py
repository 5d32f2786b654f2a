"""The arithmetic of ``POST /compute/estimate``: bytes per GPU, FLOPs, time and cost. Pure
Python, so an estimate costs microseconds and can be re-run with changed inputs to put numbers
on its own advice.

Memory follows what PyTorch allocates during a training step on one GPU:

- weights, gradients and optimizer state are exact: fp32 (4 bytes) under fp32 and autocast
  mixed precision, whose fp32 weights are the master copy; bf16 (2 bytes) for pure bf16, where
  Adam's moments are bf16 too (``zeros_like(param)``). Adam's per-tensor ``step`` counters live
  on the host and are left out.
- activations: what autograd saves, from shape inference (``modelspec.shapes``) times the
  micro-batch; 2 bytes per element under mixed precision plus autocast's half-precision copies
  of the matmul weights, which the saved graph holds until backward.
- the peak is the largest of: the end of forward (all activations), each layer's backward
  (earlier activations, later gradients, the gradient flowing through), and the optimizer step
  (gradients + foreach temporaries). ``zero_grad()`` frees gradients (set_to_none), so they
  coexist with activations only under gradient accumulation.
"""

from __future__ import annotations

import dataclasses
import math

from ..errors import InvalidInput
from ..modelspec import SpecError, infer_shapes
from ..schemas.compute import GPUS, ComputeOut, EstimateIn, EstimateOut, LayerOut, MemoryBreakdown

MIB = 1024**2
GIB = 1024**3
#: CUDA context + kernels + cuBLAS workspace of a PyTorch process: outside max_memory_allocated
CUDA_CONTEXT_BYTES = 600 * MIB
#: the caching allocator rounds and fragments: reserved runs this much above allocated
ALLOCATOR_SLACK = 0.05
#: layers whose weights autocast casts to half precision (and caches for the step)
AUTOCAST_CASTS = {"linear", "conv1d", "conv2d", "transformer_encoder_layer"}
#: a run longer than this gets advice on going faster
SLOW_SECONDS = 24 * 3600


@dataclasses.dataclass
class Stage:
    """One step of the backward pass (a layer, or a checkpointed chunk of layers)."""

    kept_per_sample: float = 0.0  # bytes alive from its forward until its backward
    kept_fixed: float = 0.0  # the same, independent of the batch (autocast weight copies)
    working_per_sample: float = 0.0  # extra bytes while its backward runs (gradient in/out, recomputed activations)
    grad_bytes: int = 0  # its parameters' gradients


@dataclasses.dataclass
class Profile:
    """What the estimate needs to know about a model, whatever the way it was described."""

    params: int
    param_tensors: int | None
    input_bytes_per_sample: float
    forward_flops_per_sample: float
    stages: list[Stage]
    layers: list[LayerOut] | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


def _precision_bytes(precision: str) -> tuple[int, int]:
    """(bytes per weight/gradient/optimizer-state element, bytes per activation element)."""
    return {"fp32": (4, 4), "fp16_mixed": (4, 2), "bf16_mixed": (4, 2), "bf16": (2, 2)}[precision]


def _autocast_cast_params(info) -> int:
    """Parameters of a layer that autocast copies to 16 bits (matmul weights and biases, not norms)."""
    if info.type not in AUTOCAST_CASTS:
        return 0
    norms = 4 * info.output_shape[-1] if info.type == "transformer_encoder_layer" else 0
    return info.params - norms


def _spec_profile(req: EstimateIn) -> Profile:
    try:
        infos = infer_shapes(req.model, req.outputs)
    except SpecError as exc:
        field = "outputs" if exc.index < 0 else f"model.layers.{exc.index}"
        raise InvalidInput(f"{field}: {exc.message}", {"field": field, "layer": exc.index}) from None
    wbytes, abytes = _precision_bytes(req.precision)
    mixed = req.precision.endswith("_mixed")
    stages = []
    for info in infos:
        stages.append(
            Stage(
                kept_per_sample=info.saved_elements * abytes + info.saved_fixed_bytes,
                kept_fixed=2 * _autocast_cast_params(info) if mixed else 0,
                working_per_sample=(math.prod(info.input_shape) + math.prod(info.output_shape)) * abytes,
                grad_bytes=info.params * wbytes,
            )
        )
    # the loss keeps its log-softmax (float32) of the logits
    stages[-1].kept_per_sample += math.prod(infos[-1].output_shape) * 4
    if req.activation_checkpointing:
        stages = _checkpointed(stages, [math.prod(i.input_shape) * abytes for i in infos])
    long_input = req.model.input_dtype == "long"
    return Profile(
        params=sum(i.params for i in infos),
        param_tensors=sum(i.param_tensors for i in infos),
        input_bytes_per_sample=math.prod(req.model.input_shape) * (8 if long_input else (2 if req.precision == "bf16" else 4)),
        forward_flops_per_sample=float(sum(i.flops for i in infos)),
        stages=stages,
        layers=[LayerOut(**i.to_dict()) for i in infos],
    )


def _checkpointed(stages: list[Stage], input_bytes: list[float]) -> list[Stage]:
    """``checkpoint_sequential`` with √n chunks: a chunk keeps only its input until its
    backward recomputes the rest."""
    n = len(stages)
    size = max(1, math.ceil(n / max(1, round(math.sqrt(n)))))
    chunks = []
    for start in range(0, n, size):
        part = stages[start : start + size]
        chunks.append(
            Stage(
                kept_per_sample=input_bytes[start] if start else 0.0,  # the model input is counted with the batch
                kept_fixed=0.0,
                working_per_sample=sum(s.kept_per_sample for s in part) + max(s.working_per_sample for s in part),
                grad_bytes=sum(s.grad_bytes for s in part),
            )
        )
        chunks[-1].kept_fixed = sum(s.kept_fixed for s in part)  # autocast copies are re-cast on recompute; kept conservatively
    return chunks


def transformer_params(dims) -> tuple[int, int]:
    """(parameters, parameter tensors) of ``TransformerDims``' model."""
    d, f = dims.d_model, dims.ffn or 4 * dims.d_model
    block = (3 * d * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d) + 4 * d
    return dims.vocab * d + dims.layers * block + 2 * d, 1 + 12 * dims.layers + 2


def _transformer_profile(req: EstimateIn) -> Profile:
    dims = req.transformer
    wbytes, abytes = _precision_bytes(req.precision)
    mixed = req.precision.endswith("_mixed")
    s, d, f, L, V = dims.seq_len, dims.d_model, dims.ffn or 4 * dims.d_model, dims.layers, dims.vocab
    params, tensors = transformer_params(dims)
    block_params = (params - V * d - 2 * d) // L
    # per block and token: its input, q/k/v, attention output and its copy, the norms' inputs and
    # outputs, the feed-forward activations (the same accounting as a spec's encoder layer)
    block = Stage(
        kept_per_sample=s * ((8 * d + 2 * f) * abytes + 16 + 4 * dims.heads),
        kept_fixed=2 * (block_params - 4 * d) if mixed else 0,
        working_per_sample=2 * s * d * abytes,
        grad_bytes=block_params * wbytes,
    )
    blocks = [dataclasses.replace(block) for _ in range(L)]
    if req.activation_checkpointing:
        blocks = [dataclasses.replace(b, kept_per_sample=s * d * abytes, working_per_sample=b.kept_per_sample + b.working_per_sample) for b in blocks]
    head = Stage(
        # final norm's input and output, the logits and the loss's float32 log-softmax
        kept_per_sample=s * (2 * d * abytes + 8 + V * (abytes + 4)),
        kept_fixed=2 * V * d if mixed else 0,
        working_per_sample=s * V * 4 + s * d * abytes,
        grad_bytes=(V * d + 2 * d) * wbytes,
    )
    # attention: QKᵀ and AV, 2·s·d multiply-adds each per token and layer
    forward = 2 * params * s + 4 * L * s * s * d
    return Profile(
        params=params,
        param_tensors=tensors,
        input_bytes_per_sample=s * 8 * 2,  # token ids and shifted targets
        forward_flops_per_sample=float(forward),
        stages=blocks + [head],
        notes=[
            f"Transformer: {L} pre-norm blocks with biases, width {d}, {dims.heads} heads, feed-forward {f}, vocabulary {V} tied with the output head, no dropout; "
            "fused attention (scaled_dot_product_attention) keeps no sequence² matrix."
        ],
    )


def _count_profile(req: EstimateIn) -> Profile:
    wbytes, _ = _precision_bytes(req.precision)
    tokens = req.sequence_length or 1
    return Profile(
        params=req.parameter_count,
        param_tensors=None,
        input_bytes_per_sample=0.0,
        forward_flops_per_sample=2.0 * req.parameter_count * tokens,
        stages=[Stage(grad_bytes=req.parameter_count * wbytes)],
        notes=["Only the parameter count is known: activations are not included (give a model spec or transformer dimensions), FLOPs are 6 × parameters × tokens per sample."],
    )


def profile_of(req: EstimateIn) -> Profile:
    """The model of the request, however it was described."""
    if req.model is not None:
        return _spec_profile(req)
    if req.transformer is not None:
        return _transformer_profile(req)
    return _count_profile(req)


@dataclasses.dataclass
class Memory:
    weights: int
    gradients: int
    optimizer_state: int
    activations: int
    temporaries: int
    ddp: int
    peak: int

    @property
    def total(self) -> int:
        return self.peak + CUDA_CONTEXT_BYTES + self.slack

    @property
    def slack(self) -> int:
        return int(self.peak * ALLOCATOR_SLACK)


def memory_of(profile: Profile, req: EstimateIn, batch: int) -> Memory:
    """Bytes on one GPU for a micro-batch of ``batch`` samples."""
    wbytes, _ = _precision_bytes(req.precision)
    weights = gradients = profile.params * wbytes
    states = {"sgd": 0, "sgd_momentum": 1, "adam": 2, "adamw": 2}[req.optimizer]
    optimizer = states * profile.params * wbytes
    # foreach Adam allocates sqrt(v) for every parameter during the step
    temporaries = profile.params * wbytes if req.optimizer in ("adam", "adamw") else 0
    ddp = gradients if req.gpus > 1 else 0
    inputs = batch * profile.input_bytes_per_sample
    kept = [batch * s.kept_per_sample + s.kept_fixed for s in profile.stages]
    activations = inputs + sum(kept)
    # gradients persist between the micro-batches of one optimizer step
    held = weights + optimizer + ddp + inputs + (gradients if req.gradient_accumulation > 1 else 0)
    peak = held + sum(kept)
    grads_done = 0
    before = sum(kept)
    for stage, k in zip(reversed(profile.stages), reversed(kept)):
        before -= k
        grads_done += stage.grad_bytes
        during = held + before + k + batch * stage.working_per_sample + (0 if req.gradient_accumulation > 1 else grads_done)
        peak = max(peak, during)
    peak = max(peak, weights + optimizer + gradients + ddp + inputs + temporaries)
    return Memory(weights, gradients, optimizer, int(activations), temporaries, ddp, int(peak))


def largest_batch(profile: Profile, req: EstimateIn, memory_bytes: int, limit: int = 1 << 20) -> int:
    """The largest micro-batch whose total fits in ``memory_bytes`` (0: not even one sample)."""
    if memory_of(profile, req, 1).total > memory_bytes:
        return 0
    lo, hi = 1, 2
    while hi <= limit and memory_of(profile, req, hi).total <= memory_bytes:
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if memory_of(profile, req, mid).total <= memory_bytes else (lo, mid)
    return lo


def estimate(req: EstimateIn, price_per_gpu_hour: float) -> EstimateOut:
    """Memory, time, cost and advice for ``req`` (no measurement)."""
    gpu = GPUS[req.gpu]
    tflops = gpu.tflops[req.precision]
    if tflops is None:
        raise InvalidInput(f"precision: the {gpu.name} has no bfloat16 arithmetic; use fp16_mixed", {"field": "precision"})
    profile = profile_of(req)
    mem = memory_of(profile, req, req.batch_size)
    memory = MemoryBreakdown(
        weights=mem.weights,
        gradients=mem.gradients,
        optimizer_state=mem.optimizer_state,
        activations=mem.activations,
        optimizer_step_temporaries=mem.temporaries,
        ddp_buckets=mem.ddp,
        peak_bytes=mem.peak,
        cuda_context=CUDA_CONTEXT_BYTES,
        allocator_slack=mem.slack,
        total_bytes=mem.total,
        gpu_memory_bytes=gpu.memory_bytes,
        fits=mem.total <= gpu.memory_bytes,
        utilisation_of_gpu_memory=round(mem.total / gpu.memory_bytes, 4),
    )
    compute = compute_of(profile, req, tflops, price_per_gpu_hour)
    return EstimateOut(
        parameters=profile.params,
        parameter_tensors=profile.param_tensors,
        gpu=req.gpu,
        gpu_name=gpu.name,
        gpus=req.gpus,
        precision=req.precision,
        optimizer=req.optimizer,
        memory=memory,
        compute=compute,
        advice=advise(profile, req, memory, compute),
        assumptions=assumptions(req) + profile.notes,
        layers=profile.layers,
    )


def compute_of(profile: Profile, req: EstimateIn, tflops: float, price: float) -> ComputeOut:
    # backward costs two forwards; checkpointing recomputes the forward once more
    # (a model of views and pools alone still costs something: never divide by zero)
    flops = max(1.0, profile.forward_flops_per_sample * (4 if req.activation_checkpointing else 3))
    per_step = req.batch_size * req.gradient_accumulation * req.gpus
    rate = tflops * 1e12 * req.utilization
    samples_per_second = req.gpus * rate / flops
    out = ComputeOut(
        flops_per_sample=flops,
        flops_per_step=flops * per_step,
        samples_per_step=per_step,
        peak_tflops_per_gpu=tflops,
        utilization=req.utilization,
        samples_per_second=samples_per_second,
        step_seconds=per_step / samples_per_second,
        price_per_gpu_hour=price,
    )
    if req.dataset_size is not None:
        out.epoch_seconds = req.dataset_size / samples_per_second
        out.total_seconds = out.epoch_seconds * req.epochs
        out.gpu_hours = out.total_seconds * req.gpus / 3600
        out.cost = round(out.gpu_hours * price, 2)
    return out


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _variant(req: EstimateIn, **changes) -> EstimateIn:
    return req.model_copy(update=changes)


def _total(req: EstimateIn, batch: int) -> int:
    """What the GPU must hold for ``req`` at micro-batch ``batch`` (the profile re-derived, as
    precision and checkpointing change it)."""
    return memory_of(profile_of(req), req, batch).total


def advise(profile: Profile, req: EstimateIn, memory: MemoryBreakdown, compute: ComputeOut) -> list[str]:
    """What to change, with the numbers the change gives."""
    advice: list[str] = []
    gpu = GPUS[req.gpu]
    half = "bf16_mixed" if gpu.tflops["bf16_mixed"] else "fp16_mixed"
    if not memory.fits:
        state = memory.weights + memory.gradients + memory.optimizer_state
        one = memory_of(profile, req, 1).total
        if one > gpu.memory_bytes:
            advice.append(
                f"Even a batch of one sample needs {_gib(one)} per GPU ({_gib(state)} of it weights, gradients and optimizer state), "
                f"more than the {_gib(gpu.memory_bytes)} of the {gpu.name}."
            )
            if req.precision != "bf16" and gpu.tflops["bf16"]:
                advice.append(f"precision 'bf16' (weights and optimizer state in bfloat16) needs {_gib(_total(_variant(req, precision='bf16'), 1))} at batch size 1.")
            if req.optimizer in ("adam", "adamw"):
                advice.append(f"optimizer 'sgd_momentum' keeps one state per parameter instead of two: {_gib(_total(_variant(req, optimizer='sgd_momentum'), 1))} at batch size 1.")
            usable = gpu.memory_bytes - CUDA_CONTEXT_BYTES
            if usable > 0:
                shards = math.ceil(state * (1 + ALLOCATOR_SLACK) / usable) + 1
                advice.append(f"More GPUs only help if they shard the state (FSDP or ZeRO-3): about {shards} × {req.gpu} or more; plain data parallelism copies it to every GPU.")
            bigger = [name for name, g in GPUS.items() if g.tflops[req.precision] and memory.total_bytes <= g.memory_bytes]
            if bigger:
                advice.append(f"GPUs where it fits as asked: {', '.join(bigger)}.")
        else:
            # accumulating keeps gradients alive through the next forward
            accumulating = _variant(req, gradient_accumulation=2)
            fitting = largest_batch(profile, accumulating, gpu.memory_bytes, req.batch_size)
            samples = req.batch_size * req.gradient_accumulation
            if fitting:
                advice.append(
                    f"batch_size {fitting} with gradient_accumulation {math.ceil(samples / fitting)} fits ({_gib(memory_of(profile, accumulating, fitting).total)}) "
                    f"and keeps about {samples} samples per optimizer step."
                )
            if req.precision == "fp32":
                mixed = _total(_variant(req, precision=half), req.batch_size)
                if mixed < memory.total_bytes:
                    advice.append(f"Mixed precision ('{half}') stores activations in 16 bits: {_gib(mixed)} at batch size {req.batch_size}, and runs on the tensor cores.")
            if not req.activation_checkpointing and req.parameter_count is None:
                ckpt = _total(_variant(req, activation_checkpointing=True), req.batch_size)
                advice.append(f"activation_checkpointing recomputes activations in backward: {_gib(ckpt)} at batch size {req.batch_size}, for about a third more compute.")
    else:
        fitting = largest_batch(profile, req, gpu.memory_bytes)
        if fitting >= 2 * req.batch_size:
            advice.append(f"Memory to spare: batch_size up to about {fitting} fits on the {gpu.name}.")
    if compute.total_seconds is not None and compute.total_seconds > SLOW_SECONDS:
        advice.append(f"About {_duration(compute.total_seconds)}: {4 * req.gpus} GPUs would take about {_duration(compute.total_seconds * req.gpus / (4 * req.gpus))} (data parallel, the same GPU-hours).")
    if req.precision == "fp32" and not any("Mixed precision" in a for a in advice) and (compute.total_seconds is None or compute.total_seconds > 600):
        speedup = gpu.tflops[half] / gpu.tflops["fp32"]
        advice.append(f"Mixed precision ('{half}') runs matmuls at {gpu.tflops[half]:g} instead of {gpu.tflops['fp32']:g} peak TFLOPS on the {gpu.name} (up to {speedup:.0f}× faster).")
    return advice


def assumptions(req: EstimateIn) -> list[str]:
    parts = [
        f"Peak memory is the allocator's peak of one training step; the total adds {_gib(CUDA_CONTEXT_BYTES)} of CUDA context and {ALLOCATOR_SLACK:.0%} allocator slack.",
        f"Time assumes {req.utilization:.0%} of the GPU's datasheet peak for {req.precision} and no input-pipeline stalls.",
        "zero_grad() frees gradients between steps (PyTorch's default); optimizers use the foreach implementation.",
    ]
    if req.precision.endswith("_mixed"):
        parts.append("Mixed precision is torch.autocast: fp32 weights (the master copy), fp32 gradients and optimizer state, 16-bit activations and weight copies.")
    if req.gpus > 1:
        parts.append("Several GPUs run data parallel (DDP): each holds a full replica and its gradient buckets.")
    return parts
