"""Docker Swarm on a real single-node swarm: services stopped by scaling to 0 and restored, a
global service reloaded by a forced update, certificates delivered as versioned secrets."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.bench.downtime import Probe
from tests.e2e.faults import SWARM_ALLOWED, SWARM_NO_SECRET_CREATE, BlackHole, DockerProxy
from tests.e2e.harness import disk_serial, served_serial, wait_for
from tests.e2e.swarm import (
    PART_LABEL,
    SERIAL_LABEL,
    recorded,
    recorded_at_zero,
    referenced,
    renew,
    replicas,
    running_tasks,
    versions,
)

if TYPE_CHECKING:
    from tests.e2e.swarm import SwarmStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
SECRET = {"CERT_DELIVERY": "secret"}


def serves(stack: SwarmStack, serial: int) -> bool:
    try:
        return served_serial(stack.https_port, stack.domain) == serial
    except OSError:
        return False


def in_task(stack: SwarmStack, service: str, path: str) -> bytes:
    """A file as the service's running task sees it."""
    task = running_tasks(stack.api, service)[0]
    container = task["Status"]["ContainerStatus"]["ContainerID"]
    exec_id = stack.api.exec_create(container, ["cat", path])
    return stack.api.exec_start(exec_id)  # type: ignore[no-any-return]


def test_stack_deploy_issues_the_certificate_and_the_app_task_serves_it_from_its_secrets(
    swarm_stack: SwarmStack,
):
    """config/stack.yaml as it is: the sidecar scales the app to 0 for the first challenge, and
    the app task it scales back reads the new certificate from its secrets."""
    stack = swarm_stack
    p = stack.ports
    name = stack.deploy(
        "cbs",
        DEMO_DOMAIN=stack.domain,
        APP_ID=stack.uid,
        DEMO_PEBBLE_PORT=str(p[0]),
        DEMO_PEBBLE_MANAGEMENT_PORT=str(p[1]),
        DEMO_PEBBLE_DNS_PORT=str(p[2]),
        DEMO_CHALLTEST_PORT=str(p[3]),
        DEMO_HTTP_PORT=str(stack.http_port),
        DEMO_HTTPS_PORT=str(stack.https_port),
    )
    app = stack.stack_service(name, "app")
    sidecar = stack.stack_service(name, "sidecar")

    def served_from_secret() -> bool:
        serials = {labels[SERIAL_LABEL] for labels in versions(stack).values()}
        return len(serials) == 1 and serves(stack, int(serials.pop(), 16))

    wait_for("the app to serve the certificate of its secrets", served_from_secret, timeout=300)

    volume = stack.api.inspect_volume(f"{name}_letsencrypt")["Mountpoint"]
    on_disk = disk_serial(Path(volume), stack.domain)
    assert serves(stack, on_disk)
    files = referenced(stack, app)
    assert set(files) == {f"live/{stack.domain}/fullchain.pem", f"live/{stack.domain}/privkey.pem"}
    assert set(files.values()) == set(versions(stack))
    assert replicas(stack, app) == 1
    logs = stack.logs(sidecar)
    assert f"stopped service {name}_app (scaled 1 to 0)" in logs
    assert f"started service {name}_app (scaled to 1)" in logs


def test_forced_renewal_scales_the_app_to_zero_and_back_in_one_outage_through_a_socket_proxy(
    swarm_stack: SwarmStack,
):
    """One outage per renewal, the new certificate served, the service back at its count with
    nothing else changed; every API call is on the README's allow-list for Swarm."""
    stack = swarm_stack
    stack.start_pebble()
    app = stack.app_service(secrets=[])
    stack.wait_running(app, 1)
    with DockerProxy(allowed=SWARM_ALLOWED) as proxy:
        env = {
            **SECRET,
            "DOCKER_HOST": f"tcp://127.0.0.1:{proxy.port}",
            "VERIFY": f"127.0.0.1:{stack.https_port}",
        }
        renew(stack, socket=False, **env)
        old = disk_serial(stack.le_dir, stack.domain)
        wait_for("the first certificate served", lambda: serves(stack, old))
        before = stack.api.inspect_service(app)["Spec"]

        with Probe(stack.https_port, stack.domain) as probe:
            time.sleep(0.3)
            logs = renew(stack, "--force", socket=False, **env)
            new = disk_serial(stack.le_dir, stack.domain)
            wait_for("the new certificate served", lambda: serves(stack, new))
            time.sleep(0.3)
        assert not proxy.denied, proxy.denied

    assert new != old
    assert len(probe.outages()) == 1, probe.outages()
    after = stack.api.inspect_service(app)["Spec"]
    assert after["Mode"] == before["Mode"] == {"Replicated": {"Replicas": 1}}
    assert after["EndpointSpec"] == before["EndpointSpec"]
    assert len(running_tasks(stack.api, app)) == 1
    assert "(scaled 1 to 0)" in logs
    assert "(scaled to 1)" in logs
    assert "serves the current certificate" in logs


