"""A lineage's files as certbot checks them, and the repairs its own layout rules allow.

certbot (`storage.RenewableCert`) wants `live/NAME/{cert,privkey,chain,fullchain}.pem` to be
symlinks to existing files named `KINDN.pem` in the lineage's archive dir; a plain file or a
dangling link makes it skip the lineage ("expected ... to be a symlink"), an unnumbered target
fails it at every run ("cert is required but missing"), and it writes the next certificate into
the archive dir and points the links at it, so a link into another directory breaks at the next
renewal. `inspect` says what is wrong; the repair only adds numbered copies to the archive dir
and replaces links (a plain file is renamed to a backup beside it, nothing is deleted).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509

from sidecar.volume import consistency
from sidecar.volume.confs import BACKUP

if TYPE_CHECKING:
    from pathlib import Path

KINDS = ("cert", "privkey", "chain", "fullchain")
_NUMBERED = re.compile(r"^(cert|privkey|chain|fullchain)(\d+)\.pem$")
_LINK_TEXT_MAX = 4096  # a symlink checked out as a text file holding its target (git, Windows)


@dataclass(frozen=True, slots=True)
class Step:
    """One file of a repair: `link` ends up pointing (relatively) at `target`; `source` is
    copied to `target` first; a plain file at `link` is first renamed to a backup (`keep`)."""

    kind: str
    link: Path
    target: Path
    source: Path | None = None
    keep: bool = False

    def describe(self, root: Path) -> str:
        link, target = rel(self.link, root), os.path.relpath(self.target, self.link.parent)
        kept = f", the file kept as {self.link.name}{BACKUP}<time>" if self.keep else ""
        if self.source is not None and self.source != self.link:
            return f"{link} -> {target}: {rel(self.source, root)} copied there{kept}"
        if self.source is not None:
            return f"{link} -> {target}: its bytes copied there{kept}"
        return f"{link} -> {target}{kept}"


@dataclass(frozen=True, slots=True)
class Layout:
    """`problems`: what certbot refuses or breaks on; `steps`: the repair (empty when nothing
    needs one, or when it is not safe); `blocking`: why only a person can repair it."""

    problems: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    blocking: tuple[str, ...] = ()
    loads: bool = True  # certbot loads the lineage as it is (four symlinks to existing files)
    cert: Path | None = None  # with `steps`: the file live/NAME/cert.pem shows after the repair


def rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _version(path: Path, kind: str) -> int | None:
    match = _NUMBERED.match(path.name)
    return int(match[2]) if match and match[1] == kind else None


def _in_dir(path: Path, folder: Path) -> bool:
    try:
        return folder.is_dir() and path.parent.samefile(folder)
    except OSError:
        return False


def _text_link(link: Path) -> Path | None:
    """A small plain file holding a relative path to an existing file (a symlink copied as text,
    as git does where symlinks are off)."""
    try:
        if link.stat().st_size > _LINK_TEXT_MAX:
            return None
        text = link.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text or "\n" in text or text.startswith("-----"):
        return None
    target = link.parent / text
    return target if target.is_file() else None


@dataclass(frozen=True, slots=True)
class _State:
    kind: str
    link: Path
    current: Path | None  # the file holding this kind's current bytes (None: lost)
    version: int | None = None  # set when `current` is a numbered file of the archive dir
    problem: str | None = None
    plain: bool = False  # `link` is a plain file, not a symlink


def _plain(link: Path, kind: str, archive: Path, root: Path) -> _State:
    name = rel(link, root)
    if not link.exists():
        return _State(kind, link, None, problem=f"{name} is missing")
    if (text := _text_link(link)) is not None:
        state = _target(kind, link, text, archive, root)
        why = f"{name} is a text file naming {text.name}, not a symlink"
        return dataclasses.replace(state, plain=True, problem=state.problem or why)
    why = f"{name} is a file, not a symlink (a copied tree): certbot skips the lineage"
    return _State(kind, link, link, problem=why, plain=True)


def _state(link: Path, kind: str, archive: Path, root: Path) -> _State:
    if not link.is_symlink():
        return _plain(link, kind, archive, root)
    name = rel(link, root)
    raw = link.readlink()
    target = raw if raw.is_absolute() else link.parent / raw
    if not target.exists():
        where = " (absolute: made on another machine or directory)" if raw.is_absolute() else ""
        why = f"{name} -> {raw} is a broken symlink{where}"
        same = archive / raw.name
        if _version(same, kind) is not None and same.is_file():
            return _State(kind, link, same, _version(same, kind), why)
        return _State(kind, link, None, problem=why)
    state = _target(kind, link, target, archive, root)
    if state.problem is None and raw.is_absolute():
        why = f"{name} -> {raw} is an absolute symlink (certbot's own are relative)"
        return dataclasses.replace(state, problem=why)
    return state


def _target(kind: str, link: Path, target: Path, archive: Path, root: Path) -> _State:
    """What an existing link target means to certbot."""
    name = rel(link, root)
    version = _version(target, kind)
    if version is not None and _in_dir(target, archive):
        return _State(kind, link, target, version)
    if version is None:
        why = f"{name} -> {rel(target, root)} is not numbered ({kind}N.pem): certbot fails"
        return _State(kind, link, target, problem=why + " the lineage at every run")
    why = (
        f"{name} -> {rel(target, root)} is outside {rel(archive, root)} (the conf's archive_dir):"
        " certbot would save the next certificate there and leave this link behind"
    )
    return _State(kind, link, target, problem=why)


def _versions(archive: Path) -> dict[int, set[str]]:
    """The archive's numbered versions, each with the kinds it holds."""
    found: dict[int, set[str]] = {}
    with contextlib.suppress(OSError):
        for path in archive.iterdir():
            if (match := _NUMBERED.match(path.name)) and path.is_file():
                found.setdefault(int(match[2]), set()).add(match[1])
    return found


