from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import configobj
import pytest

from sidecar.certbot.argv import common_args
from sidecar.certbot.runner import CertbotResult
from sidecar.cycle import run_cycle
from sidecar.volume import accounts, confs, lineages, tree
from tests.unit.helpers import (
    FakeCertbot,
    FakeControl,
    container,
    make_pem,
    make_settings,
    value_after,
)

if TYPE_CHECKING:
    from pathlib import Path

    from sidecar.settings import Settings

SERVER = "https://acme.test/directory"
OTHER_CA = "https://ca.example.net/acme/directory"
NOW = datetime(2025, 3, 12, 10, 15, tzinfo=UTC)


def lineage(
    config: Settings,
    name: str,
    params: dict[str, object],
    *,
    names: tuple[str, ...] | None = None,
    made_under: str | None = None,
) -> Path:
    """A lineage as certbot lays it out (four relative live links), with a renewal conf whose
    paths name `made_under` (another config dir) if given; returns the conf."""
    cd = config.config_dir
    archive = cd / "archive" / name
    live = cd / "live" / name
    archive.mkdir(parents=True, exist_ok=True)
    live.mkdir(parents=True, exist_ok=True)
    pem = make_pem(names or (name,), datetime.now(UTC) - timedelta(days=10))
    for kind in ("cert", "privkey", "chain", "fullchain"):
        target = archive / f"{kind}1.pem"
        target.write_bytes(pem if kind != "privkey" else b"KEY\n")
        if kind == "privkey":
            target.chmod(0o600)
        (live / f"{kind}.pem").symlink_to(f"../../archive/{name}/{kind}1.pem")
    base = made_under or str(cd)
    conf = cd / "renewal" / f"{name}.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# renew_before_expiry = 30 days",
        "version = 2.11.0",
        f"archive_dir = {base}/archive/{name}",
        *(f"{k} = {base}/live/{name}/{k}.pem" for k in ("cert", "privkey", "chain", "fullchain")),
        "",
        "# Options used in the renewal process",
        "[renewalparams]",
    ]
    for key, value in params.items():
        if isinstance(value, dict):
            lines.append(f"[[{key}]]")
            lines += [f"{k} = {v}" for k, v in value.items()]
        else:
            lines.append(f"{key} = {value}")
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return conf


def account(config: Settings, server: str, ident: str) -> None:
    host_path = server.split("://", 1)[1]
    folder = config.config_dir / "accounts" / host_path / ident
    folder.mkdir(parents=True)
    for name in ("regr.json", "private_key.json", "meta.json"):
        (folder / name).write_text("{}", encoding="utf-8")


APACHE = {
    "account": "acc-le",
    "authenticator": "apache",
    "installer": "apache",
    "server": SERVER,
    "key_type": "rsa",
    "pre_hook": "systemctl stop apache2",
    "renew_hook": "systemctl reload apache2",
    "apache_server_root": "/etc/apache2",
}


def installer(config: Settings) -> str:
    """The installer the sidecar's own certbot runs pass (adopted lineages get the same)."""
    return value_after(common_args(config, dry_run=False), "--installer")


@pytest.fixture
def config(tmp_path) -> Settings:
    cfg = make_settings(tmp_path / "le", DOMAINS="a.example", ACME_SERVER=SERVER)
    account(cfg, SERVER, "acc-le")
    return cfg


def test_check_prints_the_plan_and_changes_nothing(config):
    """`sidecar adopt --check`: each lineage and change listed, the conf byte for byte as it was."""
    conf = lineage(config, "a.example", APACHE)
    before = conf.read_bytes()
    text = tree.adopt_command(config, check=True)
    assert "a.example: sidecar" in text
    assert "authenticator apache -> sidecar" in text
    assert "pre_hook 'systemctl stop apache2' removed" in text
    assert "1 renewal conf(s) would be rewritten; nothing was changed" in text
    assert conf.read_bytes() == before
    assert confs.backups(conf) == []


def test_adopt_rewrites_the_conf_in_certbots_format_with_a_timestamped_backup(config):
    """The conf says sidecar/null, host hooks gone, comments kept; the backup is the original."""
    conf = lineage(config, "a.example", APACHE)
    original = conf.read_bytes()
    made = tree.apply(config, tree.inspect(config), now=NOW)
    assert [p.name for p in made] == ["a.example.conf.sidecar-backup-20250312T101500Z"]
    assert made[0].read_bytes() == original
    assert made[0].parent == conf.parent
    parsed = configobj.ConfigObj(str(conf), encoding="utf-8")
    params = parsed["renewalparams"]
    assert params["authenticator"] == "sidecar"
    assert params["installer"] == installer(config)
    assert params["post_hook"] == "sidecar hook post"
    assert params["key_type"] == "rsa"
    for gone in ("pre_hook", "renew_hook", "apache_server_root"):
        assert gone not in params
    text = conf.read_text(encoding="utf-8")
    assert "# renew_before_expiry = 30 days" in text
    assert "# Options used in the renewal process" in text


