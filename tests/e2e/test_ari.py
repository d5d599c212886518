"""Renewing on the CA's clock (ARI, RFC 9773), on real parts: a certificate revoked through ACME
(Pebble then moves its renewal window an hour into the past) is replaced by the running daemon on
its own, with one `replacement-requested` alert, and no other certificate is renewed early."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

from tests.e2e.harness import disk_serial, wait_for

if TYPE_CHECKING:
    from docker.models.containers import Container

    from tests.e2e.harness import Stack
    from tests.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

REPLACEMENT = "replacement-requested"


def journal(stack: Stack) -> dict[str, object]:
    path = stack.le_dir / "sidecar" / "journal.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}  # type: ignore[no-any-return]


def revoke(stack: Stack, sidecar: Container, name: str) -> None:
    """`certbot revoke` inside the sidecar, keeping the lineage (retried while a cycle holds
    certbot's lock)."""
    command = [
        *("certbot", "revoke", "--cert-name", name, "--no-delete-after-revoke"),
        *("--non-interactive", "--server", stack.acme_url, "--reason", "keycompromise"),
    ]
    last = ""
    for _ in range(30):
        code, out = sidecar.exec_run(
            command, environment={"REQUESTS_CA_BUNDLE": "/pebble-ca/ca.pem"}
        )
        last = out.decode(errors="replace")
        if code == 0:
            return
        time.sleep(1)
    raise AssertionError(f"certbot revoke failed: {last}")


def test_a_revoked_certificate_is_replaced_at_the_next_check_with_one_alert(
    stack: Stack, receiver: Receiver
):
    """Revoked through ACME, the certificate's ARI window ends in the past: the daemon's next
    check renews that lineage alone (`--cert-name`), alerts once, and leaves the other one."""
    stack.start_pebble()
    stack.start_app()
    revoked, other = stack.domain, f"other.{stack.domain}"
    sidecar = stack.sidecar(
        "run",
        DOMAINS=f"{revoked};{other}",
        CHECK_INTERVAL="15s",
        CHECK_JITTER="0",
        WEBHOOK_URL=f"http://127.0.0.1:{receiver.port}/hook/ari",
    )
    wait_for(
        "both certificates and the CA's windows",
        lambda: set(journal(stack).get("ari") or {}) == {revoked, other},  # type: ignore[arg-type]
        timeout=240,
    )
    first, kept = disk_serial(stack.le_dir, revoked), disk_serial(stack.le_dir, other)
    window = journal(stack)["ari"][revoked]  # type: ignore[index]
    assert window["start"] > window["checked_at"]  # a window ahead, for a fresh certificate

    revoke(stack, sidecar, revoked)

    alert = receiver.wait("/hook/", REPLACEMENT, timeout=240)
    wait_for("the replacement", lambda: disk_serial(stack.le_dir, revoked) != first, timeout=240)
    assert alert["severity"] == "warning"
    assert alert["certificates"] == [revoked]
    assert f"{first:x}" in alert["message"]
    cycles = journal(stack)["cycles"]
    wait_for("two more checks", lambda: journal(stack)["cycles"] >= cycles + 2, timeout=240)  # type: ignore[operator]
    events = [body["event"] for _, body in receiver.received]
    assert events.count(REPLACEMENT) == 1, events
    assert disk_serial(stack.le_dir, other) == kept, "the other lineage must not be renewed early"
    logs = sidecar.logs().decode(errors="replace")
    assert f"{revoked}: the CA asks for a new certificate now: its window is over" in logs
    forced = [line for line in logs.splitlines() if "running" in line and "--force-renewal" in line]
    assert len(forced) == 1, forced
    assert forced[0].endswith(f"--cert-name {revoked}")
    state = journal(stack)
    assert state["ari"][revoked]["serial"] == f"{disk_serial(stack.le_dir, revoked):x}"  # type: ignore[index]
    assert state["alerts"]["replacement"] == {revoked: f"{first:x}"}  # type: ignore[index]
