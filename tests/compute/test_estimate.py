"""`POST /compute/estimate` through HTTP: exact state bytes against real torch models, advice
when it does not fit, input errors, and a measured run in a child process."""

from __future__ import annotations

import asyncio
import json
import re
import shutil

import pytest
import torch
from traitlets.config import Config

from aistudio_jupyter.modelspec import build_module

from ..conftest import TOKENS, Reply
from .test_modelspec import CNN, TRANSFORMER, sample_batch

GIB = 1024**3
SMALL_MLP = {"input_shape": [16], "layers": [{"type": "linear", "out_features": 32}, {"type": "relu"}, {"type": "linear", "out_features": 4}]}


@pytest.fixture
def database_url(tmp_path, sqlite_template):
    """Estimates touch no table: SQLite alone (the PostgreSQL run would prove nothing more)."""
    path = tmp_path / "aistudio.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def compute_config() -> dict:
    """``c.ComputeService`` of the test server."""
    return {"measure_timeout": 120.0, "measure_threads": 1}


@pytest.fixture
def jp_server_config(aistudio_config, compute_config):
    aistudio_config["price_per_gpu_hour"] = 2.5
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"aistudio_jupyter": True}, "identity_provider_class": "tests.identity.NamedUsersIdentityProvider"},
            "AIStudio": aistudio_config,
            "ComputeService": compute_config,
        }
    )


def trained_state_bytes(spec: dict, precision: str, optimizer: str) -> tuple[int, int, int]:
    """(weights, gradients, optimizer state) bytes of the real module after one training step
    on CPU; Adam's per-tensor ``step`` counters (0-d, on the host) are left out as in the estimate."""
    module = build_module(spec)
    if precision == "bf16":
        module.to(torch.bfloat16)
    params = list(module.parameters())
    opt = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(optimizer, torch.optim.SGD)
    opt = opt(params, lr=1e-3, **({"momentum": 0.9} if optimizer == "sgd_momentum" else {}))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision.endswith("_mixed")):
        x = sample_batch(spec, 4)
        out = module(x.to(torch.bfloat16) if precision == "bf16" and x.is_floating_point() else x)
    out.float().square().mean().backward()
    opt.step()
    state = 0
    for per_param in opt.state.values():
        for key, value in per_param.items():
            if key == "step":
                assert value.dim() == 0
            elif torch.is_tensor(value):
                state += value.numel() * value.element_size()
    return (sum(p.numel() * p.element_size() for p in params), sum(p.grad.numel() * p.grad.element_size() for p in params), state)


async def test_state_bytes_are_exact_against_the_real_model(api):
    every = (("fp32", "adam"), ("bf16_mixed", "adam"), ("fp16_mixed", "adamw"), ("bf16", "adamw"), ("fp32", "sgd_momentum"), ("fp32", "sgd"))
    for spec, variants in ((CNN, every), (TRANSFORMER, every[:2])):
        for precision, optimizer in variants:
            reply = await api("POST", "compute/estimate", json_body={"model": spec, "precision": precision, "optimizer": optimizer, "batch_size": 8, "gpu": "a100-80gb"})
            assert reply.status == 200, reply.body
            memory = reply.body["memory"]
            expected = trained_state_bytes(spec, "bf16_mixed" if precision == "fp16_mixed" else precision, optimizer)
            assert (memory["weights"], memory["gradients"], memory["optimizer_state"]) == expected, (precision, optimizer)
            assert reply.body["parameters"] == sum(p.numel() for p in build_module(spec).parameters())
            assert reply.body["parameter_tensors"] == len(list(build_module(spec).parameters()))
            assert memory["fits"] and memory["peak_bytes"] >= memory["weights"] + memory["optimizer_state"] + memory["gradients"]
    layers = reply.body["layers"]
    assert [layer["type"] for layer in layers] == [layer["type"] for layer in TRANSFORMER["layers"]]
    assert layers[-1]["output_shape"] == [5]


