"""Knowing it worked, on real parts: the served certificate verified (and fixed by one restart),
status and JSON logs, metrics scraped over HTTP, alerts received, and the dry run's report."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import (
    SIDECAR_IMAGE,
    SOCKET,
    disk_cert,
    disk_serial,
    free_ports,
    served_serial,
    wait_for,
)

if TYPE_CHECKING:
    from tests.e2e.harness import Stack
    from tests.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def json_events(logs: str) -> list[dict[str, Any]]:
    """The `extra` fields and message of every log line; each line must be one JSON object."""
    events = []
    for line in logs.splitlines():
        record = json.loads(line)["record"]
        events.append({**record["extra"], "message": record["message"]})
    return events


def certbot_by_hand(stack: Stack, challenge_port: int) -> tuple[int, str]:
    """`certbot renew --force-renewal` run by hand with plain standalone: the app is untouched."""
    container = stack._run(
        SIDECAR_IMAGE,
        "certbot-by-hand",
        entrypoint=["certbot"],
        command=[
            "renew",
            "--force-renewal",
            "--no-random-sleep-on-renew",
            "--non-interactive",
            "--server",
            stack.acme_url,
            "--authenticator",
            "standalone",
            "--http-01-port",
            str(challenge_port),
            "--http-01-address",
            "127.0.0.1",
        ],
        network_mode="host",
        environment={**stack.sidecar_env(), "REQUESTS_CA_BUNDLE": "/pebble-ca/ca.pem"},
        volumes={
            str(stack.le_dir): {"bind": "/etc/letsencrypt", "mode": "rw"},
            str(stack.ca_dir): {"bind": "/pebble-ca", "mode": "ro"},
            SOCKET: {"bind": SOCKET, "mode": "rw"},
        },
    )
    code = container.wait(timeout=120)["StatusCode"]
    return code, container.logs().decode(errors="replace")


def test_app_serving_an_old_certificate_is_detected_and_fixed_by_one_restart(stack: Stack):
    """Renewed outside the sidecar, the app kept the old cert; the next cycle restarts it once.

    The demo app loads its certificate once at start. `certbot renew` run by hand (the README
    allows it) with plain standalone on a port the app does not hold renews the lineage without
    touching the app, which goes on serving the old certificate: the sidecar's next cycle (nothing
    due) sees it on VERIFY, restarts the app once, and the app serves the current certificate.
    """
    (challenge_port,) = free_ports(1)
    stack.start_pebble(http_port=challenge_port)
    app = stack.start_app()
    env = {
        "HTTP01_PORT": str(challenge_port),
        "VERIFY": f"127.0.0.1:{stack.https_port}",
        "VERIFY_WAIT": "10s",  # time enough for a loaded machine to start serving TLS
        "LOG_FORMAT": "json",
    }
    code, logs = stack.sidecar_once("renew", **env)
    assert code == 0, logs
    first = disk_serial(stack.le_dir, stack.domain)
    verified = [e for e in json_events(logs) if e.get("event") == "verify"]
    assert [e["outcome"] for e in verified] == ["match"]
    assert verified[0]["certificate"] == stack.domain

    code, out = certbot_by_hand(stack, challenge_port)
    assert code == 0, out
    current = disk_serial(stack.le_dir, stack.domain)
    assert current != first
    assert served_serial(stack.https_port, stack.domain) == first, "the app must not have reloaded"

    code, logs = stack.sidecar_once("renew", **env)

    assert code == 0, logs
    events = json_events(logs)
    outcomes = [e["outcome"] for e in events if e.get("event") == "verify"]
    assert outcomes[0] == "mismatch"
    assert "restart" in outcomes
    assert outcomes[-1] == "match"
    restarts = [e for e in events if e.get("event") == "restart" and e.get("container")]
    assert [e["container"] for e in restarts] == [app.name]
    assert restarts[0]["duration"] > 0
    (cycle,) = [e for e in events if e.get("event") == "cycle"]
    assert cycle["outcome"] == "ok"
    assert isinstance(cycle["duration"], float)
    assert served_serial(stack.https_port, stack.domain) == current

    code, out = stack.sidecar_once("status", "--json", **{**env, "LOG_FORMAT": "text"})
    assert code == 0, out
    (row,) = json.loads(out[out.index("{") :])["certificates"]
    assert row["served"]["match"] is True
    assert row["certificate"] == stack.domain
    assert "Pebble" in row["issuer"]
    assert row["not_after"] == disk_cert(stack.le_dir, stack.domain).not_valid_after_utc.isoformat()
    code, out = stack.sidecar_once("status", **{**env, "LOG_FORMAT": "text"})
    assert code == 0, out
    lines = out.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("CERTIFICATE"))
    header, line = lines[at : at + 2]
    assert header.split() == [
        *("CERTIFICATE", "NAMES", "ISSUER", "NOT", "AFTER", "DAYS", "LEFT", "NEXT", "CHECK"),
        *("ARI", "WINDOW", "NEXT", "RENEWAL", "SERVED", "LAST", "RESULT"),
    ]
    assert line.split()[0] == stack.domain
    assert line[header.index("SERVED") :].startswith("yes")


def scrape(port: int) -> dict[str, float]:
    """Every sample of the metrics endpoint, keyed `name{label=value}`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def test_daemon_sends_alerts_and_serves_metrics(stack: Stack, receiver: Receiver):
    """Webhook and apprise receive success, failure and recovery; metrics follow; no token leaks."""
    stack.start_pebble()
    app = stack.start_app()
    (metrics_port,) = free_ports(1)
    token = f"t0ken-{stack.uid}-secret"
    daemon = stack.sidecar(
        "run",
        CHECK_INTERVAL="4s",
        CHECK_JITTER="0",
        VERIFY=f"127.0.0.1:{stack.https_port}",
        VERIFY_WAIT="15s",  # a loaded machine may take seconds to serve TLS after the start
        METRICS_PORT=str(metrics_port),
        WEBHOOK_URL=f"http://127.0.0.1:{receiver.port}/hook/{token}",
        ALERT_URLS=f"json://127.0.0.1:{receiver.port}/apprise/{token}",
        ALERT_ON_SUCCESS="true",
    )
    cert = f"certificate={stack.domain}"

    try:
        renewed = receiver.wait("/hook/", "renewed")
    except AssertionError as error:
        seen = [body.get("event") for _, body in receiver.received]
        tail = daemon.logs().decode(errors="replace")[-4000:]
        raise AssertionError(f"{error}; received {seen}; the daemon said:\n{tail}") from None
    assert renewed["certificates"] == [stack.domain]
    assert renewed["severity"] == "success"
    note = receiver.wait("/apprise/")
    assert stack.domain in note["title"]
    metrics = wait_for(
        "metrics of the first cycle",
        lambda: (
            (m := scrape(metrics_port)).get(f"certbot_sidecar_served_certificate_match{{{cert}}}")
            == 1.0
            and m
        ),
        timeout=60,
    )
    assert isinstance(metrics, dict)
    not_after = disk_cert(stack.le_dir, stack.domain).not_valid_after_utc.timestamp()
    assert (
        metrics[f"certbot_sidecar_certificate_not_after_timestamp_seconds{{{cert}}}"] == not_after
    )
    assert metrics["certbot_sidecar_renewal_attempts_total"] >= 1
    assert metrics[f"certbot_sidecar_certificate_renewals_total{{{cert}}}"] == 1
    assert metrics["certbot_sidecar_app_downtime_seconds"] > 0
    assert metrics["certbot_sidecar_last_success_timestamp_seconds"] > 0

    app.stop(timeout=10)
    failed = receiver.wait("/hook/", "renewal-failed")
    assert "does not answer TLS" in failed["message"]
    assert failed["severity"] == "failure"
    app.start()
    receiver.wait("/hook/", "recovered")

    metrics = scrape(metrics_port)
    assert metrics["certbot_sidecar_renewal_failures_total"] >= 1
    logs = daemon.logs().decode(errors="replace")
    assert token not in logs
    assert "alert sent" in logs
    assert stack.state(daemon)["Running"]


