"""The challenge kinds: how certbot is told to answer them, and whether the app must stop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sidecar.volume.confs import AUTHENTICATOR

if TYPE_CHECKING:
    from sidecar.settings import Settings


@dataclass(frozen=True, slots=True)
class Challenge:
    name: str  # standalone, webroot or dns (CHALLENGE)
    stops_app: bool  # the app is stopped while the challenge is answered
    args: tuple[str, ...]  # certbot's authenticator flags, in flag-value pairs
    answered: str = "the app answers the challenge itself"  # how, when the app is not stopped

    @property
    def authenticator(self) -> str:
        return self.args[1]


def challenge_for(config: Settings) -> Challenge:
    """Standalone with the app stopped (default), the app's own webroot (cooperative), or a TXT
    record through one of certbot's DNS plugins (no stop; wildcards)."""
    if config.challenge == "webroot":
        flags = ("--authenticator", "webroot", "--webroot-path", str(config.webroot))
        return Challenge("webroot", stops_app=False, args=flags)
    if config.dns and config.dns_authenticator:
        return Challenge(
            "dns",
            stops_app=False,
            args=("--authenticator", config.dns_authenticator, *_dns_options(config)),
            answered=f"DNS-01: a TXT record through {config.dns_authenticator}, no port",
        )
    return Challenge("standalone", stops_app=True, args=("--authenticator", AUTHENTICATOR))


def _dns_options(config: Settings) -> tuple[str, ...]:
    """The plugin's credentials file and propagation time, where it takes them (route53 reads
    its AWS credentials from the environment: Settings.acme_env)."""
    plugin, name = config.dns, config.dns_authenticator
    options: tuple[str, ...] = ()
    if plugin and plugin.credentials != "aws" and config.dns_credentials is not None:
        options += (f"--{name}-credentials", str(config.dns_credentials))
    if config.dns_propagation is not None:
        options += (f"--{name}-propagation-seconds", str(round(config.dns_propagation)))
    return options
