"""The `sidecar` command: exit codes and what each subcommand prints (no Docker needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sidecar import cli, loader, shutdown
from sidecar.certbot import inside
from sidecar.cycle import preflight
from sidecar.errors import ConfigError
from sidecar.report import outcome
from sidecar.targets.outage import RECORD, read_record, stop_targets
from sidecar.volume.journal import Journal
from tests.unit.helpers import FakeControl, container, install_cert, make_pem, noting, save_journal


def certificate(env: dict[str, str], left: timedelta) -> None:
    """A 90-day certificate for example.com with `left` of its lifetime to go."""
    now = datetime.now(UTC)
    pem = make_pem(("example.com",), now - (timedelta(days=90) - left), now + left)
    install_cert(Path(env["CONFIG_DIR"]), "example.com", pem)


def test_a_bad_variable_is_one_line_and_exit_code_2(env, monkeypatch, capsys):
    """Nothing is touched; the line names the variable and the rule."""
    monkeypatch.setenv("CHECK_INTERVAL", "soon")
    assert cli.main(["status"]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "CHECK_INTERVAL: 'soon' is not a duration" in err[0]


def test_status_lists_a_certificate_that_does_not_exist_yet(env, capsys):
    """A fresh volume: one row per DOMAINS certificate, 'no certificate yet'."""
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CERTIFICATE")
    assert "no certificate yet" in out
    assert "no lineages in the tree yet" in out


def test_status_json_has_the_certificates_the_journal_and_the_lineages(env, capsys):
    """Scripts get every certificate, the last result and each lineage's plan."""
    certificate(env, timedelta(days=60))
    assert cli.main(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (cert,) = report["certificates"]
    assert cert["certificate"] == "example.com"
    assert report["last_result"] == "never run"
    assert [item["lineage"] for item in report["lineages"]] == ["example.com"]


def test_health_is_healthy_far_from_expiry(env, capsys):
    """60 of 90 days left: exit 0, 'healthy'."""
    certificate(env, timedelta(days=60))
    assert cli.main(["health"]) == 0
    assert capsys.readouterr().out.strip() == "healthy"


def test_health_in_the_danger_zone_is_exit_code_1(env, capsys):
    """A certificate with 5 of 90 days left: unhealthy, named."""
    certificate(env, timedelta(days=5))
    assert cli.main(["health"]) == 1
    assert "unhealthy: example.com: expires" in capsys.readouterr().out


def test_adopt_check_prints_the_plan_and_changes_nothing(env, capsys):
    """`adopt --check`: the decisions, and that nothing was written."""
    certificate(env, timedelta(days=60))
    assert cli.main(["adopt", "--check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("example.com: ")
    assert "nothing was changed (--check)" in out


def test_hook_post_starts_the_app(env, monkeypatch):
    """certbot's post-hook: what the sidecar stopped is started."""
    started: list[str] = []
    monkeypatch.setattr(cli, "in_certbot", lambda _config, _stopping: None)
    monkeypatch.setattr(inside, "start_app", lambda _context: noting(started, "start", []))
    assert cli.main(["hook", "post"]) == 0
    assert started == ["start"]


def test_run_after_a_stop_request_exits_0_before_touching_docker(env, monkeypatch):
    """SIGTERM during start-up: the daemon ends cleanly, nothing checked or stopped."""
    monkeypatch.setattr(
        cli, "control_for", lambda _config, _stopping: pytest.fail("Docker was asked")
    )
    shutdown.REQUEST.request()
    assert cli.main(["run"]) == 0


def test_an_unreachable_docker_engine_is_one_line_and_exit_code_1(env, capsys):
    """`renew` with no engine at DOCKER_HOST: the line says so, exit 1."""
    assert cli.main(["renew"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "cannot reach the Docker engine" in err
    assert "Traceback" not in err


def test_a_bug_is_reported_as_unexpected_with_exit_code_70(env, monkeypatch, capsys):
    """An exception that is not a SidecarError: 'An unexpected error occurred', exit 70."""

    def broken(*_: object, **__: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "cmd_status", broken)
    assert cli.main(["status"]) == cli.EXIT_UNEXPECTED
    assert "An unexpected error occurred" in capsys.readouterr().err


def test_health_ignores_an_expired_lineage_listed_in_ignore_lineages(env, monkeypatch, capsys):
    """IGNORE_LINEAGES: the sidecar does not renew it, so its expiry cannot make it unhealthy."""
    certificate(env, timedelta(days=60))
    old = make_pem(("old.example",), datetime.now(UTC) - timedelta(days=100))
    install_cert(Path(env["CONFIG_DIR"]), "old.example", old)
    assert cli.main(["health"]) == 1
    capsys.readouterr()
    monkeypatch.setenv("IGNORE_LINEAGES", "old.example")
    assert cli.main(["health"]) == 0, capsys.readouterr().out


def test_health_names_a_certificate_that_cannot_be_read(env, capsys):
    """A truncated cert.pem of a renewed lineage: unhealthy with the file's name, no crash."""
    certificate(env, timedelta(days=60))
    (Path(env["CONFIG_DIR"]) / "live" / "example.com" / "cert.pem").resolve().write_text("x")
    assert cli.main(["health"]) == 1
    assert "cert.pem is not a readable certificate" in capsys.readouterr().out


def stopped_web(env: dict[str, str]) -> FakeControl:
    """The app `web`, stopped by a run that died before it started it again (the record says so)."""
    control = FakeControl(container("web"))
    stop_targets(Path(env["CONFIG_DIR"]) / "sidecar", control, "a renewal killed mid-challenge")
    return control


@pytest.mark.parametrize(
    "broken",
    [
        (preflight, "check_writable", "CONFIG_DIR /le is not writable (Read-only file system)"),
        (outcome, "prepare", "ALERT_URLS: not a valid apprise URL"),
    ],
)
def test_the_app_left_stopped_is_started_before_anything_else_is_checked(
    env, monkeypatch, capsys, broken
):
    """A read-only volume or a bad ALERT_URLS still stops the sidecar, with its line, but only
    after the app a dead run left stopped runs again."""
    control = stopped_web(env)
    module, name, message = broken

    def refuse(*_: object) -> None:
        raise ConfigError(message)

    monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(cli, "control_for", lambda _config, _stopping: control)
    assert cli.main(["run"]) == cli.EXIT_CONFIG
    assert control.get("web").running
    assert message in capsys.readouterr().err


def test_adopt_starts_what_the_record_names_before_it_releases_the_lock(env, monkeypatch):
    """`sidecar adopt` holds the cycle's lock: a restore skipped for that lock is its to do."""
    certificate(env, timedelta(days=60))
    control = stopped_web(env)
    monkeypatch.setattr(cli, "control_for", lambda _config, _stopping: control)
    assert cli.main(["adopt"]) == 0
    assert control.get("web").running
    assert read_record(Path(env["CONFIG_DIR"]) / "sidecar") == []


def test_adopt_without_a_record_never_asks_docker(env, monkeypatch, capsys):
    """The usual case: the rewrite needs no Docker access at all."""
    certificate(env, timedelta(days=60))
    monkeypatch.setattr(
        cli, "control_for", lambda _config, _stopping: pytest.fail("Docker was asked")
    )
    assert cli.main(["adopt"]) == 0
    assert "renewal conf(s) rewritten" in capsys.readouterr().out


def test_adopt_with_docker_unreachable_still_adopts_and_says_the_record_waits(env, capsys):
    """No engine at DOCKER_HOST: the adoption is done, and the record is named as not acted on."""
    certificate(env, timedelta(days=60))
    stopped_web(env)
    assert cli.main(["adopt"]) == 0
    out, err = capsys.readouterr()
    assert "renewal conf(s) rewritten" in out
    assert "could not be acted on (cannot reach the Docker engine" in err
    assert (Path(env["CONFIG_DIR"]) / "sidecar" / RECORD).exists()


def test_the_idle_daemon_sleeps_watching_the_state_dir_and_knows_its_planned_time(env, monkeypatch):
    """The sleeper gets the state dir to watch; the daemon it becomes, the planned time."""
    execs: list[list[str]] = []
    monkeypatch.setattr(shutdown, "become", lambda argv: execs.append(list(argv)))
    monkeypatch.setattr("sidecar.cli.time.monotonic", lambda: 500.0)
    cli._sleep_light(loader.load().state_dir, 60)
    (argv,) = execs
    sleeper, daemon = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    assert sleeper[1:] == [
        "-m",
        "sidecar.sleeper",
        "60.000",
        "--watch",
        f"{env['CONFIG_DIR']}/sidecar",
    ]
    assert daemon[1:] == ["-m", "sidecar", "run", "--resume", "--until", "560.000"]
    args = cli._parser().parse_args(daemon[3:])
    assert (args.resume, args.until) == (True, 560.0)


def test_a_forced_renewal_that_would_be_the_fifth_of_the_week_is_refused_before_docker(
    env, monkeypatch, capsys
):
    """At Let's Encrypt, with 4 certificates for the names in the journal's last 7 days:
    `renew --force` is one line saying when the next is possible, exit 1, Docker never asked
    (DOCKER_HOST answers nothing here: reaching it would say so instead)."""
    monkeypatch.setenv("ACME_SERVER", "letsencrypt")
    certificate(env, timedelta(days=60))
    now = datetime.now(UTC)
    week = [now - timedelta(days=d) for d in (5, 4, 2, 1)]
    save_journal(Path(env["CONFIG_DIR"]) / "sidecar", Journal(issued={"example.com": week}))
    assert cli.main(["renew", "--force"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "not forcing a renewal of example.com: 4 certificates" in err
    assert "cannot reach the Docker engine" not in err
    assert len(err.strip().splitlines()) == 1
    assert cli.main(["renew"]) == cli.EXIT_FAILED  # unforced: not refused (Docker is next)
    assert "cannot reach the Docker engine" in capsys.readouterr().err
