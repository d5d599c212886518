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
from sidecar.volume import access, accounts, adopt, checks, confs, layout, lineages, rebuild
from sidecar.volume.ca import choose_ca
from sidecar.volume.certs import CertInfo, now_utc, parse_cert
from sidecar.volume.files import exclusive_lock
from sidecar.volume.found import Found, Here, TreeSpec
from sidecar.volume.renewal_keys import credentials_key
from sidecar.volume.watch import LOCK

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime


@dataclass(frozen=True, slots=True)
class Adoption:
    """Every lineage's decision, and what is wrong with the tree as a whole; `rebuilds`: the
    DOMAINS lineages whose renewal conf is missing (decided as if it were there, once rebuilt)."""

    decisions: tuple[adopt.Decision, ...]
    findings: tuple[str, ...]
    rebuilds: tuple[rebuild.Rebuild, ...] = ()

    @property
    def unrebuilt(self) -> dict[str, str]:
        """Lineages whose conf is missing and cannot be rebuilt: name -> why (a cycle error)."""
        return {r.name: r.finding for r in self.rebuilds if r.conf is None}

    def on_disk(self) -> Adoption:
        """Only the lineages whose conf is on disk (a dry run, which rebuilds nothing)."""
        planned = {r.name for r in self.rebuilds}
        kept = tuple(d for d in self.decisions if d.name not in planned)
        return Adoption(kept, self.findings, self.rebuilds)


@dataclass(frozen=True, slots=True)
class Rewrite:
    """What `sidecar adopt` did, or with `check` would do: the confs `rewritten`, with the
    `backups` made, the lineages whose conf was `rebuilt` and whose files were `repaired`."""

    adoption: Adoption
    check: bool
    rewritten: int
    backups: tuple[Path, ...] = ()
    rebuilt: tuple[str, ...] = ()
    repaired: tuple[str, ...] = ()


def runnable(program: str) -> bool:
    """A hook's program exists here: an executable path, or a name on PATH."""
    if "/" in program:
        return os.access(program, os.X_OK) and Path(program).is_file()
    return shutil.which(program) is not None


def account_ids(config_dir: Path, server: str) -> tuple[str, ...]:
    """Account ids certbot can load for `server` (its own directory's and the ACMEv1 ones)."""
    return accounts.for_server(config_dir, server).loadable


def here_for(spec: TreeSpec) -> Here:
    """What this container offers the adoption, with the tree's effects to ask."""
    ignore = spec.domains.ignore
    config_dir = spec.paths.config_dir
    return Here(
        config_dir=str(config_dir),
        work_dir=str(spec.paths.work_dir),
        logs_dir=str(spec.paths.logs_dir),
        ca=spec.ca,
        domains=spec.domains.names,
        ignore=frozenset(n for n in ignore if n != "*"),
        ignore_unlisted="*" in ignore,
        plugins=spec.plugins,
        authenticator=spec.authenticator,
        credentials=spec.credentials,
        renew_before_expiry=spec.domains.renew_before_expiry,
        exists=lambda p: Path(p).exists(),
        runnable=runnable,
        accounts=lambda server: accounts.for_server(config_dir, server),
        plugin_problem=spec.plugin_problem,
    )


def _plain(value: Any) -> Any:  # noqa: ANN401 (configobj values)
    if hasattr(value, "dict"):
        return value.dict()
    return list(value) if isinstance(value, list | tuple) else value


