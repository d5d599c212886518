"""One renewal cycle, one short function per step: restore, adopt, issue, renew, start the app
again, reload what serves an old certificate, verify. The app is never left down."""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from loguru import logger

from sidecar.certbot.argv import certonly, renew, renew_runs, replacement_runs
from sidecar.certbot.failures import classify, only_parse_failures
from sidecar.cycle.ari import ask_safely, wanted_now
from sidecar.cycle.gate import refusals, room_problems
from sidecar.cycle.names import NamesSpec
from sidecar.cycle.plan import changed_lineages, due_names, due_specs, plan_cycle
from sidecar.cycle.problem import Problem
from sidecar.cycle.result import CycleResult, log_result
from sidecar.cycle.verify import Served, current_certs, verify_served
from sidecar.errors import SidecarError
from sidecar.targets import outage
from sidecar.targets.reload import load_certificate
from sidecar.volume import access, adopt, journal, lineages, tree
from sidecar.volume.certs import CertInfo, now_utc

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from sidecar.certbot.argv import Flags, Run
    from sidecar.certbot.runner import CertbotResult
    from sidecar.cycle.ari import Ask
    from sidecar.cycle.gate import Preflight
    from sidecar.cycle.names import Verdict
    from sidecar.cycle.plan import Plan
    from sidecar.cycle.verify import VerifySpec
    from sidecar.shutdown import StopRequest
    from sidecar.targets.base import TargetControl
    from sidecar.targets.spec import TargetsSpec
    from sidecar.volume.found import TreeSpec
    from sidecar.volume.journal import Ari
    from sidecar.volume.tree import Adoption


class Certbot(Protocol):
    def run(self, run: Run) -> CertbotResult: ...


@dataclass(frozen=True, slots=True)
class CycleSetup:
    """What a cycle acts on: the tree, certbot's flags, how the targets get and load the
    certificates, and the verification of what the app serves."""

    tree: TreeSpec
    flags: Flags
    targets: TargetsSpec
    verify: VerifySpec
    names: NamesSpec = field(default_factory=NamesSpec)


def run_cycle(
    setup: CycleSetup,
    certbot: Certbot,
    control: TargetControl,
    stop: StopRequest,
    *,
    force: bool = False,
    dry_run: bool = False,
    precheck: Callable[[], None] = lambda: None,
    preflight: Preflight | None = None,
    after: Callable[[CycleResult, datetime], CycleResult] | None = None,
    ask_ari: Ask | None = None,
) -> CycleResult:
    """Run one cycle under the lock; `after` (the outcome: counters, alerts, the journal) runs
    under it too. `precheck` runs before anything is stopped (the CLI checks the ACME server);
    `ask_ari` asks the CA for its renewal windows (`ari.fetch`; None: not asked).
    Whatever happens, what the record names is started before the lock is released; once
    `stop` is requested no further certbot run starts. `preflight` (room on the volume, the
    names of each due lineage) decides, before any stop, what is not ordered."""
    began = time.monotonic()
    began_at = now_utc()
    with outage.cycle_lock(setup.tree.paths.state_dir, control):
        cycle = _Cycle(
            setup, certbot, control, stop, force, dry_run, preflight=preflight, ask=ask_ari
        )
        changed: tuple[str, ...] = ()
        try:
            precheck()
            changed = cycle.steps()
        except SidecarError as error:
            cycle.problems.append(Problem(type(error).__name__, None, str(error)))
        result = CycleResult(
            changed,
            tuple(cycle.problems),
            time.monotonic() - began,
            stopped=stop.requested(),
            preflight=cycle.verdicts,
            ari=cycle.answers,
            requested={n: a for n, a in cycle.asked.items() if a.ended(began_at)},
        )
        if not dry_run:
            result = _verify(setup, control, result)
            if after is not None:
                result = after(result, began_at)
    log_result(result, stop, dry_run=dry_run)
    return result


