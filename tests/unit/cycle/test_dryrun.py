from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import TYPE_CHECKING

from sidecar.cycle import CycleResult
from sidecar.cycle.dryrun import (
    FAILED,
    OK,
    SKIPPED,
    Report,
    Step,
    answering_step,
    steps_for,
    stop_and_start_steps,
)
from sidecar.cycle.problem import Problem
from sidecar.cycle.run import served_now
from tests.unit.helpers import (
    T0,
    container,
    dns_settings,
    install_cert,
    make_pem,
    make_settings,
    service,
)

if TYPE_CHECKING:
    from pathlib import Path

    from sidecar.targets.base import Target
    from sidecar.targets.container import ContainerTarget

SEC = timedelta(seconds=1)
WEB = container("web", started_at=T0 - 100 * SEC)
GOOD = CycleResult((), (), 3.0)
BUSY_LINE = "certbot certonly for a failed (exit 1): port 80 is still in use after ..."
BUSY = CycleResult((), (Problem("portBusy", "a", BUSY_LINE),), 3.0)
REFUSED_LINE = "certbot certonly for a failed (exit 1): Connection refused"
REFUSED = CycleResult((), (Problem("connection", "a", REFUSED_LINE),), 3.0)


def after_stop_start(target: ContainerTarget, *, running: bool = True) -> ContainerTarget:
    """The container as it is after being stopped at T0+1s and (maybe) started at T0+3s."""
    return dataclasses.replace(
        target,
        running=running,
        finished_at=T0 + SEC,
        started_at=T0 + 3 * SEC if running else target.started_at,
    )


def steps(
    running: list[Target], after: dict[str, Target | None], result: CycleResult
) -> dict[str, tuple[str, str]]:
    found = stop_and_start_steps(running, after, result, port=80, ca="ca.test")
    return {s.name: (s.outcome, s.detail) for s in found}


def test_a_stop_is_seen_on_the_engines_clock_alone():
    """The engine's clock far off the sidecar's: a target is stopped when its FinishedAt moved,
    not when it is later than the sidecar's start time."""
    ahead = dataclasses.replace(WEB, finished_at=T0 + timedelta(days=30))  # a stop long ago
    assert steps([ahead], {WEB.id: ahead}, GOOD)["stop"][0] == SKIPPED
    behind = dataclasses.replace(after_stop_start(WEB), finished_at=T0 - timedelta(days=1))
    assert steps([WEB], {WEB.id: behind}, GOOD)["stop"] == (OK, "stopped web for the challenge")


def test_dns_challenge_needs_no_stop_and_no_port(tmp_path: Path):
    """CHALLENGE=dns: stop and port are skipped, saying why; the app runs on."""
    challenge = dns_settings(tmp_path / "le").challenge
    after = {WEB.id: WEB}
    found = stop_and_start_steps([WEB], after, GOOD, port=80, ca="ca.test", challenge=challenge)
    got = {s.name: (s.outcome, s.detail) for s in found}
    assert got["stop"] == (SKIPPED, "not needed: DNS-01: a TXT record through dns-rfc2136, no port")
    assert got["port"] == (SKIPPED, "not needed: DNS-01 binds no port")
    assert got["start"] == (OK, "web running again")


def test_dns_challenge_adds_the_plugin_steps_after_the_targets(tmp_path: Path):
    """plugin, credentials and record come before certbot is run; other modes lack them."""
    names = steps_for(dns_settings(tmp_path / "le").challenge)
    assert names[names.index("targets") + 1 :][:4] == ("plugin", "credentials", "record", "stop")
    assert "record" not in steps_for(make_settings(tmp_path / "le").challenge)


def test_everything_fine_is_four_ok_steps():
    """Stopped, port free, challenge validated, running again."""
    got = steps([WEB], {WEB.id: after_stop_start(WEB)}, GOOD)
    assert got == {
        "stop": (OK, "stopped web for the challenge"),
        "port": (OK, "port 80 was free for the challenge server"),
        "challenge": (OK, "ca.test validated the challenge (dry run: nothing was saved)"),
        "start": (OK, "web running again"),
    }


def test_port_held_by_something_else_fails_the_port_step():
    """The plugin's port-busy error is the port step's failure."""
    got = steps([WEB], {WEB.id: after_stop_start(WEB)}, BUSY)
    assert got["port"][0] == FAILED
    assert "still in use" in got["port"][1]
    assert got["challenge"][0] == FAILED


def test_failed_validation_after_the_stop_keeps_the_port_ok():
    """The port was bound (no busy error): only the challenge failed."""
    got = steps([WEB], {WEB.id: after_stop_start(WEB)}, REFUSED)
    assert got["port"][0] == OK
    assert got["challenge"] == (FAILED, REFUSED.errors[0])


