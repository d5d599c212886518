"""Shared test data: certificates made with `cryptography`, a certbot tree, in-memory fakes."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from loguru import logger

from sidecar import loader
from sidecar.certbot.runner import CertbotResult
from sidecar.errors import ConfigError, DockerError
from sidecar.logs import Secrets
from sidecar.report.alerts import Notifier
from sidecar.report.outcome import Recorder
from sidecar.targets.container import ContainerTarget
from sidecar.targets.service import ServiceTarget
from sidecar.volume import journal
from sidecar.volume.certs import CertInfo

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

    from sidecar.certbot.argv import Run
    from sidecar.targets.base import Target
    from sidecar.volume.journal import Journal

T0 = datetime(2025, 3, 12, tzinfo=UTC)
T = TypeVar("T")
R = TypeVar("R")


def noting(seen: list[T], item: T, result: R) -> R:
    """Note `item` in `seen`, then give `result`: a fake's call recorded in one lambda."""
    seen.append(item)
    return result


DAY = timedelta(days=1)
ISSUER = "CN=Sidecar Test CA,O=certbot-sidecar tests"
_KEY = ec.generate_private_key(ec.SECP256R1())


def make_pem(
    names: tuple[str, ...] = ("example.com",),
    not_before: datetime = T0,
    not_after: datetime | None = None,
    *,
    key: CertificateIssuerPrivateKeyTypes | None = None,
) -> bytes:
    """A signed certificate for `names` (SAN), valid from `not_before` (90 days by default)."""
    key = key or _KEY
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "none")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(x509.Name.from_rfc4514_string(ISSUER))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after or not_before + 90 * DAY)
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def ca_pem(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    """The test CA's own certificate for `key`: the first (and only) one of a lineage's chain."""
    name = x509.Name.from_rfc4514_string(ISSUER)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(T0 - 365 * DAY)
        .not_valid_after(T0 + 3650 * DAY)
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


CHAIN_PEM = ca_pem(_KEY)
KEY_PEM = _KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)


def lineage_files(pem: bytes) -> dict[str, bytes]:
    """A lineage's four files for `pem` (made by `make_pem` with its default key) that belong
    together as certbot checks them: the chain is the issuer, the key the certificate's."""
    return {"cert": pem, "privkey": KEY_PEM, "chain": CHAIN_PEM, "fullchain": pem + CHAIN_PEM}


def cert_info(
    names: tuple[str, ...] = ("example.com",),
    not_before: datetime = T0,
    lifetime: timedelta = 90 * DAY,
    serial: int = 1,
) -> CertInfo:
    """A CertInfo without a certificate behind it, for the pure decisions."""
    return CertInfo(
        serial=serial,
        names=names,
        issuer=ISSUER,
        not_before=not_before,
        not_after=not_before + lifetime,
        key_type="ecdsa",
    )


def install_cert(
    config_dir: Path,
    name: str,
    pem: bytes,
    *,
    written_at: datetime | None = None,
) -> Path:
    """Lay out a lineage as certbot does: archive/NAME/{cert,chain,fullchain,privkey}N.pem,
    live/NAME/*.pem -> them, renewal/NAME.conf naming them; returns the archive's certN.pem (its
    mtime set to `written_at` if given)."""
    archive = config_dir / "archive" / name
    archive.mkdir(parents=True, exist_ok=True)
    version = len(list(archive.glob("cert*.pem"))) + 1
    live = config_dir / "live" / name
    live.mkdir(parents=True, exist_ok=True)
    for kind, data in lineage_files(pem).items():
        target = archive / f"{kind}{version}.pem"
        target.write_bytes(data)
        if kind == "privkey":
            target.chmod(0o600)
        if written_at is not None:
            os.utime(target, (written_at.timestamp(), written_at.timestamp()))
        link = live / f"{kind}.pem"
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(target, live))
    renewal = config_dir / "renewal"
    renewal.mkdir(parents=True, exist_ok=True)
    conf = renewal / f"{name}.conf"
    if not conf.exists():
        kinds = ("cert", "privkey", "chain", "fullchain")
        paths = "".join(f"{k} = {live}/{k}.pem\n" for k in kinds)
        conf.write_text(
            f"version = 5.8.0\narchive_dir = {archive}\n{paths}\n[renewalparams]\n"
            "authenticator = sidecar\n",
            encoding="utf-8",
        )
    return archive / f"cert{version}.pem"


