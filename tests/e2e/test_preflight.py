"""The pre-flight before every stop, on the real parts: bind9 (config/dns) as the resolver of the
sidecar and of Pebble, with CAA records and names without a record; a nearly full tmpfs as the
volume. What the pre-flight refuses is neither stopped for nor ordered; the rest goes on."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

import docker.errors
import pytest

from tests.e2e.dns import start_dns
from tests.e2e.harness import SIDECAR_IMAGE, SOCKET, disk_serial

if TYPE_CHECKING:
    from docker.models.containers import Container

    from tests.e2e.dns import DnsBed
    from tests.e2e.harness import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ZONE = "example.test"
GOOD, OTHER = f"good.{ZONE}", f"other.{ZONE}"
CA = "pebble.example"  # the CA's CAA identity (Pebble publishes none: CAA_IDENTITIES)


def _bed(stack: Stack, *records: str) -> DnsBed:
    """bind9 authoritative for example.test: good and other have A records, no wildcard."""
    lines = ("good IN A 127.0.0.1", "other IN A 127.0.0.1", *records)
    bed = start_dns(stack, DNS_WILDCARD="0", DNS_RECORDS="|".join(lines))
    stack.start_pebble(dns_server=bed.address)
    return bed


def _checked(bed: DnsBed, domains: str) -> dict[str, str]:
    """The sidecar's settings with the check on, through the bed."""
    return {
        "DOMAINS": domains,
        "CHECK_NAMES": "true",
        "DNS_RESOLVER": bed.address,
        "CAA_IDENTITIES": CA,
    }


def _status(stack: Stack, bed: DnsBed) -> dict[str, Any]:
    """`sidecar status --json`, parsed."""
    code, out = stack.sidecar_once("status", "--json", **_checked(bed, GOOD))
    assert code == 0, out
    found, _ = json.JSONDecoder().raw_decode(out[out.index('{\n  "certificates"') :])
    return dict(found)


def _started(stack: Stack, app: Container) -> str:
    return str(stack.state(app)["StartedAt"])


def _pebble_log(stack: Stack) -> str:
    pebble = next(c for c in stack.containers if c.name.startswith("cbs-pebble"))
    return str(pebble.logs().decode(errors="replace"))


def test_a_lineage_whose_caa_allows_another_ca_is_not_ordered_and_the_good_one_is(stack: Stack):
    """good renewed with one stop; other reported with its CAA record, never ordered."""
    bed = _bed(stack, 'other IN CAA 0 issue "other-ca.example"')
    app = stack.start_app(env={"CERT_NAME": GOOD})

    code, logs = stack.sidecar_once("renew", **_checked(bed, f"{GOOD};{OTHER}"))

    assert code != 0, logs
    assert disk_serial(stack.le_dir, GOOD)
    assert not (stack.le_dir / "live" / OTHER).exists()
    assert logs.count(f"stopping {app.name} for") == 1, logs
    record = f'{OTHER} CAA 0 issue "other-ca.example"'
    assert f"{OTHER}: not renewed: CAA forbids {OTHER} at this CA: {record}" in logs
    pebble = _pebble_log(stack)
    assert GOOD in pebble, "Pebble's log names no identifier: the next check would prove nothing"
    assert OTHER not in pebble
    assert stack.state(app)["Running"]
    status = _status(stack, bed)
    assert status["preflight"][OTHER]["ok"] is False
    assert status["preflight"][GOOD]["ok"] is True


def test_a_name_without_a_record_stops_nothing(stack: Stack):
    """missing.example.test has no record: refused before certbot starts; the app untouched."""
    bed = _bed(stack)
    app = stack.start_app(env={"CERT_NAME": GOOD})
    before = _started(stack, app)

    code, logs = stack.sidecar_once("renew", **_checked(bed, f"missing.{ZONE}"))

    assert code != 0, logs
    assert f"missing.{ZONE} does not resolve (no A or AAAA record)" in logs
    assert f"stopping {app.name}" not in logs
    assert _started(stack, app) == before
    assert f"missing.{ZONE}" not in _pebble_log(stack)


def test_caa_for_another_account_is_refused_before_the_stop(stack: Stack):
    """good is issued (the account exists); other's CAA names another account URI: refused,
    the app not stopped for it."""
    bed = _bed(stack, f'other IN CAA 0 issue "{CA}; accounturi=https://localhost/my-account/999"')
    app = stack.start_app(env={"CERT_NAME": GOOD})
    code, logs = stack.sidecar_once("renew", **_checked(bed, GOOD))
    assert code == 0, logs
    before = _started(stack, app)

    code, logs = stack.sidecar_once("renew", **_checked(bed, f"{GOOD};{OTHER}"))

    assert code != 0, logs
    assert "allows only the account https://localhost/my-account/999" in logs
    assert f"stopping {app.name}" not in logs
    assert _started(stack, app) == before
    assert OTHER not in _pebble_log(stack)


