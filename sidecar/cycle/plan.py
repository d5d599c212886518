"""What a renewal cycle must do: pure decisions over the configured and the existing lineages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sidecar.volume.certs import is_due, now_utc

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping
    from datetime import datetime, timedelta

    from sidecar.volume.certs import CertInfo
    from sidecar.volume.specs import CertSpec


@dataclass(frozen=True, slots=True)
class Plan:
    """`issue`: certificates to obtain with `certonly`; `renew`: run `certbot renew` too;
    `held`: certificates that would need one but are not obtained (the tree holds their lineage,
    and certbot cannot load it)."""

    issue: tuple[CertSpec, ...]
    renew: bool
    held: tuple[CertSpec, ...] = ()


def needs_issuance(spec: CertSpec, current: CertInfo | None) -> bool:
    """No certificate yet, or its names differ from the configured ones."""
    return current is None or set(current.names) != set(spec.domains)


def plan_cycle(
    specs: tuple[CertSpec, ...],
    lineages: Mapping[str, CertInfo | None],
    broken: Collection[str] = (),
    held: Collection[str] = (),
) -> Plan:
    """Issue what is missing or changed, never over a lineage that cannot be read (`broken`),
    nor for one the tree holds that certbot cannot load (`held`: `certonly --cert-name NAME`
    would not repair it but save a new lineage NAME-0001 beside it, at every cycle); renew
    every existing lineage (certbot decides if due)."""
    wanted = tuple(
        s for s in specs if s.name not in broken and needs_issuance(s, lineages.get(s.name))
    )
    return Plan(
        issue=tuple(s for s in wanted if s.name not in held),
        renew=any(v is not None for v in lineages.values()),
        held=tuple(s for s in wanted if s.name in held),
    )


def changed_lineages(
    before: Mapping[str, CertInfo | None],
    after: Mapping[str, CertInfo | None],
) -> tuple[str, ...]:
    """Lineages whose current certificate is new since `before`."""
    return tuple(
        name
        for name, cert in sorted(after.items())
        if cert is not None and (before.get(name) is None or before[name] != cert)
    )


def expected_renewals(
    lineages: Mapping[str, CertInfo | None],
    now: datetime,
    renew_before: timedelta | None,
    *,
    force: bool,
) -> int:
    """How many lineages `certbot renew` should renew now, by certbot's default rule (no ARI)."""
    return len(due_names(lineages, now, renew_before, force=force))


def due_names(
    lineages: Mapping[str, CertInfo | None],
    now: datetime,
    renew_before: timedelta | None,
    *,
    force: bool,
) -> frozenset[str]:
    """The lineages `certbot renew` should renew now, by certbot's default rule (no ARI)."""
    return frozenset(
        name
        for name, cert in lineages.items()
        if cert is not None and (force or is_due(cert, now, renew_before))
    )


def due_specs(
    specs: tuple[CertSpec, ...],
    plan: Plan,
    lineages: Mapping[str, CertInfo | None],
    ignored: Collection[str],
    renew_before: timedelta | None,
    *,
    force: bool,
) -> tuple[CertSpec, ...]:
    """The DOMAINS certificates this cycle will order: those to issue, and those due for renewal
    by certbot's default rule (all when forced), but not an ignored lineage."""
    now = now_utc()
    due = [
        spec
        for spec in specs
        if spec.name not in ignored
        and (cert := lineages.get(spec.name)) is not None
        and (force or is_due(cert, now, renew_before))
    ]
    return tuple(dict.fromkeys((*plan.issue, *due)))
