"""The certbot tree on the volume: reading what `adopt` decides on, and writing the decisions
into the renewal confs (a timestamped backup beside each changed one)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from sidecar.errors import ConfigError
from sidecar.settings import installed_plugins
from sidecar.volume import access, accounts, adopt, checks, confs, layout, lineages
from sidecar.volume.certs import now_utc
from sidecar.volume.files import exclusive_lock
from sidecar.volume.watch import LOCK

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from sidecar.settings import Settings


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


def runnable(program: str) -> bool:
    """A hook's program exists here: an executable path, or a name on PATH."""
    if "/" in program:
        return os.access(program, os.X_OK) and Path(program).is_file()
    return shutil.which(program) is not None


def account_ids(config_dir: Path, server: str) -> tuple[str, ...]:
    """Account ids certbot can load for `server` (its own directory's and the ACMEv1 ones)."""
    return accounts.for_server(config_dir, server).loadable


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
        accounts=lambda server: accounts.for_server(config.config_dir, server),
        renew_before_expiry=config.renew_before_expiry,
        **_sidecars_authenticator(config),
    )


def _sidecars_authenticator(config: Settings) -> dict[str, str]:
    """With CHALLENGE=dns: its plugin and credentials file, as certbot saves them in a conf."""
    auth = config.dns_authenticator
    if not auth:
        return {}
    if config.dns_credentials is None or (config.dns and config.dns.credentials == "aws"):
        return {"authenticator": auth}
    return {"authenticator": auth, "credentials": str(config.dns_credentials)}


def _plain(value: Any) -> Any:  # noqa: ANN401 (configobj values)
    if hasattr(value, "dict"):
        return value.dict()
    return list(value) if isinstance(value, list | tuple) else value


def read_lineage(config_dir: Path, name: str) -> adopt.Found:
    """What the renewal conf and the current certificate of lineage `name` say."""
    conf_path = config_dir / "renewal" / f"{name}.conf"
    saved = confs.backups(conf_path)
    adopted_from = _adopted_from(saved[0]) if saved else None
    names = tuple(p.name for p in saved)
    current = lineages.read(config_dir, name)
    cert = current.cert
    live = lineages.live_dir(config_dir, name)
    missing = f"{layout.rel(live, config_dir)}/cert.pem does not exist"
    cert_error = current.problem or (None if cert else missing)
    try:
        conf = confs.load_conf(conf_path)
    except ConfigError as error:
        return adopt.Found(name, conf_error=str(error), cert=cert, cert_error=cert_error)
    files = layout.inspect(live, lineages.archive_dir(config_dir, name), config_dir, name)
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
        layout=files,
    )


def _adopted_from(backup: Path) -> str | None:
    try:
        params = confs.load_conf(backup)["renewalparams"]
    except ConfigError:
        return None
    return f"{params.get('authenticator', 'none')}/{params.get('installer', 'none')}"


def inspect(config: Settings, now: datetime | None = None) -> Adoption:
    """Every lineage's decision and the tree's problems; reads only."""
    here = here_for(config)
    when = now or now_utc()
    decisions = tuple(
        adopt.decide(read_lineage(config.config_dir, name), here, when)
        for name in lineages.names(config.config_dir)
    )
    return Adoption(decisions, tuple(checks.check_tree(config, decisions)))


def apply(config: Settings, adoption: Adoption, now: datetime | None = None) -> list[Path]:
    """Write every decision's edits into its conf (after a backup); returns the backups made."""
    made = []
    stamp = (now or now_utc()).strftime("%Y%m%dT%H%M%SZ")
    for decision in adoption.decisions:
        _repair(decision, stamp)
        if not decision.edits:
            continue
        conf_path = config.config_dir / "renewal" / f"{decision.name}.conf"
        try:
            backup = confs.edit(conf_path, decision.edits, stamp)
        except (OSError, ConfigError) as error:
            logger.error("could not rewrite {}: {}", conf_path, error, certificate=decision.name)
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


def _repair(decision: adopt.Decision, stamp: str) -> None:
    """The lineage's live/ links and archive copies, as certbot's layout wants them."""
    if not decision.repairs:
        return
    name = decision.name
    try:
        done = layout.repair(layout.Layout(steps=decision.repairs), stamp)
    except OSError as error:
        logger.error("could not repair the files of {}: {}", name, error, certificate=name)
        return
    logger.info("files of {} repaired: {}", name, "; ".join(done), certificate=name)


def prepare(config: Settings, *, dry_run: bool = False) -> Adoption:
    """At the start of a cycle: decide, rewrite what needs it (not on a dry run), report."""
    adoption = inspect(config)
    if not dry_run:
        apply(config, adoption)
        access.apply_safely(config)
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


def adopt_command(
    config: Settings, *, check: bool, held: Callable[[], object] = lambda: None
) -> str:
    """`sidecar adopt [--check]`: the plan, and (without --check) the rewrite under the lock;
    `held` runs before the lock is released, whatever happened (the CLI starts what the record
    of stopped targets names: whoever holds the lock does)."""
    if check:
        adoption = inspect(config)
        pending = sum(1 for d in adoption.decisions if d.edits)
        repairs = sum(1 for d in adoption.decisions if d.repairs)
        also = f", the files of {repairs} lineage(s) repaired" if repairs else ""
        tail = f"{pending} renewal conf(s) would be rewritten{also}; nothing was changed (--check)"
        return f"{adoption.render()}\n{tail}"
    with exclusive_lock(config.state_dir / LOCK):
        try:
            adoption = inspect(config)
            made = apply(config, adoption)
        finally:
            held()
    repaired = [d.name for d in adoption.decisions if d.repairs]
    tail = f"{len(made)} renewal conf(s) rewritten" + (
        " (backups: " + ", ".join(p.name for p in made) + ")" if made else ""
    )
    if repaired:
        tail += "; files repaired: " + ", ".join(repaired)
    return f"{adoption.render()}\n{tail}"
