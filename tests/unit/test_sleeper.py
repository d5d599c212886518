"""The idle daemon: a bare process that sleeps, then becomes the command again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from sidecar.sleeper import _parse
from sidecar.volume.files import write_json
from sidecar.volume.watch import RECORD


def run_sleeper(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sidecar.sleeper", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_after_the_wait_it_execs_the_command():
    """When the time is up the same process runs the command given after `--`."""
    proc = run_sleeper("0.1", "--", "/bin/echo", "woke up")
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert out.strip() == "woke up"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_ends_the_wait_at_once_with_exit_0(signum):
    """`docker stop` during the idle wait (or Ctrl-C, or a hangup): a clean exit, the command
    never runs."""
    proc = run_sleeper("3600", "--", "/bin/echo", "must not run")
    time.sleep(0.5)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "must not run" not in out


def test_the_sleeper_loads_no_third_party_module():
    """Its point is a small idle footprint: only the standard library is imported."""
    code = (
        "import sys, sidecar.sleeper; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'pydantic', 'docker', 'cryptography', 'loguru', 'requests', 'certbot'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_wrong_command_line_is_a_usage_error():
    """Without `--` and a command it says how to call it."""
    proc = run_sleeper("1", "echo")
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert "usage" in err


def test_a_record_no_cycle_holds_wakes_it_early(tmp_path):
    """A `sidecar renew` killed with the app stopped: the command runs long before its time."""
    write_json(tmp_path / RECORD, {"targets": []})
    proc = run_sleeper("3600", "--watch", str(tmp_path), "--", "/bin/echo", "woke early")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out.strip() == "woke early"


@pytest.mark.parametrize(
    ("argv", "parsed"),
    [
        (["1.5", "--", "cmd", "a"], (1.5, None, ["cmd", "a"])),
        (["1.5", "--watch", "/le/sidecar", "--", "cmd"], (1.5, "/le/sidecar", ["cmd"])),
        (["1.5", "--watch", "/le/sidecar", "cmd"], None),
        (["soon", "--", "cmd"], None),
    ],
)
def test_the_command_line(argv, parsed):
    """SECONDS [--watch STATE_DIR] -- COMMAND..."""
    assert _parse(argv) == parsed
