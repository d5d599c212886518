"""The sidecar's journal on the volume (`sidecar/journal.json`): what the cycles found, kept for
`status`, `health`, the metrics and the alerts, whichever process ran them.

One writer: `update` reads, changes and writes it under its own lock, so the daemon's schedule and
a `sidecar renew` run by hand never lose each other's facts. It replaces the two files of earlier
versions (`state.json`, `observe.json`): they are read once, by the first update, and removed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loguru import logger

from sidecar.errors import ConfigError
from sidecar.volume.certs import now_utc
from sidecar.volume.files import exclusive_lock, read_json, write_json

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

JOURNAL = "journal.json"
LEGACY = ("state.json", "observe.json")


@dataclass(frozen=True, slots=True)
class Served:
    """The last verification of one certificate (VERIFY)."""

    match: bool
    checked_at: datetime
    detail: str


@dataclass(frozen=True, slots=True)
class AlertMemory:
    """What was already alerted, so a lasting condition is reported once, not every cycle."""

    failure: str | None = None  # the (normalized) failure last alerted; None while all is well
    danger: dict[str, str] = field(default_factory=dict)  # certificate -> serial alerted


@dataclass(frozen=True, slots=True)
class Journal:
    last_cycle_at: datetime | None = None
    last_result: str = "never run"
    last_success_at: datetime | None = None
    failures: int = 0  # failed cycles in a row
    next_check_at: datetime | None = None
    renewed: tuple[str, ...] = ()  # what the last cycle that renewed something renewed
    cycles: int = 0
    cycle_failures: int = 0
    renewals: dict[str, int] = field(default_factory=dict)  # certificate -> new certificates
    downtime: float | None = None  # seconds the app was down in the last cycle that stopped it
    downtime_at: datetime | None = None
    served: dict[str, Served] = field(default_factory=dict)
    restarted_for: dict[str, str] = field(default_factory=dict)  # certificate -> serial
    alerts: AlertMemory = field(default_factory=AlertMemory)

    def to_json(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items()}


def _plain(value: Any) -> Any:  # noqa: ANN401
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _when(raw: Any) -> datetime | None:  # noqa: ANN401
    return datetime.fromisoformat(raw) if raw else None


def _served(data: Any) -> dict[str, Served]:  # noqa: ANN401
    out = {}
    for name, item in (data or {}).items():
        if isinstance(item, dict) and (at := _when(item.get("checked_at"))) is not None:
            out[str(name)] = Served(bool(item.get("match")), at, str(item.get("detail", "")))
    return out


def _alerts(data: Any) -> AlertMemory:  # noqa: ANN401
    if not isinstance(data, dict):
        return AlertMemory()
    danger = data.get("danger") or {}
    return AlertMemory(
        failure=data.get("failure"),
        danger={str(k): str(v) for k, v in danger.items()} if isinstance(danger, dict) else {},
    )


def from_json(data: dict[str, Any]) -> Journal:
    """A journal from its JSON (or from the merged JSON of the two legacy files)."""
    return Journal(
        last_cycle_at=_when(data.get("last_cycle_at")),
        last_result=str(data.get("last_result", "never run")),
        last_success_at=_when(data.get("last_success_at")),
        failures=int(data.get("failures", 0)),
        next_check_at=_when(data.get("next_check_at")),
        renewed=tuple(data.get("renewed", ())),
        cycles=int(data.get("cycles", 0)),
        cycle_failures=int(data.get("cycle_failures", 0)),
        renewals={str(k): int(v) for k, v in (data.get("renewals") or {}).items()},
        downtime=data.get("downtime"),
        downtime_at=_when(data.get("downtime_at")),
        served=_served(data.get("served")),
        restarted_for={str(k): str(v) for k, v in (data.get("restarted_for") or {}).items()},
        alerts=_alerts(data.get("alerts")),
    )


def _read(state_dir: Path) -> Journal:
    """The journal; ConfigError when a file is there but unreadable."""
    data = read_json(state_dir / JOURNAL)
    if data is None:
        data = {}
        for name in LEGACY:
            data.update(read_json(state_dir / name) or {})
    if not isinstance(data, dict):
        raise ConfigError(f"{state_dir / JOURNAL} is unreadable: not a JSON object")
    try:
        return from_json(data)
    except (TypeError, ValueError, AttributeError) as error:
        raise ConfigError(f"{state_dir / JOURNAL} is unreadable: {error}") from None


def load(state_dir: Path) -> Journal:
    """The journal as the readers see it (an unreadable one reads as empty, with a warning)."""
    try:
        return _read(state_dir)
    except ConfigError as error:
        logger.warning("{}; starting a new journal", error)
        return Journal()


def update(state_dir: Path, change: Callable[[Journal], Journal]) -> Journal:
    """The one writer: read, `change`, write, under the journal's lock; returns what was written.

    An unreadable journal is moved aside (named in the log) and a new one started: a broken file
    must never stop the daemon.
    """
    with exclusive_lock(state_dir / "journal.lock", wait=True):
        try:
            journal = _read(state_dir)
        except ConfigError as error:
            journal = Journal()
            _move_aside(state_dir, str(error))
        new = change(journal)
        write_json(state_dir / JOURNAL, new.to_json())
        for name in LEGACY:
            (state_dir / name).unlink(missing_ok=True)
    return new


def _move_aside(state_dir: Path, why: str) -> None:
    stamp = now_utc().strftime("%Y%m%dT%H%M%SZ")
    for name in (JOURNAL, *LEGACY):
        path = state_dir / name
        if path.exists():
            aside = path.with_name(f"{name}.unreadable-{stamp}")
            path.replace(aside)
            logger.warning("{}: moved aside to {}; a new journal is started", why, aside.name)
