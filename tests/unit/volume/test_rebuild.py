"""A DOMAINS lineage whose renewal conf is gone: rebuilt in certbot's format, or the cycle fails."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import TYPE_CHECKING

import configobj
from cryptography.hazmat.primitives.asymmetric import rsa

from sidecar import shutdown
from sidecar.cycle import run_cycle
from sidecar.report.adoption import rewrite_text
from sidecar.volume import rebuild, tree
from tests.unit.helpers import (
    FakeCertbot,
    FakeControl,
    container,
    dns_settings,
    install_cert,
    make_pem,
    make_settings,
)

if TYPE_CHECKING:
    from pathlib import Path

    from sidecar.cycle.result import CycleResult
    from sidecar.loader import Config

SERVER = "https://acme.test/directory"


def account(config: Config, ident: str) -> None:
    folder = config.config_dir / "accounts" / "acme.test" / "directory" / ident
    folder.mkdir(parents=True)
    for name in ("regr.json", "private_key.json", "meta.json"):
        (folder / name).write_text("{}", encoding="utf-8")


def without_conf(config: Config, name: str = "a.example") -> Path:
    """A lineage as certbot made it, its renewal conf then removed; the conf's path."""
    pem = make_pem((name, f"www.{name}"), datetime.now(UTC) - timedelta(days=10))
    install_cert(config.config_dir, name, pem)
    conf = config.config_dir / "renewal" / f"{name}.conf"
    conf.unlink()
    return conf


def saved(conf: Path) -> configobj.ConfigObj:
    return configobj.ConfigObj(str(conf), encoding="utf-8")


def test_the_conf_is_rebuilt_as_certbot_writes_it(tmp_path):
    """version, the paths in this tree, the tree's one account, ACME_SERVER, the sidecar's
    authenticator, installer and post-hook, the key type from the certificate; 0644."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example,www.a.example", ACME_SERVER=SERVER)
    account(config, "acc1")
    conf = without_conf(config)
    tree.apply(config.tree, tree.inspect(config.tree))
    cd = config.config_dir
    written = saved(conf)
    assert written["version"] == metadata.version("certbot")
    assert written["archive_dir"] == f"{cd}/archive/a.example"
    for kind in ("cert", "privkey", "chain", "fullchain"):
        assert written[kind] == f"{cd}/live/a.example/{kind}.pem"
    params = written["renewalparams"]
    assert params["account"] == "acc1"
    assert params["server"] == SERVER
    assert (params["authenticator"], params["installer"]) == ("sidecar", "sidecar")
    assert params["post_hook"] == "sidecar hook post"
    assert (params["key_type"], params["elliptic_curve"]) == ("ecdsa", "secp256r1")
    assert params["config_dir"] == str(cd)
    assert stat.S_IMODE(conf.stat().st_mode) == 0o644
    assert list(conf.parent.iterdir()) == [conf], "no backup of a conf that was not there"
    (decision,) = tree.inspect(config.tree).decisions
    assert decision.action == "sidecar"
    assert decision.edits == ()
    assert tree.inspect(config.tree).rebuilds == ()


def test_check_shows_the_rebuild_and_writes_nothing(tmp_path):
    """`adopt --check`: the lineage decided as if rebuilt, one finding, nothing written."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example,www.a.example", ACME_SERVER=SERVER)
    conf = without_conf(config)
    text = rewrite_text(tree.adopt_command(config.tree, check=True))
    assert "renewal/a.example.conf is missing" in text
    assert "rebuilt in certbot's format: from live/a.example/cert.pem, key ecdsa secp256r1" in text
    assert "account none (certbot registers one)" in text
    assert "a.example: sidecar" in text
    assert "has no renewal conf" not in text
    assert "1 rebuilt" in text
    assert not conf.exists()


