"""Verify after deploy: does the app actually serve the lineage's current certificate?

A thin TLS probe (connect to each VERIFY endpoint, SNI per name, no chain verification) and a pure
comparison with the lineage's current certificate. `check_served` adds the policy: poll for
VERIFY_WAIT, reload the targets once when the app serves another certificate, poll again, report.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from loguru import logger

from sidecar.cycle.problem import Problem
from sidecar.targets.reload import load_certificate
from sidecar.volume import lineages
from sidecar.volume.certs import CertInfo, parse_cert
from sidecar.volume.specs import WILDCARD, is_ip

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from sidecar.targets.base import TargetControl
    from sidecar.volume.specs import CertSpec

PROBE_TIMEOUT = 5.0
POLL_EVERY = 1.0
_ENDPOINT = re.compile(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[A-Za-z0-9._-]+)):(?P<port>\d+)$")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the app answers TLS, as seen from the sidecar (host network: usually 127.0.0.1)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(raw: str) -> Endpoint:
    """`127.0.0.1:443`, `localhost:8443`, `[::1]:443`, or a bare port (on 127.0.0.1)."""
    text = raw.strip()
    if text.isdigit():
        text = f"127.0.0.1:{text}"
    match = _ENDPOINT.match(text)
    port = int(match["port"]) if match else 0
    if not match or not 1 <= port <= 65535:  # noqa: PLR2004
        raise ValueError(f"{raw.strip()!r} is not host:port (example: 127.0.0.1:443)")
    return Endpoint(match["v6"] or match["host"], port)


def parse_endpoints(raw: object) -> tuple[Endpoint, ...]:
    """Comma-separated endpoints; empty means verification is off."""
    if isinstance(raw, tuple | list):
        items = [x if isinstance(x, Endpoint) else parse_endpoint(str(x)) for x in raw]
    else:
        items = [parse_endpoint(x) for x in str(raw or "").split(",") if x.strip()]
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True, slots=True)
class VerifySpec:
    """VERIFY (where the app answers TLS; none: verification is off) and VERIFY_WAIT (seconds
    to wait for the current certificate, before and after a reload)."""

    endpoints: tuple[Endpoint, ...] = ()
    wait: float = 30.0

    @property
    def on(self) -> bool:
        return bool(self.endpoints)


@dataclass(frozen=True, slots=True)
class Check:
    """One probe: what `endpoint` served for SNI `name`, against lineage `certificate`."""

    certificate: str
    endpoint: str
    name: str
    expected: str  # serial (hex) of the lineage's current certificate
    served: str | None = None  # serial (hex) the app presented, None when it did not answer
    error: str | None = None  # why it did not answer

    @property
    def ok(self) -> bool:
        return self.error is None and self.served == self.expected

    @property
    def mismatch(self) -> bool:
        """It answered, with another certificate (a restart may load the current one)."""
        return self.error is None and self.served != self.expected

    def describe(self) -> str:
        where = f"{self.endpoint} (SNI {self.name})"
        if self.error is not None:
            return f"{where} does not answer TLS: {self.error}"
        if self.ok:
            return f"{where} serves the current certificate (serial {self.expected})"
        return f"{where} serves serial {self.served}, not the current {self.expected}"

    def to_json(self) -> dict[str, object]:
        return {
            "certificate": self.certificate,
            "endpoint": self.endpoint,
            "name": self.name,
            "expected_serial": self.expected,
            "served_serial": self.served,
            "error": self.error,
            "match": self.ok,
        }


def compare(
    certificate: str,
    endpoint: Endpoint,
    name: str,
    current: CertInfo,
    served: CertInfo | None,
    *,
    error: str | None = None,
) -> Check:
    """Pure: the served certificate is the current one when serial and issuer are the same."""
    if served is None:
        return Check(
            certificate, str(endpoint), name, current.serial_hex, None, error or "no answer"
        )
    shown = served.serial_hex
    if served.issuer != current.issuer:
        shown += f" from {served.issuer}"
    return Check(certificate, str(endpoint), name, current.serial_hex, shown)


def served_cert(endpoint: Endpoint, name: str, timeout: float = PROBE_TIMEOUT) -> CertInfo:
    """The leaf certificate presented on `endpoint` for SNI `name` (OSError/ValueError on failure).

    No chain or name verification: the point is to compare, and the probe must also work for a
    test CA or an expired certificate.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as raw,
        ctx.wrap_socket(raw, server_hostname=sni(name)) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ValueError("no certificate presented")
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    return parse_cert(pem)


Probe = Callable[[Endpoint, str], CertInfo]
WILDCARD_LABEL = "certbot-sidecar"  # the name probed for `*.example.com`: any it covers


def sni(name: str) -> str | None:
    """The SNI a probe for `name` sends: none for an IP address (RFC 6066 allows host names
    only; a server picks an IP certificate by the address it was reached at)."""
    return None if is_ip(name) else name


def probe_name(name: str) -> str:
    """The SNI name to probe for `name`: a wildcard is probed with one name it covers."""
    return f"{WILDCARD_LABEL}.{name[2:]}" if name.startswith(WILDCARD) else name


def probe_all(
    specs: Sequence[CertSpec],
    current: Mapping[str, CertInfo | None],
    endpoints: Sequence[Endpoint],
    probe: Probe = served_cert,
) -> tuple[Check, ...]:
    """Every name of every configured certificate that has a lineage, on every endpoint."""
    checks = []
    for spec in specs:
        cert = current.get(spec.name)
        if cert is None:
            continue
        for endpoint in endpoints:
            for name in map(probe_name, spec.domains):
                try:
                    checks.append(compare(spec.name, endpoint, name, cert, probe(endpoint, name)))
                except (OSError, ValueError) as error:
                    reason = _reason(error)
                    checks.append(compare(spec.name, endpoint, name, cert, None, error=reason))
    return tuple(checks)


