"""Knowing it worked, after every cycle (under the cycle's lock): the served certificate is
verified, the app's downtime measured, counters kept for the metrics, and alerts sent.

What it learns is kept in `observe.json` next to the state file, so `status`, `health` and the
metrics endpoint see the same facts whichever process ran the cycle.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loguru import logger

from sidecar import alerts, verify
from sidecar.certs import CertInfo, now_utc, read_lineage_cert
from sidecar.containers import ContainerControl, ContainerInfo, each
from sidecar.errors import SidecarError
from sidecar.files import read_json, write_json

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from sidecar.cycle import CycleResult
    from sidecar.settings import Settings
    from sidecar.status import Row

OBSERVE = "observe.json"


@dataclass(frozen=True, slots=True)
class Served:
    """The last verification of one certificate."""

    match: bool
    checked_at: datetime
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "match": self.match,
            "checked_at": self.checked_at.isoformat(),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Observations:
    """Counters and facts kept across cycles and processes."""

    cycles: int = 0
    cycle_failures: int = 0
    renewals: dict[str, int] = field(default_factory=dict)
    downtime: float | None = None  # seconds the app was down in the last cycle that stopped it
    downtime_at: datetime | None = None
    served: dict[str, Served] = field(default_factory=dict)
    restarted_for: dict[str, str] = field(default_factory=dict)  # certificate -> serial
    alerts: alerts.Memory = field(default_factory=alerts.Memory)

    def to_json(self) -> dict[str, Any]:
        return {
            "cycles": self.cycles,
            "cycle_failures": self.cycle_failures,
            "renewals": dict(self.renewals),
            "downtime": self.downtime,
            "downtime_at": self.downtime_at.isoformat() if self.downtime_at else None,
            "served": {k: v.to_json() for k, v in self.served.items()},
            "restarted_for": dict(self.restarted_for),
            "alerts": self.alerts.to_json(),
        }


def _when(raw: Any) -> datetime | None:  # noqa: ANN401
    return datetime.fromisoformat(raw) if raw else None


def load(state_dir: Path) -> Observations:
    data = read_json(state_dir / OBSERVE) or {}
    served = {}
    for name, item in (data.get("served") or {}).items():
        at = _when(item.get("checked_at"))
        if at is not None:
            served[name] = Served(bool(item.get("match")), at, str(item.get("detail", "")))
    return Observations(
        cycles=int(data.get("cycles", 0)),
        cycle_failures=int(data.get("cycle_failures", 0)),
        renewals={str(k): int(v) for k, v in (data.get("renewals") or {}).items()},
        downtime=data.get("downtime"),
        downtime_at=_when(data.get("downtime_at")),
        served=served,
        restarted_for={str(k): str(v) for k, v in (data.get("restarted_for") or {}).items()},
        alerts=alerts.Memory.from_json(data.get("alerts")),
    )


def save(state_dir: Path, observed: Observations) -> None:
    write_json(state_dir / OBSERVE, observed.to_json())


def downtime(targets: Sequence[ContainerInfo], since: datetime, now: datetime) -> dict[str, float]:
    """Pure: per target stopped after `since`, the seconds from its stop to its start (or now)."""
    out = {}
    for target in targets:
        if target.finished_at < since:
            continue  # not stopped in this cycle
        end = target.started_at if target.started_at >= target.finished_at else now
        out[target.name] = max(0.0, (end - target.finished_at).total_seconds())
    return out


def summarize(checks: Sequence[verify.Check], now: datetime) -> dict[str, Served]:
    """Pure: per certificate, whether every probe found the current certificate."""
    by_cert: dict[str, list[verify.Check]] = {}
    for check in checks:
        by_cert.setdefault(check.certificate, []).append(check)
    out = {}
    for name, items in by_cert.items():
        bad = [c for c in items if not c.ok]
        detail = bad[0].describe() if bad else items[0].describe()
        out[name] = Served(not bad, now, detail)
    return out


def may_restart(checks: Sequence[verify.Check], restarted_for: Mapping[str, str]) -> bool:
    """Pure: restart once per new certificate, never again for one a restart did not fix."""
    return any(c.mismatch and restarted_for.get(c.certificate) != c.expected for c in checks)


def current_certs(config: Settings) -> dict[str, CertInfo | None]:
    """The configured certificates' current lineage certificates."""
    out: dict[str, CertInfo | None] = {}
    for spec in config.domains:
        try:
            out[spec.name] = read_lineage_cert(config.config_dir, spec.name)
        except SidecarError:
            out[spec.name] = None
    return out


def probe(config: Settings, certs: Mapping[str, CertInfo | None]) -> tuple[verify.Check, ...]:
    """One round of probes on every VERIFY endpoint (nothing when VERIFY is not set)."""
    return verify.probe_all(config.domains, certs, config.verify)


