"""What a job is started with: argv (torchrun for several GPUs, never a shell) and an environment
holding the job's own credentials and none of the server's."""

from __future__ import annotations

import sys

import pytest

from aistudio_jupyter.executors.base import JobPaths, exit_reason
from aistudio_jupyter.services.jobs import JobService
from aistudio_jupyter.services.scheduler import Claim
from aistudio_jupyter.services.supervisor import JobSupervisor


@pytest.fixture
def supervisor(tmp_path):
    (tmp_path / "root" / "sub").mkdir(parents=True)
    (tmp_path / "root" / "sub" / "run.py").write_text("print(1)\n")
    (tmp_path / "root" / "nb.ipynb").write_text("{}")
    jobs = JobService(root_dir=str(tmp_path / "root"))
    return JobSupervisor(jobs=jobs, jobs_dir=str(tmp_path / "jobs"), gpus=[0, 1, 2])


def claim(kind: str, spec: dict, gpus: tuple[int, ...] = ()) -> Claim:
    return Claim("job_1", "alice", kind, spec, {"gpus": len(gpus)}, gpus, 1)


def test_argv_per_kind(supervisor, tmp_path):
    paths = JobPaths.of(supervisor.jobs_dir, "job_1")
    root = tmp_path / "root"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    assert supervisor.job_argv(claim("script", {"path": "sub/run.py", "args": ["--x", "a;b"]}), paths) == [sys.executable, str(root / "sub/run.py"), "--x", "a;b"]
    assert supervisor.job_argv(claim("script", {"module": "pkg.mod", "args": ["1"]}, (0, 1)), paths) == [*torchrun, "2", "-m", "pkg.mod", "1"]
    assert supervisor.job_argv(claim("train", {}, (0,)), paths) == [sys.executable, "-m", "aistudio_jupyter.runtime.trainer"]
    assert supervisor.job_argv(claim("train", {}, (0, 1, 2)), paths) == [*torchrun, "3", "-m", "aistudio_jupyter.runtime.trainer"]
    assert supervisor.job_argv(claim("notebook", {"path": "nb.ipynb", "parameters": {"a": 1}}), paths) == [
        sys.executable, "-m", "aistudio_jupyter.runtime.job_entry_notebook", str(root / "nb.ipynb"), str(paths.root / "output.ipynb"),
    ]


def test_env_carries_the_jobs_credentials_only(supervisor, tmp_path, monkeypatch):
    monkeypatch.setenv("AISTUDIO_DATABASE_URL", "postgresql://secret")
    monkeypatch.setenv("AISTUDIO_TOKEN", "aist_kernel_token")
    monkeypatch.setenv("JUPYTER_TOKEN", "server-token")
    monkeypatch.setenv("AISTUDIO_CA_FILE", "/etc/ca.pem")
    supervisor.api_url = lambda: "http://127.0.0.1:1/aistudio/api"
    env = supervisor.job_env("job_1", "aist_job", tmp_path / "spec.json", (2,))
    assert env["AISTUDIO_TOKEN"] == "aist_job" and env["AISTUDIO_JOB_ID"] == "job_1" and env["AISTUDIO_JOB_SPEC"] == str(tmp_path / "spec.json")
    assert env["AISTUDIO_URL"] == "http://127.0.0.1:1/aistudio/api" and env["CUDA_VISIBLE_DEVICES"] == "2" and env["AISTUDIO_CA_FILE"] == "/etc/ca.pem"
    assert "AISTUDIO_DATABASE_URL" not in env and "JUPYTER_TOKEN" not in env
    assert supervisor.job_env("job_1", "t", tmp_path, ())["CUDA_VISIBLE_DEVICES"] == ""


def test_exit_reasons():
    assert exit_reason(0, None) is None
    assert exit_reason(3, None) == "exit code 3"
    assert exit_reason(None, 9) == "killed by SIGKILL"
    assert exit_reason(None, 15) == "killed by SIGTERM"
    assert exit_reason(None, 9, oom=True) == "out of memory (SIGKILL, cgroup OOM)"
    assert exit_reason(None, 9, memory_limit=(128, 160)) == "out of memory: used 160 MiB, over its 128 MiB limit (resources.memory_mb); killed by SIGKILL"


def test_the_memory_limit_reaches_the_shim(supervisor, tmp_path, monkeypatch):
    supervisor.tokens = type("Tokens", (), {"mint": staticmethod(lambda *a, **k: ("aist_job", None))})()
    supervisor.api_url = lambda: "http://127.0.0.1:1/aistudio/api"
    job = Claim("job_1", "alice", "script", {"path": "sub/run.py"}, {"gpus": 0, "memory_mb": 300}, (), 1)
    assert supervisor._prepare(job).memory_mb == 300
    supervisor.enforce_memory = False
    assert supervisor._prepare(job).memory_mb is None
