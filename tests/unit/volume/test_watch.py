"""What the idle daemon watches: a record of stopped targets that no cycle holds."""

from __future__ import annotations

import subprocess
import sys

from sidecar.volume.files import exclusive_lock, write_json
from sidecar.volume.watch import LOCK, RECORD, lock_free, unattended


def test_no_record_is_nothing_to_act_on(tmp_path):
    """The usual idle state: no record, and the lock is not even probed."""
    assert not unattended(tmp_path)
    assert not (tmp_path / LOCK).exists()


def test_a_record_with_the_lock_free_was_left_by_a_run_that_died(tmp_path):
    """A `sidecar renew` killed between its stop and its start of the app."""
    write_json(tmp_path / RECORD, {"targets": []})
    assert unattended(tmp_path)
    with exclusive_lock(tmp_path / LOCK):
        pass
    assert unattended(tmp_path)


def test_a_record_under_a_held_lock_belongs_to_the_cycle_holding_it(tmp_path):
    """A cycle's app stopped for its challenge right now: not the idle daemon's business."""
    write_json(tmp_path / RECORD, {"targets": []})
    with exclusive_lock(tmp_path / LOCK):
        assert not unattended(tmp_path)
        assert not lock_free(tmp_path / LOCK)


def test_the_probe_does_not_keep_the_lock(tmp_path):
    """Probing takes the lock for an instant only: a cycle gets it right after."""
    (tmp_path / LOCK).touch()
    assert lock_free(tmp_path / LOCK)
    with exclusive_lock(tmp_path / LOCK):
        pass


def test_the_watch_loads_no_heavy_module():
    """The sleeper imports it: only small standard library modules (not even pathlib)."""
    code = "import sys, sidecar.volume.watch; print('pathlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
