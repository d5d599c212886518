"""Running certbot: its result, its summary line, and how a run ends."""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from pathlib import Path

import pytest

from sidecar import shutdown
from sidecar.certbot.argv import Flags, renew
from sidecar.certbot.challenges import Standalone
from sidecar.certbot.runner import CertbotResult, CertbotRunner, certbot_executable
from sidecar.volume.ca import AcmeCA
from sidecar.volume.paths import Paths

RUN = renew(Flags(Paths(Path("/le")), AcmeCA("https://ca.test/dir"), Standalone()))


@pytest.mark.parametrize(
    ("returncode", "timed_out", "ok"),
    [(0, False, True), (1, False, False), (0, True, False), (-15, True, False)],
)
def test_result_is_ok_only_for_exit_zero_within_the_timeout(returncode, timed_out, ok):
    """A non-zero exit or a timeout is a failure."""
    assert CertbotResult(returncode, timed_out).ok is ok


def test_summary_prefers_the_last_two_error_lines():
    """When certbot names errors, those are quoted (trimmed), not the lines around them."""
    result = CertbotResult(
        1,
        timed_out=False,
        tail=(
            "Requesting a certificate for a.example",
            "  Type:   connection",
            "  Detail: Timeout during connect (likely firewall problem)",
            "Some challenges have failed.",
            "An unexpected error occurred:",
            "  Error creating new order :: too many certificates already issued",
            "Saving debug log to /var/log/letsencrypt/letsencrypt.log",
        ),
    )
    assert result.summary() == (
        "An unexpected error occurred: | "
        "Error creating new order :: too many certificates already issued"
    )


def test_summary_without_errors_quotes_the_last_two_telling_lines():
    """Log pointers, separators and renew tallies are noise; the cause stays."""
    result = CertbotResult(
        1,
        timed_out=False,
        tail=(
            "Certbot failed to authenticate some domains (authenticator: sidecar).",
            "  Domain: a.example",
            "  Detail: 192.0.2.1: Connection refused",
            "- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -",
            "All renewals failed. The following certificates could not be renewed:",
            "  /etc/letsencrypt/live/a.example/fullchain.pem (failure)",
            "1 renew failure(s), 0 parse failure(s)",
            "Ask for help or search for solutions at https://community.letsencrypt.org.",
            "Saving debug log to /var/log/letsencrypt/letsencrypt.log",
        ),
    )
    assert result.summary() == "Domain: a.example | Detail: 192.0.2.1: Connection refused"


def test_summary_of_failed_challenges_gives_the_cas_reason():
    """ "Some challenges have failed" says no more: the CA's detail (the address it dialled)
    follows it; the post-hook's output header is no error of its own."""
    detail = (
        'Detail: Get "http://a.example:80/.well-known/acme-challenge/x": '
        "dial tcp 172.31.0.12:80: connect: connection refused"
    )
    result = CertbotResult(
        1,
        timed_out=False,
        tail=(
            "Certbot failed to authenticate some domains (authenticator: sidecar).",
            "  Identifier: a.example",
            "  Type:   connection",
            f"  {detail}",
            "Hint: The Certificate Authority failed to download the challenge files.",
            "Failed to renew certificate a.example with error: Some challenges have failed.",
            "All simulated renewals failed. The following certificates could not be renewed:",
            "  /etc/letsencrypt/live/a.example/fullchain.pem (failure)",
            "Hook 'post-hook' ran with error output:",
            "1 renew failure(s), 0 parse failure(s)",
        ),
    )
    assert result.summary() == (
        f"Failed to renew certificate a.example with error: Some challenges have failed. | {detail}"
    )


def test_summary_does_not_repeat_a_line():
    """The same error printed twice is quoted once."""
    line = "Error: port 80 is still in use"
    assert CertbotResult(1, timed_out=False, tail=(line, line)).summary() == line