@dataclass
class _Cycle:
    """The steps of one cycle, and the problems they found so far (a step that raises keeps
    those found before it)."""

    setup: CycleSetup
    certbot: Certbot
    control: TargetControl
    stop: StopRequest
    force: bool = False
    dry_run: bool = False
    preflight: Preflight | None = None
    verdicts: tuple[Verdict, ...] = ()
    ask: Ask | None = None
    problems: list[Problem] = field(default_factory=list)
    secrets: Mapping[str, str] = field(default_factory=dict)  # for certbot's config file
    asked: dict[str, Ari] = field(default_factory=dict)  # the CA's ARI answers before renewing
    answers: dict[str, Ari] = field(default_factory=dict)  # and for the new certificates
    rng: random.Random = field(default_factory=random.Random)

    def steps(self) -> tuple[str, ...]:
        """The lineages with a new certificate."""
        spec, control = self.setup.tree, self.control
        config_dir = spec.paths.config_dir
        self.secrets = _account_secrets(spec)
        outage.restore_left(spec.paths.state_dir, control)
        adoption = tree.prepare(spec, dry_run=self.dry_run)  # confs made renewable (README)
        names = sorted({*lineages.names(config_dir), *spec.domains.names})
        before, broken = self._read(names)
        plan = plan_cycle(spec.domains.specs, before, broken, _held(adoption))
        self.problems += _refused(plan, adoption)
        urgent = self._ask_ari(before, plan)
        skip = self._gate(plan, before, adopt.ignored(adoption.decisions), urgent)
        try:
            if skip is not None:
                self._issue(plan, skip)
                self._replace(adoption, tuple(n for n in urgent if n not in skip))
                self._renew(plan, adoption, before, urgent, skip)
        finally:
            _start_again(spec, control, dry_run=self.dry_run)
        if self.dry_run:
            return ()
        # read the names again: a lineage certbot made in this cycle is a new certificate too
        after = lineages.certs(config_dir, {*names, *lineages.names(config_dir)})
        changed = changed_lineages(before, after)
        self.answers.update(self._fetch_ari({n: after.get(n) for n in changed}))
        self.problems += _deliver(self.setup, control)
        self.problems += _reload_stale(self.setup, control, changed)
        return changed

    def _read(self, names: list[str]) -> tuple[dict[str, CertInfo | None], frozenset[str]]:
        """Every lineage's current certificate. One that cannot be read is left alone (not issued
        again over it); a configured one is also this cycle's problem, so it is alerted and
        backed off, while the others are renewed as usual."""
        config_dir = self.setup.tree.paths.config_dir
        current = {name: lineages.read(config_dir, name) for name in names}
        wanted = self.setup.tree.domains.names
        for name, item in current.items():
            if item.problem and name in wanted:
                line = f"{item.problem}; {name} is not renewed until it is repaired"
                self.problems.append(Problem("lineageUnreadable", name, line))
            elif item.problem:
                logger.warning("{} (lineage {} is skipped)", item.problem, name)
        broken = frozenset(name for name, item in current.items() if item.problem)
        return {name: item.cert for name, item in current.items()}, broken

    def _fetch_ari(self, certs: Mapping[str, CertInfo | None]) -> dict[str, Ari]:
        """The CA's renewal information for the DOMAINS lineages among `certs` (none on a dry
        run: it renews every lineage anyway)."""
        if self.dry_run or self.ask is None:
            return {}
        spec = self.setup.tree
        known = journal.load(spec.paths.state_dir).ari
        wanted = {n: c for n, c in certs.items() if n in spec.domains.names}
        return ask_safely(self.ask, spec.ca, wanted, known, self.rng)

    def _ask_ari(self, before: Mapping[str, CertInfo | None], plan: Plan) -> tuple[str, ...]:
        """Ask the CA (ARI); the lineages it wants renewed now, but not those issued anew."""
        self.asked = self._fetch_ari(before)
        self.answers = dict(self.asked)
        issued = {s.name for s in plan.issue}
        return tuple(n for n in wanted_now(self.asked, before, now_utc()) if n not in issued)

    def _replace(self, adoption: Adoption, urgent: tuple[str, ...]) -> None:
        """Renew, each on its own and at once, the lineages the CA wants replaced now."""
        if self.force or not urgent:
            return  # a forced renewal renews them anyway
        for run in replacement_runs(self.setup.flags, adoption.decisions, urgent):
            if self.stop.requested():
                return
            self._certbot(run)

    def _gate(
        self,
        plan: Plan,
        before: Mapping[str, CertInfo | None],
        ignored: frozenset[str],
        urgent: tuple[str, ...],
    ) -> frozenset[str] | None:
        """The pre-flight of what is due (and of what the CA wants replaced now): the lineages
        not to order (None: none at all, the volume has no room)."""
        if self.preflight is None:
            return frozenset()
        domains = self.setup.tree.domains
        due = due_specs(
            domains.specs, plan, before, ignored, domains.renew_before, force=self.force
        )
        due += tuple(s for s in domains.specs if s.name in urgent and s not in due)
        if not due:
            return frozenset()
        if no_room := room_problems(self.preflight):
            self.problems += no_room
            return None
        self.verdicts = self.preflight.names(due)
        failed = refusals(self.verdicts)
        for problem in failed:  # before anything stops (`renew --force` tells what it skips)
            logger.error("skipping {}", problem.message, certificate=problem.lineage)
        self.problems += failed
        return frozenset(p.lineage for p in failed if p.lineage)

    def _issue(self, plan: Plan, skip: frozenset[str] = frozenset()) -> None:
        flags = self.setup.flags
        for spec in plan.issue:
            if spec.name in skip:
                continue
            if self.stop.requested():
                return  # no further certbot run: each could stop the app again
            logger.info(
                "obtaining a certificate for {}", ", ".join(spec.domains), certificate=spec.name
            )
            self._certbot(certonly(flags, spec, dry_run=self.dry_run))

    def _renew(
        self,
        plan: Plan,
        adoption: Adoption,
        before: Mapping[str, CertInfo | None],
        urgent: tuple[str, ...] = (),
        skip: frozenset[str] = frozenset(),
    ) -> None:
        """One `certbot renew` for every lineage (certbot decides what is due; those replaced
        just before are not due any more); with lineages refused by the pre-flight, one per
        other lineage, and none when every due one is."""
        if not plan.renew or (self.force and len(plan.issue) == len(before)):
            return
        skipped = adopt.ignored(adoption.decisions) | (set() if self.force else set(urgent))
        renewable = {n: c for n, c in before.items() if n not in skipped}
        renew_before = self.setup.tree.domains.renew_before
        due_now = due_names(renewable, now_utc(), renew_before, force=self.force)
        if skip and due_now and due_now <= skip:
            return  # every due lineage refused by the pre-flight: certbot is not started
        due = len(due_now)
        base = renew(self.setup.flags, force=self.force, dry_run=self.dry_run)
        runs = renew_runs(base, adoption.decisions, due, skip)
        # confs certbot cannot load, outside DOMAINS: the adoption's report, not this cycle's
        unloadable = sum(d.parse_failure and not d.in_domains for d in adoption.decisions)
        for run in runs:  # one, unless per lineage (a dry run, dns mode, forced with ignored)
            if self.stop.requested():
                return
            self._certbot(run, unloadable if run.lineage is None else 0)

    def _certbot(self, run: Run, unloadable: int = 0) -> None:
        """Run certbot; a failure is classified into a problem."""
        result = self.certbot.run(dataclasses.replace(run, secrets=self.secrets))
        if result.ok or result.stopped:  # a run ended by a stop request is no failure
            return
        if only_parse_failures(result.tail, unloadable):
            logger.info("certbot {}: the rest went through ({})", run.command, result.summary())
            return
        self.problems.append(_failed(run, result))


