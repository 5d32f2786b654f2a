"""Compute estimates: memory, time and cost of a training run before it is queued, and
optionally a few real steps measured on this server's device.

The arithmetic lives in ``estimator`` (pure Python). Measuring imports torch and may touch a
GPU, so it runs in a child process (``modelspec.measure``) under a timeout, one at a time per
server: a second request while one runs gets 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import sys
import time

from traitlets import Any as AnyTrait
from traitlets import Enum, Float, Int
from traitlets.config import LoggingConfigurable

from ..errors import AIStudioError, InvalidInput
from ..identity import Principal
from ..schemas.compute import EstimateIn, EstimateOut, MeasuredOut
from .estimator import estimate, memory_of, profile_of

GIB = 1024**3


class MeasureBusy(AIStudioError):
    """Another measured estimate is running on this server."""

    code, status = "rate_limited", 429


class ComputeService(LoggingConfigurable):
    """``POST /compute/estimate``."""

    db = AnyTrait(help="The Database (unused: estimates touch no table).")
    price_per_gpu_hour = AnyTrait(0.0, help="Cost of one GPU-hour (AIStudio.price_per_gpu_hour).")
    measure_timeout = Float(25.0, config=True, help="Seconds a measured estimate may run (torch start-up included) before its process is killed; keep it under clients' request timeouts.")
    measure_max_bytes = Int(4 * GIB, config=True, help="Largest predicted peak memory a measured run may allocate; bigger models are only estimated.")
    measure_device = Enum(["auto", "cpu", "cuda"], "auto", config=True, help="Where measured runs train: 'auto' uses a visible GPU when there is one.")
    measure_threads = Int(2, config=True, help="CPU threads of a measured run (0: torch's default, every core), so it cannot starve the server.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._measuring_since: float | None = None

    async def estimate(self, who: Principal, req: EstimateIn) -> EstimateOut:
        """The estimate for ``req``; with ``measure``, also a few real steps of the spec."""
        out = estimate(req, float(self.price_per_gpu_hour))
        if req.measure:
            out.measured, out.measure_error = await self._measure(who, req)
        return out

    async def _measure(self, who: Principal, req: EstimateIn) -> tuple[MeasuredOut | None, str | None]:
        # the host measures fp32 or bf16 weights as asked; its peak is what the limit bounds
        peak = memory_of(profile_of(req), req, req.batch_size).peak
        if peak > self.measure_max_bytes:
            raise InvalidInput(
                f"measure: the run would allocate about {peak / GIB:.1f} GiB, over this server's limit of {self.measure_max_bytes / GIB:.1f} GiB for measured estimates; "
                "lower batch_size or leave measure off",
                {"field": "measure", "predicted_bytes": peak, "limit_bytes": self.measure_max_bytes},
            )
        if self._measuring_since is not None:
            left = self.measure_timeout - (time.monotonic() - self._measuring_since)
            raise MeasureBusy("Another measured estimate is running on this server; retry shortly.", retry_after=max(1, math.ceil(left)))
        self._measuring_since = time.monotonic()
        try:
            self.log.info("AI Studio: measuring %d training steps for %s", req.measure_steps, who.username)
            answer, error = await self._run_child(req)
        finally:
            self._measuring_since = None
        if error:
            return None, error
        measured = MeasuredOut(**answer)
        if req.dataset_size is not None:
            measured.epoch_seconds = req.dataset_size / measured.samples_per_second
            measured.total_seconds = measured.epoch_seconds * req.epochs
        return measured, None

    async def _run_child(self, req: EstimateIn) -> tuple[dict | None, str | None]:
        request = {
            "model": req.model.model_dump(mode="json"),
            "outputs": req.outputs,
            "batch_size": req.batch_size,
            "steps": req.measure_steps,
            "precision": req.precision,
            "optimizer": req.optimizer,
            "device": self.measure_device,
            "threads": self.measure_threads,
        }
        # the child runs only our code, yet gets none of the server's credentials
        env = {k: v for k, v in os.environ.items() if not k.startswith("AISTUDIO_")}
        if self.measure_device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aistudio_jupyter.modelspec.measure",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True,
        )  # fmt: skip
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(json.dumps(request).encode()), self.measure_timeout)
        except asyncio.TimeoutError:
            self._kill(proc)
            await proc.wait()
            return None, f"the measured run did not finish within {self.measure_timeout:g} s"
        except asyncio.CancelledError:  # server shutting down: no orphan keeps the device
            self._kill(proc)
            raise
        try:
            answer = json.loads(stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.log.warning("AI Studio: measured run exited %s: %s", proc.returncode, stderr.decode(errors="replace")[-2000:])
            return None, f"the measured run failed (exit status {proc.returncode})"
        if proc.returncode != 0 or "error" in answer:
            return None, str(answer.get("error", f"exit status {proc.returncode}"))[:500]
        return answer, None

    @staticmethod
    def _kill(proc) -> None:
        try:
            # its own session: the group is the child and whatever it started
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
