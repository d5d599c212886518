from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from sidecar import shutdown
from sidecar.certbot.runner import CertbotResult
from sidecar.cycle import run as cycle
from sidecar.cycle.result import CycleResult
from sidecar.errors import CertbotError, LockedError
from sidecar.logs import Secrets
from sidecar.report import outcome
from sidecar.report.alerts import Notifier
from sidecar.targets.outage import RECORD, restore, stop_targets
from sidecar.volume import access
from sidecar.volume.files import exclusive_lock, write_json
from sidecar.volume.journal import Ari, Journal, load
from sidecar.volume.lineages import names as lineage_names
from sidecar.volume.lineages import read
from sidecar.volume.lineages import read_strict as read_lineage_cert
from tests.unit.cycle.test_gate import CAA_LINE, FakePreflight
from tests.unit.helpers import (
    T0,
    FakeCertbot,
    FakeControl,
    container,
    install_cert,
    make_pem,
    make_settings,
    recorder,
    save_journal,
    service,
    value_after,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from sidecar.loader import Config

OK = CertbotResult(0, timed_out=False)
SILENT = Notifier(None, None, Secrets())  # no alert goes anywhere


def run_cycle(
    config: Config,
    certbot: cycle.Certbot,
    control: FakeControl,
    *,
    force: bool = False,
    dry_run: bool = False,
) -> CycleResult:
    """A cycle as the CLI runs it: its outcome recorded in the journal."""

    def after(result: CycleResult, began_at: datetime) -> CycleResult:
        return outcome.record(recorder(config), control, result, began_at)

    return cycle.run_cycle(
        config.cycle, certbot, control, shutdown.REQUEST, force=force, dry_run=dry_run, after=after
    )


FAILED = CertbotResult(
    1, timed_out=False, tail=("Some challenges have failed.", "Error: connection refused")
)
NAMES = ("a.example", "www.a.example")


@pytest.fixture
def config(tmp_path) -> Config:
    return make_settings(tmp_path / "le", DOMAINS=",".join(NAMES))


@pytest.fixture
def control() -> FakeControl:
    """The app (`web`, running since long ago) and a worker its owner keeps stopped."""
    return FakeControl(container("web"), container("worker", running=False))


def existing(config: Config, name: str = "a.example", names: tuple[str, ...] = NAMES) -> None:
    """A current certificate already in the tree."""
    install_cert(config.config_dir, name, make_pem(names, datetime.now(UTC) - timedelta(days=10)))


def issue_for(config_dir: Path, args: list[str], written_at: datetime | None) -> None:
    """Write what certbot would: the named lineage (certonly) or every lineage (renew)."""
    if args[0] == "certonly":
        domains = tuple(args[i + 1] for i, arg in enumerate(args) if arg == "-d")
        todo = {value_after(args, "--cert-name"): domains}
    else:
        todo = {}
        for name in lineage_names(config_dir):
            current = read(config_dir, name).cert
            if current is not None:  # certbot renews what it can read, and fails the rest
                todo[name] = current.names
    for name, domains in todo.items():
        pem = make_pem(domains, datetime.now(UTC) - timedelta(minutes=1))
        install_cert(config_dir, name, pem, written_at=written_at)


def certbot(
    config: Config,
    control: FakeControl,
    *,
    challenge: bool = True,
    writes: bool = True,
    post_hook: bool = True,
    result: CertbotResult = OK,
    raises: Exception | None = None,
    written_at: datetime | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> FakeCertbot:
    """A certbot run as the sidecar plugin plays it: stop the app for the challenge, write the
    certificate, start the app in the post-hook; each step can be left out or made to fail."""

    def action(args: list[str]) -> CertbotResult:
        if challenge:
            stop_targets(config.state_dir, control, "the HTTP-01 challenge of a.example")
        if meanwhile:
            meanwhile()
        if raises is not None:
            raise raises
        if writes and result.ok and "--dry-run" not in args:
            issue_for(config.config_dir, args, written_at)
        if post_hook:
            restore(config.state_dir, control)
        return result

    return FakeCertbot(action)


# what runs


def test_first_cycle_obtains_every_configured_certificate(tmp_path, control):
    """Empty tree: certonly per certificate, no renew; the app is stopped and started for each."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example,www.a.example;b.example")
    fake = certbot(config, control)
    result = run_cycle(config, fake, control)
    assert result == CycleResult(("a.example", "b.example"), (), result.duration)
    assert result.ok
    assert fake.commands == ["certonly", "certonly"]
    assert [value_after(args, "--cert-name") for args in fake.calls] == ["a.example", "b.example"]
    assert control.calls == [("stop", "web"), ("start", "web")] * 2
    assert read_lineage_cert(config.config_dir, "b.example") is not None


def test_existing_certificate_is_only_renewed(config, control):
    """With the lineage in place, `certbot renew` decides whether anything is due."""
    existing(config)
    fake = certbot(config, control, challenge=False, writes=False)
    result = run_cycle(config, fake, control)
    assert fake.commands == ["renew"]
    assert "--cert-name" not in fake.calls[0]
    assert result.ok
    assert result.changed == ()


def test_changed_domain_list_reissues_the_lineage_and_renews(config, control):
    """Names in DOMAINS that the certificate lacks are obtained with certonly --expand."""
    existing(config, names=("a.example",))
    fake = certbot(config, control)
    result = run_cycle(config, fake, control)
    assert fake.commands == ["certonly", "renew"]
    assert "--expand" in fake.calls[0]
    assert result.changed == ("a.example",)
    cert = read_lineage_cert(config.config_dir, "a.example")
    assert cert is not None
    assert cert.names == NAMES


def test_unconfigured_lineage_in_the_tree_is_still_renewed(config, control):
    """A lineage removed from DOMAINS keeps being renewed (certbot knows it)."""
    existing(config, "old.example", ("old.example",))
    fake = certbot(config, control, writes=False)
    run_cycle(config, fake, control)
    assert fake.commands == ["certonly", "renew"]


def test_forced_cycle_renews_existing_lineages_with_force(config, control):
    """`sidecar renew --force` passes --force-renewal to certbot renew."""
    existing(config)
    fake = certbot(config, control)
    result = run_cycle(config, fake, control, force=True)
    assert fake.commands == ["renew"]
    assert "--force-renewal" in fake.calls[0]
    assert result.changed == ("a.example",)


def test_forced_cycle_does_not_renew_what_it_just_issued(config, control):
    """When every lineage was (re-)issued by certonly, a forced renew would only repeat it."""
    existing(config, names=("a.example",))
    fake = certbot(config, control)
    run_cycle(config, fake, control, force=True)
    assert fake.commands == ["certonly"]


def test_dry_run_saves_nothing_and_restarts_nothing(config, control):
    """--dry-run reaches certbot; the state file and the app stay as they were."""
    existing(config)
    fake = certbot(config, control)
    result = run_cycle(config, fake, control, dry_run=True)
    assert all("--dry-run" in args for args in fake.calls)
    assert result.changed == ()
    assert control.names("restart") == []
    assert not (config.state_dir / "state.json").exists()
    assert control.get("web").running


def test_cycle_refuses_to_run_while_another_holds_the_lock(config, control):
    """Two cycles never run certbot at once; the second raises LockedError untouched."""
    fake = certbot(config, control)
    with exclusive_lock(config.state_dir / "lock"), pytest.raises(LockedError):
        run_cycle(config, fake, control)
    assert fake.calls == []
    assert control.calls == []


# the app is never left down


def test_containers_left_down_by_a_crash_are_started_before_certbot_runs(config, control):
    """A record from an interrupted run is honoured at the start of the next cycle."""
    existing(config)
    web = control.get("web")
    control.by_someone_else("web", running=False)
    write_json(
        config.state_dir / RECORD,
        {
            "reason": "a run the sidecar did not finish",
            "containers": [
                {"id": web.id, "name": web.name, "stopped_at": datetime.now(UTC).isoformat()}
            ],
        },
    )
    web_up_when_certbot_ran: list[bool] = []

    def action(_args: list[str]) -> CertbotResult:
        web_up_when_certbot_ran.append(control.get("web").running)
        return OK

    result = run_cycle(config, FakeCertbot(action), control)
    assert web_up_when_certbot_ran == [True]
    assert control.calls == [("start", "web")]
    assert result.ok
    assert not (config.state_dir / RECORD).exists()


def test_stopped_containers_are_started_again_when_certbot_fails(config, control):
    """certbot fails (and its post-hook did not run): the cycle starts what it stopped."""
    existing(config)
    fake = certbot(config, control, post_hook=False, result=FAILED)
    result = run_cycle(config, fake, control)
    assert control.calls == [("stop", "web"), ("start", "web")]
    assert control.get("web").running
    assert not control.get("worker").running
    assert not (config.state_dir / RECORD).exists()
    (error,) = result.errors
    assert error.startswith("certbot renew for renewal failed (exit 1): ")
    assert "Error: connection refused" in error


def test_timed_out_certbot_is_reported_as_such(config, control):
    """A run killed at CERTBOT_TIMEOUT says `timed out`, and the app is up again."""
    existing(config)
    fake = certbot(config, control, post_hook=False, result=CertbotResult(-15, timed_out=True))
    result = run_cycle(config, fake, control)
    assert result.errors == ("certbot renew for renewal timed out: ",)
    assert control.get("web").running


def test_stopped_containers_are_started_again_when_certbot_cannot_run(config, control):
    """A CertbotError (certbot missing, killed) becomes the cycle's error; the app is started."""
    existing(config)
    fake = certbot(config, control, raises=CertbotError("cannot run certbot: no such file"))
    result = run_cycle(config, fake, control)
    assert result.errors == ("cannot run certbot: no such file",)
    assert control.calls == [("stop", "web"), ("start", "web")]
    assert load(config.state_dir).failures == 1
    with exclusive_lock(config.state_dir / "lock"):
        pass


def test_stopped_containers_are_started_again_when_the_runner_crashes(config, control):
    """Even an unexpected exception starts the app before it propagates, and frees the lock."""
    existing(config)
    fake = certbot(config, control, raises=RuntimeError("bug"))
    with pytest.raises(RuntimeError, match="bug"):
        run_cycle(config, fake, control)
    assert control.calls == [("stop", "web"), ("start", "web")]
    assert control.get("web").running
    with exclusive_lock(config.state_dir / "lock"):
        pass


def test_a_bug_before_the_apps_start_still_starts_it_before_the_lock_is_released(
    config, control, monkeypatch
):
    """The holder of the cycle's lock restores what the record names whatever raised (here the
    file permissions step just before the start): a restore skipped for the lock counts on it."""
    existing(config)
    fake = certbot(config, control, post_hook=False, result=FAILED)

    def broken(*_views: object) -> None:
        if control.calls:  # after the stop: the step before the start
            raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(access, "apply_safely", broken)
    with pytest.raises(PermissionError):
        run_cycle(config, fake, control)
    assert control.calls == [("stop", "web"), ("start", "web")]
    assert not (config.state_dir / RECORD).exists()


def test_container_someone_else_started_after_our_stop_is_not_touched(config, control):
    """Up again by other hands (restart policy, operator): not started, not restarted."""
    existing(config)

    def operator_starts_web() -> None:
        control.by_someone_else(
            "web", running=True, started_at=datetime.now(UTC) + timedelta(seconds=1)
        )

    fake = certbot(config, control, post_hook=False, result=FAILED, meanwhile=operator_starts_web)
    run_cycle(config, fake, control)
    assert control.calls == [("stop", "web")]
    assert control.get("web").running
    assert not (config.state_dir / RECORD).exists()


def test_container_someone_else_started_and_stopped_again_stays_down(config, control):
    """Restarted and stopped by others after our stop: they want it down."""
    existing(config)

    def operator_bounces_web() -> None:
        control.by_someone_else(
            "web", running=False, started_at=datetime.now(UTC) + timedelta(seconds=1)
        )

    fake = certbot(config, control, post_hook=False, result=FAILED, meanwhile=operator_bounces_web)
    run_cycle(config, fake, control)
    assert control.calls == [("stop", "web")]
    assert not control.get("web").running


# loading the new certificate


def test_running_target_started_before_the_new_certificate_is_restarted(config):
    """No challenge needed (authorizations reused): the app never stopped, so it is restarted."""
    existing(config)
    written = datetime.now(UTC) - timedelta(minutes=10)
    control = FakeControl(
        container("web", started_at=T0),
        container("late", started_at=written + timedelta(minutes=5)),
        container("worker", running=False, started_at=T0),
    )
    fake = certbot(config, control, challenge=False, written_at=written)
    result = run_cycle(config, fake, control)
    assert result.changed == ("a.example",)
    assert result.ok
    assert control.calls == [("restart", "web")]


def test_target_started_after_the_challenge_is_not_restarted(config, control):
    """Stopped for the challenge and started after the write: it already loads the new one."""
    existing(config)
    fake = certbot(config, control)
    result = run_cycle(config, fake, control)
    assert result.changed == ("a.example",)
    assert control.calls == [("stop", "web"), ("start", "web")]


def test_nothing_is_restarted_when_no_certificate_changed(config, control):
    """Nothing due: the app, running since long ago, is left alone."""
    existing(config)
    fake = certbot(config, control, challenge=False, writes=False)
    result = run_cycle(config, fake, control)
    assert result.changed == ()
    assert control.calls == []


def test_failed_restart_is_a_cycle_error(config):
    """If the app cannot be restarted, the cycle reports it (and counts a failure)."""
    existing(config)
    control = FakeControl(container("web", started_at=T0))
    control.fail.add(("restart", "web"))
    fake = certbot(config, control, challenge=False)
    result = run_cycle(config, fake, control)
    assert result.changed == ("a.example",)
    assert result.errors == ("web: restart refused",)
    assert load(config.state_dir).failures == 1


def test_one_failing_certificate_does_not_stop_the_others(tmp_path, control):
    """Each certificate is attempted; what succeeded is reported as changed."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example;b.example")
    issuing = certbot(config, control)

    def action(args: list[str]) -> CertbotResult:
        if value_after(args, "--cert-name") == "a.example":
            return FAILED
        assert issuing.action is not None
        return issuing.action(args)

    fake = FakeCertbot(action)
    result = run_cycle(config, fake, control)
    assert fake.commands == ["certonly", "certonly"]
    assert result.changed == ("b.example",)
    (error,) = result.errors
    assert error.startswith("certbot certonly for a.example failed (exit 1)")
    assert load(config.state_dir).renewed == ("b.example",)


# the state file


def test_successful_cycle_is_saved_as_ok(config, control):
    """status shows `ok`, the time of success and what was renewed."""
    before = datetime.now(UTC)
    run_cycle(config, certbot(config, control), control)
    state = load(config.state_dir)
    assert state.last_result == "ok"
    assert state.failures == 0
    assert state.renewed == ("a.example",)
    assert state.last_cycle_at is not None
    assert before <= state.last_cycle_at <= datetime.now(UTC)
    assert state.last_success_at == state.last_cycle_at


def test_failures_are_counted_and_reset_by_a_success(config, control):
    """Consecutive failures add up (for the backoff); one success resets them."""
    existing(config)
    failing = certbot(config, control, post_hook=False, result=FAILED)
    run_cycle(config, failing, control)
    first = load(config.state_dir)
    run_cycle(config, failing, control)
    second = load(config.state_dir)
    assert (first.failures, second.failures) == (1, 2)
    assert second.last_result.startswith("failed: certbot renew for renewal failed (exit 1)")
    assert second.last_success_at is None
    run_cycle(config, certbot(config, control), control)
    state = load(config.state_dir)
    assert state.failures == 0
    assert state.last_result == "ok"
    assert state.last_success_at is not None


def test_failed_cycle_keeps_the_last_success_and_schedule(config, control):
    """A failure does not erase when the last success was, nor the next check time."""
    existing(config)
    earlier = datetime(2025, 1, 1, tzinfo=UTC)
    save_journal(config.state_dir, Journal(last_success_at=earlier, next_check_at=earlier))
    run_cycle(config, certbot(config, control, result=FAILED), control)
    state = load(config.state_dir)
    assert state.last_success_at == earlier
    assert state.next_check_at == earlier
    assert state.failures == 1


def test_broken_certificate_tree_fails_the_cycle_before_certbot(config, control):
    """A corrupt cert.pem is a configuration error: reported, counted, certbot not run."""
    install_cert(config.config_dir, "a.example", b"garbage")
    fake = certbot(config, control)
    result = run_cycle(config, fake, control)
    (error,) = result.errors
    assert "is not a readable certificate" in error
    assert fake.calls == []
    assert load(config.state_dir).failures == 1


def test_renew_before_expiry_reaches_certbot(tmp_path, control):
    """certbot renew is told the configured interval (command line or renewal conf)."""
    config = make_settings(tmp_path / "le", DOMAINS=",".join(NAMES), RENEW_BEFORE_EXPIRY="30d")
    existing(config)
    told: list[bool] = []

    def action(args: list[str]) -> CertbotResult:
        conf = config.config_dir / "renewal" / "a.example.conf"
        lines = conf.read_text(encoding="utf-8").splitlines()
        told.append(
            any(arg.startswith("--renew-before-expiry") for arg in args)
            or any(line.replace(" ", "").startswith("renew_before_expiry=") for line in lines)
        )
        return OK

    run_cycle(config, FakeCertbot(action), control)
    assert told == [True]


def test_reload_signal_replaces_the_restart_of_a_stale_target(tmp_path):
    """An app that reloads in place (RELOAD_SIGNAL) gets the signal, not a restart."""
    config = make_settings(tmp_path / "le", DOMAINS=",".join(NAMES), RELOAD_SIGNAL="SIGHUP")
    existing(config)
    written = datetime.now(UTC) - timedelta(minutes=10)
    control = FakeControl(container("web", started_at=T0))
    fake = certbot(config, control, challenge=False, written_at=written)
    run_cycle(config, fake, control)
    assert control.calls == [("signal SIGHUP", "web")]


# problems found after the start are this cycle's failures, never the end of the daemon


def test_a_broken_configured_lineage_fails_the_cycle_while_the_others_are_renewed(tmp_path):
    """DOMAINS=a;b with a's cert.pem truncated: b is still renewed; the cycle's error names a."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example;b.example")
    control = FakeControl(container("web"))
    install_cert(config.config_dir, "a.example", b"-----BEGIN CERTIFICATE-----\ntrunc")
    install_cert(
        config.config_dir,
        "b.example",
        make_pem(("b.example",), datetime.now(UTC) - timedelta(days=80)),
    )
    fake = certbot(config, control)
    result = run_cycle(config, fake, control)
    assert fake.commands == ["renew"], "nothing is issued over the broken lineage"
    (error,) = result.errors
    assert "live/a.example/cert.pem is not a readable certificate" in error
    assert "a.example is not renewed until it is repaired" in error
    assert "b.example" in result.changed
    assert load(config.state_dir).failures == 1


def test_an_unparseable_conf_with_renew_before_expiry_set_does_not_stop_certbot(tmp_path):
    """RENEW_BEFORE_EXPIRY is written into each conf as an adoption edit: a broken conf of
    another lineage is that lineage's problem, and certbot renew still runs for the rest."""
    config = make_settings(tmp_path / "le", DOMAINS=",".join(NAMES), RENEW_BEFORE_EXPIRY="30d")
    control = FakeControl(container("web"))
    existing(config)
    (config.config_dir / "renewal" / "old.example.conf").write_text("[renewalparams\n")
    fake = certbot(config, control)
    run_cycle(config, fake, control)
    assert fake.commands == ["renew"]
    conf = (config.config_dir / "renewal" / "a.example.conf").read_text(encoding="utf-8")
    assert "renew_before_expiry = 2592000 seconds" in conf


def test_a_run_ended_by_a_stop_request_is_no_failure_and_the_app_is_started(config, control):
    """SIGTERM mid-challenge: no error, no failure counted, no alert; the app runs again."""
    existing(config)

    def action(args: list[str]) -> CertbotResult:
        stop_targets(config.state_dir, control, "the HTTP-01 challenge of a.example")
        shutdown.REQUEST.request()
        return CertbotResult(-15, timed_out=False, stopped=True)

    save_journal(config.state_dir, Journal(failures=2, last_result="failed: x"))
    result = run_cycle(config, FakeCertbot(action), control)
    assert result.stopped
    assert result.errors == ()
    assert control.get("web").running
    state = load(config.state_dir)
    assert state.failures == 2
    assert state.last_result.startswith("stopped before the end")
    assert state.alerts.failure is None


# Swarm secrets (CERT_DELIVERY=secret)


def test_secret_delivery_is_checked_at_every_cycle_not_only_after_a_renewal(tmp_path):
    """Nothing due, yet every service is given the current secrets: a `docker stack deploy`
    resets a service's secrets to the stack file's list."""
    config = make_settings(
        tmp_path / "le", DOMAINS=",".join(NAMES), APP_SERVICES="shop_web", CERT_DELIVERY="secret"
    )
    existing(config)
    control = FakeControl(service("shop_web"))
    result = run_cycle(config, certbot(config, control, challenge=False, writes=False), control)
    assert result.ok
    assert control.calls == [("deliver", "shop_web")]


def test_a_service_still_recorded_as_stopped_gets_no_delivery(tmp_path):
    """Its restore failed: an update now would move its version and look like someone else's."""
    config = make_settings(
        tmp_path / "le", DOMAINS=",".join(NAMES), APP_SERVICES="shop_web", CERT_DELIVERY="secret"
    )
    existing(config)
    control = FakeControl(service("shop_web"), service("shop_api"))
    control.fail.add(("start", "shop_web"))
    run_cycle(config, certbot(config, control), control)
    assert ("deliver", "shop_api") in control.calls
    assert ("deliver", "shop_web") not in control.calls


def test_volume_delivery_never_asks_for_secrets(config, control):
    """The default: the app reads the volume; no delivery step."""
    existing(config)
    run_cycle(config, certbot(config, control), control)
    assert not [call for call in control.calls if call[0] == "deliver"]


# a lineage the tree holds is never obtained again beside it (NAME-0001)


def test_a_deleted_live_directory_is_restored_and_nothing_is_obtained(config, control):
    """live/a.example/ deleted, conf and archive kept: made again from the archive before
    certbot runs; `renew` only, no `certonly` (it would save a.example-0001)."""
    existing(config)
    live = config.config_dir / "live" / "a.example"
    for link in live.iterdir():
        link.unlink()
    live.rmdir()
    fake = certbot(config, control, challenge=False, writes=False)
    result = run_cycle(config, fake, control)
    assert result.ok, result.errors
    assert fake.commands == ["renew"]
    assert read(config.config_dir, "a.example").cert is not None
    assert lineage_names(config.config_dir) == ["a.example"]


def test_a_lineage_certbot_cannot_load_is_not_obtained_again_and_says_so_the_same_way(
    config, control
):
    """live/a.example/ deleted and the archive incomplete: no `certonly` at any cycle, one error
    with the same text each time (alerted once), permanent (the full interval, no backoff)."""
    existing(config)
    (config.config_dir / "archive" / "a.example" / "chain1.pem").unlink()
    live = config.config_dir / "live" / "a.example"
    for link in live.iterdir():
        link.unlink()
    fake = certbot(config, control, challenge=False, writes=False)
    first = run_cycle(config, fake, control)
    second = run_cycle(config, fake, control)
    assert "certonly" not in fake.commands
    (error,) = first.errors
    assert "would save a new lineage a.example-0001 beside it" in error
    assert second.errors == first.errors
    assert first.permanent
    assert lineage_names(config.config_dir) == ["a.example"]


def test_a_lineage_certbot_makes_during_the_cycle_is_a_new_certificate(tmp_path, control):
    """certbot saved its certificate under a numbered name (the name was taken): the cycle
    reports it, never 'nothing was due'."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example")

    def action(args: list[str]) -> CertbotResult:
        if args[0] == "certonly":
            install_cert(config.config_dir, "a.example-0001", make_pem(("a.example",)))
        return OK

    result = run_cycle(config, FakeCertbot(action), control)
    assert result.changed == ("a.example-0001",)


# the CA's renewal information (ARI)


def asking(answers: dict[str, tuple[timedelta, timedelta]]) -> Callable[..., dict[str, Ari]]:
    """An ARI asker whose CA answers, per lineage, with a window from..to relative to now
    (the point to renew at: its start), for the certificate it is asked about."""

    def ask(ca, certs, known, now, rng) -> dict[str, Ari]:
        del ca, known, rng
        return {
            name: Ari(
                cert.serial_hex,
                now + answers[name][0],
                now + answers[name][1],
                now + answers[name][0],
                now,
            )
            for name, cert in certs.items()
            if cert is not None and name in answers
        }

    return ask


def test_a_lineage_the_ca_wants_replaced_is_renewed_alone_and_at_once(tmp_path, control):
    """Its window is over: `renew --force-renewal --cert-name` for it only, then the usual
    `renew` for the rest (nothing else due); the answer about the new certificate is kept."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example;b.example")
    existing(config, "a.example", ("a.example",))
    existing(config, "b.example", ("b.example",))
    hour = timedelta(hours=1)
    windows = {"a.example": (-2 * hour, -hour), "b.example": (50 * 24 * hour, 52 * 24 * hour)}
    renewed: list[str] = []

    def action(args: list[str]) -> CertbotResult:
        if "--force-renewal" in args:
            name = value_after(args, "--cert-name")
            renewed.append(name)
            pem = make_pem((name,), datetime.now(UTC) - timedelta(minutes=1))
            install_cert(config.config_dir, name, pem)
        return OK

    fake = FakeCertbot(action)
    result = cycle.run_cycle(config.cycle, fake, control, shutdown.REQUEST, ask_ari=asking(windows))
    assert renewed == ["a.example"]
    assert [args[0] for args in fake.calls] == ["renew", "renew"]
    assert fake.runs[0].expected == 1
    assert "--cert-name" not in fake.calls[1]
    assert result.changed == ("a.example",)
    assert set(result.requested) == {"a.example"}
    new = read_lineage_cert(config.config_dir, "a.example")
    assert new is not None
    assert result.ari["a.example"].serial == new.serial_hex  # asked again about the new one


