"""The `sidecar` command: run (the daemon), renew, status, health, and certbot's hook callback."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loguru import logger

from sidecar import __version__, logs, shutdown
from sidecar.certbot import inside
from sidecar.certbot.runner import CertbotRunner
from sidecar.cycle import CycleResult, ari, dryrun, gate, preflight, ratelimit, run_cycle
from sidecar.cycle.run import served_now
from sidecar.errors import ConfigError, DockerError, SidecarError
from sidecar.guard import daemon
from sidecar.loader import control as control_for
from sidecar.loader import in_certbot, load
from sidecar.report import metrics, outcome
from sidecar.report.adoption import adoption_json, render, rewrite_text
from sidecar.report.outcome import Recorder
from sidecar.report.status import (
    failing,
    health,
    preflight_lines,
    replacing,
    rows,
    served_problems,
    table,
    with_served,
)
from sidecar.scheduler import Scheduler
from sidecar.targets import outage
from sidecar.targets.base import NoTargetError
from sidecar.volume import adopt, journal, lineages, tree, watch
from sidecar.volume.certs import now_utc

if TYPE_CHECKING:
    from pathlib import Path

    from sidecar.loader import Config
    from sidecar.shutdown import StopRequest
    from sidecar.targets.control import Targets
    from sidecar.volume.certs import CertInfo
    from sidecar.volume.journal import Journal

DOCKER_RETRY = 10.0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNEXPECTED = 70


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sidecar",
        description="Keeps ACME certificates issued and renewed for app containers.",
    )
    parser.add_argument("--version", action="version", version=f"certbot-sidecar {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="the daemon: a cycle now, then on the schedule (default)")
    run.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)  # after a sleep
    # the planned time of the next cycle (time.monotonic(): one clock, across the sleeper's exec,
    # that no clock step moves), given when the sleeper may wake the daemon before it
    run.add_argument("--until", type=float, help=argparse.SUPPRESS)
    renew = sub.add_parser("renew", help="one cycle now")
    renew.add_argument("--force", action="store_true", help="renew even if not due")
    renew.add_argument(
        "--dry-run",
        action="store_true",
        help="the whole cycle against the CA's test mode, nothing saved",
    )
    status = sub.add_parser("status", help="certificates, expiry, next renewal, last result")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("health", help="exit 0 when healthy (the image's HEALTHCHECK)")
    guard = sub.add_parser("guard", help="serve the Docker socket's guard (README: Privileges)")
    guard.add_argument("check", nargs="?", choices=["check"], help="its healthcheck")
    hook = sub.add_parser("hook", help="called by certbot")
    hook.add_argument("which", choices=["post"])
    adopt = sub.add_parser(
        "adopt", help="make every renewal conf renewable here (done at every cycle too)"
    )
    adopt.add_argument("--check", action="store_true", help="print the plan, change nothing")
    return parser


def _current(config: Config, skip: frozenset[str] = frozenset()) -> dict[str, lineages.Current]:
    """Every lineage of the tree and of DOMAINS but `skip`, read without raising."""
    config_dir = config.paths.config_dir
    names = sorted({*lineages.names(config_dir), *config.domains.names} - skip)
    return {name: lineages.read(config_dir, name) for name in names}


def _certs(current: dict[str, lineages.Current]) -> dict[str, CertInfo | None]:
    return {name: item.cert for name, item in current.items()}


@dataclass(frozen=True, slots=True)
class Process:
    """What the entry point owns and hands down: the process's stop request (SIGTERM, SIGINT,
    SIGHUP) and the secrets no log line shows."""

    stopping: StopRequest
    secrets: logs.Secrets


@dataclass(frozen=True, slots=True)
class Ready:
    """What the checks before a cycle set up: the targets, and the recorder of the outcome."""

    control: Targets
    recorder: Recorder


def _preflight(config: Config, process: Process, *, resumed: bool = False) -> Ready:
    """Start what an interrupted run left stopped, first: it needs the Docker API and nothing
    else (no write: the volume may have turned read-only; no alert setup). Then check everything
    else before acting.

    After a sleep (`resumed`) the tree's problems are the cycle's to report, as failures.
    """
    control = control_for(config, process.stopping)
    outage.recover(config.paths.state_dir, control)
    preflight.check_writable(config.paths, config.challenge)
    sender = outcome.prepare(config.alerts, config.verify, process.secrets)
    if not resumed:
        preflight.check_lineages(config.paths.config_dir, config.domains)
    preflight.check_targets(control)
    return Ready(control, Recorder(config.cycle, config.alerts, sender))


def _run_cycle(
    config: Config,
    runner: CertbotRunner,
    ready: Ready,
    stopping: StopRequest,
    *,
    force: bool = False,
) -> CycleResult:
    control, recorder = ready.control, ready.recorder
    return run_cycle(
        config.cycle,
        runner,
        control,
        stopping,
        force=force,
        precheck=lambda: preflight.check_acme(config.ca),
        preflight=gate.Live(config.paths, config.ca, config.cycle.names, config.challenge),
        after=lambda result, began: outcome.record(recorder, control, result, began),
        ask_ari=ari.fetch,
    )


def _sleep_light(state_dir: Path, seconds: float) -> None:
    """Wait in a bare Python process (see sidecar.sleeper), then run the daemon again; returns
    only when a stop is requested before the exec. The sleeper wakes it early for a record of
    stopped targets no cycle holds: the daemon then knows its planned time (`--until`)."""
    until = f"{time.monotonic() + seconds:.3f}"
    again = [sys.executable, "-m", "sidecar", "run", "--resume", "--until", until]
    sleeper = [sys.executable, "-m", "sidecar.sleeper", f"{seconds:.3f}"]
    shutdown.become([*sleeper, "--watch", str(state_dir), "--", *again])


def _preflight_resumed(config: Config, process: Process) -> Ready | None:
    """After a sleep the setup was fine once: wait out a Docker API outage, or app containers
    being recreated (`docker compose up` after a change), instead of exiting."""
    while not process.stopping.requested():
        try:
            return _preflight(config, process, resumed=True)
        except (DockerError, NoTargetError) as error:
            logger.error("{}; trying again in {:.0f}s", error, DOCKER_RETRY)
            process.stopping.wait(DOCKER_RETRY)
    return None


def cmd_run(
    config: Config, process: Process, *, resume: bool = False, until: float | None = None
) -> int:
    stopping = process.stopping
    ready = None
    if not stopping.requested():
        ready = _preflight_resumed(config, process) if resume else _preflight(config, process)
    if ready is None or stopping.requested():
        logger.info("{} received: stopped", stopping.name)
        return 0
    metrics.serve(config.metrics, config.paths, config.domains.specs)
    runner = CertbotRunner(config.certbot_timeout, stopping)
    state_dir, control = config.paths.state_dir, ready.control
    scheduler = Scheduler(
        config.schedule,
        state_dir,
        lambda: _run_cycle(config, runner, ready, stopping),
        restore=lambda: outage.settle(state_dir, control),
        # metrics need a live process; it watches the state dir as the sleeper does
        idle=None if config.metrics.port else lambda seconds: _sleep_light(state_dir, seconds),
        unattended=lambda: watch.unattended(state_dir),
        stopping=stopping,
    )
    logger.info(
        "certbot-sidecar {} watching {} certificate(s) on {}",
        __version__,
        len(config.domains.specs),
        config.ca.directory,
    )
    scheduler.run(until)
    return 0


def cmd_renew(config: Config, process: Process, *, force: bool, dry_run: bool) -> int:
    if dry_run:
        return cmd_dry_run(config, process)
    if force:
        _check_rate_limit(config)
    ready = _preflight(config, process)
    runner = CertbotRunner(config.certbot_timeout, process.stopping)
    result = _run_cycle(config, runner, ready, process.stopping, force=force)
    return _interrupted(process.stopping) or (0 if result.ok else EXIT_FAILED)


def _check_rate_limit(config: Config) -> None:
    """A forced renewal that would spend the CA's last certificate of the week for a set of
    names is refused, before anything is touched."""
    state = journal.load(config.paths.state_dir)
    ignored = adopt.ignored(tree.inspect(config.tree).decisions)  # not renewed, forced or not
    certs = _certs(_current(config, ignored))
    lines = ratelimit.refusals(state.issued, certs, now_utc(), config.ca.directory)
    if lines:
        raise SidecarError("; ".join(lines))


def _interrupted(stopping: StopRequest) -> int:
    """128 + the signal's number when a one-shot command was stopped by SIGTERM or SIGINT."""
    return 128 + stopping.signum if stopping.signum else 0