REPORT_LINE = re.compile(r"^  (ok|FAILED|skipped)\s+(\w+)\s+(.*)$")


def report_of(out: str) -> dict[str, tuple[str, str]]:
    """step -> (outcome, detail), from the report printed at the end of the dry run."""
    lines = out[out.index("dry-run report:") :].splitlines()
    return {m[2]: (m[1].lower(), m[3]) for line in lines if (m := REPORT_LINE.match(line))}


def test_dry_run_reports_every_step_ok_and_saves_nothing(stack: Stack):
    """After a first issuance the dry run stops and starts the app, and changes no certificate."""
    stack.start_pebble()
    app = stack.start_app()
    code, logs = stack.sidecar_once("renew")
    assert code == 0, logs
    serial = disk_serial(stack.le_dir, stack.domain)
    before = stack.state(app)["StartedAt"]

    code, out = stack.sidecar_once(
        "renew", "--dry-run", VERIFY=f"127.0.0.1:{stack.https_port}", VERIFY_WAIT="10s"
    )

    assert code == 0, out
    report = report_of(out)
    assert list(report) == [
        *("volume", "tree", "acme", "names", "docker", "targets", "stop", "port", "challenge"),
        *("start", "answering"),
    ]
    outcomes = {step: outcome for step, (outcome, _) in report.items()}
    assert outcomes == {**dict.fromkeys(report, "ok"), "names": "skipped"}
    assert app.name in report["targets"][1]
    assert "dry run: ok" in out
    assert disk_serial(stack.le_dir, stack.domain) == serial
    assert stack.state(app)["StartedAt"] != before, "the app was not stopped for the challenge"
    assert stack.state(app)["Running"]


def test_dry_run_with_a_wrong_app_name_reports_it_and_touches_nothing(stack: Stack):
    """A wrong APP_CONTAINERS: the targets step fails, later steps are skipped, exit 1."""
    stack.start_pebble()
    app = stack.start_app()
    before = stack.state(app)["StartedAt"]

    code, out = stack.sidecar_once("renew", "--dry-run", APP_LABEL="", APP_CONTAINERS="no-such-app")

    assert code == 1, out
    report = report_of(out)
    assert report["docker"][0] == "ok"
    assert report["targets"] == ("failed", "APP_CONTAINERS: no container named no-such-app")
    for step in ("stop", "port", "challenge", "start", "answering"):
        assert report[step][0] == "skipped"
    assert "dry run: FAILED (1 step(s) failed)" in out
    assert stack.state(app)["StartedAt"] == before
    assert not (stack.le_dir / "live").exists()
