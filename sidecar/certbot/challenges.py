"""The challenge kinds, one type each: how certbot is told to answer them, and whether the app
must stop. A new kind is one more type here (and its choice in the settings' loader)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sidecar.settings import AWS_CREDENTIALS_ENV, DNS_PLUGINS, OTHER_DNS_PLUGIN
from sidecar.volume.confs import AUTHENTICATOR

if TYPE_CHECKING:
    from pathlib import Path

    from sidecar.settings import DnsPlugin, Settings


class Challenge(Protocol):
    """What the cycle, the dry run and the adoption need to know of the sidecar's challenge."""

    @property
    def authenticator(self) -> str:
        """certbot's authenticator (`--authenticator`): `sidecar`, `webroot`, `dns-rfc2136`."""
        ...

    @property
    def stops_app(self) -> bool:
        """The app is stopped while the challenge is answered."""
        ...

    @property
    def http01(self) -> bool:
        """An HTTP-01 challenge: port 80 of this host answers it (DNS-01 binds no port)."""
        ...

    @property
    def answered(self) -> str:
        """How the challenge is answered when the app is not stopped (the dry run says it)."""
        ...

    @property
    def per_lineage(self) -> bool:
        """Its options are the sidecar's own lineages' only: lineages that keep another plugin
        of the same kind renew in runs of their own (DNS-01's credentials)."""
        ...

    def options(self) -> tuple[str, ...]:
        """The authenticator's own flags, in flag-value pairs (`--webroot-path PATH`)."""
        ...

    def env(self) -> dict[str, str]:
        """What certbot's environment needs for it (route53's AWS credentials file)."""
        ...


@dataclass(frozen=True, slots=True)
class Standalone:
    """HTTP-01 through the sidecar's own plugin, with the app stopped (the default)."""

    authenticator: str = AUTHENTICATOR
    stops_app: bool = True
    http01: bool = True
    answered: str = "the app answers the challenge itself"
    per_lineage: bool = False

    def options(self) -> tuple[str, ...]:
        return ()

    def env(self) -> dict[str, str]:
        return {}


@dataclass(frozen=True, slots=True)
class Webroot:
    """HTTP-01 answered by the app itself from files certbot writes on the volume (no stop)."""

    path: Path
    authenticator: str = "webroot"
    stops_app: bool = False
    http01: bool = True
    answered: str = "the app answers the challenge itself"
    per_lineage: bool = False

    def options(self) -> tuple[str, ...]:
        return ("--webroot-path", str(self.path))

    def env(self) -> dict[str, str]:
        return {}


@dataclass(frozen=True, slots=True)
class Dns:
    """DNS-01: a TXT record through one of certbot's DNS plugins (no stop; wildcards)."""

    plugin: str  # `rfc2136`
    credentials: Path | None = None  # DNS_CREDENTIALS, absolute (as certbot saves it)
    propagation: float | None = None  # DNS_PROPAGATION, seconds
    stops_app: bool = False
    http01: bool = False
    per_lineage: bool = True

    @property
    def facts(self) -> DnsPlugin:
        return DNS_PLUGINS.get(self.plugin, OTHER_DNS_PLUGIN)

    @property
    def authenticator(self) -> str:
        return f"dns-{self.plugin}"

    @property
    def answered(self) -> str:
        return f"DNS-01: a TXT record through {self.authenticator}, no port"

    @property
    def credentials_file(self) -> str | None:
        """The credentials as certbot saves them in a renewal conf (`dns_NAME_credentials`);
        None for route53 (AWS reads its file from the environment)."""
        aws = self.facts.credentials == "aws"
        return None if self.credentials is None or aws else str(self.credentials)

    def options(self, propagation: float | None = None) -> tuple[str, ...]:
        """The plugin's credentials file and propagation time (`propagation` instead of
        DNS_PROPAGATION, where it takes one: the dry run's check waits for none)."""
        wait = self.propagation if propagation is None else propagation
        options: tuple[str, ...] = ()
        if (path := self.credentials_file) is not None:
            options += (f"--{self.authenticator}-credentials", path)
        if wait is not None and self.facts.propagation:
            options += (f"--{self.authenticator}-propagation-seconds", str(round(wait)))
        return options

    def env(self) -> dict[str, str]:
        """route53 reads DNS_CREDENTIALS as AWS's shared credentials file."""
        if self.facts.credentials == "aws" and self.credentials is not None:
            return {AWS_CREDENTIALS_ENV: str(self.credentials)}
        return {}


def challenge_for(config: Settings) -> Standalone | Webroot | Dns:
    """Standalone with the app stopped (default), the app's own webroot (cooperative), or a TXT
    record through one of certbot's DNS plugins (no stop; wildcards)."""
    if config.challenge == "webroot":
        return Webroot(config.webroot)
    if config.challenge == "dns" and config.dns_plugin:
        return Dns(config.dns_plugin, config.dns_credentials, config.dns_propagation)
    return Standalone()
