"""Room to save what the CA issues: free space and inodes, checked before the stop."""

from __future__ import annotations

from pathlib import Path

from sidecar.volume.paths import Paths
from sidecar.volume.room import NEED_BYTES, Free, check_room, free_in, shortage

VOLUME = Path("/etc/letsencrypt")


def test_enough_space_and_inodes_is_no_shortage() -> None:
    """Plenty free: no line."""
    assert shortage(Free(VOLUME, 10 * NEED_BYTES, 10_000)) == ""


def test_too_little_space_names_the_directory_and_what_is_free() -> None:
    """100 KiB free: one line naming the directory, the free space and inodes."""
    line = shortage(Free(VOLUME, 100 * 1024, 500))
    assert line.startswith("/etc/letsencrypt has 100 KiB and 500 inodes free")
    assert "free space on that volume" in line


def test_too_few_inodes_is_a_shortage_too() -> None:
    """Space but 3 inodes: refused."""
    assert "3 inodes free" in shortage(Free(VOLUME, 10 * NEED_BYTES, 3))


def test_a_filesystem_without_inode_counts_is_judged_by_space() -> None:
    """f_files 0 (inodes None): only the bytes count."""
    assert shortage(Free(VOLUME, 10 * NEED_BYTES, None)) == ""
    assert "inodes" not in shortage(Free(VOLUME, 10, None)).split(" free")[0]


def test_a_missing_directory_is_measured_at_its_parent(tmp_path: Path) -> None:
    """certbot makes its work dir: the parent's filesystem is what it will use."""
    free = free_in(tmp_path / "not" / "yet")
    assert free.directory == tmp_path / "not" / "yet"
    assert free.bytes > 0


def test_directories_with_room_give_no_line(tmp_path: Path) -> None:
    """A test machine's tmp directory has room: nothing reported, each filesystem once."""
    paths = Paths(tmp_path / "etc", tmp_path / "work", tmp_path / "logs")
    assert check_room(paths) == []
