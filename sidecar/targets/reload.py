"""Making running targets load a new certificate: the one place that decides restart or signal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loguru import logger

from sidecar.targets.base import each

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sidecar.targets.base import Target, TargetControl


def reload_signal_for(reload_signal: str | None, *, retry: bool) -> str | None:
    """The signal to send, or None for a restart: RELOAD_SIGNAL when the app reloads in place,
    a restart when it has none, or when a reload already failed to take (`retry`)."""
    return None if retry or not reload_signal else reload_signal


def load_certificate(
    control: TargetControl,
    targets: Sequence[Target],
    reload_signal: str | None,
    *,
    retry: bool = False,
) -> list[str]:
    """Signal or restart `targets` so they load the lineage's current certificate; the errors."""
    if not targets:
        return []
    names = ", ".join(t.name for t in targets)
    what = "the current certificate" if retry else "the new certificate"
    signal = reload_signal_for(reload_signal, retry=retry)
    if signal:
        logger.info("sending {} to {} to load {}", signal, names, what)
        return each(lambda t: control.signal(t, signal), targets)
    logger.info("restarting {} to load {}", names, what, event="restart")
    return each(control.restart, targets)
