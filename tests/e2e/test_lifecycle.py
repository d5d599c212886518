"""The sidecar's own lifecycle on real parts: `docker stop` at any instant is a clean exit, and the
app is running afterwards."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from tests.e2e.faults import BlackHole
from tests.e2e.harness import disk_serial, wait_for

if TYPE_CHECKING:
    from docker.models.containers import Container

    from tests.e2e.harness import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
GRACE = 10  # Docker's default stop timeout
WELL_INSIDE = 8.0
# Instants (seconds) spread over the first 1.5 s: interpreter start, imports, preflight, cycle.
OFFSETS = (0.0, 0.03, 0.08, 0.15, 0.25, 0.35, 0.5, 0.65, 0.8, 1.0, 1.2, 1.5)


def running(stack: Stack, container: Container) -> bool:
    return bool(stack.state(container)["Running"])


def stop_and_time(container: Container) -> float:
    began = time.monotonic()
    container.stop(timeout=GRACE)
    return time.monotonic() - began


def assert_clean_stop(stack: Stack, daemon: Container, took: float, when: str) -> None:
    state = stack.state(daemon)
    logs = daemon.logs().decode(errors="replace")[-1500:]
    assert state["ExitCode"] == 0, f"{when}: exit {state['ExitCode']} after {took:.1f}s\n{logs}"
    assert took < WELL_INSIDE, f"{when}: the stop took {took:.1f}s\n{logs}"


def issued(stack: Stack) -> None:
    code, logs = stack.sidecar_once("renew")
    assert code == 0, logs


def test_docker_stop_at_any_instant_after_a_start_is_a_clean_exit(stack: Stack):
    """From the first instant of the container: every `docker stop` ends with exit code 0."""
    stack.start_pebble()
    app = stack.start_app()
    issued(stack)

    for offset in OFFSETS:
        daemon = stack.sidecar("run", CHECK_INTERVAL="1h")
        time.sleep(offset)
        took = stop_and_time(daemon)
        assert_clean_stop(stack, daemon, took, f"stopped {offset:.2f}s after the start")
        assert running(stack, app), f"the app is down after a stop {offset:.2f}s after the start"
        daemon.remove(force=True)
        stack.containers.remove(daemon)


def test_docker_stop_at_any_instant_after_a_wake_from_sleep_is_a_clean_exit(stack: Stack):
    """The daemon sleeps, execs itself again and runs a cycle: no instant of that loses SIGTERM."""
    stack.start_pebble()
    app = stack.start_app()
    issued(stack)
    interval = 0.3

    for offset in OFFSETS:
        daemon = stack.sidecar("run", CHECK_INTERVAL=f"{interval}s", CHECK_JITTER="0")
        wait_for(
            "the daemon's first sleep",
            lambda d=daemon: "next check at" in d.logs().decode(errors="replace"),
            timeout=90,
            every=0.02,
        )
        time.sleep(interval + offset)
        took = stop_and_time(daemon)
        assert_clean_stop(stack, daemon, took, f"stopped {offset:.2f}s after a wake")
        assert running(stack, app), f"the app is down after a stop {offset:.2f}s after a wake"
        daemon.remove(force=True)
        stack.containers.remove(daemon)


def test_docker_stop_while_the_app_is_stopped_for_the_challenge_starts_it_and_exits_cleanly(
    stack: Stack,
):
    """SIGTERM mid-challenge: certbot is ended, the app started, the sidecar exits by itself."""
    with BlackHole() as hole:
        stack.start_pebble(http_port=hole.port)  # validation hangs: the app stays stopped
        app = stack.start_app()
        daemon = stack.sidecar("run", CHECK_INTERVAL="1h")
        wait_for(
            "the app stopped for the challenge",
            lambda: (
                (stack.le_dir / "sidecar" / "stopped.json").exists() and not running(stack, app)
            ),
            timeout=120,
        )

        took = stop_and_time(daemon)

        assert_clean_stop(stack, daemon, took, "stopped while the app was down")
        assert running(stack, app), "the app must run again before the sidecar exits"
        assert not (stack.le_dir / "sidecar" / "stopped.json").exists()
        logs = daemon.logs().decode(errors="replace")
        assert "SIGTERM received: stopping certbot" in logs, logs


def test_ctrl_c_on_a_manual_renew_ends_certbot_and_starts_the_app(stack: Stack):
    """SIGINT on `sidecar renew` behaves like SIGTERM: certbot is not left running as an orphan."""
    with BlackHole() as hole:
        stack.start_pebble(http_port=hole.port)
        app = stack.start_app()
        renew = stack.sidecar("renew")
        wait_for(
            "the app stopped for the challenge",
            lambda: not running(stack, app),
            timeout=120,
        )

        renew.kill(signal="SIGINT")
        code = renew.wait(timeout=GRACE)["StatusCode"]

    logs = renew.logs().decode(errors="replace")
    assert code == 128 + 2, logs
    assert "SIGINT received: stopping certbot" in logs, logs
    assert running(stack, app)
    assert not (stack.le_dir / "sidecar" / "stopped.json").exists()
    with pytest.raises(FileNotFoundError):
        disk_serial(stack.le_dir, stack.domain)