@functools.cache
def notifier(webhook: str | None, apprise_urls: str | None) -> alerts.Notifier:
    """One notifier per process (building apprise's takes a second)."""
    return alerts.Notifier(webhook, apprise_urls)


def notifier_for(config: Settings) -> alerts.Notifier:
    return notifier(
        config.webhook_url.get_secret_value() if config.webhook_url else None,
        config.alert_urls.get_secret_value() if config.alert_urls else None,
    )


def prepare(config: Settings) -> None:
    """At start: a bad ALERT_URLS is a configuration error; say where alerts go."""
    sender = notifier_for(config)
    if sender.enabled:
        logger.info("alerts go to {}", ", ".join(sender.targets))
    if config.verify:
        logger.info(
            "after each cycle the app's certificate is verified on {}",
            ", ".join(str(e) for e in config.verify),
        )


def verify_served(
    config: Settings, control: ContainerControl, observed: Observations
) -> tuple[verify.Verification, dict[str, str]]:
    """Verify after deploy with the policy; also returns the updated `restarted_for`."""
    certs = current_certs(config)
    restarted_for = {  # forget restarts done for certificates that were renewed since
        k: v for k, v in observed.restarted_for.items() if (c := certs.get(k)) and c.serial_hex == v
    }

    def restart() -> tuple[list[str], list[str]]:
        running = [t for t in control.targets() if t.running]
        logger.info(
            "restarting {} to load the current certificate",
            ", ".join(t.name for t in running) or "nothing (no target is running)",
            event="restart",
        )
        return [t.name for t in running], each(control.restart, running)

    def allowed(checks: Sequence[verify.Check]) -> bool:
        if not may_restart(checks, restarted_for):
            return False
        restarted_for.update({c.certificate: c.expected for c in checks if c.mismatch})
        return True

    result = verify.check_served(
        lambda: probe(config, certs), restart, wait=config.verify_wait, may_restart=allowed
    )
    return result, restarted_for


def after_cycle(
    config: Settings,
    control: ContainerControl,
    result: CycleResult,
    began_at: datetime,
) -> CycleResult:
    """Verify, measure, count and alert; the result with what was found added."""
    observed = load(config.state_dir)
    errors = list(result.errors)
    checks: tuple[verify.Check, ...] = ()
    restarted: tuple[str, ...] = ()
    restarted_for = observed.restarted_for
    if config.verify:
        try:
            verification, restarted_for = verify_served(config, control, observed)
            checks, restarted = verification.checks, verification.restarted
            errors += verification.errors
        except SidecarError as error:
            errors.append(f"verifying the served certificate: {error}")
    now = now_utc()
    down: dict[str, float] = {}
    try:
        down = downtime(control.targets(), began_at, now)
    except SidecarError as error:
        logger.debug("cannot measure the app's downtime: {}", error)
    seconds = max(down.values()) if down else None
    if seconds is not None:
        logger.info(
            "the app was down {:.2f}s ({})",
            seconds,
            ", ".join(f"{k} {v:.2f}s" for k, v in sorted(down.items())),
            event="downtime",
            duration=round(seconds, 3),
        )
    renewals = dict(observed.renewals)
    for name in result.changed:
        renewals[name] = renewals.get(name, 0) + 1
    sender = notifier_for(config)
    memory = observed.alerts
    try:
        due, memory = alerts.decide(
            observed.alerts,
            errors=errors,
            changed=result.changed,
            certs=current_certs(config),
            now=now,
            on_success=config.alert_on_success,
        )
        for alert in due if sender.enabled else ():
            sender.send(alert, now)
    except SidecarError as error:
        logger.warning("alerts: {}", error)
    save(
        config.state_dir,
        Observations(
            cycles=observed.cycles + 1,
            cycle_failures=observed.cycle_failures + (1 if errors else 0),
            renewals=renewals,
            downtime=seconds if seconds is not None else observed.downtime,
            downtime_at=now if seconds is not None else observed.downtime_at,
            served=summarize(checks, now) if config.verify else {},
            restarted_for=restarted_for,
            alerts=memory,
        ),
    )
    return dataclasses.replace(
        result, errors=tuple(errors), checks=checks, downtime=seconds, restarted=restarted
    )


def health_problems(config: Settings) -> list[str]:
    """Unhealthy while the last verification found the app serving another certificate."""
    if not config.verify:
        return []
    return [
        f"{name}: {served.detail} (checked {served.checked_at.isoformat(timespec='seconds')})"
        for name, served in sorted(load(config.state_dir).served.items())
        if not served.match
    ]


def with_served(config: Settings, items: list[Row]) -> list[Row]:
    """`status` rows with what the app serves right now (a live probe, when VERIFY is set)."""
    if not config.verify:
        return items
    summary = summarize(probe(config, current_certs(config)), now_utc())
    return [
        dataclasses.replace(r, served=s.match, served_detail=s.detail)
        if (s := summary.get(r.certificate))
        else r
        for r in items
    ]
