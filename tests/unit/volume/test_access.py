from __future__ import annotations

import stat
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from sidecar.volume import access as files_access
from sidecar.volume import tree
from sidecar.volume.access import COMBINED, Policy, apply, apply_lineage
from tests.unit.helpers import make_pem, make_settings

if TYPE_CHECKING:
    from pathlib import Path

KEY = b"-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n"


class Owners:
    """chown as a record (the tests need not run as root)."""

    def __init__(self) -> None:
        self.calls: dict[str, tuple[int, int]] = {}

    def __call__(self, path: str, uid: int, gid: int) -> None:
        self.calls[path.rsplit("/", 1)[-1]] = (uid, gid)


def certbot_lineage(config_dir: Path, name: str = "a.example", versions: int = 1) -> Path:
    """A lineage with certbot's own modes: dirs 0700, key 0600, certs 0644; relative links."""
    archive = config_dir / "archive" / name
    live = config_dir / "live" / name
    for folder in (config_dir / "archive", config_dir / "live", archive, live):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
    pem = make_pem((name,), datetime.now(UTC))
    for n in range(1, versions + 1):
        for kind in ("cert", "chain", "fullchain", "privkey"):
            path = archive / f"{kind}{n}.pem"
            path.write_bytes(KEY if kind == "privkey" else pem)
            path.chmod(0o600 if kind == "privkey" else 0o644)
    for kind in ("cert", "chain", "fullchain", "privkey"):
        link = live / f"{kind}.pem"
        link.unlink(missing_ok=True)
        link.symlink_to(f"../../archive/{name}/{kind}{versions}.pem")
    conf = config_dir / "renewal" / f"{name}.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("[renewalparams]\nauthenticator = sidecar\n", encoding="utf-8")
    return archive


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_nothing_is_touched_without_settings(tmp_path):
    """No FILES_* and no COMBINED_PEM: certbot's modes stay."""
    config = make_settings(tmp_path / "le")
    archive = certbot_lineage(config.config_dir, "example.com")
    assert apply(config.config_dir, config.domains, config.policy) == {}
    assert mode(archive) == 0o700
    assert mode(archive / "privkey1.pem") == 0o600


def test_group_gets_read_on_key_and_certs_and_search_on_the_directories(tmp_path):
    """FILES_GID=1000, FILES_PERMS=640: key 0640, certs 0640, dirs g+x, group 1000 everywhere."""
    cd = tmp_path / "le"
    archive = certbot_lineage(cd)
    owners = Owners()
    changed = apply_lineage(cd, "a.example", Policy(gid=1000, perms=0o640), chown=owners)
    assert changed
    assert mode(archive / "privkey1.pem") == 0o640
    assert mode(archive / "fullchain1.pem") == 0o640
    for folder in (cd / "live", cd / "archive", cd / "live" / "a.example", archive):
        assert mode(folder) == 0o710, folder
    assert owners.calls["privkey1.pem"] == (-1, 1000)
    assert owners.calls["a.example"] == (-1, 1000)


def test_private_key_is_never_readable_by_others_whatever_files_perms_says(tmp_path):
    """FILES_PERMS=644 with FILES_GID: certs 0644, key 0640; without a group, key 0600."""
    cd = tmp_path / "le"
    archive = certbot_lineage(cd)
    apply_lineage(cd, "a.example", Policy(gid=1000, perms=0o644), chown=Owners())
    assert mode(archive / "cert1.pem") == 0o644
    assert mode(archive / "privkey1.pem") == 0o640
    apply_lineage(cd, "a.example", Policy(uid=1000, perms=0o644), chown=Owners())
    assert mode(archive / "privkey1.pem") == 0o600


def test_owner_only_makes_the_app_the_owner_and_dirs_searchable(tmp_path):
    """FILES_UID alone: files owned by the app (key 0600), dirs keep root as owner, o+x."""
    cd = tmp_path / "le"
    archive = certbot_lineage(cd)
    owners = Owners()
    apply_lineage(cd, "a.example", Policy(uid=1000), chown=owners)
    assert owners.calls["privkey1.pem"] == (1000, -1)
    assert "a.example" not in owners.calls, "directories keep their owner"
    assert mode(archive / "privkey1.pem") == 0o600
    assert mode(archive) == 0o701


