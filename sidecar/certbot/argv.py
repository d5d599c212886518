"""certbot's command lines (pure): what every run of the sidecar passes, and the renew runs of a
cycle given what the adoption decided for each lineage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sidecar.certbot.challenges import challenge_for
from sidecar.volume.confs import AUTHENTICATOR, INSTALLER, POST_HOOK

if TYPE_CHECKING:
    from collections.abc import Sequence

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


def needs_own_flags(decisions: Sequence[Decision], acme_server: str) -> bool:
    """True when some lineage must be renewed with values from its conf, not the sidecar's flags:
    its own authenticator or CA, or an account it names among several (under `--server` certbot
    ignores a conf's `account` and, finding several, asks which)."""
    return any(
        d.renewable
        and (d.authenticator != AUTHENTICATOR or d.server != acme_server or d.pinned_account)
        for d in decisions
    )


PER_LINEAGE_FLAGS = frozenset({"--server", "--authenticator", "--installer"})


def renew_args_for(args: list[str], decisions: Sequence[Decision], acme_server: str) -> list[str]:
    """`certbot renew` flags: without the per-lineage ones when some lineage needs its own.

    Every conf already names its authenticator, installer and server (certonly saved them, the
    adoption rewrote the rest), so dropping the flags changes nothing for the sidecar's lineages
    and lets the others keep theirs, all in one certbot run (one app outage). A dry run keeps the
    flags: certbot would send every lineage to Let's Encrypt staging without `--server`.
    """
    if "--dry-run" in args or not needs_own_flags(decisions, acme_server):
        return args
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in PER_LINEAGE_FLAGS:
            skip = True
        else:
            out.append(arg)
    return out


def renew_runs(args: list[str], decisions: Sequence[Decision], acme_server: str) -> list[list[str]]:
    """The `certbot renew` runs of a cycle: one, unless forced with ignored lineages present, or
    a dry run with a lineage whose account must be named.

    `--force-renewal` renews even lineages whose conf says `autorenew = False`, so a forced
    renewal with IGNORE_LINEAGES in effect renews the other lineages one by one (`--cert-name`),
    each with the flags it needs. A dry run keeps `--server`, under which certbot ignores every
    conf's `account`: there each lineage runs on its own, a pinned one with `--account`. That
    costs one app outage per lineage, on a manual command only.
    """
    dry_pinned = "--dry-run" in args and any(d.renewable and d.pinned_account for d in decisions)
    forced = "--force-renewal" in args and any(d.action == "ignore" for d in decisions)
    if not (forced or dry_pinned):
        return [renew_args_for(args, decisions, acme_server)]
    return [
        [*renew_args_for(args, [d], acme_server), "--cert-name", d.name, *_account(d, args)]
        for d in decisions
        if d.action != "ignore" and (d.renewable or not dry_pinned)
    ]


def _account(decision: Decision, args: list[str]) -> list[str]:
    """`--account ID` where certbot would not take it from the conf (a dry run)."""
    if decision.pinned_account and "--dry-run" in args:
        return ["--account", decision.pinned_account]
    return []
