"""The journal: one file, one writer, the old two files read once, a broken file never a crash."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime

from sidecar.volume import journal
from sidecar.volume.files import read_json, write_json
from sidecar.volume.journal import JOURNAL, AlertMemory, Journal, Served, load, update

AT = datetime(2025, 3, 12, 8, 30, tzinfo=UTC)
FULL = Journal(
    last_cycle_at=AT,
    last_result="failed: x",
    last_success_at=AT.replace(day=1),
    failures=3,
    next_check_at=AT.replace(hour=20),
    renewed=("a.example",),
    cycles=3,
    cycle_failures=1,
    renewals={"a.example": 2},
    downtime=1.5,
    downtime_at=AT,
    served={"a.example": Served(match=True, checked_at=AT, detail="fine")},
    restarted_for={"a.example": "c0ffee"},
    alerts=AlertMemory("x", {"a.example": "c0ffee"}),
)  # every field set


def test_missing_journal_gives_the_defaults(tmp_path):
    """Before the first cycle: never run, no failures, nothing scheduled."""
    assert load(tmp_path) == Journal()
    assert Journal().last_result == "never run"


def test_everything_round_trips_through_the_file(tmp_path):
    """What a cycle records, status, health and the metrics read back unchanged."""
    update(tmp_path, lambda _: FULL)
    assert load(tmp_path) == FULL


def test_the_file_is_plain_json_with_iso_times(tmp_path):
    """`status --json` prints the same shape."""
    update(tmp_path, lambda j: dataclasses.replace(j, last_cycle_at=AT, renewed=("a.example",)))
    data = read_json(tmp_path / JOURNAL)
    assert data["last_cycle_at"] == "2025-03-12T08:30:00+00:00"
    assert data["renewed"] == ["a.example"]
    assert data["alerts"] == {"failure": None, "danger": {}, "replacement": {}}


def test_the_two_files_of_earlier_versions_are_read_once_and_removed(tmp_path):
    """state.json and observe.json become the journal at the first update; nothing is lost."""
    write_json(tmp_path / "state.json", {"failures": "2", "last_result": "ok"})
    write_json(tmp_path / "observe.json", {"cycles": 7, "renewals": {"a.example": 3}})
    expected = Journal(last_result="ok", failures=2, cycles=7, renewals={"a.example": 3})
    assert load(tmp_path) == expected

    update(tmp_path, lambda j: dataclasses.replace(j, cycles=j.cycles + 1))

    assert not (tmp_path / "state.json").exists()
    assert not (tmp_path / "observe.json").exists()
    assert load(tmp_path).cycles == 8
    assert load(tmp_path).failures == 2


def test_an_unreadable_journal_reads_as_empty_and_is_moved_aside_by_the_writer(tmp_path):
    """A corrupt file never stops the daemon: readers see a new journal, the writer keeps the
    broken one beside it for a person to look at."""
    (tmp_path / JOURNAL).write_text("{not json")
    assert load(tmp_path) == Journal()

    update(tmp_path, lambda j: dataclasses.replace(j, cycles=1))

    assert load(tmp_path).cycles == 1
    (aside,) = tmp_path.glob(f"{JOURNAL}.unreadable-*")
    assert aside.read_text() == "{not json"


def test_a_journal_of_the_wrong_shape_is_treated_as_unreadable(tmp_path):
    """Valid JSON that is not the journal's object (a list, a bad date) is not a crash either."""
    (tmp_path / JOURNAL).write_text(json.dumps(["x"]))
    assert load(tmp_path) == Journal()
    (tmp_path / JOURNAL).write_text(json.dumps({"last_cycle_at": "yesterday"}))
    assert load(tmp_path) == Journal()


def test_concurrent_writers_never_lose_each_others_updates(tmp_path):
    """The schedule and a cycle run by hand both write: every update is kept."""

    def bump() -> None:
        for _ in range(20):
            update(tmp_path, lambda j: dataclasses.replace(j, cycles=j.cycles + 1))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert journal.load(tmp_path).cycles == 80


# A journal as the version before the pydantic store wrote it, byte for byte.
WRITTEN_BEFORE = """{
  "alerts": {
    "danger": {
      "a.example": "c0ffee"
    },
    "failure": "x"
  },
  "cycle_failures": 1,
  "cycles": 3,
  "downtime": 1.5,
  "downtime_at": "2025-03-12T08:30:00+00:00",
  "failures": 3,
  "last_cycle_at": "2025-03-12T08:30:00+00:00",
  "last_result": "failed: x",
  "last_success_at": "2025-03-01T08:30:00+00:00",
  "next_check_at": "2025-03-12T20:30:00+00:00",
  "renewals": {
    "a.example": 2
  },
  "renewed": [
    "a.example"
  ],
  "restarted_for": {
    "a.example": "c0ffee"
  },
  "served": {
    "a.example": {
      "checked_at": "2025-03-12T08:30:00+00:00",
      "detail": "fine",
      "match": true
    }
  }
}"""


ADDED_SINCE = {
    "next_check_by": "",
    "ari": {},
    "issued": {},
}  # fields a later version added, at their defaults


def test_a_journal_written_by_the_previous_version_reads_back_and_is_written_the_same(tmp_path):
    """Upgrading keeps the journal: its file reads as the same facts, and an update that changes
    nothing writes the same facts again, with the fields added since at their defaults."""
    (tmp_path / JOURNAL).write_text(WRITTEN_BEFORE)
    assert load(tmp_path) == FULL
    update(tmp_path, lambda j: j)
    written = json.loads((tmp_path / JOURNAL).read_text())
    before = json.loads(WRITTEN_BEFORE)
    before["alerts"]["replacement"] = {}
    assert written == {**before, **ADDED_SINCE}
