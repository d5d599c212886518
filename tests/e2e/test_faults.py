"""Never leave the app down, never lose a certificate: faults injected into real parts."""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.e2e.faults import BlackHole, DockerProxy
from tests.e2e.harness import disk_serial, free_ports, served_serial, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    from docker.models.containers import Container

    from tests.e2e.harness import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
RECORD = ("sidecar", "stopped.json")


def running(stack: Stack, container: Container) -> bool:
    return bool(stack.state(container)["Running"])


def app_stopped_by_sidecar(stack: Stack, app: Container) -> bool:
    return stack.le_dir.joinpath(*RECORD).exists() and not running(stack, app)


def issued(stack: Stack) -> int:
    code, logs = stack.sidecar_once("renew")
    assert code == 0, logs
    return disk_serial(stack.le_dir, stack.domain)


def status_json(stack: Stack) -> dict[str, object]:
    code, out = stack.sidecar_once("status", "--json")
    assert code == 0, out
    return json.loads(out[out.index("{") :])  # type: ignore[no-any-return]


def test_sidecar_killed_while_the_app_is_stopped_starts_it_again_on_restart(stack: Stack):
    """SIGKILL mid-challenge leaves the app down; the next start of the sidecar restores it."""
    with BlackHole() as hole:
        pebble = stack.start_pebble(http_port=hole.port)  # validation hangs: a long outage window
        app = stack.start_app()
        daemon = stack.sidecar("run")
        wait_for("the app stopped for the challenge", lambda: app_stopped_by_sidecar(stack, app))
        daemon.kill()
        assert not running(stack, app)
        pebble.stop(timeout=5)  # the next cycle must not stop the app again

        again = stack.sidecar("run")

        wait_for("the app running again", lambda: running(stack, app), timeout=30)
        wait_for("the record cleared", lambda: not stack.le_dir.joinpath(*RECORD).exists())
        wait_for("the warning", lambda: "left them stopped" in again.logs().decode(), timeout=10)


def test_acme_server_gone_mid_renewal_leaves_app_running_and_schedules_a_retry(stack: Stack):
    """Pebble stopped while the app is down: the app runs again, a backoff is scheduled."""
    with BlackHole() as hole:
        pebble = stack.start_pebble(http_port=hole.port)
        app = stack.start_app()
        daemon = stack.sidecar("run", CHECK_INTERVAL="1h")
        wait_for("the app stopped for the challenge", lambda: app_stopped_by_sidecar(stack, app))

        pebble.stop(timeout=5)

        wait_for("the app running again", lambda: running(stack, app), timeout=90)
        logs = wait_for(
            "a retry scheduled",
            lambda: "retry after 1 failure(s)" in (text := daemon.logs().decode()) and text,
            timeout=90,
        )
        assert "cycle failed" in str(logs)
    status = status_json(stack)
    assert status["failures"] == 1
    assert status["next_check_at"]
    _, out = stack.sidecar_once("health")
    assert "failing" in out, out


def test_certbot_over_its_timeout_is_stopped_and_the_app_started(stack: Stack):
    """CERTBOT_TIMEOUT: certbot is stopped, the run fails saying so, the app runs again."""
    with BlackHole() as hole:
        stack.start_pebble(http_port=hole.port)
        app = stack.start_app()

        code, logs = stack.sidecar_once("renew", CERTBOT_TIMEOUT="6s")

    assert code == 1, logs
    assert "timed out" in logs
    assert running(stack, app)
    assert not stack.le_dir.joinpath(*RECORD).exists()


def test_docker_api_down_while_the_app_is_stopped_is_retried_until_it_runs(stack: Stack):
    """Through a socket proxy (least privilege); the proxy dies mid-renewal and comes back."""
    proxy = DockerProxy()
    port = proxy.port
    with BlackHole() as hole:
        pebble = stack.start_pebble(http_port=hole.port)
        app = stack.start_app()
        daemon = stack.sidecar(
            "run", socket=False, DOCKER_HOST=f"tcp://127.0.0.1:{port}", CHECK_INTERVAL="1h"
        )
        wait_for("the app stopped for the challenge", lambda: app_stopped_by_sidecar(stack, app))
        proxy.close()
        pebble.stop(timeout=5)  # certbot fails now; starting the app fails: no Docker API
        wait_for(
            "restore attempts failing",
            lambda: "trying again" in daemon.logs().decode(),
            timeout=120,
        )
        assert not running(stack, app)

        proxy = DockerProxy(port)  # the API is back

        wait_for("the app running again", lambda: running(stack, app), timeout=30)
    proxy.close()
    assert not proxy.denied, proxy.denied


