"""Where certbot and the sidecar keep their files (CONFIG_DIR, WORK_DIR, LOGS_DIR)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Paths:
    config_dir: Path = Path("/etc/letsencrypt")
    work_dir: Path = Path("/var/lib/letsencrypt")
    logs_dir: Path = Path("/var/log/letsencrypt")

    @property
    def state_dir(self) -> Path:
        """The sidecar's own files on the shared volume (journal, lock, recovery record)."""
        return self.config_dir / "sidecar"
