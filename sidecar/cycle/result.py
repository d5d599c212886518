"""What one cycle did: the new certificates, the problems, and what the app served afterwards;
and its closing log line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    from datetime import datetime

    from sidecar.cycle.names import Verdict
    from sidecar.cycle.problem import Problem
    from sidecar.cycle.verify import Check
    from sidecar.shutdown import StopRequest
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
    preflight: tuple[Verdict, ...] = ()  # the due lineages' names checked before any stop
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


def log_result(result: CycleResult, stopping: StopRequest, *, dry_run: bool) -> None:
    """The cycle's one closing line: cut short, failed (a line per error), renewed or ok."""
    label = "dry run" if dry_run else "cycle"
    fields = {"event": label.replace(" ", "-"), "duration": round(result.duration, 3)}
    if result.stopped:
        logger.info(
            "{} cut short after {:.1f}s: {} received{}",
            label,
            result.duration,
            stopping.name,
            f"; new certificate for {', '.join(result.changed)}" if result.changed else "",
            outcome="stopped",
            **fields,
        )
        return
    if not result.ok:
        for error in result.errors:
            logger.error("{} failed: {}", label, error, outcome="failed", **fields)
    elif result.changed:
        logger.success(
            "{} done in {:.1f}s: new certificate for {}",
            label,
            result.duration,
            ", ".join(result.changed),
            outcome="renewed",
            **fields,
        )
    else:
        logger.info(
            "{} done in {:.1f}s: {}",
            label,
            result.duration,
            "nothing was saved" if dry_run else "nothing was due",
            outcome="ok",
            **fields,
        )
