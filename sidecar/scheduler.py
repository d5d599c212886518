"""The daemon loop: a cycle at start, then every CHECK_INTERVAL plus jitter, or earlier when the
CA's renewal information (ARI) names an earlier time; backoff on failure. Between cycles a record
of stopped targets that no cycle holds is acted on within seconds."""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from loguru import logger

from sidecar.errors import LockedError
from sidecar.volume import journal
from sidecar.volume.certs import now_utc
from sidecar.volume.watch import WATCH_EVERY

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from sidecar.cycle.result import CycleResult
    from sidecar.shutdown import StopRequest
    from sidecar.volume.journal import Ari, Journal

RETRY_BASE = 600.0
RESTORE_RETRY = 5.0
DUE_SLACK = 1.0  # a wake this close to the planned time is the planned one
ARI_FLOOR = 60.0  # an ARI time sooner than this is taken as this (a Retry-After of 0 is no loop)


@dataclass(frozen=True, slots=True)
class Schedule:
    """CHECK_INTERVAL and CHECK_JITTER, in seconds."""

    interval: float = 6 * 3600.0
    jitter: float = 3600.0


@dataclass(frozen=True, slots=True)
class Wake:
    """When the next cycle runs (seconds from now), and why then (for the log and `status`)."""

    delay: float
    reason: str


def next_wake(delay: float, reason: str, answers: Mapping[str, Ari], now: datetime) -> Wake:
    """Pure: the earliest of `delay` (the interval plus jitter, or a retry's backoff, for
    `reason`) and, per certificate, the CA's times still ahead: the point drawn in its ARI
    window (RFC 9773 §4.2) and its Retry-After, when to ask again. Times already past were
    acted on by the cycle that just ran (it renewed, or its failure backs off)."""
    wake = Wake(delay, reason)
    for name, ari in sorted(answers.items()):
        for at, why in ((ari.renew_at, "ARI window"), (ari.retry_after, "ARI Retry-After")):
            if at is None or at <= now:
                continue
            seconds = max(ARI_FLOOR, (at - now).total_seconds())
            if seconds < wake.delay:
                wake = Wake(seconds, f"{why} of {name}")
    return wake


def next_delay(
    interval: float,
    jitter: float,
    failures: int,
    rng: random.Random,
    retry_base: float = RETRY_BASE,
) -> float:
    """Seconds until the next cycle.

    After a success: the interval plus a random jitter. After `failures` failures in a row:
    exponential backoff from `retry_base` (10 min, 20, 40, ...) with full jitter in its upper half,
    capped at the interval, so retries never approach the CA's failed-validation rate limits.
    """
    if failures <= 0:
        return interval + rng.uniform(0, jitter)
    backoff = min(interval, retry_base * 2 ** min(failures - 1, 32))
    return rng.uniform(backoff / 2, backoff)


def delay_after(
    result: CycleResult | None,
    failures: int,
    schedule: Schedule,
    rng: random.Random,
    now: datetime,
) -> float:
    """The wait after a cycle: backoff, unless the CA named a time or retrying cannot help."""
    interval, jitter = schedule.interval, schedule.jitter
    if result is not None and result.permanent:
        return interval + rng.uniform(0, jitter)
    delay = next_delay(interval, jitter, failures, rng, min(RETRY_BASE, interval))
    if result is not None and result.not_before is not None:
        delay = max(delay, (result.not_before - now).total_seconds() + rng.uniform(0, 60))
    return delay


def crashed(before: Journal, error: Exception, now: datetime) -> Journal:
    """Pure: the journal after a cycle that ended in an unexpected error (a bug): a failed cycle
    like any other, for the backoff, `status` and `health`."""
    return dataclasses.replace(
        before,
        last_cycle_at=now,
        last_result=f"failed: An unexpected error occurred ({type(error).__name__}: {error})",
        failures=before.failures + 1,
        cycles=before.cycles + 1,
        cycle_failures=before.cycle_failures + 1,
    )


