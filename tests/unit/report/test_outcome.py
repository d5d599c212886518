from __future__ import annotations

import dataclasses
import socket
from datetime import timedelta
from typing import TYPE_CHECKING

from sidecar import shutdown
from sidecar.cycle.problem import Problem
from sidecar.cycle.result import CycleResult
from sidecar.cycle.run import run_cycle, served_now
from sidecar.cycle.verify import Endpoint, compare, may_restart
from sidecar.logs import Secrets
from sidecar.report import outcome
from sidecar.report.alerts import Notifier
from sidecar.report.status import Row, served_problems, with_served
from sidecar.volume import journal
from sidecar.volume.journal import Ari, Journal, Served
from tests.unit.helpers import (
    T0,
    FakeCertbot,
    FakeControl,
    cert_info,
    container,
    install_cert,
    make_pem,
    make_settings,
    recorder,
    save_journal,
)

if TYPE_CHECKING:
    from pathlib import Path

LOCAL = Endpoint("127.0.0.1", 443)
CURRENT = cert_info(("a.example",), serial=0xC0FFEE)
OLD = cert_info(("a.example",), serial=0xBAD)
SEC = timedelta(seconds=1)


# downtime

SILENT = Notifier(None, None, Secrets())  # no alert goes anywhere


def test_downtime_is_from_the_stop_to_the_start_of_each_target_stopped_in_the_cycle():
    """FinishedAt after the cycle began up to StartedAt; older stops do not count."""
    web = container("web", started_at=T0 + 12 * SEC)
    web = dataclasses.replace(web, finished_at=T0 + 10 * SEC)
    old = container("old", started_at=T0 - 50 * SEC)
    old = dataclasses.replace(old, finished_at=T0 - 60 * SEC)
    assert outcome.downtime([web, old], since=T0, now=T0 + 99 * SEC) == {"web": 2.0}


def test_a_target_still_down_counts_until_now():
    """Stopped in the cycle and not started again: down until the moment of measuring."""
    down = container("web", running=False, started_at=T0 - 100 * SEC)
    down = dataclasses.replace(down, finished_at=T0 + 5 * SEC)
    assert outcome.downtime([down], since=T0, now=T0 + 20 * SEC) == {"web": 15.0}


# summaries and the restart policy


def test_summary_is_per_certificate_and_names_the_first_bad_check():
    """One bad name makes the certificate's served state false, with that name's detail."""
    checks = (
        compare("a.example", LOCAL, "a.example", CURRENT, CURRENT),
        compare("a.example", LOCAL, "www.a.example", CURRENT, OLD),
    )
    served = outcome.summarize(checks, T0)["a.example"]
    assert served.match is False
    assert "www.a.example" in served.detail
    assert served.checked_at == T0


def test_restart_is_allowed_once_per_certificate_serial():
    """A mismatch for a serial never restarted for: allowed; the same serial again: not."""
    checks = (compare("a.example", LOCAL, "a.example", CURRENT, OLD),)
    assert may_restart(checks, {})
    assert not may_restart(checks, {"a.example": CURRENT.serial_hex})
    assert may_restart(checks, {"a.example": OLD.serial_hex})


def test_no_restart_when_nothing_mismatches():
    """Unreachable or matching: the policy never restarts."""
    checks = (
        compare("a.example", LOCAL, "a.example", CURRENT, CURRENT),
        compare("a.example", LOCAL, "a.example", CURRENT, None, error="refused"),
    )
    assert not may_restart(checks, {})


# record, with the in-memory container control


def test_cycle_without_verify_counts_and_measures(tmp_path: Path):
    """No VERIFY: no checks; the cycle and a renewal are counted, the stop measured."""
    config = make_settings(tmp_path / "le")
    web = container("web", started_at=T0 + 3 * SEC)
    web = dataclasses.replace(web, finished_at=T0 + SEC)
    result = outcome.record(
        recorder(config), FakeControl(web), CycleResult(("example.com",), (), 1.0), T0
    )
    assert result.checks == ()
    assert result.downtime == 2.0
    facts = journal.load(config.state_dir)
    assert (facts.cycles, facts.cycle_failures, facts.renewals) == (1, 0, {"example.com": 1})
    assert facts.downtime == 2.0


