"""pyproject.toml and uv.lock agree: every DNS plugin extra is certbot's own release."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _locked() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {p["name"]: p["version"] for p in lock["package"]}


def _extras() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    return extras


def test_every_dns_extra_is_one_certbot_plugin_named_after_it():
    dns = {name: reqs for name, reqs in _extras().items() if name.startswith("dns-")}
    assert "dns-rfc2136" in dns
    for name, reqs in dns.items():
        assert len(reqs) == 1, name
        assert reqs[0].startswith(f"certbot-{name}>="), (name, reqs)


def test_dns_plugins_are_locked_at_certbots_release():
    locked = _locked()
    plugins = {n: v for n, v in locked.items() if n.startswith("certbot-dns-")}
    assert {f"certbot-{extra}" for extra in _extras() if extra.startswith("dns-")} <= set(plugins)
    assert set(plugins.values()) == {locked["certbot"]}, plugins


def test_the_dns_plugin_for_unit_tests_is_in_the_dev_group():
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    assert any(req.startswith("certbot-dns-rfc2136") for req in groups["dev"])
    import certbot_dns_rfc2136  # noqa: PLC0415  (installed by `uv sync --all-groups`)

    assert certbot_dns_rfc2136.__name__


def test_the_dns_plugin_table_knows_every_dns_extra():
    """DNS_PLUGIN's table and the image extras name the same plugins."""
    from sidecar.certbot.challenges import DNS_PLUGINS  # noqa: PLC0415

    extras = {name.removeprefix("dns-") for name in _extras() if name.startswith("dns-")}
    assert set(DNS_PLUGINS) == extras
