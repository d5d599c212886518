"""The certbot tree on the volume: reading what `adopt` decides on, checking its sanity, and
writing the decisions into the renewal confs (a timestamped backup beside each changed one)."""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from loguru import logger

from sidecar import adopt, files_access
from sidecar.certs import now_utc, parse_cert
from sidecar.errors import ConfigError
from sidecar.files import exclusive_lock
from sidecar.renewal_conf import load_conf, save_conf
from sidecar.runner import common_args

if TYPE_CHECKING:
    from datetime import datetime

    from sidecar.certs import CertInfo
    from sidecar.settings import Settings

BACKUP = ".sidecar-backup-"  # renewal/NAME.conf.sidecar-backup-20250312T101500Z (not *.conf)
HOOK_DIRS = ("pre", "deploy", "post")


@dataclass(frozen=True, slots=True)
class Adoption:
    """Every lineage's decision, and what is wrong with the tree as a whole."""

    decisions: tuple[adopt.Decision, ...]
    findings: tuple[str, ...]

    def render(self) -> str:
        return adopt.render(self.decisions, self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "lineages": [d.to_json() for d in self.decisions],
            "tree": list(self.findings),
        }


def lineage_names(config_dir: Path) -> list[str]:
    renewal = config_dir / "renewal"
    return sorted(p.stem for p in renewal.glob("*.conf")) if renewal.is_dir() else []


def installed_plugins() -> frozenset[str]:
    """certbot plugins installed next to the sidecar (its `certbot.plugins` entry points)."""
    return frozenset(e.name for e in entry_points(group="certbot.plugins"))


def runnable(program: str) -> bool:
    """A hook's program exists here: an executable path, or a name on PATH."""
    if "/" in program:
        return os.access(program, os.X_OK) and Path(program).is_file()
    return shutil.which(program) is not None


def account_ids(config_dir: Path, server: str) -> tuple[str, ...]:
    """Account ids certbot keeps for `server` (accounts/<host:port/path>/<id>/)."""
    parsed = urlparse(server)
    path = config_dir / "accounts" / (parsed.netloc + parsed.path).lstrip("/")
    if not path.is_dir():
        return ()
    return tuple(sorted(p.name for p in path.iterdir() if (p / "regr.json").exists()))


def here_for(config: Settings) -> adopt.Here:
    unlisted = "*" in config.ignore_lineages
    return adopt.Here(
        config_dir=str(config.config_dir),
        work_dir=str(config.work_dir),
        logs_dir=str(config.logs_dir),
        acme_server=config.acme_server,
        domains=frozenset(s.name for s in config.domains),
        ignore=frozenset(n for n in config.ignore_lineages if n != "*"),
        ignore_unlisted=unlisted,
        plugins=installed_plugins(),
        exists=lambda p: Path(p).exists(),
        runnable=runnable,
        accounts=lambda server: account_ids(config.config_dir, server),
        installer=_flag(common_args(config, dry_run=False), "--installer"),
    )


def _flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def backups(conf: Path) -> list[Path]:
    return sorted(conf.parent.glob(conf.name + BACKUP + "*"))


def _plain(value: Any) -> Any:  # noqa: ANN401 (configobj values)
    if hasattr(value, "dict"):
        return value.dict()
    return list(value) if isinstance(value, list | tuple) else value


def read_cert(config_dir: Path, name: str) -> tuple[CertInfo | None, str | None]:
    path = config_dir / "live" / name / "cert.pem"
    if not path.exists():
        if path.is_symlink():
            return None, f"live/{name}/cert.pem is a broken symlink"
        return None, f"live/{name}/cert.pem does not exist"
    try:
        return parse_cert(path.read_bytes()), None
    except (OSError, ValueError) as error:
        return None, f"live/{name}/cert.pem is not a readable certificate: {error}"


def read_lineage(config_dir: Path, name: str) -> adopt.Found:
    """What the renewal conf and the current certificate of lineage `name` say."""
    conf_path = config_dir / "renewal" / f"{name}.conf"
    saved = backups(conf_path)
    adopted_from = _adopted_from(saved[0]) if saved else None
    names = tuple(p.name for p in saved)
    cert, cert_error = read_cert(config_dir, name)
    try:
        conf = load_conf(conf_path)
    except ConfigError as error:
        return adopt.Found(name, conf_error=str(error), cert=cert, cert_error=cert_error)
    params = conf["renewalparams"]
    now_using = f"{params.get('authenticator', 'none')}/{params.get('installer', 'none')}"
    if adopted_from == now_using:
        adopted_from = None  # the backup was of another change (IGNORE_LINEAGES, paths, ...)
    top = {k: str(v) for k, v in conf.items() if k != "renewalparams" and isinstance(v, str)}
    marked = adopt.IGNORE_MARK in params.comments.get("autorenew", [])
    return adopt.Found(
        name=name,
        top=top,
        params={k: _plain(v) for k, v in params.items()},
        autorenew_marked=marked,
        cert=cert,
        cert_error=cert_error,
        backups=names,
        adopted_from=adopted_from,
    )


