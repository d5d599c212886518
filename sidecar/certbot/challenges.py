"""The challenge kinds, one type each: how certbot is told to answer them, and whether the app
must stop. A new kind is one more type here (and its choice in the settings' loader)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from sidecar.volume.confs import AUTHENTICATOR

if TYPE_CHECKING:
    from collections.abc import Collection
    from pathlib import Path


AWS_CREDENTIALS_ENV = "AWS_SHARED_CREDENTIALS_FILE"  # where boto3 (route53) finds its file


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

    @property
    def renews_as(self) -> str:
        """The authenticator adopted lineages are given in their renewal conf: the sidecar's
        plugin for HTTP-01 (its renew runs pass the challenge's own), the plugin for DNS-01."""
        ...

    @property
    def credentials_file(self) -> str | None:
        """The credentials file certbot saves with a lineage (`dns_NAME_credentials`), if any."""
        ...

    @property
    def webroot(self) -> Path | None:
        """A directory on the volume the app serves challenge files from, if any."""
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
    renews_as: str = AUTHENTICATOR
    credentials_file: str | None = None
    webroot: Path | None = None

    def options(self) -> tuple[str, ...]:
        return ()

    def env(self) -> dict[str, str]:
        return {}


@dataclass(frozen=True, slots=True)
class Webroot:
    """HTTP-01 answered by the app itself from files certbot writes on the volume (no stop)."""

    webroot: Path
    authenticator: str = "webroot"
    stops_app: bool = False
    http01: bool = True
    answered: str = "the app answers the challenge itself"
    per_lineage: bool = False
    renews_as: str = AUTHENTICATOR
    credentials_file: str | None = None

    def options(self) -> tuple[str, ...]:
        return ("--webroot-path", str(self.webroot))

    def env(self) -> dict[str, str]:
        return {}


@dataclass(frozen=True, slots=True)
class DnsPlugin:
    """What one of certbot's DNS plugins (`certbot-dns-NAME`, extra `dns-NAME`) takes.

    `credentials`: `file` (`--dns-NAME-credentials`, required), `optional` (google: a service
    account file, else the machine's own credentials), or `aws` (route53 has no such option: the
    file is AWS's shared credentials file, else AWS_* variables or the instance's role).
    `propagation`: whether it takes `--dns-NAME-propagation-seconds` (route53 waits for Route 53
    itself)."""

    credentials: Literal["file", "optional", "aws"] = "file"
    propagation: bool = True


# certbot's own DNS plugins, each an image extra (pyproject.toml; tests check they agree).
DNS_PLUGINS = {
    "cloudflare": DnsPlugin(),
    "digitalocean": DnsPlugin(),
    "dnsimple": DnsPlugin(),
    "dnsmadeeasy": DnsPlugin(),
    "gehirn": DnsPlugin(),
    "google": DnsPlugin(credentials="optional"),
    "linode": DnsPlugin(),
    "luadns": DnsPlugin(),
    "nsone": DnsPlugin(),
    "ovh": DnsPlugin(),
    "rfc2136": DnsPlugin(),
    "route53": DnsPlugin(credentials="aws", propagation=False),
    "sakuracloud": DnsPlugin(),
}
OTHER_DNS_PLUGIN = DnsPlugin(credentials="optional")  # another `dns-NAME` plugin installed here


def dns_plugin(name: str) -> DnsPlugin:
    """The facts of DNS plugin `name` (`rfc2136`)."""
    return DNS_PLUGINS.get(name, OTHER_DNS_PLUGIN)


def dns_plugin_problem(plugin: str, installed: Collection[str]) -> str | None:
    """Why DNS plugin `plugin` (`cloudflare`) cannot run where `installed` are the certbot
    plugins, naming the extra to build with; None when it can."""
    if f"dns-{plugin}" in installed:
        return None
    if plugin in DNS_PLUGINS:
        return (
            f"the dns-{plugin} plugin is not in this image; build it with "
            f"--build-arg EXTRAS=dns-{plugin}"
        )
    return (
        f"dns-{plugin} is none of certbot's DNS plugins ({', '.join(DNS_PLUGINS)}; each is "
        "built in with EXTRAS=dns-NAME), and not installed in this image"
    )


@dataclass(frozen=True, slots=True)
class Dns:
    """DNS-01: a TXT record through one of certbot's DNS plugins (no stop; wildcards)."""

    plugin: str  # `rfc2136`
    credentials: Path | None = None  # DNS_CREDENTIALS, absolute (as certbot saves it)
    propagation: float | None = None  # DNS_PROPAGATION, seconds
    stops_app: bool = False
    http01: bool = False
    per_lineage: bool = True
    webroot: Path | None = None

    @property
    def facts(self) -> DnsPlugin:
        return dns_plugin(self.plugin)

    @property
    def authenticator(self) -> str:
        return f"dns-{self.plugin}"

    @property
    def answered(self) -> str:
        return f"DNS-01: a TXT record through {self.authenticator}, no port"

    @property
    def renews_as(self) -> str:
        return self.authenticator

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