def versions(archive: Path, kind: str) -> list[int]:
    """The numbered versions of `kind` (`cert`, ...) in the archive, newest first."""
    return sorted((n for n, kinds in _versions(archive).items() if kind in kinds), reverse=True)


def _complete(archive: Path) -> list[int]:
    """The versions holding all four kinds, newest first (certbot's `latest_common_version`)."""
    return sorted(
        (n for n, kinds in _versions(archive).items() if len(kinds) == len(KINDS)), reverse=True
    )


def _all_missing(states: dict[str, _State]) -> bool:
    """live/NAME/ is gone or empty: none of the four is there, not even as a broken link."""
    return all(s.current is None and not s.link.is_symlink() for s in states.values())


def _restore(states: dict[str, _State], archive: Path) -> None:
    """All four links gone (the directory deleted by hand, a partial restore): the archive's
    latest complete version stands in, as certbot itself links a lineage to it."""
    if not _all_missing(states) or not (complete := _complete(archive)):
        return
    for kind, state in states.items():
        target = archive / f"{kind}{complete[0]}.pem"
        states[kind] = dataclasses.replace(state, current=target, version=complete[0])


def _fill_missing(states: dict[str, _State], archive: Path) -> None:
    """A missing link whose file the archive holds at the version the other links use."""
    versions = {s.version for s in states.values() if s.current is not None}
    if len(versions) != 1 or None in versions:
        return
    (version,) = versions
    for kind, state in states.items():
        candidate = archive / f"{kind}{version}.pem"
        if state.current is None and candidate.is_file():
            states[kind] = dataclasses.replace(state, current=candidate, version=version)


def _blocking(states: dict[str, _State], root: Path, name: str) -> list[str]:
    """Why the files cannot be repaired safely (a person must), or []."""
    if _all_missing(states):
        live = rel(states["cert"].link.parent, root)
        why = (
            f"{live}/ has none of its four files, and the archive holds no complete version "
            "(cert, privkey, chain and fullchain with the same number) to link them to: restore "
            f"{live}/ from a backup, or move renewal/{name}.conf and the archive out of the tree "
            "for a new certificate"
        )
        return [why]
    out = [
        f"{s.problem}, and the archive holds no file to link it to"
        for s in states.values()
        if s.current is None and s.problem
    ]
    key = states["privkey"].current
    if key is not None and key.stat().st_size == 0:
        out.append(
            f"{rel(key, root)} (the private key) is empty: no server can use this certificate "
            "and certbot calls the lineage invalid; restore the key from a backup, or obtain a new "
            f"key and certificate in the container: `certbot renew --cert-name {name} "
            "--force-renewal`"
        )
    cert = states["cert"].current
    if cert is not None and not out:
        try:
            x509.load_pem_x509_certificate(cert.read_bytes())
        except (OSError, ValueError):
            out.append(f"{rel(cert, root)} is not a PEM certificate")
    return out


