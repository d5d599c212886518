from __future__ import annotations

import errno
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sidecar.errors import ConfigError, LockedError
from sidecar.volume.files import exclusive_lock, read_json, write_atomic, write_json


def test_json_round_trips(tmp_path):
    """What write_json writes, read_json returns."""
    data = {"failures": 2, "renewed": ["a.example"], "nested": {"ok": True, "none": None}}
    write_json(tmp_path / "state.json", data)
    assert read_json(tmp_path / "state.json") == data


def test_json_is_written_indented_with_sorted_keys(tmp_path):
    """The files on the volume are readable and diff cleanly."""
    write_json(tmp_path / "s.json", {"b": 1, "a": 2})
    assert (tmp_path / "s.json").read_text(encoding="utf-8") == '{\n  "a": 2,\n  "b": 1\n}'


def test_missing_directories_are_created(tmp_path):
    """CONFIG_DIR/sidecar need not exist before the first write."""
    path = tmp_path / "le" / "sidecar" / "state.json"
    write_json(path, {})
    assert read_json(path) == {}


def test_values_json_does_not_know_are_written_as_text(tmp_path):
    """Datetimes and paths become strings instead of failing the write."""
    when = datetime(2025, 3, 12, tzinfo=UTC)
    write_json(tmp_path / "s.json", {"at": when, "path": Path("/etc/letsencrypt")})
    assert read_json(tmp_path / "s.json") == {
        "at": "2025-03-12 00:00:00+00:00",
        "path": "/etc/letsencrypt",
    }


def test_rewrite_replaces_the_file_and_leaves_no_temporary_files(tmp_path):
    """The new content replaces the old one atomically; nothing else is left behind."""
    path = tmp_path / "s.json"
    write_json(path, {"v": 1})
    write_json(path, {"v": 2})
    assert read_json(path) == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_failed_write_keeps_the_old_file_and_cleans_up(tmp_path):
    """A write that fails midway leaves the previous content, and no temporary file."""
    path = tmp_path / "s.json"
    write_json(path, {"v": 1})
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular reference"):
        write_json(path, {"v": circular})
    assert read_json(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What os.fsync is called on from now on: the path of each file or directory synced."""
    seen: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        seen.append(f"{kind} {Path(f'/proc/self/fd/{fd}').readlink()}")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_a_write_is_synced_with_its_directory_after_the_rename(tmp_path, monkeypatch):
    """A power loss right after write_atomic returns keeps the new file (the record of stopped
    targets must outlive the stop that follows it)."""
    (tmp_path / "sidecar").mkdir()
    seen = synced(monkeypatch)
    write_atomic(tmp_path / "sidecar" / "stopped.json", b"{}")
    assert seen[0].startswith(f"file {tmp_path}/sidecar/.stopped.json.")
    assert seen[1:] == [f"dir {tmp_path}/sidecar"]


def test_a_new_directory_is_synced_into_its_parent_too(tmp_path, monkeypatch):
    """The first write makes sidecar/: its entry in the parent is synced as well."""
    seen = synced(monkeypatch)
    write_atomic(tmp_path / "sidecar" / "stopped.json", b"{}")
    assert seen[1:] == [f"dir {tmp_path}/sidecar", f"dir {tmp_path}"]


def test_a_file_system_refusing_a_directory_sync_still_gets_the_write(tmp_path, monkeypatch):
    """Some file systems refuse fsync on a directory (EINVAL): the write stands."""
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_json(tmp_path / "s.json", {"v": 1})
    assert read_json(tmp_path / "s.json") == {"v": 1}


def test_missing_file_reads_as_none(tmp_path):
    """No state yet is not an error."""
    assert read_json(tmp_path / "nope.json") is None


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe"])
def test_corrupt_file_is_a_config_error_naming_it(tmp_path, content):
    """Broken JSON or bytes are reported with the file's path."""
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"is unreadable") as caught:
        read_json(path)
    assert str(path) in str(caught.value)


def test_directory_in_place_of_the_file_is_a_config_error(tmp_path):
    """Other OS errors are reported the same way."""
    (tmp_path / "state.json").mkdir()
    with pytest.raises(ConfigError, match=r"is unreadable"):
        read_json(tmp_path / "state.json")


def test_valid_json_of_any_shape_is_returned(tmp_path):
    """read_json does not judge the shape; callers do."""
    (tmp_path / "list.json").write_text(json.dumps([1, 2]), encoding="utf-8")
    assert read_json(tmp_path / "list.json") == [1, 2]


# exclusive_lock


def test_second_lock_on_the_same_path_is_refused(tmp_path):
    """While one cycle holds the lock, another raises LockedError naming the lock file."""
    path = tmp_path / "sidecar" / "lock"
    held = pytest.raises(LockedError, match=r"another renewal cycle is running")
    with exclusive_lock(path), held as caught, exclusive_lock(path):
        pytest.fail("entered a held lock")
    assert str(path) in str(caught.value)


def test_lock_is_free_again_after_the_block(tmp_path):
    """Leaving the block releases it for the next cycle."""
    path = tmp_path / "lock"
    with exclusive_lock(path):
        pass
    with exclusive_lock(path):
        pass


def test_lock_is_released_when_the_block_raises(tmp_path):
    """A failing cycle does not keep the lock."""
    path = tmp_path / "lock"
    with pytest.raises(RuntimeError), exclusive_lock(path):
        raise RuntimeError
    with exclusive_lock(path):
        pass


def test_locks_on_different_paths_are_independent(tmp_path):
    """Only the same lock file excludes."""
    with exclusive_lock(tmp_path / "a"), exclusive_lock(tmp_path / "b"):
        pass


def test_lock_creates_its_directory_and_keeps_the_file(tmp_path):
    """The lock file lives on the shared volume; it stays after release."""
    path = tmp_path / "le" / "sidecar" / "lock"
    with exclusive_lock(path):
        assert path.exists()
    assert path.exists()


def read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on every open for writing fails as on a volume remounted read-only."""
    real = os.open

    def ro_open(path: str, flags: int, *args: int, **kwargs: object) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", ro_open)


def test_the_lock_is_taken_on_a_read_only_volume(tmp_path, monkeypatch):
    """The lock file exists but cannot be opened for writing: locked read-only, and it excludes
    (the restore of the app at start needs no write)."""
    path = tmp_path / "lock"
    path.touch()
    read_only(monkeypatch)
    held = pytest.raises(LockedError, match=r"another renewal cycle is running")
    with exclusive_lock(path), held, exclusive_lock(path):
        pytest.fail("entered a held lock")


def test_no_lock_file_on_a_read_only_volume_is_no_lock_at_all(tmp_path, monkeypatch):
    """Nothing was ever locked there and nothing can be made: the block runs without a lock."""
    read_only(monkeypatch)
    ran: list[bool] = []
    with exclusive_lock(tmp_path / "sidecar" / "lock"):
        ran.append(True)
    assert ran == [True]