def test_failed_cycle_is_counted_and_a_quiet_one_keeps_the_last_downtime(tmp_path: Path):
    """Downtime is that of the last cycle that stopped the app; failures add up."""
    config = make_settings(tmp_path / "le")
    save_journal(config.state_dir, Journal(downtime=4.0, downtime_at=T0))
    control = FakeControl(container("web", started_at=T0 - 100 * SEC))
    result = outcome.record(
        recorder(config), control, CycleResult((), (Problem("error", None, "boom"),), 1.0), T0
    )
    assert result.errors == ("boom",)
    facts = journal.load(config.state_dir)
    assert facts.cycle_failures == 1
    assert facts.downtime == 4.0
    assert facts.alerts.failure is not None


def test_verify_with_an_app_that_does_not_answer_fails_the_cycle(tmp_path: Path):
    """VERIFY on a closed port: the cycle's errors say so and health turns unhealthy."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = make_settings(tmp_path / "le", VERIFY=f"127.0.0.1:{port}", VERIFY_WAIT="0")
    install_cert(config.config_dir, "example.com", make_pem(("example.com",)))
    control = FakeControl(container("web"))

    def after(result: CycleResult, began_at: object) -> CycleResult:
        return outcome.record(recorder(config), control, result, began_at)  # type: ignore[arg-type]

    result = run_cycle(config.cycle, FakeCertbot(), control, shutdown.REQUEST, after=after)
    (error,) = result.errors
    assert error.startswith(f"example.com: 127.0.0.1:{port} (SNI example.com) does not answer TLS")
    (problem,) = served_problems(config.verify, journal.load(config.state_dir))
    assert "does not answer TLS" in problem


def test_health_ignores_old_checks_when_verify_is_off(tmp_path: Path):
    """VERIFY removed: a recorded mismatch no longer makes the sidecar unhealthy."""
    config = make_settings(tmp_path / "le")
    served = {"example.com": Served(match=False, checked_at=T0, detail="old")}
    assert served_problems(config.verify, Journal(served=served)) == []


def test_status_rows_are_unchanged_without_verify(tmp_path: Path):
    """No VERIFY: the served column stays unknown."""
    config = make_settings(tmp_path / "le")
    row = Row("example.com", (), None, None, None, "ok")
    assert with_served(served_now(config.cycle), [row]) == [row]


def test_a_cycle_that_could_not_probe_keeps_the_last_served_result():
    """VERIFY on, but the cycle failed before it probed (no checks): the last known result
    stays, so a mismatch is neither forgotten by health nor dropped from the metrics."""
    mismatch = {"a.example": Served(match=False, checked_at=T0, detail="serves serial 1")}
    before = Journal(served=mismatch)
    failed = CycleResult((), (Problem("error", None, "ACME server unreachable"),), 1.0)
    assert outcome.recorded(before, failed, verify=True, now=T0).served == mismatch
    assert outcome.recorded(before, failed, verify=False, now=T0).served == {}


def test_the_cas_answers_are_kept_only_for_the_current_certificates():
    """An answer about a certificate since replaced is dropped (with it the replacement request
    that health and the metric show); this cycle's answers replace the earlier ones."""
    hour = timedelta(hours=1)
    old = Ari("bad", T0 - 2 * hour, T0 - hour, T0 - hour, T0)
    new = Ari("c0ffee", T0 + 59 * 24 * hour, T0 + 61 * 24 * hour, T0 + 60 * 24 * hour, T0)
    other = Ari("b0b", T0 + hour, T0 + 2 * hour, T0 + hour, T0)
    before = Journal(ari={"a.example": old, "b.example": other})
    result = CycleResult(("a.example",), (), 1.0, ari={"a.example": new})
    certs = {"a.example": CURRENT, "b.example": cert_info(("b.example",), serial=0xB0B)}
    after = outcome.recorded(before, result, verify=False, now=T0, certs=certs)
    assert after.ari == {"a.example": new, "b.example": other}
    gone = outcome.recorded(before, CycleResult((), (), 1.0), verify=False, now=T0, certs=certs)
    assert gone.ari == {"b.example": other}


def test_each_new_certificate_is_counted_for_its_set_of_names_for_a_week():
    """The rate limit's count: a cycle that saved one adds its time; a week later it is gone."""
    result = CycleResult(("a.example",), (), 1.0)
    certs = {"a.example": CURRENT}
    after = outcome.recorded(Journal(), result, verify=False, now=T0, certs=certs)
    assert after.issued == {"a.example": [T0]}
    quiet = CycleResult((), (), 1.0)
    later = outcome.recorded(after, quiet, verify=False, now=T0 + 8 * 24 * 3600 * SEC, certs=certs)
    assert later.issued == {}