def inspect(live: Path, archive: Path, root: Path, name: str) -> Layout:
    """Lineage `name`'s four files, checked as certbot checks them (links, then whether the
    files belong together); the repair, when it is safe."""
    states = {kind: _state(live / f"{kind}.pem", kind, archive, root) for kind in KINDS}
    problems = tuple(s.problem for s in states.values() if s.problem)
    if _all_missing(states):
        gone = "is empty" if live.is_dir() else "is missing"
        problems = (f"{rel(live, root)}/ {gone}: certbot skips the lineage",)
    _restore(states, archive)
    _fill_missing(states, archive)
    blocking = _blocking(states, root, name)
    loads = all(s.link.is_symlink() and s.link.exists() for s in states.values())
    if blocking:
        return Layout(problems, (), tuple(blocking), loads)
    steps = _steps(states, archive) if problems else ()
    after = {s.kind: s.current for s in states.values()}
    after.update({s.kind: s.source or s.target for s in steps})
    if why := _mismatch(after):
        when = " after the repair" if steps else ""
        why = (
            f"{rel(live, root)}: {why}{when}: certbot refuses such a lineage (`certbot "
            f"certificates` skips it); {_by_hand(live, archive, root, name)}"
        )
        return Layout(problems, (), (why,), loads)
    return Layout(problems, steps, (), loads, after["cert"] if steps else None)


def _read_all(files: dict[str, Path | None]) -> dict[str, bytes] | None:
    try:
        return {kind: path.read_bytes() for kind, path in files.items() if path is not None}
    except OSError:
        return None


def _mismatch(files: dict[str, Path | None]) -> str | None:
    """Why the four files do not belong together as certbot checks them, or None."""
    data = _read_all(files)
    if data is None or len(data) < len(KINDS):
        return None
    return consistency.mismatch(data)


def _by_hand(live: Path, archive: Path, root: Path, name: str) -> str:
    """The repair a person can make when the files do not belong together."""
    for version in _complete(archive):
        if _mismatch({k: archive / f"{k}{version}.pem" for k in KINDS}) is None:
            return (
                f"point {rel(live, root)}/*.pem at {rel(archive, root)}/*{version}.pem, the "
                "latest version whose files belong together"
            )
    return (
        "no archived version's files belong together: restore them from a backup, or delete "
        f"the lineage (`certbot delete --cert-name {name}`) so that a new one is obtained"
    )


def _steps(states: dict[str, _State], archive: Path) -> tuple[Step, ...]:
    """Relink where the archive holds the files; else copy all four in as one new version."""
    versions = {s.version for s in states.values()}
    if len(versions) == 1 and None not in versions:
        return tuple(
            Step(s.kind, s.link, s.current, keep=s.plain)
            for s in states.values()
            if s.problem and s.current is not None
        )
    version = _next_version(archive)
    return tuple(
        Step(s.kind, s.link, archive / f"{s.kind}{version}.pem", s.current, keep=s.plain)
        for s in states.values()
    )


def _next_version(archive: Path) -> int:
    found = [int(m[2]) for p in archive.glob("*.pem") if (m := _NUMBERED.match(p.name))]
    return max(found, default=0) + 1


def repair(layout: Layout, stamp: str) -> list[str]:
    """Carry out the repair; returns what was done. A new archive dir gets the live dir's mode
    (the app reads through it), a copy the owner and mode of its source."""
    done = []
    for step in layout.steps:
        if not step.link.parent.is_dir():
            _make_live(step.link.parent, step.target.parent)
        if step.source is not None and not step.target.exists():
            mode = step.link.parent.stat().st_mode & 0o777
            step.target.parent.mkdir(mode=mode, parents=True, exist_ok=True)
            shutil.copy2(step.source, step.target)
            _same_owner(step.source, step.target)
        kept = ""
        if step.keep:
            backup = step.link.with_name(f"{step.link.name}{BACKUP}{stamp}")
            step.link.rename(backup)
            kept = f" (the file kept as {backup.name})"
        relative = os.path.relpath(step.target, step.link.parent)
        temp = step.link.with_name(f".{step.link.name}.sidecar-new")
        temp.unlink(missing_ok=True)
        temp.symlink_to(relative)
        temp.replace(step.link)
        done.append(f"{step.link.name} -> {relative}{kept}")
    return done


def _make_live(live: Path, archive: Path) -> None:
    """live/NAME/ as certbot makes it: `live/` 0700, the lineage's directory with the mode of its
    archive directory (certbot makes both alike); FILES_* adds the app's bits afterwards."""
    top = live.parent
    if not top.is_dir():
        top.mkdir(parents=True)
        top.chmod(0o700)
    live.mkdir()
    live.chmod(archive.stat().st_mode & 0o777)


def _same_owner(source: Path, target: Path) -> None:
    info = source.stat()
    with contextlib.suppress(PermissionError):
        os.chown(target, info.st_uid, info.st_gid)
