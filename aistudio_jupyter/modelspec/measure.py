"""Time a few real training steps of a model spec on random data: ``python -m
aistudio_jupyter.modelspec.measure`` reads one JSON request on stdin and writes one JSON answer
on stdout. The server runs it as a child process, so torch, CUDA and a model that runs out of
memory never touch the server process.

Request: ``{"model": spec, "outputs": n|null, "batch_size": n, "steps": n, "precision":
"fp32"|"fp16_mixed"|"bf16_mixed"|"bf16", "optimizer": "sgd"|"sgd_momentum"|"adam"|"adamw",
"device": "auto"|"cpu"|"cuda", "threads": n}``. Answer: ``{"device", "steps", "batch_size",
"samples_per_second", "step_seconds", "peak_memory_bytes", "memory_kind"}`` or ``{"error"}``
with exit status 1.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the lifetime peak is the best baseline there is
        return _max_rss_bytes()


def _max_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _warm_up(torch, optimizer: str, precision: str) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1) if optimizer.startswith("sgd") else torch.optim.AdamW(model.parameters())
    dtype = {"fp16_mixed": torch.float16, "bf16_mixed": torch.bfloat16}.get(precision)
    with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        out = model(torch.randn(4, 8))
    torch.nn.functional.cross_entropy(out.float(), torch.zeros(4, dtype=torch.long)).backward()
    opt.step()


def measure(request: dict) -> dict:
    """Run the steps and report throughput and peak memory."""
    import torch

    from .build import build_module
    from .schema import ModelSpec
    from .shapes import output_shape

    spec = ModelSpec.model_validate(request["model"])
    outputs = request.get("outputs")
    batch, steps = int(request["batch_size"]), int(request["steps"])
    precision = request.get("precision", "fp32")
    if request.get("threads"):
        torch.set_num_threads(int(request["threads"]))
    wanted = request.get("device", "auto")
    cuda = torch.cuda.is_available() and wanted != "cpu"
    if wanted == "cuda" and not cuda:
        raise RuntimeError("no CUDA device is available")
    device = torch.device("cuda" if cuda else "cpu")

    if not cuda:
        # the first step of any model loads kernels and allocator pools (~80 MB of RSS on CPU):
        # pay for them on a throwaway model so the delta below is the measured model's
        _warm_up(torch, request.get("optimizer", "adamw"), precision)
    rss_before = _rss_bytes()
    torch.manual_seed(0)
    model = build_module(spec, outputs).to(device)
    weight_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model.to(weight_dtype).train()
    optimizer = {
        "sgd": lambda p: torch.optim.SGD(p, lr=1e-3),
        "sgd_momentum": lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9),
        "adam": lambda p: torch.optim.Adam(p, lr=1e-4),
        "adamw": lambda p: torch.optim.AdamW(p, lr=1e-4),
    }[request.get("optimizer", "adamw")](model.parameters())
    autocast_dtype = {"fp16_mixed": torch.float16, "bf16_mixed": torch.bfloat16}.get(precision)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16_mixed" and cuda else None

    shape = (batch, *spec.input_shape)
    if spec.input_dtype == "long":
        x = torch.randint(0, spec.layers[0].num_embeddings, shape, device=device)
    else:
        x = torch.randn(shape, device=device, dtype=weight_dtype)
    out_shape = output_shape(spec, outputs)
    classify = len(out_shape) == 1 and out_shape[0] > 1
    if classify:
        target = torch.randint(0, out_shape[0], (batch,), device=device)
        loss_fn = torch.nn.functional.cross_entropy
    else:
        target = torch.randn((batch, *out_shape), device=device)
        loss_fn = torch.nn.functional.mse_loss

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out = model(x)
        loss = loss_fn(out.float(), target)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()

    timings = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    timed = timings[1:] or timings  # the first step pays for lazy allocation and kernel selection
    step_seconds = sum(timed) / len(timed)
    return {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "steps": len(timed),
        "batch_size": batch,
        "samples_per_second": batch / step_seconds,
        "step_seconds": step_seconds,
        "peak_memory_bytes": int(torch.cuda.max_memory_allocated(device)) if cuda else max(0, _max_rss_bytes() - rss_before),
        "memory_kind": "cuda_max_memory_allocated" if cuda else "cpu_rss_delta",
    }


def main() -> int:
    try:
        answer = measure(json.loads(sys.stdin.read()))
    except Exception as exc:  # the server shows this message to the user who asked
        out_of_memory = "out of memory" in str(exc).lower()
        print(json.dumps({"error": ("out of memory: " if out_of_memory else "") + f"{type(exc).__name__}: {exc}"[:500]}))
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