def test_summary_leaves_out_a_cleanup_failure_behind_the_real_one():
    """A DNS plugin's failed cleanup ("recovery") follows from its failed add: the add is named."""
    tail = (
        (
            "Encountered exception during recovery: certbot.errors.PluginError: Encountered error "
            "deleting TXT record: The peer didn't like the signature we sent"
        ),
        (
            "Failed to renew certificate example.test with error: Encountered error adding TXT "
            "record: The peer didn't like the signature we sent"
        ),
    )
    assert CertbotResult(1, timed_out=False, tail=tail).summary() == tail[1]
    assert CertbotResult(1, timed_out=False, tail=tail[:1]).summary() == tail[0]


def test_summary_of_a_silent_run_is_empty():
    """No output, nothing to quote."""
    assert CertbotResult(1, timed_out=True).summary() == ""


def test_certbot_is_taken_from_the_sidecars_own_environment():
    """The certbot next to this Python runs, with the sidecar plugin installed."""
    assert Path(certbot_executable()) == Path(sys.executable).parent / "certbot"


# CertbotRunner.run, with a stand-in for certbot


@pytest.fixture
def fake_certbot(tmp_path, monkeypatch):
    """A `certbot` that prints a line, then sleeps (ignoring nothing) until it is ended."""
    script = tmp_path / "certbot"
    script.write_text(
        "#!/bin/sh\n"
        'echo "started $$" > "$(dirname "$0")/pid"\n'
        "echo 'Requesting a certificate'\n"
        "trap 'echo got TERM; exit 3' TERM\n"
        "sleep 30 & wait $!\n"
    )
    script.chmod(0o755)
    monkeypatch.setattr("sidecar.certbot.runner.certbot_executable", lambda: str(script))
    return script


def test_a_stop_request_ends_the_running_certbot_at_once(fake_certbot):
    """SIGTERM to the sidecar while certbot runs: certbot is ended, the result says stopped."""
    runner = CertbotRunner(timeout=60, stop=shutdown.REQUEST)
    threading.Timer(0.5, shutdown.REQUEST.request).start()
    began = time.monotonic()
    result = runner.run(RUN)
    assert result.stopped
    assert not result.ok
    assert time.monotonic() - began < 30, "woken before its timeout"
    assert "got TERM" in result.tail


def test_no_certbot_run_starts_after_a_stop_request(fake_certbot):
    """Once a stop is requested, a later run of the cycle returns at once, without certbot."""
    shutdown.REQUEST.request()
    result = CertbotRunner(timeout=60, stop=shutdown.REQUEST).run(RUN)
    assert result.stopped
    assert not (fake_certbot.parent / "pid").exists()


def test_certbot_over_its_timeout_is_ended_and_reported(fake_certbot):
    """CERTBOT_TIMEOUT: the run ends as timed out, not as stopped."""
    result = CertbotRunner(timeout=0.5, stop=shutdown.REQUEST).run(RUN)
    assert result.timed_out
    assert not result.stopped


def test_secrets_reach_certbot_in_a_private_config_file_never_on_its_command_line(
    fake_certbot, tmp_path, monkeypatch
):
    """The EAB key: in `--config FILE` (mode 0600, removed afterwards), not in argv or env."""
    fake_certbot.write_text(
        "#!/bin/sh\n"
        'echo "argv: $*"\n'
        'for a in "$@"; do case "$prev" in --config) stat -c "mode %a" "$a"; cat "$a";; esac; '
        'prev="$a"; done\n'
        'echo "env: $(env | grep -c -e EAB_ -e WEBHOOK_URL -e ALERT_URLS)"\n'
    )
    monkeypatch.setenv("EAB_HMAC_KEY", "hmac-secret")
    monkeypatch.setenv("WEBHOOK_URL", "https://hooks.example/tok-123456")
    run = dataclasses.replace(RUN, secrets={"eab-hmac-key": "k3y"})
    result = CertbotRunner(timeout=30, stop=shutdown.REQUEST).run(run)
    argv = next(line for line in result.tail if line.startswith("argv:"))
    assert "k3y" not in argv
    assert "mode 600" in result.tail
    assert "eab-hmac-key = k3y" in result.tail
    assert "env: 0" in result.tail
    config = argv.split("--config ", 1)[1].split()[0]
    assert not Path(config).exists(), "the file is removed after the run"