def cmd_dry_run(config: Config, process: Process) -> int:
    """Every step of a renewal against the CA's test mode, then a report of each step."""
    stopping = process.stopping
    outcome.prepare(config.alerts, config.verify, process.secrets)
    runner = CertbotRunner(config.certbot_timeout, stopping)
    report = dryrun.run(config.cycle, runner, stopping, lambda: control_for(config, stopping))
    print(report.render(), flush=True)
    return _interrupted(stopping) or (0 if report.ok else EXIT_FAILED)


def cmd_status(config: Config, *, as_json: bool) -> int:
    state = journal.load(config.paths.state_dir)
    listed = rows(_certs(_current(config)), state, now_utc(), config.domains.renew_before)
    items = with_served(served_now(config.cycle), listed)
    adoption = tree.inspect(config.tree)
    if as_json:
        report = {"certificates": [r.to_json() for r in items], **state.to_json()}
        print(json.dumps({**report, **adoption_json(adoption)}, indent=2))
    else:
        print(table(items))
        for line in preflight_lines(state):
            print(line)
        if state.next_check_at:
            by = f" ({state.next_check_by})" if state.next_check_by else ""
            print(f"next check: {state.next_check_at.isoformat(timespec='seconds')}{by}")
        print(f"\nlineages:\n{render(adoption.decisions, adoption.findings)}")
    return 0


