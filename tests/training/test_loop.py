"""The trainer's core in-process: data preparation, the loop, checkpoints, the spec's ranges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from aistudio_jupyter.modelspec import build_module
from aistudio_jupyter.runtime.trainer import checkpoint, data, loop
from aistudio_jupyter.schemas.training import TrainJobSpec, TrainSpec

MLP = {"layers": [{"type": "linear", "out_features": 16}, {"type": "relu"}, {"type": "dropout", "p": 0.1}, {"type": "linear", "out_features": "auto"}]}


@pytest.fixture(autouse=True)
def one_thread():
    # tiny models on a busy CI machine: extra intra-op threads only contend (as in the trainer)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def blobs(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Three separable clusters in four dimensions, iris-like, with string labels."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0, 0], [4, 4, 0, 1], [0, 4, 4, 2]], dtype=float)
    label = rng.integers(0, 3, n)
    x = centers[label] + rng.normal(0, 0.7, (n, 4))
    frame = pd.DataFrame(x * [1, 10, 100, 0.1] + [0, 5, -50, 1], columns=["a", "b", "c", "d"])
    frame["species"] = np.array(["setosa", "versicolor", "virginica"])[label]
    return frame


def job_spec(**changes) -> TrainJobSpec:
    values = {
        "dataset": "ds_x",
        "dataset_version": 1,
        "dataset_version_id": "dv_x",
        "model_id": "mdl_x",
        "target": "species",
        "features": ["a", "b", "c", "d"],
        "task": "classification",
        "model": {"spec": {"input_shape": [4], **MLP}},
        "model_name": "iris",
        "hyperparameters": {"epochs": 6, "batch_size": 16, "learning_rate": 0.01, "seed": 3},
        "validation_split": 0.2,
    }
    values.update(changes)
    return TrainJobSpec.model_validate(values)


def make_trainer(spec: TrainJobSpec, frame: pd.DataFrame, **kw) -> loop.Trainer:
    prepared = data.prepare(frame, spec)
    loop.seed_everything(spec.hyperparameters.seed)
    module = build_module(spec.model.spec, outputs=prepared.outputs)
    return loop.Trainer(module, prepared, spec.hyperparameters, device="cpu", **kw)


def test_prepare_encodes_labels_and_standardises():
    spec = job_spec()
    prepared = data.prepare(blobs(), spec)
    assert prepared.labels == ["setosa", "versicolor", "virginica"]
    assert len(prepared.x_val) == 60 and len(prepared.x_train) == 240
    assert np.allclose(prepared.x_train.mean(axis=0), 0, atol=1e-5) and np.allclose(prepared.x_train.std(axis=0), 1, atol=1e-3)
    meta = prepared.preprocessing()
    assert meta["outputs"]["labels"] == prepared.labels and len(meta["inputs"]["mean"]) == 4
    # the same seed draws the same split
    again = data.prepare(blobs(), spec)
    assert np.array_equal(again.x_val, prepared.x_val)


def test_prepare_refuses_text_features_and_text_regression_targets():
    frame = blobs()
    frame["name"] = "x"
    with pytest.raises(ValueError, match="'name'.*not numeric"):
        data.prepare(frame, job_spec(features=["a", "name"]))
    with pytest.raises(ValueError, match="regression needs numbers"):
        data.prepare(frame, job_spec(task="regression"))


def test_classification_loss_falls_and_accuracy_is_high():
    logged: list[tuple[dict, int]] = []
    trainer = make_trainer(job_spec(), blobs(), log=lambda values, step: logged.append((values, step)))
    final = trainer.fit()
    losses = [v["train/loss"] for v, _ in logged if "train/loss" in v]
    assert len(losses) == trainer.total_steps == 6 * 15
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) / 3
    assert final["val/accuracy"] > 0.9
    epochs = [v for v, _ in logged if "val/loss" in v]
    assert len(epochs) == 6 and epochs[-1]["val/loss"] < epochs[0]["val/loss"]
    assert {"lr", "samples_per_s"} <= set(logged[0][0])


def test_regression_with_schedule_accumulation_and_bf16():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(400, 3)), columns=["x1", "x2", "x3"])
    frame["y"] = 300 + 50 * (2 * frame.x1 - frame.x2 + 0.5 * frame.x3) + rng.normal(0, 1, 400)
    hp = {"epochs": 8, "batch_size": 16, "learning_rate": 0.02, "optimizer": "adamw", "weight_decay": 0.01, "schedule": "cosine", "gradient_accumulation": 2, "mixed_precision": "bf16"}
    spec = job_spec(target="y", features=["x1", "x2", "x3"], task="regression", hyperparameters=hp, model={"spec": {"input_shape": [3], "layers": [{"type": "linear", "out_features": 32}, {"type": "gelu"}, {"type": "linear", "out_features": "auto"}]}})
    lrs = []
    trainer = make_trainer(spec, frame, log=lambda values, step: lrs.append(values["lr"]) if "lr" in values else None)
    assert trainer.steps_per_epoch == 10  # 20 micro-batches of 16, two per step
    final = trainer.fit()
    assert final["val/rmse"] < 25 and final["val/mae"] < 20  # the target's spread is ~115
    assert lrs[0] == pytest.approx(0.02) and lrs[-1] < 0.001


def test_lr_schedules():
    hp = TrainSpec.model_fields["hyperparameters"].annotation
    warm = hp(learning_rate=1.0, schedule="linear_warmup", warmup_steps=10)
    assert [round(loop.lr_at(warm, s, 110, 10), 3) for s in (0, 9, 10, 60, 110)] == [0.1, 1.0, 1.0, 0.5, 0.0]
    step = hp(learning_rate=1.0, schedule="step", step_epochs=2, gamma=0.5)
    assert [loop.lr_at(step, s, 100, 10) for s in (0, 19, 20, 45)] == [1.0, 1.0, 0.5, 0.25]


def test_early_stopping_ends_the_run():
    logged = []
    # a learning rate this large diverges: validation loss stops improving at once
    spec = job_spec(hyperparameters={"epochs": 50, "batch_size": 64, "learning_rate": 5.0, "optimizer": "sgd", "early_stopping_patience": 2, "seed": 1})
    trainer = make_trainer(spec, blobs(), log=lambda values, step: logged.append(values))
    trainer.fit()
    assert trainer.pos.stopped_early and trainer.pos.epoch < 50


def test_checkpoint_resume_continues_identically():
    spec = job_spec(hyperparameters={"epochs": 3, "batch_size": 16, "learning_rate": 0.01, "seed": 5, "gradient_accumulation": 2})
    saved: dict[int, bytes] = {}
    losses_a: dict[int, float] = {}

    def keep(trainer):
        saved[trainer.pos.step] = checkpoint.pack(*trainer.state())

    a = make_trainer(spec, blobs(), checkpoint_every=5, on_checkpoint=keep, log=lambda v, s: losses_a.__setitem__(s, v["train/loss"]) if "train/loss" in v else None)
    a.fit()
    assert 10 in saved  # mid-epoch: 8 steps per epoch
    losses_b: dict[int, float] = {}
    # a fresh process: different initial weights, resumed from the bytes alone
    torch.manual_seed(999)
    b = loop.Trainer(build_module(spec.model.spec, outputs=3), data.prepare(blobs(), spec), spec.hyperparameters, device="cpu",
                     log=lambda v, s: losses_b.__setitem__(s, v["train/loss"]) if "train/loss" in v else None)
    b.restore(*checkpoint.unpack(saved[10]))
    b.fit()
    assert sorted(losses_b) == list(range(11, a.pos.step + 1))
    assert all(losses_b[s] == losses_a[s] for s in losses_b)  # dropout included: the RNG state travelled
    for (name, wa), wb in zip(a.module.state_dict().items(), b.module.state_dict().values(), strict=True):
        assert torch.equal(wa, wb), name


def test_stop_request_checkpoints_then_raises():
    saved = []
    trainer = make_trainer(job_spec(), blobs(), on_checkpoint=lambda t: saved.append(t.pos.step), should_stop=lambda: True)
    with pytest.raises(loop.Stopped):
        trainer.fit()
    assert saved == [1]


def test_spec_ranges_and_shapes():
    base = job_spec().model_dump()
    for path, value in [(("hyperparameters", "epochs"), 10_001), (("hyperparameters", "learning_rate"), 0), (("hyperparameters", "batch_size"), 0), (("validation_split",), 1.0)]:
        bad = {**base, "hyperparameters": dict(base["hyperparameters"])}
        target = bad if len(path) == 1 else bad["hyperparameters"]
        target[path[-1]] = value
        with pytest.raises(ValidationError):
            TrainJobSpec.model_validate(bad)
    with pytest.raises(ValidationError, match="exactly one"):
        TrainJobSpec.model_validate({**base, "model": {"spec": MLP, "entry_point": "m:f"}})
    with pytest.raises(ValidationError, match="cannot also be a feature"):
        TrainJobSpec.model_validate({**base, "features": ["a", "species"]})


def _rank(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        trainer = make_trainer(data_parallel_spec(), blobs(), rank=rank, world=world)
        trainer.fit()
        torch.save(trainer.module.state_dict(), f"{out}/rank{rank}.pt")  # the test's own file
    finally:
        dist.destroy_process_group()


def data_parallel_spec() -> TrainJobSpec:
    # no dropout: its masks differ between one process and two
    layers = [{"type": "linear", "out_features": 16}, {"type": "relu"}, {"type": "linear", "out_features": "auto"}]
    return job_spec(model={"spec": {"input_shape": [4], "layers": layers}}, hyperparameters={"epochs": 2, "batch_size": 15, "learning_rate": 0.1, "optimizer": "sgd", "momentum": 0.9, "seed": 2, "gradient_accumulation": 2})


def test_data_parallel_ranks_take_the_single_process_steps(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork: the children start with torch and this module imported (spawn re-imports, ~10x slower)
    mp.start_processes(_rank, args=(2, port, str(tmp_path)), nprocs=2, start_method="fork")
    single = make_trainer(data_parallel_spec(), blobs())
    single.fit()
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name, weight in single.module.state_dict().items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name  # the ranks agree exactly
        assert torch.allclose(ranks[0][name], weight, atol=1e-5), name  # and take the one-process steps
