"""An IP-address certificate on real parts: 127.0.0.1 obtained from Pebble by HTTP-01 through
the sidecar's standalone challenge, renewed with the app stopped once, verified without SNI."""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509

from tests.e2e.harness import disk_cert, served_serial, wait_for

if TYPE_CHECKING:
    from tests.e2e.harness import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

IP = "127.0.0.1"


def events(logs: str) -> list[dict[str, Any]]:
    """The `extra` fields and message of every JSON log line."""
    records = [json.loads(line)["record"] for line in logs.splitlines()]
    return [{**r["extra"], "message": r["message"]} for r in records]


def verified(logs: str) -> list[tuple[str, str]]:
    return [(e["certificate"], e["outcome"]) for e in events(logs) if e.get("event") == "verify"]


def stops(logs: str, app: str) -> int:
    return sum(m.startswith(f"stopping {app} for") for m in (e["message"] for e in events(logs)))


def test_an_ip_address_certificate_is_issued_renewed_with_one_stop_and_verified(stack: Stack):
    """DOMAINS=127.0.0.1: certbot's lineage `127.0.0.1` with the address as its one IP SAN; a
    forced renewal stops the app once and the app serves the new certificate, which VERIFY
    (no SNI for an address) finds matching each time."""
    stack.start_pebble()
    app = stack.start_app(env={"CERT_NAME": IP})
    env = {
        "DOMAINS": IP,
        "VERIFY": f"{IP}:{stack.https_port}",
        "VERIFY_WAIT": "15s",  # a loaded machine may take seconds to serve TLS after the start
        "LOG_FORMAT": "json",
    }
    code, logs = stack.sidecar_once("renew", **env)
    assert code == 0, logs
    first = disk_cert(stack.le_dir, IP)
    san = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(IP)]
    assert san.get_values_for_type(x509.DNSName) == []
    assert verified(logs) == [(IP, "match")]

    code, logs = stack.sidecar_once("renew", "--force", **env)

    assert code == 0, logs
    second = disk_cert(stack.le_dir, IP)
    assert second.serial_number != first.serial_number
    assert stops(logs, app.name) == 1, logs
    assert verified(logs) == [(IP, "match")]
    assert stack.state(app)["Running"]
    served = lambda: served_serial(stack.https_port, IP) == second.serial_number  # noqa: E731
    assert wait_for("the renewed IP certificate served", served)
