"""What is wrong with the certbot tree as a whole, each in one line; nothing is changed."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from sidecar.volume import adopt, lineages

if TYPE_CHECKING:
    from pathlib import Path

    from sidecar.settings import Settings

HOOK_DIRS = ("pre", "deploy", "post")


def check_tree(config: Settings, decisions: tuple[adopt.Decision, ...]) -> list[str]:
    """What is wrong with the tree, each in one line; nothing is changed or deleted."""
    config_dir = config.config_dir
    confs = set(lineages.names(config_dir))
    findings = []
    live = config_dir / "live"
    lives = sorted(p.name for p in live.iterdir() if p.is_dir()) if live.is_dir() else []
    for name in lives:
        findings += _check_links(config_dir, name)
        if name not in confs:
            findings.append(f"live/{name} has no renewal conf: certbot does not renew it")
    findings += _check_suffixes(config, decisions)
    findings += _check_archive(config_dir, sorted(confs))
    findings += _check_hook_dirs(config_dir)
    return findings


def _check_links(config_dir: Path, name: str) -> list[str]:
    out = []
    for kind in adopt.FILES:
        link = config_dir / "live" / name / f"{kind}.pem"
        rel = f"live/{name}/{kind}.pem"
        if not link.is_symlink():
            if link.exists():
                out.append(f"{rel} is a file, not a symlink: certbot cannot renew this lineage")
            else:
                out.append(f"{rel} is missing")
            continue
        target = link.readlink()
        if not link.exists():
            where = (
                " (an absolute link made on another machine or directory)"
                if target.is_absolute()
                else " (is the whole volume mounted?)"
            )
            out.append(f"{rel} -> {target} is a broken symlink{where}")
    return out


def _check_suffixes(config: Settings, decisions: tuple[adopt.Decision, ...]) -> list[str]:
    by_name = {d.name: d for d in decisions}
    names_of = {d.name: frozenset(d.names) for d in decisions if d.names}
    out = []
    for name in sorted(by_name):
        base = adopt.suffix_base(name)
        if base is None:
            continue
        if base in by_name and name in names_of and names_of.get(base) == names_of[name]:
            out.append(
                f"{name} is a numbered copy of {base} with the same names: both are renewed; "
                f"check which one the app reads (live/{base} or live/{name})"
            )
        else:
            out.append(f"{name} is a numbered lineage (certbot adds -NNNN when a name is taken)")
    for spec in config.domains:
        if spec.name in by_name:
            continue
        same = [n for n, names in names_of.items() if names == frozenset(spec.domains)]
        if same:
            out.append(
                f"DOMAINS certificate {spec.name} has no lineage of that name, but "
                f"{', '.join(same)} has its names: the sidecar obtains live/{spec.name}; "
                "point the app there (or put that lineage's first name first in DOMAINS)"
            )
    return out


def _check_archive(config_dir: Path, names: list[str]) -> list[str]:
    out = []
    for name in names:
        archive = config_dir / "archive" / name
        if not archive.is_dir():
            continue
        for path in sorted(archive.iterdir()):
            if path.is_symlink() or not path.is_file():
                continue
            mode = stat.S_IMODE(path.stat().st_mode)
            rel = f"archive/{name}/{path.name}"
            if path.name.startswith("privkey") and mode & 0o007:
                out.append(f"{rel} is readable by everyone (mode {mode:04o}): a private key")
            elif mode & 0o002:
                out.append(f"{rel} is writable by everyone (mode {mode:04o})")
    return out


def _check_hook_dirs(config_dir: Path) -> list[str]:
    out: list[str] = []
    for which in HOOK_DIRS:
        folder = config_dir / "renewal-hooks" / which
        if not folder.is_dir():
            continue
        out.extend(
            f"renewal-hooks/{which}/{hook.name} runs at every certbot run here "
            "(a failing hook only logs a warning)"
            for hook in sorted(folder.iterdir())
            if hook.is_file() and os.access(hook, os.X_OK)
        )
    return out