def _reason(error: Exception) -> str:
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake failed ({error.reason or error})"
    return str(error).splitlines()[0][:200] if str(error) else type(error).__name__


def wait_until_served(
    run_checks: Callable[[], tuple[Check, ...]],
    wait: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Check, ...]:
    """Probe until every check is ok or `wait` seconds have passed; the last checks."""
    deadline = clock() + wait
    while True:
        checks = run_checks()
        if all(c.ok for c in checks) or clock() >= deadline:
            return checks
        sleep(min(POLL_EVERY, max(0.0, deadline - clock())))


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of verify-after-deploy for one cycle."""

    checks: tuple[Check, ...]
    restarted: tuple[str, ...] = ()  # targets restarted because the app served another certificate
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def failures(checks: Sequence[Check]) -> list[str]:
    """One error line per certificate whose checks failed (pure)."""
    return [p.message for p in problems(checks)]


def problems(checks: Sequence[Check]) -> list[Problem]:
    """One problem per certificate whose checks failed (pure)."""
    bad: dict[str, list[Check]] = {}
    for check in checks:
        if not check.ok:
            bad.setdefault(check.certificate, []).append(check)
    out = []
    for name, items in bad.items():
        first = items[0]
        more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
        hint = (
            "; is the app reading /etc/letsencrypt/live/" + name + "/?"
            if first.mismatch
            else "; is VERIFY the app's TLS address?"
        )
        out.append(Problem("verify", name, f"{name}: {first.describe()}{more}{hint}"))
    return out


def check_served(
    run_checks: Callable[[], tuple[Check, ...]],
    restart: Callable[[], tuple[list[str], list[str]]],
    *,
    wait: float,
    may_restart: Callable[[tuple[Check, ...]], bool],
    sleep: Callable[[float], None] = time.sleep,
) -> Verification:
    """Poll; on a served mismatch restart the targets (if `may_restart`), poll again; report."""
    checks = wait_until_served(run_checks, wait, sleep)
    _log_checks(checks, "", "INFO", "WARNING")
    if all(c.ok for c in checks):
        return Verification(checks)
    restarted: list[str] = []
    if any(c.mismatch for c in checks) and may_restart(checks):
        logger.warning(
            "the app still serves an old certificate; restarting it once to load the current one",
            event="verify",
            outcome="restart",
        )
        restarted, errors = restart()
        if errors:
            reloads = (Problem("reload", None, error) for error in errors)
            return Verification(checks, tuple(restarted), (*reloads, *problems(checks)))
        checks = wait_until_served(run_checks, wait, sleep)
        _log_checks(checks, "after the restart: ", "SUCCESS", "ERROR")
    return Verification(checks, tuple(restarted), tuple(problems(checks)))


def _log_checks(checks: tuple[Check, ...], prefix: str, ok_level: str, bad_level: str) -> None:
    for check in checks:
        outcome = "match" if check.ok else ("mismatch" if check.mismatch else "unreachable")
        logger.log(
            ok_level if check.ok else bad_level,
            "{}{}",
            prefix,
            check.describe(),
            event="verify",
            certificate=check.certificate,
            outcome=outcome,
        )


def may_restart(checks: Sequence[Check], restarted_for: Mapping[str, str]) -> bool:
    """Pure: restart once per new certificate, never again for one a restart did not fix."""
    return any(c.mismatch and restarted_for.get(c.certificate) != c.expected for c in checks)


def current_certs(config_dir: Path, specs: Sequence[CertSpec]) -> dict[str, CertInfo | None]:
    """The configured certificates' current lineage certificates."""
    return lineages.certs(config_dir, [s.name for s in specs])


@dataclass(frozen=True, slots=True)
class Served:
    """What verification compares: VERIFY's endpoints, the certificates DOMAINS asks for, and
    their current lineage certificates."""

    spec: VerifySpec
    specs: Sequence[CertSpec]
    certs: Mapping[str, CertInfo | None]

    def probe(self) -> tuple[Check, ...]:
        """One round of probes on every VERIFY endpoint (nothing when VERIFY is not set)."""
        return probe_all(self.specs, self.certs, self.spec.endpoints)


def verify_served(
    served: Served,
    control: TargetControl,
    reload_signal: str | None,
    restarted_for: Mapping[str, str],
) -> tuple[Verification, dict[str, str]]:
    """Verify after deploy with the policy; also returns the updated `restarted_for` (certificate
    -> serial a restart was done for)."""
    remembered = {  # forget restarts done for certificates that were renewed since
        k: v for k, v in restarted_for.items() if (c := served.certs.get(k)) and c.serial_hex == v
    }

    def reload() -> tuple[list[str], list[str]]:
        running = [t for t in control.targets() if t.running]
        if not running:
            logger.info("nothing to restart: no target is running", event="restart")
        errors = load_certificate(control, running, reload_signal, retry=True)
        return [t.name for t in running], errors

    def allowed(checks: Sequence[Check]) -> bool:
        if not may_restart(checks, remembered):
            return False
        remembered.update({c.certificate: c.expected for c in checks if c.mismatch})
        return True

    result = check_served(served.probe, reload, wait=served.spec.wait, may_restart=allowed)
    return result, remembered
