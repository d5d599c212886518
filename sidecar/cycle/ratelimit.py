"""Let's Encrypt's limit of new certificates per exact set of names (5 per 7 days), counted from
the journal, so that a `sidecar renew --force` run by hand does not spend the last one (pure).

A renewal counts like any new certificate unless its order names the certificate it replaces
(`replaces`, RFC 9773 §5) inside its ARI window; the count here is of every certificate the
sidecar saved, the safe side. The fifth is kept for a renewal the CA itself asks for (a
revocation, an incident): a forced renewal that would be the fifth is refused.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sidecar.volume.ca import LETSENCRYPT

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from datetime import datetime

    from sidecar.volume.certs import CertInfo

WEEK = timedelta(days=7)
LIMIT = 5  # new certificates per exact set of names per WEEK (Let's Encrypt)


def key(names: Collection[str]) -> str:
    """The set of names a count is for, as the CA compares them (order and case do not count)."""
    return ",".join(sorted({n.lower() for n in names}))


def recent(times: Sequence[datetime], now: datetime) -> list[datetime]:
    """The times inside the last WEEK, oldest first."""
    return sorted(t for t in times if now - t < WEEK)


def counted(
    issued: Mapping[str, Sequence[datetime]],
    certs: Mapping[str, CertInfo | None],
    changed: Collection[str],
    now: datetime,
) -> dict[str, list[datetime]]:
    """The journal's counts after a cycle that saved a new certificate for `changed`: `now`
    added for each one's set of names, and every time older than a WEEK dropped."""
    out = {k: recent(v, now) for k, v in issued.items()}
    for name in changed:
        cert = certs.get(name)
        if cert is not None:
            out.setdefault(key(cert.names), []).append(now)
    return {k: v for k, v in out.items() if v}


def count(issued: Mapping[str, Sequence[datetime]], cert: CertInfo, now: datetime) -> int:
    """New certificates for the names of `cert` in the last WEEK."""
    return len(recent(issued.get(key(cert.names), ()), now))


def refusals(
    issued: Mapping[str, Sequence[datetime]],
    certs: Mapping[str, CertInfo | None],
    now: datetime,
    directory: str,
) -> list[str]:
    """Pure: one line per certificate whose forced renewal would be the LIMIT-th for its names
    in a WEEK, at Let's Encrypt (other CAs have limits of their own), saying when the next one
    is possible; none when every forced renewal may go ahead."""
    if directory.rstrip("/") != LETSENCRYPT:
        return []
    lines = []
    for name, cert in sorted(certs.items()):
        if cert is None:
            continue
        times = recent(issued.get(key(cert.names), ()), now)
        if len(times) < LIMIT - 1:
            continue
        free = times[len(times) - (LIMIT - 1)] + WEEK
        lines.append(
            f"not forcing a renewal of {name}: {len(times)} certificates for its names in the "
            f"last 7 days, and Let's Encrypt allows {LIMIT} (the last is kept for a renewal the "
            f"CA asks for); the next forced renewal is possible from "
            f"{free.isoformat(timespec='minutes')}. `sidecar renew --dry-run` is free (it does "
            "not count)"
        )
    return lines
