"""The daemon loop: a cycle at start, then every CHECK_INTERVAL plus jitter; backoff on failure."""

from __future__ import annotations

import dataclasses
import random
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from loguru import logger

from sidecar.certs import now_utc
from sidecar.errors import LockedError
from sidecar.state import load_state, save_state

if TYPE_CHECKING:
    from collections.abc import Callable

    from sidecar.cycle import CycleResult
    from sidecar.settings import Settings

RETRY_BASE = 600.0


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


class Scheduler:
    """Runs `cycle` until `stop()`; a stop during the wait ends the loop at once."""

    def __init__(
        self, config: Settings, cycle: Callable[[], CycleResult], rng: random.Random | None = None
    ) -> None:
        self._config = config
        self._cycle = cycle
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._cycle()
            except LockedError as error:
                logger.warning("{}", error)
            if self._stopping.is_set():
                break
            failures = load_state(self._config.state_dir).failures
            delay = next_delay(
                self._config.check_interval,
                self._config.check_jitter,
                failures,
                self._rng,
                min(RETRY_BASE, self._config.check_interval),
            )
            at = now_utc() + timedelta(seconds=delay)
            state = load_state(self._config.state_dir)
            save_state(self._config.state_dir, dataclasses.replace(state, next_check_at=at))
            kind = f"retry after {failures} failure(s)" if failures else "next check"
            logger.info("{} at {} (in {:.0f}s)", kind, at.isoformat(timespec="seconds"), delay)
            self._stopping.wait(delay)
        logger.info("stopped")
