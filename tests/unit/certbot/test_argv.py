"""certbot's command lines: every flag the sidecar's runs pass."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pytest

from sidecar.certbot.argv import certonly, redact, renew, renew_runs
from sidecar.volume.adopt import Decision
from sidecar.volume.confs import AUTHENTICATOR, POST_HOOK
from sidecar.volume.specs import CertSpec
from tests.unit.helpers import dns_settings, make_settings, value_after

if TYPE_CHECKING:
    from sidecar.loader import Config

SECRET = "hmac-secret-value"
SPEC = CertSpec("a.example", ("a.example", "www.a.example"))


def certonly_args(config: Config, spec: CertSpec, *, dry_run: bool = False) -> list[str]:
    return certonly(config.flags, spec, dry_run=dry_run).argv()


def renew_args(config: Config, *, force: bool = False, dry_run: bool = False) -> list[str]:
    return renew(config.flags, force=force, dry_run=dry_run).argv()


def without_lineage_flags(config: Config) -> list[str]:
    """A renew run whose lineages' confs name their CA, authenticator and installer."""
    return dataclasses.replace(renew(config.flags), lineage_flags=False).argv()


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


def test_external_account_binding_never_reaches_the_command_line(tmp_path):
    """EAB_KID/EAB_HMAC_KEY go to certbot's config file (eab_options), never to its argv."""
    config = make_settings(tmp_path, EAB_KID="kid-1", EAB_HMAC_KEY=SECRET)
    args = renew_args(config)
    assert SECRET not in " ".join(args)
    assert "--eab-kid" not in args
    assert config.ca.eab_options() == {"eab-kid": "kid-1", "eab-hmac-key": SECRET}
    assert make_settings(tmp_path).ca.eab_options() == {}


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
    """A command line given the key anyway: *** for the HMAC key, all else as it is."""
    args = [*renew_args(make_settings(tmp_path)), "--eab-kid", "kid-1", "--eab-hmac-key", SECRET]
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


def test_webroot_challenge_uses_certbot_webroot_on_the_shared_volume(tmp_path):
    """CHALLENGE=webroot (cooperative mode): certbot's webroot plugin, no stop of the app."""
    args = renew_args(make_settings(tmp_path, CHALLENGE="webroot"))
    assert value_after(args, "--authenticator") == "webroot"
    assert value_after(args, "--webroot-path") == str(tmp_path / "webroot")


def _decision(name: str, action: str, server: str = "https://acme.test/directory") -> Decision:
    return Decision(name, action, "", "", in_domains=True, server=server)  # type: ignore[arg-type]


def test_dns_challenge_flags_reach_certonly_and_renew(tmp_path):
    """CHALLENGE=dns: the plugin, its credentials and the sidecar's installer and post-hook."""
    config = dns_settings(tmp_path / "le", DNS_PROPAGATION="0")
    for args in (certonly_args(config, SPEC), renew_args(config)):
        assert value_after(args, "--authenticator") == "dns-rfc2136"
        assert value_after(args, "--dns-rfc2136-credentials") == str(tmp_path / "rfc2136.ini")
        assert value_after(args, "--dns-rfc2136-propagation-seconds") == "0"
        assert value_after(args, "--installer") == "sidecar"
        assert value_after(args, "--post-hook") == POST_HOOK


def test_without_lineage_flags_drops_the_authenticator_and_its_own_options(tmp_path):
    """--server, --authenticator, --installer and --dns-NAME-* (or --webroot-*) go together."""
    left = without_lineage_flags(dns_settings(tmp_path / "le", DNS_PROPAGATION="5"))
    assert not [a for a in left if a.startswith(("--dns-rfc2136", "--authenticator", "--server"))]
    assert "--installer" not in left
    assert value_after(left, "--post-hook") == POST_HOOK
    webroot = without_lineage_flags(make_settings(tmp_path, CHALLENGE="webroot"))
    assert "--webroot-path" not in webroot


def test_dns_lineages_are_one_run_with_the_flags_when_all_are_the_sidecars(tmp_path):
    """Every lineage renewed the sidecar's way: one `certbot renew` with the DNS flags."""
    base = renew(dns_settings(tmp_path / "le").flags)
    decisions = [_decision("a.example", "sidecar"), _decision("b.example", "sidecar")]
    assert [run.argv() for run in renew_runs(base, decisions)] == [base.argv()]


def test_dns_mode_renews_a_lineage_with_its_own_plugin_alone_and_without_the_flags(tmp_path):
    """An adopted DNS lineage keeps its plugin and credentials (a flag would overwrite them in
    its conf): one run per lineage, the sidecar's with its flags, the other with none."""
    base = renew(dns_settings(tmp_path / "le").flags)
    args = base.argv()
    own = _decision("host.example", "own", server="https://other.test/dir")
    runs = [run.argv() for run in renew_runs(base, [_decision("a.example", "sidecar"), own])]
    assert runs[0] == [*args, "--cert-name", "a.example"]
    assert "--dns-rfc2136-credentials" not in runs[1]
    assert "--authenticator" not in runs[1]
    assert "--server" not in runs[1]  # its conf's: certbot renews it at its own CA
    assert runs[1][-2:] == ["--cert-name", "host.example"]


def test_standalone_mode_keeps_one_run_with_a_lineage_of_its_own(tmp_path):
    """The app stops for the challenge: one run for all (one outage), the flags left to confs."""
    config = make_settings(tmp_path)
    decisions = [_decision("a.example", "sidecar"), _decision("host.example", "own")]
    runs = renew_runs(renew(config.flags), decisions, due=2)
    assert [run.argv() for run in runs] == [without_lineage_flags(config)]
    assert runs[0].env == {"SIDECAR_EXPECTED_RENEWALS": "2"}  # the plugin starts the app after 2
