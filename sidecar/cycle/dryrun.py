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
from urllib.parse import urlsplit

from loguru import logger

from sidecar.certbot.challenges import challenge_for
from sidecar.cycle import preflight, verify
from sidecar.cycle.result import CycleResult
from sidecar.cycle.run import run_cycle
from sidecar.errors import SidecarError
from sidecar.targets.control import control_for as docker_control

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from sidecar.certbot.challenges import Challenge
    from sidecar.cycle.run import Certbot
    from sidecar.settings import Settings
    from sidecar.targets.base import Target, TargetControl

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
PORT_BUSY = "still in use"


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
    dns = challenge is not None and challenge.name == "dns"
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
    if busy := [e for e in result.errors if PORT_BUSY in e]:
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
    config: Settings, run_checks: Callable[[], tuple[verify.Check, ...]] | None = None
) -> Step:
    """The app answers TLS on every VERIFY endpoint with the lineage's current certificate."""
    if not config.verify:
        return Step(
            "answering", SKIPPED, "VERIFY is not set (the app's TLS host:port), so not checked"
        )
    certs = verify.current_certs(config)
    if not any(certs.values()):
        return Step("answering", SKIPPED, "no certificate yet: the app has nothing to serve")
    checks = verify.wait_until_served(
        run_checks or (lambda: verify.probe(config, certs)), config.verify_wait
    )
    if all(c.ok for c in checks):
        where = ", ".join(str(e) for e in config.verify)
        return Step("answering", OK, f"{where} serves the current certificate for every name")
    return Step("answering", FAILED, "; ".join(verify.failures(checks)))


STEPS = (
    "volume",
    "tree",
    "acme",
    "docker",
    "targets",
    "stop",
    "port",
    "challenge",
    "start",
    "answering",
)
DNS_STEPS = ("plugin", "credentials", "record")  # after `targets`, with CHALLENGE=dns


def steps_for(config: Settings) -> tuple[str, ...]:
    if config.challenge != "dns":
        return STEPS
    at = STEPS.index("targets") + 1
    return (*STEPS[:at], *DNS_STEPS, *STEPS[at:])


def _skip_rest(steps: list[Step], reason: str, names: Sequence[str] = STEPS) -> Report:
    done = {s.name for s in steps}
    steps += [Step(name, SKIPPED, reason) for name in names if name not in done]
    return Report(tuple(steps))


def dns_steps(config: Settings, steps: list[Step]) -> bool:
    """CHALLENGE=dns: the plugin loads, takes DNS_CREDENTIALS, and adds and removes a TXT record
    for each certificate, before certbot and the CA are asked; False when a step failed."""
    # certbot's own machinery, loaded only here: the daemon's process never needs it
    from sidecar.certbot.dnscheck import DnsPluginCheck  # noqa: PLC0415

    check = DnsPluginCheck(config)

    def record() -> str:
        return "; ".join(check.record(spec.domains[0]) for spec in config.domains)

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


def run(
    config: Settings,
    certbot: Certbot,
    control_for: Callable[[Settings], TargetControl] = docker_control,
) -> Report:
    """Every step on the real parts; the cycle runs only when everything before it passed."""
    steps: list[Step] = []

    def writable() -> str:
        preflight.check_writable(config)
        return f"{config.config_dir} is writable"

    def tree() -> str:
        preflight.check_lineages(config)
        return "renewal confs, certificates and keys load"

    def acme() -> str:
        preflight.check_acme(config)
        return f"the ACME directory {config.acme_server} answers"

    controls: list[TargetControl] = []

    def docker() -> str:
        controls.append(control_for(config))
        return "the Docker engine answers"

    fine = all([_gate(steps, "volume", writable), _gate(steps, "tree", tree)])
    fine = _gate(steps, "acme", acme) and fine
    if not _gate(steps, "docker", docker):
        return _finish(_skip_rest(steps, "not run: no Docker access", steps_for(config)))
    control = controls[0]
    try:
        targets = control.targets()
    except SidecarError as error:
        steps.append(Step("targets", FAILED, str(error)))
        return _finish(
            _skip_rest(steps, "not run: the app containers were not found", steps_for(config))
        )
    running = [t for t in targets if t.running]
    idle = [t for t in targets if not t.running]
    found = _names(running) + (f" (not running: {_names(idle)})" if idle else "")
    steps.append(Step("targets", OK if targets else FAILED, found or "no container matches"))
    names = steps_for(config)
    if not fine:
        return _finish(_skip_rest(steps, "not run: an earlier step failed", names))
    if config.challenge == "dns" and not dns_steps(config, steps):
        return _finish(_skip_rest(steps, "not run: the DNS plugin cannot answer", names))
    try:
        result = run_cycle(config, certbot, control, dry_run=True)
    except SidecarError as error:
        result = CycleResult((), (str(error),), 0.0)
    after = {t.id: control.inspect(t.id, t.kind) for t in targets}
    ca = urlsplit(config.acme_server).netloc or config.acme_server
    steps += stop_and_start_steps(
        running,
        after,
        result,
        port=config.http01_port,
        ca=ca,
        challenge=challenge_for(config),
    )
    steps.append(answering_step(config))
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