def test_a_window_ahead_renews_nothing_early(config, control):
    """The CA's window is a month away: only the usual `renew`, nothing forced."""
    existing(config)
    day = timedelta(days=1)
    fake = certbot(config, control, challenge=False, writes=False)
    result = cycle.run_cycle(
        config.cycle,
        fake,
        control,
        shutdown.REQUEST,
        ask_ari=asking({"a.example": (30 * day, 32 * day)}),
    )
    assert fake.commands == ["renew"]
    assert "--force-renewal" not in fake.calls[0]
    assert result.requested == {}
    assert set(result.ari) == {"a.example"}


def test_a_forced_cycle_does_not_renew_a_requested_lineage_twice(config, control):
    """`sidecar renew --force` renews every lineage anyway: no separate run for it."""
    existing(config)
    hour = timedelta(hours=1)
    fake = certbot(config, control)
    cycle.run_cycle(
        config.cycle,
        fake,
        control,
        shutdown.REQUEST,
        force=True,
        ask_ari=asking({"a.example": (-2 * hour, -hour)}),
    )
    assert fake.commands == ["renew"]
    assert "--cert-name" not in fake.calls[0]


def test_a_lineage_the_ca_wants_replaced_passes_the_pre_flight_first(tmp_path, control):
    """The CA wants a.example replaced now but its CAA forbids the CA: the pre-flight is asked
    about it (it is not due by certbot's rule), it is not renewed, and nothing stops for it."""
    config = make_settings(tmp_path / "le", DOMAINS="a.example;b.example")
    existing(config, "a.example", ("a.example",))
    existing(config, "b.example", ("b.example",))
    hour = timedelta(hours=1)
    windows = {"a.example": (-2 * hour, -hour), "b.example": (50 * 24 * hour, 52 * 24 * hour)}
    pre = FakePreflight(failing={"a.example": CAA_LINE})
    fake = FakeCertbot()
    result = cycle.run_cycle(
        config.cycle, fake, control, shutdown.REQUEST, preflight=pre, ask_ari=asking(windows)
    )
    assert pre.asked == [("a.example",)]
    assert not [args for args in fake.calls if "--force-renewal" in args]
    assert [p.lineage for p in result.problems] == ["a.example"]
