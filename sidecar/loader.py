"""The configuration: read from environment variables and validated once, at start, into the
small frozen views the rest of the code receives (`Config`). Each field's rule is a type
(`sidecar.fields`); what needs the system (files, installed plugins) and what spans several
variables is checked here, after the fields, once. Only the entry points import this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sidecar import fields
from sidecar.certbot.argv import Flags, Key
from sidecar.certbot.challenges import (
    DNS_PLUGINS,
    Dns,
    Standalone,
    Webroot,
    dns_plugin,
    dns_plugin_problem,
)
from sidecar.certbot.inside import InCertbot
from sidecar.cycle.names import NamesSpec
from sidecar.cycle.run import CycleSetup
from sidecar.cycle.verify import Endpoint, VerifySpec, parse_endpoints
from sidecar.errors import ConfigError
from sidecar.report.alerts import AlertsSpec
from sidecar.report.metrics import MetricsSpec
from sidecar.scheduler import Schedule
from sidecar.targets.control import control_for
from sidecar.targets.spec import TargetsSpec
from sidecar.volume.access import Policy
from sidecar.volume.ca import SERVER_ALIASES, AcmeCA, is_letsencrypt
from sidecar.volume.files import others_may_read
from sidecar.volume.found import TreeSpec
from sidecar.volume.paths import Paths
from sidecar.volume.specs import CertSpec, Domains, names_allowed, parse_domains

if TYPE_CHECKING:
    from sidecar.certbot.challenges import Challenge
    from sidecar.shutdown import StopRequest
    from sidecar.targets.control import Targets

_PROFILE_NOTE = " with this ACME_PROFILE"


def _domains(raw: object) -> tuple[CertSpec, ...]:
    return raw if isinstance(raw, tuple) else parse_domains(str(raw))


def _server(raw: str) -> str:
    value = SERVER_ALIASES.get(raw.strip().lower(), raw.strip())
    if not value.startswith(("https://", "http://")):
        choices = ", ".join(SERVER_ALIASES)
        raise ValueError(f"{raw!r} is neither {choices} nor an ACME directory URL")
    return value


class Settings(BaseSettings):
    """Every setting comes from the environment variable of the same name, upper-cased."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    domains: Annotated[tuple[CertSpec, ...], NoDecode, BeforeValidator(_domains)]
    acme_server: Annotated[str, AfterValidator(_server)]
    email: fields.Email = None
    acme_ca_bundle: Path | None = None
    app_containers: fields.ContainerNames = ()
    app_services: fields.ServiceNames = ()
    app_label: fields.LabelSelector = None
    cert_delivery: Annotated[Literal["volume", "secret"], fields.Lower] = "volume"
    stop_timeout: fields.OptionalDuration = None
    start_timeout: fields.PositiveDuration = 120.0
    http01_port: fields.Port = 80
    http01_address: str = ""
    challenge: Literal["standalone", "webroot", "dns"] = "standalone"
    webroot_path: Path | None = None
    dns_plugin: fields.PluginName = None
    dns_credentials: fields.OptionalFile = None
    dns_propagation: fields.OptionalDuration = None
    reload_signal: fields.SignalName = None
    key_type: Annotated[Literal["ecdsa", "rsa"], fields.Lower] = "ecdsa"
    elliptic_curve: Annotated[Literal["secp256r1", "secp384r1", "secp521r1"], fields.Lower] = (
        "secp256r1"
    )
    rsa_key_size: Annotated[Literal[2048, 3072, 4096], fields.IntText] = 2048
    acme_profile: str | None = None
    check_interval: fields.PositiveDuration = 6 * 3600.0
    check_jitter: fields.Duration = 3600.0
    renew_before_expiry: fields.OptionalPositiveDuration = None
    certbot_timeout: fields.PositiveDuration = 900.0
    eab_kid: str | None = None
    eab_hmac_key: SecretStr | None = None
    eab_hmac_key_file: Path | None = None
    log_level: Annotated[
        Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"], fields.Upper
    ] = "INFO"
    log_format: Annotated[Literal["text", "json"], fields.Lower] = "text"
    config_dir: Path = Path("/etc/letsencrypt")
    work_dir: Path = Path("/var/lib/letsencrypt")
    logs_dir: Path = Path("/var/log/letsencrypt")
    ignore_lineages: fields.LineageNames = ()
    files_uid: fields.OptionalId = Field(None, validation_alias=AliasChoices("files_uid", "puid"))
    files_gid: fields.OptionalId = Field(None, validation_alias=AliasChoices("files_gid", "pgid"))
    files_perms: fields.OctalMode = None
    combined_pem: bool = False
    verify: Annotated[tuple[Endpoint, ...], NoDecode, BeforeValidator(parse_endpoints)] = ()
    verify_wait: fields.Wait = 30.0
    metrics_port: fields.OptionalPort = None
    metrics_address: str = "127.0.0.1"
    webhook_url: fields.WebhookUrl = None
    alert_urls: fields.AlertUrls = None
    alert_on_success: bool = False
    check_names: bool = True
    caa_identities: fields.CaaIdentities = ()
    dns_resolver: fields.Resolvers = ()


