"""Job backends: how a job's process is started, watched, signalled and how its end is learned.

Nothing here knows about the database or the web server; the supervisor (services/supervisor.py)
drives a backend and records what it reports.
"""

from .base import ExitInfo, JobBackend, JobHandle, JobLaunch, JobPaths, exit_reason

__all__ = ["ExitInfo", "JobBackend", "JobHandle", "JobLaunch", "JobPaths", "exit_reason"]
