"""Downtime: one short outage per cycle, none at all for a cooperating app (real parts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.harness import disk_serial, served_serial, wait_for

if TYPE_CHECKING:
    from tests.e2e.harness import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_cooperative_app_is_never_stopped_and_serves_the_renewed_certificate(stack: Stack):
    """CHALLENGE=webroot + RELOAD_SIGNAL: the app answers the challenge and reloads in place."""
    stack.start_pebble()
    app = stack.start_app(env={"ACME_WEBROOT": "/etc/letsencrypt/webroot"})
    started = stack.state(app)["StartedAt"]
    coop = {"CHALLENGE": "webroot", "RELOAD_SIGNAL": "SIGHUP"}
    code, logs = stack.sidecar_once("renew", **coop)
    assert code == 0, logs
    first = disk_serial(stack.le_dir, stack.domain)
    wait_for(
        "the first certificate served",
        lambda: served_serial(stack.https_port, stack.domain) == first,
    )

    code, logs = stack.sidecar_once("renew", "--force", **coop)

    assert code == 0, logs
    second = disk_serial(stack.le_dir, stack.domain)
    assert second != first
    assert wait_for(
        "the new certificate served without a restart",
        lambda: served_serial(stack.https_port, stack.domain) == second,
    )
    assert stack.state(app)["StartedAt"] == started, "a cooperating app must never be stopped"
    assert "sent SIGHUP" in logs
    assert "stopping" not in logs


def test_certificates_due_together_share_one_stop_of_the_app(stack: Stack):
    """Three lineages renewed in one run: the app is stopped once and serves its new cert."""
    stack.start_pebble()
    stack.start_app()
    domains = ";".join([stack.domain, f"b-{stack.uid}.example.com", f"c-{stack.uid}.example.com"])
    code, logs = stack.sidecar_once("renew", DOMAINS=domains)
    assert code == 0, logs
    old = disk_serial(stack.le_dir, stack.domain)

    code, logs = stack.sidecar_once("renew", "--force", DOMAINS=domains)

    assert code == 0, logs
    assert logs.count("stopping cbs-app") == 1, logs
    assert logs.count("starting cbs-app") == 1, logs
    new = disk_serial(stack.le_dir, stack.domain)
    assert new != old
    assert wait_for("new cert served", lambda: served_serial(stack.https_port, stack.domain) == new)


def test_app_that_ignores_sigterm_is_reported_with_the_fix(stack: Stack):
    """Killed at the stop timeout: a warning says so and names `init: true`."""
    stack.start_pebble()
    # PID 1 is a shell that ignores SIGTERM: `docker stop` must wait for the timeout.
    stack.start_app(init=False, command=["sh", "-c", "trap '' TERM; python3 /app/app.py"])

    code, logs = stack.sidecar_once("renew", STOP_TIMEOUT="2")

    assert code == 0, logs
    assert "ignored its stop signal" in logs
    assert "init: true" in logs


def test_reused_authorization_means_no_stop_only_a_restart_to_load_the_new_cert(stack: Stack):
    """The CA reuses the valid authorization: no challenge, so no stop; the app is restarted."""
    stack.keep_authorizations = True
    stack.start_pebble(PEBBLE_AUTHZREUSE="100")
    app = stack.start_app()
    code, logs = stack.sidecar_once("renew")
    assert code == 0, logs
    old = disk_serial(stack.le_dir, stack.domain)
    wait_for("old cert served", lambda: served_serial(stack.https_port, stack.domain) == old)
    started = stack.state(app)["StartedAt"]

    code, logs = stack.sidecar_once("renew", "--force")

    assert code == 0, logs
    assert "stopping" not in logs
    assert "restarting cbs-app" in logs
    new = disk_serial(stack.le_dir, stack.domain)
    assert new != old
    assert stack.state(app)["StartedAt"] != started
    assert wait_for("new cert served", lambda: served_serial(stack.https_port, stack.domain) == new)


def test_the_harness_deactivates_valid_authorizations_so_each_order_has_a_challenge(stack: Stack):
    """Where Pebble would always reuse (PEBBLE_AUTHZREUSE=100), the harness's deactivation before
    each sidecar run (tests/e2e/authz.py) still makes the renewal answer a challenge: the guard
    that keeps Pebble's 1-in-100 reuse at PEBBLE_AUTHZREUSE=0 out of every other test."""
    stack.start_pebble(PEBBLE_AUTHZREUSE="100")
    stack.start_app()
    code, logs = stack.sidecar_once("renew")
    assert code == 0, logs

    code, logs = stack.sidecar_once("renew", "--force")

    assert code == 0, logs
    assert "stopping cbs-app" in logs, logs
