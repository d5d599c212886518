"""The sidecar's own lifecycle on real parts: `docker stop` at any instant is a clean exit, and the
app is running afterwards."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import pytest

from tests.e2e.faults import BlackHole, Relay
from tests.e2e.harness import APP_IMAGE, disk_serial, wait_for

if TYPE_CHECKING:
    from docker.models.containers import Container

    from tests.e2e.harness import Stack
    from tests.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
GRACE = 10  # Docker's default stop timeout
WELL_INSIDE = 8.0
# Instants (seconds) spread over the first 1.5 s: interpreter start, imports, preflight, cycle.
OFFSETS = (0.0, 0.03, 0.08, 0.15, 0.25, 0.35, 0.5, 0.65, 0.8, 1.0, 1.2, 1.5)


def running(stack: Stack, container: Container) -> bool:
    return bool(stack.state(container)["Running"])


def stop_and_time(container: Container) -> float:
    began = time.monotonic()
    container.stop(timeout=GRACE)
    return time.monotonic() - began


def assert_clean_stop(stack: Stack, daemon: Container, took: float, when: str) -> None:
    state = stack.state(daemon)
    logs = daemon.logs().decode(errors="replace")[-1500:]
    assert state["ExitCode"] == 0, f"{when}: exit {state['ExitCode']} after {took:.1f}s\n{logs}"
    assert took < WELL_INSIDE, f"{when}: the stop took {took:.1f}s\n{logs}"


def issued(stack: Stack) -> None:
    code, logs = stack.sidecar_once("renew")
    assert code == 0, logs


def test_docker_stop_at_any_instant_after_a_start_is_a_clean_exit(stack: Stack):
    """From the first instant of the container: every `docker stop` ends with exit code 0."""
    stack.start_pebble()
    app = stack.start_app()
    issued(stack)

    for offset in OFFSETS:
        daemon = stack.sidecar("run", CHECK_INTERVAL="1h")
        time.sleep(offset)
        took = stop_and_time(daemon)
        assert_clean_stop(stack, daemon, took, f"stopped {offset:.2f}s after the start")
        assert running(stack, app), f"the app is down after a stop {offset:.2f}s after the start"
        daemon.remove(force=True)
        stack.containers.remove(daemon)


def test_docker_stop_at_any_instant_after_a_wake_from_sleep_is_a_clean_exit(stack: Stack):
    """The daemon sleeps, execs itself again and runs a cycle: no instant of that loses SIGTERM."""
    stack.start_pebble()
    app = stack.start_app()
    issued(stack)
    interval = 0.3

    for offset in OFFSETS:
        daemon = stack.sidecar("run", CHECK_INTERVAL=f"{interval}s", CHECK_JITTER="0")
        wait_for(
            "the daemon's first sleep",
            lambda d=daemon: "next check at" in d.logs().decode(errors="replace"),
            timeout=90,
            every=0.02,
        )
        time.sleep(interval + offset)
        took = stop_and_time(daemon)
        assert_clean_stop(stack, daemon, took, f"stopped {offset:.2f}s after a wake")
        assert running(stack, app), f"the app is down after a stop {offset:.2f}s after a wake"
        daemon.remove(force=True)
        stack.containers.remove(daemon)


def test_docker_stop_while_the_app_is_stopped_for_the_challenge_starts_it_and_exits_cleanly(
    stack: Stack, receiver: Receiver
):
    """SIGTERM mid-challenge: certbot is ended, the app started, no further certbot run (the
    second certificate is not attempted), no false alert; the sidecar exits by itself."""
    second = f"b-{stack.uid}.example.com"
    with BlackHole() as hole:
        stack.start_pebble(http_port=hole.port)  # validation hangs: the app stays stopped
        app = stack.start_app()
        daemon = stack.sidecar(
            "run",
            CHECK_INTERVAL="1h",
            DOMAINS=f"{stack.domain};{second}",
            WEBHOOK_URL=f"http://127.0.0.1:{receiver.port}/hook",
        )
        wait_for("the app stopped for the challenge", lambda: app_stopped(stack, app), timeout=120)

        took = stop_and_time(daemon)

        assert_clean_stop(stack, daemon, took, "stopped while the app was down")
        assert running(stack, app), "the app must run again before the sidecar exits"
        assert not (stack.le_dir / "sidecar" / "stopped.json").exists()
        logs = daemon.logs().decode(errors="replace")
        assert "SIGTERM received: stopping certbot" in logs, logs
        assert f"obtaining a certificate for {second}" not in logs, logs
        assert not [body for _, body in receiver.received if body["event"] == "renewal-failed"]


def app_stopped(stack: Stack, app: Container) -> bool:
    return (stack.le_dir / "sidecar" / "stopped.json").exists() and not running(stack, app)


def test_a_stop_still_in_progress_when_the_sidecar_dies_is_waited_for_then_the_app_started(
    stack: Stack,
):
    """An app that ignores SIGTERM with a stop grace longer than the Docker API timeout: the
    sidecar is SIGKILLed during the stop; the next sidecar keeps the record until dockerd has
    killed the app, then starts it (the app is never left down)."""
    pebble = stack.start_pebble()
    app = stack.start_app(
        init=False,
        command=["sh", "-c", "trap '' TERM; python3 /app/app.py"],  # PID 1 ignores SIGTERM
        stop_timeout=35,  # longer than the sidecar's 30 s Docker API timeout
    )
    first = stack.state(app)["StartedAt"]
    daemon = stack.sidecar("run", CHECK_INTERVAL="1h")
    wait_for(
        "the stop of the app under way",
        lambda: "stopping cbs-app" in daemon.logs().decode(errors="replace"),
        timeout=120,
    )
    daemon.kill()  # certbot and the sidecar gone; dockerd goes on with the stop
    assert running(stack, app), "the app ignores SIGTERM: its stop is still in progress"
    pebble.stop(timeout=5)  # the next cycle must not stop the app again

    again = stack.sidecar("run", CHECK_INTERVAL="1h")

    wait_for(
        "the app killed by dockerd and started again",
        lambda: running(stack, app) and stack.state(app)["StartedAt"] != first,
        timeout=150,
        every=1,
    )
    wait_for(  # cleared once the started app is healthy, a moment after it runs
        "the record cleared",
        lambda: not (stack.le_dir / "sidecar" / "stopped.json").exists(),
        timeout=60,
    )
    assert running(stack, app)
    assert "is still stopping" in again.logs().decode(errors="replace")


# Run in a sidecar container: SIGKILL every process whose command line holds one of the words
# (in that order), except this one; prints what it killed.
KILL = """
import os, signal, sys
me = os.getpid()
for word in sys.argv[1:]:
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me):
        try:
            line = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
        except OSError:
            continue
        if word in line:
            os.kill(pid, signal.SIGKILL)
            print(pid, line)
