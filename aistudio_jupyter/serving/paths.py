"""Where a deployment's files live: everything derived from ids and numbers, never user text."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path

#: sun_path holds 108 bytes; a longer socket path cannot be bound or connected to
MAX_SOCKET_PATH = 100


@dataclasses.dataclass(frozen=True)
class DeploymentPaths:
    root: Path

    @classmethod
    def of(cls, deployments_dir: str | os.PathLike, deployment_id: str) -> DeploymentPaths:
        return cls(Path(deployments_dir) / deployment_id)

    def version_dir(self, version: int) -> Path:
        return self.root / f"v{int(version)}"

    def spec(self, version: int) -> Path:
        return self.version_dir(version) / "spec.json"

    def weights(self, version: int) -> Path:
        return self.version_dir(version) / "model.safetensors"

    def log(self, index: int) -> Path:
        return self.root / f"replica-{int(index)}.log"

    def process(self, index: int, version: int) -> Path:
        """The replica's own record of its pid and start time, for cleanup and re-attach."""
        return self.root / f"replica-{int(index)}-v{int(version)}.json"

    def socket(self, index: int, version: int) -> Path:
        """The replica's Unix socket: in the deployment directory, or, when that path is too
        long for a socket address, under a short per-user directory named by its hash."""
        name = f"r{int(index)}-v{int(version)}.sock"
        path = self.root / name
        if len(os.fsencode(str(path))) <= MAX_SOCKET_PATH:
            return path
        digest = hashlib.sha256(os.fsencode(str(self.root))).hexdigest()[:16]
        short = Path(tempfile.gettempdir()) / f"aistudio-{os.getuid()}"
        return short / f"{digest}-{name}"