def test_failure_before_the_challenge_skips_stop_and_port():
    """certbot failed and nothing was stopped: those steps were not reached."""
    got = steps([WEB], {WEB.id: WEB}, REFUSED)
    assert got["stop"] == (SKIPPED, "not reached: certbot failed before the challenge")
    assert got["port"] == (SKIPPED, "not reached")
    assert got["start"][0] == OK


def test_reused_authorization_needs_no_stop():
    """certbot succeeded without stopping anything: the CA reused a valid authorization."""
    got = steps([WEB], {WEB.id: WEB}, GOOD)
    assert got["stop"][0] == SKIPPED
    assert "reused" in got["stop"][1]
    assert got["port"][0] == SKIPPED


def test_target_left_down_fails_the_start_step():
    """A target not running after the dry run is the start step's failure."""
    got = steps([WEB], {WEB.id: after_stop_start(WEB, running=False)}, GOOD)
    assert got["start"] == (FAILED, "web not running after the dry run")


def test_target_gone_after_the_run_fails_the_start_step():
    """Removed meanwhile: not running."""
    got = steps([WEB], {WEB.id: None}, GOOD)
    assert got["start"][0] == FAILED


def test_only_some_targets_stopped_fails_the_stop_step():
    """Two running targets, one stopped: named."""
    db = container("db", started_at=T0 - 100 * SEC)
    got = steps([db, WEB], {WEB.id: after_stop_start(WEB), db.id: db}, GOOD)
    assert got["stop"] == (FAILED, "stopped web, not db")


def test_a_global_service_kept_running_is_no_failed_stop():
    """A global service cannot be scaled to 0: it runs on through the challenge, and the stop
    step says so beside the service it did stop."""
    app = service("app", replicas=3, started_at=T0 - 100 * SEC)
    web = service("web", replicas=None, started_at=T0 - 100 * SEC)
    stopped = dataclasses.replace(app, finished_at=T0 + SEC)
    got = steps([app, web], {app.id: stopped, web.id: web}, REFUSED)
    assert got["stop"] == (
        OK,
        "stopped app for the challenge; web kept running (a global service cannot be scaled to 0)",
    )
    alone = steps([web], {web.id: web}, GOOD)
    assert alone["stop"][0] == SKIPPED
    assert "web kept running" in alone["stop"][1]


def test_no_running_target_skips_stop_and_start():
    """Nothing to stop: stop and start are skipped, the port is ok when certbot was."""
    got = steps([], {}, GOOD)
    assert got["stop"][0] == SKIPPED
    assert got["port"][0] == OK
    assert got["start"][0] == SKIPPED


def test_report_lists_each_step_and_the_verdict():
    """Aligned lines, FAILED in capitals, and a last line with the count."""
    report = Report((Step("docker", OK, "fine"), Step("targets", FAILED, "no container named x")))
    assert not report.ok
    assert report.render().splitlines() == [
        "dry-run report:",
        "  ok      docker   fine",
        "  FAILED  targets  no container named x",
        "dry run: FAILED (1 step(s) failed)",
    ]


def test_skipped_steps_do_not_fail_the_report():
    """Skipped is not failed."""
    report = Report((Step("docker", OK, "fine"), Step("answering", SKIPPED, "no VERIFY")))
    assert report.ok
    assert report.render().endswith("dry run: ok, every step passed or was not needed")


def test_answering_is_skipped_without_verify(tmp_path: Path):
    """Without VERIFY the app's TLS address is unknown: skipped, saying which setting."""
    step = answering_step(served_now(make_settings(tmp_path / "le").cycle))
    assert step.outcome == SKIPPED
    assert "VERIFY" in step.detail


def test_answering_is_skipped_before_the_first_certificate(tmp_path: Path):
    """No certificate yet (first dry run before going live): the app has nothing to serve."""
    step = answering_step(served_now(make_settings(tmp_path / "le", VERIFY="127.0.0.1:443").cycle))
    assert step == Step("answering", SKIPPED, "no certificate yet: the app has nothing to serve")


def test_answering_fails_when_the_app_does_not_answer(tmp_path: Path):
    """A lineage exists and nobody answers on VERIFY: failed with the reason."""
    config = make_settings(tmp_path / "le", VERIFY="127.0.0.1:1", VERIFY_WAIT="0")
    install_cert(config.config_dir, "example.com", make_pem(("example.com",)))
    step = answering_step(served_now(config.cycle))
    assert step.outcome == FAILED
    assert "does not answer TLS" in step.detail