"""


def logs_of(container: Container) -> str:
    return container.logs().decode(errors="replace")


def test_a_renew_by_hand_killed_with_the_app_stopped_is_undone_by_the_idle_daemon(stack: Stack):
    """`sidecar renew --force` exec'd into the daemon's container is SIGKILLed, and its certbot
    with it, while the app is stopped for the challenge: the idle daemon sees the record that no
    cycle holds, starts the app within 30 s, and goes back to sleep without running a cycle."""
    with Relay(stack.http_port) as relay:
        stack.start_pebble(http_port=relay.port)
        app = stack.start_app()
        issued(stack)
        daemon = stack.sidecar("run", CHECK_INTERVAL="1h")
        wait_for("the daemon idle", lambda: "next check at" in logs_of(daemon), timeout=120)
        relay.hold()  # the renewal's validation hangs: the app stays stopped
        stack.forget_authorizations()
        daemon.exec_run(["sidecar", "renew", "--force"], detach=True)
        wait_for("the app stopped for the challenge", lambda: app_stopped(stack, app), timeout=120)
        assert "stays as planned" not in logs_of(daemon), "woken while a cycle held the lock"

        killed = daemon.exec_run(["python3", "-c", KILL, "renew --force", "/bin/certbot"])
        assert b"renew --force" in killed.output, killed.output
        assert b"/bin/certbot" in killed.output, killed.output

        wait_for("the app running again", lambda: running(stack, app), timeout=30, every=0.5)
    wait_for("the daemon asleep again", lambda: "stays as planned" in logs_of(daemon), timeout=60)
    logs = logs_of(daemon)
    assert "an earlier run had left them stopped" in logs, logs
    assert logs.count("cycle done") == 1, logs  # its first cycle only: the wake ran none
    assert running(stack, daemon)
    wait_for(
        "the record cleared",
        lambda: not (stack.le_dir / "sidecar" / "stopped.json").exists(),
        timeout=30,
    )


def killed_mid_challenge(stack: Stack) -> Container:
    """A sidecar SIGKILLed (tini, and so the sidecar and certbot with the container) while the
    app is stopped for the challenge: the record names the app, no process will start it."""
    with BlackHole() as hole:
        stack.start_pebble(http_port=hole.port)
        app = stack.start_app()
        first = stack.sidecar("renew")
        wait_for("the app stopped for the challenge", lambda: app_stopped(stack, app), timeout=120)
        first.kill()
        first.wait(timeout=60)
    assert not running(stack, app)
    return app


def test_a_sidecar_restarted_on_a_read_only_volume_starts_the_app_then_says_why_it_stops(
    stack: Stack,
):
    """The next sidecar finds the volume read-only (remounted after an I/O error): it starts the
    app first, then stops on the writable check's line."""
    app = killed_mid_challenge(stack)

    code, logs = stack.sidecar_once("run", volume_mode="ro", CHECK_INTERVAL="1h")

    assert running(stack, app), logs
    assert code == 2, logs
    assert "an earlier run had left them stopped" in logs
    assert "is not writable (Read-only file system)" in logs
    assert "could not update the record of stopped targets" in logs


