"""The daemon loop: a cycle at start, then every CHECK_INTERVAL plus jitter; backoff on failure."""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from loguru import logger

from sidecar import shutdown
from sidecar.errors import LockedError
from sidecar.volume import journal
from sidecar.volume.certs import now_utc

if TYPE_CHECKING:
    from collections.abc import Callable

    from sidecar.cycle.result import CycleResult
    from sidecar.settings import Settings
    from sidecar.shutdown import StopRequest

RETRY_BASE = 600.0
RESTORE_RETRY = 5.0


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
    config: Settings,
    rng: random.Random,
    now: datetime,
) -> float:
    """The wait after a cycle: backoff, unless the CA named a time or retrying cannot help."""
    interval, jitter = config.check_interval, config.check_jitter
    if result is not None and result.permanent:
        return interval + rng.uniform(0, jitter)
    delay = next_delay(interval, jitter, failures, rng, min(RETRY_BASE, interval))
    if result is not None and result.not_before is not None:
        delay = max(delay, (result.not_before - now).total_seconds() + rng.uniform(0, 60))
    return delay


class Scheduler:
    """Runs `cycle` until the stop request (SIGTERM, SIGINT, or `stop()`); a stop during the
    wait ends the loop at once.

    `idle`, when given, takes over the wait between cycles (the CLI execs a small sleeper).
    `restore` starts whatever the cycle could not start again (the Docker API was down, say); it
    is retried every RESTORE_RETRY seconds until it reports that nothing is left stopped.
    """

    def __init__(
        self,
        config: Settings,
        cycle: Callable[[], CycleResult],
        rng: random.Random | None = None,
        restore: Callable[[], bool] = lambda: True,
        idle: Callable[[float], None] | None = None,
        *,
        stopping: StopRequest | None = None,
    ) -> None:
        self._config = config
        self._cycle = cycle
        self._restore = restore
        self._idle = idle
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._stopping = stopping or shutdown.REQUEST

    def stop(self) -> None:
        self._stopping.request()

    def run(self) -> None:
        while not self._stopping.requested:
            result = None
            try:
                result = self._cycle()
            except LockedError as error:
                logger.warning("{}", error)
            self._restore_until_done()
            if self._stopping.requested:
                break
            delay = self._schedule(result)
            if self._idle is not None:
                self._idle(delay)  # hands the wait to a lighter process (returns on a stop)
            self._stopping.wait(delay)
        logger.info("{} received: stopped", self._stopping.name)

    def _restore_until_done(self) -> None:
        while not self._restore():
            logger.warning("app containers still stopped; trying again in {:.0f}s", RESTORE_RETRY)
            if self._stopping.wait(RESTORE_RETRY):
                return

    def _schedule(self, result: CycleResult | None) -> float:
        state = journal.load(self._config.state_dir)
        now = now_utc()
        delay = delay_after(result, state.failures, self._config, self._rng, now)
        at = now + timedelta(seconds=delay)
        journal.update(self._config.state_dir, lambda j: dataclasses.replace(j, next_check_at=at))
        if result is not None and result.permanent:
            kind = "needs attention; next try"
        elif state.failures:
            kind = f"retry after {state.failures} failure(s)"
        else:
            kind = "next check"
        logger.info("{} at {} (in {:.0f}s)", kind, at.isoformat(timespec="seconds"), delay)
        return delay
