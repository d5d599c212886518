"""The core promise on real parts: issue, renew with the app stopped and started, never down."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.e2e.harness import disk_cert, disk_serial, served_serial, wait_for

if TYPE_CHECKING:
    from tests.e2e.harness import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def started_at(stack: Stack, container: object) -> str:
    return str(stack.state(container)["StartedAt"])  # type: ignore[arg-type]


def issue_first(stack: Stack) -> int:
    code, logs = stack.sidecar_once("renew")
    assert code == 0, logs
    return disk_serial(stack.le_dir, stack.domain)


def test_first_issuance_stops_the_app_for_the_challenge_and_it_serves_the_new_cert(stack: Stack):
    """No lineage yet: certonly through the sidecar authenticator; the app ends up serving it."""
    stack.start_pebble()
    app = stack.start_app()
    before = started_at(stack, app)

    serial = issue_first(stack)

    assert stack.state(app)["Running"]
    assert started_at(stack, app) != before, "the app was not stopped for the challenge"
    assert wait_for(
        "the app to serve the cert", lambda: served_serial(stack.https_port, stack.domain) == serial
    )
    conf = (stack.le_dir / "renewal" / f"{stack.domain}.conf").read_text()
    assert "authenticator = sidecar" in conf
    assert "post_hook = sidecar hook post" in conf
    assert isinstance(disk_cert(stack.le_dir, stack.domain).public_key(), ec.EllipticCurvePublicKey)
    key = (stack.le_dir / "live" / stack.domain / "privkey.pem").resolve()
    assert key.stat().st_mode & 0o077 == 0, "the private key must not be readable by others"


def test_forced_renewal_restarts_the_app_which_then_serves_the_new_serial(stack: Stack):
    """A renewal stops the app for the challenge, starts it, and the NEW certificate is served;
    the app named in APP_CONTAINERS is the only target (not a container whose name it
    begins)."""
    stack.start_pebble()
    app = stack.start_app()
    old = issue_first(stack)
    wait_for("old cert served", lambda: served_serial(stack.https_port, stack.domain) == old)
    decoy = stack.create(f"{app.name}-old")

    code, logs = stack.sidecar_once("renew", "--force", APP_LABEL="", APP_CONTAINERS=app.name)

    assert code == 0, logs
    new = disk_serial(stack.le_dir, stack.domain)
    assert new != old
    assert stack.state(app)["Running"]
    assert wait_for("new cert served", lambda: served_serial(stack.https_port, stack.domain) == new)
    assert f"stopping {app.name} for" in logs
    assert f"starting {app.name}" in logs
    assert decoy.name not in logs
    assert stack.state(decoy)["Status"] == "created"


def test_failed_validation_after_the_stop_still_starts_the_app(stack: Stack):
    """The CA cannot reach the challenge (wrong port): certbot fails, the app runs again."""
    stack.start_pebble(http_port=stack.ports[3])  # Pebble dials a port nobody serves
    app = stack.start_app()
    before = started_at(stack, app)

    code, logs = stack.sidecar_once("renew")

    assert code == 1, logs
    assert "stopping" in logs, "the failure must come after the app was stopped"
    assert stack.state(app)["Running"]
    assert started_at(stack, app) != before
    assert not (stack.le_dir / "sidecar" / "stopped.json").exists()


def test_renewal_with_the_acme_server_down_leaves_the_app_running(stack: Stack):
    """Pebble stopped: the cycle fails, says so, and the app keeps serving the old certificate."""
    pebble = stack.start_pebble()
    app = stack.start_app()
    old = issue_first(stack)
    pebble.stop(timeout=5)

    code, logs = stack.sidecar_once("renew", "--force")

    assert code == 1, logs
    assert stack.state(app)["Running"]
    assert disk_serial(stack.le_dir, stack.domain) == old
    assert wait_for("old cert served", lambda: served_serial(stack.https_port, stack.domain) == old)
    status = json.loads(_json_out(stack))
    assert status["failures"] == 1
    assert status["last_result"].startswith("failed")


def _json_out(stack: Stack) -> str:
    code, out = stack.sidecar_once("status", "--json")
    assert code == 0, out
    return out[out.index("{") :]


def test_short_lived_certificate_is_renewed_by_the_schedule_without_force(stack: Stack):
    """A 2-minute certificate: the daemon renews it when certbot's rules make it due."""
    stack.start_pebble(validity=120)
    stack.start_app()
    daemon = stack.sidecar("run", CHECK_INTERVAL="5s", CHECK_JITTER="0")
    first = wait_for("first issuance", lambda: _serial_or_none(stack), timeout=120)

    second = wait_for(
        "a renewal",
        lambda: (s := _serial_or_none(stack)) and s != first and s,
        timeout=200,
        every=1,
    )

    assert wait_for(
        "renewed cert served",
        lambda: served_serial(stack.https_port, stack.domain) == second,
        timeout=30,
    )
    assert "--force-renewal" not in daemon.logs().decode()
    assert stack.state(daemon)["Running"]


def _serial_or_none(stack: Stack) -> int | None:
    try:
        return disk_serial(stack.le_dir, stack.domain)
    except (FileNotFoundError, ValueError):
        return None


def test_sigterm_stops_the_daemon_cleanly_and_the_app_keeps_running(stack: Stack):
    """docker stop on the sidecar: exit 0 soon, the app untouched and running."""
    stack.start_pebble()
    app = stack.start_app()
    daemon = stack.sidecar("run", CHECK_INTERVAL="1h")
    wait_for("first issuance", lambda: _serial_or_none(stack), timeout=120)
    wait_for("the daemon to sleep", lambda: "next check at" in daemon.logs().decode(), timeout=60)

    daemon.stop(timeout=30)

    assert stack.state(daemon)["ExitCode"] == 0
    assert stack.state(app)["Running"]


def test_bad_configuration_exits_before_touching_anything(stack: Stack):
    """An unknown container name: one clear line, exit 2, the app not stopped."""
    stack.start_pebble()
    app = stack.start_app()
    before = started_at(stack, app)

    code, logs = stack.sidecar_once("renew", APP_LABEL="", APP_CONTAINERS="no-such-app")

    assert code == 2
    assert "APP_CONTAINERS: no container named no-such-app" in logs
    assert len(logs.strip().splitlines()) == 1
    assert started_at(stack, app) == before
    assert not (stack.le_dir / "live").exists()
