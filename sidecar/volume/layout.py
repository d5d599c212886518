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
    """Lineage `name`'s four files, checked as certbot checks them; the repair, when it is safe."""
    states = {kind: _state(live / f"{kind}.pem", kind, archive, root) for kind in KINDS}
    problems = tuple(s.problem for s in states.values() if s.problem)
    _fill_missing(states, archive)
    blocking = _blocking(states, root, name)
    loads = all(s.link.is_symlink() and s.link.exists() for s in states.values())
    if blocking or not problems:
        return Layout(problems, (), tuple(blocking), loads)
    return Layout(problems, _steps(states, archive), (), loads)


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


def _same_owner(source: Path, target: Path) -> None:
    info = source.stat()
    with contextlib.suppress(PermissionError):
        os.chown(target, info.st_uid, info.st_gid)
