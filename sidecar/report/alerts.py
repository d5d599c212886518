"""Alerts: a generic JSON webhook and apprise URLs (e-mail, ntfy, Slack, Telegram, ...).

Sent when a cycle fails (once per kind of failure, and once when it works again), when a
certificate enters the danger zone (once per certificate), and optionally when a certificate was
renewed. The URLs usually carry tokens: they are SecretStr settings, and every part of them that
could be a token is hidden from every log line (`logs.Secrets`).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from loguru import logger

from sidecar import __version__, logs
from sidecar.errors import ConfigError
from sidecar.volume.certs import in_danger_zone
from sidecar.volume.journal import AlertMemory

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from pydantic import SecretStr

    from sidecar.cycle.problem import Problem
    from sidecar.logs import Secrets
    from sidecar.volume.certs import CertInfo
    from sidecar.volume.journal import Ari

TIMEOUT = 10.0
ATTEMPTS = 2
RETRY_DELAY = 2.0
FAILED, RECOVERED, DANGER, RENEWED = "renewal-failed", "recovered", "danger-zone", "renewed"
REPLACEMENT = "replacement-requested"


@dataclass(frozen=True, slots=True)
class AlertsSpec:
    """WEBHOOK_URL and ALERT_URLS (secrets: tokens live in them), ALERT_ON_SUCCESS."""

    webhook: SecretStr | None = None
    urls: SecretStr | None = None
    on_success: bool = False


@dataclass(frozen=True, slots=True)
class Alert:
    """One notification; `severity` is apprise's notify type (failure, warning, success)."""

    event: str
    severity: str
    title: str
    message: str
    certificates: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    def payload(self, now: datetime, host: str) -> dict[str, Any]:
        """The webhook's JSON body (documented in the README; keep the keys stable)."""
        return {
            "source": "certbot-sidecar",
            "version": __version__,
            "event": self.event,
            "severity": self.severity,
            "title": self.title,
            "message": self.message,
            "certificates": list(self.certificates),
            "errors": list(self.errors),
            "host": host,
            "time": now.isoformat(timespec="seconds"),
        }


def failure_key(problems: Sequence[Problem]) -> str:
    """A failure's identity: the kinds of problem and the lineages they concern, never their
    text (rewording a message, or the numbers in it, changes nothing)."""
    return "; ".join(sorted({f"{p.kind}@{p.lineage or '*'}" for p in problems}))


def decide(
    memory: AlertMemory,
    *,
    problems: Sequence[Problem],
    changed: Sequence[str],
    certs: Mapping[str, CertInfo | None],
    now: datetime,
    on_success: bool,
    requested: Mapping[str, Ari] | None = None,
) -> tuple[list[Alert], AlertMemory]:
    """Pure: the alerts one cycle's outcome calls for, and what is remembered afterwards.
    `requested`: the CA's answers (ARI) whose window was over when the cycle asked."""
    alerts, failure = _failure(memory.failure, problems)
    danger, expiring = _danger(memory.danger, certs, now)
    alerts += expiring
    replacement, asked = _replacement(memory.replacement, requested or {}, certs, changed)
    alerts += asked
    if changed and on_success and not problems:
        alerts.append(_renewed(changed, certs))
    return alerts, AlertMemory(failure, danger, replacement)


def _replacement(
    alerted: Mapping[str, str],
    requested: Mapping[str, Ari],
    certs: Mapping[str, CertInfo | None],
    changed: Sequence[str],
) -> tuple[dict[str, str], list[Alert]]:
    """One warning per certificate the CA wants replaced now (once per serial, whether or not
    this cycle replaced it); the certificates remembered as alerted, until they are replaced."""
    memory = {k: v for k, v in alerted.items() if k in certs}
    alerts = []
    for name, ari in sorted(requested.items()):
        if memory.get(name) == ari.serial:
            continue
        memory[name] = ari.serial
        done = "it was replaced in this cycle" if name in changed else "it is being replaced"
        see = f" The CA explains why at {ari.explanation}." if ari.explanation else ""
        alerts.append(
            Alert(
                REPLACEMENT,
                "warning",
                f"certbot-sidecar: the CA asks to replace {name} now",
                f"The CA's renewal window for {name} (serial {ari.serial}) ended "
                f"{ari.end.isoformat(timespec='minutes')}: {done}.{see}",
                certificates=(name,),
            )
        )
    return memory, alerts


def _failure(alerted: str | None, problems: Sequence[Problem]) -> tuple[list[Alert], str | None]:
    """A failure alert for a failure not yet alerted (or one saying it works again); the
    failure remembered."""
    if not problems:
        if alerted is None:
            return [], None
        ok = Alert(RECOVERED, "success", "certbot-sidecar: working again", "The last cycle was ok.")
        return [ok], None
    key = failure_key(problems)
    if key == alerted:
        return [], key
    errors = tuple(p.message for p in problems)
    title = "certbot-sidecar: renewal failed"
    return [Alert(FAILED, "failure", title, "\n".join(errors), errors=errors)], key