def _adopted_from(backup: Path) -> str | None:
    try:
        params = load_conf(backup)["renewalparams"]
    except ConfigError:
        return None
    return f"{params.get('authenticator', 'none')}/{params.get('installer', 'none')}"


def inspect(config: Settings, now: datetime | None = None) -> Adoption:
    """Every lineage's decision and the tree's problems; reads only."""
    here = here_for(config)
    when = now or now_utc()
    decisions = tuple(
        adopt.decide(read_lineage(config.config_dir, name), here, when)
        for name in lineage_names(config.config_dir)
    )
    return Adoption(decisions, tuple(check_tree(config, decisions)))


def apply(config: Settings, adoption: Adoption, now: datetime | None = None) -> list[Path]:
    """Write every decision's edits into its conf (after a backup); returns the backups made."""
    made = []
    stamp = (now or now_utc()).strftime("%Y%m%dT%H%M%SZ")
    for decision in adoption.decisions:
        if not decision.edits:
            continue
        conf_path = config.config_dir / "renewal" / f"{decision.name}.conf"
        backup = None
        try:
            conf = load_conf(conf_path)
            for edit in decision.edits:
                _apply_edit(conf, edit)
            backup = _backup(conf_path, stamp)
            save_conf(conf, conf_path)
        except (OSError, ConfigError) as error:
            logger.error("could not rewrite {}: {}", conf_path, error, certificate=decision.name)
            if backup is not None:
                backup.unlink(missing_ok=True)  # the conf is unchanged: no backup of it
            continue
        made.append(backup)
        logger.info(
            "renewal/{} rewritten ({}), backup {}: {}",
            conf_path.name,
            decision.action,
            backup.name,
            "; ".join(decision.changes),
            certificate=decision.name,
        )
    return made


def _backup(conf_path: Path, stamp: str) -> Path:
    target = conf_path.with_name(conf_path.name + BACKUP + stamp)
    n = 1
    while target.exists():
        n += 1
        target = conf_path.with_name(f"{conf_path.name}{BACKUP}{stamp}-{n}")
    shutil.copy2(conf_path, target)
    return target


def _apply_edit(conf: Any, edit: adopt.Edit) -> None:  # noqa: ANN401 (configobj)
    section = conf if edit.section == adopt.TOP else conf[edit.section]
    if edit.value is None:
        if edit.key in section:
            del section[edit.key]
        return
    section[edit.key] = edit.value
    if edit.key == "autorenew" and edit.value == "False":
        section.comments[edit.key] = [adopt.IGNORE_MARK]


def prepare(config: Settings, *, dry_run: bool = False) -> Adoption:
    """At the start of a cycle: decide, rewrite what needs it (not on a dry run), report."""
    adoption = inspect(config)
    if not dry_run:
        apply(config, adoption)
        files_access.apply_safely(config)
    for decision in adoption.decisions:
        name = decision.name
        if decision.action == "cannot":
            logger.error("{}: {}", name, decision.does, certificate=name)
            continue
        level = "DEBUG" if decision.action == "sidecar" else "INFO"
        logger.log(level, "{}: {} ({})", name, decision.does, decision.found, certificate=name)
        for problem in decision.problems:
            logger.warning("{}", problem, certificate=name)
    for finding in adoption.findings:
        logger.warning("{}", finding)
    return adoption


def adopt_command(config: Settings, *, check: bool) -> str:
    """`sidecar adopt [--check]`: the plan, and (without --check) the rewrite under the lock."""
    if check:
        adoption = inspect(config)
        pending = sum(1 for d in adoption.decisions if d.edits)
        tail = f"{pending} renewal conf(s) would be rewritten; nothing was changed (--check)"
        return f"{adoption.render()}\n{tail}"
    with exclusive_lock(config.state_dir / "lock"):
        adoption = inspect(config)
        made = apply(config, adoption)
    tail = f"{len(made)} renewal conf(s) rewritten" + (
        " (backups: " + ", ".join(p.name for p in made) + ")" if made else ""
    )
    return f"{adoption.render()}\n{tail}"


# --- sanity of the tree -------------------------------------------------------------------------


def check_tree(config: Settings, decisions: tuple[adopt.Decision, ...]) -> list[str]:
    """What is wrong with the tree, each in one line; nothing is changed or deleted."""
    config_dir = config.config_dir
    confs = set(lineage_names(config_dir))
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