def make_settings(config_dir: Path, **env: str) -> loader.Config:
    """Valid settings rooted in `config_dir`; `env` adds or overrides variables."""
    base = {
        "DOMAINS": "example.com",
        "ACME_SERVER": "https://acme.test/directory",
        "APP_CONTAINERS": "web",
        "CONFIG_DIR": str(config_dir),
        "WORK_DIR": str(config_dir.parent / "work"),
        "LOGS_DIR": str(config_dir.parent / "logs"),
    }
    return loader.load({**base, **env})


def recorder(config: loader.Config) -> Recorder:
    """How the CLI records a cycle's outcome, its alerts going nowhere."""
    return Recorder(config.cycle, config.alerts, Notifier(None, None, Secrets()))


def dns_settings(config_dir: Path, **env: str) -> loader.Config:
    """Valid CHALLENGE=dns settings (dns-rfc2136, installed for the tests) with a credentials
    file of mode 0600 beside `config_dir`; `env` adds or overrides variables."""
    ini = config_dir.parent / "rfc2136.ini"
    if not ini.exists():
        ini.write_text("dns_rfc2136_server = 127.0.0.1\ndns_rfc2136_name = k\n", encoding="utf-8")
        ini.chmod(0o600)
    base = {"CHALLENGE": "dns", "DNS_PLUGIN": "rfc2136", "DNS_CREDENTIALS": str(ini)}
    return make_settings(config_dir, **{**base, **env})


def container(
    name: str,
    *,
    running: bool = True,
    started_at: datetime = T0,
    labels: dict[str, str] | None = None,
) -> ContainerTarget:
    """A container with a Docker-like 64-hex id derived from its name."""
    return ContainerTarget(
        id=hashlib.sha256(name.encode()).hexdigest(),
        name=name,
        labels=labels or {},
        running=running,
        started_at=started_at,
    )


def service(
    name: str,
    *,
    replicas: int | None = 1,
    version: int = 10,
    labels: dict[str, str] | None = None,
    started_at: datetime = T0,
    secret: bool = False,
) -> ServiceTarget:
    """A Swarm service (global when `replicas` is None) with a swarm-like 25-character id."""
    return ServiceTarget(
        id=hashlib.sha256(name.encode()).hexdigest()[:25],
        name=name,
        labels=labels or {},
        running=replicas is None or replicas > 0,
        started_at=started_at,
        replicas=replicas,
        version=version,
        signal_reloads=not secret,
    )