@dataclass(frozen=True, slots=True)
class Config:
    """The views the entry points hand down, each to the code that owns its concern."""

    paths: Paths
    domains: Domains
    ca: AcmeCA
    challenge: Challenge
    flags: Flags  # every certbot run's flags
    policy: Policy  # FILES_*, COMBINED_PEM
    tree: TreeSpec  # what the tree's reading and adoption go by
    cycle: CycleSetup  # what a renewal cycle acts on
    targets: TargetsSpec
    schedule: Schedule
    verify: VerifySpec
    alerts: AlertsSpec
    metrics: MetricsSpec
    certbot_timeout: float
    log_level: str
    log_format: str

    @property
    def config_dir(self) -> Path:
        return self.paths.config_dir

    @property
    def state_dir(self) -> Path:
        return self.paths.state_dir


def describe(error: ValidationError) -> str:
    """One line naming each bad variable and the rule it breaks (never its value)."""
    parts = []
    for item in error.errors():
        field = str(item["loc"][0]).upper() if item["loc"] else "configuration"
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            parts.append(f"{field} is required")
        else:
            parts.append(f"{field}: {message}" if field != "configuration" else message)
    return "invalid configuration: " + "; ".join(parts)


def read(env: dict[str, str] | None = None) -> Settings:
    """The variables, each valid by its own rule, or ConfigError with one clear line."""
    try:
        if env is None:
            return Settings()  # type: ignore[call-arg]
        return Settings.model_validate({k.lower(): v for k, v in env.items()})
    except ValidationError as error:
        raise ConfigError(describe(error)) from None


def load(env: dict[str, str] | None = None) -> Config:
    """Read, check and build the views, or raise ConfigError with one clear line."""
    raw = read(env)
    plugins = installed_plugins()
    try:
        files = _files(raw)
        _cross_checks(raw, plugins)
        return _views(raw, files, plugins)
    except ValueError as error:
        raise ConfigError(f"invalid configuration: {error}") from None


def installed_plugins() -> frozenset[str]:
    """certbot plugins installed next to the sidecar (its `certbot.plugins` entry points)."""
    return frozenset(e.name for e in entry_points(group="certbot.plugins"))


@dataclass(frozen=True, slots=True)
class _Files:
    """What the files named by variables hold, read once (ValueError naming the variable)."""

    dns_credentials: Path | None
    eab_hmac_key: SecretStr | None


def _readable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.R_OK)


def _file_problem(variable: str, path: Path | None, *, private: bool = False) -> str | None:
    """Why the file a variable names cannot be used (a `private` one: open to other users)."""
    if path is None:
        return None
    if not _readable(path):
        return f"{variable}: {str(path)!r} is not a readable file"
    if private and (why := others_may_read(path)):
        return f"{variable}: {why}"
    return None


