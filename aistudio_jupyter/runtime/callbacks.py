"""Training-framework callbacks that log to AI Studio: PyTorch Lightning and Hugging Face.

``trainer = lightning.Trainer(callbacks=[AIStudioLightningCallback("mnist")])`` or
``transformers.Trainer(..., callbacks=[AIStudioHFCallback("bert-ft")])``. Inside an AI Studio
job they log to that job (``Run.current()``); elsewhere each fit starts an interactive run
named ``name`` with the model's hyperparameters (Lightning) or the training arguments (HF) as
its config. Pass ``run=`` to log into a run of your own, which the callback then never ends.
A canceled job stops training at the next step.

Neither framework is a dependency: the classes are built on first access, so importing this
module works without them and naming a class without its framework raises ImportError.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .client import Client
from .tracking import MAX_KEY, Run, track

__all__ = ["AIStudioHFCallback", "AIStudioLightningCallback"]


def _clean_key(key: Any) -> str:
    """Framework metric names as valid keys: commas and control characters become ``_``."""
    text = "".join("_" if c == "," or ord(c) < 32 or c == "\x7f" else c for c in str(key))
    return text[:MAX_KEY] or "_"


class _Tracking:
    """What both callbacks share: open a run (or attach to the job), log scalars, end it."""

    def __init__(self, name: str | None = None, config: Mapping[str, Any] | None = None, *, run: Run | None = None, client: Client | None = None):
        super().__init__()
        self.name, self.config, self.client = name, dict(config or {}), client
        self.run: Run | None = run
        #: a run passed in belongs to the caller, who ends it
        self._ends_run = run is None

    def _open(self, default_name: str, config: Mapping[str, Any]) -> None:
        if self.run is not None:
            return
        if os.environ.get("AISTUDIO_JOB_ID"):
            # inside a job: log to it; its supervisor ends it
            self.run = Run.current(self.client)
        else:
            self.run = track(self.name or default_name, config={**config, **self.config}, client=self.client)

    def _log(self, metrics: Mapping[str, Any], step: int) -> None:
        if self.run is None:
            return
        scalars = {}
        for key, value in metrics.items():
            try:
                scalars[_clean_key(key)] = float(value)
            except (TypeError, ValueError, RuntimeError):  # strings, multi-element tensors
                continue
        if scalars:
            self.run.log(scalars, step=step)

    @property
    def _should_stop(self) -> bool:
        return self.run is not None and self.run.canceled

    def _close(self, state: str, reason: str | None = None) -> None:
        if self.run is None:
            return
        if self._ends_run:
            self.run.finish(state, reason)
            self.run = None
        else:
            self.run.flush()


def _lightning_callback() -> type:
    try:
        from lightning.pytorch.callbacks import Callback
    except ImportError:
        try:
            from pytorch_lightning.callbacks import Callback
        except ImportError:
            raise ImportError("AIStudioLightningCallback needs PyTorch Lightning: pip install lightning") from None

    class AIStudioLightningCallback(_Tracking, Callback):
        """Logs ``trainer.callback_metrics`` (what ``self.log`` recorded) every
        ``log_every_n_steps`` training steps and after each validation epoch."""

        def __init__(self, name: str | None = None, config: Mapping[str, Any] | None = None, *, run: Run | None = None, client: Client | None = None, log_every_n_steps: int = 1):
            super().__init__(name, config, run=run, client=client)
            self.every = max(1, int(log_every_n_steps))

        def on_fit_start(self, trainer, pl_module) -> None:
            if trainer.is_global_zero:
                self._open(type(pl_module).__name__, dict(getattr(pl_module, "hparams", None) or {}))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if trainer.global_step % self.every == 0:
                self._log(trainer.callback_metrics, trainer.global_step)
            if self._should_stop:
                trainer.should_stop = True

        def on_validation_epoch_end(self, trainer, pl_module) -> None:
            if not trainer.sanity_checking:
                self._log(trainer.callback_metrics, trainer.global_step)

        def on_fit_end(self, trainer, pl_module) -> None:
            self._close("succeeded")

        def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
            self._close("failed", "interrupted" if isinstance(exception, KeyboardInterrupt) else f"{type(exception).__name__}: {exception}")

    return AIStudioLightningCallback


def _hf_callback() -> type:
    try:
        from transformers import TrainerCallback
    except ImportError:
        raise ImportError("AIStudioHFCallback needs Hugging Face transformers: pip install transformers") from None

    class AIStudioHFCallback(_Tracking, TrainerCallback):
        """Logs what the ``Trainer`` logs (loss, learning rate, eval metrics) at its global step.

        The HF callback API has no hook for a failed ``train()``: wrap it in ``ais.track`` and
        pass ``run=`` to have an exception fail the run."""

        def on_train_begin(self, args, state, control, **kwargs) -> None:
            if state.is_world_process_zero:
                self._open(getattr(args, "run_name", None) or "hf-trainer", args.to_dict())

        def on_log(self, args, state, control, logs=None, **kwargs) -> None:
            if logs:
                self._log(logs, state.global_step)

        def on_step_end(self, args, state, control, **kwargs) -> None:
            if self._should_stop:
                control.should_training_stop = True

        def on_train_end(self, args, state, control, **kwargs) -> None:
            self._close("succeeded")

    return AIStudioHFCallback


_BUILDERS = {"AIStudioLightningCallback": _lightning_callback, "AIStudioHFCallback": _hf_callback}


def __getattr__(name: str) -> type:
    if name in _BUILDERS:
        cls = _BUILDERS[name]()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
