from __future__ import annotations

from datetime import UTC, datetime

from sidecar.files import read_json, write_json
from sidecar.state import STATE, State, load_state, save_state

AT = datetime(2025, 3, 12, 8, 30, tzinfo=UTC)


def test_missing_state_file_gives_the_defaults(tmp_path):
    """Before the first cycle: never run, no failures, nothing scheduled."""
    assert load_state(tmp_path) == State()
    assert State().last_result == "never run"


def test_state_round_trips_through_the_file(tmp_path):
    """What a cycle saves, status and health read back unchanged (aware datetimes included)."""
    state = State(
        last_cycle_at=AT,
        last_result="failed: certbot renew for renew failed (exit 1)",
        last_success_at=AT.replace(day=1),
        failures=3,
        next_check_at=AT.replace(hour=20),
        renewed=("a.example", "b.example"),
    )
    save_state(tmp_path, state)
    assert load_state(tmp_path) == state


def test_state_json_has_iso_times_and_plain_values(tmp_path):
    """The file is plain JSON (`status --json` prints the same shape)."""
    save_state(tmp_path, State(last_cycle_at=AT, renewed=("a.example",)))
    assert read_json(tmp_path / STATE) == {
        "last_cycle_at": "2025-03-12T08:30:00+00:00",
        "last_result": "never run",
        "last_success_at": None,
        "failures": 0,
        "next_check_at": None,
        "renewed": ["a.example"],
    }


def test_partial_state_file_fills_in_defaults(tmp_path):
    """A file from an older version (fewer keys) still loads."""
    write_json(tmp_path / STATE, {"failures": "2", "last_result": "ok"})
    assert load_state(tmp_path) == State(last_result="ok", failures=2)
