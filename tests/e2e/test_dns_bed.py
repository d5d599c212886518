"""The DNS-01 test bed works end to end: certbot with certbot-dns-rfc2136 (in the sidecar image)
gets a wildcard certificate from Pebble through the bind9 bed, and renews it from its conf."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from cryptography import x509

from tests.e2e.dns import ZONE, run_certbot, start_dns
from tests.e2e.harness import disk_cert

if TYPE_CHECKING:
    from tests.e2e.harness import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _names(cert: x509.Certificate) -> set[str]:
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(sans.get_values_for_type(x509.DNSName))


def test_wildcard_certificate_from_pebble_through_bind_and_a_forced_renewal(stack: Stack):
    bed = start_dns(stack)
    stack.start_pebble(dns_server=bed.address)
    assert (bed.credentials_on_host.stat().st_mode & 0o777) == 0o600
    assert bed.settings()["dns_rfc2136_algorithm"] == "HMAC-SHA256"

    code, out, _ = run_certbot(
        stack, "certonly", "--cert-name", ZONE, "-d", f"*.{ZONE}", "-d", ZONE, *bed.certbot_args()
    )

    assert code == 0, out
    first = disk_cert(stack.le_dir, ZONE)
    assert _names(first) == {f"*.{ZONE}", ZONE}
    assert "Pebble" in first.issuer.rfc4514_string()
    assert "Unsafe permissions" not in out
    conf = (stack.le_dir / "renewal" / f"{ZONE}.conf").read_text()
    assert "authenticator = dns-rfc2136" in conf
    assert f"dns_rfc2136_credentials = {bed.credentials}" in conf
    assert "dns_rfc2136_propagation_seconds = 0" in conf
    assert bed.txt(f"_acme-challenge.{ZONE}") == [], "certbot's cleanup left a TXT record"

    code, out, _ = run_certbot(stack, "renew", "--force-renewal", "--no-random-sleep-on-renew")

    assert code == 0, out
    second = disk_cert(stack.le_dir, ZONE)
    assert second.serial_number != first.serial_number
    assert _names(second) == {f"*.{ZONE}", ZONE}