class FakeControl:
    """TargetControl in memory: records every call; `fail` makes an operation raise a DockerError,
    `crash` any exception (a bug; `inspect` too). A service stopped is at 0 replicas, started at
    the target's count; each change moves its version."""

    def __init__(self, *containers: ContainerTarget | ServiceTarget) -> None:
        self.containers: dict[str, ContainerTarget | ServiceTarget] = {c.id: c for c in containers}
        self.calls: list[tuple[str, str]] = []
        self.fail: set[tuple[str, str]] = set()
        self.crash: dict[tuple[str, str], Exception] = {}
        self.observe: Callable[[str, Target], None] | None = None
        self._lock = threading.Lock()

    def targets(self) -> list[Target]:
        return sorted(self.containers.values(), key=lambda c: c.name)

    def inspect(self, kind: type[T], ident: str) -> T | None:
        found = self.containers.get(ident)
        if found is not None and (bug := self.crash.get(("inspect", found.name))) is not None:
            raise bug
        return found if isinstance(found, kind) else None

    def stop(self, target: Target) -> None:
        scaled = {"replicas": 0} if isinstance(target, ServiceTarget) else {}
        self._apply("stop", target, running=False, **scaled)

    def start(self, target: Target) -> None:
        scaled = {"replicas": target.replicas} if isinstance(target, ServiceTarget) else {}
        self._apply("start", target, running=True, started_at=datetime.now(UTC), **scaled)

    def deliver(self, targets: Sequence[Target]) -> list[str]:
        for target in targets:
            self._apply("deliver", target)
        return []

    def restart(self, target: Target) -> None:
        self._apply("restart", target, running=True, started_at=datetime.now(UTC))

    def signal(self, target: Target, name: str) -> None:
        self._apply(f"signal {name}", target)

    def _apply(self, op: str, target: Target, **changes: object) -> None:
        with self._lock:
            self.calls.append((op, target.name))
        if self.observe is not None:
            self.observe(op, target)
        if (op, target.name) in self.fail:
            raise DockerError(f"{op} refused")
        if (bug := self.crash.get((op, target.name))) is not None:
            raise bug
        with self._lock:
            current = self.containers[target.id]
            if isinstance(current, ServiceTarget) and op != "deliver" and not op.startswith("sig"):
                changes["version"] = current.version + 1
            self.containers[target.id] = dataclasses.replace(current, **changes)  # type: ignore[arg-type]

    def by_someone_else(self, name: str, **changes: object) -> None:
        """Change a container behind the sidecar's back (an operator, a restart policy); a
        service's version moves with it."""
        current = self.get(name)
        if isinstance(current, ServiceTarget):
            changes.setdefault("version", current.version + 1)
        self.containers[current.id] = dataclasses.replace(current, **changes)

    def get(self, name: str) -> Any:  # a test reads either kind's fields
        return next(c for c in self.containers.values() if c.name == name)

    def names(self, op: str) -> list[str]:
        return sorted(name for what, name in self.calls if what == op)


class FakeCertbot:
    """Certbot: records each run and its command line as the runner renders it; `action` plays
    what the real run would do."""

    def __init__(self, action: Callable[[list[str]], CertbotResult] | None = None) -> None:
        self.runs: list[Run] = []
        self.calls: list[list[str]] = []
        self.envs: list[dict[str, str]] = []
        self.secrets: list[dict[str, str]] = []
        self.action = action

    def run(self, run: Run) -> CertbotResult:
        args = run.argv()
        self.runs.append(run)
        self.calls.append(args)
        self.envs.append(run.env)
        self.secrets.append(dict(run.secrets))
        return self.action(args) if self.action else CertbotResult(0, timed_out=False)

    @property
    def commands(self) -> list[str]:
        return [args[0] for args in self.calls]


def value_after(args: list[str], flag: str) -> str:
    """The value given to `flag` on a command line."""
    return args[args.index(flag) + 1]


SETTINGS_BASE = {"DOMAINS": "example.com", "ACME_SERVER": "letsencrypt", "APP_CONTAINERS": "web"}


def load(**env: str) -> loader.Config:
    """The configuration from a minimal valid environment plus `env`."""
    return loader.load({**SETTINGS_BASE, **env})


def read(**env: str) -> loader.Settings:
    """The variables of a minimal valid environment plus `env`, each read by its own rule."""
    return loader.read({**SETTINGS_BASE, **env})


def load_error(**env: str) -> str:
    """The one-line error those settings give."""
    with pytest.raises(ConfigError) as caught:
        loader.load({**SETTINGS_BASE, **env})
    return str(caught.value)


def save_journal(state_dir: Path, entry: Journal) -> None:
    """Put `entry` on the volume as the journal, through its one writer."""
    journal.update(state_dir, lambda _old: entry)


@contextlib.contextmanager
def logged() -> Iterator[list[str]]:
    """The log lines written inside (`LEVEL message`, a traceback after it when one is logged)."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), format="{level} {message}", level="DEBUG")
    try:
        yield lines
    finally:
        logger.remove(sink)
