"""What the adoption decides on: one lineage as the tree has it (`Found`, read by
`sidecar.volume.tree`), and what this container offers (`Here`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sidecar.volume.access import Policy
from sidecar.volume.accounts import Accounts
from sidecar.volume.confs import AUTHENTICATOR, INSTALLER
from sidecar.volume.layout import Layout

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from sidecar.volume.ca import AcmeCA
    from sidecar.volume.certs import CertInfo
    from sidecar.volume.paths import Paths
    from sidecar.volume.specs import Domains


def _no_problem(_plugin: str) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class TreeSpec:
    """What reading, adopting and repairing the tree go by: the directories, DOMAINS and the
    lineages left alone, the CA, the files' owner and modes, and the sidecar's own challenge as
    certbot saves it in a renewal conf (its authenticator, the DNS plugin's credentials file,
    the HTTP-01 port and address); the certbot plugins installed here, and why a saved DNS
    plugin cannot run here (`plugin_problem`: None when it can)."""

    paths: Paths
    domains: Domains
    ca: AcmeCA
    policy: Policy = field(default_factory=Policy)
    authenticator: str = AUTHENTICATOR
    credentials: str | None = None
    http01_port: int = 80
    http01_address: str = ""
    plugins: frozenset[str] = frozenset()
    plugin_problem: Callable[[str], str | None] = _no_problem


@dataclass(frozen=True, slots=True)
class Found:
    """One lineage as the tree has it: its renewal conf's values and its current certificate."""

    name: str
    top: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    conf_error: str | None = None
    autorenew_marked: bool = False
    cert: CertInfo | None = None
    cert_error: str | None = None
    backups: tuple[str, ...] = ()
    adopted_from: str | None = None
    layout: Layout = field(default_factory=Layout)  # its four live/ files, as certbot sees them


@dataclass(frozen=True, slots=True)
class Here:
    """What this container offers, and the settings that decide."""

    config_dir: str
    work_dir: str
    logs_dir: str
    ca: AcmeCA  # the configured CA (`ca.choose_ca` says which a DOMAINS lineage renews at)
    domains: frozenset[str]
    ignore: frozenset[str] = frozenset()
    ignore_unlisted: bool = False
    plugins: frozenset[str] = frozenset({"sidecar", "standalone", "webroot", "manual", "null"})
    installer: str = INSTALLER  # the one the sidecar's own certbot runs pass (`--installer`)
    # The sidecar's own authenticator: `sidecar` (HTTP-01), or with CHALLENGE=dns its DNS plugin
    # (`dns-rfc2136`) and DNS_CREDENTIALS, as certbot saves them (`dns_rfc2136_credentials`).
    authenticator: str = AUTHENTICATOR
    credentials: str | None = None
    renew_before_expiry: float | None = None  # RENEW_BEFORE_EXPIRY, seconds
    exists: Callable[[str], bool] = lambda _path: False
    runnable: Callable[[str], bool] = lambda _command: False
    accounts: Callable[[str], Accounts] = lambda _server: Accounts()
    plugin_problem: Callable[[str], str | None] = _no_problem  # a saved DNS plugin: why not