def test_two_accounts_name_none_and_an_rsa_key_gives_its_size(tmp_path):
    """Several accounts for ACME_SERVER: none named (the adoption names one, as it does for any
    conf); an RSA certificate: key_type rsa and its size."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example", ACME_SERVER=SERVER)
    account(config, "acc1")
    account(config, "acc2")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    install_cert(config.config_dir, "a.example", make_pem(("a.example",), key=key))
    (config.config_dir / "renewal" / "a.example.conf").unlink()
    item = rebuild.plan(config.config_dir, "a.example", {"server": SERVER, "post_hook": "x"})
    assert item is not None
    assert item.conf is not None
    assert "key_type = rsa\nrsa_key_size = 2048\npost_hook = x" in item.conf.decode()
    params = tree.renewal_params(config.tree, tree.here_for(config.tree), "a.example")
    assert "account" not in params


def test_with_dns_the_plugin_and_its_credentials_are_saved(tmp_path):
    """CHALLENGE=dns: the sidecar's DNS plugin and DNS_CREDENTIALS, as certbot saves them."""
    config = dns_settings(tmp_path / "le", DOMAINS="a.example,www.a.example")
    conf = without_conf(config)
    tree.apply(config.tree, tree.inspect(config.tree))
    params = saved(conf)["renewalparams"]
    assert params["authenticator"] == "dns-rfc2136"
    assert params["dns_rfc2136_credentials"] == str(config.challenge.credentials_file)


def test_a_copied_tree_with_plain_files_is_rebuilt_then_repaired(tmp_path):
    """live/ with plain files, no renewal/ (copied to a new host): conf rebuilt, files put in
    certbot's layout in the same cycle."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example,www.a.example", ACME_SERVER=SERVER)
    conf = without_conf(config)
    live = config.config_dir / "live" / "a.example"
    for link in live.iterdir():
        data = link.read_bytes()
        link.unlink()
        link.write_bytes(data)
    tree.apply(config.tree, tree.inspect(config.tree))
    assert conf.exists()
    assert (live / "cert.pem").is_symlink()
    (decision,) = tree.inspect(config.tree).decisions
    assert decision.renewable, decision.does


def test_nothing_to_rebuild_without_files_or_with_an_empty_live_directory(tmp_path):
    """No files of the lineage (a first issuance), or only an empty live/NAME/: nothing."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example", ACME_SERVER=SERVER)
    assert rebuild.plan(config.config_dir, "a.example", {}) is None
    (config.config_dir / "live" / "a.example").mkdir(parents=True)
    assert rebuild.plan(config.config_dir, "a.example", {}) is None
    assert tree.inspect(config.tree).rebuilds == ()


def tree_cycle(config: Config, fake: FakeCertbot) -> CycleResult:
    return run_cycle(config.cycle, fake, FakeControl(container("web")), shutdown.REQUEST)


def test_a_lineage_without_key_fails_the_cycle_at_once_and_permanently(tmp_path):
    """No private key anywhere: no conf written, no certonly, one error naming what is missing,
    permanent; the other lineages are still renewed."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example;b.example", ACME_SERVER=SERVER)
    without_conf(config)
    install_cert(config.config_dir, "b.example", make_pem(("b.example",)))
    for key in (config.config_dir / "archive" / "a.example").glob("privkey*"):
        key.unlink()
    fake = FakeCertbot()
    result = tree_cycle(config, fake)
    (error,) = result.errors
    assert "renewal/a.example.conf is missing" in error
    assert "no private key" in error
    assert result.permanent
    assert fake.commands == ["renew"]
    assert not (config.config_dir / "renewal" / "a.example.conf").exists()


def test_the_cycle_rebuilds_then_renews_without_obtaining(tmp_path):
    """The next cycle writes the conf and runs one `certbot renew`; no `certonly`."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example,www.a.example", ACME_SERVER=SERVER)
    conf = without_conf(config)
    fake = FakeCertbot()
    result = tree_cycle(config, fake)
    assert result.ok, result.errors
    assert fake.commands == ["renew"]
    assert conf.exists()


def test_adopt_writes_it_and_says_so(tmp_path):
    """`sidecar adopt`: the conf written, the tail names it, nothing backed up."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example,www.a.example", ACME_SERVER=SERVER)
    conf = without_conf(config)
    text = rewrite_text(tree.adopt_command(config.tree, check=False))
    assert text.endswith("0 renewal conf(s) rewritten; rebuilt: a.example")
    assert conf.exists()
