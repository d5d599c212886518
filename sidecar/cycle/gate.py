"""A cycle's pre-flight, before anything is stopped: room on the volume to save what the CA
issues, and each due lineage's names as the CA will judge them (`names.py`, `caa.py`).

The cycle takes a `Preflight` (the CLI passes `Live`; tests pass a fake): a lineage that fails
is not ordered and the app is not stopped for it; without room, nothing is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from loguru import logger

from sidecar.cycle.lookup import account_uri, check, context, identities, resolver
from sidecar.cycle.problem import Problem
from sidecar.errors import SidecarError
from sidecar.volume.room import check_room

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sidecar.certbot.challenges import Challenge
    from sidecar.cycle.names import NamesSpec, Verdict
    from sidecar.volume.ca import AcmeCA
    from sidecar.volume.paths import Paths
    from sidecar.volume.specs import CertSpec

NO_ROOM = "noRoom"
NAMES = "preflight"


class Preflight(Protocol):
    def room(self) -> list[str]:
        """One line per directory without room for a renewal's files."""
        ...

    def names(self, specs: Sequence[CertSpec]) -> tuple[Verdict, ...]:
        """Each lineage's names judged (empty when the check is off)."""
        ...


@dataclass(frozen=True, slots=True)
class Live:
    """The real pre-flight: statvfs, the CA's directory, DNS through dnspython."""

    paths: Paths
    ca: AcmeCA
    spec: NamesSpec
    challenge: Challenge

    def room(self) -> list[str]:
        return check_room(self.paths)

    def names(self, specs: Sequence[CertSpec]) -> tuple[Verdict, ...]:
        if not self.spec.on or not specs:
            return ()
        try:
            ids = identities(self.ca, self.spec)
        except SidecarError as error:
            logger.warning("CAA not checked: {}", error)
            ids = frozenset()
        if not ids:
            logger.warning(
                "CAA not checked: {} publishes no caaIdentities; set CAA_IDENTITIES", self.ca.host
            )
        base = context(self.ca, ids, dns_mode=not self.challenge.http01)
        dns = resolver(self.spec)
        config_dir, server = self.paths.config_dir, self.ca.directory
        return tuple(check(dns, s, base, account_uri(config_dir, server, s.name)) for s in specs)


def described(verdicts: Sequence[Verdict]) -> str:
    """The dry run's `names` step: what passed with its warnings; SidecarError with every
    failure when a lineage fails."""
    if failed := [v.line() for v in verdicts if not v.ok]:
        raise SidecarError("; ".join(failed))
    notes = [f"{v.lineage}: {w}" for v in verdicts for w in v.warnings]
    notes += [
        f"{v.lineage}: no DNS answer in time for {', '.join(v.unknown)}"
        for v in verdicts
        if v.unknown
    ]
    head = f"the names of {len(verdicts)} certificate(s) resolve and CAA allows the CA"
    return "; warning: ".join((head, *notes))


def room_problems(preflight: Preflight) -> list[Problem]:
    """No room: one problem per directory (the cycle then stops nothing and orders nothing)."""
    return [Problem(NO_ROOM, None, f"not renewing: {line}") for line in preflight.room()]


def refusals(verdicts: Sequence[Verdict]) -> list[Problem]:
    """Each failed lineage as a permanent problem (retrying soon changes nothing); warnings and
    names DNS did not answer for are logged."""
    for verdict in verdicts:
        for warning in verdict.warnings:
            logger.warning("{}: {}", verdict.lineage, warning, certificate=verdict.lineage)
        if verdict.unknown:
            logger.info(
                "{}: no DNS answer in time for {}: not checked",
                verdict.lineage,
                ", ".join(verdict.unknown),
                certificate=verdict.lineage,
            )
    return [Problem(NAMES, v.lineage, v.line(), permanent=True) for v in verdicts if not v.ok]
