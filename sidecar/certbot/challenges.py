"""The challenge kinds: how certbot is told to answer them, and whether the app must stop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sidecar.volume.confs import AUTHENTICATOR

if TYPE_CHECKING:
    from sidecar.settings import Settings


@dataclass(frozen=True, slots=True)
class Challenge:
    name: str
    stops_app: bool  # the app is stopped while the challenge is answered
    args: tuple[str, ...]  # certbot's authenticator flags


def challenge_for(config: Settings) -> Challenge:
    """Standalone with the app stopped (default), or the app's own webroot (cooperative)."""
    if config.challenge == "webroot":
        flags = ("--authenticator", "webroot", "--webroot-path", str(config.webroot))
        return Challenge("webroot", stops_app=False, args=flags)
    return Challenge("standalone", stops_app=True, args=("--authenticator", AUTHENTICATOR))
