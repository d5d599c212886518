"""One renewal cycle, one short function per step: restore, adopt, issue, renew, start the app
again, reload what serves an old certificate, verify. The app is never left down."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from loguru import logger

from sidecar.certbot.argv import certonly_args, eab_options, renew_args, renew_runs
from sidecar.certbot.challenges import challenge_for
from sidecar.certbot.failures import Failure, classify, only_parse_failures
from sidecar.certbot.inside import EXPECTED_ENV
from sidecar.cycle.plan import changed_lineages, configured, expected_renewals, plan_cycle
from sidecar.cycle.result import CycleResult
from sidecar.cycle.verify import verify_served
from sidecar.errors import SidecarError
from sidecar.targets import outage
from sidecar.targets.reload import load_certificate
from sidecar.volume import access, adopt, journal, lineages, tree
from sidecar.volume.certs import CertInfo, now_utc

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from sidecar.certbot.runner import CertbotResult
    from sidecar.cycle.plan import Plan
    from sidecar.settings import Settings
    from sidecar.shutdown import StopRequest
    from sidecar.targets.base import TargetControl
    from sidecar.volume.tree import Adoption


class Certbot(Protocol):
    def run(
        self,
        args: list[str],
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> CertbotResult: ...


def run_cycle(
    config: Settings,
    certbot: Certbot,
    control: TargetControl,
    stop: StopRequest,
    *,
    force: bool = False,
    dry_run: bool = False,
    precheck: Callable[[], None] = lambda: None,
    after: Callable[[CycleResult, datetime], CycleResult] | None = None,
) -> CycleResult:
    """Run one cycle under the lock; `after` (the outcome: counters, alerts, the journal) runs
    under it too. `precheck` runs before anything is stopped (the CLI checks the ACME server).
    Whatever happens, what the record names is started before the lock is released; once
    `stop` is requested no further certbot run starts."""
    began = time.monotonic()
    began_at = now_utc()
    with outage.cycle_lock(config.state_dir, control):
        errors: list[str] = []
        failures: list[Failure] = []
        changed: tuple[str, ...] = ()
        try:
            precheck()
            calls = _CertbotCalls(certbot, errors, failures, _account_secrets(config))
            changed = _steps(
                config, calls, control, errors, failures, force=force, dry_run=dry_run, stop=stop
            )
        except SidecarError as error:
            errors.append(str(error))
        result = CycleResult(
            changed,
            tuple(errors),
            time.monotonic() - began,
            tuple(failures),
            stopped=stop.requested(),
        )
        if not dry_run:
            result = _verify(config, control, result)
            if after is not None:
                result = after(result, began_at)
    _log(result, stop, dry_run=dry_run)
    return result


def _steps(
    config: Settings,
    certbot: _CertbotCalls,
    control: TargetControl,
    errors: list[str],
    failures: list[Failure],
    *,
    force: bool,
    dry_run: bool,
    stop: StopRequest,
) -> tuple[str, ...]:
    outage.restore_left(config.state_dir, control)
    adoption = tree.prepare(config, dry_run=dry_run)  # confs made renewable here (README)
    names = sorted({*lineages.names(config.config_dir), *configured(config.domains)})
    before, broken = _read(config, names, errors)
    plan = plan_cycle(config.domains, before, broken, _held(adoption))
    _refuse(plan, adoption, errors, failures)
    try:
        _issue(config, certbot, plan, stop, dry_run=dry_run)
        _renew(config, certbot, plan, adoption, before, force=force, dry_run=dry_run, stop=stop)
    finally:
        _start_again(config, control, dry_run=dry_run)
    if dry_run:
        return ()
    # read the names again: a lineage certbot made in this cycle is a new certificate too
    after = lineages.certs(config.config_dir, {*names, *lineages.names(config.config_dir)})
    changed = changed_lineages(before, after)
    errors += _deliver(config, control)
    errors += _reload_stale(config, control, changed)
    return changed


def _account_secrets(config: Settings) -> dict[str, str]:
    """EAB only while no account exists for the CA: it is needed to register, never after."""
    return {} if tree.account_ids(config.config_dir, config.acme_server) else eab_options(config)


def _read(
    config: Settings, names: list[str], errors: list[str]
) -> tuple[dict[str, CertInfo | None], frozenset[str]]:
    """Every lineage's current certificate. One that cannot be read is left alone (not issued
    again over it); a configured one is also this cycle's error, so it is alerted and backed off,
    while the others are renewed as usual."""
    current = {name: lineages.read(config.config_dir, name) for name in names}
    wanted = configured(config.domains)
    for name, item in current.items():
        if item.problem and name in wanted:
            errors.append(f"{item.problem}; {name} is not renewed until it is repaired")
        elif item.problem:
            logger.warning("{} (lineage {} is skipped)", item.problem, name)
    broken = frozenset(name for name, item in current.items() if item.problem)
    return {name: item.cert for name, item in current.items()}, broken


def _held(adoption: Adoption) -> frozenset[str]:
    """DOMAINS lineages the tree holds but certbot cannot load: a conf whose files it skips, or
    files whose conf is missing and cannot be rebuilt."""
    broken = {d.name for d in adoption.decisions if d.in_domains and d.parse_failure}
    return frozenset(broken | set(adoption.unrebuilt))


def _refuse(plan: Plan, adoption: Adoption, errors: list[str], failures: list[Failure]) -> None:
    """Each lineage that cannot be renewed or issued as it is: one error, the same text at every
    cycle (alerted once), and permanent (the full interval: retrying soon changes nothing)."""
    lines = list(adoption.unrebuilt.values())
    lines += [
        f"{spec.name}: not obtaining a certificate for {', '.join(spec.domains)}: the tree holds "
        f"lineage {spec.name} (renewal/{spec.name}.conf) but certbot cannot load it, so "
        f"`certbot certonly` would save a new lineage {spec.name}-0001 beside it instead of "
        "repairing it; repair it by hand (`sidecar adopt --check` says how)"
        for spec in plan.held
        if spec.name not in adoption.unrebuilt
    ]
    errors += lines
    failures += [Failure("lineageBroken", "a person must repair it", permanent=True)] * len(lines)


def _issue(
    config: Settings, certbot: _CertbotCalls, plan: Plan, stopping: StopRequest, *, dry_run: bool
) -> None:
    for spec in plan.issue:
        if stopping.requested():
            return  # no further certbot run: each could stop the app again
        logger.info(
            "obtaining a certificate for {}", ", ".join(spec.domains), certificate=spec.name
        )
        certbot(certonly_args(config, spec, dry_run=dry_run), spec.name)


def _renew(
    config: Settings,
    certbot: _CertbotCalls,
    plan: Plan,
    adoption: Adoption,
    before: Mapping[str, CertInfo | None],
    *,
    force: bool,
    dry_run: bool,
    stop: StopRequest,
) -> None:
    """One `certbot renew` for every lineage (certbot decides what is due)."""
    if not plan.renew or (force and len(plan.issue) == len(before)) or stop.requested():
        return
    skipped = adopt.ignored(adoption.decisions)
    renewable = {n: c for n, c in before.items() if n not in skipped}
    due = expected_renewals(renewable, now_utc(), config.renew_before, force=force)
    args = renew_args(config, force=force, dry_run=dry_run)
    runs = renew_runs(args, adoption.decisions, challenge_for(config))
    # confs certbot cannot load, outside DOMAINS: reported by the adoption, not this cycle's error
    unloadable = sum(d.parse_failure and not d.in_domains for d in adoption.decisions)
    for run in runs:  # one, unless per lineage (a dry run, dns mode, forced with ignored ones)
        if stop.requested():
            return
        env = {EXPECTED_ENV: str(due if len(runs) == 1 else 1)}
        certbot(run, "renewal", env, unloadable if "--cert-name" not in run else 0)


def _start_again(config: Settings, control: TargetControl, *, dry_run: bool) -> None:
    """Whatever happened: the app's files readable, then what the sidecar stopped started."""
    if not dry_run:
        access.apply_safely(config)  # FILES_UID/GID/PERMS, COMBINED_PEM
    outage.restore(config.state_dir, control)


