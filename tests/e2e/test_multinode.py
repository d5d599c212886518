"""Docker Swarm on a real three-node swarm (multinode.py): certificates on every node, HTTP-01
through the sidecar's node only, DNS-01 anywhere, nodes lost mid-renewal, the stack file."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

import pytest

from tests.bench.downtime import Probe
from tests.e2e.dns import start_dns
from tests.e2e.faults import BlackHole, Gate
from tests.e2e.harness import disk_serial, wait_for
from tests.e2e.multinode import SPREAD, STARTED
from tests.e2e.swarm import (
    SERIAL_LABEL,
    recorded,
    recorded_at_zero,
    referenced,
    renew,
    replicas,
    versions,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.e2e.multinode import Bed, MultiNodeStack, Node

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
SECRET = {"CERT_DELIVERY": "secret"}
WEB_PORT = 8443  # the global service's published port (not 80: it keeps running)
ALL = ["node1", "node2", "node3"]


@contextlib.contextmanager
def probes(stack: MultiNodeStack) -> Iterator[dict[str, Probe]]:
    """A TLS probe of port 443 on every node, every 20 ms, for the duration."""
    with contextlib.ExitStack() as running:
        yield {
            n.name: running.enter_context(Probe(stack.https_port, stack.domain, n.ip))
            for n in stack.nodes.nodes
        }


def all_serve(stack: MultiNodeStack, nodes: list[Node], serial: int) -> bool:
    return all(stack.serial_on(n) == serial for n in nodes)


def report(logs: str) -> str:
    return logs[logs.index("dry-run report:") :]


@pytest.fixture
def three_managers(nodes: Bed) -> Iterator[Bed]:
    """Every node a manager for the test; afterwards node1 the only one, and the leader."""
    nodes.promote_all()
    try:
        yield nodes
    finally:
        nodes.reset()


def test_every_task_on_every_node_serves_the_certificate_and_http01_needs_the_managers_address(
    node_stack: MultiNodeStack,
):
    """CERT_DELIVERY=secret, the names resolving to the manager: a replicated service with one
    task on each node and a global service get the certificate at first issuance and again at a
    forced renewal, and every task on every node serves the current one; the replicated
    service's tasks are down on all three nodes at once for the challenge and back after it;
    only the current secret versions are left. The names resolving to a worker instead: the dry
    run fails saying where the CA connected, and the service runs on every node again."""
    stack = node_stack
    stack.start_pebble()
    app = stack.app_service(replicas=3, placement=SPREAD, secrets=[])
    web = stack.app_service(mode="global", ports={WEB_PORT: 443}, secrets=[], name="web")
    stack.wait_running(app, 3)
    stack.wait_running(web, 3)
    assert stack.task_nodes(app) == ALL

    renew(stack, **SECRET)
    first = disk_serial(stack.le_dir, stack.domain)
    wait_for("every node to serve it", lambda: stack.serves_everywhere(first), timeout=120)
    wait_for("on the global service too", lambda: stack.serves_everywhere(first, WEB_PORT))

    with probes(stack) as seen:
        time.sleep(0.3)
        logs = renew(stack, "--force", **SECRET)
        new = disk_serial(stack.le_dir, stack.domain)
        wait_for("every node to serve the new one", lambda: stack.serves_everywhere(new), 120)
        time.sleep(0.3)

    assert new != first
    wait_for("the global service too", lambda: stack.serves_everywhere(new, WEB_PORT))
    windows = {name: probe.windows() for name, probe in seen.items()}
    assert all(len(w) == 1 for w in windows.values()), windows
    starts, ends = zip(*(w[0] for w in windows.values()), strict=True)
    assert max(starts) < min(ends), f"not down on every node at once: {windows}"
    assert stack.task_nodes(app) == ALL
    assert "(scaled 3 to 0)" in logs
    assert "(scaled to 3)" in logs
    made = versions(stack)
    assert {labels[SERIAL_LABEL] for labels in made.values()} == {f"{new:x}"}, made
    assert set(referenced(stack, app).values()) == set(referenced(stack, web).values()) == set(made)

    worker = stack.nodes.workers[0]
    stack.resolve_to(worker.ip)
    code, logs = stack.sidecar_service_once("renew", "--dry-run", **SECRET)

    assert code == 1, logs
    lines = report(logs).splitlines()
    assert any(ln.split()[:2] == ["ok", "stop"] for ln in lines), lines
    assert any(ln.split()[:2] == ["ok", "start"] for ln in lines), lines
    (failed,) = [ln for ln in lines if ln.split()[:2] == ["FAILED", "challenge"]]
    assert f"dial tcp {worker.ip}:80" in failed
    assert "could not connect to port 80" in failed
    assert replicas(stack, app) == 3
    assert stack.task_nodes(app) == ALL
    assert stack.serves_everywhere(new)


def test_dns01_stops_nothing_and_a_forced_update_brings_the_certificate_to_every_node(
    node_stack: MultiNodeStack,
):
    """CHALLENGE=dns with the tree on a volume every node reaches: no task is stopped for the
    challenge; a renewal restarts the service (`service update --force`) and every node serves
    the new certificate; with RELOAD_SIGNAL the task on the sidecar's node reloads in place,
    without an outage anywhere, and the warning names the tasks on the other nodes."""
    stack = node_stack
    bed = start_dns(stack, zones=(stack.domain,))
    stack.start_pebble(dns_server=bed.address)
    app = stack.app_service(replicas=3, placement=SPREAD)  # reads the tree
    env = {
        "DOMAINS": f"*.{stack.domain},{stack.domain}",
        "CHALLENGE": "dns",
        "DNS_PLUGIN": "rfc2136",
        "DNS_CREDENTIALS": bed.credentials,
        "DNS_PROPAGATION": "0",
    }
    stack.wait_running(app, 3)
    logs = renew(stack, **env)
    first = disk_serial(stack.le_dir, stack.domain)
    wait_for("every node to serve it", lambda: stack.serves_everywhere(first), timeout=120)

    logs += renew(stack, "--force", **env)
    new = disk_serial(stack.le_dir, stack.domain)

    assert new != first
    wait_for("every node to serve the new one", lambda: stack.serves_everywhere(new), 120)
    assert "(service update --force)" in logs
    assert "stopping" not in logs
    assert "scaled" not in logs
    assert replicas(stack, app) == 3
    assert stack.task_nodes(app) == ALL
    tasks = {t["ID"] for t in stack.api.tasks(filters={"service": app, "desired-state": "running"})}

    with probes(stack) as seen:
        logs = renew(stack, "--force", RELOAD_SIGNAL="SIGHUP", **env)
        newest = disk_serial(stack.le_dir, stack.domain)
        manager, *workers = stack.nodes.nodes
        wait_for("the manager's task to reload", lambda: stack.serial_on(manager) == newest)

    assert [stack.serial_on(w) for w in workers] == [new, new]
    assert {
        t["ID"] for t in stack.api.tasks(filters={"service": app, "desired-state": "running"})
    } == tasks
    assert all(not p.outages() for p in seen.values()), {n: p.outages() for n, p in seen.items()}
    name = stack.api.inspect_service(app)["Spec"]["Name"]
    assert f"sent SIGHUP to 1 task(s) of service {name}" in logs
    assert f"2 task(s) of service {name} run on other nodes and got no SIGHUP" in logs


def test_a_worker_lost_mid_renewal_the_service_comes_back_on_the_nodes_left(
    node_stack: MultiNodeStack,
):
    """A worker's engine frozen while the app is at 0 for the challenge: the renewal finishes,
    the replicated service runs its 2 tasks on the nodes left, serving the new certificate, and
    once the worker is back its task of the global service is one of the current spec, serving
    the new certificate too."""
    stack = node_stack
    bed = stack.nodes
    with Gate((bed.manager.ip, stack.http_port), bed.gateway) as gate:
        stack.start_pebble(http_port=gate.port, answer=bed.gateway)
        app = stack.app_service(replicas=2, placement=SPREAD, secrets=[])
        web = stack.app_service(mode="global", ports={WEB_PORT: 443}, secrets=[], name="web")
        stack.wait_running(app, 2)
        stack.wait_running(web, 3)
        gate.open()
        renew(stack, **SECRET)
        first = disk_serial(stack.le_dir, stack.domain)
        lost = next(n for n in bed.workers if n.name in stack.task_nodes(app))
        left = [n for n in bed.nodes if n is not lost]

        gate.hold()
        sidecar = stack.sidecar_service("renew", "--force", restart="none", **SECRET)
        wait_for("the challenge to be answered", gate.waiting.is_set, timeout=120)
        assert recorded_at_zero(stack, app)
        lost.pause()
        try:
            gate.open()
            code, logs = stack.outcome(sidecar)
            new = disk_serial(stack.le_dir, stack.domain)
            assert code == 0, logs
            assert new != first
            assert replicas(stack, app) == 2
            assert stack.task_nodes(app) == [n.name for n in left]
            wait_for("the nodes left to serve it", lambda: all_serve(stack, left, new))
            wait_for("the worker seen down", lambda: bed.states()[lost.name][0] == "down", 60)
        finally:
            lost.unpause()

    wait_for("the worker back", lambda: stack.serial_on(lost, WEB_PORT) == new, timeout=120)
    assert stack.task_nodes(web) == ALL
    assert stack.serves_everywhere(new, WEB_PORT)
    assert set(referenced(stack, web).values()) == set(versions(stack))


def test_the_managers_engine_restarted_while_the_service_is_at_zero_it_is_scaled_back(
    node_stack: MultiNodeStack,
):
    """The manager's engine killed while the app is at 0 for the challenge (the sidecar's task
    dies with it) and started again: swarm starts a new task of the sidecar (restart_policy
    any), which finds its record and scales the app back to its 2 replicas."""
    stack = node_stack
    manager = stack.nodes.manager
    with BlackHole(host=stack.nodes.gateway) as hole:
        pebble = stack.start_pebble(http_port=hole.port, answer=stack.nodes.gateway)
        app = stack.app_service(replicas=2, placement=SPREAD, secrets=[])
        stack.wait_running(app, 2)
        sidecar = stack.sidecar_service("run", **SECRET)
        wait_for("the app at 0 for the challenge", lambda: recorded_at_zero(stack, app), 180)
        manager.container.kill()
        pebble.stop(timeout=5)  # the next cycle must not scale it to 0 again
        manager.start()

    wait_for("2 tasks running again", lambda: len(stack.task_nodes(app)) == 2, timeout=180)
    assert replicas(stack, app) == 2
    wait_for("the record cleared", lambda: not recorded(stack))
    wait_for("the warning", lambda: "left them stopped" in stack.logs(sidecar), timeout=30)
    assert len(stack.api.tasks(filters={"service": sidecar})) >= 2, "swarm ran a new task"


def test_with_three_managers_the_leader_lost_mid_renewal_the_sidecar_scales_back_through_the_new(
    three_managers: Bed, node_stack: MultiNodeStack
):
    """Three managers, the sidecar (the daemon) on node2: node1, the leader, frozen while the app
    is at 0 for a renewal's challenge. The swarm API answers nothing until node2 and node3 have
    elected a new leader; the sidecar keeps trying, scales the app back through the new leader,
    and the renewed certificate is served."""
    stack = node_stack
    bed = three_managers
    manager, node2, _ = bed.nodes
    stack.via = node2
    with Gate((node2.ip, stack.http_port), bed.gateway) as gate:
        stack.start_pebble(http_port=gate.port, answer=bed.gateway)
        app = stack.app_service(replicas=2, placement=SPREAD, secrets=[])
        stack.wait_running(app, 2)
        on_node2 = {"node": "node.hostname == node2", **SECRET}
        gate.open()
        renew(stack, **on_node2)
        first = disk_serial(stack.le_dir, stack.domain)

        gate.hold()
        sidecar = stack.sidecar_service("run", RENEW_BEFORE_EXPIRY="1000d", **on_node2)
        wait_for("the challenge to be answered", gate.waiting.is_set, timeout=120)
        assert recorded_at_zero(stack, app)
        manager.pause()
        try:
            gate.open()
            wait_for("a new leader", lambda: bed.states(node2)[node2.name][0] == "ready", 60)
            wait_for("2 tasks running again", lambda: len(stack.task_nodes(app)) == 2, 240)
            new = disk_serial(stack.le_dir, stack.domain)
            assert new != first
            assert replicas(stack, app) == 2
            wait_for("the record cleared", lambda: not recorded(stack), timeout=60)
            serving = [n for n in bed.nodes if n.name in stack.task_nodes(app)]
            wait_for("the new certificate served", lambda: all_serve(stack, serving, new))
            name = stack.api.inspect_service(app)["Spec"]["Name"]
            wait_for("the log", lambda: f"{name} (scaled to 2)" in stack.logs(sidecar), 60)
        finally:
            manager.unpause()


def test_the_stack_file_on_three_nodes_serves_the_certificate_on_every_node(
    node_stack: MultiNodeStack,
):
    """config/stack.yaml as the README documents it, the app at 3 replicas: the sidecar runs on
    the manager with its volume there only, and the app's task on every node serves the
    certificate from its secrets."""
    stack = node_stack
    name = stack.deploy("cbs", DEMO_DOMAIN=stack.domain, APP_ID=stack.uid, APP_REPLICAS="3")
    app = stack.stack_service(name, "app")
    sidecar = stack.stack_service(name, "sidecar")

    def served_from_secret() -> bool:
        serials = {labels[SERIAL_LABEL] for labels in versions(stack).values()}
        return len(serials) == 1 and stack.serves_everywhere(int(serials.pop(), 16))

    wait_for("every node to serve the certificate of its secrets", served_from_secret, 300)
    assert stack.task_nodes(app) == ALL
    assert stack.task_nodes(sidecar, STARTED) == ["node1"]
    volume = f"{name}_letsencrypt"
    assert [
        n.name for n in stack.nodes.nodes if n.api.volumes(filters={"name": volume})["Volumes"]
    ] == ["node1"]
    files = referenced(stack, app)
    assert set(files) == {f"live/{stack.domain}/fullchain.pem", f"live/{stack.domain}/privkey.pem"}
    assert f"stopped service {name}_app (scaled 3 to 0)" in stack.logs(sidecar)
