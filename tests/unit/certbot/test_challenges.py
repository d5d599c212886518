"""The challenge kinds: certbot's flags for each, and whether the app must stop."""

from __future__ import annotations

from sidecar.certbot.challenges import challenge_for
from tests.unit.helpers import dns_settings, make_settings, value_after


def test_standalone_stops_the_app_and_uses_the_sidecar_plugin(tmp_path):
    """The default: the sidecar's own authenticator, the app stopped for the challenge."""
    challenge = challenge_for(make_settings(tmp_path))
    assert (challenge.name, challenge.stops_app, challenge.authenticator) == (
        "standalone",
        True,
        "sidecar",
    )


def test_dns_uses_the_plugin_with_its_credentials_and_never_stops_the_app(tmp_path):
    """CHALLENGE=dns: `--authenticator dns-NAME --dns-NAME-credentials FILE`, no stop."""
    config = dns_settings(tmp_path / "le")
    challenge = challenge_for(config)
    assert challenge.name == "dns"
    assert not challenge.stops_app
    assert challenge.args == (
        "--authenticator",
        "dns-rfc2136",
        "--dns-rfc2136-credentials",
        str(tmp_path / "rfc2136.ini"),
    )
    assert "dns-rfc2136" in challenge.answered


def test_dns_propagation_is_passed_in_whole_seconds_only_when_set(tmp_path):
    """DNS_PROPAGATION unset leaves the plugin's own default; set, it is the plugin's flag."""
    args = challenge_for(dns_settings(tmp_path / "le", DNS_PROPAGATION="1.6")).args
    assert value_after(list(args), "--dns-rfc2136-propagation-seconds") == "2"
    unset = challenge_for(dns_settings(tmp_path / "le")).args
    assert "--dns-rfc2136-propagation-seconds" not in unset
