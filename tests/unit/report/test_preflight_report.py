"""The last pre-flight per lineage: in the journal (status --json) and as a metric."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sidecar.cycle.names import Verdict
from sidecar.cycle.result import CycleResult
from sidecar.report.metrics import families
from sidecar.report.outcome import recorded
from sidecar.report.status import preflight_lines
from sidecar.volume.journal import Checked, Journal, load, update
from tests.unit.helpers import T0

if TYPE_CHECKING:
    from pathlib import Path

REFUSED = Verdict("b.example", ('CAA forbids b.example: ... "other-ca.example" ...',))
PASSED = Verdict("a.example", (), ("a.example has an AAAA record ...",))


def test_a_cycle_records_each_checked_lineage_and_keeps_the_others() -> None:
    """a and b checked now; c, checked before, keeps its last result."""
    before = Journal(preflight={"c.example": Checked(ok=True, checked_at=T0, detail="ok")})
    result = CycleResult((), (), 1.0, preflight=(REFUSED, PASSED))
    after = recorded(before, result, verify=False, now=T0)
    assert after.preflight["b.example"] == Checked(
        ok=False, checked_at=T0, detail=REFUSED.failures[0]
    )
    assert after.preflight["a.example"].detail == "ok; a.example has an AAAA record ..."
    assert after.preflight["c.example"] == before.preflight["c.example"]
    assert after.to_json()["preflight"]["b.example"]["ok"] is False


def test_the_preflight_metric_is_one_when_passed_zero_when_failed() -> None:
    """certbot_sidecar_preflight{lineage}: 1 ok, 0 failed."""
    state = Journal(
        preflight={"a": Checked(ok=True, checked_at=T0), "b": Checked(ok=False, checked_at=T0)}
    )
    (family,) = [f for f in families({}, state) if f.name.endswith("preflight")]
    assert {s.labels["lineage"]: s.value for s in family.samples} == {"a": 1.0, "b": 0.0}


def test_the_journal_keeps_the_preflight_across_a_write(tmp_path: Path) -> None:
    """Written and read back the same."""
    entry = {"b.example": Checked(ok=False, checked_at=T0, detail="no A or AAAA")}
    update(tmp_path, lambda _: Journal(preflight=entry))
    assert load(tmp_path).preflight == entry


def test_status_shows_failed_and_warned_lineages_only() -> None:
    """A plain ok is not repeated; a failure and a warning are, with their time."""
    state = Journal(
        preflight={
            "a": Checked(ok=True, checked_at=T0, detail="ok"),
            "b": Checked(ok=False, checked_at=T0, detail="b does not resolve"),
            "c": Checked(ok=True, checked_at=T0, detail="ok; c has an AAAA record"),
        }
    )
    lines = preflight_lines(state)
    assert len(lines) == 2
    assert lines[0].startswith("pre-flight b (")
    assert lines[0].endswith("FAILED: b does not resolve")
    assert lines[1].endswith("ok; c has an AAAA record")