def health_problems(config: Config, state: Journal) -> list[str]:
    """Why the sidecar is unhealthy (none: healthy): a lineage it renews that cannot be read,
    expiry, or the app serving another certificate."""
    ignored = adopt.ignored(tree.inspect(config.tree).decisions)  # not renewed here: not judged
    current = _current(config, ignored)
    problems = [item.problem for item in current.values() if item.problem]
    problems += health(_certs(current), state, now_utc())
    return problems + served_problems(config.verify, state)


def cmd_health(config: Config) -> int:
    state = journal.load(config.paths.state_dir)
    problems = health_problems(config, state)
    for problem in problems:
        print(f"unhealthy: {problem}")
    if warning := failing(state):
        print(f"warning: {warning}")
    for line in replacing(state, now_utc()):
        print(f"warning: {line}")
    if not problems:
        print("healthy")
    return 1 if problems else 0


def cmd_adopt(config: Config, process: Process, *, check: bool) -> int:
    """The rewrite holds the cycle's lock: before it lets go, what the record of stopped targets
    names is started (Docker is asked only when there is a record; without it, adoption works)."""

    def held() -> list[str]:
        return outage.restore_held(
            config.paths.state_dir, lambda: control_for(config, process.stopping)
        )

    print(rewrite_text(tree.adopt_command(config.tree, check=check, held=held)))
    return 0


def dispatch(args: argparse.Namespace, config: Config, process: Process) -> int:
    if args.command == "run":
        return cmd_run(config, process, resume=args.resume, until=args.until)
    if args.command == "renew":
        return cmd_renew(config, process, force=args.force, dry_run=args.dry_run)
    if args.command == "status":
        return cmd_status(config, as_json=args.json)
    if args.command == "health":
        return cmd_health(config)
    if args.command == "adopt":
        return cmd_adopt(config, process, check=args.check)
    inside.start_app(in_certbot(config, process.stopping))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "guard":  # its own settings, standard library only
        return daemon.check() if args.check else daemon.main(shutdown.REQUEST)
    process = Process(shutdown.REQUEST, logs.Secrets())  # handed down from here
    level, fmt = os.environ.get("LOG_LEVEL", "INFO").upper(), os.environ.get("LOG_FORMAT", "text")
    logs.setup(level, fmt, process.secrets)
    try:
        config = load()
        logs.setup(config.log_level, config.log_format, process.secrets)
        return dispatch(args, config, process)
    except ConfigError as error:
        logger.error("{}", error)
        return EXIT_CONFIG
    except SidecarError as error:
        logger.error("{}", error)
        return EXIT_FAILED
    except Exception:  # noqa: BLE001 (the one place that turns a bug into a clear report)
        logger.opt(exception=True).critical("An unexpected error occurred")
        return EXIT_UNEXPECTED