def test_a_nearly_full_volume_stops_nothing_and_orders_nothing(stack: Stack):
    """/etc/letsencrypt on a 1 MiB tmpfs with 64 KiB left: one line naming it; no order."""
    stack.start_pebble()
    app = stack.start_app()
    before = _started(stack, app)
    volume = stack.client.volumes.create(
        f"cbs-full-{stack.uid}",
        driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"},
        labels={"certbot-sidecar.test": stack.uid},
    )
    try:
        code, logs = _full_sidecar(stack, volume.name)
    finally:
        with contextlib.suppress(docker.errors.APIError):
            volume.remove(force=True)

    assert code != 0, logs
    line = next(x for x in logs.splitlines() if "not renewing: /etc/letsencrypt has" in x)
    assert "free, less than the 2.0 MiB" in line
    assert f"stopping {app.name}" not in logs
    assert "obtaining a certificate" not in logs
    assert _started(stack, app) == before
    assert stack.state(app)["Running"]
    assert stack.domain not in _pebble_log(stack)


def _full_sidecar(stack: Stack, volume: str) -> tuple[int, str]:
    """Fill the tmpfs to 64 KiB free, then run `sidecar renew` on it."""
    fill = "head -c $(( $(stat -f -c '%a*%S' /etc/letsencrypt) - 65536 )) /dev/zero >"
    fill += " /etc/letsencrypt/fill"
    mount = {volume: {"bind": "/etc/letsencrypt", "mode": "rw"}}
    filler = stack._run(SIDECAR_IMAGE, "filler", entrypoint=["sh", "-c", fill], volumes=mount)
    assert filler.wait(timeout=60)["StatusCode"] == 0, filler.logs()
    stack.forget_authorizations()
    sidecar = stack._run(
        SIDECAR_IMAGE,
        "sidecar-full",
        command=["renew"],
        network_mode="host",
        environment=stack.sidecar_env(),
        volumes={
            **mount,
            str(stack.ca_dir): {"bind": "/pebble-ca", "mode": "ro"},
            SOCKET: {"bind": SOCKET, "mode": "rw"},
        },
    )
    code = sidecar.wait(timeout=120)["StatusCode"]
    logs = sidecar.logs().decode(errors="replace")
    for container in (filler, sidecar):  # before the volume is removed
        container.remove(force=True)
    return code, logs


def _dns_env(bed: DnsBed) -> dict[str, str]:
    """CHALLENGE=dns for the wildcard and the apex, through the bed, the check on."""
    return {
        **_checked(bed, f"*.{ZONE},{ZONE}"),
        "CHALLENGE": "dns",
        "DNS_PLUGIN": "rfc2136",
        "DNS_CREDENTIALS": bed.credentials,
        "DNS_PROPAGATION": "0",
        "RELOAD_SIGNAL": "SIGHUP",
    }


def test_with_dns_01_caa_allowing_the_ca_and_the_challenge_zone_pass(stack: Stack):
    """CHALLENGE=dns: no address needed for the wildcard; CAA for the CA; the zone answers."""
    bed = _bed(stack, f'@ IN CAA 0 issue "{CA}"')
    app = stack.start_app(env={"CERT_NAME": ZONE})
    before = _started(stack, app)

    code, logs = stack.sidecar_once("renew", **_dns_env(bed))

    assert code == 0, logs
    assert _started(stack, app) == before
    assert disk_serial(stack.le_dir, ZONE)
    assert "not renewed" not in logs


def test_with_dns_01_an_issuewild_for_http_01_only_refuses_the_wildcard(stack: Stack):
    """`issuewild "pebble.example; validationmethods=http-01"`: the wildcard by DNS-01 is
    refused, the lineage not ordered."""
    wild = f'@ IN CAA 0 issuewild "{CA}; validationmethods=http-01"'
    bed = _bed(stack, f'@ IN CAA 0 issue "{CA}"', wild)
    stack.start_app(env={"CERT_NAME": ZONE})

    code, logs = stack.sidecar_once("renew", **_dns_env(bed))

    assert code != 0, logs
    assert "allows only http-01, not dns-01" in logs
    assert f"CAA forbids *.{ZONE} at this CA" in logs
    assert not (stack.le_dir / "live" / ZONE).exists()
    assert f"*.{ZONE}" not in _pebble_log(stack)


def test_the_dry_run_names_step_reports_the_caa_record_and_stops_nothing(stack: Stack):
    """`renew --dry-run`: `names` FAILED with the lineage and its record; the cycle is not run."""
    bed = _bed(stack, 'other IN CAA 0 issue "other-ca.example"')
    app = stack.start_app(env={"CERT_NAME": GOOD})
    before = _started(stack, app)

    code, logs = stack.sidecar_once("renew", "--dry-run", **_checked(bed, f"{GOOD};{OTHER}"))

    assert code != 0, logs
    report = logs[logs.index("dry-run report:") :]
    names = next(line.split() for line in report.splitlines() if " names " in line)
    assert names[:4] == ["FAILED", "names", f"{OTHER}:", "not"], report
    assert 'CAA 0 issue "other-ca.example" allows only other-ca.example' in report
    assert next(line.split()[:2] for line in report.splitlines() if " challenge " in line) == [
        "skipped",
        "challenge",
    ]
    assert _started(stack, app) == before
