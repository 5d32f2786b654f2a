"""The training loop: any ``torch.nn.Module`` on a ``Prepared`` dataset, resumable to the step.

Everything that decides the next step is either saved in a checkpoint (weights, optimizer
state, RNG state, the position in the epoch, early-stopping counters, the loss scaler) or
derived from the seed and the position (each epoch's shuffle, the learning rate), so a run
restored from a checkpoint continues exactly as the uninterrupted run would have.

Under ``torchrun`` (a job with several GPUs) each of ``world`` ranks takes every world-th
sample of each batch and the gradients are summed across ranks, weighted so that the step is
the one a single process would take on the whole batch; rank 0 alone logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .config import Hyperparameters
from .data import Prepared

Log = Callable[[dict[str, float], int], None]


class Stopped(Exception):
    """Training was asked to stop (cancellation); the position was checkpointed first."""


@dataclasses.dataclass
class Position:
    step: int = 0
    epoch: int = 0
    #: micro-batches done in ``epoch``
    batch: int = 0
    best_val_loss: float | None = None
    bad_epochs: int = 0
    stopped_early: bool = False


def seed_everything(seed: int) -> None:
    """Seed torch (and numpy) before the module is built, so its initial weights repeat."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def pick_device(requested: str | None = None) -> torch.device:
    return torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu"))


def make_optimizer(params, hp: Hyperparameters) -> torch.optim.Optimizer:
    if hp.optimizer == "sgd":
        return torch.optim.SGD(params, lr=hp.learning_rate, momentum=hp.momentum, weight_decay=hp.weight_decay)
    cls = torch.optim.AdamW if hp.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)


