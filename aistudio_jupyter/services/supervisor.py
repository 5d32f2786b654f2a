"""The job supervisor: claims queued jobs, launches them, watches them to the end.

One ``JobSupervisor`` per server process, running as a task on the server's loop (database
calls go through ``db.run``, process checks and file reads through threads). Each job it owns
carries its lease: ``lease_owner`` (this supervisor's random id) and ``lease_expires_at``,
renewed every poll, and ``fencing_token``, incremented by every claim or takeover. Every state
write is ``UPDATE … WHERE id = ? AND fencing_token = ?``: a supervisor that lost a job (its
server froze, its database connection dropped, another took over) has its writes rejected and
lets go, so a job is never driven by two supervisors and never runs twice.

On start-up, and on every poll, it takes over this host's jobs whose lease expired: a process
still alive with the same start time is re-attached (its logs continue from the bookmark); a
gone one ends by its ``exit.json`` or, without one, as ``lost``. A job on another host whose
lease expired long ago is marked lost: no job stays running for ever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir
from pydantic import ValidationError
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Bool, Float, Int, List, Unicode, default
from traitlets.config import LoggingConfigurable

from ..errors import AIStudioError, InvalidInput
from ..executors.base import STREAMS, ExitInfo, JobBackend, JobHandle, JobLaunch, JobPaths, read_json, signal_name, write_json_atomic
from ..executors.inventory import detect_gpus
from ..executors.local import LocalBackend
from ..schemas.jobs import LAUNCHED_KINDS, SPEC_MODELS, TERMINAL_STATES, JobResources
from ..store import orm
from ..store.types import utcnow
from . import scheduler
from .background import BackgroundLoop
from .jobs import publish_status, revoke_job_tokens

#: variables a job never inherits from the server: its credentials are its own token
SCRUBBED_ENV = ("AISTUDIO_", "JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN", "JUPYTER_TOKEN")
KEPT_ENV = ("AISTUDIO_CA_FILE",)
#: a chunk of log published as one event; a longer line is split
LOG_CHUNK = 64 * 1024
#: read per stream per watch, so one chatty job cannot starve the others
LOG_READ = 4 * LOG_CHUNK
#: reads of what is left when a job ends (8 MiB per stream at most)
FINAL_READS = 32
LOST_REASON = "server restarted and the job process is gone"


@dataclasses.dataclass
class Watched:
    """A job this supervisor owns and whose process it watches."""

    id: str
    owner: str
    token: int
    paths: JobPaths
    handle: JobHandle | None = None
    cancel_requested: bool = False
    term_sent_at: float | None = None
    kill_sent: bool = False
    offsets: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(STREAMS, 0))


class JobSupervisor(BackgroundLoop, LoggingConfigurable):
    """Schedules, launches, supervises, cancels and recovers this host's jobs."""

    loop_name = "job supervisor"

    db = AnyTrait(help="The Database holding the queue.")
    events = AnyTrait(help="The EventService job changes are published through.")
    tokens = AnyTrait(help="The TokenService that mints each job's scoped token.")
    jobs = AnyTrait(help="The JobService (entry-file resolution, woken on submit/cancel).")
    tiers = AnyTrait(help="Tier name → quotas.")
    backend = AnyTrait(help="The JobBackend (executors.base) that starts and watches processes; default: LocalBackend.")

    enabled = Bool(True, config=True, help="Run jobs on this server. Off: jobs queue here for another server sharing the database to run.")
    gpus = List(Int(), default_value=None, allow_none=True, config=True, help="GPU indexes jobs may use on this host; default: what NVML (or an already-imported torch) reports.")
    cpu_slots = Float(config=True, help="CPUs jobs may use at once on this host (each job takes resources.cpus). Default: the CPU count.")
    poll_interval = Float(1.0, config=True, help="Seconds between looks at the queue, lease renewals and takeovers.")
    watch_interval = Float(0.2, config=True, help="Seconds between checks of running jobs' processes and logs (log events are batched per check).")
    lease_seconds = Float(30.0, config=True, help="How long a job's lease lasts without renewal; after a crash, its jobs are taken over this long after the last renewal.")
    lost_after = Float(600.0, config=True, help="A job on another host whose lease expired this many seconds ago is marked lost.")
    cancel_grace = Float(10.0, config=True, help="Seconds between SIGTERM and SIGKILL when a job is canceled.")
    enforce_memory = Bool(True, config=True, help="Kill a job whose processes' resident memory passes its resources.memory_mb (checked twice a second).")
    job_token_ttl = Float(7 * 24 * 3600.0, config=True, help="Lifetime of a job's token; it is revoked when the job ends anyway.")
    jobs_dir = Unicode(config=True, help="Where job directories (logs, exit records, work dirs) live. Default: the Jupyter data directory's aistudio/jobs.")
    host = Unicode(config=True, help="This host's name in jobs.host; default: the hostname.")
    api_url = AnyTrait(None, allow_none=True, help="A callable returning the API URL jobs call; default: the app's kernel_api_url.")

    @default("cpu_slots")
    def _default_cpu_slots(self) -> float:
        return float(os.cpu_count() or 1)

    @default("jobs_dir")
    def _default_jobs_dir(self) -> str:
        return str(Path(jupyter_data_dir()) / "aistudio" / "jobs")

    @default("host")
    def _default_host(self) -> str:
        return socket.gethostname()

    @default("api_url")
    def _default_api_url(self):
        return getattr(self.parent, "kernel_api_url", None)

    @default("backend")
    def _default_backend(self) -> JobBackend:
        return LocalBackend()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.owner_id = f"sup-{uuid.uuid4().hex[:16]}"
        self._watched: dict[str, Watched] = {}
        self._inventory: tuple[int, ...] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def inventory(self) -> tuple[int, ...]:
        if self._inventory is None:
            self._inventory = tuple(self.gpus) if self.gpus is not None else tuple(detect_gpus())
        return self._inventory

    async def start(self) -> None:
        if not self.enabled:
            self.log.info("AI Studio job supervisor disabled: jobs queue for another server")
            return
        self._start_loop()
        self.log.info("AI Studio job supervisor %s on %s: GPUs %s, %g CPU slots", self.owner_id, self.host, list(self.inventory) or "none", self.cpu_slots)

    async def stop(self) -> None:
        """Stop supervising; the jobs keep running and a later server re-attaches to them."""
        if not await self._stop_loop():
            return
        if self._watched:
            try:
                # expire the leases now: a server restarting here takes over at once, not a lease later
                await self.db.run(self._release, write=True)
            except Exception:  # the database may be gone at shutdown; the leases expire anyway
                self.log.debug("releasing job leases failed", exc_info=True)

    def _release(self, session: Session) -> None:
        session.execute(update(orm.Job).where(orm.Job.lease_owner == self.owner_id, orm.Job.state.in_(scheduler.ACTIVE_STATES)).values(lease_expires_at=utcnow()))

    def check_fits(self, resources: JobResources) -> None:
        """Refuse a job this host could never run, rather than queue it for ever."""
        if not self.enabled:
            return
        if resources.gpus > len(self.inventory):
            raise InvalidInput(f"This host has {len(self.inventory)} GPUs; the job asks for {resources.gpus}.", {"field": "resources.gpus", "available": len(self.inventory)})
        if resources.cpus > self.cpu_slots:
            raise InvalidInput(f"This host offers {self.cpu_slots:g} CPU slots; the job asks for {resources.cpus:g}.", {"field": "resources.cpus", "available": self.cpu_slots})

    async def _run(self) -> None:
        last_poll = -1e9
        while True:
            if self._woken() or time.monotonic() - last_poll >= self.poll_interval:
                last_poll = time.monotonic()
                await self._guarded(self.poll)
            if self._watched:
                # apart from polling: cancel's SIGKILL is due after its grace even while the
                # database is down
                await self._guarded(self.watch)
            await self._sleep(self.watch_interval if self._watched else self.poll_interval)

    # -- polling: leases, takeovers, claims ------------------------------------------------

    async def poll(self) -> None:
        """Renew leases, notice cancels and lost ownership, take over and claim."""
        if self._watched:
            owned = await self.db.run(self._renew, write=True)
            for job_id, w in list(self._watched.items()):
                state = owned.get(job_id)
                if state is None or state[0] != w.token:
                    # another supervisor holds the job now: its writes win, ours would be refused
                    self.log.warning("AI Studio: job %s was taken over by another supervisor", job_id)
                    self._watched.pop(job_id)
                elif state[1]:
                    w.cancel_requested = True
        expired, queued = await self.db.run(self._look)
        for job_id in expired:
            await self._take_over(job_id)
        if queued:
            claims = await self.db.run(self._claim, write=True)
            for c in claims:
                await self._launch(c)

    def _renew(self, session: Session) -> dict[str, tuple[int, bool]]:
        now = utcnow()
        session.execute(
            update(orm.Job)
            .where(orm.Job.lease_owner == self.owner_id, orm.Job.state.in_(scheduler.ACTIVE_STATES))
            .values(lease_expires_at=now + dt.timedelta(seconds=self.lease_seconds), heartbeat_at=now)
        )
        rows = session.execute(select(orm.Job.id, orm.Job.fencing_token, orm.Job.cancel_requested_at).where(orm.Job.lease_owner == self.owner_id, orm.Job.state.in_(scheduler.ACTIVE_STATES)))
        return {r.id: (r.fencing_token, r.cancel_requested_at is not None) for r in rows}

    def _look(self, session: Session) -> tuple[list[str], bool]:
        now = utcnow()
        expired = session.scalars(
            select(orm.Job.id)
            .where(
                orm.Job.state.in_(scheduler.ACTIVE_STATES),
                orm.Job.kind.in_(LAUNCHED_KINDS),
                or_(orm.Job.lease_expires_at.is_(None), orm.Job.lease_expires_at < now),
                or_(orm.Job.host == self.host, orm.Job.lease_expires_at < now - dt.timedelta(seconds=self.lost_after)),
            )
            .limit(100)
        ).all()
        return [e for e in expired if e not in self._watched], scheduler.has_queued(session)

    def _claim(self, session: Session) -> list[scheduler.Claim]:
        capacity = scheduler.Capacity(self.host, self.owner_id, self.inventory, self.cpu_slots, self.lease_seconds)
        return scheduler.claim(session, capacity, self.tiers, self._job_dir, lambda s, row: publish_status(self.events, s, row))

    def _job_dir(self, job_id: str) -> str:
        return str(JobPaths.of(self.jobs_dir, job_id).root)

    # -- launching -------------------------------------------------------------------------

    def job_env(self, job_id: str, token: str, spec_path: Path, gpu_ids: tuple[int, ...]) -> dict[str, str]:
        """The job's environment (contract 2): the server's, less its credentials, plus the job's own."""
        env = {k: v for k, v in os.environ.items() if k in KEPT_ENV or not k.startswith(SCRUBBED_ENV)}
        env.update(
            AISTUDIO_URL=self.api_url() if callable(self.api_url) else os.environ.get("AISTUDIO_URL", ""),
            AISTUDIO_TOKEN=token,
            AISTUDIO_JOB_ID=job_id,
            AISTUDIO_JOB_SPEC=str(spec_path),
            # empty, not unset: unset means "every GPU" to CUDA
            CUDA_VISIBLE_DEVICES=",".join(str(g) for g in gpu_ids),
            # logs stream as they are written, not when a buffer fills
            PYTHONUNBUFFERED="1",
        )
        return env

    def job_argv(self, claim: scheduler.Claim, paths: JobPaths) -> list[str]:
        """argv of a job's command (a list: never a shell line)."""
        spec = SPEC_MODELS[claim.kind].model_validate(claim.spec).model_dump(exclude_none=True) if claim.kind in SPEC_MODELS else claim.spec
        gpus = len(claim.gpu_ids)
        python = [sys.executable]
        if gpus > 1 and claim.kind in ("train", "script"):
            python = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(gpus)]
        if claim.kind == "train":
            return [*python, "-m", "aistudio_jupyter.runtime.trainer"]
        if claim.kind == "script":
            args = [str(a) for a in spec.get("args", [])]
            if spec.get("module"):
                return [*python, "-m", spec["module"], *args]
            return [*python, str(self.jobs.resolve_entry("script", spec)), *args]
        if claim.kind == "notebook":
            return [sys.executable, "-m", "aistudio_jupyter.runtime.job_entry_notebook", str(self.jobs.resolve_entry("notebook", spec)), str(paths.root / "output.ipynb")]
        raise InvalidInput(f"Jobs of kind {claim.kind!r} are not launched as processes.")

    def _prepare(self, claim: scheduler.Claim) -> JobLaunch:
        paths = JobPaths.of(self.jobs_dir, claim.id)
        paths.work.mkdir(parents=True, exist_ok=True)
        write_json_atomic(paths.spec, claim.spec)
        argv = self.job_argv(claim, paths)
        token, _ = self.tokens.mint(claim.owner, f"job {claim.id}", "job", ("job",), ttl=self.job_token_ttl, job_id=claim.id)
        # a module job imports from the root directory, as a notebook there would
        pythonpath = (self.jobs.root_dir,) if claim.kind == "script" and claim.spec.get("module") else ()
        memory_mb = claim.resources.get("memory_mb") if self.enforce_memory else None
        return JobLaunch(claim.id, argv, self.job_env(claim.id, token, paths.spec, claim.gpu_ids), paths, pythonpath, memory_mb)

    async def _launch(self, claim: scheduler.Claim) -> None:
        w = Watched(claim.id, claim.owner, claim.fencing_token, JobPaths.of(self.jobs_dir, claim.id))
        try:
            launch = await asyncio.to_thread(self._prepare, claim)
            w.handle = await asyncio.to_thread(self.backend.launch, launch)
        except Exception as exc:
            if isinstance(exc, ValidationError):
                reason = f"invalid spec: {exc.errors(include_url=False)[0]['msg']}"[:500]
            else:
                reason = exc.message if isinstance(exc, AIStudioError) else f"could not start: {type(exc).__name__}: {exc}"[:500]
            if not isinstance(exc, (AIStudioError, ValidationError)):
                self.log.warning("AI Studio: launching job %s failed", claim.id, exc_info=True)
            await self.db.run(self._end, w, "failed", None, reason, write=True)
            return
        if await self.db.run(self._running, w, write=True):
            self._watched[w.id] = w
        else:
            # the job is no longer ours: a process nobody supervises must not run
            self.backend.signal_group(w.handle.pid, w.handle.start_time, signal.SIGKILL)

    def _fenced(self, session: Session, w: Watched, **values) -> orm.Job | None:
        """Apply ``values`` only while ``w``'s fencing token is current; the row, or None."""
        values.setdefault("updated_at", utcnow())
        done = session.execute(update(orm.Job).where(orm.Job.id == w.id, orm.Job.fencing_token == w.token, orm.Job.state.not_in(TERMINAL_STATES)).values(**values))
        if done.rowcount != 1:
            return None
        return session.get(orm.Job, w.id, populate_existing=True)

    def _running(self, session: Session, w: Watched) -> bool:
        row = self._fenced(session, w, state="running", pid=w.handle.pid, process_start_time=w.handle.start_time, started_at=utcnow())
        if row is None:
            return False
        w.cancel_requested = row.cancel_requested_at is not None
        publish_status(self.events, session, row)
        return True

    # -- watching --------------------------------------------------------------------------

    async def watch(self) -> None:
        """Check each watched process: cancel signals, new log lines, and the end."""
        for w in list(self._watched.values()):
            alive = await asyncio.to_thread(self._alive, w)
            if alive and w.cancel_requested:
                self._signal_cancel(w)
            await self._publish_logs(w, final=not alive)
            if not alive:
                await self._finish(w)

    def _alive(self, w: Watched) -> bool:
        return w.handle is not None and self.backend.is_alive(w.handle.pid, w.handle.start_time)

    def _signal_cancel(self, w: Watched) -> None:
        now = time.monotonic()
        if w.term_sent_at is None:
            w.term_sent_at = now
            self.backend.signal_group(w.handle.pid, w.handle.start_time, signal.SIGTERM)
        elif not w.kill_sent and now - w.term_sent_at >= self.cancel_grace:
            w.kill_sent = True
            self.backend.signal_group(w.handle.pid, w.handle.start_time, signal.SIGKILL)

    async def _finish(self, w: Watched, *, recovered: bool = False) -> None:
        info = await asyncio.to_thread(self.backend.exit_info, w.paths)
        state, code, reason = self.outcome(w, info, recovered=recovered)
        await self.db.run(self._end, w, state, code, reason, write=True)
        self._watched.pop(w.id, None)

    def outcome(self, w: Watched, info: ExitInfo | None, *, recovered: bool) -> tuple[str, int | None, str | None]:
        """(state, exit code, reason) of a job whose process is gone."""
        code = info.code if info else None
        if w.cancel_requested:
            how = f" (SIGKILL after {self.cancel_grace:g} s grace)" if w.kill_sent else ""
            return "canceled", code, f"canceled{how}"
        if info is not None:
            return ("succeeded" if info.succeeded else "failed"), code, info.reason
        if recovered:
            return "lost", None, LOST_REASON
        # the whole group died, the shim with it, before it could write a record
        return "failed", None, f"killed by {signal_name(signal.SIGKILL)} (the job's process group ended without an exit record)"

    def _end(self, session: Session, w: Watched, state: str, code: int | None, reason: str | None) -> None:
        now = utcnow()
        row = self._fenced(session, w, state=state, exit_code=code, exit_reason=reason, finished_at=now, lease_owner=None, lease_expires_at=None)
        if row is None:
            return
        if row.gpu_ids and row.started_at is not None:
            seconds = max(0.0, (now - row.started_at).total_seconds()) * len(row.gpu_ids)
            session.add(orm.UsageRecord(owner=row.owner, period=now.strftime("%Y-%m"), kind="gpu_seconds", amount=seconds, job_id=row.id, created_at=now))
        revoke_job_tokens(session, row.id)
        publish_status(self.events, session, row)

    # -- logs ------------------------------------------------------------------------------

    async def _publish_logs(self, w: Watched, *, final: bool) -> None:
        # at the end, the rest of the log as events too, up to a bound (the file keeps it all)
        for _ in range(FINAL_READS if final else 1):
            chunks = await asyncio.to_thread(self._read_logs, w, final)
            if not chunks:
                return
            await self.db.run(self._publish_chunks, w.id, chunks, write=True)
            for stream, _, end in chunks:
                w.offsets[stream] = end
            await asyncio.to_thread(write_json_atomic, w.paths.published, dict(w.offsets))

    def _read_logs(self, w: Watched, final: bool) -> list[tuple[str, str, int]]:
        """New whole lines of each stream as (stream, text, end offset) chunks; everything when
        the job has ended; lines longer than a chunk are split."""
        chunks = []
        for stream in STREAMS:
            start = w.offsets[stream]
            try:
                with open(w.paths.log(stream), "rb") as f:
                    f.seek(start)
                    data = f.read(LOG_READ)
            except FileNotFoundError:
                continue
            if not final and len(data) < LOG_READ:
                # whole lines only, so no event ends inside a line or a UTF-8 sequence
                cut = data.rfind(b"\n") + 1
                data = data[:cut] if cut or len(data) < LOG_CHUNK else data
            for i in range(0, len(data), LOG_CHUNK):
                piece = data[i : i + LOG_CHUNK]
                start += len(piece)
                chunks.append((stream, piece.decode("utf-8", "replace"), start))
        return chunks

    def _publish_chunks(self, session: Session, job_id: str, chunks: list[tuple[str, str, int]]) -> None:
        # `end`: the chunk's end offset in the log file, so a reader that fetched the log's tail
        # over REST drops what it already has (widgets/static/monitor.js)
        for stream, text, end in chunks:
            self.events.publish_in(session, f"job:{job_id}", "log", {"stream": stream, "text": text, "end": end})

    # -- recovery --------------------------------------------------------------------------

    async def _take_over(self, job_id: str) -> None:
        """Own an expired job: re-attach to its live process, or end it by what it left."""
        taken = await self.db.run(self._seize, job_id, write=True)
        if taken is None:
            return  # another supervisor was faster, or the job ended meanwhile
        w, state, host = taken
        if host != self.host:
            await self.db.run(self._end, w, "lost", None, f"its host {host!r} stopped supervising it", write=True)
            return
        if w.handle is None:
            w.handle = await asyncio.to_thread(self.backend.launched_process, w.paths)
        if w.handle is None:
            if state == "starting":
                # claimed but never launched (its server died in between): queue it again
                await self.db.run(self._requeue, w, write=True)
            else:
                await self.db.run(self._end, w, "lost", None, LOST_REASON, write=True)
            return
        published = await asyncio.to_thread(read_json, w.paths.published)
        for stream in STREAMS:
            if published and isinstance(published.get(stream), int):
                w.offsets[stream] = published[stream]
        if await asyncio.to_thread(self._alive, w):
            if state == "starting":
                await self.db.run(self._running, w, write=True)
            self._watched[w.id] = w
            self.log.info("AI Studio: re-attached to job %s (pid %s)", w.id, w.handle.pid)
            return
        await self._publish_logs(w, final=True)
        await self._finish(w, recovered=True)

    def _seize(self, session: Session, job_id: str) -> tuple[Watched, str, str | None] | None:
        now = utcnow()
        row = session.get(orm.Job, job_id)
        if row is None or row.state not in scheduler.ACTIVE_STATES or (row.lease_expires_at is not None and row.lease_expires_at >= now):
            return None
        old = Watched(row.id, row.owner, row.fencing_token, JobPaths(Path(row.job_dir)) if row.job_dir else JobPaths.of(self.jobs_dir, row.id))
        row = self._fenced(session, old, lease_owner=self.owner_id, lease_expires_at=now + dt.timedelta(seconds=self.lease_seconds), heartbeat_at=now, fencing_token=old.token + 1)
        if row is None:
            return None
        w = Watched(row.id, row.owner, row.fencing_token, old.paths, cancel_requested=row.cancel_requested_at is not None)
        if row.pid is not None and row.process_start_time is not None:
            w.handle = JobHandle(row.pid, row.process_start_time)
        return w, row.state, row.host

    def _requeue(self, session: Session, w: Watched) -> None:
        row = self._fenced(session, w, state="queued", host=None, gpu_ids=[], lease_owner=None, lease_expires_at=None)
        if row is not None:
            publish_status(self.events, session, row)
