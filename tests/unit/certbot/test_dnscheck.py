"""The dry run's DNS plugin check, with the real certbot and certbot-dns-rfc2136 (the record
itself is added and removed against a real bind9 in tests/e2e/test_dns.py)."""

from __future__ import annotations

import pytest

from sidecar.certbot.challenges import Dns
from sidecar.certbot.dnscheck import DnsPluginCheck
from sidecar.errors import ConfigError
from tests.unit.helpers import dns_settings


@pytest.fixture
def check(tmp_path):
    flags = dns_settings(tmp_path / "le").flags
    assert isinstance(flags.challenge, Dns)
    return DnsPluginCheck(flags.challenge, flags)


def test_the_plugin_loads_the_way_certbot_loads_it(check):
    """certbot's registry finds dns-rfc2136 and sets it up; its version is named."""
    assert check.load() == "dns-rfc2136 5.8.0 loads"


def test_credentials_the_plugin_refuses_are_one_line_naming_the_missing_key(check):
    """An ini without the TSIG secret: the plugin's own reason, on one line."""
    check.load()
    with pytest.raises(ConfigError, match=r"dns-rfc2136 refuses .*dns_rfc2136_secret"):
        check.credentials()


def test_complete_credentials_are_accepted_with_their_mode(check, tmp_path):
    """Server, key name, secret and algorithm: readable, mode 0600, taken by the plugin."""
    ini = tmp_path / "rfc2136.ini"
    ini.write_text(
        ini.read_text() + "dns_rfc2136_secret = c2VjcmV0\ndns_rfc2136_algorithm = HMAC-SHA256\n"
    )
    check.load()
    assert check.credentials() == (
        f"{ini} (mode 0600) is readable, by no other user, and dns-rfc2136 takes it"
    )


def test_credentials_opened_to_others_after_the_start_fail_the_step(check, tmp_path):
    """Settings refused such a file at start; the dry run checks again, now."""
    (tmp_path / "rfc2136.ini").chmod(0o604)
    check.load()
    with pytest.raises(ConfigError, match=r"open to other users \(mode 0604\)"):
        check.credentials()