def test_a_second_adoption_changes_nothing_and_makes_no_backup(config):
    """Idempotent: the rewritten conf needs nothing more."""
    conf = lineage(config, "a.example", APACHE)
    tree.apply(config, tree.inspect(config), now=NOW)
    after = conf.read_bytes()
    assert tree.apply(config, tree.inspect(config), now=NOW + timedelta(hours=1)) == []
    assert conf.read_bytes() == after
    assert len(confs.backups(conf)) == 1


def test_backups_never_look_like_renewal_confs(config):
    """certbot renews renewal/*.conf: a backup must not end in .conf."""
    conf = lineage(config, "a.example", APACHE)
    tree.apply(config, tree.inspect(config), now=NOW)
    assert sorted(p.name for p in conf.parent.glob("*.conf")) == ["a.example.conf"]
    assert lineages.names(config.config_dir) == ["a.example"]


def test_status_tells_what_a_lineage_was_adopted_from(config):
    """After the rewrite the found line names the original authenticator/installer and backup."""
    lineage(config, "a.example", APACHE)
    tree.apply(config, tree.inspect(config), now=NOW)
    (decision,) = tree.inspect(config).decisions
    assert f"sidecar/{installer(config)}" in decision.found
    assert "adopted from apache/apache (backup a.example.conf.sidecar-backup-" in decision.found
    assert decision.edits == ()


def test_tree_made_under_another_config_dir_is_pointed_at_this_one(config):
    """archive_dir and the live links of /srv/letsencrypt become CONFIG_DIR's."""
    conf = lineage(config, "a.example", APACHE, made_under="/srv/letsencrypt")
    tree.apply(config, tree.inspect(config), now=NOW)
    parsed = configobj.ConfigObj(str(conf), encoding="utf-8")
    assert parsed["archive_dir"] == str(config.config_dir / "archive" / "a.example")
    assert parsed["privkey"] == str(config.config_dir / "live" / "a.example" / "privkey.pem")


def test_ignore_mark_is_written_as_a_comment_and_removed_when_renewed_again(tmp_path):
    """IGNORE_LINEAGES writes `autorenew = False` under a comment; unlisting removes both."""
    ignoring = make_settings(tmp_path / "le", ACME_SERVER=SERVER, IGNORE_LINEAGES="old.example")
    conf = lineage(ignoring, "old.example", {"authenticator": "sidecar", "server": SERVER})
    tree.apply(ignoring, tree.inspect(ignoring), now=NOW)
    text = conf.read_text(encoding="utf-8")
    assert "# certbot-sidecar: IGNORE_LINEAGES" in text
    assert "autorenew = False" in text
    renewing = make_settings(tmp_path / "le", ACME_SERVER=SERVER)
    tree.apply(renewing, tree.inspect(renewing), now=NOW + timedelta(seconds=1))
    text = conf.read_text(encoding="utf-8")
    assert "autorenew" not in text
    assert "IGNORE_LINEAGES" not in text


def test_account_ids_are_read_per_server(config):
    """accounts/<host:port/path>/<id>/: the ids certbot can load for that server (all 3 files)."""
    account(config, "https://localhost:14000/dir", "abc")
    junk = config.config_dir / "accounts" / "localhost:14000" / "dir" / "junk"
    junk.mkdir()
    (junk / "regr.json").write_text("{}", encoding="utf-8")
    assert accounts.for_server(config.config_dir, "https://localhost:14000/dir").own == ("abc",)
    assert accounts.for_server(config.config_dir, "https://nowhere/dir").loadable == ()


def test_runnable_finds_programs_on_path_and_executable_files(tmp_path):
    """A hook's program: on PATH, or an executable file."""
    script = tmp_path / "hook.sh"
    script.write_text("#!/bin/sh\n", encoding="utf-8")
    assert tree.runnable("sh")
    assert not tree.runnable(str(script))
    script.chmod(0o755)
    assert tree.runnable(str(script))
    assert not tree.runnable("no-such-program-here")


def test_unparsable_conf_is_reported_and_left_alone(config):
    """A conf certbot cannot read: `cannot`, the file untouched."""
    conf = config.config_dir / "renewal" / "bad.example.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[renewalparams\nbroken", encoding="utf-8")
    tree.apply(config, adoption := tree.inspect(config), now=NOW)
    (decision,) = adoption.decisions
    assert decision.action == "cannot"
    assert conf.read_text(encoding="utf-8") == "[renewalparams\nbroken"


# sanity of the tree


def test_broken_and_absolute_live_links_are_reported_and_nothing_deleted(config):
    """A dangling relative link and an absolute one from another machine: each one line."""
    lineage(config, "a.example", APACHE)
    (config.config_dir / "archive" / "a.example" / "chain1.pem").unlink()
    link = config.config_dir / "live" / "a.example" / "fullchain.pem"
    link.unlink()
    link.symlink_to("/srv/letsencrypt/archive/a.example/fullchain1.pem")
    findings = tree.inspect(config).findings
    assert any(
        "live/a.example/chain.pem -> ../../archive/a.example/chain1.pem is a broken symlink" in f
        for f in findings
    )
    assert any("fullchain.pem -> /srv/letsencrypt" in f and "absolute" in f for f in findings)
    assert link.is_symlink()


