"""IP-address certificates: DOMAINS with IPv4 and IPv6 addresses, the rules they follow
(HTTP-01 only; `shortlived` at Let's Encrypt), certbot's flags, what is read and probed."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sidecar.certbot.argv import Flags, certonly
from sidecar.certbot.challenges import Standalone
from sidecar.cycle.verify import sni
from sidecar.volume.ca import AcmeCA, is_letsencrypt
from sidecar.volume.certs import parse_cert
from sidecar.volume.paths import Paths
from sidecar.volume.specs import CertSpec, is_ip, parse_domains
from tests.unit.helpers import T0, load, load_error

PEBBLE = "https://localhost:14000/dir"
RULES = (
    "is an IP address: the CA validates it by HTTP-01 only (CHALLENGE=standalone or webroot, "
    "not dns), and Let's Encrypt issues it only with ACME_PROFILE=shortlived"
)


def test_ipv4_and_ipv6_addresses_are_certificates_alone_or_beside_names():
    """Addresses are kept in certbot's form (IPv6 compressed, lower case); an IP-only
    certificate is named after its first address, a mixed one after its first domain name,
    as certbot names them."""
    specs = parse_domains("203.0.113.7;2001:DB8:0::7,203.0.113.8;203.0.113.9,app.example.com")
    assert specs == (
        CertSpec("203.0.113.7", ("203.0.113.7",)),
        CertSpec("2001:db8::7", ("2001:db8::7", "203.0.113.8")),
        CertSpec("app.example.com", ("203.0.113.9", "app.example.com")),
    )
    assert specs[2].ip_addresses == ("203.0.113.9",)
    assert [is_ip(n) for n in ("127.0.0.1", "::1", "a.example", "1.2.3")] == [1, 1, 0, 0]


@pytest.mark.parametrize("challenge", ["standalone", "webroot"])
def test_ip_addresses_are_accepted_with_http01_at_any_ca_but_lets_encrypt(challenge):
    """standalone and webroot validate an address by HTTP-01; another CA sets its own rules."""
    config = load(DOMAINS="127.0.0.1,::1", ACME_SERVER=PEBBLE, CHALLENGE=challenge)
    assert config.domains.specs[0].ip_addresses == ("127.0.0.1", "::1")


def test_ip_addresses_are_refused_with_dns_in_one_line_naming_both_rules(tmp_path: Path):
    """DNS-01 cannot validate an address: one line names the variable and both rules."""
    ini = tmp_path / "rfc2136.ini"
    ini.write_text("dns_rfc2136_server = 127.0.0.1\n")
    ini.chmod(0o600)
    dns = {"CHALLENGE": "dns", "DNS_PLUGIN": "rfc2136", "DNS_CREDENTIALS": str(ini)}
    error = load_error(DOMAINS="a.example.com,203.0.113.7", ACME_SERVER=PEBBLE, **dns)
    assert f"DOMAINS: '203.0.113.7' {RULES} (CHALLENGE=dns, ACME_PROFILE=unset)" in error
    assert "\n" not in error


@pytest.mark.parametrize("server", ["letsencrypt", "letsencrypt-staging"])
def test_lets_encrypt_takes_ip_addresses_with_the_shortlived_profile_only(server):
    """At Let's Encrypt's directories an address needs ACME_PROFILE=shortlived."""
    assert RULES in load_error(DOMAINS="203.0.113.7", ACME_SERVER=server)
    assert RULES in load_error(DOMAINS="203.0.113.7", ACME_SERVER=server, ACME_PROFILE="classic")
    config = load(DOMAINS="203.0.113.7", ACME_SERVER=server, ACME_PROFILE="shortlived")
    assert config.ca.profile == "shortlived"
    assert is_letsencrypt(config.ca.directory)
    assert not is_letsencrypt(PEBBLE)


def test_certonly_names_addresses_with_ip_address_and_domains_with_d():
    """certbot's flags: `--ip-address` for each address, `-d` for each domain name."""
    flags = Flags(Paths(Path("/le")), AcmeCA(PEBBLE), Standalone())
    spec = parse_domains("2001:db8::7,a.example.com")[0]
    argv = certonly(flags, spec).argv()
    assert argv[argv.index("--cert-name") + 1] == "a.example.com"
    head = argv[: argv.index("--keep-until-expiring")]
    assert head[-4:] == ["--ip-address", "2001:db8::7", "-d", "a.example.com"]


def test_a_certificates_ip_addresses_are_among_its_names():
    """IP SANs are read as names, in certbot's form: the plan compares them with DOMAINS."""
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("a.example.com"), x509.IPAddress(ipaddress.ip_address("2001:db8::7"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name.from_rfc4514_string("CN=Test CA"))
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(T0)
        .not_valid_after(T0 + timedelta(days=6))
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .sign(key, hashes.SHA256())
    )
    info = parse_cert(cert.public_bytes(serialization.Encoding.PEM))
    assert info.names == ("a.example.com", "2001:db8::7")


def test_an_ip_certificate_is_probed_without_sni():
    """VERIFY sends no SNI for an address (RFC 6066: host names only), a name for a name."""
    assert sni("127.0.0.1") is None
    assert sni("2001:db8::7") is None
    assert sni("a.example.com") == "a.example.com"
