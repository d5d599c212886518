"""The challenge kinds: certbot's flags for each, and whether the app must stop."""

from __future__ import annotations

from sidecar.certbot.challenges import AWS_CREDENTIALS_ENV, Dns, Standalone
from tests.unit.helpers import dns_settings, make_settings, value_after


def test_standalone_stops_the_app_and_uses_the_sidecar_plugin(tmp_path):
    """The default: the sidecar's own authenticator, the app stopped for the challenge."""
    challenge = make_settings(tmp_path).challenge
    assert isinstance(challenge, Standalone)
    assert (challenge.stops_app, challenge.authenticator, challenge.options()) == (
        True,
        "sidecar",
        (),
    )


def test_dns_uses_the_plugin_with_its_credentials_and_never_stops_the_app(tmp_path):
    """CHALLENGE=dns: `--authenticator dns-NAME --dns-NAME-credentials FILE`, no stop."""
    config = dns_settings(tmp_path / "le")
    challenge = config.challenge
    assert isinstance(challenge, Dns)
    assert not challenge.stops_app
    assert not challenge.http01
    assert challenge.authenticator == "dns-rfc2136"
    assert challenge.options() == ("--dns-rfc2136-credentials", str(tmp_path / "rfc2136.ini"))
    assert "dns-rfc2136" in challenge.answered


def test_dns_propagation_is_passed_in_whole_seconds_only_when_set(tmp_path):
    """DNS_PROPAGATION unset leaves the plugin's own default; set, it is the plugin's flag."""
    args = dns_settings(tmp_path / "le", DNS_PROPAGATION="1.6").challenge.options()
    assert value_after(list(args), "--dns-rfc2136-propagation-seconds") == "2"
    unset = dns_settings(tmp_path / "le").challenge.options()
    assert "--dns-rfc2136-propagation-seconds" not in unset


def test_route53_reads_its_credentials_file_from_the_environment_not_a_flag(tmp_path):
    """AWS's shared credentials file: no `--dns-route53-credentials`, AWS_SHARED_CREDENTIALS_FILE
    in certbot's environment; route53 takes no propagation time."""
    route53 = Dns("route53", tmp_path / "aws.ini", propagation=None)
    assert route53.options() == ()
    assert route53.options(propagation=0) == ()
    assert route53.env() == {AWS_CREDENTIALS_ENV: str(tmp_path / "aws.ini")}
    assert Dns("rfc2136", tmp_path / "x.ini").env() == {}