def _failed(run: Run, result: CertbotResult) -> Problem:
    """A failed certbot run as the cycle's problem, with what it means for the next attempt."""
    how = "timed out" if result.timed_out else f"failed (exit {result.returncode})"
    failure = classify(result.tail)
    advice = f" ({failure.reason})" if failure.reason and failure.kind != "error" else ""
    if failure.permanent:
        advice = f" ({failure.reason}: retrying soon will not fix this)"
    line = f"certbot {run.command} for {run.what} {how}: {result.summary()}{advice}"
    lineage = run.spec.name if run.spec is not None else run.lineage
    return Problem(failure.kind, lineage, line, failure.permanent, failure.not_before)


def _account_secrets(spec: TreeSpec) -> dict[str, str]:
    """EAB only while no account exists for the CA: it is needed to register, never after."""
    ca = spec.ca
    return {} if tree.account_ids(spec.paths.config_dir, ca.directory) else ca.eab_options()


def _held(adoption: Adoption) -> frozenset[str]:
    """DOMAINS lineages the tree holds but certbot cannot load: a conf whose files it skips, or
    files whose conf is missing and cannot be rebuilt."""
    broken = {d.name for d in adoption.decisions if d.in_domains and d.parse_failure}
    return frozenset(broken | set(adoption.unrebuilt))


