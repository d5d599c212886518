from __future__ import annotations

import socket
import urllib.request
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.errors import ConfigError
from sidecar.report import metrics
from sidecar.volume.certs import parse_cert
from sidecar.volume.journal import Ari, Journal, Served
from tests.unit.helpers import DAY, T0, install_cert, make_pem, make_settings, save_journal

if TYPE_CHECKING:
    from pathlib import Path

    from prometheus_client.metrics_core import Metric

    from sidecar.loader import Config


def samples(text: str) -> dict[str, float]:
    """`name{label=value}` -> value, as Prometheus would read the page."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


@pytest.fixture
def config(tmp_path: Path) -> Config:
    config = make_settings(tmp_path / "le", DOMAINS="a.example;b.example")
    install_cert(config.config_dir, "a.example", make_pem(("a.example",), T0, T0 + 90 * DAY))
    save_journal(
        config.state_dir,
        Journal(
            last_result="ok",
            last_success_at=T0,
            failures=0,
            cycles=7,
            cycle_failures=2,
            renewals={"a.example": 3},
            downtime=1.25,
            downtime_at=T0,
            served={"a.example": Served(match=False, checked_at=T0, detail="old")},
        ),
    )
    return config


def test_page_has_every_documented_metric(config):
    """Validity per certificate, attempts, failures, renewals, last success, downtime, match."""
    page = samples(
        generate_latest(metrics.registry_for(config.paths, config.domains.specs)).decode()
    )
    assert page == {
        "certbot_sidecar_certificate_not_after_timestamp_seconds{certificate=a.example}": (
            T0 + 90 * DAY
        ).timestamp(),
        "certbot_sidecar_certificate_not_before_timestamp_seconds{certificate=a.example}": (
            T0.timestamp()
        ),
        "certbot_sidecar_certificate_renewals_total{certificate=a.example}": 3.0,
        "certbot_sidecar_certificate_renewals_total{certificate=b.example}": 0.0,
        "certbot_sidecar_renewal_attempts_total": 7.0,
        "certbot_sidecar_renewal_failures_total": 2.0,
        "certbot_sidecar_consecutive_failures": 0.0,
        "certbot_sidecar_last_success_timestamp_seconds": T0.timestamp(),
        "certbot_sidecar_app_downtime_seconds": 1.25,
        "certbot_sidecar_served_certificate_match{certificate=a.example}": 0.0,
        "certbot_sidecar_issued_7d{lineage=a.example}": 0.0,
    }


def test_fresh_volume_has_counters_at_zero_and_no_times(tmp_path: Path):
    """Nothing issued, nothing run: zero counters (renewals for each certificate asked for, so
    the first one counts in increase()); no timestamps, no downtime, no match."""
    config = make_settings(tmp_path / "le")
    page = samples(
        generate_latest(metrics.registry_for(config.paths, config.domains.specs)).decode()
    )
    assert page == {
        "certbot_sidecar_certificate_renewals_total{certificate=example.com}": 0.0,
        "certbot_sidecar_renewal_attempts_total": 0.0,
        "certbot_sidecar_renewal_failures_total": 0.0,
        "certbot_sidecar_consecutive_failures": 0.0,
    }


def test_values_are_read_at_each_scrape(config):
    """A cycle run by another process shows at the next scrape."""
    registry = metrics.registry_for(config.paths, config.domains.specs)
    save_journal(config.state_dir, Journal(cycles=8))
    page = samples(generate_latest(registry).decode())
    assert page["certbot_sidecar_renewal_attempts_total"] == 8.0


def test_endpoint_is_off_without_metrics_port(config):
    """No METRICS_PORT: nothing listens."""
    assert metrics.serve(config.metrics, config.paths, config.domains.specs) is False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_endpoint_serves_the_page_over_http_on_loopback(tmp_path: Path, config):
    """METRICS_PORT set: /metrics answers on 127.0.0.1 (the default address)."""
    port = free_port()
    served = make_settings(config.config_dir, DOMAINS="a.example;b.example", METRICS_PORT=str(port))
    assert served.metrics.address == "127.0.0.1"
    assert metrics.serve(served.metrics, served.paths, served.domains.specs) is True
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        page = samples(response.read().decode())
    assert page["certbot_sidecar_renewal_attempts_total"] == 7.0


def test_port_in_use_is_a_configuration_error(tmp_path: Path):
    """Another process on METRICS_PORT: one clear line naming the variable."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = make_settings(tmp_path / "le", METRICS_PORT=str(port))
        with pytest.raises(ConfigError, match=f"METRICS_PORT: cannot listen on 127.0.0.1:{port}"):
            metrics.serve(config.metrics, config.paths, config.domains.specs)


def test_metrics_port_is_validated(tmp_path: Path):
    """Out of range is rejected; empty means off."""
    with pytest.raises(ConfigError, match="METRICS_PORT"):
        make_settings(tmp_path, METRICS_PORT="70000")
    assert make_settings(tmp_path, METRICS_PORT="").metrics.port is None


def test_replacement_requested_is_1_while_the_window_is_over_and_0_otherwise():
    """Per lineage the CA answered for: 1 until the certificate is replaced (the cycle that
    replaces it drops the answer), 0 for a window ahead."""
    now = T0 + 30 * DAY
    hour = timedelta(hours=1)
    over = Ari("a1", now - 2 * hour, now - hour, now - hour, now)
    ahead = Ari("b2", now + 29 * DAY, now + 31 * DAY, now + 30 * DAY, now)
    state = Journal(ari={"a.example": over, "b.example": ahead})
    page = samples(generate_latest(_Registry(metrics.families({}, state, now))).decode())
    assert page["certbot_sidecar_replacement_requested{lineage=a.example}"] == 1.0
    assert page["certbot_sidecar_replacement_requested{lineage=b.example}"] == 0.0


class _Registry:
    """A registry for fixed metric families."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def test_issued_7d_counts_the_new_certificates_of_each_lineages_names_this_week():
    """Per lineage with a certificate: its set of names' count in the last 7 days."""
    now = T0 + 30 * DAY
    cert = parse_cert(make_pem(("a.example",), now - DAY))
    state = Journal(issued={"a.example": [now - 8 * DAY, now - 3 * DAY, now - DAY]})
    page = samples(
        generate_latest(_Registry(metrics.families({"a.example": cert}, state, now))).decode()
    )
    assert page["certbot_sidecar_issued_7d{lineage=a.example}"] == 2.0
