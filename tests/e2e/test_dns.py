"""CHALLENGE=dns on real parts: the sidecar image with certbot-dns-rfc2136, Pebble resolving
through the bind9 bed (config/dns), the demo app reloading by SIGHUP. Wildcards, no stop."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING

import configobj
import pytest
from cryptography import x509

from tests.bench.downtime import Probe
from tests.e2e.dns import ZONE, run_certbot, start_dns
from tests.e2e.harness import disk_cert, disk_serial, served_serial, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    from docker.models.containers import Container

    from tests.e2e.dns import DnsBed
    from tests.e2e.harness import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

WILDCARD = f"*.{ZONE}"


def dns_world(stack: Stack, **pebble: str) -> tuple[DnsBed, Container]:
    """bind9 for example.test, Pebble validating through it (the image never reuses an
    authorization, so every renewal answers a challenge), the app serving lineage example.test."""
    bed = start_dns(stack)
    stack.start_pebble(dns_server=bed.address, **pebble)
    app = stack.start_app(env={"CERT_NAME": ZONE})
    return bed, app


def dns_env(stack: Stack, bed: DnsBed, **env: str) -> dict[str, str]:
    return {
        "DOMAINS": f"{WILDCARD},{ZONE}",
        "CHALLENGE": "dns",
        "DNS_PLUGIN": "rfc2136",
        "DNS_CREDENTIALS": bed.credentials,
        "DNS_PROPAGATION": "0",
        "RELOAD_SIGNAL": "SIGHUP",
        "VERIFY": f"127.0.0.1:{stack.https_port}",
        **env,
    }


def names(cert: x509.Certificate) -> set[str]:
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(sans.get_values_for_type(x509.DNSName))


def started_at(stack: Stack, app: Container) -> str:
    return str(stack.state(app)["StartedAt"])


def served(stack: Stack, serial: int) -> bool:
    return served_serial(stack.https_port, ZONE) == serial


def snapshot(le_dir: Path) -> dict[str, str]:
    """Every file and link of the tree but the sidecar's own state: content hash or target."""
    out = {}
    for path in sorted(le_dir.rglob("*")):
        rel = str(path.relative_to(le_dir))
        if rel.startswith("sidecar"):
            continue
        if path.is_symlink():
            out[rel] = f"-> {path.readlink()}"
        elif path.is_file():
            out[rel] = f"{hashlib.sha256(path.read_bytes()).hexdigest()} {path.stat().st_mode:o}"
    return out


def error_lines(logs: str) -> list[str]:
    return [line for line in logs.splitlines() if " ERROR " in line]


def test_wildcard_issued_and_renewed_by_dns_without_ever_stopping_the_app(stack: Stack):
    """*.example.test + example.test: first issuance and a forced renewal by DNS-01; the app is
    never stopped (a probe every 20 ms sees no failed handshake while it reloads by SIGHUP) and
    serves each new certificate; certbot's TXT records are gone afterwards."""
    bed, app = dns_world(stack)
    started = started_at(stack, app)

    code, logs = stack.sidecar_once("renew", **dns_env(stack, bed))

    assert code == 0, logs
    first = disk_cert(stack.le_dir, ZONE)
    assert names(first) == {WILDCARD, ZONE}
    assert "stopping" not in logs
    assert "sending SIGHUP" in logs
    assert wait_for("the first certificate served", lambda: served(stack, first.serial_number))
    conf = configobj.ConfigObj(str(stack.le_dir / "renewal" / f"{ZONE}.conf"))["renewalparams"]
    assert conf["authenticator"] == "dns-rfc2136"
    assert conf["dns_rfc2136_credentials"] == bed.credentials

    with Probe(stack.https_port, ZONE) as probe:
        code, logs = stack.sidecar_once("renew", "--force", **dns_env(stack, bed))
        second = disk_serial(stack.le_dir, ZONE)
        wait_for("the renewed certificate served", lambda: served(stack, second))

    assert code == 0, logs
    assert second != first.serial_number
    assert names(disk_cert(stack.le_dir, ZONE)) == {WILDCARD, ZONE}
    assert probe.samples, "the probe never ran"
    assert probe.outages() == [], "the app failed a handshake during the renewal"
    assert started_at(stack, app) == started, "the app was stopped or restarted"
    assert "stopping" not in logs
    assert "restarting" not in logs
    assert f"(SNI certbot-sidecar.{ZONE}) serves the current certificate" in logs
    assert bed.txt(f"_acme-challenge.{ZONE}") == []


def test_a_wrong_tsig_key_is_one_clear_line_changes_nothing_and_leaves_the_app_alone(stack: Stack):
    """A TSIG secret the DNS server does not accept: exit 1, one error line with certbot's
    words and the verdict (permanent), no file of the tree changed, the app not touched."""
    bed, app = dns_world(stack)
    code, logs = stack.sidecar_once("renew", **dns_env(stack, bed))
    assert code == 0, logs
    before = snapshot(stack.le_dir)
    started = started_at(stack, app)
    wrong = bed.variant("wrong.ini", dns_rfc2136_secret=base64.b64encode(b"x" * 32).decode())

    code, logs = stack.sidecar_once(
        "renew", "--force", **dns_env(stack, bed, DNS_CREDENTIALS=wrong)
    )

    assert code == 1, logs
    errors = error_lines(logs)
    assert len(errors) == 1, logs
    assert "The peer didn't like the signature we sent" in errors[0]
    assert "rejected the key in DNS_CREDENTIALS" in errors[0]
    assert "retrying soon will not fix this" in errors[0]
    assert bed.settings()["dns_rfc2136_secret"] not in logs
    assert snapshot(stack.le_dir) == before
    assert started_at(stack, app) == started
    assert "stopping" not in logs


def test_the_dns_server_stopped_mid_run_is_an_outage_backed_off_and_the_app_untouched(
    stack: Stack,
):
    """The daemon's first issuance: bind stops while certbot waits for propagation. The CA
    cannot read the TXT record, certbot's cleanup times out; the cycle fails as an outage (a
    retry on the backoff, not the full interval) and the app runs on, never stopped."""
    bed, app = dns_world(stack)
    started = started_at(stack, app)
    daemon = stack.sidecar("run", **dns_env(stack, bed, DNS_PROPAGATION="15", CHECK_INTERVAL="1h"))
    wait_for(
        "certbot waiting for propagation",
        lambda: "Waiting 15 seconds for DNS changes" in daemon.logs().decode(),
        timeout=180,
    )

    bed.stop()

    logs = wait_for(
        "the failure and its retry",
        lambda: "retry after 1 failure(s)" in (text := daemon.logs().decode()) and text,
        timeout=300,
        every=1,
    )
    errors = error_lines(str(logs))
    assert any("could not query the DNS server" in line for line in errors), logs
    assert "needs attention" not in str(logs)
    assert "stopping" not in str(logs)
    assert stack.state(app)["Running"]
    assert started_at(stack, app) == started
    assert not (stack.le_dir / "live" / ZONE).exists()
    assert stack.state(daemon)["Running"]


def test_an_adopted_dns_rfc2136_lineage_from_the_host_renews_as_it_is(stack: Stack):
    """certbot on the host made a wildcard lineage with dns-rfc2136; a standalone sidecar with
    another certificate renews both in one run: the host's by its own plugin and credentials
    (its conf keeps them), the sidecar's by stopping the app. The dry run passes too."""
    bed = start_dns(stack)
    stack.start_pebble(dns_server=bed.address)
    own = f"app.{ZONE}"  # the sidecar's certificate, by HTTP-01 (bind answers 127.0.0.1)
    stack.start_app(env={"CERT_NAME": own})
    code, out, _ = run_certbot(
        stack, "certonly", "--cert-name", ZONE, "-d", WILDCARD, "-d", ZONE, *bed.certbot_args()
    )
    assert code == 0, out
    host = disk_serial(stack.le_dir, ZONE)
    env = {"DOMAINS": own}

    code, logs = stack.sidecar_once("renew", "--dry-run", **env)
    assert code == 0, logs
    assert "dry run: ok" in logs

    code, logs = stack.sidecar_once("renew", "--force", **env)

    assert code == 0, logs
    assert disk_serial(stack.le_dir, ZONE) != host
    assert names(disk_cert(stack.le_dir, ZONE)) == {WILDCARD, ZONE}
    assert (stack.le_dir / "live" / own / "cert.pem").exists()
    conf = configobj.ConfigObj(str(stack.le_dir / "renewal" / f"{ZONE}.conf"))["renewalparams"]
    assert conf["authenticator"] == "dns-rfc2136"
    assert conf["dns_rfc2136_credentials"] == bed.credentials
    assert conf["dns_rfc2136_propagation_seconds"] == "0"
    assert f"{ZONE}: renewed its own way: authenticator dns-rfc2136" in logs
    code, out = stack.sidecar_once("status", "--json", **env)
    lineages = {d["lineage"]: d for d in json.loads(out[out.index("{") :])["lineages"]}
    assert lineages[ZONE]["action"] == "own"


