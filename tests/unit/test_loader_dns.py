"""Settings for DNS-01: CHALLENGE=dns, DNS_PLUGIN, DNS_CREDENTIALS, DNS_PROPAGATION, wildcards."""

from __future__ import annotations

import pytest

from sidecar import loader
from sidecar.certbot.challenges import DNS_PLUGINS, Dns, dns_plugin_problem
from sidecar.volume.specs import CertSpec, parse_domains
from tests.unit.helpers import SETTINGS_BASE, load_error, read

SECRET = "dGhlLXRzaWctc2VjcmV0LW5vdC10by1iZS1sb2dnZWQ="


@pytest.fixture
def ini(tmp_path):
    path = tmp_path / "rfc2136.ini"
    path.write_text(f"dns_rfc2136_server = 127.0.0.1\ndns_rfc2136_secret = {SECRET}\n")
    path.chmod(0o600)
    return path


def dns(ini, **env: str) -> loader.Settings:
    return read(**{"CHALLENGE": "dns", "DNS_PLUGIN": "rfc2136", "DNS_CREDENTIALS": str(ini), **env})


def test_dns_challenge_takes_a_plugin_its_credentials_and_a_propagation_time(ini):
    """CHALLENGE=dns, DNS_PLUGIN (certbot's name `dns-rfc2136`), the file, seconds."""
    config = dns(ini, DNS_PROPAGATION="2m")
    assert (config.challenge, config.dns_plugin) == ("dns", "rfc2136")
    assert config.dns_credentials == ini
    assert config.dns_propagation == 120.0
    assert dns(ini).dns_propagation is None  # the plugin's own default
    env = {"CHALLENGE": "dns", "DNS_PLUGIN": "rfc2136", "DNS_CREDENTIALS": str(ini)}
    challenge = loader.load({**SETTINGS_BASE, **env}).challenge
    assert challenge == Dns("rfc2136", ini.absolute(), None)
    assert challenge.authenticator == "dns-rfc2136"


@pytest.mark.parametrize("name", ["dns-rfc2136", "certbot-dns-rfc2136", " RFC2136 "])
def test_plugin_is_named_like_the_extra_the_package_or_bare(ini, name):
    """`rfc2136`, `dns-rfc2136` and `certbot-dns-rfc2136` name the same plugin."""
    assert dns(ini, DNS_PLUGIN=name).dns_plugin == "rfc2136"


def test_wildcards_are_allowed_with_dns_and_the_lineage_is_named_without_the_star(ini):
    """`*.example.com,example.com` is lineage `example.com`, as certbot names it by default."""
    config = dns(ini, DOMAINS="*.example.com,example.com;shop.example.org")
    assert config.domains == (
        CertSpec("example.com", ("*.example.com", "example.com")),
        CertSpec("shop.example.org", ("shop.example.org",)),
    )
    assert config.domains[0].wildcards == ("*.example.com",)


def test_two_certificates_that_would_share_a_lineage_name_are_rejected():
    """`*.a.com;a.com` would both be lineage a.com: the error says to list them in one."""
    with pytest.raises(ValueError, match=r"would both be lineage a.com; list them in one"):
        parse_domains("*.a.com;a.com")


def test_a_name_the_wildcard_covers_is_rejected_as_the_ca_does():
    """`*.a.com,www.a.com`: the CA refuses the order; the apex and deeper names are fine."""
    with pytest.raises(ValueError, match=r"'www.a.com' is covered by '\*.a.com'"):
        parse_domains("*.a.com,www.a.com")
    assert parse_domains("*.a.com,a.com,x.y.a.com")[0].domains == ("*.a.com", "a.com", "x.y.a.com")


def test_dns_needs_a_plugin_and_lists_them():
    """CHALLENGE=dns without DNS_PLUGIN: the error lists certbot's DNS plugins."""
    message = load_error(CHALLENGE="dns")
    assert "DNS_PLUGIN is required with CHALLENGE=dns" in message
    assert "cloudflare" in message
    assert "route53" in message


def test_a_plugin_not_built_into_the_image_names_the_extra(ini):
    """certbot-dns-cloudflare is not installed here: build with EXTRAS=dns-cloudflare."""
    message = load_error(CHALLENGE="dns", DNS_PLUGIN="cloudflare", DNS_CREDENTIALS=str(ini))
    assert "DNS_PLUGIN: the dns-cloudflare plugin is not in this image" in message
    assert "--build-arg EXTRAS=dns-cloudflare" in message