def _deliver(config: Settings, control: TargetControl) -> list[str]:
    """CERT_DELIVERY=secret: every service gets the current certificates' secrets; at every
    cycle, as `docker stack deploy` resets a service's secrets to the stack file's. Not a service
    still recorded as stopped: restoring it is the record's business (an update would look like
    someone else's)."""
    if config.cert_delivery != "secret":
        return []
    pending = {entry.id for entry in outage.read_record(config.state_dir)}
    targets = [t for t in control.targets() if t.id not in pending]
    return [f"delivering the certificates: {error}" for error in control.deliver(targets)]


def _reload_stale(config: Settings, control: TargetControl, changed: tuple[str, ...]) -> list[str]:
    """Targets started before the new certificate was written load it (signal or restart)."""
    if not changed:
        return []
    written = max(lineages.written_at(config.config_dir, n) for n in changed)
    stale = [t for t in control.targets() if t.running and t.started_at < written]
    return load_certificate(control, stale, config.reload_signal)


def _verify(config: Settings, control: TargetControl, result: CycleResult) -> CycleResult:
    """VERIFY: the app serves the current certificates (one reload when it does not); skipped
    when the sidecar is asked to stop (its exit must fit in Docker's grace period)."""
    if not config.verify or result.stopped:
        return result
    remembered = journal.load(config.state_dir).restarted_for
    try:
        verification, restarted_for = verify_served(config, control, remembered)
    except SidecarError as error:
        errors = (*result.errors, f"verifying the served certificate: {error}")
        return dataclasses.replace(result, errors=errors)
    return dataclasses.replace(
        result,
        errors=(*result.errors, *verification.errors),
        checks=verification.checks,
        restarted=verification.restarted,
        restarted_for=restarted_for,
    )


@dataclass(frozen=True, slots=True)
class _CertbotCalls:
    """Runs certbot and files each failure, classified, into the cycle's lists."""

    certbot: Certbot
    errors: list[str]
    failures: list[Failure]
    secrets: Mapping[str, str]

    def __call__(
        self,
        args: list[str],
        what: str,
        env: Mapping[str, str] | None = None,
        unloadable: int = 0,
    ) -> None:
        result = self.certbot.run(args, env, self.secrets)
        if result.ok or result.stopped:  # a run ended by a stop request is no failure
            return
        if only_parse_failures(result.tail, unloadable):
            logger.info("certbot {}: the rest went through ({})", args[0], result.summary())
            return
        how = "timed out" if result.timed_out else f"failed (exit {result.returncode})"
        failure = classify(result.tail)
        self.failures.append(failure)
        advice = "" if failure.kind == "error" else f" ({failure.reason})"
        if failure.permanent:
            advice = f" ({failure.reason}: retrying soon will not fix this)"
        self.errors.append(f"certbot {args[0]} for {what} {how}: {result.summary()}{advice}")


def _log(result: CycleResult, stopping: StopRequest, *, dry_run: bool) -> None:
    label = "dry run" if dry_run else "cycle"
    fields = {"event": label.replace(" ", "-"), "duration": round(result.duration, 3)}
    if result.stopped:
        logger.info(
            "{} cut short after {:.1f}s: {} received{}",
            label,
            result.duration,
            stopping.name,
            f"; new certificate for {', '.join(result.changed)}" if result.changed else "",
            outcome="stopped",
            **fields,
        )
        return
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
