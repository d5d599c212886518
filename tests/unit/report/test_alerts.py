from __future__ import annotations

import importlib.util
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from loguru import logger

from sidecar import logs
from sidecar.cycle.problem import Problem
from sidecar.errors import ConfigError
from sidecar.logs import secret_parts
from sidecar.report import alerts
from sidecar.report.alerts import (
    DANGER,
    FAILED,
    RECOVERED,
    RENEWED,
    REPLACEMENT,
    Alert,
    Notifier,
    decide,
    describe_target,
    failure_key,
)
from sidecar.volume.certs import in_danger_zone
from sidecar.volume.journal import AlertMemory, Ari
from tests.receiver import Receiver
from tests.unit.helpers import DAY, T0, cert_info, make_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

CERT = cert_info(("a.example",), T0, 90 * DAY, serial=0xA1)
FRESH = T0 + 10 * DAY
LATE = T0 + 80 * DAY  # 10 days left of 90: inside the last sixth


def run(memory: AlertMemory = AlertMemory(), **kwargs: Any) -> tuple[list[Alert], AlertMemory]:  # noqa: B008
    args: dict[str, Any] = {
        "problems": (),
        "changed": (),
        "certs": {"a.example": CERT},
        "now": FRESH,
        "on_success": False,
    }
    return decide(memory, **{**args, **kwargs})


def problem(message: str, kind: str = "error", lineage: str | None = None) -> Problem:
    return Problem(kind, lineage, message)


# decide


def test_quiet_cycle_sends_nothing():
    """Nothing due, nothing failed, far from expiry: no alert."""
    alerts, memory = run()
    assert alerts == []
    assert memory == AlertMemory()


def test_first_failure_is_alerted_with_the_errors():
    """A failing cycle sends one failure alert carrying its error lines."""
    (alert,), memory = run(problems=(problem("certbot renew failed (exit 1): timeout"),))
    assert alert.event == FAILED
    assert alert.severity == "failure"
    assert alert.errors == ("certbot renew failed (exit 1): timeout",)
    assert memory.failure is not None


def test_same_failure_again_is_not_alerted_again():
    """Retries failing the same way (other numbers) do not repeat the alert."""
    _, memory = run(problems=(problem("port 80 in use after 3.2s", "portBusy"),))
    alerts, _ = run(memory, problems=(problem("port 80 in use after 5.9s", "portBusy"),))
    assert alerts == []


def test_a_different_failure_is_alerted():
    """A new kind of failure is news."""
    _, memory = run(problems=(problem("port 80 in use", "portBusy"),))
    (alert,), _ = run(memory, problems=(problem("the CA refused the order", "unauthorized"),))
    assert alert.event == FAILED


def test_success_after_an_alerted_failure_says_recovered():
    """The first good cycle after a failure alert closes it."""
    _, memory = run(problems=(problem("boom"),))
    (alert,), memory = run(memory)
    assert alert.event == RECOVERED
    assert alert.severity == "success"
    assert memory.failure is None


def test_entering_the_danger_zone_is_alerted_once_per_certificate():
    """The last sixth of the lifetime: one warning naming the days left, then quiet."""
    (alert,), memory = run(now=LATE)
    assert alert.event == DANGER
    assert alert.severity == "warning"
    assert alert.certificates == ("a.example",)
    assert "expires in 10.0 days" in alert.title
    assert run(memory, now=LATE + DAY)[0] == []


def test_danger_zone_again_for_a_new_certificate_that_also_ages():
    """A renewed certificate that reaches the danger zone again is alerted again."""
    _, memory = run(now=LATE)
    newer = cert_info(("a.example",), T0 + 80 * DAY, 90 * DAY, serial=0xB2)
    (alert,), _ = run(memory, certs={"a.example": newer}, now=T0 + 160 * DAY)
    assert alert.event == DANGER


def test_leaving_the_danger_zone_forgets_it():
    """After a renewal the memory of the danger alert is dropped."""
    _, memory = run(now=LATE)
    newer = cert_info(("a.example",), LATE, 90 * DAY, serial=0xB2)
    _, memory = run(memory, certs={"a.example": newer}, now=LATE)
    assert memory.danger == {}


def test_danger_zone_boundary_is_the_last_sixth():
    """15 days before the end of a 90-day certificate is the edge."""
    assert not in_danger_zone(CERT, T0 + 75 * DAY - timedelta(seconds=1))
    assert in_danger_zone(CERT, T0 + 75 * DAY + timedelta(seconds=1))


def test_renewal_is_alerted_only_with_alert_on_success():
    """ALERT_ON_SUCCESS: a renewed certificate is a success alert, otherwise silence."""
    assert run(changed=("a.example",))[0] == []
    (alert,), _ = run(changed=("a.example",), on_success=True)
    assert alert.event == RENEWED
    assert alert.certificates == ("a.example",)
    assert "valid until" in alert.message


