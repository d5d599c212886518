"""`sidecar renew --dry-run`: the whole path except issuing a real certificate, and a report.

Each step is checked on the real parts — Docker access, finding the targets, with CHALLENGE=dns
the DNS plugin (it loads, takes its credentials, adds and removes a TXT record), stopping the
targets, the challenge port free, the challenge answered by the CA's test mode (certbot
--dry-run, nothing saved), the app started again and answering — and reported as ok, failed or
skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from loguru import logger

from sidecar.certbot.challenges import Dns
from sidecar.certbot.failures import PORT_BUSY
from sidecar.cycle import preflight, verify
from sidecar.cycle.gate import Live, described
from sidecar.cycle.problem import Problem
from sidecar.cycle.result import CycleResult
from sidecar.cycle.run import run_cycle, served_now
from sidecar.errors import SidecarError
from sidecar.volume.room import check_room

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from sidecar.certbot.challenges import Challenge
    from sidecar.cycle.run import Certbot, CycleSetup
    from sidecar.shutdown import StopRequest
    from sidecar.targets.base import Target, TargetControl

OK, FAILED, SKIPPED = "ok", "failed", "skipped"


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    outcome: str  # ok, failed or skipped
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"step": self.name, "outcome": self.outcome, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Report:
    steps: tuple[Step, ...]

    @property
    def ok(self) -> bool:
        return all(s.outcome != FAILED for s in self.steps)

    def render(self) -> str:
        width = max(len(s.name) for s in self.steps)
        lines = ["dry-run report:"]
        lines += [
            f"  {s.outcome.upper() if s.outcome == FAILED else s.outcome:<7} "
            f"{s.name:<{width}}  {s.detail}"
            for s in self.steps
        ]
        failed = sum(s.outcome == FAILED for s in self.steps)
        lines.append(
            "dry run: ok, every step passed or was not needed"
            if self.ok
            else f"dry run: FAILED ({failed} step(s) failed)"
        )
        return "\n".join(lines)


def _names(targets: Sequence[Target]) -> str:
    return ", ".join(t.name for t in targets)


def stop_and_start_steps(
    running: Sequence[Target],
    after: Mapping[str, Target | None],
    result: CycleResult,
    *,
    port: int,
    ca: str,
    challenge: Challenge | None = None,
) -> list[Step]:
    """Pure: what the cycle did to the targets and the CA, from the containers before and after
    (`challenge`: the sidecar's; standalone when None).

    A target stopped in the dry run has another Docker `FinishedAt` than before it (engine time
    against engine time: the sidecar's clock may differ from the engine's).
    """
    stopped = [t for t in running if (a := after.get(t.id)) and a.finished_at != t.finished_at]
    dns = challenge is not None and not challenge.http01
    return [
        Step("stop", SKIPPED, f"not needed: {challenge.answered}")
        if challenge is not None and not challenge.stops_app
        else _stop_step(running, stopped, result),
        Step("port", SKIPPED, "not needed: DNS-01 binds no port")
        if dns
        else _port_step(running, stopped, result, port),
        Step("challenge", OK, f"{ca} validated the challenge (dry run: nothing was saved)")
        if result.ok
        else Step("challenge", FAILED, "; ".join(result.errors) or "failed"),
        _start_step(running, after),
    ]


def _stop_step(running: Sequence[Target], stopped: Sequence[Target], result: CycleResult) -> Step:
    """Whether every target that can be stopped was; a global service keeps running (it cannot
    be scaled to 0), said as such, never a failure."""
    step = _stopped_step([t for t in running if t.stoppable], stopped, result)
    if kept := [t for t in running if not t.stoppable]:
        how = "kept running (a global service cannot be scaled to 0)"
        return Step("stop", step.outcome, f"{step.detail}; {_names(kept)} {how}")
    return step


def _stopped_step(
    running: Sequence[Target], stopped: Sequence[Target], result: CycleResult
) -> Step:
    if not running:
        return Step("stop", SKIPPED, "no target was running, nothing to stop")
    if len(stopped) == len(running):
        return Step("stop", OK, f"stopped {_names(stopped)} for the challenge")
    if stopped:
        missed = [t for t in running if t not in stopped]
        return Step("stop", FAILED, f"stopped {_names(stopped)}, not {_names(missed)}")
    if result.ok:
        return Step("stop", SKIPPED, "not needed: the CA reused a valid authorization")
    return Step("stop", SKIPPED, "not reached: certbot failed before the challenge")


def _port_step(
    running: Sequence[Target],
    stopped: Sequence[Target],
    result: CycleResult,
    port: int,
) -> Step:
    if busy := [p.message for p in result.problems if p.kind == PORT_BUSY]:
        return Step("port", FAILED, busy[0])
    if stopped or (not running and result.ok):
        return Step("port", OK, f"port {port} was free for the challenge server")
    return Step("port", SKIPPED, "not needed (no challenge)" if result.ok else "not reached")


def _start_step(running: Sequence[Target], after: Mapping[str, Target | None]) -> Step:
    if not running:
        return Step("start", SKIPPED, "no target was running before")
    if down := [t for t in running if not ((a := after.get(t.id)) and a.running)]:
        return Step("start", FAILED, f"{_names(down)} not running after the dry run")
    return Step("start", OK, f"{_names(running)} running again")


def answering_step(
    served: verify.Served, run_checks: Callable[[], tuple[verify.Check, ...]] | None = None
) -> Step:
    """The app answers TLS on every VERIFY endpoint with the lineage's current certificate."""
    if not served.spec.on:
        return Step(
            "answering", SKIPPED, "VERIFY is not set (the app's TLS host:port), so not checked"
        )
    if not any(served.certs.values()):
        return Step("answering", SKIPPED, "no certificate yet: the app has nothing to serve")
    checks = verify.wait_until_served(run_checks or served.probe, served.spec.wait)
    if all(c.ok for c in checks):
        where = ", ".join(str(e) for e in served.spec.endpoints)
        return Step("answering", OK, f"{where} serves the current certificate for every name")
    return Step("answering", FAILED, "; ".join(verify.failures(checks)))


STEPS = (
    "volume",
    "tree",
    "acme",
    "names",
    "docker",
    "targets",
    "stop",
    "port",
    "challenge",
    "start",
    "answering",
)
DNS_STEPS = ("plugin", "credentials", "record")  # after `targets`, with CHALLENGE=dns


def steps_for(challenge: Challenge) -> tuple[str, ...]:
    if not isinstance(challenge, Dns):
        return STEPS
    at = STEPS.index("targets") + 1
    return (*STEPS[:at], *DNS_STEPS, *STEPS[at:])


def _skip_rest(steps: list[Step], reason: str, names: Sequence[str] = STEPS) -> Report:
    done = {s.name for s in steps}
    steps += [Step(name, SKIPPED, reason) for name in names if name not in done]
    return Report(tuple(steps))


def dns_steps(setup: CycleSetup, dns: Dns, steps: list[Step]) -> bool:
    """CHALLENGE=dns: the plugin loads, takes DNS_CREDENTIALS, and adds and removes a TXT record
    for each certificate, before certbot and the CA are asked; False when a step failed."""
    # certbot's own machinery, loaded only here: the daemon's process never needs it
    from sidecar.certbot.dnscheck import DnsPluginCheck  # noqa: PLC0415

    check = DnsPluginCheck(dns, setup.flags)

    def record() -> str:
        return "; ".join(check.record(spec.domains[0]) for spec in setup.tree.domains.specs)

    return (
        _gate(steps, "plugin", check.load)
        and _gate(steps, "credentials", check.credentials)
        and _gate(steps, "record", record)
    )


def _gate(steps: list[Step], name: str, check: Callable[[], str]) -> bool:
    """Run one check as a step; False when it failed."""
    try:
        steps.append(Step(name, OK, check()))
    except SidecarError as error:
        steps.append(Step(name, FAILED, str(error)))
        return False
    return True


def _before(setup: CycleSetup, steps: list[Step]) -> bool:
    """The volume, the tree and the CA (each reported; all are tried); True when all passed."""
    paths, ca = setup.tree.paths, setup.flags.ca

    def writable() -> str:
        preflight.check_writable(paths, setup.flags.challenge)
        if short := check_room(paths):
            raise SidecarError("; ".join(short))
        return f"{paths.config_dir} is writable, with room for a renewal"

    def tree() -> str:
        preflight.check_lineages(paths.config_dir, setup.tree.domains)
        return "renewal confs, certificates and keys load"

    def acme() -> str:
        preflight.check_acme(ca)
        return f"the ACME directory {ca.directory} answers"

    fine = all([_gate(steps, "volume", writable), _gate(steps, "tree", tree)])
    return _gate(steps, "acme", acme) and _names_step(setup, steps) and fine


def _names_step(setup: CycleSetup, steps: list[Step]) -> bool:
    """Each certificate's names as the CA will judge them (CHECK_NAMES)."""
    if not setup.names.on:
        steps.append(Step("names", SKIPPED, "CHECK_NAMES=false"))
        return True
    live = Live(setup.tree.paths, setup.flags.ca, setup.names, setup.flags.challenge)
    return _gate(steps, "names", lambda: described(live.names(setup.tree.domains.specs)))


def _targets(
    control_for: Callable[[], TargetControl], steps: list[Step]
) -> tuple[TargetControl, list[Target]] | str:
    """Docker answers and the targets are found (each a step); or why the rest is not run."""
    controls: list[TargetControl] = []

    def docker() -> str:
        controls.append(control_for())
        return "the Docker engine answers"

    if not _gate(steps, "docker", docker):
        return "not run: no Docker access"
    try:
        targets = controls[0].targets()
    except SidecarError as error:
        steps.append(Step("targets", FAILED, str(error)))
        return "not run: the app containers were not found"
    running = [t for t in targets if t.running]
    idle = [t for t in targets if not t.running]
    found = _names(running) + (f" (not running: {_names(idle)})" if idle else "")
    steps.append(Step("targets", OK if targets else FAILED, found or "no container matches"))
    return controls[0], targets


def run(
    setup: CycleSetup,
    certbot: Certbot,
    stopping: StopRequest,
    control_for: Callable[[], TargetControl],
) -> Report:
    """Every step on the real parts; the cycle runs only when everything before it passed."""
    steps: list[Step] = []
    challenge = setup.flags.challenge
    names = steps_for(challenge)
    fine = _before(setup, steps)
    found = _targets(control_for, steps)
    if isinstance(found, str):
        return _finish(_skip_rest(steps, found, names))
    control, targets = found
    if not fine:
        return _finish(_skip_rest(steps, "not run: an earlier step failed", names))
    if isinstance(challenge, Dns) and not dns_steps(setup, challenge, steps):
        return _finish(_skip_rest(steps, "not run: the DNS plugin cannot answer", names))
    try:
        result = run_cycle(setup, certbot, control, stopping, dry_run=True)
    except SidecarError as error:
        result = CycleResult((), (Problem(type(error).__name__, None, str(error)),), 0.0)
    after = {t.id: control.inspect(type(t), t.id) for t in targets}
    running = [t for t in targets if t.running]
    port, ca = setup.flags.http01_port, setup.flags.ca.host
    steps += stop_and_start_steps(running, after, result, port=port, ca=ca, challenge=challenge)
    steps.append(answering_step(served_now(setup)))
    return _finish(Report(tuple(steps)))


def _finish(report: Report) -> Report:
    for step in report.steps:
        log = logger.error if step.outcome == FAILED else logger.info
        log(
            "dry run step {}: {} ({})",
            step.name,
            step.outcome,
            step.detail,
            event="dry-run",
            outcome=step.outcome,
        )
    return report