def lr_at(hp: Hyperparameters, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based): a pure function, so resuming needs no scheduler state."""
    base = hp.learning_rate
    if hp.schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps)))
    if hp.schedule == "step":
        return base * hp.gamma ** ((step // max(1, steps_per_epoch)) // hp.step_epochs)
    if hp.schedule == "linear_warmup":
        warm = hp.warmup_steps
        if step < warm:
            return base * (step + 1) / warm
        # then linear decay to zero over the remaining steps
        return base * max(0.0, (total_steps - step) / max(1, total_steps - warm))
    return base


class Trainer:
    """Train ``module`` on ``data`` with ``hp``; ``fit()`` returns the final metrics."""

    def __init__(self, module: torch.nn.Module, data: Prepared, hp: Hyperparameters, *, checkpoint_every: int = 0, log: Log | None = None,
                 progress: Callable[[float], None] | None = None, on_checkpoint: Callable[[Trainer], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, device: str | None = None, rank: int = 0, world: int = 1):
        self.device = pick_device(device)
        self.rank, self.world = rank, world
        self.module = module.to(self.device)
        self.data, self.hp = data, hp
        self.checkpoint_every = checkpoint_every
        self.log = log or (lambda values, step: None)
        self.progress = progress or (lambda fraction: None)
        self.on_checkpoint = on_checkpoint or (lambda trainer: None)
        self.should_stop = should_stop or (lambda: False)
        self.optimizer = make_optimizer(self.module.parameters(), hp)
        self.classification = data.labels is not None
        self.loss_fn = torch.nn.CrossEntropyLoss() if self.classification else torch.nn.MSELoss()
        amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(hp.mixed_precision)
        if self.device.type != "cuda" and amp is torch.float16:
            amp = None  # fp16 autocast is a GPU feature; on CPU the run stays in full precision
        self.amp_dtype = amp
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp is torch.float16)
        self.x_train = torch.from_numpy(np.ascontiguousarray(data.x_train)).to(self.device)
        self.y_train = torch.from_numpy(np.ascontiguousarray(data.y_train)).to(self.device)
        self.x_val = torch.from_numpy(np.ascontiguousarray(data.x_val)).to(self.device)
        self.y_val = torch.from_numpy(np.ascontiguousarray(data.y_val)).to(self.device)
        if not self.classification:
            self.y_train, self.y_val = self.y_train.float().reshape(-1, 1), self.y_val.float().reshape(-1, 1)
        self.batches_per_epoch = math.ceil(len(self.x_train) / hp.batch_size)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / hp.gradient_accumulation)
        self.total_steps = self.steps_per_epoch * hp.epochs
        self.pos = Position()
        self.last: dict[str, float] = {}

    # -- the loop ------------------------------------------------------------------------------

    def _order(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.hp.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.x_train), generator=generator).to(self.device)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()  # an autocast(enabled=False) per batch costs as much as a small layer
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(out.float(), y)

    def fit(self) -> dict[str, float]:
        """Train to the last epoch (or early stop); raises ``Stopped`` when ``should_stop`` says so."""
        hp, bs = self.hp, self.hp.batch_size
        self.module.train()
        tick = time.perf_counter()
        while self.pos.epoch < hp.epochs and not self.pos.stopped_early:
            order = self._order(self.pos.epoch)
            epoch_loss, epoch_samples = 0.0, 0
            while self.pos.batch < self.batches_per_epoch:
                first = self.pos.batch
                group = range(first, min(first + hp.gradient_accumulation, self.batches_per_epoch))
                n = min(len(order), group.stop * bs) - first * bs
                lr = lr_at(hp, self.pos.step, self.total_steps, self.steps_per_epoch)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
                self.optimizer.zero_grad(set_to_none=True)
                step_loss = 0.0
                for b in group:
                    idx = order[b * bs : (b + 1) * bs]
                    if self.world > 1:
                        idx = idx[self.rank :: self.world]
                        if not len(idx):
                            continue
                    with self._autocast():
                        out = self.module(self.x_train[idx])
                    loss = self._loss(out, self.y_train[idx])
                    if len(idx) != n:
                        # weighted so the accumulated gradient is the mean over the whole group
                        loss = loss * (len(idx) / n)
                    (self.scaler.scale(loss) if self.scaler.is_enabled() else loss).backward()
                    step_loss += loss.item()
                stop = self.should_stop()
                if self.world > 1:
                    step_loss, stop = self._all_reduce(step_loss, stop)
                if hp.max_grad_norm:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.module.parameters(), hp.max_grad_norm)
                if self.scaler.is_enabled():
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.pos.batch, self.pos.step = group.stop, self.pos.step + 1
                epoch_loss, epoch_samples = epoch_loss + step_loss * n, epoch_samples + n
                now = time.perf_counter()
                values = {"train/loss": step_loss, "lr": lr, "samples_per_s": n / max(now - tick, 1e-9)}
                tick = now
                if self.device.type == "cuda":
                    values["gpu_memory_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
                self.last.update(values)
                if self.rank == 0:
                    self.log(values, self.pos.step)
                    self.progress(min(1.0, self.pos.step / max(1, self.total_steps)))
                if self.checkpoint_every and self.pos.step % self.checkpoint_every == 0:
                    self.on_checkpoint(self)
                if stop:
                    self.on_checkpoint(self)
                    raise Stopped(f"stopped at step {self.pos.step}")
            self._end_epoch(epoch_loss / max(1, epoch_samples))
            tick = time.perf_counter()
        if self.rank == 0:
            self.progress(1.0)
        return dict(self.last)

    def _all_reduce(self, step_loss: float, stop: bool) -> tuple[float, bool]:
        """Sum the ranks' gradients and losses; stop when any rank was asked to."""
        import torch.distributed as dist

        for p in self.module.parameters():
            if p.requires_grad:
                if p.grad is None:  # this rank had no sample in the step
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
        shared = torch.tensor([step_loss, float(stop)], device=self.device)
        dist.all_reduce(shared)
        return shared[0].item(), shared[1].item() > 0

    def _end_epoch(self, train_loss: float) -> None:
        metrics = {"epoch": float(self.pos.epoch + 1), "train/epoch_loss": train_loss, **self.evaluate()}
        watched = metrics.get("val/loss", train_loss)
        if self.pos.best_val_loss is None or watched < self.pos.best_val_loss:
            self.pos.best_val_loss, self.pos.bad_epochs = watched, 0
        else:
            self.pos.bad_epochs += 1
            patience = self.hp.early_stopping_patience
            if patience is not None and self.pos.bad_epochs >= patience:
                self.pos.stopped_early = True
        self.pos.epoch, self.pos.batch = self.pos.epoch + 1, 0
        self.last.update(metrics)
        if self.rank == 0:
            self.log(metrics, self.pos.step)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss and accuracy (classification) or RMSE and MAE in the target's units."""
        if not len(self.x_val):
            return {}
        self.module.eval()
        try:
            outs = []
            for start in range(0, len(self.x_val), 4096):
                with self._autocast():
                    outs.append(self.module(self.x_val[start : start + 4096]).float())
            out = torch.cat(outs)
        finally:
            self.module.train()
        metrics = {"val/loss": self._loss(out, self.y_val).item()}
        if self.classification:
            metrics["val/accuracy"] = (out.argmax(dim=1) == self.y_val).float().mean().item()
        else:
            err = (out - self.y_val) * self.data.target_std
            metrics["val/rmse"] = err.pow(2).mean().sqrt().item()
            metrics["val/mae"] = err.abs().mean().item()
        return metrics

    # -- state ---------------------------------------------------------------------------------

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Everything a resumed run needs: tensors, and JSON for the rest."""
        tensors = {f"model.{k}": v for k, v in self.module.state_dict().items()}
        opt = self.optimizer.state_dict()
        scalars = {}
        for pid, entry in opt["state"].items():
            for k, v in entry.items():
                if torch.is_tensor(v):
                    tensors[f"optim.{pid}.{k}"] = v
                else:
                    scalars[f"{pid}.{k}"] = v
        tensors["rng.cpu"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {
            "position": dataclasses.asdict(self.pos),
            "param_groups": opt["param_groups"],
            "optimizer_scalars": scalars,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "last": self.last,
        }
        return tensors, meta

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Continue from ``state()`` output (possibly saved by another process)."""
        self.module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        state: dict[int, dict[str, Any]] = {}
        for key, v in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                state.setdefault(int(pid), {})[name] = v
        for key, v in meta.get("optimizer_scalars", {}).items():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = v
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        torch.set_rng_state(tensors["rng.cpu"])
        if self.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        if meta.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(meta["scaler"])
        self.pos = Position(**meta["position"])
        self.last = dict(meta.get("last", {}))