def test_in_dns_mode_a_host_lineage_with_its_own_credentials_keeps_them(stack: Stack):
    """The sidecar in dns mode beside a host-made dns-rfc2136 lineage saved with another
    credentials file: a forced renewal renews each in its own run, the host's with its own
    file (no flag overwrites it in its conf), the sidecar's with DNS_CREDENTIALS."""
    bed = start_dns(stack)
    stack.start_pebble(dns_server=bed.address)
    own = f"app.{ZONE}"
    stack.start_app(env={"CERT_NAME": own})
    host_ini = bed.variant("host.ini")  # the same key, as another file (another zone's, say)
    code, out, _ = run_certbot(
        stack, "certonly", "--cert-name", ZONE, "-d", WILDCARD, *bed.certbot_args(host_ini)
    )
    assert code == 0, out
    host = disk_serial(stack.le_dir, ZONE)
    env = dns_env(stack, bed, DOMAINS=own, VERIFY="")
    code, logs = stack.sidecar_once("renew", **env)
    assert code == 0, logs
    mine = disk_serial(stack.le_dir, own)

    code, logs = stack.sidecar_once("renew", "--force", **env)

    assert code == 0, logs
    assert disk_serial(stack.le_dir, ZONE) != host
    assert disk_serial(stack.le_dir, own) != mine
    renewal = stack.le_dir / "renewal"
    theirs = configobj.ConfigObj(str(renewal / f"{ZONE}.conf"))["renewalparams"]
    assert theirs["dns_rfc2136_credentials"] == host_ini
    ours = configobj.ConfigObj(str(renewal / f"{own}.conf"))["renewalparams"]
    assert ours["dns_rfc2136_credentials"] == bed.credentials
    assert logs.count("--cert-name") == 2, logs


def test_the_dry_run_checks_the_plugin_its_credentials_and_a_txt_record(stack: Stack):
    """CHALLENGE=dns dry run: the plugin loads, the credentials are safe and taken, a TXT record
    is added and removed in bind, certbot's dry run validates; no stop, no port."""
    bed, app = dns_world(stack)
    started = started_at(stack, app)

    code, logs = stack.sidecar_once("renew", "--dry-run", **dns_env(stack, bed))

    assert code == 0, logs
    report = logs[logs.index("dry-run report:") :]
    for line in (
        "ok      plugin       dns-rfc2136 5.8.0 loads",
        f"ok      credentials  {bed.credentials} (mode 0600) is readable",
        f"ok      record       a TXT record at _acme-challenge.{ZONE} was added and removed",
        "skipped stop         not needed: DNS-01",
        "skipped port         not needed: DNS-01 binds no port",
        "ok      challenge",
    ):
        assert line in report, report
    assert bed.txt(f"_acme-challenge.{ZONE}") == []
    assert started_at(stack, app) == started


def test_a_plugin_not_in_the_image_or_open_credentials_stop_the_start(stack: Stack):
    """Configuration errors at start, exit 2, one line each: the extra to build with, the
    credentials file's mode; nothing touched."""
    bed, app = dns_world(stack)
    started = started_at(stack, app)

    code, logs = stack.sidecar_once("renew", **dns_env(stack, bed, DNS_PLUGIN="cloudflare"))

    assert code == 2, logs
    assert "--build-arg EXTRAS=dns-cloudflare" in logs
    assert len(logs.strip().splitlines()) == 1
    open_ini = bed.variant("open.ini", mode=0o644)
    code, logs = stack.sidecar_once("renew", **dns_env(stack, bed, DNS_CREDENTIALS=open_ini))
    assert code == 2, logs
    assert f"DNS_CREDENTIALS: '{open_ini}' is open to other users (mode 0644)" in logs
    assert bed.settings()["dns_rfc2136_secret"] not in logs
    assert not (stack.le_dir / "live").exists()
    assert started_at(stack, app) == started
