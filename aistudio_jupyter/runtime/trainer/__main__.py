"""A train job's process: ``python -m aistudio_jupyter.runtime.trainer``.

The supervisor starts it with ``AISTUDIO_JOB_SPEC`` (the resolved ``TrainJobSpec``),
``AISTUDIO_JOB_ID``, ``AISTUDIO_URL`` and a job token in ``AISTUDIO_TOKEN``. It reads the
dataset version through the API, trains, logs metrics through ``Run.current()``, stores a
checkpoint every ``checkpoint_every`` steps and registers the weights as a model version.

A restarted attempt of the same job continues from the job's own latest checkpoint; a new
job with ``resume_from_job`` starts from that job's. SIGTERM (cancel) checkpoints and exits.
Under ``torchrun`` (a job with several GPUs) every rank trains its share of each batch and
rank 0 alone logs, checkpoints and registers.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..client import APIError, Client
from ..models import WEIGHTS_FORMAT, _finite, _records, build, post_version
from ..tracking import _RETRY_STATUSES, Run
from . import checkpoint, data, loop
from .config import TrainJobSpec, load_job_spec

#: exit status of a run stopped by SIGTERM, as a shell reports it
EXIT_TERMINATED = 128 + signal.SIGTERM
T = TypeVar("T")


def retrying(call: Callable[[], T], what: str, patience: float) -> T:
    """``call()``, retried with backoff for ``patience`` seconds while the server is away.

    A job outlives its server (a restart, a ``kill -9``): the supervisor that comes back
    re-attaches to it, so a trainer waits for the API rather than dying with it.
    """
    deadline, delay = time.monotonic() + patience, 0.5
    while True:
        try:
            return call()
        except (ConnectionError, APIError) as exc:
            if (isinstance(exc, APIError) and exc.status not in _RETRY_STATUSES) or time.monotonic() + delay > deadline:
                raise
            print(f"{what}: {exc}; retrying in {delay:.1f} s", file=sys.stderr, flush=True)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def code_hash(spec: TrainJobSpec) -> str:
    """sha256 over the trainer's source and, for an entry point, the user's module file."""
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for path in sorted(here.glob("*.py")):
        digest.update(path.read_bytes())
    if spec.model.entry_point:
        module = sys.modules.get(spec.model.entry_point.partition(":")[0])
        source = getattr(module, "__file__", None)
        if source and Path(source).is_file():
            digest.update(Path(source).read_bytes())
    return digest.hexdigest()


def run_job(spec: TrainJobSpec, job_id: str, api: Client, tracker: Run | None, stop: threading.Event, rank: int = 0, world: int = 1, device: str | None = None) -> dict | None:
    """Train and (rank 0) register; returns the registered version. Raises ``loop.Stopped`` when stopped."""
    import torch

    # the scheduler granted resources.cpus: more intra-op threads than that only fight over
    # the cores (a small model on a busy host trains tens of times slower)
    torch.set_num_threads(max(1, min(os.cpu_count() or 1, int(spec.resources.cpus))))
    frame = retrying(lambda: data.load_frame(api, spec), "reading the dataset", 300)
    prepared = data.prepare(frame, spec)
    hp = spec.hyperparameters
    loop.seed_everything(hp.seed)
    module = build(spec.model.model_dump(exclude_none=True), prepared.input_dim, prepared.outputs)
    print(f"training {type(module).__name__} on {len(prepared.x_train)} rows ({len(prepared.x_val)} for validation), {prepared.input_dim} features → {prepared.outputs} outputs", flush=True)

    def save(trainer: loop.Trainer, patience: float = 60) -> None:
        if rank != 0:
            return
        packed = checkpoint.pack(*trainer.state())
        try:
            retrying(lambda: checkpoint.upload(api, job_id, packed), "storing a checkpoint", patience)
        except (ConnectionError, APIError) as exc:
            # a missed checkpoint costs only the steps since the last one: keep training
            print(f"checkpoint at step {trainer.pos.step} not stored: {exc}", file=sys.stderr, flush=True)

    def log(values: dict, step: int) -> None:
        tracker.log(values, step=step)

    trainer = loop.Trainer(
        module, prepared, hp, checkpoint_every=spec.checkpoint_every, log=log, on_checkpoint=save,
        progress=lambda fraction: tracker.log({"progress": fraction}, step=trainer.pos.step),
        should_stop=lambda: stop.is_set() or (tracker is not None and tracker.canceled),
        device=device, rank=rank, world=world,
    )
    saved = retrying(lambda: checkpoint.fetch(api, job_id) or (checkpoint.fetch(api, spec.resume_from_job) if spec.resume_from_job else None), "reading the checkpoint", 300)
    if saved is not None:
        trainer.restore(*checkpoint.unpack(saved))
        print(f"resumed at step {trainer.pos.step} (epoch {trainer.pos.epoch + 1})", flush=True)
    final = trainer.fit()
    if rank != 0:
        return None
    save(trainer, patience=600)
    meta = {
        "spec": {"format": WEIGHTS_FORMAT, "framework": "torch", "model": spec.model.model_dump(exclude_none=True), **prepared.preprocessing()},
        "metrics": _finite(final),
        "lineage": {
            "dataset_id": spec.dataset,
            "dataset_version": spec.dataset_version,
            "dataset_version_id": spec.dataset_version_id,
            "job_id": job_id,
            "hyperparameters": hp.model_dump(),
            "code_hash": code_hash(spec),
        },
        "input_example": _records(frame[prepared.features]),
    }
    tracker.flush()
    weights = checkpoint.weights_bytes(trainer.module)

    def register() -> dict:
        # once per job: a retry after a lost answer, or a restarted attempt, finds the first one
        done = api.request("GET", f"/jobs/{job_id}").get("result") or {}
        if done.get("model_id") == spec.model_id:
            return api.request("GET", f"/models/{spec.model_id}/versions/{done['model_version']}")
        return post_version(api, spec.model_id, meta, weights)

    version = retrying(register, "registering the model version", 600)
    print(f"registered {spec.model_name} version {version['version']}: " + json.dumps(meta["metrics"]), flush=True)
    return version


def main() -> int:
    # torchrun (a job with several GPUs) starts one process per GPU: data parallel, rank 0 reports
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    spec = load_job_spec(os.environ["AISTUDIO_JOB_SPEC"])
    job_id = os.environ["AISTUDIO_JOB_ID"]
    stop = threading.Event()
    # cancel sends SIGTERM: finish the step, checkpoint, and leave with the conventional status
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    device = None
    if world > 1:
        import torch
        import torch.distributed as dist

        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
        dist.init_process_group("nccl" if device else "gloo")
    api = Client()
    tracker = retrying(lambda: Run.current(api), "attaching to the job", 300) if rank == 0 else None
    try:
        run_job(spec, job_id, api, tracker, stop, rank, world, device)
    except loop.Stopped as exc:
        print(f"{exc}; checkpoint saved", flush=True)
        return EXIT_TERMINATED
    finally:
        if tracker is not None:
            tracker.finish()
        if world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