def test_adopt_holds_the_cycles_lock_so_it_starts_what_a_killed_run_left_stopped(stack: Stack):
    """`sidecar adopt` takes the lock a restore outside a cycle would skip for: it starts the
    app the record names before it lets the lock go."""
    app = killed_mid_challenge(stack)

    code, logs = stack.sidecar_once("adopt")

    assert code == 0, logs
    assert "renewal conf(s) rewritten" in logs
    assert "an earlier run had left them stopped" in logs
    assert running(stack, app)
    assert not (stack.le_dir / "sidecar" / "stopped.json").exists()


def test_a_renew_by_hand_during_the_daemons_challenge_leaves_the_daemons_app_alone(
    stack: Stack,
):
    """`sidecar renew` while the daemon's app is stopped for its challenge: the record is the
    daemon's; the app is not started under it, the daemon starts it when it is done."""
    with BlackHole() as hole:
        stack.start_pebble(http_port=hole.port)
        app = stack.start_app()
        daemon = stack.sidecar("run", CHECK_INTERVAL="1h")
        wait_for("the app stopped for the challenge", lambda: app_stopped(stack, app), timeout=120)

        code, logs = stack.sidecar_once("renew")

        assert code == 1, logs
        assert "another renewal cycle is running" in logs
        assert not running(stack, app), "the hand-run renew must not start the daemon's app"
        assert (stack.le_dir / "sidecar" / "stopped.json").exists()
        took = stop_and_time(daemon)
        assert_clean_stop(stack, daemon, took, "after the hand-run renew")
        assert running(stack, app)


def test_ctrl_c_on_a_manual_renew_ends_certbot_and_starts_the_app(stack: Stack):
    """SIGINT on `sidecar renew` behaves like SIGTERM: certbot is not left running as an orphan."""
    with BlackHole() as hole:
        stack.start_pebble(http_port=hole.port)
        app = stack.start_app()
        renew = stack.sidecar("renew")
        wait_for(
            "the app stopped for the challenge",
            lambda: not running(stack, app),
            timeout=120,
        )

        renew.kill(signal="SIGINT")
        code = renew.wait(timeout=GRACE)["StatusCode"]

    logs = renew.logs().decode(errors="replace")
    assert code == 128 + 2, logs
    assert "SIGINT received: stopping certbot" in logs, logs
    assert running(stack, app)
    assert not (stack.le_dir / "sidecar" / "stopped.json").exists()
    with pytest.raises(FileNotFoundError):
        disk_serial(stack.le_dir, stack.domain)


def test_a_broken_lineage_found_after_the_start_fails_the_cycle_and_the_others_are_issued(
    stack: Stack, receiver: Receiver
):
    """DOMAINS=a;b, a's cert.pem truncated while the daemon slept: b is obtained, the cycle
    fails naming a (one alert), and the daemon keeps running on its backoff."""
    stack.start_pebble()
    stack.start_app()
    issued(stack)
    cert = (stack.le_dir / "live" / stack.domain / "cert.pem").resolve()
    cert.write_text(cert.read_text()[:200])
    second = f"b-{stack.uid}.example.com"

    daemon = stack.sidecar(
        "run",
        "--resume",  # as after a sleep: the setup was fine once
        CHECK_INTERVAL="1h",
        DOMAINS=f"{stack.domain};{second}",
        WEBHOOK_URL=f"http://127.0.0.1:{receiver.port}/hook",
    )

    wait_for("b issued", (stack.le_dir / "live" / second / "cert.pem").exists, 120)
    alert = receiver.wait("/hook", "renewal-failed")
    assert "is not a readable certificate" in alert["message"]
    wait_for("the retry scheduled", lambda: "retry after 1 failure" in daemon.logs().decode())
    assert running(stack, daemon)
    assert len([b for _, b in receiver.received if b["event"] == "renewal-failed"]) == 1