def test_a_global_service_is_reloaded_by_a_forced_update_or_its_reload_signal(
    swarm_stack: SwarmStack,
):
    """A global service cannot be scaled to 0: it keeps running (it does not hold the challenge
    port) and `service update --force` replaces its task, which loads the new certificate; with
    RELOAD_SIGNAL its task on this node gets the signal instead and reloads in place."""
    stack = swarm_stack
    stack.start_pebble()
    app = stack.app_service(mode="global", publish_http=False)
    renew(stack)
    old = disk_serial(stack.le_dir, stack.domain)
    wait_for("the first certificate served", lambda: serves(stack, old))
    forced = stack.api.inspect_service(app)["Spec"]["TaskTemplate"].get("ForceUpdate", 0)

    logs = renew(stack, "--force")

    new = disk_serial(stack.le_dir, stack.domain)
    assert new != old
    wait_for("the new certificate served", lambda: serves(stack, new))
    assert "is global (it cannot be scaled to 0): it keeps running" in logs, logs
    assert "(service update --force)" in logs
    assert stack.api.inspect_service(app)["Spec"]["TaskTemplate"]["ForceUpdate"] == forced + 1

    (task,) = running_tasks(stack.api, app)
    logs = renew(stack, "--force", RELOAD_SIGNAL="SIGHUP")  # reloads in place: the same task

    newer = disk_serial(stack.le_dir, stack.domain)
    wait_for("the newer certificate served", lambda: serves(stack, newer))
    assert [t["ID"] for t in running_tasks(stack.api, app)] == [task["ID"]]
    assert (
        f"sent SIGHUP to 1 task(s) of service {stack.api.inspect_service(app)['Spec']['Name']}"
        in logs
    )


def test_sidecar_killed_while_the_service_is_at_zero_scales_it_back_when_it_runs_again(
    swarm_stack: SwarmStack,
):
    """SIGKILL of the sidecar's task mid-challenge: swarm starts a new task, which finds the
    record and scales the app back to its 2 replicas."""
    stack = swarm_stack
    with BlackHole() as hole:
        pebble = stack.start_pebble(http_port=hole.port)  # validation hangs: the app stays at 0
        app = stack.app_service(replicas=2, ports={})
        stack.wait_running(app, 2)
        sidecar = stack.sidecar_service("run")
        wait_for("the app at 0 for the challenge", lambda: recorded_at_zero(stack, app), 180)
        stack.api.kill(stack.task_container(sidecar), signal="SIGKILL")
        pebble.stop(timeout=5)  # the next cycle must not scale it to 0 again

        wait_for("2 tasks running again", lambda: len(running_tasks(stack.api, app)) == 2, 120)
    assert replicas(stack, app) == 2
    wait_for("the record cleared", lambda: not recorded(stack))
    wait_for("the warning", lambda: "left them stopped" in stack.logs(sidecar), timeout=30)
    assert len(stack.api.tasks(filters={"service": sidecar})) >= 2, "swarm ran a new task"


def test_a_service_scaled_by_hand_while_recorded_as_stopped_is_left_as_it_is(
    swarm_stack: SwarmStack,
):
    """`docker service scale app=2` during the challenge: after it the sidecar does not scale
    it back to 1, and says why."""
    stack = swarm_stack
    with BlackHole() as hole:
        pebble = stack.start_pebble(http_port=hole.port)
        app = stack.app_service(ports={})
        stack.wait_running(app, 1)
        sidecar = stack.sidecar_service("run", CHECK_INTERVAL="1h")
        wait_for("the app at 0 for the challenge", lambda: recorded_at_zero(stack, app), 180)

        stack.scale(app, 2)  # by hand: the full spec with a new count, as `docker service scale`
        pebble.stop(timeout=5)  # the validation fails: certbot ends, the sidecar restores

        wait_for(
            "the sidecar to leave it alone",
            lambda: "scaled to 2 by someone else; left as it is" in stack.logs(sidecar),
            timeout=120,
        )
    wait_for("the record cleared", lambda: not recorded(stack))
    assert replicas(stack, app) == 2
    assert len(running_tasks(stack.api, app)) == 2