def test_port_held_by_another_process_fails_clearly_and_the_app_runs_again(stack: Stack):
    """Something else holds the challenge port: the error says so, the app is started again."""
    stack.start_pebble()
    app = stack.start_app(publish_http=False)
    with socket.create_server(("127.0.0.1", stack.http_port)):
        code, logs = stack.sidecar_once("renew")

    assert code == 1, logs
    assert f"port {stack.http_port} is still in use" in logs
    assert running(stack, app)


def test_renewed_certificate_is_served_through_a_socket_proxy(stack: Stack):
    """Only list/inspect/start/stop/restart/kill (and ping/version) are needed of the API."""
    stack.start_pebble()
    stack.start_app()
    with DockerProxy() as proxy:
        code, logs = stack.sidecar_once(
            "renew", socket=False, DOCKER_HOST=f"tcp://127.0.0.1:{proxy.port}"
        )
        assert code == 0, logs
        assert not proxy.denied, proxy.denied
    serial = disk_serial(stack.le_dir, stack.domain)
    assert wait_for("served", lambda: served_serial(stack.https_port, stack.domain) == serial)


BAD_INPUTS = [
    ({"DOMAINS": "bad_name"}, {}, "DOMAINS: 'bad_name' is not a valid domain name", 2),
    ({"DOMAINS": ""}, {}, "DOMAINS: no domain names given", 2),
    ({"ACME_SERVER": "prod"}, {}, "ACME_SERVER: 'prod' is neither", 2),
    ({"CHECK_INTERVAL": "0"}, {}, "CHECK_INTERVAL: must be greater than zero", 2),
    ({"STOP_TIMEOUT": "-1"}, {}, "STOP_TIMEOUT: '-1' is not a duration", 2),
    ({"APP_LABEL": "nobody=here"}, {}, "APP_LABEL: no container has the label nobody=here", 2),
    ({"APP_LABEL": "", "APP_CONTAINERS": "ghost"}, {}, "APP_CONTAINERS: no container named", 2),
    ({"APP_LABEL": "me=too"}, {"labels": {"me": "too"}}, "is the sidecar itself", 2),
    ({}, {"socket": False}, "no Docker socket", 1),
    ({"DOCKER_HOST": "tcp://127.0.0.1:9"}, {"socket": False}, "cannot reach the Docker engine", 1),
    ({}, {"volume_mode": "ro"}, "is not writable", 2),
]


@pytest.mark.parametrize(
    ("env", "options", "message", "code"),
    BAD_INPUTS,
    ids=[b[2].split(":")[0][:30] for b in BAD_INPUTS],
)
def test_bad_input_is_one_clear_line_and_touches_nothing(stack: Stack, env, options, message, code):
    """Each bad input: its own message, a non-zero exit, the app not stopped, no files."""
    stack.start_pebble()
    app = stack.start_app()
    started = stack.state(app)["StartedAt"]

    exit_code, logs = stack.sidecar_once("renew", **options, **env)

    assert exit_code == code, logs
    assert message in logs
    assert len(logs.strip().splitlines()) == 1, logs
    assert stack.state(app)["StartedAt"] == started
    assert not (stack.le_dir / "live").exists()


@pytest.mark.parametrize("broken", ["cert", "key", "conf"])
def test_broken_files_in_the_tree_are_named_before_anything_is_touched(stack: Stack, broken):
    """A corrupt certificate, private key or renewal conf: named, exit 2, app untouched."""
    stack.start_pebble()
    app = stack.start_app()
    issued(stack)
    live = stack.le_dir / "live" / stack.domain
    target = {
        "cert": live / "cert.pem",
        "key": live / "privkey.pem",
        "conf": stack.le_dir / "renewal" / f"{stack.domain}.conf",
    }[broken]
    target.resolve().write_text("[renewalparams\ngarbage" if broken == "conf" else "garbage")
    started = stack.state(app)["StartedAt"]

    code, logs = stack.sidecar_once("renew", "--force")

    assert code == 2, logs
    assert str(target).replace(str(stack.le_dir), "/etc/letsencrypt") in logs
    assert stack.state(app)["StartedAt"] == started


def test_unreachable_acme_server_fails_before_the_app_is_stopped(stack: Stack):
    """The CA does not answer: the cycle says so and nothing is stopped."""
    stack.start_pebble()
    app = stack.start_app()
    started = stack.state(app)["StartedAt"]

    closed = free_ports(1)[0]
    code, logs = stack.sidecar_once("renew", ACME_SERVER=f"https://localhost:{closed}/dir")

    assert code == 1, logs
    assert "unreachable" in logs
    assert stack.state(app)["StartedAt"] == started


