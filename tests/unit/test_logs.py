from __future__ import annotations

import json

import pytest
from loguru import logger

from sidecar import logs


class Stderr:
    """What the sidecar writes to stderr since the last look."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def getvalue(self) -> str:
        return self._capsys.readouterr().err


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Stderr:
    monkeypatch.delenv(logs.CHILD_ENV, raising=False)
    return Stderr(capsys)


def test_json_format_is_one_object_per_line_with_the_stable_fields(stderr):
    """LOG_FORMAT=json: loguru's serializer; event, container, duration and outcome in extra."""
    logs.setup("INFO", "json")
    logger.info("stopped {} in {:.2f}s", "web", 0.25, event="stop", container="web", duration=0.25)
    logger.info("plain line")
    first, second = (json.loads(line) for line in stderr.getvalue().splitlines())
    assert first["record"]["message"] == "stopped web in 0.25s"
    assert first["record"]["extra"] == {"event": "stop", "container": "web", "duration": 0.25}
    assert first["record"]["level"]["name"] == "INFO"
    assert second["record"]["extra"] == {}
    logs.setup("INFO", "text")


def test_text_format_shows_the_certificate_but_not_the_other_fields(stderr):
    """Human-readable by default: one line, `[certificate=...]` at its end."""
    logs.setup("INFO", "text")
    logger.info("verified", event="verify", certificate="a.example", outcome="match")
    (line,) = stderr.getvalue().splitlines()
    assert line.endswith("INFO    verified [certificate=a.example]")


def test_fields_written_inside_certbot_reach_the_parents_json_log(stderr, monkeypatch):
    """The plugin and hook run inside certbot: their fields travel with the relayed line."""
    monkeypatch.setenv(logs.CHILD_ENV, "1")
    logs.setup("INFO")
    logger.info("started {} in 1.00s", "web", event="start", container="web", duration=1.0)
    (child_line,) = stderr.getvalue().splitlines()
    assert child_line.startswith(logs.CHILD_PREFIX + "INFO {")
    monkeypatch.delenv(logs.CHILD_ENV)
    logs.setup("INFO", "json")
    assert logs.relog(child_line)
    (parent,) = (json.loads(x) for x in stderr.getvalue().splitlines())
    assert parent["record"]["message"] == "started web in 1.00s"
    assert parent["record"]["extra"] == {"event": "start", "container": "web", "duration": 1.0}
    logs.setup("INFO", "text")


def test_relayed_lines_without_fields_still_work(stderr):
    """A child line in the older form (level and message) is relayed as before."""
    logs.setup("INFO", "text")
    assert logs.relog(logs.CHILD_PREFIX + "WARNING port busy")
    assert stderr.getvalue().rstrip().endswith("WARNING port busy")
    assert not logs.relog("certbot: something else")


def test_hidden_secrets_are_masked_in_json_too(stderr):
    """A registered secret never appears, whatever the format."""
    logs.setup("INFO", "json").hide("very-secret-token-42")
    logger.warning("POST https://h/very-secret-token-42 failed")
    written = stderr.getvalue()
    assert "very-secret-token-42" not in written
    assert "https://h/*** failed" in written
    logs.setup("INFO", "text")


@pytest.mark.parametrize(
    ("command", "hidden", "kept"),
    [
        (
            "curl https://hooks.example/services/T01/B02/abcdef1234567890",
            "abcdef1234567890",
            "curl",
        ),
        (
            'curl -H "Authorization: Bearer abc.def-123456" https://a.example',
            "abc.def-123456",
            "a.example",
        ),
        ("notify --token=s3cr3tvalue --verbose", "s3cr3tvalue", "--verbose"),
        ("API_KEY=abc123def /usr/local/bin/push", "abc123def", "/usr/local/bin/push"),
        ("curl -u admin:hunter2 https://x.example", "hunter2", "admin"),
        ("curl https://u:pa55word@x.example/hook?key=zyx987654", "pa55word", "x.example"),
    ],
)
def test_tokens_in_a_command_line_are_masked(command, hidden, kept):
    """A saved hook as logs and status show it: URL tokens and secret options become ***."""
    shown = logs.mask_command(command)
    assert hidden not in shown
    assert kept in shown
    assert "***" in shown


def test_a_command_without_secrets_is_shown_as_it_is():
    """Nothing token-like: the command is unchanged."""
    assert logs.mask_command("systemctl reload nginx") == "systemctl reload nginx"
