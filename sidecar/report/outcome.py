"""The outcome of a cycle, recorded under the cycle's lock: the app's downtime measured, counters
kept for the metrics, alerts sent, all of it written to the journal in one update."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loguru import logger

from sidecar.cycle import ratelimit
from sidecar.cycle.ari import current
from sidecar.cycle.verify import current_certs
from sidecar.errors import SidecarError
from sidecar.report import alerts
from sidecar.volume import journal
from sidecar.volume.certs import now_utc
from sidecar.volume.journal import Checked, Journal, Served

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from sidecar.cycle.result import CycleResult
    from sidecar.cycle.run import CycleSetup
    from sidecar.cycle.verify import Check, VerifySpec
    from sidecar.logs import Secrets
    from sidecar.targets.base import Target, TargetControl
    from sidecar.volume.certs import CertInfo
    from sidecar.volume.journal import Ari


def downtime(targets: Sequence[Target], since: datetime, now: datetime) -> dict[str, float]:
    """Pure: per target stopped after `since`, the seconds from its stop to its start (or now)."""
    out = {}
    for target in targets:
        if target.finished_at < since:
            continue  # not stopped in this cycle
        end = target.started_at if target.started_at >= target.finished_at else now
        out[target.name] = max(0.0, (end - target.finished_at).total_seconds())
    return out


def summarize(checks: Sequence[Check], now: datetime) -> dict[str, Served]:
    """Pure: per certificate, whether every probe found the current certificate."""
    by_cert: dict[str, list[Check]] = {}
    for check in checks:
        by_cert.setdefault(check.certificate, []).append(check)
    out = {}
    for name, items in by_cert.items():
        bad = [c for c in items if not c.ok]
        detail = bad[0].describe() if bad else items[0].describe()
        out[name] = Served(not bad, now, detail)
    return out


def _served(
    before: Journal, result: CycleResult, *, verify: bool, now: datetime
) -> dict[str, Served]:
    """What the app served: this cycle's checks; the last ones when this cycle made none (it
    failed before it could probe), so a known mismatch is not forgotten; none without VERIFY."""
    if not verify:
        return {}
    return summarize(result.checks, now) if result.checks else dict(before.served)


def _ari(
    before: Journal, result: CycleResult, certs: Mapping[str, CertInfo | None] | None
) -> dict[str, Ari]:
    """The CA's last answers (ARI), kept while they are about the current certificate."""
    answers = {**before.ari, **result.ari}
    return answers if certs is None else current(answers, certs)


def _issued(
    before: Journal,
    result: CycleResult,
    certs: Mapping[str, CertInfo | None] | None,
    now: datetime,
) -> dict[str, list[datetime]]:
    """The new certificates of the last 7 days per set of names (the CA's rate limit)."""
    if certs is None:
        return before.issued
    return ratelimit.counted(before.issued, certs, result.changed, now)


def recorded(
    before: Journal,
    result: CycleResult,
    *,
    verify: bool,
    now: datetime,
    certs: Mapping[str, CertInfo | None] | None = None,
) -> Journal:
    """Pure: the journal after a cycle with `result` (the alert memory is set by the caller);
    `certs`: the current certificates, which the CA's answers kept must be about."""
    renewals = dict(before.renewals)
    for name in result.changed:
        renewals[name] = renewals.get(name, 0) + 1
    if result.stopped:  # cut short by SIGTERM/SIGINT: neither a success nor a failure
        return dataclasses.replace(
            before,
            last_cycle_at=now,
            last_result="stopped before the end (the sidecar was asked to stop)",
            renewed=result.changed or before.renewed,
            cycles=before.cycles + 1,
            renewals=renewals,
            downtime=result.downtime if result.downtime is not None else before.downtime,
            downtime_at=now if result.downtime is not None else before.downtime_at,
            ari=_ari(before, result, certs),
            issued=_issued(before, result, certs, now),
        )
    return dataclasses.replace(
        before,
        last_cycle_at=now,
        last_result="ok" if result.ok else "failed: " + "; ".join(result.errors),
        last_success_at=now if result.ok else before.last_success_at,
        failures=0 if result.ok else before.failures + 1,
        renewed=result.changed or before.renewed,
        cycles=before.cycles + 1,
        cycle_failures=before.cycle_failures + (0 if result.ok else 1),
        renewals=renewals,
        downtime=result.downtime if result.downtime is not None else before.downtime,
        downtime_at=now if result.downtime is not None else before.downtime_at,
        served=_served(before, result, verify=verify, now=now),
        preflight={
            **before.preflight,
            **{v.lineage: Checked(v.ok, now, v.summary()) for v in result.preflight},
        },
        restarted_for=(
            before.restarted_for if result.restarted_for is None else result.restarted_for
        ),
        ari=_ari(before, result, certs),
        issued=_issued(before, result, certs, now),
    )


