"""The sidecar's journal on the volume (`sidecar/journal.json`): what the cycles found, kept for
`status`, `health`, the metrics and the alerts, whichever process ran them.

One writer: `update` reads, changes and writes it under its own lock, so the daemon's schedule and
a `sidecar renew` run by hand never lose each other's facts. It replaces the two files of earlier
versions (`state.json`, `observe.json`): they are read once, by the first update, and removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from loguru import logger
from pydantic import Field, TypeAdapter

from sidecar.errors import ConfigError
from sidecar.volume.certs import now_utc
from sidecar.volume.files import Stamp, exclusive_lock, read_json, read_store, write_store

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from pathlib import Path

JOURNAL = "journal.json"
LEGACY = ("state.json", "observe.json")


@dataclass(frozen=True, slots=True)
class Served:
    """The last verification of one certificate (VERIFY)."""

    match: bool
    checked_at: Stamp
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Checked:
    """The last pre-flight of one lineage (its names: resolution, CAA): passed or not, and
    the failures or warnings in one line."""

    ok: bool
    checked_at: Stamp
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AlertMemory:
    """What was already alerted, so a lasting condition is reported once, not every cycle."""

    failure: str | None = None  # the kinds and lineages last alerted (alerts.failure_key)
    danger: dict[str, str] = field(default_factory=dict)  # certificate -> serial alerted
    replacement: dict[str, str] = field(default_factory=dict)  # certificate -> serial alerted


@dataclass(frozen=True, slots=True)
class Ari:
    """The CA's renewal information for a lineage's current certificate (RFC 9773): its window,
    the point in it the sidecar drew to renew at (§4.2, kept while the window stays), when the
    CA asks to be asked again (Retry-After), and its explanation URL, if any."""

    serial: str  # hex, of the certificate the answer is for
    start: Stamp
    end: Stamp
    renew_at: Stamp
    checked_at: Stamp
    retry_after: Stamp | None = None
    explanation: str = ""

    def ended(self, now: datetime) -> bool:
        """The window is over: the CA wants the certificate replaced now (a revocation, an
        incident), not at a time of the client's choosing."""
        return self.end <= now


@dataclass(frozen=True, slots=True)
class Journal:
    last_cycle_at: Stamp | None = None
    last_result: str = "never run"
    last_success_at: Stamp | None = None
    failures: int = 0  # failed cycles in a row
    next_check_at: Stamp | None = None
    next_check_by: str = ""  # what set that time: CHECK_INTERVAL, backoff, an ARI time
    renewed: tuple[str, ...] = ()  # what the last cycle that renewed something renewed
    cycles: int = 0
    cycle_failures: int = 0
    renewals: dict[str, int] = field(default_factory=dict)  # certificate -> new certificates
    downtime: float | None = None  # seconds the app was down in the last cycle that stopped it
    downtime_at: Stamp | None = None
    served: dict[str, Served] = field(default_factory=dict)
    restarted_for: dict[str, str] = field(default_factory=dict)  # certificate -> serial
    alerts: AlertMemory = field(default_factory=AlertMemory)
    # lineage -> its last pre-flight; not written while empty (a journal of before reads and
    # writes back the same)
    preflight: Annotated[dict[str, Checked], Field(exclude_if=lambda v: not v)] = field(
        default_factory=dict
    )
    ari: dict[str, Ari] = field(default_factory=dict)  # certificate -> its CA's last answer
    issued: dict[str, list[Stamp]] = field(default_factory=dict)  # names -> last 7 days' saves

    def to_json(self) -> dict[str, Any]:
        """The journal as its file holds it (and `status --json` shows it)."""
        data: dict[str, Any] = STORE.dump_python(self, mode="json")
        return data


STORE = TypeAdapter(Journal)  # the file's one schema, both ways


def _read(state_dir: Path) -> Journal:
    """The journal (or the merged two legacy files); ConfigError when a file is there but
    unreadable."""
    path = state_dir / JOURNAL
    data = read_json(path)
    if data is None:
        data = {}
        for name in LEGACY:
            data.update(read_json(state_dir / name) or {})
    return read_store(path, STORE, data)


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
        write_store(state_dir / JOURNAL, STORE, new)
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