def test_directory_bits_are_only_added_never_removed(tmp_path):
    """A 0755 live/ stays 0755 (someone else may read it)."""
    cd = tmp_path / "le"
    certbot_lineage(cd)
    (cd / "live").chmod(0o755)
    apply_lineage(cd, "a.example", Policy(gid=1000), chown=Owners())
    assert mode(cd / "live") == 0o755


def test_every_archived_version_is_set_and_a_reused_key_link_is_skipped(tmp_path):
    """privkey1..N all follow the rule; privkey2.pem as a symlink (reuse_key) is left."""
    cd = tmp_path / "le"
    archive = certbot_lineage(cd, versions=2)
    (archive / "privkey2.pem").unlink()
    (archive / "privkey2.pem").symlink_to("privkey1.pem")
    owners = Owners()
    apply_lineage(cd, "a.example", Policy(gid=1000, perms=0o640), chown=owners)
    assert mode(archive / "privkey1.pem") == 0o640
    assert mode(archive / "cert2.pem") == 0o640
    assert "privkey2.pem" not in owners.calls


def test_second_application_changes_nothing(tmp_path):
    """Idempotent: only what differs is changed."""
    cd = tmp_path / "le"
    certbot_lineage(cd)
    apply_lineage(cd, "a.example", Policy(gid=0, perms=0o640))
    assert apply_lineage(cd, "a.example", Policy(gid=0, perms=0o640)) == []


def test_combined_pem_is_key_then_full_chain_and_private(tmp_path):
    """COMBINED_PEM: live/NAME/combined.pem = privkey + fullchain, mode of a key, rewritten
    only when the lineage changed."""
    cd = tmp_path / "le"
    archive = certbot_lineage(cd)
    live = cd / "live" / "a.example"
    apply_lineage(cd, "a.example", Policy(combined=True))
    combined = live / COMBINED
    assert combined.read_bytes() == KEY + (archive / "fullchain1.pem").read_bytes()
    assert mode(combined) == 0o600
    assert apply_lineage(cd, "a.example", Policy(combined=True)) == []
    certbot_lineage(cd, versions=2)
    apply_lineage(cd, "a.example", Policy(combined=True, gid=1000), chown=Owners())
    assert combined.read_bytes() == KEY + (archive / "fullchain2.pem").read_bytes()
    assert mode(combined) == 0o640


def test_ignored_lineages_are_left_alone_and_listed_ones_always_done(tmp_path):
    """IGNORE_LINEAGES=*: only the DOMAINS lineage gets the modes."""
    config = make_settings(
        tmp_path / "le", DOMAINS="a.example", IGNORE_LINEAGES="*", FILES_PERMS="640"
    )
    certbot_lineage(config.config_dir, "a.example")
    certbot_lineage(config.config_dir, "old.example")
    assert files_access.lineages_for(config.config_dir, config.domains) == ["a.example"]
    assert list(apply(config.config_dir, config.domains, config.policy)) == ["a.example"]


