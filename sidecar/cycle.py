"""One renewal cycle: issue what is missing, renew what is due, and never leave the app down."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from loguru import logger

from sidecar import adopt, files_access, observe, recovery, tree
from sidecar.certs import CertInfo, now_utc, read_lineage_cert
from sidecar.containers import ContainerControl, each
from sidecar.errors import ConfigError, SidecarError
from sidecar.failures import Failure, classify
from sidecar.files import exclusive_lock
from sidecar.plan import changed_lineages, expected_renewals, plan_cycle
from sidecar.plugin_env import EXPECTED_ENV
from sidecar.renewal_conf import set_renew_before_expiry
from sidecar.runner import CertbotResult, certonly_args, renew_args
from sidecar.state import load_state, save_state

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping
    from pathlib import Path

    from sidecar.settings import Settings
    from sidecar.verify import Check


class Certbot(Protocol):
    def run(self, args: list[str], env: Mapping[str, str] | None = None) -> CertbotResult: ...


@dataclass(frozen=True, slots=True)
class CycleResult:
    changed: tuple[str, ...]
    errors: tuple[str, ...]
    duration: float
    failures: tuple[Failure, ...] = ()
    checks: tuple[Check, ...] = ()  # what the app served, per certificate/endpoint/name (VERIFY)
    downtime: float | None = None  # seconds the app was down, when this cycle stopped it
    restarted: tuple[str, ...] = ()  # targets restarted because they served an old certificate

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def permanent(self) -> bool:
        """A failure the short backoff cannot fix (the CA said so): wait the full interval."""
        return any(f.permanent for f in self.failures)

    @property
    def not_before(self) -> datetime | None:
        """The latest retry time a CA gave (rate limits)."""
        return max((f.not_before for f in self.failures if f.not_before), default=None)


def lineage_names(config_dir: Path) -> list[str]:
    """Every lineage certbot knows in this tree (renewal confs), configured or not."""
    renewal = config_dir / "renewal"
    return sorted(p.stem for p in renewal.glob("*.conf")) if renewal.is_dir() else []


def snapshot(
    config_dir: Path, names: list[str], strict: Collection[str] | None = None
) -> dict[str, CertInfo | None]:
    """Current certificate per lineage. A broken one raises ConfigError if it is in `strict`
    (default: all); otherwise it is reported and counted as having none, so one broken old
    lineage does not stop the renewal of the others."""
    out: dict[str, CertInfo | None] = {}
    for name in names:
        try:
            out[name] = read_lineage_cert(config_dir, name)
        except ConfigError as error:
            if strict is None or name in strict:
                raise
            logger.warning("{} (lineage {} is skipped)", error, name)
            out[name] = None
    return out


def configured(config: Settings) -> frozenset[str]:
    return frozenset(s.name for s in config.domains)


def cert_written_at(config_dir: Path, name: str) -> datetime:
    path = (config_dir / "live" / name / "cert.pem").resolve()
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def run_cycle(
    config: Settings,
    certbot: Certbot,
    control: ContainerControl,
    *,
    force: bool = False,
    dry_run: bool = False,
    precheck: Callable[[], None] = lambda: None,
) -> CycleResult:
    """Run one cycle under the lock; the cycle's outcome is saved for `status` and `health`.

    `precheck` runs before anything is stopped (the CLI checks that the ACME server answers).
    """
    began = time.monotonic()
    began_at = now_utc()
    with exclusive_lock(config.state_dir / "lock"):
        errors: list[str] = []
        failures: list[Failure] = []
        changed: tuple[str, ...] = ()
        try:
            certbot_run = _CertbotCalls(certbot, errors, failures)
            precheck()
            changed = _cycle(config, certbot_run, control, errors, force=force, dry_run=dry_run)
        except SidecarError as error:
            errors.append(str(error))
        result = CycleResult(changed, tuple(errors), time.monotonic() - began, tuple(failures))
        if not dry_run:
            result = observe.after_cycle(config, control, result, began_at)
            _save(config, result)
    _log(result, dry_run=dry_run)
    return result


def _cycle(
    config: Settings,
    certbot: _CertbotCalls,
    control: ContainerControl,
    errors: list[str],
    *,
    force: bool,
    dry_run: bool,
) -> tuple[str, ...]:
    if left := recovery.restore(config.state_dir, control):
        logger.warning("started {} again: an earlier run had left them stopped", ", ".join(left))
    adoption = tree.prepare(config, dry_run=dry_run)  # confs made renewable here (README)
    lineages = lineage_names(config.config_dir)
    names = sorted({*lineages, *configured(config)})
    before = snapshot(config.config_dir, names, configured(config))
    plan = plan_cycle(config.domains, before)
    for name in lineages:
        path = config.config_dir / "renewal" / f"{name}.conf"
        if set_renew_before_expiry(path, config.renew_before_expiry):
            logger.info("set renew_before_expiry in {} (RENEW_BEFORE_EXPIRY)", path)
    try:
        for spec in plan.issue:
            logger.info(
                "obtaining a certificate for {}", ", ".join(spec.domains), certificate=spec.name
            )
            certbot(certonly_args(config, spec, dry_run=dry_run), spec.name)
        if plan.renew and not (force and len(plan.issue) == len(names)):
            args = renew_args(config, force=force, dry_run=dry_run)
            skipped = adopt.ignored(adoption.decisions)
            renewable = {n: c for n, c in before.items() if n not in skipped}
            due = expected_renewals(renewable, now_utc(), config.renew_before, force=force)
            runs = adopt.renew_runs(args, adoption.decisions, config.acme_server)
            for run in runs:  # one, unless forced with IGNORE_LINEAGES in effect
                certbot(run, "renewal", {EXPECTED_ENV: str(due if len(runs) == 1 else 1)})
    finally:
        if not dry_run:
            files_access.apply_safely(config)  # FILES_UID/GID/PERMS, COMBINED_PEM
        recovery.restore(config.state_dir, control)
    if dry_run:
        return ()
    changed = changed_lineages(before, snapshot(config.config_dir, names, configured(config)))
    if changed:
        written = max(cert_written_at(config.config_dir, n) for n in changed)
        errors += _reload_stale(control, written, config.reload_signal)
    return changed


@dataclass(frozen=True, slots=True)
class _CertbotCalls:
    """Runs certbot and files each failure, classified, into the cycle's lists."""

    certbot: Certbot
    errors: list[str]
    failures: list[Failure]

    def __call__(self, args: list[str], what: str, env: Mapping[str, str] | None = None) -> None:
        result = self.certbot.run(args, env)
        if result.ok:
            return
        how = "timed out" if result.timed_out else f"failed (exit {result.returncode})"
        failure = classify(result.tail)
        self.failures.append(failure)
        advice = "" if failure.kind == "error" else f" ({failure.reason})"
        if failure.permanent:
            advice = f" ({failure.reason}: retrying soon will not fix this)"
        self.errors.append(f"certbot {args[0]} for {what} {how}: {result.summary()}{advice}")


