from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from sidecar import shutdown
from sidecar.runner import (
    AUTHENTICATOR,
    POST_HOOK,
    CertbotResult,
    CertbotRunner,
    certbot_executable,
    certonly_args,
    redact,
    renew_args,
)
from sidecar.settings import CertSpec
from tests.unit.helpers import make_settings, value_after

SECRET = "hmac-secret-value"
SPEC = CertSpec("a.example", ("a.example", "www.a.example"))


@pytest.fixture
def config(tmp_path):
    return make_settings(tmp_path / "le")


def test_certonly_names_the_lineage_and_lists_every_domain(config):
    """`certonly --cert-name NAME -d a -d b`, in the configured order."""
    args = certonly_args(config, SPEC)
    assert args[:3] == ["certonly", "--cert-name", "a.example"]
    domains = [args[i + 1] for i, arg in enumerate(args) if arg == "-d"]
    assert domains == ["a.example", "www.a.example"]


def test_certonly_keeps_a_valid_certificate_and_expands_names(config):
    """Re-running certonly does not re-issue an unchanged lineage; new names expand it."""
    args = certonly_args(config, SPEC)
    assert "--keep-until-expiring" in args
    assert "--expand" in args
    assert "--force-renewal" not in args


def test_certonly_asks_for_an_ecdsa_key_on_the_configured_curve(tmp_path):
    """KEY_TYPE=ecdsa passes the curve and no RSA size."""
    args = certonly_args(make_settings(tmp_path, ELLIPTIC_CURVE="secp384r1"), SPEC)
    assert value_after(args, "--key-type") == "ecdsa"
    assert value_after(args, "--elliptic-curve") == "secp384r1"
    assert "--rsa-key-size" not in args


def test_certonly_asks_for_an_rsa_key_of_the_configured_size(tmp_path):
    """KEY_TYPE=rsa passes the key size and no curve."""
    args = certonly_args(make_settings(tmp_path, KEY_TYPE="rsa"), SPEC)
    assert value_after(args, "--key-type") == "rsa"
    assert value_after(args, "--rsa-key-size") == "2048"
    assert "--elliptic-curve" not in args


def test_every_run_uses_the_sidecar_authenticator_and_post_hook(config):
    """Both commands use the sidecar plugin (authenticator and installer) and its post-hook."""
    for args in (certonly_args(config, SPEC), renew_args(config)):
        assert value_after(args, "--authenticator") == AUTHENTICATOR == "sidecar"
        assert value_after(args, "--installer") == "sidecar"
        assert value_after(args, "--post-hook") == POST_HOOK == "sidecar hook post"
        assert "--non-interactive" in args
        assert "--agree-tos" in args


def test_every_run_points_certbot_at_the_configured_directories_and_server(tmp_path):
    """certbot's three directories, the ACME server and the challenge port come from settings."""
    config = make_settings(tmp_path / "le", ACME_SERVER="https://pebble:14000/dir")
    args = renew_args(config)
    assert value_after(args, "--config-dir") == str(tmp_path / "le")
    assert value_after(args, "--work-dir") == str(tmp_path / "work")
    assert value_after(args, "--logs-dir") == str(tmp_path / "logs")
    assert value_after(args, "--server") == "https://pebble:14000/dir"
    assert value_after(args, "--http-01-port") == "80"


def test_challenge_address_is_passed_only_when_set(tmp_path):
    """HTTP01_ADDRESS binds the standalone server to one address; unset means all."""
    assert "--http-01-address" not in renew_args(make_settings(tmp_path))
    args = renew_args(make_settings(tmp_path, HTTP01_ADDRESS="10.0.0.5", HTTP01_PORT="8080"))
    assert value_after(args, "--http-01-address") == "10.0.0.5"
    assert value_after(args, "--http-01-port") == "8080"


def test_email_registers_the_account_without_eff_mail(tmp_path):
    """With EMAIL the account gets it and the EFF newsletter question is answered no."""
    args = renew_args(make_settings(tmp_path, EMAIL="ops@example.com"))
    assert value_after(args, "--email") == "ops@example.com"
    assert "--no-eff-email" in args
    assert "--register-unsafely-without-email" not in args


def test_without_email_the_account_is_registered_without_one(config):
    """No EMAIL: certbot is told so explicitly (non-interactive)."""
    args = renew_args(config)
    assert "--register-unsafely-without-email" in args
    assert "--email" not in args


def test_external_account_binding_is_passed_when_configured(tmp_path):
    """EAB_KID/EAB_HMAC_KEY reach certbot as its --eab flags."""
    args = renew_args(make_settings(tmp_path, EAB_KID="kid-1", EAB_HMAC_KEY=SECRET))
    assert value_after(args, "--eab-kid") == "kid-1"
    assert value_after(args, "--eab-hmac-key") == SECRET
    assert "--eab-kid" not in renew_args(make_settings(tmp_path))


def test_acme_profile_is_requested_when_configured(tmp_path):
    """ACME_PROFILE (e.g. shortlived) becomes --preferred-profile."""
    assert value_after(
        renew_args(make_settings(tmp_path, ACME_PROFILE="shortlived")), "--preferred-profile"
    ) == ("shortlived")
    assert "--preferred-profile" not in renew_args(make_settings(tmp_path))


