"""What is wrong with the certbot tree as a whole, each in one line; nothing is changed."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from sidecar.volume import access, accounts, adopt, layout, lineages
from sidecar.volume.servers import server_label

if TYPE_CHECKING:
    from pathlib import Path

    from sidecar.volume.found import TreeSpec

HOOK_DIRS = ("pre", "deploy", "post")


def check_tree(spec: TreeSpec, decisions: tuple[adopt.Decision, ...]) -> list[str]:
    """What is wrong with the tree, each in one line; nothing is changed or deleted."""
    config_dir = spec.paths.config_dir
    confs = sorted({*lineages.names(config_dir), *(d.name for d in decisions)})  # and rebuilt
    # live/ directory -> the lineage whose conf names it (certbot follows the conf's paths)
    owners = {lineages.live_dir(config_dir, name).name: name for name in confs}
    findings: list[str] = []
    live = config_dir / "live"
    lives = sorted(p.name for p in live.iterdir() if p.is_dir()) if live.is_dir() else []
    for folder in lives:
        owner = owners.get(folder)
        archive = lineages.archive_dir(config_dir, owner or folder)
        found = layout.inspect(live / folder, archive, config_dir, owner or folder)
        findings += found.problems
        if owner is None:
            findings.append(f"live/{folder} has no renewal conf: certbot does not renew it")
        elif owner != folder:
            findings.append(f"renewal/{owner}.conf names live/{folder} (a renamed lineage)")
    findings += _check_suffixes(spec, decisions)
    findings += _check_places(spec, confs)
    findings += _check_archive(spec, confs)
    findings += _check_accounts(spec)
    findings += _check_hook_dirs(config_dir)
    return findings


def _check_accounts(spec: TreeSpec) -> list[str]:
    """certbot asks which account when it finds several and none is named: `certonly` for a new
    DOMAINS certificate would fail."""
    found = accounts.for_server(spec.paths.config_dir, spec.ca.directory).listed
    existing = set(lineages.names(spec.paths.config_dir))
    if len(found) <= 1 or all(cert.name in existing for cert in spec.domains.specs):
        return []
    label = server_label(spec.ca.directory)
    line = (
        f"{len(found)} accounts exist for {label} ({', '.join(found)}): certbot would ask which "
        "one to obtain a new certificate with; keep one (move the others out of accounts/)"
    )
    return [line]


def _check_suffixes(spec: TreeSpec, decisions: tuple[adopt.Decision, ...]) -> list[str]:
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
    for cert in spec.domains.specs:
        if cert.name in by_name:
            continue
        same = [n for n, names in names_of.items() if names == frozenset(cert.domains)]
        if same:
            out.append(
                f"DOMAINS certificate {cert.name} has no lineage of that name, but "
                f"{', '.join(same)} has its names: the sidecar obtains live/{cert.name}; "
                "point the app there (or put that lineage's first name first in DOMAINS)"
            )
    return out


def _check_places(spec: TreeSpec, names: list[str]) -> list[str]:
    """A conf whose lineage directories lie outside `live/` and `archive/`: certbot writes keys
    there, and FILES_* does not make them the app's (an `archive_dir` naming `accounts/...`
    would hand the account key to the app)."""
    config_dir = spec.paths.config_dir
    active = spec.policy.active
    tail = "FILES_* left it alone" if active else "certbot writes the lineage's files there"
    out = []
    for name in names:
        for kind, path in access.strays(config_dir, name).items():
            what = "archive_dir" if kind == "archive" else "its live directory"
            shown = layout.rel(path, config_dir)
            real = path.resolve()
            if real != path.absolute():
                shown += f" (-> {real})"
            out.append(f"renewal/{name}.conf: {what} {shown} is outside {kind}/: {tail}")
    return out


def _check_archive(spec: TreeSpec, names: list[str]) -> list[str]:
    config_dir = spec.paths.config_dir
    out = []
    for name in names:
        archive = lineages.archive_dir(config_dir, name)
        if not archive.is_dir():
            continue
        for path in sorted(archive.iterdir()):
            if path.is_symlink() or not path.is_file():
                continue
            mode = stat.S_IMODE(path.stat().st_mode)
            rel = layout.rel(path, config_dir)
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