def test_numbered_copy_with_the_same_names_is_reported(config):
    """a.example-0001 next to a.example, same names: both renewed, check which the app reads."""
    lineage(config, "a.example", APACHE, names=("a.example",))
    lineage(config, "a.example-0001", APACHE, names=("a.example",))
    findings = tree.inspect(config).findings
    assert any("a.example-0001 is a numbered copy of a.example" in f for f in findings)


def test_domains_certificate_found_under_another_lineage_name_is_reported(tmp_path):
    """DOMAINS=a.example,www.a.example, but the host named the lineage www.a.example."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example,www.a.example", ACME_SERVER=SERVER)
    lineage(config, "www.a.example", APACHE, names=("www.a.example", "a.example"))
    findings = tree.inspect(config).findings
    assert any(
        "has no lineage of that name, but www.a.example has its names" in f for f in findings
    )


def test_world_readable_private_key_and_orphan_live_dir_are_reported(config):
    """privkey 0644, and live/x without renewal/x.conf: reported, modes untouched."""
    lineage(config, "a.example", APACHE)
    key = config.config_dir / "archive" / "a.example" / "privkey1.pem"
    key.chmod(0o644)
    (config.config_dir / "live" / "orphan.example").mkdir()
    findings = tree.inspect(config).findings
    assert any("archive/a.example/privkey1.pem is readable by everyone" in f for f in findings)
    assert any("live/orphan.example has no renewal conf" in f for f in findings)
    assert key.stat().st_mode & 0o777 == 0o644


def test_executable_renewal_hooks_are_listed(config):
    """renewal-hooks/deploy/x runs in the container at every certbot run: said once."""
    hook = config.config_dir / "renewal-hooks" / "deploy" / "reload-nginx.sh"
    hook.parent.mkdir(parents=True)
    hook.write_text("#!/bin/sh\nsystemctl reload nginx\n", encoding="utf-8")
    hook.chmod(0o755)
    assert any("renewal-hooks/deploy/reload-nginx.sh" in f for f in tree.inspect(config).findings)


# in the cycle


def test_cycle_adopts_before_certbot_and_runs_one_renew_for_all(config):
    """The cycle rewrites the host conf, then one `certbot renew` with the sidecar's flags."""
    conf = lineage(config, "a.example", APACHE, names=("a.example",))
    seen: list[str] = []

    def action(args: list[str]) -> CertbotResult:
        seen.append(conf.read_text(encoding="utf-8"))
        return CertbotResult(0, timed_out=False)

    fake = FakeCertbot(action)
    result = run_cycle(config, fake, FakeControl(container("web")))
    assert result.ok, result.errors
    assert fake.commands == ["renew"]
    assert "authenticator = sidecar" in seen[0], "certbot must see the adopted conf"
    assert "--server" in fake.calls[0]
    assert "--authenticator" in fake.calls[0]
    assert len(confs.backups(conf)) == 1


def test_cycle_renews_a_lineage_on_another_ca_with_its_own_server(config):
    """A lineage not in DOMAINS on another CA: the renew run leaves the server to the confs."""
    lineage(config, "a.example", APACHE, names=("a.example",))
    account(config, OTHER_CA, "acc-other")
    other = dict(APACHE, server=OTHER_CA, account="acc-other")
    lineage(config, "b.example", other, names=("b.example",))
    fake = FakeCertbot()
    assert run_cycle(config, fake, FakeControl(container("web"))).ok
    (args,) = fake.calls
    assert args[0] == "renew"
    for flag in ("--server", "--authenticator", "--installer"):
        assert flag not in args
    assert "--post-hook" in args
    parsed = configobj.ConfigObj(str(config.config_dir / "renewal" / "b.example.conf"))
    assert parsed["renewalparams"]["server"] == OTHER_CA
    assert parsed["renewalparams"]["authenticator"] == "sidecar"


def test_dry_run_cycle_rewrites_nothing(config):
    """A dry run saves nothing: the host conf stays as it is."""
    conf = lineage(config, "a.example", APACHE, names=("a.example",))
    before = conf.read_bytes()
    run_cycle(config, FakeCertbot(), FakeControl(container("web")), dry_run=True)
    assert conf.read_bytes() == before
    assert confs.backups(conf) == []


def test_a_conf_that_cannot_be_written_is_an_error_line_not_a_crash(config, monkeypatch):
    """Writing one conf fails: logged, the other lineages still adopted."""
    lineage(config, "a.example", APACHE)
    lineage(config, "b.example", APACHE)
    real = confs.write_atomic

    def write(path: Path, data: bytes, **options: int) -> None:
        if path.name == "a.example.conf":
            raise OSError(30, "Read-only file system")
        real(path, data, **options)

    monkeypatch.setattr(confs, "write_atomic", write)
    made = tree.apply(config, tree.inspect(config), now=NOW)
    assert [p.name.split(".conf")[0] for p in made] == ["b.example"]
    assert confs.backups(config.config_dir / "renewal" / "a.example.conf") == []
