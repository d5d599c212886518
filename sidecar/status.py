"""`status` and `health`: what the operator reads, decided from certificates and the state file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sidecar.certs import CertInfo, renewal_time

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sidecar.state import State

DANGER_FRACTION = 6  # unhealthy in the last 1/6 of a certificate's lifetime (15 days of 90)


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
        }


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
    state: State,
    now: datetime,
    renew_before: timedelta | None,
) -> list[Row]:
    out = []
    for name, cert in sorted(certs.items()):
        if cert is None:
            out.append(Row(name, (), None, None, None, state.last_result))
            continue
        out.append(
            Row(
                name,
                cert.names,
                cert.not_after,
                (cert.not_after - now) / timedelta(days=1),
                max(now, renewal_time(cert, renew_before)),
                "renewed" if name in state.renewed and not state.failures else state.last_result,
                issuer=cert.issuer,
                next_check=state.next_check_at,
            )
        )
    return out


def table(items: list[Row]) -> str:
    head = (
        "CERTIFICATE",
        "NAMES",
        "ISSUER",
        "NOT AFTER",
        "DAYS LEFT",
        "NEXT CHECK",
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
    state: State,
    now: datetime,
    danger: timedelta | None = None,
) -> list[str]:
    """Reasons to be unhealthy; none means healthy."""
    problems = []
    for name, cert in sorted(certs.items()):
        if cert is None:
            if state.failures:
                problems.append(f"{name}: no certificate and the last cycle failed")
            continue
        zone = danger if danger is not None else cert.lifetime / DANGER_FRACTION
        if cert.not_after - now < zone:
            problems.append(
                f"{name}: expires {cert.not_after.isoformat(timespec='minutes')}, "
                "inside the danger zone"
            )
        elif state.failures and state.next_check_at and state.next_check_at > cert.not_after - zone:
            problems.append(f"{name}: renewal failing and the next attempt comes too late")
    return problems


def failing(state: State) -> str | None:
    """A line on repeated failures (not unhealthy while certificates are still far from expiry)."""
    if not state.failures:
        return None
    when = state.next_check_at.isoformat(timespec="seconds") if state.next_check_at else "soon"
    return (
        f"renewal failing: {state.failures} failure(s) in a row, next attempt {when}; "
        f"last: {state.last_result[:200]}"
    )
