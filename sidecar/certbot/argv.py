"""certbot's runs as data, and their command lines rendered once, here (pure).

A `Run` says what one certbot run is for (which command and lineages, forced, dry, with the
sidecar's per-lineage flags or the lineage's own, the CA and account named); `argv()` is the one
place that makes a command line of it. `renew_runs` makes the renew runs of a cycle from what the
adoption decided for each lineage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sidecar.volume.ca import choose_ca
from sidecar.volume.confs import INSTALLER, POST_HOOK
from sidecar.volume.specs import is_ip

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    from sidecar.certbot.challenges import Challenge
    from sidecar.volume.adopt import Decision
    from sidecar.volume.ca import AcmeCA
    from sidecar.volume.paths import Paths
    from sidecar.volume.specs import CertSpec

EXPECTED_ENV = "SIDECAR_EXPECTED_RENEWALS"  # renewals `certbot renew` should save in this run
_SECRET_FLAGS = frozenset({"--eab-hmac-key"})


@dataclass(frozen=True, slots=True)
class Key:
    """The key a new certificate gets (KEY_TYPE, ELLIPTIC_CURVE, RSA_KEY_SIZE)."""

    type: str = "ecdsa"
    curve: str = "secp256r1"
    size: int = 2048

    def args(self) -> list[str]:
        if self.type == "ecdsa":
            return ["--key-type", self.type, "--elliptic-curve", self.curve]
        return ["--key-type", self.type, "--rsa-key-size", str(self.size)]


@dataclass(frozen=True, slots=True)
class Flags:
    """What every certbot run of the sidecar passes: its directories, the CA (and the profile
    asked of it), the challenge, the account's e-mail, and the key of new certificates."""

    paths: Paths
    ca: AcmeCA
    challenge: Challenge
    http01_port: int = 80
    http01_address: str = ""
    email: str | None = None
    key: Key = field(default_factory=Key)

    def common(self, ca: AcmeCA, *, dry_run: bool, lineage_flags: bool) -> list[str]:
        """The flags of every run, at `ca`; without `lineage_flags`, not those certbot saves
        per lineage (and writes back after a renewal): the server, the authenticator with its
        options, the installer."""
        paths = self.paths
        args = ["--non-interactive", "--agree-tos"]
        args += ["--config-dir", str(paths.config_dir), "--work-dir", str(paths.work_dir)]
        args += ["--logs-dir", str(paths.logs_dir)]
        if lineage_flags:
            args += ["--server", ca.directory, "--authenticator", self.challenge.authenticator]
            args += [*self.challenge.options(), "--installer", INSTALLER]
        args += ["--http-01-port", str(self.http01_port), "--post-hook", POST_HOOK]
        if self.http01_address:
            args += ["--http-01-address", self.http01_address]
        if self.email:
            args += ["--email", self.email, "--no-eff-email"]
        else:
            args += ["--register-unsafely-without-email"]
        if ca.profile:
            args += ["--preferred-profile", ca.profile]
        return [*args, "--dry-run"] if dry_run else args


@dataclass(frozen=True, slots=True)
class Run:
    """One certbot run: `certonly` for `spec`, or `renew` (every lineage certbot finds due, or
    only `lineage`). Without `lineage_flags` the lineage's renewal conf names its CA,
    authenticator and installer; `server` and `account` are then named anyway where certbot
    would otherwise pick others (a dry run). `expected`: the renewals the sidecar's plugin
    counts before it starts the app; `secrets`: certbot options for its config file only."""

    command: Literal["certonly", "renew"]
    flags: Flags
    spec: CertSpec | None = None
    lineage: str | None = None
    force: bool = False
    dry_run: bool = False
    lineage_flags: bool = True
    server: str | None = None
    account: str | None = None
    expected: int | None = None
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def what(self) -> str:
        """What it is for, in log and error lines: the certificate, or `renewal`."""
        return self.spec.name if self.spec is not None else "renewal"

    @property
    def env(self) -> dict[str, str]:
        """What certbot's environment gets for this run."""
        counted = {EXPECTED_ENV: str(self.expected)} if self.expected is not None else {}
        return {**self.ca.env(), **self.flags.challenge.env(), **counted}

    @property
    def ca(self) -> AcmeCA:
        """The CA it runs at: a certificate's own (`choose_ca`), the configured one for renew."""
        ca = self.flags.ca
        return choose_ca(ca, self.spec.name) if self.spec is not None else ca

    def argv(self) -> list[str]:
        """The command line (without the program)."""
        if self.spec is not None:
            head = ["certonly", "--cert-name", self.spec.name, *self.flags.key.args()]
            head += [arg for name in self.spec.domains for arg in (_name_flag(name), name)]
            head += ["--keep-until-expiring", "--expand"]
        else:
            head = ["renew", "--no-random-sleep-on-renew"]
            head += ["--force-renewal"] if self.force else []
        common = self.flags.common(self.ca, dry_run=self.dry_run, lineage_flags=self.lineage_flags)
        tail = ["--server", self.server] if self.server else []
        tail += ["--cert-name", self.lineage] if self.lineage else []
        tail += ["--account", self.account] if self.account else []
        return [*head, *common, *tail]


