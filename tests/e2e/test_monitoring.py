"""The operator's stack on real parts: Prometheus (Debian's package) scrapes a real sidecar with
the shipped alert rules loaded; failing renewals and a short-lived certificate make their alerts
fire; every query of the Grafana dashboard returns data; the image's healthcheck decides as the
full command does, without loading the heavy modules."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

from tests.e2e.harness import ROOT, disk_cert, free_ports, wait_for
from tests.e2e.prometheus import JOB, Prometheus

if TYPE_CHECKING:
    from docker.models.containers import Container

    from tests.e2e.harness import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

DASHBOARD = ROOT / "config" / "grafana" / "certbot-sidecar.json"
VALIDITY = 180  # seconds: the last sixth (the critical expiry alert) starts after 150
HEAVY = (
    "pydantic",
    "pydantic_settings",
    "docker",
    "cryptography",
    "loguru",
    "requests",
    "certbot",
    "configobj",
)
# `sidecar health` as Docker runs it, and which heavy modules it loaded
LIGHT = (
    "import sys; from sidecar.__main__ import main; code = main(['health']); "
    f"print('exit', code, sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
)
# the full check, as `sidecar health` ran before the light one
FULL = "import sys; from sidecar.cli import main; sys.exit(main(['health']))"


def dashboard_queries(**values: str) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of the dashboard, its variables set to `values`
    and Grafana's own intervals to a minute."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$__interval", "1m")
            for name, value in values.items():
                expr = expr.replace(f"${name}", value)
            assert "$" not in expr, expr
            out.append((panel["title"], expr))
    return out


def variable_queries() -> list[tuple[str, str]]:
    """(the label, the selector) of every `label_values(selector, label)` variable."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            inner = variable["query"].removeprefix("label_values(").removesuffix(")")
            selector, label = inner.rsplit(",", 1)
            out.append((label.strip(), selector.replace("$job", ".*").replace("$instance", ".*")))
    return out


def health_in(container: Container) -> tuple[str, int, str, int]:
    """(lines, exit code) of the light check and of the full one, in the sidecar's container;
    the light one must have loaded no heavy module."""
    code, (out, _) = container.exec_run(["python3", "-c", LIGHT], demux=True)
    assert code == 0, out
    *lines, last = out.decode().splitlines()
    assert last.endswith(" []"), f"the light check loaded {last}"
    full_code, (full_out, _) = container.exec_run(["python3", "-c", FULL], demux=True)
    return "\n".join(lines), int(last.split()[1]), full_out.decode().strip(), full_code


def test_a_real_prometheus_fires_the_failure_and_expiry_alerts_the_dashboard_has_data(
    stack: Stack, tmp_path
):
    """Scraped every second with the shipped rules: after the first cycle every dashboard query
    returns data and nothing alerts; three failed cycles fire CertbotSidecarRenewalFailing; the
    certificate (180 s) entering its last sixth fires CertbotSidecarCertificateExpiringSoon.
    `sidecar health` decides as the full command at both ends, on the standard library."""
    pebble = stack.start_pebble(validity=VALIDITY)
    stack.start_app()
    (metrics_port,) = free_ports(1)
    env = {
        "METRICS_PORT": str(metrics_port),
        "VERIFY": f"127.0.0.1:{stack.https_port}",
        "VERIFY_WAIT": "15s",  # a loaded machine may take seconds to serve TLS after the start
    }
    daemon = stack.sidecar("run", CHECK_INTERVAL="1h", CHECK_JITTER="0", **env)
    cert = stack.domain
    with Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{metrics_port}"]) as prom:
        match = f'certbot_sidecar_served_certificate_match{{certificate="{cert}"}} == 1'
        try:
            wait_for("the first cycle's metrics in Prometheus", lambda: prom.query(match), 180)
        except AssertionError as error:
            logs = daemon.logs().decode(errors="replace")[-3000:]
            raise AssertionError(f"{error}\n{logs}\n{prom.log()[-2000:]}") from None
        assert prom.query(f'up{{job="{JOB}"}} == 1')
        issued = disk_cert(stack.le_dir, cert)
        not_after = issued.not_valid_after_utc.timestamp()
        lifetime = not_after - issued.not_valid_before_utc.timestamp()
        overdue = not_after - lifetime / 4
        assert time.time() < overdue - 30, "the first cycle took too long for this test's timing"
        for values in (
            {"job": ".*", "instance": ".*", "certificate": ".*"},
            {"job": JOB, "instance": ".+", "certificate": cert},
        ):
            for title, expr in dashboard_queries(**values):  # increase() wants two samples
                wait_for(f"data for panel {title!r}: {expr}", lambda e=expr: prom.query(e), 30)
        for label, selector in variable_queries():
            assert any(label in s["metric"] for s in prom.query(selector)), (label, selector)
        light, light_code, full, full_code = health_in(daemon)
        assert (light, light_code) == (full, full_code) == ("healthy", 0)
        assert time.time() < overdue, "the checks took too long for this test's timing"
        assert not prom.query("ALERTS")  # nothing pending, nothing firing

        # Renewal failing: the CA is gone; three cycles by hand (as `sidecar renew` in the
        # container would run them) fail, and the metrics read them from the volume.
        pebble.stop(timeout=5)
        stack.keep_authorizations = True  # nothing to deactivate: Pebble is down
        for _ in range(3):
            code, logs = stack.sidecar_once("renew", **env)
            assert code == 1, logs
        failing = wait_for(
            "CertbotSidecarRenewalFailing to fire",
            lambda: prom.firing("CertbotSidecarRenewalFailing", job=JOB),
            timeout=60,
        )
        assert isinstance(failing, dict)
        assert failing["labels"]["severity"] == "warning"
        assert "3 renewal cycles failed in a row" in failing["annotations"]["summary"]
        failed = "renewal_failures_total"
        assert any(
            float(s["value"][1]) > 0
            for title, expr in dashboard_queries(job=".*", instance=".*", certificate=".*")
            if failed in expr
            for s in prom.query(expr)
        ), "the dashboard shows no failed cycle"

        # Expiry: nothing renews the 180 s certificate before CHECK_INTERVAL (1h).
        assert disk_cert(stack.le_dir, cert) == issued  # not renewed meanwhile
        assert time.time() < not_after - lifetime / 6, "the test reached the last sixth too late"
        expiring = wait_for(
            "CertbotSidecarCertificateExpiringSoon to fire",
            lambda: prom.firing("CertbotSidecarCertificateExpiringSoon", certificate=cert),
            timeout=not_after - time.time(),
            every=0.5,
        )
        assert isinstance(expiring, dict)
        assert expiring["labels"]["severity"] == "critical"
        assert cert in expiring["annotations"]["description"]
        assert not prom.firing("CertbotSidecarCertificateRenewalOverdue", certificate=cert)
        light, light_code, full, full_code = health_in(daemon)
        assert (light, light_code) == (full, full_code)
        assert light_code == 1
        assert f"unhealthy: {cert}: expires " in light
        assert "inside the danger zone" in light
        assert "warning: renewal failing: 3 failure(s) in a row" in light