def _files(raw: Settings) -> _Files:
    found = (
        _file_problem("ACME_CA_BUNDLE", raw.acme_ca_bundle),
        _file_problem("DNS_CREDENTIALS", raw.dns_credentials, private=True),
        _file_problem("EAB_HMAC_KEY_FILE", raw.eab_hmac_key_file),
    )
    if problems := [why for why in found if why]:
        raise ValueError("; ".join(problems))
    key = raw.eab_hmac_key
    if raw.eab_hmac_key_file is not None and key is None:
        key = SecretStr(raw.eab_hmac_key_file.read_text(encoding="utf-8").strip())
    credentials = raw.dns_credentials
    # absolute, as certbot saves it in the renewal conf
    return _Files(None if credentials is None else credentials.absolute(), key)


def _cross_checks(raw: Settings, plugins: frozenset[str]) -> None:
    """The rules that span variables, in the order they are reported."""
    if both := {s.name for s in raw.domains}.intersection(raw.ignore_lineages):
        raise ValueError(f"IGNORE_LINEAGES: {min(both)!r} is listed in DOMAINS too")
    limit = names_allowed(raw.acme_profile)
    for spec in raw.domains:
        if len(spec.domains) > limit:
            raise ValueError(
                f"DOMAINS: certificate {spec.name} has {len(spec.domains)} names, more than "
                f"the {limit} a certificate may hold{_PROFILE_NOTE if limit < 100 else ''}; "  # noqa: PLR2004
                "split them into several certificates with ;"
            )
    wild = [w for spec in raw.domains for w in spec.wildcards]
    if wild and raw.challenge != "dns":
        raise ValueError(
            f"DOMAINS: {wild[0]!r} is a wildcard: only CHALLENGE=dns (DNS-01) can obtain it, "
            f"HTTP-01 (CHALLENGE={raw.challenge}) cannot"
        )
    _ip_checks(raw)
    _dns_checks(raw, plugins)
    if raw.metrics_port is not None and raw.metrics_port == raw.http01_port:
        raise ValueError("METRICS_PORT: must differ from HTTP01_PORT (the challenge port)")
    _app_checks(raw)


def _ip_checks(raw: Settings) -> None:
    """IP addresses: validated by HTTP-01 only, and at Let's Encrypt in `shortlived` only."""
    ips = [ip for spec in raw.domains for ip in spec.ip_addresses]
    at_le = is_letsencrypt(raw.acme_server)
    shortlived = (raw.acme_profile or "").strip().lower() == "shortlived"
    if ips and (raw.challenge == "dns" or (at_le and not shortlived)):
        raise ValueError(
            f"DOMAINS: {ips[0]!r} is an IP address: the CA validates it by HTTP-01 only "
            f"(CHALLENGE=standalone or webroot, not dns), and Let's Encrypt issues it only with "
            f"ACME_PROFILE=shortlived (CHALLENGE={raw.challenge}, "
            f"ACME_PROFILE={raw.acme_profile or 'unset'})"
        )


def _dns_checks(raw: Settings, plugins: frozenset[str]) -> None:
    if raw.challenge != "dns":
        if raw.dns_plugin:
            raise ValueError(f"DNS_PLUGIN: set CHALLENGE=dns to use it (not {raw.challenge})")
        return
    if not raw.dns_plugin:
        raise ValueError(
            f"DNS_PLUGIN is required with CHALLENGE=dns (one of {', '.join(DNS_PLUGINS)})"
        )
    if why := dns_plugin_problem(raw.dns_plugin, plugins):
        raise ValueError(f"DNS_PLUGIN: {why}")
    plugin = dns_plugin(raw.dns_plugin)
    if plugin.credentials == "file" and raw.dns_credentials is None:
        raise ValueError(
            f"DNS_CREDENTIALS is required with DNS_PLUGIN={raw.dns_plugin}: the file of "
            f"credentials the plugin reads (README: DNS-01)"
        )
    if raw.dns_propagation is not None and not plugin.propagation:
        raise ValueError(
            f"DNS_PROPAGATION: the {raw.dns_plugin} plugin waits for the change itself and "
            "takes no propagation time"
        )


