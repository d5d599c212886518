"""The app's targets as the settings name them, and how they are stopped, started and reloaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class TargetsSpec:
    """APP_CONTAINERS, APP_SERVICES, APP_LABEL; CERT_DELIVERY; STOP_TIMEOUT (None: each
    target's own), START_TIMEOUT; RELOAD_SIGNAL (None: a restart loads a new certificate)."""

    containers: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    label: str | None = None
    delivery: Literal["volume", "secret"] = "volume"
    stop_timeout: float | None = None
    start_timeout: float = 120.0
    reload_signal: str | None = None

    @property
    def secrets(self) -> bool:
        """CERT_DELIVERY=secret: the certificates reach Swarm services as secrets."""
        return self.delivery == "secret"

    @property
    def swarm(self) -> bool:
        """Services are asked for (APP_SERVICES, or secret delivery)."""
        return bool(self.services) or self.secrets
