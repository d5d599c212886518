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
    """Signal or restart `targets` so they load the lineage's current certificate; the errors.

    A target that cannot reload in place (a service reading Swarm secrets: only new tasks get
    new files) is restarted even with RELOAD_SIGNAL."""
    if not targets:
        return []
    what = "the current certificate" if retry else "the new certificate"
    signal = reload_signal_for(reload_signal, retry=retry)
    signalled = [t for t in targets if signal and t.signal_reloads]
    restarted = [t for t in targets if t not in signalled]
    errors = []
    if signal and signalled:
        logger.info("sending {} to {} to load {}", signal, _names(signalled), what)
        errors += each(lambda t: control.signal(t, signal), signalled)
    if restarted:
        logger.info("restarting {} to load {}", _names(restarted), what, event="restart")
        errors += each(control.restart, restarted)
    return errors


def _names(targets: Sequence[Target]) -> str:
    return ", ".join(t.title for t in targets)