def test_dry_run_is_passed_only_when_asked(config):
    """`sidecar renew --dry-run` runs certbot against the CA's staging, saving nothing."""
    assert "--dry-run" in certonly_args(config, SPEC, dry_run=True)
    assert "--dry-run" in renew_args(config, dry_run=True)
    assert "--dry-run" not in certonly_args(config, SPEC)
    assert "--dry-run" not in renew_args(config)


def test_renew_covers_all_lineages_without_random_sleep(config):
    """`renew` names no lineage and does not sleep (the scheduler adds its own jitter)."""
    args = renew_args(config)
    assert args[:2] == ["renew", "--no-random-sleep-on-renew"]
    assert "--cert-name" not in args
    assert "--force-renewal" not in args


def test_forced_renew_forces_renewal(config):
    """`sidecar renew --force` renews certificates that are not due."""
    assert "--force-renewal" in renew_args(config, force=True)


def test_every_flag_that_takes_a_value_has_one(tmp_path):
    """No flag is followed by another flag (a missing value would shift every argument)."""
    config = make_settings(
        tmp_path, EMAIL="ops@example.com", EAB_KID="k", EAB_HMAC_KEY=SECRET, ACME_PROFILE="p"
    )
    takes_value = {
        "--cert-name",
        "--key-type",
        "--elliptic-curve",
        "-d",
        "--config-dir",
        "--work-dir",
        "--logs-dir",
        "--server",
        "--authenticator",
        "--installer",
        "--http-01-port",
        "--post-hook",
        "--email",
        "--eab-kid",
        "--eab-hmac-key",
        "--preferred-profile",
    }
    args = certonly_args(config, SPEC)
    for i, arg in enumerate(args):
        if arg in takes_value:
            assert not args[i + 1].startswith("-"), arg


def test_redact_hides_the_eab_key_and_nothing_else(tmp_path):
    """The logged command line shows *** for the HMAC key, all other arguments as they are."""
    args = renew_args(make_settings(tmp_path, EAB_KID="kid-1", EAB_HMAC_KEY=SECRET))
    shown = redact(args)
    assert SECRET not in shown
    assert SECRET not in " ".join(shown)
    assert value_after(shown, "--eab-hmac-key") == "***"
    assert value_after(shown, "--eab-kid") == "kid-1"
    assert [a for a in shown if a != "***"] == [a for a in args if a != SECRET]


def test_redact_leaves_its_input_alone_and_copes_with_a_trailing_flag():
    """The real argv is not modified; a secret flag without a value is harmless."""
    argv = ["certbot", "renew", "--eab-hmac-key", SECRET]
    assert redact(argv) == ["certbot", "renew", "--eab-hmac-key", "***"]
    assert argv[-1] == SECRET
    assert redact(["--eab-hmac-key"]) == ["--eab-hmac-key"]
    assert redact([SECRET]) == [SECRET]


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


def test_summary_does_not_repeat_a_line():
    """The same error printed twice is quoted once."""
    line = "Error: port 80 is still in use"
    assert CertbotResult(1, timed_out=False, tail=(line, line)).summary() == line


def test_summary_of_a_silent_run_is_empty():
    """No output, nothing to quote."""
    assert CertbotResult(1, timed_out=True).summary() == ""


def test_certbot_is_taken_from_the_sidecars_own_environment():
    """The certbot next to this Python runs, with the sidecar plugin installed."""
    assert Path(certbot_executable()) == Path(sys.executable).parent / "certbot"


def test_webroot_challenge_uses_certbot_webroot_on_the_shared_volume(tmp_path):
    """CHALLENGE=webroot (cooperative mode): certbot's webroot plugin, no stop of the app."""
    args = renew_args(make_settings(tmp_path, CHALLENGE="webroot"))
    assert value_after(args, "--authenticator") == "webroot"
    assert value_after(args, "--webroot-path") == str(tmp_path / "webroot")


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
    monkeypatch.setattr("sidecar.runner.certbot_executable", lambda: str(script))
    return script


def test_a_stop_request_ends_the_running_certbot_at_once(fake_certbot):
    """SIGTERM to the sidecar while certbot runs: certbot is ended, the result says stopped."""
    runner = CertbotRunner({}, timeout=60)
    threading.Timer(0.5, shutdown.REQUEST.request).start()
    began = time.monotonic()
    result = runner.run(["renew"])
    assert result.stopped
    assert not result.ok
    assert time.monotonic() - began < 10
    assert "got TERM" in result.tail


def test_no_certbot_run_starts_after_a_stop_request(fake_certbot):
    """Once a stop is requested, a later run of the cycle returns at once, without certbot."""
    shutdown.REQUEST.request()
    result = CertbotRunner({}, timeout=60).run(["certonly"])
    assert result.stopped
    assert not (fake_certbot.parent / "pid").exists()


def test_certbot_over_its_timeout_is_ended_and_reported(fake_certbot):
    """CERTBOT_TIMEOUT: the run ends as timed out, not as stopped."""
    result = CertbotRunner({}, timeout=0.5).run(["renew"])
    assert result.timed_out
    assert not result.stopped
