"""The idle daemon: a bare process that sleeps, then becomes the command again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time


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


def test_sigterm_ends_the_wait_at_once_with_exit_0():
    """`docker stop` during the idle wait: a clean exit, the command never runs."""
    proc = run_sleeper("3600", "--", "/bin/echo", "must not run")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
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
