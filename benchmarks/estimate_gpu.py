"""Benchmark: the compute estimate's predicted peak training memory against the real peak.

The claim (issue 4, "Estimates"): on a GPU, the peak memory ``POST /compute/estimate``
predicts for a training step is within 15% of ``torch.cuda.max_memory_allocated`` after a few
real steps of the same model, batch, precision and optimizer.

Each configuration runs in its own process (``python -m aistudio_jupyter.modelspec.measure``,
the child the server's measured mode uses), so every peak starts from an empty allocator. The
prediction is ``services.estimator.memory_of(...).peak``: weights, gradients, optimizer state,
the activations shape inference says autograd keeps, and the optimizer's temporaries.

    .venv/bin/python benchmarks/estimate_gpu.py [--json out.json] [--steps 5]

Needs a CUDA GPU; exits with status 2 without one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

MLP = {"input_shape": [1024], "layers": [{"type": "linear", "out_features": 4096}, {"type": "relu"}, {"type": "linear", "out_features": 4096}, {"type": "gelu"},
                                        {"type": "dropout", "p": 0.1}, {"type": "linear", "out_features": 10}]}  # fmt: skip
CNN = {"input_shape": [3, 64, 64], "layers": [
    {"type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1}, {"type": "batchnorm2d"}, {"type": "relu"}, {"type": "maxpool2d", "kernel_size": 2},
    {"type": "conv2d", "out_channels": 128, "kernel_size": 3, "padding": 1}, {"type": "batchnorm2d"}, {"type": "relu"}, {"type": "maxpool2d", "kernel_size": 2},
    {"type": "flatten"}, {"type": "linear", "out_features": 256}, {"type": "relu"}, {"type": "linear", "out_features": 10}]}  # fmt: skip
TRANSFORMER = {"input_shape": [256], "layers": [
    {"type": "embedding", "num_embeddings": 8000, "embedding_dim": 512, "positional": True},
    *[{"type": "transformer_encoder_layer", "nhead": 8, "dim_feedforward": 2048, "dropout": 0.1} for _ in range(4)],
    {"type": "mean_pool"}, {"type": "linear", "out_features": 10}]}  # fmt: skip
CONFIGS = [
    ("mlp", MLP, 1024),
    ("cnn", CNN, 128),
    ("transformer", TRANSFORMER, 64),
]


def predicted_peak(spec: dict, batch: int, precision: str, optimizer: str) -> int:
    from aistudio_jupyter.schemas.compute import EstimateIn
    from aistudio_jupyter.services.estimator import memory_of, profile_of

    req = EstimateIn(model=spec, batch_size=batch, precision=precision, optimizer=optimizer)
    return memory_of(profile_of(req), req, batch).peak


def measured(spec: dict, batch: int, precision: str, optimizer: str, steps: int) -> dict:
    request = {"model": spec, "batch_size": batch, "steps": steps, "precision": precision, "optimizer": optimizer, "device": "cuda"}
    done = subprocess.run([sys.executable, "-m", "aistudio_jupyter.modelspec.measure"], input=json.dumps(request), capture_output=True, text=True, timeout=600)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if "error" in answer:
        raise RuntimeError(answer["error"])
    return answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to compare (the claim is about torch.cuda.max_memory_allocated)")
        return 2
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    rows = []
    print(f"{'model':<12} {'precision':<11} {'optimizer':<7} {'batch':>5} {'predicted MiB':>14} {'measured MiB':>13} {'ratio':>6} {'samples/s':>10}")
    for name, spec, batch in CONFIGS:
        for precision in ("fp32", "bf16_mixed"):
            for optimizer in ("adamw", "sgd_momentum"):
                predicted = predicted_peak(spec, batch, precision, optimizer)
                real = measured(spec, batch, precision, optimizer, args.steps)
                ratio = predicted / real["peak_memory_bytes"]
                rows.append({"model": name, "precision": precision, "optimizer": optimizer, "batch": batch, "predicted_bytes": predicted, **real, "ratio": ratio})
                print(f"{name:<12} {precision:<11} {optimizer:<7} {batch:>5} {predicted / 2**20:>14.1f} {real['peak_memory_bytes'] / 2**20:>13.1f} {ratio:>6.3f} {real['samples_per_second']:>10.0f}")
    within = sum(abs(r["ratio"] - 1) <= 0.15 for r in rows)
    print(f"within 15% of max_memory_allocated: {within}/{len(rows)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