def _refused(plan: Plan, adoption: Adoption) -> list[Problem]:
    """Each lineage that cannot be renewed or issued as it is: one problem, the same at every
    cycle (alerted once), and permanent (the full interval: retrying soon changes nothing)."""
    lines = dict(adoption.unrebuilt)
    lines.update(
        {
            spec.name: f"{spec.name}: not obtaining a certificate for {', '.join(spec.domains)}: "
            f"the tree holds lineage {spec.name} (renewal/{spec.name}.conf) but certbot cannot "
            f"load it, so `certbot certonly` would save a new lineage {spec.name}-0001 beside "
            "it instead of repairing it; repair it by hand (`sidecar adopt --check` says how)"
            for spec in plan.held
            if spec.name not in adoption.unrebuilt
        }
    )
    return [Problem("lineageBroken", name, line, permanent=True) for name, line in lines.items()]


def _start_again(spec: TreeSpec, control: TargetControl, *, dry_run: bool) -> None:
    """Whatever happened: the app's files readable, then what the sidecar stopped started."""
    if not dry_run:  # FILES_UID/GID/PERMS, COMBINED_PEM
        access.apply_safely(spec.paths.config_dir, spec.domains, spec.policy)
    outage.restore(spec.paths.state_dir, control)


def _deliver(setup: CycleSetup, control: TargetControl) -> list[Problem]:
    """CERT_DELIVERY=secret: every service gets the current certificates' secrets; at every
    cycle, as `docker stack deploy` resets a service's secrets to the stack file's. Not a service
    still recorded as stopped: restoring it is the record's business (an update would look like
    someone else's)."""
    if not setup.targets.secrets:
        return []
    pending = {entry.id for entry in outage.read_record(setup.tree.paths.state_dir)}
    targets = [t for t in control.targets() if t.id not in pending]
    return [
        Problem("delivery", None, f"delivering the certificates: {error}")
        for error in control.deliver(targets)
    ]


def _reload_stale(
    setup: CycleSetup, control: TargetControl, changed: tuple[str, ...]
) -> list[Problem]:
    """Targets started before the new certificate was written load it (signal or restart)."""
    if not changed:
        return []
    written = max(lineages.written_at(setup.tree.paths.config_dir, n) for n in changed)
    stale = [t for t in control.targets() if t.running and t.started_at < written]
    errors = load_certificate(control, stale, setup.targets.reload_signal)
    return [Problem("reload", None, error) for error in errors]


def _verify(setup: CycleSetup, control: TargetControl, result: CycleResult) -> CycleResult:
    """VERIFY: the app serves the current certificates (one reload when it does not); skipped
    when the sidecar is asked to stop (its exit must fit in Docker's grace period)."""
    if not setup.verify.on or result.stopped:
        return result
    remembered = journal.load(setup.tree.paths.state_dir).restarted_for
    try:
        verification, restarted_for = verify_served(
            served_now(setup), control, setup.targets.reload_signal, remembered
        )
    except SidecarError as error:
        line = f"verifying the served certificate: {error}"
        return dataclasses.replace(
            result, problems=(*result.problems, Problem("verify", None, line))
        )
    return dataclasses.replace(
        result,
        problems=(*result.problems, *verification.problems),
        checks=verification.checks,
        restarted=verification.restarted,
        restarted_for=restarted_for,
    )


def served_now(setup: CycleSetup) -> Served:
    """What verification compares now: VERIFY's endpoints and the current certificates."""
    specs = setup.tree.domains.specs
    return Served(setup.verify, specs, current_certs(setup.tree.paths.config_dir, specs))