def notifier_for(spec: alerts.AlertsSpec, secrets: Secrets) -> alerts.Notifier:
    """The process's one notifier (building apprise's takes a second): the entry point makes it
    once, with the secrets its log lines mask."""
    return alerts.Notifier(
        spec.webhook.get_secret_value() if spec.webhook else None,
        spec.urls.get_secret_value() if spec.urls else None,
        secrets,
    )


def prepare(spec: alerts.AlertsSpec, verifying: VerifySpec, secrets: Secrets) -> alerts.Notifier:
    """At start: a bad ALERT_URLS is a configuration error; say where alerts go; the notifier."""
    sender = notifier_for(spec, secrets)
    if sender.enabled:
        logger.info("alerts go to {}", ", ".join(sender.targets))
    if verifying.on:
        logger.info(
            "after each cycle the app's certificate is verified on {}",
            ", ".join(str(e) for e in verifying.endpoints),
        )
    return sender


def _measure(control: TargetControl, since: datetime, now: datetime) -> float | None:
    down: dict[str, float] = {}
    try:
        down = downtime(control.targets(), since, now)
    except SidecarError as error:
        logger.debug("cannot measure the app's downtime: {}", error)
    if not down:
        return None
    seconds = max(down.values())
    logger.info(
        "the app was down {:.2f}s ({})",
        seconds,
        ", ".join(f"{k} {v:.2f}s" for k, v in sorted(down.items())),
        event="downtime",
        duration=round(seconds, 3),
    )
    return seconds


@dataclass(frozen=True, slots=True)
class Recorder:
    """Records a cycle's outcome: where (the tree), whether VERIFY is on, and the alerts (sent
    by `sender`; ALERT_ON_SUCCESS)."""

    setup: CycleSetup
    alerting: alerts.AlertsSpec
    sender: alerts.Notifier


def record(
    recorder: Recorder, control: TargetControl, result: CycleResult, began_at: datetime
) -> CycleResult:
    """Measure, count and decide the alerts in one journal update; then send the alerts."""
    now = now_utc()
    result = dataclasses.replace(result, downtime=_measure(control, began_at, now))
    tree, verifying = recorder.setup.tree, recorder.setup.verify.on
    due: list[alerts.Alert] = []

    certs = current_certs(tree.paths.config_dir, tree.domains.specs)

    def change(before: Journal) -> Journal:
        if result.stopped:  # no alert for a run that was asked to stop
            return recorded(before, result, verify=verifying, now=now, certs=certs)
        found, memory = alerts.decide(
            before.alerts,
            problems=result.problems,
            changed=result.changed,
            certs=certs,
            now=now,
            on_success=recorder.alerting.on_success,
            requested=result.requested,
        )
        due.extend(found)
        after = recorded(before, result, verify=verifying, now=now, certs=certs)
        return dataclasses.replace(after, alerts=memory)

    journal.update(tree.paths.state_dir, change)
    sender = recorder.sender
    for alert in due if sender.enabled else ():
        sender.send(alert, now)
    return result
