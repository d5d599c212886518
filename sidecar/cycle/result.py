"""What one cycle did: the new certificates, the problems, and what the app served afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from sidecar.cycle.problem import Problem
    from sidecar.cycle.verify import Check
    from sidecar.volume.journal import Ari


@dataclass(frozen=True, slots=True)
class CycleResult:
    changed: tuple[str, ...]
    problems: tuple[Problem, ...]
    duration: float
    checks: tuple[Check, ...] = ()  # what the app served, per certificate/endpoint/name (VERIFY)
    downtime: float | None = None  # seconds the app was down, when this cycle stopped it
    restarted: tuple[str, ...] = ()  # targets restarted because they served an old certificate
    restarted_for: dict[str, str] | None = None  # certificate -> serial restarted for (VERIFY)
    stopped: bool = False  # cut short by the stop request (SIGTERM/SIGINT)
    ari: dict[str, Ari] = field(default_factory=dict)  # the CA's answers (ARI) in this cycle
    requested: dict[str, Ari] = field(default_factory=dict)  # windows over: replace now

    @property
    def errors(self) -> tuple[str, ...]:
        """The problems as the log and the journal show them, one line each."""
        return tuple(p.message for p in self.problems)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def permanent(self) -> bool:
        """A failure the short backoff cannot fix (the CA said so): wait the full interval."""
        return any(p.permanent for p in self.problems)

    @property
    def not_before(self) -> datetime | None:
        """The latest retry time a CA gave (rate limits)."""
        return max((p.not_before for p in self.problems if p.not_before), default=None)
