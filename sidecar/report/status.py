"""`status` and `health`: what the operator reads, decided from certificates and the journal."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sidecar.report.outcome import summarize
from sidecar.volume.certs import CertInfo, danger_zone, now_utc, renewal_time

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sidecar.cycle import verify
    from sidecar.cycle.verify import VerifySpec
    from sidecar.volume.journal import Ari, Journal


@dataclass(frozen=True, slots=True)
class Row:
    certificate: str
    names: tuple[str, ...]
    not_after: datetime | None
    days_left: float | None
    next_renewal: datetime | None
    last_result: str
    issuer: str = ""
    next_check: datetime | None = None
    served: bool | None = None  # the app serves this certificate (None: not checked, no VERIFY)
    served_detail: str = ""
    ari: Ari | None = None  # the CA's last renewal information for this certificate

    def to_json(self) -> dict[str, Any]:
        return {
            "certificate": self.certificate,
            "names": list(self.names),
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "days_left": None if self.days_left is None else round(self.days_left, 2),
            "next_renewal": self.next_renewal.isoformat() if self.next_renewal else None,
            "last_result": self.last_result,
            "issuer": self.issuer or None,
            "next_check": self.next_check.isoformat() if self.next_check else None,
            "served": {"match": self.served, "detail": self.served_detail or None},
            "ari": _ari_json(self.ari),
        }


def _ari_json(ari: Ari | None) -> dict[str, Any] | None:
    if ari is None:
        return None
    return {
        "window_start": ari.start.isoformat(),
        "window_end": ari.end.isoformat(),
        "renew_at": ari.renew_at.isoformat(),
        "retry_after": ari.retry_after.isoformat() if ari.retry_after else None,
        "explanation": ari.explanation or None,
    }


def window_text(ari: Ari | None) -> str:
    """The CA's renewal window, as the table shows it."""
    if ari is None:
        return "-"
    return f"{ari.start:%m-%d %H:%M}..{ari.end:%m-%d %H:%M}"


def short_issuer(issuer: str) -> str:
    """The issuer's common name (`CN=R11,O=Let's Encrypt,C=US` -> `R11`), else all of it."""
    for part in issuer.split(","):
        key, _, value = part.partition("=")
        if key.strip().upper() == "CN" and value:
            return value.strip()
    return issuer


def served_text(row: Row) -> str:
    if row.served is None:
        return "-"
    return "yes" if row.served else "NO"


def rows(
    certs: Mapping[str, CertInfo | None],
    state: Journal,
    now: datetime,
    renew_before: timedelta | None,
) -> list[Row]:
    out = []
    for name, cert in sorted(certs.items()):
        if cert is None:
            out.append(Row(name, (), None, None, None, state.last_result))
            continue
        ari = state.ari.get(name)
        ari = ari if ari is not None and ari.serial == cert.serial_hex else None
        due = renewal_time(cert, renew_before)
        out.append(
            Row(
                name,
                cert.names,
                cert.not_after,
                (cert.not_after - now) / timedelta(days=1),
                max(now, min(due, ari.renew_at) if ari else due),
                "renewed" if name in state.renewed and not state.failures else state.last_result,
                issuer=cert.issuer,
                next_check=state.next_check_at,
                ari=ari,
            )
        )
    return out


def preflight_lines(state: Journal) -> list[str]:
    """The last pre-flight of each lineage that failed it or passed with warnings."""
    return [
        f"pre-flight {name} ({checked.checked_at.isoformat(timespec='seconds')}): "
        + ("" if checked.ok else "FAILED: ")
        + checked.detail
        for name, checked in sorted(state.preflight.items())
        if not checked.ok or checked.detail != "ok"
    ]


def table(items: list[Row]) -> str:
    head = (
        "CERTIFICATE",
        "NAMES",
        "ISSUER",
        "NOT AFTER",
        "DAYS LEFT",
        "NEXT CHECK",
        "ARI WINDOW",
        "NEXT RENEWAL",
        "SERVED",
        "LAST RESULT",
    )
    lines = [head] + [
        (
            r.certificate,
            ",".join(r.names) or "-",
            short_issuer(r.issuer)[:30] or "-",
            r.not_after.strftime("%Y-%m-%d %H:%M") if r.not_after else "no certificate yet",
            f"{r.days_left:.1f}" if r.days_left is not None else "-",
            r.next_check.strftime("%Y-%m-%d %H:%M") if r.next_check else "-",
            window_text(r.ari),
            r.next_renewal.strftime("%Y-%m-%d %H:%M") if r.next_renewal else "at next check",
            served_text(r),
            r.last_result[:60],
        )
        for r in items
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def health(
    certs: Mapping[str, CertInfo | None],
    state: Journal,
    now: datetime,
    danger: timedelta | None = None,
) -> list[str]:
    """Reasons to be unhealthy; none means healthy. `sidecar.healthcheck` takes the same
    decision on the standard library (tests/unit/test_healthcheck.py compares the two)."""
    problems = []
    for name, cert in sorted(certs.items()):
        if cert is None:
            if state.failures:
                problems.append(f"{name}: no certificate and the last cycle failed")
            continue
        zone = danger if danger is not None else danger_zone(cert)
        if cert.not_after - now < zone:
            problems.append(
                f"{name}: expires {cert.not_after.isoformat(timespec='minutes')}, "
                "inside the danger zone"
            )
        elif state.failures and state.next_check_at and state.next_check_at > cert.not_after - zone:
            problems.append(f"{name}: renewal failing and the next attempt comes too late")
    return problems


def failing(state: Journal) -> str | None:
    """A line on repeated failures (not unhealthy while certificates are still far from expiry)."""
    if not state.failures:
        return None
    when = state.next_check_at.isoformat(timespec="seconds") if state.next_check_at else "soon"
    return (
        f"renewal failing: {state.failures} failure(s) in a row, next attempt {when}; "
        f"last: {state.last_result[:200]}"
    )


def replacing(state: Journal, now: datetime) -> list[str]:
    """Warnings on certificates the CA wants replaced now (their ARI window is over) that are
    not replaced yet (a cycle that replaces one drops the CA's answer about it)."""
    return [
        f"replacement requested: the CA asks to replace {name} now (its renewal window ended "
        f"{ari.end.isoformat(timespec='minutes')})"
        + (f"; see {ari.explanation}" if ari.explanation else "")
        for name, ari in sorted(state.ari.items())
        if ari.ended(now)
    ]


def served_problems(verifying: VerifySpec, state: Journal) -> list[str]:
    """Unhealthy while the last verification found the app serving another certificate."""
    if not verifying.on:
        return []
    return [
        f"{name}: {served.detail} (checked {served.checked_at.isoformat(timespec='seconds')})"
        for name, served in sorted(state.served.items())
        if not served.match
    ]


def with_served(served: verify.Served, items: list[Row]) -> list[Row]:
    """`status` rows with what the app serves right now (a live probe, when VERIFY is set)."""
    if not served.spec.on:
        return items
    summary = summarize(served.probe(), now_utc())
    return [
        dataclasses.replace(r, served=s.match, served_detail=s.detail)
        if (s := summary.get(r.certificate))
        else r
        for r in items
    ]