def test_a_failure_is_known_by_its_kind_and_lineage_not_by_its_text():
    """Rewording a message (or new numbers in it) alerts nothing new; the same kind of failure
    for another lineage does."""
    first = problem("serial deadbeef12 refused after 3.5s", "unauthorized", "a.example")
    _, memory = run(problems=(first,))
    reworded = problem("the CA said no, again", "unauthorized", "a.example")
    assert run(memory, problems=(reworded,))[0] == []
    other = problem("serial deadbeef12 refused after 3.5s", "unauthorized", "b.example")
    (alert,), _ = run(memory, problems=(first, other))
    assert alert.event == FAILED
    assert failure_key((other, first)) == "unauthorized@a.example; unauthorized@b.example"


def test_payload_has_stable_keys():
    """The webhook's JSON body: documented keys, ISO time."""
    alert = Alert(FAILED, "failure", "t", "m", ("a.example",), ("e",))
    body = alert.payload(T0, "host1")
    assert body == {
        "source": "certbot-sidecar",
        "version": body["version"],
        "event": "renewal-failed",
        "severity": "failure",
        "title": "t",
        "message": "m",
        "certificates": ["a.example"],
        "errors": ["e"],
        "host": "host1",
        "time": "2025-03-12T00:00:00+00:00",
    }


# secrets


def test_tokens_in_a_url_are_secret_parts():
    """Path tokens, passwords and query values are hidden; short plain words and IPs are not."""
    parts = secret_parts(
        "https://user:pa55word@hooks.example.com/services/T000/B000/XyZ123abc?k=s3cr3t99"
    )
    assert {"pa55word", "XyZ123abc", "s3cr3t99"} <= parts
    assert "hooks.example.com" not in parts
    assert "services" not in parts
    assert "T000" not in parts  # too short to be a secret on its own


def test_an_apprise_token_in_the_host_position_is_secret():
    """tgram://TOKEN/chat: apprise puts tokens where a host would be."""
    assert "123456789abcdef" in secret_parts("ntfy://123456789abcdef/topic")
    assert "127.0.0.1" not in secret_parts("json://127.0.0.1:8080/hook")


def test_target_descriptions_show_no_path():
    """Logged descriptions keep the scheme (and host for http) only."""
    assert (
        describe_target("https://hooks.example.com:8443/T/B/tok")
        == "https://hooks.example.com:8443/..."
    )
    assert describe_target("tgram://123:abc/456") == "tgram://..."


def test_hidden_strings_never_reach_a_log_line():
    """Once hidden, a message containing the secret shows *** instead."""
    lines: list[str] = []
    secrets = logs.setup("INFO", "text")
    sink = logger.add(lambda m: lines.append(str(m)), format="{message}")
    try:
        secrets.hide("tok-123456-secret")
        logger.info("posting to https://x/hook/{}", "tok-123456-secret")
    finally:
        logger.remove(sink)
    assert lines == ["posting to https://x/hook/***\n"]


def test_alert_urls_value_never_appears_in_a_settings_error(tmp_path):
    """A malformed URL is rejected without echoing it."""
    with pytest.raises(ConfigError) as raised:
        make_settings(tmp_path, WEBHOOK_URL="ftp://host/tok-123456-secret")
    assert "tok-123456-secret" not in str(raised.value)
    assert "WEBHOOK_URL" in str(raised.value)


def test_alert_settings_are_secret_strings(tmp_path):
    """The URLs print as stars in any repr of the settings."""
    config = make_settings(
        tmp_path,
        WEBHOOK_URL="http://127.0.0.1:9/hook/tok-123456-secret",
        ALERT_URLS="json://127.0.0.1:9/x/tok-123456-secret",
    )
    assert "tok-123456-secret" not in repr(config)
    assert config.alerts.on_success is False


def test_empty_alert_settings_mean_off(tmp_path):
    """WEBHOOK_URL= and ALERT_URLS= (empty) are the same as unset."""
    config = make_settings(tmp_path, WEBHOOK_URL="", ALERT_URLS=" ")
    assert config.alerts.webhook is None
    assert config.alerts.urls is None


# delivery, to a local HTTP server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


ALERT = Alert(FAILED, "failure", "certbot-sidecar: renewal failed", "boom", errors=("boom",))


def test_webhook_gets_the_json_payload(receiver):
    """One POST with the documented body to the configured path."""
    notifier = Notifier(
        f"http://127.0.0.1:{receiver.port}/hook/tok-123456-secret", None, logs.Secrets()
    )
    assert notifier.send(ALERT, T0) == []
    ((path, body),) = receiver.received
    assert path == "/hook/tok-123456-secret"
    assert body["event"] == "renewal-failed"
    assert body["errors"] == ["boom"]