def test_secret_rotation_removes_old_versions_and_every_secret_holds_the_current_key(
    swarm_stack: SwarmStack,
):
    """After a renewal only the current certificate's secrets exist, the task's files are the
    lineage's current ones, the key is in no log line, and secrets a redeploy dropped come back
    at the next cycle."""
    stack = swarm_stack
    stack.start_pebble()
    app = stack.app_service(secrets=[])
    logs = renew(stack, **SECRET)
    first = {labels[SERIAL_LABEL] for labels in versions(stack).values()}
    logs += renew(stack, "--force", **SECRET)

    current = f"{disk_serial(stack.le_dir, stack.domain):x}"
    made = versions(stack)
    assert first != {current}
    assert sorted(labels[PART_LABEL] for labels in made.values()) == ["fullchain", "privkey"]
    assert {labels[SERIAL_LABEL] for labels in made.values()} == {current}, "old versions left"
    assert set(referenced(stack, app).values()) == set(made)
    live = stack.le_dir / "live" / stack.domain
    for part in ("fullchain", "privkey"):
        path = f"/run/secrets/live/{stack.domain}/{part}.pem"
        assert in_task(stack, app, path) == (live / f"{part}.pem").read_bytes()
    key_lines = (live / "privkey.pem").read_text().splitlines()[1:-1]
    assert not [line for line in key_lines if line in logs], "the private key was logged"

    stack.update(app, _drop_secrets)  # what `docker stack deploy` does with the stack file's list
    stack.wait_running(app, 1)
    assert referenced(stack, app) == {}
    renew(stack, **SECRET)  # nothing due: the cycle gives the service its secrets again
    assert set(referenced(stack, app).values()) == set(made)
    wait_for("the certificate served again", lambda: serves(stack, int(current, 16)))


def test_a_proxy_refusing_to_create_secrets_never_leaves_the_service_down(
    swarm_stack: SwarmStack,
):
    """A socket proxy that allows the scale calls but refuses `POST /secrets/create`, at the
    first issuance: the service runs its 2 replicas again (without secrets) and the cycle fails
    with one line naming the refused call; the next cycle, allowed, delivers the secrets."""
    stack = swarm_stack
    stack.start_pebble()
    app = stack.app_service(replicas=2, secrets=[], ports={})
    stack.wait_running(app, 2)
    with DockerProxy(allowed=SWARM_NO_SECRET_CREATE) as proxy:
        env = {**SECRET, "DOCKER_HOST": f"tcp://127.0.0.1:{proxy.port}"}
        code, logs = stack.sidecar_service_once("renew", socket=False, **env)

    assert code == 1, logs
    assert "(scaled 2 to 0)" in logs
    assert "(scaled to 2)" in logs
    assert "scaled back without the current certificates' secrets" in logs
    assert replicas(stack, app) == 2
    stack.wait_running(app, 2)
    assert not recorded(stack)
    assert referenced(stack, app) == {}
    assert proxy.denied
    assert all(b"POST /v" in line and b"/secrets/create " in line for line in proxy.denied)
    (failed,) = [line for line in logs.splitlines() if "cycle failed" in line]
    refused = f"delivering the certificates: {stack.domain}: Docker: create secret {stack.domain}_"
    assert refused in failed
    assert "403" in failed

    renew(stack, **SECRET)  # nothing due: the delivery is tried again, and allowed now

    current = f"{disk_serial(stack.le_dir, stack.domain):x}"
    made = versions(stack)
    assert {labels[SERIAL_LABEL] for labels in made.values()} == {current}
    assert set(referenced(stack, app).values()) == set(made)
    stack.wait_running(app, 2)