def test_secrets_never_reach_the_logs(stack: Stack):
    """The EAB HMAC key, given as a file, appears in no log line even at DEBUG."""
    stack.start_pebble()
    stack.start_app()
    secret = "c2VjcmV0LWhtYWMta2V5LWZvci1lYWItdGVzdHM"
    (stack.ca_dir / "eab.key").write_text(secret)

    _, logs = stack.sidecar_once(
        "renew", EAB_KID="kid-1", EAB_HMAC_KEY_FILE="/pebble-ca/eab.key", LOG_LEVEL="TRACE"
    )

    assert "--eab-hmac-key" not in logs, "never on certbot's command line"
    assert secret not in logs


def test_daemon_waking_to_a_dead_docker_api_waits_for_it_instead_of_exiting(stack: Stack):
    """After a sleep (`run --resume`) a Docker API outage is waited out, then the cycle runs."""
    stack.start_pebble()
    stack.start_app()
    port = free_ports(1)[0]
    daemon = stack.sidecar(
        "run", "--resume", socket=False, DOCKER_HOST=f"tcp://127.0.0.1:{port}", CHECK_INTERVAL="1h"
    )
    wait_for("the retry", lambda: "trying again in" in daemon.logs().decode(), timeout=60)
    assert running(stack, daemon)

    with DockerProxy(port):
        wait_for("the first cycle", lambda: _serial(stack), timeout=90)
    assert running(stack, daemon)


def _serial(stack: Stack) -> int | None:
    try:
        return disk_serial(stack.le_dir, stack.domain)
    except FileNotFoundError:
        return None


def _tls_material(folder: Path) -> ssl.SSLContext:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as `docker` expects
    them in DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem); returns the server's context."""
    folder.mkdir(parents=True)
    now = datetime.now(UTC)

    def issue(
        name: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: tuple[x509.Name, object],
        **ext: x509.ExtensionType,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name.from_rfc4514_string(name))
            .issuer_name(issuer[0])
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
        )
        for value in ext.values():
            critical = isinstance(value, x509.BasicConstraints | x509.KeyUsage)
            builder = builder.add_extension(value, critical=critical)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        if name != issuer[0].rfc4514_string():
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key())  # type: ignore[attr-defined]
            builder = builder.add_extension(aki, critical=False)
        return builder.sign(issuer[1], hashes.SHA256())  # type: ignore[arg-type]

    def pem(item: object) -> bytes:
        if isinstance(item, x509.Certificate):
            return item.public_bytes(serialization.Encoding.PEM)
        return item.private_bytes(  # type: ignore[attr-defined,no-any-return]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca_name = x509.Name.from_rfc4514_string("CN=test docker CA")
    ca = issue(
        "CN=test docker CA",
        ca_key,
        (ca_name, ca_key),
        bc=x509.BasicConstraints(ca=True, path_length=None),
        ku=x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
    )
    server = issue(
        "CN=127.0.0.1",
        server_key,
        (ca_name, ca_key),
        san=x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
    )
    client = issue(
        "CN=sidecar",
        client_key,
        (ca_name, ca_key),
        eku=x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
    )
    for name, item in (
        ("ca.pem", ca),
        ("cert.pem", client),
        ("key.pem", client_key),
        ("server.pem", server),
        ("server-key.pem", server_key),
    ):
        (folder / name).write_bytes(pem(item))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem", folder / "server-key.pem")
    context.load_verify_locations(folder / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def test_docker_host_over_tls_with_client_certificates_works(stack: Stack):
    """DOCKER_HOST=tcp://..., DOCKER_TLS_VERIFY, DOCKER_CERT_PATH: a TLS-protected engine."""
    stack.start_pebble()
    stack.start_app()
    context = _tls_material(stack.ca_dir / "docker")
    with DockerProxy(tls=context) as proxy:
        code, logs = stack.sidecar_once(
            "renew",
            socket=False,
            DOCKER_HOST=f"tcp://127.0.0.1:{proxy.port}",
            DOCKER_TLS_VERIFY="1",
            DOCKER_CERT_PATH="/pebble-ca/docker",
        )
    assert code == 0, logs
    assert "stopping cbs-app" in logs
    serial = disk_serial(stack.le_dir, stack.domain)
    assert wait_for("served", lambda: served_serial(stack.https_port, stack.domain) == serial)
