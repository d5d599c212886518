"""The one lineage reader: names from the renewal confs, current certificates, write times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sidecar.errors import ConfigError
from sidecar.volume.certs import parse_cert
from sidecar.volume.lineages import names as lineage_names
from sidecar.volume.lineages import read, read_pems, read_strict, snapshot, written_at
from tests.unit.helpers import install_cert, make_pem


def test_lineage_without_a_certificate_reads_as_none(tmp_path):
    """No live/NAME/cert.pem yet: nothing to describe."""
    assert read_strict(tmp_path, "example.com") is None


def test_lineage_certificate_is_read_through_certbots_symlink(tmp_path):
    """live/NAME/cert.pem links into archive/; the certificate behind it is read."""
    install_cert(tmp_path, "example.com", make_pem(("example.com", "www.example.com")))
    info = read_strict(tmp_path, "example.com")
    assert info is not None
    assert info.names == ("example.com", "www.example.com")


def test_broken_symlink_is_a_config_error_hinting_at_the_volume(tmp_path):
    """A live/ link whose archive/ is missing means only part of the tree is mounted."""
    archive_file = install_cert(tmp_path, "example.com", make_pem())
    archive_file.unlink()
    with pytest.raises(ConfigError, match=r"is a broken symlink \(is the whole volume mounted\?\)"):
        read_strict(tmp_path, "example.com")


def test_unreadable_certificate_is_a_config_error_naming_the_file(tmp_path):
    """A corrupt cert.pem is reported with its path."""
    install_cert(tmp_path, "example.com", b"garbage")
    path = tmp_path / "live" / "example.com" / "cert.pem"
    with pytest.raises(ConfigError, match=r"is not a readable certificate") as caught:
        read_strict(tmp_path, "example.com")
    assert str(path) in str(caught.value)


def test_lineages_are_the_renewal_confs_of_the_tree(tmp_path):
    """Every renewal/NAME.conf is a lineage; other files are not."""
    assert lineage_names(tmp_path) == []
    (tmp_path / "renewal").mkdir()
    for name in ("b.example.conf", "a.example.conf", "notes.txt"):
        (tmp_path / "renewal" / name).write_text("", encoding="utf-8")
    assert lineage_names(tmp_path) == ["a.example", "b.example"]


def test_snapshot_reads_each_lineage(tmp_path):
    """Lineages with a certificate are described; the others are None."""
    install_cert(tmp_path, "a.example", make_pem(("a.example",)))
    shot = snapshot(tmp_path, ["a.example", "b.example"])
    assert shot["b.example"] is None
    cert = shot["a.example"]
    assert cert is not None
    assert cert.names == ("a.example",)


def test_certificate_write_time_is_taken_from_the_archive_file(tmp_path):
    """live/ is a symlink; the time the certificate was written is the target's mtime."""
    written = datetime(2025, 3, 12, 10, 0, 0, 250000, tzinfo=UTC)
    install_cert(tmp_path, "a.example", make_pem(), written_at=written)
    assert written_at(tmp_path, "a.example") == written


def test_a_broken_lineage_outside_strict_is_counted_as_having_none(tmp_path):
    """One broken old lineage does not stop the others: only the strict ones raise."""
    install_cert(tmp_path, "a.example", b"garbage")
    install_cert(tmp_path, "b.example", make_pem(("b.example",)))
    shot = snapshot(tmp_path, ["a.example", "b.example"], strict={"b.example"})
    assert shot["a.example"] is None
    assert shot["b.example"] is not None
    with pytest.raises(ConfigError, match="not a readable certificate"):
        snapshot(tmp_path, ["a.example"], strict={"a.example"})


def test_read_says_why_a_certificate_cannot_be_read(tmp_path):
    """The problem names the file; a lineage without a certificate has no problem."""
    assert read(tmp_path, "none.example").problem is None
    install_cert(tmp_path, "a.example", b"garbage")
    problem = read(tmp_path, "a.example").problem
    assert problem is not None
    assert str(tmp_path / "live" / "a.example" / "cert.pem") in problem


def test_pems_are_the_current_certificate_with_its_full_chain_and_key(tmp_path):
    """The exact bytes certbot's live/ links point at; the serial from the full chain's leaf."""
    pem = make_pem(("a.example",))
    install_cert(tmp_path, "a.example", pem)
    pems = read_pems(tmp_path, "a.example")
    assert pems is not None
    live = tmp_path / "live" / "a.example"
    assert pems.fullchain == (live / "fullchain.pem").read_bytes()
    assert pems.fullchain.startswith(pem)
    assert pems.privkey == (live / "privkey.pem").read_bytes()
    assert pems.cert == parse_cert(pem)
    assert "PRIVATE KEY" not in repr(pems)
    assert read_pems(tmp_path, "none.example") is None


def test_pems_of_a_renamed_lineage_come_from_the_live_dir_its_conf_names(tmp_path):
    """renewal/a.example.conf naming live/other.example: all read there, not from a stale
    live/a.example."""
    install_cert(tmp_path, "a.example", make_pem(("a.example",)))
    current = make_pem(("a.example",))
    install_cert(tmp_path, "other.example", current)
    renewal = tmp_path / "renewal"
    (renewal / "other.example.conf").replace(renewal / "a.example.conf")
    pems = read_pems(tmp_path, "a.example")
    assert pems is not None
    assert pems.fullchain == (tmp_path / "live" / "other.example" / "fullchain.pem").read_bytes()
    assert pems.fullchain.startswith(current)
    assert pems.cert == parse_cert(current)


def test_a_full_chain_beginning_with_another_certificate_is_a_config_error(tmp_path):
    """fullchain.pem and cert.pem must be the same certificate: the secret's label names it."""
    install_cert(tmp_path, "a.example", make_pem(("a.example",)))
    fullchain = tmp_path / "live" / "a.example" / "fullchain.pem"
    fullchain.unlink()
    fullchain.write_bytes(make_pem(("a.example",)))
    with pytest.raises(ConfigError, match=r"fullchain\.pem begins with another certificate"):
        read_pems(tmp_path, "a.example")


@pytest.mark.parametrize("part", ["fullchain", "privkey"])
def test_a_missing_full_chain_or_key_is_a_config_error_naming_the_file(tmp_path, part):
    """A dangling live/ link (part of the tree missing): the file is named."""
    install_cert(tmp_path, "a.example", make_pem(("a.example",)))
    link = tmp_path / "live" / "a.example" / f"{part}.pem"
    link.unlink()
    link.symlink_to("gone.pem")
    with pytest.raises(ConfigError, match=f"{part}.pem"):
        read_pems(tmp_path, "a.example")


def test_pems_of_an_unreadable_certificate_are_a_config_error(tmp_path):
    """cert.pem that is no certificate: as read_strict says."""
    install_cert(tmp_path, "a.example", b"garbage")
    with pytest.raises(ConfigError, match="not a readable certificate"):
        read_pems(tmp_path, "a.example")