class Scheduler:
    """Runs `cycle` until the stop request (SIGTERM, SIGINT, SIGHUP, or `stop()`); a stop during
    the wait ends the loop at once. A cycle that raises a bug is logged with its traceback and
    counted as a failed cycle: the daemon goes on.

    `idle`, when given, takes over the wait between cycles (the CLI execs a small sleeper, which
    watches the state dir itself); otherwise the wait looks every WATCH_EVERY seconds whether
    `unattended` (a record of stopped targets no cycle holds) and then restores.
    `restore` starts whatever is still down because of the sidecar (the cycle could not start it
    again: the Docker API was down, say) and returns what still is; it is retried every
    RESTORE_RETRY seconds until nothing is.
    """

    def __init__(
        self,
        schedule: Schedule,
        state_dir: Path,
        cycle: Callable[[], CycleResult],
        rng: random.Random | None = None,
        *,
        restore: Callable[[], list[str]] = list,
        idle: Callable[[float], None] | None = None,
        unattended: Callable[[], bool] = lambda: False,
        stopping: StopRequest,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._times = schedule
        self._state_dir = state_dir
        self._cycle = cycle
        self._restore = restore
        self._idle = idle
        self._unattended = unattended
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._stopping = stopping
        self._clock = clock

    def stop(self) -> None:
        self._stopping.request()

    def run(self, until: float | None = None) -> None:
        """The loop. `until` (on `clock`, time.monotonic): the planned time of the first cycle,
        when the daemon woke before it to start what an interrupted run left stopped; then it
        only makes sure of that and waits on, so that a wake never runs an unplanned cycle."""
        while not self._stopping.requested():
            if until is not None and until - self._clock() > DUE_SLACK:
                delay = self._resumed(until - self._clock())
            else:
                result = self._run_cycle()
                self._restore_until_done()
                delay = 0.0 if self._stopping.requested() else self._schedule(result)
            until = None
            if self._stopping.requested():
                break
            if self._idle is not None:
                self._idle(delay)  # hands the wait to a lighter process (returns on a stop)
            self._wait(delay)
        logger.info("{} received: stopped", self._stopping.name)

    def _run_cycle(self) -> CycleResult | None:
        try:
            return self._cycle()
        except LockedError as error:
            logger.warning("{}", error)
        except Exception as error:  # noqa: BLE001 (a bug: visible, counted, and the daemon goes on)
            logger.opt(exception=error).critical("An unexpected error occurred")
            bug, now = error, now_utc()
            self._save(lambda j: crashed(j, bug, now))
        return None

    def _resumed(self, left: float) -> float:
        """After an early wake: what is still down is started (or retried), then the wait for
        the planned cycle goes on (never longer than a whole interval: a bad time is no hang)."""
        self._restore_until_done()
        left = min(left, self._times.interval + self._times.jitter)
        logger.info("the next check stays as planned, in {:.0f}s", left)
        return left

    def _restore_until_done(self) -> None:
        while down := self._restore():
            names = ", ".join(down)
            if self._stopping.requested():
                logger.error(
                    "{} still stopped by the sidecar, and {} received: not started again; the "
                    "next start of the sidecar starts them",
                    names,
                    self._stopping.name,
                )
                return
            logger.warning("{} still stopped; trying again in {:.0f}s", names, RESTORE_RETRY)
            self._stopping.wait(RESTORE_RETRY)

    def _wait(self, delay: float) -> None:
        """Wait in this process (METRICS_PORT keeps it): as the sleeper, a record no cycle holds
        is acted on within WATCH_EVERY seconds."""
        end = self._clock() + delay
        while (left := end - self._clock()) > 0:
            if self._stopping.wait(min(WATCH_EVERY, left)):
                return
            if self._unattended():
                logger.warning("a record of stopped targets that no cycle holds: starting them")
                self._restore_until_done()

    def _schedule(self, result: CycleResult | None) -> float:
        state = journal.load(self._state_dir)
        now = now_utc()
        delay = delay_after(result, state.failures, self._times, self._rng, now)
        if result is not None and result.permanent:
            kind = "needs attention; next try"
        elif state.failures:
            kind = f"retry after {state.failures} failure(s)"
        else:
            kind = "next check"
        wake = Wake(delay, "backoff" if kind.startswith("retry") else "CHECK_INTERVAL")
        if result is not None and result.not_before is not None:  # never before the CA's time
            wake = Wake(delay, "the retry time the CA named")
        else:
            wake = next_wake(delay, wake.reason, state.ari, now)
        at = now + timedelta(seconds=wake.delay)
        self._save(lambda j: dataclasses.replace(j, next_check_at=at, next_check_by=wake.reason))
        logger.info(
            "{} at {} (in {:.0f}s; {})",
            kind,
            at.isoformat(timespec="seconds"),
            wake.delay,
            wake.reason,
        )
        return wake.delay

    def _save(self, change: Callable[[Journal], Journal]) -> None:
        """A journal update that cannot end the daemon (the volume failing is the next cycle's
        error to report)."""
        try:
            journal.update(self._state_dir, change)
        except Exception as error:  # noqa: BLE001
            logger.opt(exception=error).error("could not update the journal: {}", error)