def _danger(
    alerted: Mapping[str, str], certs: Mapping[str, CertInfo | None], now: datetime
) -> tuple[dict[str, str], list[Alert]]:
    """One warning per certificate that entered the danger zone (once per serial); the
    certificates remembered as alerted."""
    danger = {k: v for k, v in alerted.items() if k in certs}
    alerts = []
    for name, cert in sorted(certs.items()):
        if cert is None or not in_danger_zone(cert, now):
            danger.pop(name, None)
            continue
        if danger.get(name) == cert.serial_hex:
            continue
        days = (cert.not_after - now).total_seconds() / 86400
        alerts.append(
            Alert(
                DANGER,
                "warning",
                f"certbot-sidecar: {name} expires in {days:.1f} days",
                f"The certificate {name} (serial {cert.serial_hex}) expires "
                f"{cert.not_after.isoformat(timespec='minutes')} and has not been renewed.",
                certificates=(name,),
            )
        )
        danger[name] = cert.serial_hex
    return danger, alerts


def _renewed(changed: Sequence[str], certs: Mapping[str, CertInfo | None]) -> Alert:
    renewed = [
        f"{n} (valid until {c.not_after.isoformat(timespec='minutes')})"
        if (c := certs.get(n))
        else n
        for n in changed
    ]
    return Alert(
        RENEWED,
        "success",
        f"certbot-sidecar: renewed {', '.join(changed)}",
        "New certificate for " + ", ".join(renewed) + ".",
        certificates=tuple(changed),
    )


def describe_target(url: str) -> str:
    """What may be logged about a URL: its scheme and, for http(s), host and port."""
    split = urlsplit(url)
    if split.scheme in ("http", "https"):
        return f"{split.scheme}://{split.hostname}{f':{split.port}' if split.port else ''}/..."
    return f"{split.scheme}://..."


class Notifier:
    """Delivers alerts to the webhook and the apprise URLs; failures are logged, never raised."""

    def __init__(self, webhook: str | None, apprise_urls: str | None, secrets: Secrets) -> None:
        self._webhook = webhook
        self._apprise: Any = None
        self._secrets = secrets
        self.targets: list[str] = []
        if webhook:
            secrets.hide(*logs.secret_parts(webhook))
            self.targets.append("webhook " + describe_target(webhook))
        if apprise_urls:
            self._apprise = _apprise(apprise_urls, secrets)
            self.targets += ["apprise " + describe_target(u) for u in _split_urls(apprise_urls)]

    @property
    def enabled(self) -> bool:
        return bool(self._webhook or self._apprise)

    def send(self, alert: Alert, now: datetime) -> list[str]:
        """Send to every target; the errors (already redacted) of those that failed."""
        errors = []
        if self._webhook:
            errors += _post(self._webhook, alert.payload(now, socket.gethostname()))
        if self._apprise is not None:
            ok = self._apprise.notify(
                body=alert.message, title=alert.title, notify_type=alert.severity
            )
            if not ok:
                errors.append("an apprise notification failed (see the apprise lines above)")
        for error in errors:
            logger.warning(
                "alert {!r} not delivered: {}", alert.title, error, event="alert", outcome="failed"
            )
        if not errors:
            logger.info("alert sent: {}", alert.title, event="alert", outcome="sent")
        return [self._secrets.redact(e) for e in errors]


def _split_urls(urls: str) -> list[str]:
    try:
        from apprise.utils.parse import parse_urls  # noqa: PLC0415 (only when configured)
    except ImportError:
        raise ConfigError(
            "ALERT_URLS needs apprise, which this image leaves out to stay small: build it with "
            "--build-arg EXTRAS=alerts, or use WEBHOOK_URL"
        ) from None

    return [str(u) for u in parse_urls(urls)]  # type: ignore[no-untyped-call]


def _apprise(urls: str, secrets: Secrets) -> Any:  # noqa: ANN401 (apprise.Apprise, only when used)
    items = _split_urls(urls)  # first: says which extra to build with when apprise is missing
    import apprise  # noqa: PLC0415 (loading apprise's plugins takes a second; only when used)

    for url in items:
        secrets.hide(*logs.secret_parts(url))
    notifier = apprise.Apprise()
    for number, url in enumerate(items, 1):
        if not notifier.add(url):
            raise ConfigError(
                f"ALERT_URLS: item {number} ({describe_target(url)}) is not a URL apprise supports"
            )
    return notifier


def _post(url: str, payload: dict[str, Any]) -> list[str]:
    error = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(RETRY_DELAY)
        try:
            response = requests.post(url, json=payload, timeout=TIMEOUT)
        except requests.RequestException as exc:
            error = f"webhook {describe_target(url)}: {type(exc).__name__}"
            continue
        if response.ok:
            return []
        error = f"webhook {describe_target(url)} answered HTTP {response.status_code}"
        if response.status_code < 500:  # noqa: PLR2004 (a client error will not go away)
            break
    return [error]
