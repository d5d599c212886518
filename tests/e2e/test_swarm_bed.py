"""The Swarm test bed on a real single-node swarm: services serve the certificate and are scaled.

The sidecar of today controls containers only, so it obtains the certificate (as a swarm task)
while a labelled plain container stands in for the app; these tests then drive the app service
through docker-py the way the product will (full-spec updates), and measure.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

import pytest

from tests.bench.downtime import Probe
from tests.e2e.harness import disk_serial, served_serial, wait_for
from tests.e2e.swarm import poll, running_tasks, spec_diff

if TYPE_CHECKING:
    from tests.e2e.swarm import SwarmStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def obtain_certificate(stack: SwarmStack, *flags: str) -> int:
    """`sidecar renew` as a one-shot swarm task (host network, socket); the new serial."""
    code, logs = stack.sidecar_service_once("renew", *flags)
    assert code == 0, logs
    return disk_serial(stack.le_dir, stack.domain)


def _serves(stack: SwarmStack, serial: int) -> bool:
    try:
        return served_serial(stack.https_port, stack.domain) == serial
    except OSError:
        return False


def refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_app_service_serves_the_certificate_and_is_scaled_to_zero_and_back(swarm_stack: SwarmStack):
    stack = swarm_stack
    stack.start_pebble()
    stack.start_placeholder()
    serial = obtain_certificate(stack)
    app = stack.app_service()
    stack.wait_running(app, 1)
    wait_for(
        "the service to serve the cert",
        lambda: served_serial(stack.https_port, stack.domain) == serial,
    )
    before = stack.api.inspect_service(app)

    with Probe(stack.https_port, stack.domain) as probe:
        time.sleep(0.3)
        down = stack.scale(app, 0)
        assert refuses(stack.https_port), "the host-mode port must be free once no task runs"
        assert refuses(stack.http_port)
        zero = stack.api.inspect_service(app)
        up = stack.scale(app, 1)
        serving = poll("the new task to serve the cert", lambda: _serves(stack, serial), 60)
        time.sleep(0.3)
    after = stack.api.inspect_service(app)

    assert spec_diff(before["Spec"], zero["Spec"]) == [".Mode.Replicated.Replicas: 1 -> 0"]
    assert spec_diff(before["Spec"], after["Spec"]) == [], "scaling must change nothing else"
    assert zero["PreviousSpec"]["Mode"] == {"Replicated": {"Replicas": 1}}
    assert after["Version"]["Index"] > zero["Version"]["Index"] > before["Version"]["Index"]
    assert "UpdateStatus" not in after, "a scale is no rolling update"
    assert len(running_tasks(stack.api, app)) == 1
    outages = probe.outages()
    assert len(outages) == 1, outages
    print(
        f"\nswarm bed: scale 1->0 {down:.2f}s (no task left), 0->1 {up:.2f}s (task running) "
        f"+{serving:.2f}s (HTTPS answers), outage {outages[0]:.2f}s"
    )


def test_global_service_reads_versioned_secrets_and_a_swap_is_its_reload(swarm_stack: SwarmStack):
    """Secret mode on a global service: serve v1, renew, swap to v2 in one update, remove v1."""
    stack = swarm_stack
    stack.start_pebble()
    stack.start_placeholder()
    old = obtain_certificate(stack)
    v1 = stack.lineage_secrets()
    app = stack.app_service(mode="global", secrets=v1, publish_http=False)  # the renewal's port
    stack.wait_running(app, 1)
    wait_for(
        "v1 served from /run/secrets", lambda: served_serial(stack.https_port, stack.domain) == old
    )
    with pytest.raises(Exception, match="is in use by the following service"):
        stack.api.remove_secret(v1[0]["SecretID"])

    new = obtain_certificate(stack, "--force")
    assert new != old
    v2 = stack.lineage_secrets()
    stack.swap_secrets(app, v2)
    stack.wait_running(app, 1)
    wait_for("v2 served", lambda: served_serial(stack.https_port, stack.domain) == new, timeout=60)

    spec = stack.api.inspect_service(app)["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert {s["SecretID"] for s in spec["Secrets"]} == {r["SecretID"] for r in v2}
    for ref in v1:  # no longer in any service's spec: removable
        stack.api.remove_secret(ref["SecretID"])
    left = stack.api.secrets(filters={"label": f"certbot-sidecar.lineage={stack.domain}"})
    assert {s["Spec"]["Labels"]["certbot-sidecar.serial"] for s in left} == {f"{new:x}"}
    task = running_tasks(stack.api, app)[0]
    container = task["Status"]["ContainerStatus"]["ContainerID"]
    listing = stack.api.exec_start(
        stack.api.exec_create(container, ["ls", "-ln", f"/run/secrets/live/{stack.domain}"])
    )
    assert b"-r-------- 1 0 0" in listing, listing  # privkey.pem: mode 0400, uid/gid 0
    assert b"-r--r--r-- 1 0 0" in listing, listing  # fullchain.pem: 0444