def _app_checks(raw: Settings) -> None:
    if not raw.app_containers and not raw.app_services and not raw.app_label:
        raise ValueError(
            "APP_CONTAINERS, APP_SERVICES or APP_LABEL: set at least one to name the app"
        )
    if raw.cert_delivery == "secret" and not raw.app_services and not raw.app_label:
        raise ValueError(
            "CERT_DELIVERY=secret gives the certificates to Swarm services: name them with "
            "APP_SERVICES or APP_LABEL"
        )
    key = raw.eab_hmac_key is not None or raw.eab_hmac_key_file is not None
    if (raw.eab_kid is None) == key:
        raise ValueError("EAB_KID and EAB_HMAC_KEY (or EAB_HMAC_KEY_FILE) go together")


def _challenge(raw: Settings, paths: Paths, files: _Files) -> Challenge:
    """Standalone with the app stopped (default), the app's own webroot (cooperative), or a TXT
    record through one of certbot's DNS plugins (no stop; wildcards)."""
    if raw.challenge == "webroot":
        return Webroot(raw.webroot_path or paths.config_dir / "webroot")
    if raw.challenge == "dns" and raw.dns_plugin:
        return Dns(raw.dns_plugin, files.dns_credentials, raw.dns_propagation)
    return Standalone()


def _targets(raw: Settings) -> TargetsSpec:
    return TargetsSpec(
        raw.app_containers,
        raw.app_services,
        raw.app_label,
        raw.cert_delivery,
        raw.stop_timeout,
        raw.start_timeout,
        raw.reload_signal,
    )


def _views(raw: Settings, files: _Files, plugins: frozenset[str]) -> Config:
    paths = Paths(raw.config_dir, raw.work_dir, raw.logs_dir)
    domains = Domains(raw.domains, raw.ignore_lineages, raw.renew_before_expiry)
    ca = AcmeCA(
        raw.acme_server, raw.acme_ca_bundle, raw.eab_kid, files.eab_hmac_key, raw.acme_profile
    )
    challenge = _challenge(raw, paths, files)
    policy = Policy(raw.files_uid, raw.files_gid, raw.files_perms, raw.combined_pem)
    key = Key(raw.key_type, raw.elliptic_curve, raw.rsa_key_size)
    flags = Flags(paths, ca, challenge, raw.http01_port, raw.http01_address, raw.email, key)
    tree = TreeSpec(
        paths=paths,
        domains=domains,
        ca=ca,
        policy=policy,
        authenticator=challenge.renews_as,
        credentials=challenge.credentials_file,
        http01_port=raw.http01_port,
        http01_address=raw.http01_address,
        plugins=plugins,
        plugin_problem=partial(dns_plugin_problem, installed=plugins),
    )
    targets = _targets(raw)
    verify = VerifySpec(raw.verify, raw.verify_wait)
    names = NamesSpec(raw.check_names, raw.caa_identities, raw.dns_resolver)
    return Config(
        paths=paths,
        domains=domains,
        ca=ca,
        challenge=challenge,
        flags=flags,
        policy=policy,
        tree=tree,
        cycle=CycleSetup(tree, flags, targets, verify, names),
        targets=targets,
        schedule=Schedule(raw.check_interval, raw.check_jitter),
        verify=verify,
        alerts=AlertsSpec(raw.webhook_url, raw.alert_urls, raw.alert_on_success),
        metrics=MetricsSpec(raw.metrics_port, raw.metrics_address),
        certbot_timeout=raw.certbot_timeout,
        log_level=raw.log_level,
        log_format=raw.log_format,
    )


def control(config: Config, stopping: StopRequest) -> Targets:
    """The app's targets, their waits ending early on `stopping`."""
    return control_for(config.targets, config.tree, stopping)


def in_certbot(config: Config, stopping: StopRequest) -> InCertbot:
    """What certbot's process (the plugin, the post-hook) needs to stop and start the app."""
    return InCertbot(config.tree, control(config, stopping))