def _reload_stale(
    control: ContainerControl, written: datetime, reload_signal: str | None
) -> list[str]:
    """Targets started before the new certificate was written: sent RELOAD_SIGNAL when the app
    reloads in place, restarted otherwise."""
    stale = [t for t in control.targets() if t.running and t.started_at < written]
    if not stale:
        return []
    names = ", ".join(t.name for t in stale)
    if reload_signal:
        logger.info("sending {} to {} to load the new certificate", reload_signal, names)
        return each(lambda t: control.signal(t, reload_signal), stale)
    logger.info("restarting {} to load the new certificate", names)
    return each(control.restart, stale)


def _save(config: Settings, result: CycleResult) -> None:
    state = load_state(config.state_dir)
    at = now_utc()
    save_state(
        config.state_dir,
        dataclasses.replace(
            state,
            last_cycle_at=at,
            last_result="ok" if result.ok else "failed: " + "; ".join(result.errors),
            last_success_at=at if result.ok else state.last_success_at,
            failures=0 if result.ok else state.failures + 1,
            renewed=result.changed or state.renewed,
        ),
    )


def _log(result: CycleResult, *, dry_run: bool) -> None:
    label = "dry run" if dry_run else "cycle"
    fields = {"event": label.replace(" ", "-"), "duration": round(result.duration, 3)}
    if not result.ok:
        for error in result.errors:
            logger.error("{} failed: {}", label, error, outcome="failed", **fields)
    elif result.changed:
        logger.success(
            "{} done in {:.1f}s: new certificate for {}",
            label,
            result.duration,
            ", ".join(result.changed),
            outcome="renewed",
            **fields,
        )
    else:
        logger.info(
            "{} done in {:.1f}s: {}",
            label,
            result.duration,
            "nothing was saved" if dry_run else "nothing was due",
            outcome="ok",
            **fields,
        )