def test_a_broken_lineage_keeps_its_secrets_on_the_service(swarm_stack: SwarmStack):
    """DOMAINS="a;b" delivered, then a's certificate broken on the volume and b's secrets dropped
    by a redeploy: the next cycle fails naming a, gives b its secrets back, and the service
    still has a's files, as they were."""
    stack = swarm_stack
    stack.start_pebble()
    app = stack.app_service(secrets=[])
    second = f"b-{stack.uid}.example.com"
    env = {**SECRET, "DOMAINS": f"{stack.domain};{second}"}
    renew(stack, **env)
    first = referenced(stack, app)
    assert len(first) == 4, first
    chain = f"/run/secrets/live/{stack.domain}/fullchain.pem"
    held = in_task(stack, app, chain)
    cert = (stack.le_dir / "live" / stack.domain / "cert.pem").resolve()
    cert.write_text(cert.read_text()[:200])
    stack.update(app, lambda spec: _drop_secrets(spec, f"live/{second}/"))
    stack.wait_running(app, 1)

    # --resume: as after a sleep, the cycle (not the start-up check) finds the broken lineage
    daemon = stack.sidecar_service("run", "--resume", CHECK_INTERVAL="1h", **env)
    wait_for("the cycle to fail", lambda: "cycle failed" in stack.logs(daemon), timeout=180)

    assert referenced(stack, app) == first
    stack.wait_running(app, 1)
    assert in_task(stack, app, chain) == held
    failed = [line for line in stack.logs(daemon).splitlines() if "cycle failed" in line]
    assert failed
    assert all(stack.domain in line for line in failed), failed
    assert any("is not a readable certificate" in line for line in failed), failed


def test_a_renamed_lineages_secrets_hold_the_certificate_their_serial_names(
    swarm_stack: SwarmStack,
):
    """renewal/NAME.conf naming live/NAME-0001 (a renamed conf) and another certificate left in
    live/NAME: the secrets hold the conf's certificate, the one whose serial their label names,
    and the app serves it."""
    stack = swarm_stack
    stack.start_pebble()
    app = stack.app_service(secrets=[])
    renew(stack)  # volume mode: no secret made yet
    renamed = f"{stack.domain}-0001"
    _rename_lineage(stack.le_dir, stack.domain, renamed)
    _stale_certificate(stack.le_dir / "live" / stack.domain, stack.domain)
    current = disk_serial(stack.le_dir, renamed)

    renew(stack, **SECRET)  # nothing due: the delivery makes the secrets

    labels = {v[PART_LABEL]: v[SERIAL_LABEL] for v in versions(stack).values()}
    assert labels == {"fullchain": f"{current:x}", "privkey": f"{current:x}"}
    held = in_task(stack, app, f"/run/secrets/live/{stack.domain}/fullchain.pem")
    assert held == (stack.le_dir / "live" / renamed / "fullchain.pem").read_bytes()
    assert x509.load_pem_x509_certificate(held).serial_number == current
    wait_for("the conf's certificate served", lambda: serves(stack, current))


def _drop_secrets(spec: dict[str, Any], under: str = "") -> None:
    """What `docker stack deploy` does with the stack file's list: the sidecar's secrets (those
    whose file is `under` a directory, if given) are gone."""
    container = spec["TaskTemplate"]["ContainerSpec"]
    refs = container.pop("Secrets", None) or []
    if kept := [r for r in refs if not r["File"]["Name"].startswith(under)]:
        container["Secrets"] = kept


def _rename_lineage(le_dir: Path, name: str, new: str) -> None:
    """What a renamed conf leaves: renewal/NAME.conf naming live/NEW and archive/NEW."""
    for kind in ("live", "archive"):
        (le_dir / kind / name).rename(le_dir / kind / new)
    for link in (le_dir / "live" / new).glob("*.pem"):
        target = str(link.readlink()).replace(f"/archive/{name}/", f"/archive/{new}/")
        link.unlink()
        link.symlink_to(target)
    conf = le_dir / "renewal" / f"{name}.conf"
    text = conf.read_text(encoding="utf-8")
    text = text.replace(f"/live/{name}/", f"/live/{new}/")
    conf.write_text(text.replace(f"/archive/{name}\n", f"/archive/{new}\n"), encoding="utf-8")


def _stale_certificate(live: Path, name: str) -> None:
    """Another (self-signed) certificate and key for `name` as plain files in `live`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    live.mkdir(parents=True)
    for part in ("cert", "chain", "fullchain"):
        (live / f"{part}.pem").write_bytes(cert)
    pkcs8 = serialization.PrivateFormat.PKCS8
    der = key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())
    (live / "privkey.pem").write_bytes(der)