def test_a_failure_is_logged_and_does_not_stop_the_app_start(tmp_path, monkeypatch):
    """apply_safely never raises (the post-hook starts the app right after)."""
    config = make_settings(tmp_path / "le", FILES_GID="1000")

    def boom(*_views: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(files_access, "apply", boom)
    files_access.apply_safely(config.config_dir, config.domains, config.policy)


@pytest.mark.parametrize(
    ("policy", "key", "dirs"),
    [
        (Policy(), 0o600, stat.S_IXOTH),
        (Policy(perms=0o644), 0o600, stat.S_IXOTH),
        (Policy(gid=5), 0o640, stat.S_IXGRP),
        (Policy(uid=5), 0o600, stat.S_IXOTH),
        (Policy(uid=5, gid=5, perms=0o600), 0o600, stat.S_IXGRP),
        (Policy(gid=5, perms=0o444), 0o440, stat.S_IXGRP | stat.S_IXOTH),
    ],
)
def test_policy_modes(policy, key, dirs):
    """The key mode never has bits for others; the dirs get only the search bits needed."""
    assert policy.key_mode == key
    assert policy.dir_bits == dirs


def point_archive_dir(config_dir: Path, name: str, folder: Path) -> None:
    """The lineage's renewal conf names `folder` as its archive_dir (its files linked there)."""
    conf = config_dir / "renewal" / f"{name}.conf"
    conf.write_text(f"archive_dir = {folder}\n" + conf.read_text(encoding="utf-8"), "utf-8")


def account_dir(config_dir: Path) -> Path:
    """An ACME account as certbot keeps it: its key 0600, owned by root, dirs 0700."""
    folder = config_dir / "accounts" / "acme.test" / "directory" / "abc"
    folder.mkdir(parents=True)
    for part in (config_dir / "accounts", folder):
        part.chmod(0o700)
    (folder / "private_key.json").write_text("{}", encoding="utf-8")
    (folder / "private_key.json").chmod(0o600)
    return folder


def test_an_archive_dir_pointed_at_the_account_is_left_alone(tmp_path):
    """archive_dir = accounts/...: FILES_* makes neither the account key the app's nor 0644,
    and changes nothing else of that lineage either."""
    cd = tmp_path / "le"
    certbot_lineage(cd)
    folder = account_dir(cd)
    point_archive_dir(cd, "a.example", folder)
    owners = Owners()
    assert apply_lineage(cd, "a.example", Policy(uid=1000, perms=0o644), chown=owners) == []
    assert owners.calls == {}
    assert mode(folder / "private_key.json") == 0o600
    assert mode(folder) == 0o700
    assert mode(cd / "live") == 0o700


def test_a_lineage_directory_linked_out_of_the_tree_is_left_alone(tmp_path):
    """archive/NAME a symlink to a directory elsewhere: decided by where it resolves."""
    cd = tmp_path / "le"
    archive = certbot_lineage(cd)
    elsewhere = tmp_path / "elsewhere"
    archive.rename(elsewhere)
    archive.symlink_to(elsewhere)
    owners = Owners()
    assert apply_lineage(cd, "a.example", Policy(gid=1000), chown=owners) == []
    assert owners.calls == {}
    assert mode(elsewhere / "privkey1.pem") == 0o600


def test_a_lineage_directory_linked_inside_archive_is_changed_at_its_real_path(tmp_path):
    """archive/NAME -> archive/real: inside archive/, so set; the link itself is never chowned
    (the change goes to the directory it resolves to)."""
    cd = tmp_path / "le"
    archive = certbot_lineage(cd)
    real = cd / "archive" / "real"
    archive.rename(real)
    archive.symlink_to("real")
    owners = Owners()
    assert apply_lineage(cd, "a.example", Policy(gid=1000), chown=owners)
    assert mode(real / "privkey1.pem") == 0o640
    assert "real" in owners.calls
    assert "a.example" in owners.calls  # live/a.example, a real directory
    assert archive.is_symlink()


def test_the_tree_check_names_a_lineage_directory_outside_its_place(tmp_path):
    """One finding per conf whose archive_dir lies outside archive/, saying FILES_* left it."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example", FILES_UID="1000")
    certbot_lineage(config.config_dir)
    point_archive_dir(config.config_dir, "a.example", account_dir(config.config_dir))
    findings = tree.inspect(config.tree).findings
    line = (
        "renewal/a.example.conf: archive_dir accounts/acme.test/directory/abc is outside "
        "archive/: FILES_* left it alone"
    )
    assert line in findings
    plain = make_settings(tmp_path / "le", DOMAINS="a.example")
    findings = tree.inspect(plain.tree).findings
    assert any("certbot writes the lineage's files there" in f for f in findings)
