from __future__ import annotations

import shutil
import stat
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import configobj
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sidecar import shutdown
from sidecar.certbot.argv import renew
from sidecar.certbot.runner import CertbotResult
from sidecar.cycle import run_cycle
from sidecar.report.adoption import rewrite_text
from sidecar.volume import accounts, confs, files, lineages, tree
from tests.unit.helpers import (
    FakeCertbot,
    FakeControl,
    container,
    lineage_files,
    make_pem,
    make_settings,
    value_after,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from sidecar.loader import Config

SERVER = "https://acme.test/directory"
OTHER_CA = "https://ca.example.net/acme/directory"
NOW = datetime(2025, 3, 12, 10, 15, tzinfo=UTC)


def lineage(
    config: Config,
    name: str,
    params: Mapping[str, object],
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
    for kind, data in lineage_files(pem).items():
        target = archive / f"{kind}1.pem"
        target.write_bytes(data)
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


def account(config: Config, server: str, ident: str) -> None:
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


def installer(config: Config) -> str:
    """The installer the sidecar's own certbot runs pass (adopted lineages get the same)."""
    return value_after(renew(config.flags).argv(), "--installer")


@pytest.fixture
def config(tmp_path) -> Config:
    cfg = make_settings(tmp_path / "le", DOMAINS="a.example", ACME_SERVER=SERVER)
    account(cfg, SERVER, "acc-le")
    return cfg


def test_check_prints_the_plan_and_changes_nothing(config):
    """`sidecar adopt --check`: each lineage and change listed, the conf byte for byte as it was."""
    conf = lineage(config, "a.example", APACHE)
    before = conf.read_bytes()
    text = rewrite_text(tree.adopt_command(config.tree, check=True))
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
    made = tree.apply(config.tree, tree.inspect(config.tree), now=NOW)
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
    tree.apply(config.tree, tree.inspect(config.tree), now=NOW)
    after = conf.read_bytes()
    assert tree.apply(config.tree, tree.inspect(config.tree), now=NOW + timedelta(hours=1)) == []
    assert conf.read_bytes() == after
    assert len(confs.backups(conf)) == 1


def test_backups_never_look_like_renewal_confs(config):
    """certbot renews renewal/*.conf: a backup must not end in .conf."""
    conf = lineage(config, "a.example", APACHE)
    tree.apply(config.tree, tree.inspect(config.tree), now=NOW)
    assert sorted(p.name for p in conf.parent.glob("*.conf")) == ["a.example.conf"]
    assert lineages.names(config.config_dir) == ["a.example"]


def test_status_tells_what_a_lineage_was_adopted_from(config):
    """After the rewrite the found line names the original authenticator/installer and backup."""
    lineage(config, "a.example", APACHE)
    tree.apply(config.tree, tree.inspect(config.tree), now=NOW)
    (decision,) = tree.inspect(config.tree).decisions
    assert f"sidecar/{installer(config)}" in decision.found
    assert "adopted from apache/apache (backup a.example.conf.sidecar-backup-" in decision.found
    assert decision.edits == ()


def test_tree_made_under_another_config_dir_is_pointed_at_this_one(config):
    """archive_dir and the live links of /srv/letsencrypt become CONFIG_DIR's."""
    conf = lineage(config, "a.example", APACHE, made_under="/srv/letsencrypt")
    tree.apply(config.tree, tree.inspect(config.tree), now=NOW)
    parsed = configobj.ConfigObj(str(conf), encoding="utf-8")
    assert parsed["archive_dir"] == str(config.config_dir / "archive" / "a.example")
    assert parsed["privkey"] == str(config.config_dir / "live" / "a.example" / "privkey.pem")


def test_ignore_mark_is_written_as_a_comment_and_removed_when_renewed_again(tmp_path):
    """IGNORE_LINEAGES writes `autorenew = False` under a comment; unlisting removes both."""
    ignoring = make_settings(tmp_path / "le", ACME_SERVER=SERVER, IGNORE_LINEAGES="old.example")
    conf = lineage(ignoring, "old.example", {"authenticator": "sidecar", "server": SERVER})
    tree.apply(ignoring.tree, tree.inspect(ignoring.tree), now=NOW)
    text = conf.read_text(encoding="utf-8")
    assert "# certbot-sidecar: IGNORE_LINEAGES" in text
    assert "autorenew = False" in text
    renewing = make_settings(tmp_path / "le", ACME_SERVER=SERVER)
    tree.apply(renewing.tree, tree.inspect(renewing.tree), now=NOW + timedelta(seconds=1))
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
    tree.apply(config.tree, adoption := tree.inspect(config.tree), now=NOW)
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
    findings = tree.inspect(config.tree).findings
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
    findings = tree.inspect(config.tree).findings
    assert any("a.example-0001 is a numbered copy of a.example" in f for f in findings)


def test_domains_certificate_found_under_another_lineage_name_is_reported(tmp_path):
    """DOMAINS=a.example,www.a.example, but the host named the lineage www.a.example."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example,www.a.example", ACME_SERVER=SERVER)
    lineage(config, "www.a.example", APACHE, names=("www.a.example", "a.example"))
    findings = tree.inspect(config.tree).findings
    assert any(
        "has no lineage of that name, but www.a.example has its names" in f for f in findings
    )


def test_world_readable_private_key_and_orphan_live_dir_are_reported(config):
    """privkey 0644, and live/x without renewal/x.conf: reported, modes untouched."""
    lineage(config, "a.example", APACHE)
    key = config.config_dir / "archive" / "a.example" / "privkey1.pem"
    key.chmod(0o644)
    (config.config_dir / "live" / "orphan.example").mkdir()
    findings = tree.inspect(config.tree).findings
    assert any("archive/a.example/privkey1.pem is readable by everyone" in f for f in findings)
    assert any("live/orphan.example has no renewal conf" in f for f in findings)
    assert key.stat().st_mode & 0o777 == 0o644


def test_executable_renewal_hooks_are_listed(config):
    """renewal-hooks/deploy/x runs in the container at every certbot run: said once."""
    hook = config.config_dir / "renewal-hooks" / "deploy" / "reload-nginx.sh"
    hook.parent.mkdir(parents=True)
    hook.write_text("#!/bin/sh\nsystemctl reload nginx\n", encoding="utf-8")
    hook.chmod(0o755)
    assert any(
        "renewal-hooks/deploy/reload-nginx.sh" in f for f in tree.inspect(config.tree).findings
    )


# in the cycle


def test_cycle_adopts_before_certbot_and_runs_one_renew_for_all(config):
    """The cycle rewrites the host conf, then one `certbot renew` with the sidecar's flags."""
    conf = lineage(config, "a.example", APACHE, names=("a.example",))
    seen: list[str] = []

    def action(args: list[str]) -> CertbotResult:
        seen.append(conf.read_text(encoding="utf-8"))
        return CertbotResult(0, timed_out=False)

    fake = FakeCertbot(action)
    result = run_cycle(config.cycle, fake, FakeControl(container("web")), shutdown.REQUEST)
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
    assert run_cycle(config.cycle, fake, FakeControl(container("web")), shutdown.REQUEST).ok
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
    run_cycle(
        config.cycle, FakeCertbot(), FakeControl(container("web")), shutdown.REQUEST, dry_run=True
    )
    assert conf.read_bytes() == before
    assert confs.backups(conf) == []


def test_a_conf_that_cannot_be_written_is_an_error_line_not_a_crash(config, monkeypatch):
    """Writing one conf fails: logged, the other lineages still adopted."""
    lineage(config, "a.example", APACHE)
    lineage(config, "b.example", APACHE)
    real = files.write_atomic

    def write(path: Path, data: bytes, **options: int) -> None:
        if path.name == "a.example.conf":
            raise OSError(30, "Read-only file system")
        real(path, data, **options)

    monkeypatch.setattr(confs, "write_atomic", write)
    made = tree.apply(config.tree, tree.inspect(config.tree), now=NOW)
    assert [p.name.split(".conf")[0] for p in made] == ["b.example"]
    assert confs.backups(config.config_dir / "renewal" / "a.example.conf") == []


# issue 10: host trees as they really are


def test_a_conf_that_is_not_utf8_is_one_finding_and_the_rest_is_adopted(config):
    """A Latin-1 comment: that lineage `cannot` (certbot skips it), its conf untouched; the
    healthy lineage beside it is adopted; nothing raises."""
    bad = lineage(config, "bad.example", APACHE)
    bad.write_bytes(b"# g\xe9r\xe9 par l'h\xf4te\n" + bad.read_bytes())
    before = bad.read_bytes()
    good = lineage(config, "a.example", APACHE)
    adoption = tree.inspect(config.tree)
    tree.apply(config.tree, adoption, now=NOW)
    by_name = {d.name: d for d in adoption.decisions}
    assert by_name["bad.example"].action == "cannot"
    assert "is not UTF-8 (byte 0xe9 on line 1)" in by_name["bad.example"].does
    assert by_name["bad.example"].parse_failure
    assert by_name["a.example"].action == "sidecar"
    assert bad.read_bytes() == before
    assert "authenticator = sidecar" in good.read_text(encoding="utf-8")
    assert "bad.example: cannot" in rewrite_text(tree.adopt_command(config.tree, check=True))


def test_crlf_and_bom_confs_are_adopted_and_stay_readable(config):
    """A conf copied from Windows (CRLF, UTF-8 BOM) is read as certbot reads it and rewritten."""
    conf = lineage(config, "a.example", APACHE)
    conf.write_bytes(b"\xef\xbb\xbf" + conf.read_bytes().replace(b"\n", b"\r\n"))
    tree.apply(config.tree, tree.inspect(config.tree), now=NOW)
    assert configobj.ConfigObj(str(conf), encoding="utf-8")["renewalparams"]["authenticator"] == (
        "sidecar"
    )
    assert tree.inspect(config.tree).decisions[0].edits == ()


def test_production_lineage_without_server_is_never_moved_to_staging(tmp_path):
    """No `server` line is production to certbot: kept, in DOMAINS or not, with ACME_SERVER
    staging; the renew then leaves `--server` to the confs."""
    staging = make_settings(tmp_path / "le", DOMAINS="a.example", ACME_SERVER="letsencrypt-staging")
    params = {k: v for k, v in APACHE.items() if k != "server"}
    for name in ("a.example", "b.example"):
        lineage(staging, name, params)
    adoption = tree.inspect(staging.tree)
    tree.apply(staging.tree, adoption, now=NOW)
    for name in ("a.example", "b.example"):
        saved = configobj.ConfigObj(str(staging.config_dir / "renewal" / f"{name}.conf"))
        assert "server" not in saved["renewalparams"], name
    assert {d.server for d in adoption.decisions} == {
        "https://acme-v02.api.letsencrypt.org/directory"
    }
    fake = FakeCertbot()
    run_cycle(staging.cycle, fake, FakeControl(container("web")), shutdown.REQUEST)
    assert "--server" not in fake.calls[-1]


def test_two_accounts_for_the_ca_pin_the_lineages_account_and_drop_the_server_flag(config):
    """Several accounts for the CA: certbot ignores `account` under --server and asks; the conf's
    account is kept and the renew runs without --server (dry runs name it with --account)."""
    account(config, SERVER, "acc-two")
    lineage(config, "a.example", {**APACHE, "account": "acc-two"})
    (decision,) = tree.inspect(config.tree).decisions
    assert decision.pinned_account == "acc-two"
    assert "account" not in {e.key for e in decision.edits}
    fake = FakeCertbot()
    assert run_cycle(config.cycle, fake, FakeControl(container("web")), shutdown.REQUEST).ok
    assert "--server" not in fake.calls[-1]
    dry = FakeCertbot()
    run_cycle(config.cycle, dry, FakeControl(container("web")), shutdown.REQUEST, dry_run=True)
    assert value_after(dry.calls[-1], "--account") == "acc-two"
    assert value_after(dry.calls[-1], "--cert-name") == "a.example"


def test_a_conf_without_account_among_two_gets_one_named(config):
    """No `account` saved and two for the CA: certbot would have to ask; one is named."""
    account(config, SERVER, "acc-two")
    lineage(config, "a.example", {k: v for k, v in APACHE.items() if k != "account"})
    (decision,) = tree.inspect(config.tree).decisions
    assert decision.pinned_account == "acc-le"
    assert any("2 accounts exist" in c for c in decision.changes)


LE = "https://acme-v02.api.letsencrypt.org/directory"
LE_V1 = "https://acme-v01.api.letsencrypt.org/directory"


def test_acmev1_accounts_certbot_still_uses_are_kept(tmp_path):
    """Accounts under acme-v01's directory are loaded by certbot for v02: the pin stays; with two
    of them it is what makes the conf load, so it is pinned (no --server)."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example", ACME_SERVER="letsencrypt")
    account(config, LE_V1, "old-one")
    lineage(config, "a.example", {**APACHE, "server": LE, "account": "old-one"})
    (decision,) = tree.inspect(config.tree).decisions
    assert "account" not in {e.key for e in decision.edits}
    assert decision.pinned_account is None
    account(config, LE_V1, "old-two")
    (decision,) = tree.inspect(config.tree).decisions
    assert "account" not in {e.key for e in decision.edits}
    assert decision.pinned_account == "old-one"


def _archive(config: Config, name: str) -> Path:
    return config.config_dir / "archive" / name


def _live(config: Config, name: str) -> Path:
    return config.config_dir / "live" / name


def test_unnumbered_archive_files_are_copied_to_numbered_ones_and_relinked(config):
    """cert.pem instead of cert1.pem (certbot fails the lineage at every run): numbered copies
    made, the live links point there, the originals kept; --check changes nothing."""
    lineage(config, "a.example", APACHE)
    for kind in ("cert", "privkey", "chain", "fullchain"):
        (_archive(config, "a.example") / f"{kind}1.pem").rename(
            _archive(config, "a.example") / f"{kind}.pem"
        )
        link = _live(config, "a.example") / f"{kind}.pem"
        link.unlink()
        link.symlink_to(f"../../archive/a.example/{kind}.pem")
    text = rewrite_text(tree.adopt_command(config.tree, check=True))
    assert "not numbered" in text
    assert "files of 1 lineage(s) repaired" in text
    assert (_live(config, "a.example") / "cert.pem").readlink().name == "cert.pem"
    rewrite_text(tree.adopt_command(config.tree, check=False))
    for kind in ("cert", "privkey", "chain", "fullchain"):
        link = _live(config, "a.example") / f"{kind}.pem"
        assert str(link.readlink()) == f"../../archive/a.example/{kind}1.pem"
        assert (_archive(config, "a.example") / f"{kind}.pem").exists()
    assert stat.S_IMODE((_archive(config, "a.example") / "privkey1.pem").stat().st_mode) == 0o600
    (decision,) = tree.inspect(config.tree).decisions
    assert decision.repairs == ()
    assert decision.renewable


def test_plain_files_in_live_become_archive_versions_and_symlinks(config):
    """A copied tree (live/ files, not symlinks; certbot skips it): each file's bytes become a
    new archive version, the file is kept as a backup, live/ links are relative."""
    lineage(config, "a.example", APACHE)
    pem = (_live(config, "a.example") / "cert.pem").read_bytes()
    for kind in ("cert", "privkey", "chain", "fullchain"):
        link = _live(config, "a.example") / f"{kind}.pem"
        data = link.read_bytes()
        link.unlink()
        link.write_bytes(data)
    (decision,) = tree.inspect(config.tree).decisions
    assert decision.renewable
    assert any("is a file, not a symlink" in p for p in decision.problems)
    tree.apply(config.tree, tree.inspect(config.tree), now=NOW)
    link = _live(config, "a.example") / "cert.pem"
    assert str(link.readlink()) == "../../archive/a.example/cert2.pem"
    assert link.read_bytes() == pem
    assert (_live(config, "a.example") / "cert.pem.sidecar-backup-20250312T101500Z").exists()


def test_an_empty_private_key_is_not_called_renewable(config):
    """A 0-byte key: `cannot`, with what is wrong and how to repair it; nothing changed."""
    lineage(config, "a.example", APACHE)
    (_archive(config, "a.example") / "privkey1.pem").write_bytes(b"")
    (decision,) = tree.inspect(config.tree).decisions
    assert decision.action == "cannot"
    assert "private key) is empty" in decision.does
    assert "--force-renewal" in decision.does
    assert decision.edits == ()
    assert decision.repairs == ()


def test_a_live_link_from_another_machine_is_relinked_to_the_same_archive_file(config):
    """An absolute link to /srv/letsencrypt/... (broken here) whose file the archive holds."""
    lineage(config, "a.example", APACHE)
    link = _live(config, "a.example") / "fullchain.pem"
    link.unlink()
    link.symlink_to("/srv/letsencrypt/archive/a.example/fullchain1.pem")
    (decision,) = tree.inspect(config.tree).decisions
    assert decision.renewable
    tree.apply(config.tree, tree.inspect(config.tree), now=NOW)
    assert str(link.readlink()) == "../../archive/a.example/fullchain1.pem"


def test_absolute_links_that_resolve_are_reported_and_made_relative(config):
    """README: absolute live/ links are reported even when they resolve; made relative."""
    lineage(config, "a.example", APACHE)
    link = _live(config, "a.example") / "chain.pem"
    link.unlink()
    link.symlink_to(_archive(config, "a.example") / "chain1.pem")
    assert any("is an absolute symlink" in f for f in tree.inspect(config.tree).findings)
    tree.apply(config.tree, tree.inspect(config.tree), now=NOW)
    assert str(link.readlink()) == "../../archive/a.example/chain1.pem"


def test_a_renamed_conf_follows_its_own_paths_as_certbot_does(config):
    """renewal/a.example.conf naming live/other.example: renewable, its certificate read there,
    live/other.example not reported as orphan, paths not rewritten."""
    conf = lineage(config, "other.example", APACHE)
    conf = conf.rename(conf.with_name("a.example.conf"))
    adoption = tree.inspect(config.tree)
    (decision,) = adoption.decisions
    assert decision.name == "a.example"
    assert decision.renewable, decision.does
    assert decision.names == ("other.example",)
    assert not {"cert", "archive_dir"} & {e.key for e in decision.edits}
    assert not any("has no renewal conf" in f for f in adoption.findings)
    assert lineages.read(config.config_dir, "a.example").cert is not None


@pytest.mark.parametrize(
    ("hook", "kept"),
    [
        ('bash -c "systemctl reload nginx"', False),
        ("sh -c 'cp a b && nginx -s reload'", False),
        ("sudo -u www-data systemctl reload php-fpm", False),
        ("env FOO=1 timeout 10 sh -c 'sh'", True),
    ],
)
def test_hooks_are_judged_by_the_command_that_would_run(config, hook, kept):
    """A wrapper (`bash -c`, `sudo -u x`, `env`, `timeout`) does not hide a host tool."""
    lineage(config, "a.example", {**APACHE, "renew_hook": hook})
    (decision,) = tree.inspect(config.tree).decisions
    removed = [c for c in decision.changes if c.startswith("renew_hook")]
    assert bool(removed) != kept, decision.changes
    if removed:
        assert "manages the host's services" in removed[0], removed


def test_a_conf_without_installer_gets_the_sidecars(config):
    """README: adopted confs end up with `installer = sidecar`, saved without one too."""
    lineage(config, "a.example", {**APACHE, "installer": "None"})
    tree.apply(config.tree, tree.inspect(config.tree), now=NOW)
    saved = configobj.ConfigObj(str(config.config_dir / "renewal" / "a.example.conf"))
    assert saved["renewalparams"]["installer"] == installer(config)


def test_the_daemons_cycle_goes_on_past_a_conf_certbot_cannot_read(config):
    """certbot renew exits 1 over the undecodable conf alone: the cycle renews the others and is
    not failed for it (the adoption reports that lineage at every cycle)."""
    lineage(config, "a.example", APACHE, names=("a.example",))
    bad = lineage(config, "old.example", APACHE, names=("old.example",))
    bad.write_bytes(b"# \xe9\n" + bad.read_bytes())
    tail = ("Renewal configuration file old.example.conf produced an unexpected error",
            "0 renew failure(s), 1 parse failure(s)")  # fmt: skip
    fake = FakeCertbot(lambda _args: CertbotResult(1, timed_out=False, tail=tail))
    result = run_cycle(config.cycle, fake, FakeControl(container("web")), shutdown.REQUEST)
    assert result.ok, result.errors
    assert fake.commands == ["renew"]


# files that belong together (certbot's verify_renewable_cert), live/ restored from the archive


def test_a_cert_linked_from_outside_that_does_not_match_is_not_called_renewable(config, tmp_path):
    """live/NAME/cert.pem an absolute link to a certificate outside the tree that chain.pem and
    fullchain.pem do not go with (a tree posted by a user): `cannot`, nothing copied in, and the
    archived version whose files belong together named for the repair by hand."""
    lineage(config, "a.example", APACHE)
    outside = tmp_path / "elsewhere" / "cert.pem"
    outside.parent.mkdir()
    other = ec.generate_private_key(ec.SECP256R1())
    outside.write_bytes(make_pem(("a.example",), key=other))
    link = _live(config, "a.example") / "cert.pem"
    link.unlink()
    link.symlink_to(outside)
    (decision,) = tree.inspect(config.tree).decisions
    assert decision.action == "cannot"
    assert "cert.pem is not signed by the first certificate of chain.pem" in decision.does
    assert "after the repair" in decision.does
    assert "point live/a.example/*.pem at archive/a.example/*1.pem" in decision.does
    assert decision.repairs == ()
    text = rewrite_text(tree.adopt_command(config.tree, check=False))
    assert "renewed the sidecar's way" not in text
    assert link.readlink() == outside
    assert sorted(p.name for p in _archive(config, "a.example").iterdir()) == [
        "cert1.pem",
        "chain1.pem",
        "fullchain1.pem",
        "privkey1.pem",
    ]


def test_linked_files_that_do_not_belong_together_are_judged_too(config):
    """Four proper links, but fullchain.pem is another certificate's and no version is whole:
    `cannot`, with how to start over."""
    lineage(config, "a.example", APACHE)
    other = lineage_files(make_pem(("b.example",)))["fullchain"]
    (_archive(config, "a.example") / "fullchain1.pem").write_bytes(other)
    (decision,) = tree.inspect(config.tree).decisions
    assert decision.action == "cannot"
    assert "fullchain.pem is not cert.pem followed by chain.pem" in decision.does
    assert "certbot delete --cert-name a.example" in decision.does
    assert not decision.parse_failure, "certbot renew still loads it"


def _complete_versions(config: Config, name: str, count: int) -> list[bytes]:
    """`count` numbered versions of the lineage's four files in its archive; their certs."""
    archive = _archive(config, name)
    pems = []
    for version in range(1, count + 1):
        pem = make_pem((name,), datetime.now(UTC) - timedelta(days=10 - version))
        for kind, data in lineage_files(pem).items():
            (archive / f"{kind}{version}.pem").write_bytes(data)
        pems.append(pem)
    return pems


def test_a_deleted_live_directory_is_restored_from_the_archives_latest_complete_version(config):
    """live/NAME/ gone, conf and archive kept: the four links made again (relative, to the latest
    version holding all four files), the directory with the archive's mode; renewable."""
    lineage(config, "a.example", APACHE)
    pems = _complete_versions(config, "a.example", 2)
    (_archive(config, "a.example") / "cert3.pem").write_bytes(pems[1])  # a partial version 3
    _archive(config, "a.example").chmod(0o750)
    live = _live(config, "a.example")
    shutil.rmtree(live)
    (decision,) = tree.inspect(config.tree).decisions
    assert decision.renewable, decision.does
    assert decision.names == ("a.example",)
    assert "live/a.example/ is missing: certbot skips the lineage" in decision.problems
    tree.apply(config.tree, tree.inspect(config.tree), now=NOW)
    for kind in ("cert", "privkey", "chain", "fullchain"):
        assert str((live / f"{kind}.pem").readlink()) == f"../../archive/a.example/{kind}2.pem"
    assert stat.S_IMODE(live.stat().st_mode) == 0o750
    assert lineages.read(config.config_dir, "a.example").cert is not None
    (again,) = tree.inspect(config.tree).decisions
    assert again.repairs == ()
    assert again.problems == ()


def test_an_empty_live_directory_and_a_missing_live_are_restored_too(config):
    """live/NAME/ empty, or live/ itself gone (made again 0700, as certbot makes it)."""
    lineage(config, "a.example", APACHE)
    live = _live(config, "a.example")
    for link in live.iterdir():
        link.unlink()
    tree.apply(config.tree, tree.inspect(config.tree), now=NOW)
    assert (live / "cert.pem").resolve() == _archive(config, "a.example") / "cert1.pem"
    shutil.rmtree(config.config_dir / "live")
    tree.apply(config.tree, tree.inspect(config.tree), now=NOW)
    assert stat.S_IMODE((config.config_dir / "live").stat().st_mode) == 0o700
    assert (live / "privkey.pem").resolve() == _archive(config, "a.example") / "privkey1.pem"


def test_a_deleted_live_directory_without_a_whole_archived_version_cannot_be_renewed(config):
    """No version with all four files: `cannot`, in one line, and nothing is made."""
    lineage(config, "a.example", APACHE)
    (_archive(config, "a.example") / "chain1.pem").unlink()
    shutil.rmtree(_live(config, "a.example"))
    (decision,) = tree.inspect(config.tree).decisions
    assert decision.action == "cannot"
    assert "live/a.example/ has none of its four files" in decision.does
    assert decision.does.count("has none") == 1
    tree.apply(config.tree, tree.inspect(config.tree), now=NOW)
    assert not _live(config, "a.example").exists()
