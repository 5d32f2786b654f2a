"""Jobs outlive their server: after ``kill -9`` and a restart the server re-attaches to live
jobs, ends the ones that finished meanwhile by their exit record, and marks the ones that
vanished without one ``lost``. Two servers sharing a PostgreSQL database never run one job
twice, and one takes over the other's jobs when it dies."""

from __future__ import annotations

import os
import shutil
import signal
from collections import Counter

import psutil

from .helpers import job_server, kill_server, log_text, pid_file, read_pid, restart, submit, wait_for, wait_state, write

LONG = """
    import os, sys, time
    open(sys.argv[1], "w").write(str(os.getpid()))
    for i in range(5):
        print("line", i, flush=True)
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.05)
    for i in range(5, 10):
        print("line", i, flush=True)
    sys.exit(int(sys.argv[3]))
"""


def test_kill_9_and_restart_reattaches_finishes_and_marks_the_vanished_lost(tmp_path, sqlite_template):
    db = tmp_path / "aistudio.db"
    shutil.copy(sqlite_template, db)
    srv = job_server(tmp_path / "live", f"sqlite:///{db}")
    write(srv, "long.py", LONG)
    release_live, release_done = pid_file(srv, "release-live"), pid_file(srv, "release-done")
    with srv:
        with srv.client("alice") as alice:
            live = submit(alice, {"path": "long.py", "args": [pid_file(srv, "live.pid"), release_live, "0"]})
            done = submit(alice, {"path": "long.py", "args": [pid_file(srv, "done.pid"), release_done, "4"]})
            doomed = submit(alice, {"path": "long.py", "args": [pid_file(srv, "doomed.pid"), pid_file(srv, "never"), "0"]})
            for j in (live, done, doomed):
                wait_state(alice, j["id"], "running")
            wait_for(lambda: "line 4" in log_text(alice, live["id"]), what="the first lines")
        kill_server(srv)
        # while no server watches: one job ends with a record, one vanishes with its shim
        open(release_done, "w").close()
        doomed_pid = read_pid(srv, "doomed.pid")
        os.killpg(psutil.Process(doomed_pid).ppid(), signal.SIGKILL)
        wait_for(lambda: not psutil.pid_exists(doomed_pid) or psutil.Process(doomed_pid).status() == psutil.STATUS_ZOMBIE, what="the doomed job to die")
        restart(srv)
        with srv.client("alice") as alice:
            lost = wait_state(alice, doomed["id"], ("lost", "failed", "succeeded"))
            assert (lost["state"], lost["exit_reason"]) == ("lost", "server restarted and the job process is gone")
            finished = wait_state(alice, done["id"], ("lost", "failed", "succeeded"))
            assert (finished["state"], finished["exit_code"], finished["exit_reason"]) == ("failed", 4, "exit code 4")
            # re-attached: still running under the new server, which sees it end
            assert wait_state(alice, live["id"], "running")["state"] == "running"
            open(release_live, "w").close()
            ended = wait_state(alice, live["id"], ("lost", "failed", "succeeded"))
            assert ended["state"] == "succeeded", ended
            assert log_text(alice, live["id"]) == "".join(f"line {i}\n" for i in range(10))


COUNT = """
    import os, sys, time
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, (os.environ["AISTUDIO_JOB_ID"] + "\\n").encode())
    time.sleep(float(sys.argv[2]))
"""


def test_two_servers_on_one_postgresql_database_never_run_a_job_twice(tmp_path, postgres_url):
    from tests.conftest import truncate_all

    truncate_all(postgres_url)
    runs = tmp_path / "runs.txt"
    servers = [job_server(tmp_path / name, postgres_url, supervisor={"cpu_slots": 3}) for name in ("a", "b")]
    for srv in servers:
        write(srv, "count.py", COUNT)
    a, b = servers
    with a, b:
        with a.client("alice") as on_a, b.client("bob") as on_b:
            jobs = [submit(client, {"path": "count.py", "args": [str(runs), "0.2"]}) for _ in range(4) for client in (on_a, on_b)]
            for j in jobs:
                assert wait_state(on_a if j["owner"] == "alice" else on_b, j["id"], ("succeeded", "failed", "lost"), timeout=60)["state"] == "succeeded"
            counts = Counter(runs.read_text().split())
            assert counts == {j["id"]: 1 for j in jobs}
            # a job running on server a when it dies is taken over by server b
            write(a, "long.py", LONG)
            release = pid_file(a, "release")
            orphan = submit(on_a, {"path": "long.py", "args": [pid_file(a, "orphan.pid"), release, "0"]})
            running = wait_state(on_a, orphan["id"], "running", timeout=60)
            # the claim may have gone to either server; kill the one that holds it
            holder = a if (a.workdir / "data" / "aistudio" / "jobs" / orphan["id"]).exists() else b
            survivor = b if holder is a else a
            kill_server(holder)
            with survivor.client("alice") as alice:
                open(release, "w").close()
                ended = wait_state(alice, orphan["id"], ("succeeded", "failed", "lost"), timeout=30)
                assert ended["state"] == "succeeded", ended
                assert ended["attempts"] == running["attempts"] == 1
                assert log_text(alice, orphan["id"]) == "".join(f"line {i}\n" for i in range(10))
