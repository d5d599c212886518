"""certbot's command lines (pure): what every run of the sidecar passes, and the renew runs of a
cycle given what the adoption decided for each lineage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sidecar.certbot.challenges import challenge_for
from sidecar.volume.confs import INSTALLER, POST_HOOK

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sidecar.certbot.challenges import Challenge
    from sidecar.settings import CertSpec, Settings
    from sidecar.volume.adopt import Decision

_SECRET_FLAGS = frozenset({"--eab-hmac-key"})


def common_args(settings: Settings, *, dry_run: bool) -> list[str]:
    """Flags every certbot run of the sidecar gets."""
    args = [
        "--non-interactive",
        "--agree-tos",
        "--config-dir",
        str(settings.config_dir),
        "--work-dir",
        str(settings.work_dir),
        "--logs-dir",
        str(settings.logs_dir),
        "--server",
        settings.acme_server,
        *challenge_for(settings).args,
        "--installer",
        INSTALLER,
        "--http-01-port",
        str(settings.http01_port),
        "--post-hook",
        POST_HOOK,
    ]
    if settings.http01_address:
        args += ["--http-01-address", settings.http01_address]
    if settings.email:
        args += ["--email", settings.email, "--no-eff-email"]
    else:
        args += ["--register-unsafely-without-email"]
    if settings.acme_profile:
        args += ["--preferred-profile", settings.acme_profile]
    if dry_run:
        args.append("--dry-run")
    return args


def certonly_args(settings: Settings, spec: CertSpec, *, dry_run: bool = False) -> list[str]:
    """Obtain (or re-obtain with new names) the lineage `spec.name`."""
    args = ["certonly", "--cert-name", spec.name, "--key-type", settings.key_type]
    if settings.key_type == "ecdsa":
        args += ["--elliptic-curve", settings.elliptic_curve]
    else:
        args += ["--rsa-key-size", str(settings.rsa_key_size)]
    for domain in spec.domains:
        args += ["-d", domain]
    return [*args, "--keep-until-expiring", "--expand", *common_args(settings, dry_run=dry_run)]


def renew_args(settings: Settings, *, force: bool = False, dry_run: bool = False) -> list[str]:
    """Renew every lineage that certbot's rules (lifetime, ARI, renew_before_expiry) make due."""
    args = ["renew", "--no-random-sleep-on-renew"]
    if force:
        args.append("--force-renewal")
    return [*args, *common_args(settings, dry_run=dry_run)]


def eab_options(settings: Settings) -> dict[str, str]:
    """External account binding, for certbot's config file (never its command line: every user
    can read /proc/PID/cmdline, and certbot logs its arguments)."""
    if not (settings.eab_kid and settings.eab_hmac_key):
        return {}
    return {"eab-kid": settings.eab_kid, "eab-hmac-key": settings.eab_hmac_key.get_secret_value()}


def redact(argv: list[str]) -> list[str]:
    """The command line as it may be logged: secret values replaced."""
    return ["***" if i > 0 and argv[i - 1] in _SECRET_FLAGS else arg for i, arg in enumerate(argv)]


def needs_own_flags(decisions: Sequence[Decision]) -> bool:
    """True when some lineage must be renewed with values from its conf, not the sidecar's flags:
    its own authenticator, credentials or CA, or an account it names among several (under
    `--server` certbot ignores a conf's `account` and, finding several, asks which)."""
    return any(d.action == "own" or (d.renewable and d.pinned_account) for d in decisions)


PER_LINEAGE_FLAGS = frozenset({"--server", "--authenticator", "--installer"})


def without_lineage_flags(args: list[str]) -> list[str]:
    """`args` without the flags certbot saves per lineage (and writes back after a renewal):
    `--server`, `--installer`, `--authenticator` and that authenticator's own options
    (`--webroot-path`, `--dns-rfc2136-credentials`, ...)."""
    auth = args[args.index("--authenticator") + 1] if "--authenticator" in args else None
    own = f"--{auth}-" if auth else None
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in PER_LINEAGE_FLAGS or (own and arg.startswith(own)):
            skip = True
        else:
            out.append(arg)
    return out


def renew_runs(
    args: list[str], decisions: Sequence[Decision], challenge: Challenge | None = None
) -> list[list[str]]:
    """The `certbot renew` runs of a cycle (`args` carry the sidecar's flags).

    One run for all lineages: with the sidecar's flags while each is renewed the sidecar's way;
    without the per-lineage flags when some lineage keeps its own authenticator, credentials, CA
    or pinned account (every conf names its own: certonly saved them, the adoption rewrote the
    rest), still one run, so certificates due together share one app outage. One run per lineage
    (`--cert-name`), each with the flags it needs, where one run cannot serve them all:

    - a dry run must name each lineage's CA (without `--server` certbot sends every lineage to
      Let's Encrypt staging, and under it ignores a conf's `account`: a pinned one is named with
      `--account`) and give only the sidecar's lineages the sidecar's authenticator;
    - with DNS-01 (no outage to share) the sidecar's lineages get the current DNS_* settings
      while the others keep their own plugin and credentials (a flag would overwrite them);
    - `--force-renewal` renews even lineages whose conf says `autorenew = False`, so a forced
      renewal with IGNORE_LINEAGES in effect renews the others one by one.

    In standalone mode that costs one app outage per lineage, on a manual command only.
    """
    forced = "--force-renewal" in args and any(d.action == "ignore" for d in decisions)
    if not (forced or needs_own_flags(decisions)):
        return [args]
    dns = challenge is not None and challenge.name == "dns"
    dry = "--dry-run" in args
    if not (forced or dry or dns):
        return [without_lineage_flags(args)]
    return [
        _lineage_run(args, d, dry=dry)
        for d in decisions
        if d.action != "ignore" and (d.renewable or not dry)
    ]


def _lineage_run(args: list[str], decision: Decision, *, dry: bool) -> list[str]:
    """One lineage's run: the sidecar's flags for its own lineages, none for the others (their
    conf names them), but on a dry run the lineage's CA and pinned account."""
    account = ["--account", decision.pinned_account] if decision.pinned_account and dry else []
    if decision.action != "own" and (dry or not decision.pinned_account):
        return [*args, "--cert-name", decision.name, *account]
    server = ["--server", decision.server] if dry and decision.server else []
    return [*without_lineage_flags(args), *server, "--cert-name", decision.name, *account]