def _name_flag(name: str) -> str:
    """certbot's flag for one name: `--ip-address` for an IP address (certbot 5.3+), else -d."""
    return "--ip-address" if is_ip(name) else "-d"


def certonly(flags: Flags, spec: CertSpec, *, dry_run: bool = False) -> Run:
    """Obtain (or re-obtain with new names) the lineage `spec.name`."""
    return Run("certonly", flags, spec=spec, dry_run=dry_run)


def renew(flags: Flags, *, force: bool = False, dry_run: bool = False) -> Run:
    """Renew every lineage that certbot's rules (lifetime, ARI, renew_before_expiry) make due."""
    return Run("renew", flags, force=force, dry_run=dry_run)


def redact(argv: list[str]) -> list[str]:
    """The command line as it may be logged: secret values replaced."""
    return ["***" if i > 0 and argv[i - 1] in _SECRET_FLAGS else arg for i, arg in enumerate(argv)]


def needs_own_flags(decisions: Sequence[Decision]) -> bool:
    """True when some lineage must be renewed with values from its conf, not the sidecar's flags:
    its own authenticator, credentials or CA, or an account it names among several (under
    `--server` certbot ignores a conf's `account` and, finding several, asks which)."""
    return any(d.action == "own" or (d.renewable and d.pinned_account) for d in decisions)


def renew_runs(
    base: Run, decisions: Sequence[Decision], due: int = 0, skip: Collection[str] = ()
) -> list[Run]:
    """The `certbot renew` runs of a cycle (`base`: the renew run with the sidecar's flags;
    `due`: the renewals expected, by certbot's default rule).

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

    - lineages the pre-flight refused (`skip`: CAA forbids the CA, a name does not resolve)
      are left out, so the others renew one by one.

    In standalone mode that costs one app outage per lineage, on a manual command (or while a
    lineage is refused) only.
    """
    forced = base.force and any(d.action == "ignore" for d in decisions)
    if not (forced or skip or needs_own_flags(decisions)):
        runs = [base]
    elif not (forced or skip or base.dry_run or base.flags.challenge.per_lineage):
        runs = [dataclasses.replace(base, lineage_flags=False)]
    else:
        runs = [
            _lineage_run(base, d)
            for d in decisions
            if d.action != "ignore" and d.name not in skip and (d.renewable or not base.dry_run)
        ]
    expected = due if len(runs) == 1 else 1  # the plugin starts the app after as many
    return [dataclasses.replace(run, expected=expected) for run in runs]


def replacement_runs(
    flags: Flags, decisions: Sequence[Decision], names: Collection[str]
) -> list[Run]:
    """`renew --force-renewal --cert-name NAME` for each lineage the CA wants replaced now (its
    ARI window has come): one run each, so only those lineages are renewed early."""
    base = renew(flags, force=True)
    return [
        dataclasses.replace(_lineage_run(base, d), expected=1)
        for d in decisions
        if d.name in names and d.renewable
    ]


def _lineage_run(base: Run, decision: Decision) -> Run:
    """One lineage's run: the sidecar's flags for its own lineages, none for the others (their
    conf names them), but on a dry run the lineage's CA and pinned account."""
    dry = base.dry_run
    account = decision.pinned_account if decision.pinned_account and dry else None
    one = dataclasses.replace(base, lineage=decision.name, account=account)
    if decision.action != "own" and (dry or not decision.pinned_account):
        return one
    server = decision.server if dry and decision.server else None
    return dataclasses.replace(one, lineage_flags=False, server=server)
