"""The monitoring files operators load: the Prometheus alert rules (tested by promtool) and the
Grafana dashboard (its queries run against a real Prometheus in tests/e2e/test_monitoring.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.report import metrics
from sidecar.volume.journal import Ari, Journal, Served
from tests.unit.helpers import T0, install_cert, make_pem, make_settings, save_journal

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "config" / "prometheus" / "certbot-sidecar.rules.yml"
RULE_TESTS = ROOT / "config" / "prometheus" / "certbot-sidecar.rules.test.yml"
DASHBOARD = ROOT / "config" / "grafana" / "certbot-sidecar.json"
METRIC = re.compile(r"\bcertbot_sidecar_[a-z_]+")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """promtool from Debian's prometheus package; missing is a failure (tests/prepare.sh)."""
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: tests/prepare.sh installs Debian's prometheus package")
    return subprocess.run(
        ["promtool", *args], cwd=RULES.parent, capture_output=True, text=True, check=False
    )


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def panels() -> list[dict[str, Any]]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]  # type: ignore[no-any-return]


def exported(tmp_path: Path) -> set[str]:
    """Every metric name the sidecar's endpoint shows, with every optional one present."""
    config = make_settings(tmp_path / "le")
    install_cert(config.paths.config_dir, "example.com", make_pem())
    served = {"example.com": Served(match=True, checked_at=T0, detail="ok")}
    save_journal(
        config.paths.state_dir,
        Journal(
            last_success_at=T0,
            downtime=1.0,
            renewals={"example.com": 1},
            served=served,
            ari={"example.com": Ari("1", T0, T0, T0, T0)},
        ),
    )
    text = generate_latest(metrics.registry_for(config.paths, config.domains.specs)).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_the_alert_rules_pass_their_promtool_tests():
    """Every alert fires when it should, with its labels and annotations, and only then."""
    done = promtool("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_alert_rules_are_valid_for_prometheus():
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested():
    """Each alert name appears in the promtool tests."""
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text(encoding="utf-8")))
    assert {rule["alert"] for rule in alerts()} == tested


def test_every_alert_has_a_severity_a_summary_and_a_description():
    """What routing and notifications expect; a certificate's alert names its certificate."""
    for rule in alerts():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description"}, rule["alert"]
        if "certificate" in rule["expr"]:
            assert "{{ $labels.certificate }}" in rule["annotations"]["description"]


def test_the_rules_and_the_dashboard_use_only_metrics_the_sidecar_exports(tmp_path):
    """A renamed metric would leave an alert silent forever: every name must exist."""
    used = set(METRIC.findall(RULES.read_text(encoding="utf-8")))
    used |= set(METRIC.findall(DASHBOARD.read_text(encoding="utf-8")))
    assert used
    assert used <= exported(tmp_path)


def test_every_dashboard_panel_queries_the_chosen_prometheus():
    """Panels use the dashboard's data source variable; ids are unique; queries are there."""
    seen = set()
    for panel in panels():
        assert panel["id"] not in seen
        seen.add(panel["id"])
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"] == panel["datasource"]


def test_the_dashboard_shows_what_the_issue_asks_for():
    """Days left per certificate, renewals and failures, downtime per renewal, served-match."""
    exprs = " ".join(t["expr"] for p in panels() for t in p["targets"])
    for name in (
        "certificate_not_after_timestamp_seconds",
        "renewal_attempts_total",
        "renewal_failures_total",
        "certificate_renewals_total",
        "app_downtime_seconds",
        "served_certificate_match",
    ):
        assert f"certbot_sidecar_{name}" in exprs


def test_the_dashboard_panels_do_not_overlap():
    """Grafana's 24-column grid: no two panels share a cell."""
    cells: set[tuple[int, int]] = set()
    for panel in panels():
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine
