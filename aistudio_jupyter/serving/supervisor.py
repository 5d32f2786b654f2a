"""The deployment supervisor: runs, watches and routes to the replicas of running deployments.

One ``DeploymentSupervisor`` per server process, a task on the server's loop. It owns a
deployment through a lease on its row (``lease_owner``, ``lease_expires_at``, renewed every
poll), so two servers on one database never both run it; another takes over once the lease
expires. For each deployment it owns it:

- copies the model version's weights from storage into the deployment's directory (checking
  their sha256) and writes the spec beside them; replicas read only that local copy;
- starts ``replicas`` worker processes (``serving.replica``; a session of their own, logs in
  the directory, an environment without the server's credentials), health-checks them over
  their Unix sockets, restarts a crashed one with exponential backoff and marks the deployment
  ``failed`` after ``max_load_failures`` replicas in a row died before ever becoming ready;
- rolls a new model version out one replica at a time: the new replica starts beside the old
  one, takes traffic once ready, and only then is the old one drained (no request in flight)
  and stopped; scaling adds or drains replicas the same way;
- writes what it sees to the row (``state``, ``status_message``, ``replica_status``) and
  publishes ``status`` / ``replica`` events on ``deployment:<id>`` in the same transaction (and
  each ``status`` as a ``deployment`` ``state`` event on the owner's ``user:<owner>``).

A server that restarts re-attaches to its live replicas (pid, start time and socket recorded
in ``replica_status``); a graceful stop stops them, so nothing outlives the server but a crash,
and a replica left by a crash exits by itself when no supervisor checks on it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
from jupyter_core.paths import jupyter_data_dir
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Bool, Float, Int, Unicode, default
from traitlets.config import LoggingConfigurable

from ..errors import Unavailable
from ..executors.inventory import detect_gpus
from ..services.background import BackgroundLoop
from ..services.owner_events import announce
from ..store import orm
from ..store.types import utcnow
from .paths import DeploymentPaths
from .router import RETRY_AFTER, Batcher

#: variables a replica never inherits from the server (it needs no credentials at all)
SCRUBBED_ENV = ("AISTUDIO_", "JUPYTERHUB_", "JPY_", "JUPYTER_TOKEN", "AWS_", "PG", "DATABASE_URL")
WEIGHTS_FORMAT = "aistudio.safetensors/1"
#: start times of one process read twice agree to the clock tick; a reused pid does not
START_TIME_TOLERANCE = 0.05


def status_data(row_state: str, message: str | None, ready: int, replicas: int, version: int | None) -> dict[str, Any]:
    return {"state": row_state, "message": message, "ready_replicas": ready, "replicas": replicas, "model_version": version}


def publish_status(events, session: Session, deployment_id: str, owner: str, status: dict[str, Any]) -> None:
    """``status`` on ``deployment:<id>``, and the same as a ``deployment`` ``state`` event on the
    owner's ``user:<owner>``, which the sidebar's list follows (one topic for every row)."""
    events.publish_in(session, f"deployment:{deployment_id}", "status", status)
    announce(events, session, owner, "deployment", "state", deployment_id, **status)


class Replica:
    """One replica process of a deployment on this host."""

    def __init__(self, index: int, version: int, paths: DeploymentPaths):
        self.index, self.version, self.paths = index, version, paths
        self.socket = paths.socket(index, version)
        self.state = "loading"
        self.pid: int | None = None
        self.start_time: float | None = None
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.crashes_in_row = 0
        self.last_error: str | None = None
        self.inflight = 0
        self.served = 0
        self.health_failures = 0
        self.launched_at = 0.0
        self.retry_at = 0.0
        self.ever_ready = False
        self._client: httpx.AsyncClient | None = None

    @property
    def routable(self) -> bool:
        return self.state == "ready"

    @property
    def key(self) -> tuple[int, int]:
        return (self.index, self.version)

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            transport = httpx.AsyncHTTPTransport(uds=str(self.socket), retries=0)
            self._client = httpx.AsyncClient(transport=transport, base_url="http://replica", timeout=30)
        return self._client

    def connect_failed(self) -> None:
        # the next health check decides; until then, route elsewhere
        self.health_failures += 1

    async def close_client(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await client.aclose()
            except Exception:
                pass

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        if self.pid is None:
            return False
        try:
            process = psutil.Process(self.pid)
            return abs(process.create_time() - (self.start_time or 0)) <= START_TIME_TOLERANCE and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def signal(self, sig: int) -> None:
        if self.pid is not None and self.alive():
            try:
                os.killpg(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def status(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "state": self.state,
            "pid": self.pid,
            "restarts": self.restarts,
            "model_version": self.version,
            "last_error": self.last_error,
            "start_time": self.start_time,
        }


@dataclasses.dataclass
class Served:
    """A deployment this supervisor owns, as last read from its row, and its replicas."""

    id: str
    paths: DeploymentPaths
    batcher: Batcher
    desired: str = "running"
    version: int | None = None
    count: int = 1
    resources: dict = dataclasses.field(default_factory=dict)
    artifact: dict | None = None
    problem: str | None = None
    replicas: list[Replica] = dataclasses.field(default_factory=list)
    failed: str | None = None
    load_failures: int = 0
    local_versions: set = dataclasses.field(default_factory=set)
    #: what the row and the event stream last said: (status data, {replica key: status})
    published: tuple[dict, dict] = ({}, {})
    done: bool = False


class DeploymentSupervisor(BackgroundLoop, LoggingConfigurable):
    """Runs this host's share of deployments' replicas and routes predictions to them."""

    loop_name = "deployment supervisor"

    db = AnyTrait(help="The Database holding deployments.")
    events = AnyTrait(help="The EventService status changes are published through.")
    storage = AnyTrait(None, allow_none=True, help="The Storage holding model weights.")

    enabled = Bool(True, config=True, help="Run deployments' replicas on this server. Off: deployments stay pending here for another server sharing the database.")
    deployments_dir = Unicode(config=True, help="Where deployment directories (weights copies, sockets, logs) live. Default: the Jupyter data directory's aistudio/deployments.")
    host = Unicode(config=True, help="This host's name in deployments.host; default: the hostname.")
    poll_interval = Float(1.0, config=True, help="Seconds between reads of the deployments table (lease renewal, takeovers, changes).")
    health_interval = Float(0.25, config=True, help="Seconds between health checks of replicas.")
    health_timeout = Float(2.0, config=True, help="Seconds a replica has to answer a health check.")
    unhealthy_after = Int(3, config=True, help="Failed health checks in a row after which a ready replica is killed and restarted.")
    lease_seconds = Float(15.0, config=True, help="How long a deployment's lease lasts without renewal; after a crash, another server takes over this long after the last renewal.")
    load_timeout = Float(120.0, config=True, help="Seconds a replica may take to load its model before it is killed and counted as a failure.")
    max_load_failures = Int(3, config=True, help="Replicas in a row that die before becoming ready after which the deployment is marked failed.")
    backoff_base = Float(0.5, config=True, help="Seconds before the first restart of a crashed replica; doubled for each further crash in a row.")
    backoff_max = Float(30.0, config=True, help="The longest wait before restarting a crashed replica.")
    stop_grace = Float(5.0, config=True, help="Seconds between SIGTERM and SIGKILL when a replica is stopped.")
    orphan_timeout = Float(60.0, config=True, help="A replica no supervisor has health-checked for this long exits by itself.")
    max_batch_inflight = Int(2, config=True, help="Batches sent to one replica at once; more wait in the queue, where they grow.")
    queue_timeout = Float(5.0, config=True, help="Seconds a predict request may wait for a ready replica before 503.")
    request_timeout = Float(30.0, config=True, help="Seconds a replica has to answer one batch before its requests answer 503.")
    standby_replicas = Int(1, config=True, help="Processes kept started with torch imported, waiting to become a replica (while this server runs any deployment): a replica then loads in a fraction of a second. 0: none.")

    @default("deployments_dir")
    def _default_dir(self) -> str:
        return str(Path(jupyter_data_dir()) / "aistudio" / "deployments")

    @default("host")
    def _default_host(self) -> str:
        return socket.gethostname()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.owner_id = f"dsup-{uuid.uuid4().hex[:16]}"
        self._served: dict[str, Served] = {}
        self._background: set[asyncio.Task] = set()
        self._gpus: list[int] | None = None
        #: started replica processes waiting for an assignment on stdin (``replica.standby``)
        self._standby: list[subprocess.Popen] = []
        #: every replica process started here: a graceful stop leaves none behind, even one
        #: whose start was still under way in a thread when the loop was canceled
        self._children: list[subprocess.Popen] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if not self.enabled:
            self.log.info("AI Studio deployment supervisor disabled: deployments are served by another server")
            return
        self._start_loop()
        self.log.info("AI Studio deployment supervisor %s on %s", self.owner_id, self.host)

    async def stop(self) -> None:
        """Stop every replica this server runs and give the deployments' leases back."""
        if not await self._stop_loop():
            return
        served = list(self._served.values())
        await asyncio.gather(*(self._stop_all(s) for s in served), return_exceptions=True)
        for task in list(self._background):
            task.cancel()
        try:
            await self.db.run(self._release_all, [s.id for s in served], write=True)
        except Exception:  # the database may be gone at shutdown; the leases expire anyway
            self.log.debug("releasing deployment leases failed", exc_info=True)
        self._served.clear()
        for proc in self._standby:
            _close_standby(proc)
        self._standby.clear()
        for proc in self._children:
            if proc.poll() is None:
                _close_standby(proc)
        self._children.clear()

    async def _run(self) -> None:
        last_poll = -1e9
        while True:
            if self._woken() or time.monotonic() - last_poll >= self.poll_interval:
                last_poll = time.monotonic()
                await self._guarded(self._sync)
            if self._served:
                await self._guarded(self._tick)
            elif self._standby:
                # nothing served here any more: a waiting process would only hold memory
                for proc in self._standby:
                    _close_standby(proc)
                self._standby.clear()
            await self._sleep(self.health_interval if self._served else self.poll_interval)

    # -- routing (called by the deployment service) ----------------------------------------

    async def predict(self, deployment_id: str, kind: str, rows: list[Any]) -> tuple[list[Any], int]:
        served = self._served.get(deployment_id)
        if served is None or served.done:
            raise Unavailable("No replica of this deployment is running on this server; retry shortly.", {"deployment_id": deployment_id}, retry_after=RETRY_AFTER)
        return await served.batcher.submit(kind, rows)

    def log_path(self, deployment_id: str, index: int) -> Path:
        return DeploymentPaths.of(self.deployments_dir, deployment_id).log(index)

    async def stop_now(self, deployment_id: str) -> None:
        """Stop a deployment's local replicas at once (it is being deleted)."""
        served = self._served.pop(deployment_id, None)
        if served is not None:
            served.done = True
            await self._stop_all(served)

    # -- the table: leases, takeovers, desired state ---------------------------------------

    async def _sync(self) -> None:
        rows = await self.db.run(self._claim_and_read, write=True)
        seen = set()
        for row in rows:
            seen.add(row["id"])
            served = self._served.get(row["id"])
            if served is None:
                served = self._adopt(row)
                self._served[row["id"]] = served
            served.desired, served.count, served.resources = row["desired_state"], row["replicas"], row["resources"]
            served.batcher.configure(int(row["batching"].get("max_batch_size", 32)), float(row["batching"].get("max_wait_ms", 5.0)))
            if row["version"] != served.version or row["reset"]:
                served.failed, served.load_failures = None, 0
            served.version, served.artifact, served.problem = row["version"], row["artifact"], row["problem"]
        for deployment_id in [d for d in self._served if d not in seen]:
            # deleted, or another supervisor holds it now: its replicas here must go
            self.log.info("AI Studio: deployment %s is no longer served here", deployment_id)
            served = self._served.pop(deployment_id)
            served.done = True
            self._spawn(self._stop_all(served))

    def _claim_and_read(self, session: Session) -> list[dict[str, Any]]:
        now = utcnow()
        expires = now + dt.timedelta(seconds=self.lease_seconds)
        D = orm.Deployment
        session.execute(update(D).where(D.lease_owner == self.owner_id).values(lease_expires_at=expires))
        free = or_(D.lease_owner.is_(None), D.lease_expires_at.is_(None), D.lease_expires_at < now)
        candidates = session.scalars(select(D.id).where(D.desired_state == "running", D.state != "failed", free).limit(100)).all()
        previous: dict[str, tuple] = {}
        for deployment_id in candidates:
            row = session.get(D, deployment_id)
            before = (row.host, list(row.replica_status or []), row.state, row.status_message)
            done = session.execute(update(D).where(D.id == deployment_id, free).values(lease_owner=self.owner_id, lease_expires_at=expires, host=self.host))
            if done.rowcount == 1:
                previous[deployment_id] = before
        out = []
        for row in session.scalars(select(D).where(D.lease_owner == self.owner_id).execution_options(populate_existing=True)).all():
            version, artifact, problem = row.model_version, None, None
            if version is None:
                version = session.scalar(select(func.max(orm.ModelVersion.version)).where(orm.ModelVersion.model_id == row.model_id))
            if version is None:
                problem = "The model has no version to serve yet: register or train one, then start the deployment."
            else:
                mv = session.scalar(select(orm.ModelVersion).where(orm.ModelVersion.model_id == row.model_id, orm.ModelVersion.version == version))
                if mv is None:
                    problem = f"The model has no version {version}."
                elif (mv.spec or {}).get("format") != WEIGHTS_FORMAT or not mv.artifact_key:
                    problem = f"Version {version} was not registered with AI Studio's safetensors format, so it cannot be served."
                else:
                    artifact = {"key": mv.artifact_key, "sha256": mv.artifact_sha256, "spec": mv.spec, "model_id": row.model_id}
            out.append(
                {
                    "id": row.id,
                    "desired_state": row.desired_state,
                    "replicas": row.replicas,
                    "resources": dict(row.resources or {}),
                    "batching": dict(row.batching or {}),
                    "version": version,
                    "artifact": artifact,
                    "problem": problem,
                    # the owner asked again (start, a new version): failures so far are forgiven
                    "reset": row.state == "pending",
                    "previous": previous.get(row.id),
                    "state": row.state,
                    "status_message": row.status_message,
                    "replica_status": list(row.replica_status or []),
                }
            )
        return out

    def _adopt(self, row: dict[str, Any]) -> Served:
        """A deployment newly owned here, with its replicas re-attached when they still run on
        this host (a server restart) and answer on their sockets."""
        paths = DeploymentPaths.of(self.deployments_dir, row["id"])
        served = Served(row["id"], paths, self._batcher(row["id"]))
        previous = row["previous"]
        if previous is not None and previous[0] == self.host:
            for entry in previous[1]:
                replica = self._reattach(paths, entry)
                if replica is not None:
                    served.replicas.append(replica)
        status = status_data(row["state"], row["status_message"], sum(1 for r in row["replica_status"] if r.get("state") == "ready"), row["replicas"], row["version"])
        served.published = (status, {(r.get("index"), r.get("model_version")): r for r in row["replica_status"] if isinstance(r, dict)})
        return served

    def _reattach(self, paths: DeploymentPaths, entry: dict) -> Replica | None:
        try:
            index, version, pid, start_time = int(entry["index"]), int(entry["model_version"]), entry.get("pid"), entry.get("start_time")
        except (KeyError, TypeError, ValueError):
            return None
        if not isinstance(pid, int) or not isinstance(start_time, (int, float)) or entry.get("state") not in ("ready", "loading"):
            return None
        replica = Replica(index, version, paths)
        replica.pid, replica.start_time, replica.restarts = pid, float(start_time), int(entry.get("restarts") or 0)
        replica.state = entry["state"]
        replica.launched_at = time.monotonic()
        if not replica.alive() or not replica.socket.exists():
            return None
        self.log.info("AI Studio: re-attached to replica %s of %s (pid %s)", index, paths.root.name, pid)
        return replica

    def _batcher(self, deployment_id: str) -> Batcher:
        def replicas():
            served = self._served.get(deployment_id)
            return served.replicas if served is not None else []

        return Batcher(
            deployment_id,
            replicas,
            max_batch_size=32,
            max_wait_ms=5.0,
            per_replica=self.max_batch_inflight,
            queue_timeout=self.queue_timeout,
            request_timeout=self.request_timeout,
            log=self.log,
        )

    def _release_all(self, session: Session, ids: list[str]) -> None:
        D = orm.Deployment
        for row in session.scalars(select(D).where(D.id.in_(ids), D.lease_owner == self.owner_id)).all():
            row.lease_owner, row.lease_expires_at, row.replica_status = None, None, []
            if row.desired_state == "running" and row.state != "failed":
                row.state, row.status_message = "pending", "The server serving it stopped; it starts again with the next server."
                publish_status(self.events, session, row.id, row.owner, status_data(row.state, row.status_message, 0, row.replicas, row.model_version))

    # -- the tick: health, reconciliation, publication -------------------------------------

    async def _tick(self) -> None:
        served = list(self._served.values())
        self._standby = [p for p in self._standby if p.poll() is None]
        if len(self._standby) < self.standby_replicas:
            self._standby.append(await asyncio.to_thread(self._popen_standby))
        await asyncio.gather(*(self._check(s, r) for s in served for r in list(s.replicas)))
        for s in served:
            await self._reconcile(s)
        for s in served:
            if not s.done:
                await self._publish(s)

    async def _check(self, served: Served, replica: Replica) -> None:
        if replica.state in ("crashed", "stopping", "stopped", "draining_done"):
            return
        if not replica.alive():
            if replica.state == "draining":
                return  # its drain task notices
            self._crashed(served, replica, self._exit_reason(replica))
            return
        ok = False
        try:
            response = await replica.client().get("/health", timeout=self.health_timeout)
            ok = response.status_code == 200
        except (httpx.HTTPError, OSError):
            ok = False
        if ok:
            replica.health_failures = 0
            if replica.state == "loading":
                replica.state, replica.ever_ready, replica.crashes_in_row = "ready", True, 0
                served.load_failures = 0
                served.batcher.replicas_changed()
            return
        if replica.state == "loading":
            if time.monotonic() - replica.launched_at > self.load_timeout:
                replica.signal(signal.SIGKILL)
                self._crashed(served, replica, f"did not load within {self.load_timeout:g}s")
            return
        replica.health_failures += 1
        if replica.state == "ready" and replica.health_failures >= self.unhealthy_after:
            replica.signal(signal.SIGKILL)
            self._crashed(served, replica, f"stopped answering health checks ({replica.health_failures} in a row)")

    def _exit_reason(self, replica: Replica) -> str:
        code = replica.proc.returncode if replica.proc is not None else None
        if code is not None and code < 0:
            try:
                why = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                why = f"killed by signal {-code}"
        elif code is not None:
            why = f"exited with code {code}"
        else:
            why = "its process is gone"
        tail = _log_tail(replica.paths.log(replica.index), 400)
        lines = [line for line in tail.splitlines() if line.strip()]
        if code not in (None, 0) and code > 0 and lines:
            return f"{why}: {lines[-1][:300]}"
        return why

    def _crashed(self, served: Served, replica: Replica, reason: str) -> None:
        replica.state = "crashed"
        replica.restarts += 1
        replica.crashes_in_row += 1
        replica.last_error = reason
        replica.retry_at = time.monotonic() + min(self.backoff_base * 2 ** (replica.crashes_in_row - 1), self.backoff_max)
        self.log.warning("AI Studio: replica %s of deployment %s %s", replica.index, served.id, reason)
        self._spawn(replica.close_client())
        if not replica.ever_ready:
            served.load_failures += 1
            if served.load_failures >= self.max_load_failures:
                served.failed = f"Replica {replica.index} failed to load {served.load_failures} times in a row; last: {reason}"[:1000]

    async def _reconcile(self, served: Served) -> None:
        if served.done:
            return
        if served.problem and served.desired == "running" and not served.failed:
            served.failed = served.problem
        if served.desired != "running" or served.failed:
            for replica in list(served.replicas):
                if replica.state not in ("draining", "stopping"):
                    self._drain(served, replica)
            if not served.replicas:
                await self._finish(served)
            return
        version = served.version
        if version not in served.local_versions:
            try:
                await asyncio.to_thread(self._materialize, served, version)
            except Exception as exc:
                served.failed = f"Could not copy version {version}'s weights here: {exc}"[:1000]
                return
            served.local_versions.add(version)
        now = time.monotonic()
        live = [r for r in served.replicas if r.state not in ("draining", "stopping")]
        surging = any(r.version == version and r.state != "ready" for r in live) and any(r.version != version and r.state == "ready" for r in live)
        for index in range(served.count):
            mine = [r for r in live if r.index == index]
            new = [r for r in mine if r.version == version]
            old = [r for r in mine if r.version != version]
            if not new:
                serving_old = [r for r in old if r.state == "ready"]
                for r in old:
                    if r.state != "ready":
                        self._drain(served, r)
                if serving_old and surging:
                    continue  # one replica at a time: this index waits for the current swap
                replica = Replica(index, version, served.paths)
                served.replicas.append(replica)
                await self._launch(served, replica)
                if serving_old:
                    surging = True
                continue
            replica = new[0]
            if replica.state == "crashed" and now >= replica.retry_at:
                await self._launch(served, replica)
            if replica.state == "ready":
                for r in old:
                    self._drain(served, r)
        for r in live:
            if r.index >= served.count:
                self._drain(served, r)

    def _materialize(self, served: Served, version: int) -> None:
        """Copy version ``version``'s weights into the deployment's directory, checked."""
        artifact = served.artifact
        target = served.paths.weights(version)
        target.parent.mkdir(parents=True, exist_ok=True)
        spec_path = served.paths.spec(version)
        if target.exists() and spec_path.exists() and _sha256_file(target) == artifact["sha256"]:
            return
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        digest = hashlib.sha256()
        try:
            with self.storage.open_reader(artifact["key"]) as reader, open(tmp, "wb") as out:
                while True:
                    chunk = reader.read(1024 * 1024)
                    if not chunk:
                        break
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != artifact["sha256"]:
                raise ValueError(f"the stored weights have sha256 {digest.hexdigest()}, not {artifact['sha256']}")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        spec_path.write_text(json.dumps(artifact["spec"]))

    async def _launch(self, served: Served, replica: Replica) -> None:
        replica.state, replica.health_failures, replica.launched_at = "loading", 0, time.monotonic()
        await replica.close_client()
        try:
            proc = await asyncio.to_thread(self._popen, served, replica)
        except Exception as exc:
            self._crashed(served, replica, f"could not start: {type(exc).__name__}: {exc}"[:300])
            return
        replica.proc, replica.pid = proc, proc.pid
        try:
            replica.start_time = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            replica.start_time = None
        if served.done or replica.state != "loading":
            # stopped or deleted while it was being started: it must not outlive that
            await self._terminate(replica)

    def _popen(self, served: Served, replica: Replica) -> subprocess.Popen:
        paths = served.paths
        replica.socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        replica.socket.unlink(missing_ok=True)
        threads = max(1, math.ceil(float(served.resources.get("cpus", 1) or 1)))
        env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_ENV)}
        env.update(PYTHONUNBUFFERED="1", AISTUDIO_REPLICA_THREADS=str(threads), OMP_NUM_THREADS=str(threads), CUDA_VISIBLE_DEVICES=self._gpus_for(served, replica.index))
        args = ["--dir", str(paths.root), "--index", str(replica.index), "--version", str(replica.version), "--orphan-timeout", str(self.orphan_timeout)]
        with open(paths.log(replica.index), "ab") as log:
            log.write(f"--- {utcnow().isoformat()} starting replica {replica.index} on version {replica.version}\n".encode())
        proc = self._assign_standby(args, env, paths, replica.index)
        if proc is None:
            with open(paths.log(replica.index), "ab") as log:
                # a session of its own: stopped as a group, and no terminal signal of the server's reaches it
                proc = subprocess.Popen([sys.executable, "-m", "aistudio_jupyter.serving.replica", *args], env=env, cwd=paths.root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        self._children = [p for p in self._children if p.poll() is None] + [proc]
        paths.process(replica.index, replica.version).write_text(json.dumps({"pid": proc.pid}))
        return proc

    def _assign_standby(self, args: list[str], env: dict[str, str], paths: DeploymentPaths, index: int) -> subprocess.Popen | None:
        """A standby process turned into this replica, or None when none is waiting."""
        while self._standby:
            proc = self._standby.pop(0)
            if proc.poll() is not None:
                continue
            job = {"argv": args, "env": {k: env[k] for k in ("AISTUDIO_REPLICA_THREADS", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")}, "cwd": str(paths.root), "log": str(paths.log(index))}
            try:
                proc.stdin.write((json.dumps(job) + "\n").encode())
                proc.stdin.close()
                return proc
            except OSError:
                _close_standby(proc)
        return None

    def _popen_standby(self) -> subprocess.Popen:
        root = Path(self.deployments_dir)
        root.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_ENV)}
        env.update(PYTHONUNBUFFERED="1")
        with open(root / "standby.log", "ab") as log:
            # stdin is its lifeline: the assignment comes on it, and EOF (this server gone) ends it
            return subprocess.Popen([sys.executable, "-m", "aistudio_jupyter.serving.replica", "--standby"], env=env, cwd=root, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)

    def _gpus_for(self, served: Served, index: int) -> str:
        wanted = int(served.resources.get("gpus", 0) or 0)
        if wanted <= 0:
            return ""  # empty, not unset: unset means every GPU to CUDA
        if self._gpus is None:
            self._gpus = detect_gpus()
        if not self._gpus:
            return ""
        return ",".join(str(self._gpus[(index * wanted + k) % len(self._gpus)]) for k in range(min(wanted, len(self._gpus))))

    def _drain(self, served: Served, replica: Replica) -> None:
        """Take ``replica`` out of routing, let its requests finish, then stop it."""
        if replica.state in ("draining", "stopping"):
            return
        replica.state = "draining" if replica.state == "ready" else "stopping"
        served.batcher.replicas_changed()
        self._spawn(self._drain_and_stop(served, replica))

    async def _drain_and_stop(self, served: Served, replica: Replica) -> None:
        deadline = time.monotonic() + self.request_timeout + 1
        while replica.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        replica.state = "stopping"
        await self._terminate(replica)
        replica.state = "stopped"
        if replica in served.replicas:
            served.replicas.remove(replica)
        self.wake()

    async def _terminate(self, replica: Replica) -> None:
        await replica.close_client()
        if replica.pid is None:
            return
        replica.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        while replica.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if replica.alive():
            replica.signal(signal.SIGKILL)
            for _ in range(40):
                if not replica.alive():
                    break
                await asyncio.sleep(0.05)
        replica.paths.process(replica.index, replica.version).unlink(missing_ok=True)
        replica.socket.unlink(missing_ok=True)

    async def _stop_all(self, served: Served) -> None:
        await asyncio.gather(*(self._terminate(r) for r in list(served.replicas)), return_exceptions=True)
        served.replicas.clear()
        await served.batcher.close()

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- publication -----------------------------------------------------------------------

    def _snapshot(self, served: Served) -> tuple[dict, dict]:
        ready = sum(1 for r in served.replicas if r.state == "ready")
        if served.failed:
            state, message = "failed", served.failed
        elif served.desired != "running":
            state, message = ("stopped", "Stopped.") if not served.replicas else ("ready" if ready else "loading", "Stopping.")
        elif ready:
            state = "ready"
            rolling = any(r.version != served.version for r in served.replicas)
            message = f"{ready}/{served.count} replicas ready" + (f"; rolling out version {served.version}" if rolling else "")
        else:
            state = "loading" if served.replicas else "pending"
            crashed = [r for r in served.replicas if r.state == "crashed"]
            message = f"Restarting after a crash: {crashed[0].last_error}" if crashed else f"Loading version {served.version}."
        replicas = {r.key: r.status() for r in served.replicas if r.state != "stopped"}
        return status_data(state, message, ready, served.count, served.version), replicas

    async def _publish(self, served: Served) -> None:
        status, replicas = self._snapshot(served)
        old_status, old_replicas = served.published
        if status == old_status and replicas == old_replicas:
            return
        changed = [r for key, r in replicas.items() if old_replicas.get(key) != r]
        gone = [{**r, "state": "stopped"} for key, r in old_replicas.items() if key not in replicas and r.get("state") != "stopped"]
        kept = await self.db.run(self._write, served.id, status, list(replicas.values()), changed + gone, status != old_status, False, write=True)
        if kept:
            served.published = (status, replicas)
        else:
            self._lost(served)

    async def _finish(self, served: Served) -> None:
        """The deployment is stopped or failed and its replicas are gone: say so, let go."""
        status, replicas = self._snapshot(served)
        old_status, old_replicas = served.published
        gone = [{**r, "state": "stopped"} for key, r in old_replicas.items() if r.get("state") != "stopped"]
        await self.db.run(self._write, served.id, status, [], gone, status != old_status, True, write=True)
        self._served.pop(served.id, None)
        served.done = True
        await served.batcher.close()

    def _write(self, session: Session, deployment_id: str, status: dict, replica_status: list, replica_events: list, status_changed: bool, release: bool) -> bool:
        D = orm.Deployment
        values: dict[str, Any] = {"state": status["state"], "status_message": status["message"], "replica_status": replica_status, "updated_at": utcnow()}
        if release:
            values.update(lease_owner=None, lease_expires_at=None)
        done = session.execute(update(D).where(D.id == deployment_id, D.lease_owner == self.owner_id).values(**values))
        if done.rowcount != 1:
            return False
        topic = f"deployment:{deployment_id}"
        for entry in replica_events:
            self.events.publish_in(session, topic, "replica", {k: entry.get(k) for k in ("index", "state", "pid", "restarts", "model_version", "last_error")})
        if status_changed:
            owner = session.scalar(select(D.owner).where(D.id == deployment_id))
            publish_status(self.events, session, deployment_id, owner, status)
        return True

    def _lost(self, served: Served) -> None:
        self.log.warning("AI Studio: deployment %s was deleted or taken over; stopping its replicas here", served.id)
        self._served.pop(served.id, None)
        served.done = True
        self._spawn(self._stop_all(served))


def _close_standby(proc: subprocess.Popen) -> None:
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _log_tail(path: Path, size: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
