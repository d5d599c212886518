"""Adopting lineages that use a DNS plugin, and lineages under a sidecar with CHALLENGE=dns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sidecar.volume.adopt import decide
from sidecar.volume.tree import here_for
from tests.unit.helpers import dns_settings, make_settings
from tests.unit.volume.test_adopt import PEBBLE, edits, found, here, sidecar_params

if TYPE_CHECKING:
    from sidecar.volume.found import Here

CREDS = "/etc/letsencrypt/cloudflare.ini"  # inside the tree: here() says it exists
DNS_HERE = {"plugins": here().plugins | {"dns-cloudflare", "dns-rfc2136"}}


def cloudflare(**params: Any) -> dict[str, Any]:
    """What `certbot certonly --dns-cloudflare` on the host saves."""
    saved = {
        "authenticator": "dns-cloudflare",
        "dns_cloudflare_credentials": CREDS,
        "dns_cloudflare_propagation_seconds": "30",
        "post_hook": None,
    }
    return sidecar_params(**{**saved, **params})


def dns_mode(**changes: Any) -> Here:
    """A sidecar with CHALLENGE=dns, DNS_PLUGIN=rfc2136."""
    mode = {"authenticator": "dns-rfc2136", "credentials": "/run/secrets/rfc2136", **DNS_HERE}
    return here(**{**mode, **changes})


def test_dns_lineage_keeps_its_plugin_and_credentials_when_both_are_here():
    """Plugin installed, credentials file reachable: renewed its own way, its options kept."""
    lineage = found(params=cloudflare(), names=("a.example", "*.a.example"))
    decision = decide(lineage, here(**DNS_HERE))
    assert decision.action == "own"
    assert decision.authenticator == "dns-cloudflare"
    assert not {"authenticator", "dns_cloudflare_credentials"} & set(edits(decision))


def test_dns_lineage_without_its_plugin_names_the_extra_to_build():
    """dns-cloudflare not in the image: the finding says EXTRAS=dns-cloudflare."""
    lineage = found(params=cloudflare(), names=("a.example", "*.a.example"))
    decision = decide(lineage, here())
    assert decision.action == "cannot"
    assert "--build-arg EXTRAS=dns-cloudflare" in decision.does
    assert "CHALLENGE=dns" in decision.does


def test_dns_lineage_whose_credentials_are_not_mounted_names_the_path():
    """The saved credentials file is missing here: the finding says where to mount it."""
    params = cloudflare(dns_cloudflare_credentials="/root/.secrets/cloudflare.ini")
    lineage = found(params=params, names=("a.example", "*.a.example"))
    decision = decide(lineage, here(**DNS_HERE))
    assert decision.action == "cannot"
    assert "/root/.secrets/cloudflare.ini is not in the container" in decision.does
    assert "mount it at /root/.secrets/cloudflare.ini" in decision.does


def test_with_challenge_dns_a_lineage_that_cannot_renew_its_way_moves_to_the_sidecars_plugin():
    """A wildcard whose plugin is missing: the sidecar's plugin and DNS_CREDENTIALS instead."""
    lineage = found(params=cloudflare(), names=("a.example", "*.a.example"))
    decision = decide(lineage, dns_mode(plugins=here().plugins | {"dns-rfc2136"}))
    changed = edits(decision)
    assert decision.action == "sidecar"
    assert changed["authenticator"] == "dns-rfc2136"
    assert changed["dns_rfc2136_credentials"] == "/run/secrets/rfc2136"
    assert changed["dns_cloudflare_credentials"] is None
    assert "EXTRAS=dns-cloudflare" in " ".join(decision.changes)
    assert "no stop" in decision.does


def test_the_sidecars_own_dns_lineage_is_renewed_the_sidecars_way_unchanged():
    """Made by the sidecar in dns mode (same plugin, same credentials): nothing to rewrite."""
    params = sidecar_params(
        authenticator="dns-rfc2136", dns_rfc2136_credentials="/run/secrets/rfc2136"
    )
    decision = decide(found(params=params), dns_mode(existing={"/run/secrets/rfc2136"}))
    assert decision.action == "sidecar"
    assert decision.edits == ()


def test_a_dns_lineage_outside_domains_with_other_credentials_keeps_them():
    """Same plugin, another credentials file (another zone's key), not in DOMAINS: kept."""
    params = sidecar_params(authenticator="dns-rfc2136", dns_rfc2136_credentials=CREDS)
    decision = decide(found("other.example", params=params), dns_mode())
    assert decision.action == "own"
    assert "dns_rfc2136_credentials" not in edits(decision)
    assert decision.server == PEBBLE


def test_a_dns_lineage_in_domains_follows_dns_credentials():
    """In DOMAINS with the sidecar's plugin: renewed with its flags (a rotated key file)."""
    params = sidecar_params(authenticator="dns-rfc2136", dns_rfc2136_credentials=CREDS)
    decision = decide(found(params=params), dns_mode())
    assert decision.action == "sidecar"


def test_the_container_offers_the_sidecars_dns_plugin_and_credentials(tmp_path):
    """With CHALLENGE=dns, `here_for` names the plugin and the file as certbot saves them."""
    offered = here_for(dns_settings(tmp_path / "le").tree)
    assert (offered.authenticator, offered.credentials) == (
        "dns-rfc2136",
        str(tmp_path / "rfc2136.ini"),
    )
    assert "dns-rfc2136" in offered.plugins
    assert here_for(make_settings(tmp_path / "le").tree).authenticator == "sidecar"