def read_lineage(config_dir: Path, name: str, rebuilt: bytes | None = None) -> Found:
    """What the renewal conf (or the one `rebuilt` for it) and the current certificate of
    lineage `name` say."""
    conf_path = config_dir / "renewal" / f"{name}.conf"
    saved = confs.backups(conf_path)
    adopted_from = _adopted_from(saved[0]) if saved else None
    names = tuple(p.name for p in saved)
    current = lineages.read(config_dir, name)
    live = lineages.live_dir(config_dir, name)
    files = layout.inspect(live, lineages.archive_dir(config_dir, name), config_dir, name)
    cert = current.cert or _repaired_cert(files)
    missing = f"{layout.rel(live, config_dir)}/cert.pem does not exist"
    cert_error = None if cert else current.problem or missing
    try:
        conf = confs.load_conf(conf_path) if rebuilt is None else confs.load_text(rebuilt)
    except ConfigError as error:
        return Found(name, conf_error=str(error), cert=cert, cert_error=cert_error)
    params = conf["renewalparams"]
    now_using = f"{params.get('authenticator', 'none')}/{params.get('installer', 'none')}"
    if adopted_from == now_using:
        adopted_from = None  # the backup was of another change (IGNORE_LINEAGES, paths, ...)
    top = {k: str(v) for k, v in conf.items() if k != "renewalparams" and isinstance(v, str)}
    marked = adopt.IGNORE_MARK in params.comments.get("autorenew", [])
    return Found(
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


def _repaired_cert(files: layout.Layout) -> CertInfo | None:
    """The certificate the layout repair puts in place (live/NAME/ restored from the archive)."""
    if files.cert is None:
        return None
    try:
        return parse_cert(files.cert.read_bytes())
    except (OSError, ValueError):
        return None


def _adopted_from(backup: Path) -> str | None:
    try:
        params = confs.load_conf(backup)["renewalparams"]
    except ConfigError:
        return None
    return f"{params.get('authenticator', 'none')}/{params.get('installer', 'none')}"


def renewal_params(spec: TreeSpec, here: Here, lineage: str) -> dict[str, str]:
    """What the sidecar's own `certonly` saves in `[renewalparams]`, in certbot's order (the
    key's values, from the certificate, go before `post_hook`); the account only when the tree
    holds exactly one for ACME_SERVER (with several, certbot would ask)."""
    server = choose_ca(spec.ca, lineage).directory
    listed = accounts.for_server(spec.paths.config_dir, server).listed
    params = {"account": listed[0]} if len(listed) == 1 else {}
    params["http01_port"] = str(spec.http01_port)
    if spec.http01_address:
        params["http01_address"] = spec.http01_address
    params["post_hook"] = confs.POST_HOOK
    params.update(config_dir=here.config_dir, work_dir=here.work_dir, logs_dir=here.logs_dir)
    params.update(server=server, authenticator=here.authenticator)
    if here.credentials:
        params[credentials_key(here.authenticator)] = here.credentials
    params["installer"] = here.installer
    return params


def _rebuilds(spec: TreeSpec, here: Here) -> tuple[rebuild.Rebuild, ...]:
    """DOMAINS lineages left without their conf (not a live directory another conf names)."""
    config_dir = spec.paths.config_dir
    owned = {lineages.live_dir(config_dir, name).name for name in lineages.names(config_dir)}
    found = (
        rebuild.plan(config_dir, cert.name, renewal_params(spec, here, cert.name))
        for cert in spec.domains.specs
        if cert.name not in owned
    )
    return tuple(item for item in found if item is not None)


def inspect(spec: TreeSpec, now: datetime | None = None) -> Adoption:
    """Every lineage's decision and the tree's problems; reads only."""
    here = here_for(spec)
    when = now or now_utc()
    rebuilds = _rebuilds(spec, here)
    texts = {r.name: r.conf for r in rebuilds if r.conf is not None}
    decisions = tuple(
        adopt.decide(read_lineage(spec.paths.config_dir, name, texts.get(name)), here, when)
        for name in sorted({*lineages.names(spec.paths.config_dir), *texts})
    )
    findings = (*(r.finding for r in rebuilds), *checks.check_tree(spec, decisions))
    return Adoption(decisions, findings, rebuilds)


def apply(spec: TreeSpec, adoption: Adoption, now: datetime | None = None) -> list[Path]:
    """Write every decision's edits into its conf (after a backup); returns the backups made."""
    made = []
    stamp = (now or now_utc()).strftime("%Y%m%dT%H%M%SZ")
    rebuilt = _write_rebuilt(spec, adoption)
    unwritten = {r.name for r in adoption.rebuilds} - rebuilt  # decided on a conf not written
    for decision in adoption.decisions:
        if decision.name in unwritten:
            continue
        _repair(decision, stamp)
        if not decision.edits or decision.name in rebuilt:
            continue
        conf_path = spec.paths.config_dir / "renewal" / f"{decision.name}.conf"
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


def _write_rebuilt(spec: TreeSpec, adoption: Adoption) -> set[str]:
    """Write each rebuilt conf, with its lineage's edits already in it (no backup: there was
    nothing to keep); returns the lineages written."""
    edits = {d.name: d.edits for d in adoption.decisions}
    written = set()
    for item in adoption.rebuilds:
        if item.conf is None or item.name not in edits:
            continue
        path = spec.paths.config_dir / "renewal" / f"{item.name}.conf"
        try:
            confs.create(path, item.conf, edits[item.name])
        except (OSError, ConfigError) as error:
            logger.error("could not write {}: {}", path, error, certificate=item.name)
            continue
        written.add(item.name)
        logger.info("renewal/{}.conf written: {}", item.name, item.says, certificate=item.name)
    return written


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


def prepare(spec: TreeSpec, *, dry_run: bool = False) -> Adoption:
    """At the start of a cycle: decide, rewrite what needs it (not on a dry run), report."""
    adoption = inspect(spec)
    if dry_run:
        adoption = adoption.on_disk()  # a dry run writes no conf, so certbot knows none of these
    else:
        apply(spec, adoption)
        access.apply_safely(spec.paths.config_dir, spec.domains, spec.policy)
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
    spec: TreeSpec, *, check: bool, held: Callable[[], object] = lambda: None
) -> Rewrite:
    """`sidecar adopt [--check]`: the plan, and (without --check) the rewrite under the lock;
    `held` runs before the lock is released, whatever happened (the CLI starts what the record
    of stopped targets names: whoever holds the lock does)."""
    if check:
        adoption = inspect(spec)
        rebuilt = tuple(r.name for r in adoption.rebuilds if r.conf is not None)
        pending = sum(1 for d in adoption.decisions if d.edits and d.name not in rebuilt)
        repairs = tuple(d.name for d in adoption.decisions if d.repairs)
        return Rewrite(adoption, check=True, rewritten=pending, rebuilt=rebuilt, repaired=repairs)
    with exclusive_lock(spec.paths.state_dir / LOCK):
        try:
            adoption = inspect(spec)
            made = apply(spec, adoption)
        finally:
            held()
    renewal = spec.paths.config_dir / "renewal"
    return Rewrite(
        adoption,
        check=False,
        rewritten=len(made),
        backups=tuple(made),
        rebuilt=tuple(r.name for r in adoption.rebuilds if (renewal / f"{r.name}.conf").exists()),
        repaired=tuple(d.name for d in adoption.decisions if d.repairs),
    )