def test_an_app_container_recreated_while_the_daemon_sleeps_is_waited_for_and_found(
    stack: Stack,
):
    """compose recreated the app (a new container, same label) between two cycles: the daemon
    waits for it instead of exiting, and goes on with it."""
    stack.start_pebble()
    app = stack.start_app()
    issued(stack)
    daemon = stack.sidecar("run", CHECK_INTERVAL="3s", CHECK_JITTER="0")
    wait_for("the first sleep", lambda: "next check at" in daemon.logs().decode(), timeout=90)
    app.remove(force=True)
    stack.containers.remove(app)
    wait_for(
        "the daemon waiting for the app",
        lambda: "no container has the label" in daemon.logs().decode(),
        timeout=60,
    )
    cycles = daemon.logs().decode().count("next check at")

    stack.start_app()

    wait_for(
        "a cycle with the new container",
        lambda: daemon.logs().decode().count("next check at") > cycles,
        timeout=90,
    )
    assert running(stack, daemon)


def test_the_eab_key_reaches_certbot_only_in_a_private_file_never_a_log_or_command_line(
    stack: Stack,
):
    """A CA that requires external account binding: the account is registered (so certbot had
    the key), and the key is in no log line, no certbot log and no command line; once the
    account exists it is not passed at all."""
    kid, key = "kid-e2e", "c2VjcmV0LWhtYWMta2V5LWZvci1lYWItZTJlLXRlc3Q"
    stack.start_pebble(PEBBLE_EAB_KID=kid, PEBBLE_EAB_KEY=key)
    stack.start_app()
    (stack.ca_dir / "eab.key").write_text(key)
    options = {
        "EAB_KID": kid,
        "EAB_HMAC_KEY_FILE": "/pebble-ca/eab.key",
        "LOGS_DIR": "/etc/letsencrypt/certbot-logs",  # on the volume, to be read here
    }

    code, first = stack.sidecar_once("renew", **options)
    code2, second = stack.sidecar_once("renew", "--force", **options)

    assert code == 0, first
    assert code2 == 0, second
    for logs in (first, second):
        assert key not in logs
    certbot_logs = (stack.le_dir / "certbot-logs").glob("letsencrypt.log*")
    assert all(key not in path.read_text(errors="replace") for path in certbot_logs)
    assert re.search(r"--config \S+/cli\.ini", certbot_command(first))
    assert not re.search(r"--config \S+/cli\.ini", certbot_command(second))


def certbot_command(logs: str) -> str:
    """The certbot command line the sidecar logged (at DEBUG) for its first certbot run."""
    return next(line for line in logs.splitlines() if "running /opt/venv/bin/certbot" in line)


def test_one_off_tasks_are_never_targets_and_an_auto_remove_container_is_refused(
    stack: Stack,
):
    """`docker compose run` copies the app's labels onto a one-off task: never stopped. A
    container a stop would delete (`--rm`): refused with a clear line, nothing touched."""
    stack.start_pebble()
    app = stack.start_app()
    issued(stack)
    sleep = ["python3", "-c", "import time; time.sleep(600)"]
    task = stack._run(
        APP_IMAGE,
        "task",
        command=sleep,
        labels={"certbot-sidecar.test": stack.uid, "com.docker.compose.oneoff": "True"},
        environment={"CERT_NAME": stack.domain},
    )
    task_started = stack.state(task)["StartedAt"]

    code, logs = stack.sidecar_once("renew", "--force")

    assert code == 0, logs
    assert stack.state(task)["StartedAt"] == task_started
    assert running(stack, task)
    assert "cbs-task" not in logs

    stack._run(
        APP_IMAGE,
        "temp",
        command=sleep,
        labels={"certbot-sidecar.test": stack.uid},
        environment={"CERT_NAME": stack.domain},
        auto_remove=True,
    )
    app_started = stack.state(app)["StartedAt"]
    code, logs = stack.sidecar_once("renew", "--force")
    assert code == 2, logs
    assert "runs with AutoRemove" in logs
    assert stack.state(app)["StartedAt"] == app_started