needs_apprise = pytest.mark.skipif(
    importlib.util.find_spec("apprise") is None,
    reason="apprise (the image's optional `alerts` extra) is not installed",
)


@needs_apprise
def test_apprise_json_url_is_delivered(receiver):
    """ALERT_URLS=json://127.0.0.1:PORT/...: apprise posts title, message and type."""
    notifier = Notifier(
        None, f"json://127.0.0.1:{receiver.port}/apprise/tok-123456-secret", logs.Secrets()
    )
    assert notifier.targets == ["apprise json://..."]
    assert notifier.send(ALERT, T0) == []
    ((path, body),) = receiver.received
    assert path == "/apprise/tok-123456-secret"
    assert body["title"] == "certbot-sidecar: renewal failed"
    assert body["message"] == "boom"
    assert body["type"] == "failure"


def test_webhook_error_status_is_reported_not_raised():
    """A 404 is one error line without the token, and is not retried."""
    server = Receiver(status=404)
    try:
        notifier = Notifier(
            f"http://127.0.0.1:{server.port}/hook/tok-123456-secret", None, logs.Secrets()
        )
        (error,) = notifier.send(ALERT, T0)
    finally:
        server.close()
    assert error == f"webhook http://127.0.0.1:{server.port}/... answered HTTP 404"
    assert len(server.received) == 1


def test_unreachable_webhook_is_reported_without_the_url_path(monkeypatch):
    """Connection refused (tried twice): the error names the host, never the token."""
    monkeypatch.setattr(alerts, "RETRY_DELAY", 0.0)
    server = Receiver()
    port = server.port
    server.close()
    (error,) = Notifier(
        f"http://127.0.0.1:{port}/hook/tok-123456-secret", None, logs.Secrets()
    ).send(ALERT, T0)
    assert "tok-123456-secret" not in error
    assert error.startswith(f"webhook http://127.0.0.1:{port}/...: ConnectionError")


@needs_apprise
def test_unknown_apprise_scheme_is_a_configuration_error():
    """An ALERT_URLS item apprise cannot parse stops the sidecar at start (exit 2)."""
    with pytest.raises(ConfigError, match=r"ALERT_URLS: item 2 \(nosuchscheme://...\)"):
        Notifier(None, "json://127.0.0.1:9/a nosuchscheme://tok-123456-secret", logs.Secrets())


def test_no_targets_means_disabled():
    """Without WEBHOOK_URL and ALERT_URLS nothing is sent."""
    assert not Notifier(None, None, logs.Secrets()).enabled


def test_alert_urls_without_apprise_name_the_extra_to_build_with(monkeypatch):
    """An image built without apprise: ALERT_URLS is a configuration error saying what to do."""
    monkeypatch.setitem(sys.modules, "apprise", None)
    monkeypatch.setitem(sys.modules, "apprise.utils.parse", None)
    with pytest.raises(ConfigError, match="--build-arg EXTRAS=alerts"):
        Notifier(None, "json://127.0.0.1:9/x", logs.Secrets())


# replacement-requested: the CA wants a certificate replaced now


def over(serial: str = "a1", explanation: str = "") -> Ari:
    """The CA's answer for `serial`: a window that ended an hour before FRESH."""
    end = FRESH - timedelta(hours=1)
    return Ari(serial, end - timedelta(hours=1), end, end, FRESH, explanation=explanation)


def test_a_window_that_is_over_alerts_once_naming_the_certificate_and_the_explanation():
    """One warning, with the certificate and the CA's explanation URL."""
    requested = {"a.example": over(explanation="https://ca.example/incident/7")}
    found, memory = run(requested=requested, changed=("a.example",))
    (alert,) = [a for a in found if a.event == REPLACEMENT]
    assert alert.severity == "warning"
    assert alert.certificates == ("a.example",)
    assert "https://ca.example/incident/7" in alert.message
    assert "serial a1" in alert.message
    assert "replaced in this cycle" in alert.message
    assert memory.replacement == {"a.example": "a1"}


def test_the_same_certificate_is_not_alerted_again_while_its_replacement_fails():
    """The next cycle finds the same window over for the same serial: no second alert."""
    _, memory = run(requested={"a.example": over()})
    found, again = run(memory, requested={"a.example": over()})
    assert [a for a in found if a.event == REPLACEMENT] == []
    assert again.replacement == {"a.example": "a1"}


def test_a_later_certificate_revoked_too_is_alerted_again():
    """Another serial is another request."""
    _, memory = run(requested={"a.example": over("a1")})
    found, _ = run(memory, requested={"a.example": over("b2")})
    assert [a.event for a in found] == [REPLACEMENT]


def test_no_replacement_alert_without_a_window_that_is_over():
    """Nothing requested: nothing said, nothing remembered."""
    found, memory = run()
    assert found == []
    assert memory.replacement == {}
