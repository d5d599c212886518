"""Settings of the names' pre-flight: CHECK_NAMES, CAA_IDENTITIES, DNS_RESOLVER."""

from __future__ import annotations

from sidecar import loader
from sidecar.cycle.names import NamesSpec
from tests.unit.helpers import SETTINGS_BASE, load_error


def test_the_names_check_is_on_by_default_with_the_system_resolver() -> None:
    """No variable: checked, identities from the CA's directory, the system's resolver."""
    assert loader.load(dict(SETTINGS_BASE)).cycle.names == NamesSpec()


def test_the_three_variables_make_the_names_view() -> None:
    """CHECK_NAMES=false, CAA_IDENTITIES a list of domains, DNS_RESOLVER addresses with ports."""
    env = {
        **SETTINGS_BASE,
        "CHECK_NAMES": "false",
        "CAA_IDENTITIES": "LetsEncrypt.org, pebble.example",
        "DNS_RESOLVER": "127.0.0.1:5353,[::1]:53,10.0.0.2",
    }
    names = loader.load(env).cycle.names
    assert not names.on
    assert names.identities == ("letsencrypt.org", "pebble.example")
    assert names.resolvers == (("127.0.0.1", 5353), ("::1", 53), ("10.0.0.2", 53))


def test_a_resolver_that_is_no_address_is_refused_naming_the_variable() -> None:
    """DNS_RESOLVER=dns.example: one line naming the variable and the rule."""
    line = load_error(DNS_RESOLVER="dns.example")
    assert "DNS_RESOLVER" in line
    assert "not an IP address" in line


def test_a_caa_identity_that_is_no_domain_is_refused() -> None:
    """CAA_IDENTITIES with a space inside a name: refused, naming the variable."""
    line = load_error(CAA_IDENTITIES="lets encrypt.org")
    assert "CAA_IDENTITIES" in line
    assert "not a domain name" in line