async def test_seven_billion_parameters_do_not_fit_a_t4(api):
    reply = await api("POST", "compute/estimate", json_body={"parameter_count": 7_000_000_000, "sequence_length": 2048, "gpu": "t4", "precision": "fp16_mixed", "batch_size": 1, "dataset_size": 10_000})
    assert reply.status == 200, reply.body
    memory, advice = reply.body["memory"], reply.body["advice"]
    assert memory["weights"] == memory["gradients"] == 28_000_000_000 and memory["optimizer_state"] == 56_000_000_000
    assert not memory["fits"] and memory["total_bytes"] > memory["gpu_memory_bytes"] == 16 * GIB
    assert any(a.startswith("Even a batch of one sample needs") for a in advice)
    assert any("FSDP" in a for a in advice)
    assert any("sgd_momentum" in a for a in advice)
    compute = reply.body["compute"]
    assert compute["flops_per_sample"] == 6 * 7_000_000_000 * 2048
    assert compute["gpu_hours"] == pytest.approx(10_000 * compute["flops_per_sample"] / (65e12 * 0.4) / 3600)
    assert compute["cost"] == pytest.approx(compute["gpu_hours"] * 2.5, abs=0.01)


async def test_advice_on_activations_gives_a_batch_that_fits(api):
    body = {"transformer": {"layers": 24, "d_model": 2048, "heads": 16, "vocab": 50_000, "seq_len": 2048}, "batch_size": 64, "gpu": "a100-40gb", "precision": "fp32"}
    reply = await api("POST", "compute/estimate", json_body=body)
    assert reply.status == 200, reply.body
    assert not reply.body["memory"]["fits"]
    advice = reply.body["advice"]
    fitting, accumulation = next(map(int, m.groups()) for a in advice if (m := re.match(r"batch_size (\d+) with gradient_accumulation (\d+) fits", a)))
    assert 1 <= fitting < 64 and fitting * accumulation >= 64
    assert any("Mixed precision" in a for a in advice) and any("activation_checkpointing" in a for a in advice)
    again = await api("POST", "compute/estimate", json_body={**body, "batch_size": fitting, "gradient_accumulation": accumulation})
    assert again.body["memory"]["fits"]
    bigger = await api("POST", "compute/estimate", json_body={**body, "batch_size": fitting + 1, "gradient_accumulation": accumulation})
    assert not bigger.body["memory"]["fits"]
    # checkpointing trades memory for a fourth forward pass
    ckpt = await api("POST", "compute/estimate", json_body={**body, "activation_checkpointing": True})
    assert ckpt.body["memory"]["activations"] < reply.body["memory"]["activations"] / 3
    assert ckpt.body["compute"]["flops_per_sample"] == pytest.approx(reply.body["compute"]["flops_per_sample"] * 4 / 3)


async def test_transformer_dims_count_like_the_formula(api):
    dims = {"layers": 12, "d_model": 768, "heads": 12, "vocab": 50257, "seq_len": 1024}
    reply = await api("POST", "compute/estimate", json_body={"transformer": dims, "batch_size": 8, "gpus": 8, "precision": "bf16_mixed", "dataset_size": 1_000_000, "epochs": 2})
    assert reply.status == 200, reply.body
    d, f, L, V, s = 768, 4 * 768, 12, 50257, 1024
    params = V * d + L * (4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d) + 2 * d
    assert reply.body["parameters"] == params
    compute = reply.body["compute"]
    assert compute["flops_per_sample"] == pytest.approx(6 * params * s + 12 * L * s * s * d)
    assert compute["samples_per_step"] == 64
    assert compute["total_seconds"] == pytest.approx(2 * 1_000_000 * compute["flops_per_sample"] / (8 * 989e12 * 0.4))
    assert reply.body["memory"]["ddp_buckets"] == reply.body["memory"]["gradients"]


