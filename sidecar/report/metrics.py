"""Optional Prometheus endpoint (METRICS_PORT), with the official client library.

The values are read from the volume at every scrape (certificates, the journal), so a cycle run
by hand with `sidecar renew` counts as well as the daemon's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from loguru import logger
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sidecar.cycle import ratelimit
from sidecar.cycle.verify import current_certs
from sidecar.errors import ConfigError
from sidecar.volume import journal
from sidecar.volume.certs import now_utc

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

    from prometheus_client.metrics_core import Metric

    from sidecar.volume.certs import CertInfo
    from sidecar.volume.journal import Journal
    from sidecar.volume.paths import Paths
    from sidecar.volume.specs import CertSpec

PREFIX = "certbot_sidecar_"


def families(
    certs: Mapping[str, CertInfo | None],
    state: Journal,
    now: datetime | None = None,
) -> list[Metric]:
    """Pure: the metric families for what is on the volume (`now`: for the CA's windows)."""
    now = now or now_utc()
    out = [*_certificates(certs, state), *_cycles(state), _served(state)]
    return [*out, _preflight(state), _replacement(state, now), _issued(certs, state, now)]


def _issued(certs: Mapping[str, CertInfo | None], state: Journal, now: datetime) -> Metric:
    issued = GaugeMetricFamily(
        PREFIX + "issued_7d",
        "New certificates for the lineage's set of names in the last 7 days (Let's Encrypt "
        "allows 5; a forced renewal that would be the 5th is refused).",
        labels=["lineage"],
    )
    for name, cert in sorted(certs.items()):
        if cert is not None:
            issued.add_metric([name], float(ratelimit.count(state.issued, cert, now)))
    return issued


def _replacement(state: Journal, now: datetime) -> Metric:
    return _flags(
        "replacement_requested",
        "1 while the CA asks for the lineage's certificate to be replaced now (its ARI renewal "
        "window is over: a revocation, an incident) and it is not replaced yet.",
        "lineage",
        ((name, ari.ended(now)) for name, ari in state.ari.items()),
    )


def _certificates(certs: Mapping[str, CertInfo | None], state: Journal) -> list[Metric]:
    not_after = GaugeMetricFamily(
        PREFIX + "certificate_not_after_timestamp_seconds",
        "When the lineage's current certificate expires (Unix time).",
        labels=["certificate"],
    )
    not_before = GaugeMetricFamily(
        PREFIX + "certificate_not_before_timestamp_seconds",
        "When the lineage's current certificate became valid (Unix time): with not_after, its "
        "lifetime, for alerts by the fraction left.",
        labels=["certificate"],
    )
    for name, cert in sorted(certs.items()):
        if cert is not None:
            not_after.add_metric([name], cert.not_after.timestamp())
            not_before.add_metric([name], cert.not_before.timestamp())
    renewals = CounterMetricFamily(
        PREFIX + "certificate_renewals",
        "New certificates obtained, per certificate.",
        labels=["certificate"],
    )
    # At 0 from the start for every certificate asked for: increase() then counts the first one.
    for name in sorted({*certs, *state.renewals}):
        renewals.add_metric([name], state.renewals.get(name, 0))
    return [not_after, not_before, renewals]


def _cycles(state: Journal) -> list[Metric]:
    attempts = CounterMetricFamily(
        PREFIX + "renewal_attempts",
        "Renewal cycles run (each checks every certificate and renews what is due).",
        value=state.cycles,
    )
    failures = CounterMetricFamily(
        PREFIX + "renewal_failures",
        "Renewal cycles that failed (certbot, Docker, or the served-certificate check).",
        value=state.cycle_failures,
    )
    consecutive = GaugeMetricFamily(
        PREFIX + "consecutive_failures",
        "Failed cycles in a row (0 after a success).",
        value=state.failures,
    )
    out: list[Metric] = [attempts, failures, consecutive]
    if state.last_success_at is not None:
        out.append(
            GaugeMetricFamily(
                PREFIX + "last_success_timestamp_seconds",
                "When a cycle last succeeded (Unix time).",
                value=state.last_success_at.timestamp(),
            )
        )
    if state.downtime is not None:
        out.append(
            GaugeMetricFamily(
                PREFIX + "app_downtime_seconds",
                "How long the app was down in the last cycle that stopped or restarted it.",
                value=state.downtime,
            )
        )
    return out


def _served(state: Journal) -> Metric:
    return _flags(
        "served_certificate_match",
        "1 when the app serves the lineage's current certificate on every VERIFY endpoint.",
        "certificate",
        ((name, served.match) for name, served in state.served.items()),
    )


def _preflight(state: Journal) -> Metric:
    return _flags(
        "preflight",
        "1 when the lineage's last pre-flight passed (its names resolve, CAA allows the CA).",
        "lineage",
        ((name, checked.ok) for name, checked in state.preflight.items()),
    )


def _flags(name: str, documentation: str, label: str, values: Iterable[tuple[str, bool]]) -> Metric:
    """A gauge of 1 or 0 per lineage (sorted by name)."""
    gauge = GaugeMetricFamily(PREFIX + name, documentation, labels=[label])
    for lineage, flag in sorted(values):
        gauge.add_metric([lineage], 1.0 if flag else 0.0)
    return gauge


@dataclass(frozen=True, slots=True)
class MetricsSpec:
    """METRICS_PORT (None: no endpoint) and METRICS_ADDRESS."""

    port: int | None = None
    address: str = "127.0.0.1"


class VolumeCollector(Collector):
    """Reads the volume at each scrape: the DOMAINS certificates and the journal."""

    def __init__(self, paths: Paths, specs: Sequence[CertSpec]) -> None:
        self._paths = paths
        self._specs = specs

    def collect(self) -> Iterable[Metric]:
        certs = current_certs(self._paths.config_dir, self._specs)
        return families(certs, journal.load(self._paths.state_dir))


def registry_for(paths: Paths, specs: Sequence[CertSpec]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(VolumeCollector(paths, specs))
    return registry


def serve(spec: MetricsSpec, paths: Paths, specs: Sequence[CertSpec]) -> bool:
    """Start the endpoint in a background thread when METRICS_PORT is set; True if started."""
    if spec.port is None:
        return False
    try:
        start_http_server(spec.port, spec.address, registry=registry_for(paths, specs))
    except OSError as error:
        raise ConfigError(
            f"METRICS_PORT: cannot listen on {spec.address}:{spec.port}: {error.strerror}"
        ) from None
    logger.info("metrics on http://{}:{}/metrics", spec.address, spec.port, event="metrics")
    return True