def test_an_unknown_plugin_is_a_configuration_error(ini):
    """A name that is none of certbot's plugins, and not installed, is refused at start."""
    message = load_error(CHALLENGE="dns", DNS_PLUGIN="nosuchdns", DNS_CREDENTIALS=str(ini))
    assert "dns-nosuchdns is none of certbot's DNS plugins" in message


def test_another_installed_dns_plugin_is_accepted():
    """A third-party `dns-NAME` plugin installed in a derived image is used as it is."""
    assert dns_plugin_problem("hetzner", {"dns-hetzner"}) is None
    assert "not installed in this image" in (dns_plugin_problem("hetzner", set()) or "")


def test_dns_plugin_without_the_dns_challenge_is_refused(ini):
    """DNS_PLUGIN set but CHALLENGE left at standalone: said, not silently ignored."""
    assert "DNS_PLUGIN: set CHALLENGE=dns" in load_error(DNS_PLUGIN="rfc2136")


def test_credentials_are_required_by_plugins_that_read_a_file():
    """rfc2136 reads its server and key from a file: DNS_CREDENTIALS must name it."""
    message = load_error(CHALLENGE="dns", DNS_PLUGIN="rfc2136")
    assert "DNS_CREDENTIALS is required with DNS_PLUGIN=rfc2136" in message


def test_credentials_readable_by_others_are_refused_without_showing_them(ini):
    """Mode 0644: refused with the mode and the fix; the secret never appears."""
    ini.chmod(0o644)
    message = load_error(CHALLENGE="dns", DNS_PLUGIN="rfc2136", DNS_CREDENTIALS=str(ini))
    assert f"DNS_CREDENTIALS: '{ini}' is open to other users (mode 0644)" in message
    assert "chmod 600" in message
    assert SECRET not in message
    ini.chmod(0o640)  # group bits are the operator's (certbot checks only others' too)
    assert dns(ini).dns_credentials == ini


def test_missing_credentials_file_is_one_clear_line(tmp_path):
    """A path that is not there: named, nothing else."""
    missing = tmp_path / "missing.ini"
    message = load_error(CHALLENGE="dns", DNS_PLUGIN="rfc2136", DNS_CREDENTIALS=str(missing))
    assert f"DNS_CREDENTIALS: '{missing}' is not a readable file" in message


def test_propagation_must_be_a_duration(ini):
    """DNS_PROPAGATION takes the usual durations; anything else is refused."""
    assert "DNS_PROPAGATION" in load_error(
        CHALLENGE="dns", DNS_PLUGIN="rfc2136", DNS_CREDENTIALS=str(ini), DNS_PROPAGATION="-5"
    )


def test_route53_reads_aws_credentials_and_takes_no_propagation_time(ini, monkeypatch):
    """route53: the file is AWS's shared credentials file (its environment); no propagation."""
    monkeypatch.setattr(loader, "installed_plugins", lambda: frozenset({"dns-route53"}))
    route53 = {**SETTINGS_BASE, "CHALLENGE": "dns", "DNS_PLUGIN": "route53"}
    config = loader.load({**route53, "DNS_CREDENTIALS": str(ini)})
    assert config.challenge.env() == {"AWS_SHARED_CREDENTIALS_FILE": str(ini.absolute())}
    assert loader.load(route53).challenge.env() == {}  # the role or AWS_* variables
    message = load_error(CHALLENGE="dns", DNS_PLUGIN="route53", DNS_PROPAGATION="30")
    assert "DNS_PROPAGATION: the route53 plugin waits for the change itself" in message


def test_the_plugin_table_has_certbots_thirteen_dns_plugins():
    """Every certbot-dns-* plugin of certbot's release train, with what it takes."""
    assert len(DNS_PLUGINS) == 13
    assert DNS_PLUGINS["google"].credentials == "optional"
    assert [n for n, p in DNS_PLUGINS.items() if not p.propagation] == ["route53"]


def test_empty_dns_variables_are_unset():
    """Compose passes `DNS_PLUGIN: ""` for an unset default: the same as leaving them out."""
    config = read(DNS_PLUGIN="", DNS_CREDENTIALS=" ", DNS_PROPAGATION="")
    assert (config.dns_plugin, config.dns_credentials, config.dns_propagation) == (None,) * 3