BAD_INPUTS = [
    ({"parameter_count": 1000, "batch_size": 0}, "batch_size"),
    ({"parameter_count": 1000, "gpu": "tpu-v5"}, "gpu"),
    ({"parameter_count": 1000, "utilization": 1.5}, "utilization"),
    ({"parameter_count": 1000, "precision": "fp8"}, "precision"),
    ({"parameter_count": 1000, "gpu": "t4", "precision": "bf16_mixed"}, "precision"),
    ({"parameter_count": 1000, "surprise": 1}, "surprise"),
    ({"transformer": {"layers": 2, "d_model": 100, "heads": 3, "vocab": 10, "seq_len": 8}}, "transformer"),
    ({"model": {"input_shape": [3, 8, 8], "layers": [{"type": "conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "relu"}, {"type": "dropout"}, {"type": "linear", "out_features": 2}]}}, "model.layers.3"),
    ({"model": {"input_shape": [4], "layers": [{"type": "linear", "out_features": "auto"}]}}, "model.layers.0"),
    ({"model": {"input_shape": [4], "layers": [{"type": "linear", "out_features": 0}]}}, "model.layers.0.linear.out_features"),
    ({"model": SMALL_MLP, "parameter_count": 10}, "give exactly one"),
    ({}, "give exactly one"),
    ({"parameter_count": 1000, "measure": True}, "measure needs a model spec"),
]


async def test_bad_input_is_a_422_naming_the_field(api):
    for body, field in BAD_INPUTS:
        reply = await api("POST", "compute/estimate", json_body=body)
        assert reply.status == 422, (body, reply.body)
        assert reply.error["code"] == "invalid"
        assert field in reply.error["message"], (field, reply.error["message"])


async def measure(jp_fetch, body: dict) -> Reply:
    """A measured estimate; starting torch in a child takes seconds on a busy CI machine."""
    response = await jp_fetch(
        "aistudio", "api", "compute", "estimate", method="POST", body=json.dumps(body), raise_error=False, request_timeout=150,
        headers={"Authorization": f"token {TOKENS['alice']}", "Content-Type": "application/json"},
    )  # fmt: skip
    return Reply(response.code, json.loads(response.body), response.headers)


async def test_measured_run_on_cpu(jp_fetch):
    body = {"model": SMALL_MLP, "batch_size": 64, "measure": True, "measure_steps": 4, "dataset_size": 6400, "epochs": 3}
    first, second = await asyncio.gather(measure(jp_fetch, body), measure(jp_fetch, body))
    # one measurement at a time per server: the other request is turned away, not queued
    (ok,), (busy,) = [r for r in (first, second) if r.status == 200], [r for r in (first, second) if r.status != 200]
    assert busy.status == 429 and busy.error["code"] == "rate_limited" and int(busy.headers["Retry-After"]) >= 1
    measured = ok.body["measured"]
    assert ok.body["measure_error"] is None
    assert measured["device"] == "cpu" and measured["memory_kind"] == "cpu_rss_delta"
    assert measured["samples_per_second"] > 0 and measured["steps"] == 3
    assert measured["epoch_seconds"] == pytest.approx(6400 / measured["samples_per_second"])
    assert measured["total_seconds"] == pytest.approx(3 * measured["epoch_seconds"])
    # the slot is free again once the measurement is over
    again = await measure(jp_fetch, {**body, "measure_steps": 2})
    assert again.status == 200 and again.body["measured"]["samples_per_second"] > 0


@pytest.mark.parametrize("compute_config", [{"measure_timeout": 0.3}])
async def test_measured_run_past_its_timeout_is_killed(api, compute_config):
    reply = await api("POST", "compute/estimate", json_body={"model": SMALL_MLP, "measure": True})
    assert reply.status == 200, reply.body
    assert reply.body["measured"] is None
    assert "did not finish within 0.3 s" in reply.body["measure_error"]
    assert reply.body["memory"]["peak_bytes"] > 0  # the estimate itself still answers


@pytest.mark.parametrize("compute_config", [{"measure_max_bytes": 1024}])
async def test_measure_refuses_a_run_bigger_than_the_limit(api, compute_config):
    reply = await api("POST", "compute/estimate", json_body={"model": CNN, "measure": True})
    assert reply.status == 422 and "measure" in reply.error["message"]
    assert reply.error["details"]["limit_bytes"] == 1024
