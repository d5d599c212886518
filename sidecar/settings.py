"""Configuration: one frozen model read from environment variables, validated once at start."""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass
from datetime import timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sidecar.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Collection

LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
SERVER_ALIASES = {"letsencrypt": LETSENCRYPT, "letsencrypt-staging": LETSENCRYPT_STAGING}

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_CONTAINER_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_LABEL_SELECTOR = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_./-]*(=.*)?$")
_LINEAGE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_ENDPOINT = re.compile(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[A-Za-z0-9._-]+)):(?P<port>\d+)$")


WILDCARD = "*."


@dataclass(frozen=True, slots=True)
class CertSpec:
    """One certificate: its lineage name (the first domain, without `*.`) and all its names."""

    name: str
    domains: tuple[str, ...]

    @property
    def wildcards(self) -> tuple[str, ...]:
        return tuple(d for d in self.domains if d.startswith(WILDCARD))


def check_domain(name: str) -> str:
    """Return the lower-cased name, or raise ValueError saying why it is not usable. A wildcard
    (`*.example.com`) passes here; only CHALLENGE=dns may ask for one (Settings checks)."""
    domain = name.strip().lower().rstrip(".")
    if not domain.isascii():
        raise ValueError(_not_ascii(name.strip()))
    labels = domain.removeprefix(WILDCARD).split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):  # noqa: PLR2004
        raise ValueError(f"{name!r} is not a valid domain name")
    if labels[-1].isdigit():
        raise ValueError(f"{name!r}: IP addresses are not supported, use a domain name")
    return domain


def _not_ascii(name: str) -> str:
    """The hint for an internationalized name: certbot and the lineage's directory need its
    ASCII (punycode) form. It is not converted here: IDNA 2003 and 2008 map a few characters
    differently (ß, ς), and which form the DNS holds is the operator's to say."""
    plain = f"{name!r} is not an ASCII domain name; give its punycode (xn--) form as DNS holds it"
    try:
        labels = [
            label.encode("idna").decode("ascii") if not label.isascii() else label
            for label in name.lower().split(".")
        ]
    except UnicodeError:
        return plain
    if any(
        not old.isascii() and not new.startswith("xn--")
        for old, new in zip(name.lower().split("."), labels, strict=True)
    ):
        return plain  # IDNA 2003 maps it to other letters (straße -> strasse): no safe guess
    return f"{name!r} is not ASCII: give its punycode form, {'.'.join(labels)!r}"


def parse_domains(raw: str) -> tuple[CertSpec, ...]:
    """`a.com,www.a.com;b.com` -> two certificates, named after their first domain (certbot's
    own name for a wildcard first: `*.a.com,a.com` is lineage `a.com`)."""
    specs: list[CertSpec] = []
    seen: set[str] = set()
    for group in raw.split(";"):
        names = tuple(dict.fromkeys(check_domain(n) for n in group.split(",") if n.strip()))
        if not names:
            continue
        if dup := seen.intersection(names):
            raise ValueError(f"{min(dup)!r} is listed in two certificates")
        seen.update(names)
        spec = CertSpec(names[0].removeprefix(WILDCARD), names)
        _check_wildcards(spec)
        if twin := next((s for s in specs if s.name == spec.name), None):
            raise ValueError(
                f"{twin.domains[0]!r} and {names[0]!r} would both be lineage {spec.name}; "
                f"list them in one certificate ({twin.domains[0]},{names[0]})"
            )
        specs.append(spec)
    if not specs:
        raise ValueError("no domain names given (example: DOMAINS=example.com,www.example.com)")
    return tuple(specs)


def _check_wildcards(spec: CertSpec) -> None:
    """The CA refuses a certificate naming both `*.a.com` and a name it covers (`www.a.com`)."""
    for wildcard in spec.wildcards:
        base = wildcard.removeprefix(WILDCARD)
        if covered := [d for d in spec.domains if d != wildcard and d.split(".", 1)[-1] == base]:
            raise ValueError(
                f"{covered[0]!r} is covered by {wildcard!r}; the CA rejects both in one "
                "certificate, keep one"
            )


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the app answers TLS, as seen from the sidecar (host network: usually 127.0.0.1)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(raw: str) -> Endpoint:
    """`127.0.0.1:443`, `localhost:8443`, `[::1]:443`, or a bare port (on 127.0.0.1)."""
    text = raw.strip()
    if text.isdigit():
        text = f"127.0.0.1:{text}"
    match = _ENDPOINT.match(text)
    port = int(match["port"]) if match else 0
    if not match or not 1 <= port <= 65535:  # noqa: PLR2004
        raise ValueError(f"{raw.strip()!r} is not host:port (example: 127.0.0.1:443)")
    return Endpoint(match["v6"] or match["host"], port)


def parse_endpoints(raw: object) -> tuple[Endpoint, ...]:
    """Comma-separated endpoints; empty means verification is off."""
    if isinstance(raw, tuple | list):
        items = [x if isinstance(x, Endpoint) else parse_endpoint(str(x)) for x in raw]
    else:
        items = [parse_endpoint(x) for x in str(raw or "").split(",") if x.strip()]
    return tuple(dict.fromkeys(items))


def parse_duration(raw: object) -> float:
    """`90`, `90s`, `30m`, `12h`, `7d` -> seconds."""
    if isinstance(raw, int | float):
        return float(raw)
    match = _DURATION.match(str(raw).lower())
    if not match:
        raise ValueError(f"{raw!r} is not a duration (examples: 90s, 30m, 12h, 7d)")
    return float(match[1]) * _UNIT_SECONDS[match[2]]


def _csv(raw: object) -> tuple[str, ...]:
    if isinstance(raw, list | tuple):
        return tuple(str(x) for x in raw)
    return tuple(x.strip() for x in str(raw).split(",") if x.strip())


Duration = Annotated[float, NoDecode]
# Names per certificate at Let's Encrypt: 100, 25 with the short-lived profiles.
MAX_NAMES = 100
SHORT_PROFILES = {"tlsserver": 25, "shortlived": 25}
_PROFILE_NOTE = " with this ACME_PROFILE"


def names_allowed(profile: str | None) -> int:
    return SHORT_PROFILES.get((profile or "").strip().lower(), MAX_NAMES)


@dataclass(frozen=True, slots=True)
class DnsPlugin:
    """What one of certbot's DNS plugins (`certbot-dns-NAME`, extra `dns-NAME`) takes.

    `credentials`: `file` (`--dns-NAME-credentials`, required), `optional` (google: a service
    account file, else the machine's own credentials), or `aws` (route53 has no such option: the
    file is AWS's shared credentials file, else AWS_* variables or the instance's role).
    `propagation`: whether it takes `--dns-NAME-propagation-seconds` (route53 waits for Route 53
    itself)."""

    credentials: Literal["file", "optional", "aws"] = "file"
    propagation: bool = True


# certbot's own DNS plugins, each an image extra (pyproject.toml; tests check they agree).
DNS_PLUGINS = {
    "cloudflare": DnsPlugin(),
    "digitalocean": DnsPlugin(),
    "dnsimple": DnsPlugin(),
    "dnsmadeeasy": DnsPlugin(),
    "gehirn": DnsPlugin(),
    "google": DnsPlugin(credentials="optional"),
    "linode": DnsPlugin(),
    "luadns": DnsPlugin(),
    "nsone": DnsPlugin(),
    "ovh": DnsPlugin(),
    "rfc2136": DnsPlugin(),
    "route53": DnsPlugin(credentials="aws", propagation=False),
    "sakuracloud": DnsPlugin(),
}
OTHER_DNS_PLUGIN = DnsPlugin(credentials="optional")  # another `dns-NAME` plugin installed here
AWS_CREDENTIALS_ENV = "AWS_SHARED_CREDENTIALS_FILE"  # where boto3 (route53) finds its file


def installed_plugins() -> frozenset[str]:
    """certbot plugins installed next to the sidecar (its `certbot.plugins` entry points)."""
    return frozenset(e.name for e in entry_points(group="certbot.plugins"))


def dns_plugin_problem(plugin: str, installed: Collection[str]) -> str | None:
    """Why DNS plugin `plugin` (`cloudflare`) cannot run where `installed` are the certbot
    plugins, naming the extra to build with; None when it can."""
    if f"dns-{plugin}" in installed:
        return None
    if plugin in DNS_PLUGINS:
        return (
            f"the dns-{plugin} plugin is not in this image; build it with "
            f"--build-arg EXTRAS=dns-{plugin}"
        )
    return (
        f"dns-{plugin} is none of certbot's DNS plugins ({', '.join(DNS_PLUGINS)}; each is "
        "built in with EXTRAS=dns-NAME), and not installed in this image"
    )


def others_may_read(path: Path) -> str | None:
    """Why a secret file is refused: any permission for other users (certbot itself only warns),
    or None."""
    mode = path.stat().st_mode & 0o777
    if not mode & 0o007:
        return None
    return (
        f"{str(path)!r} is open to other users (mode {mode:04o}); make it 0600 "
        "(chmod 600, or mode: 0400 for a Docker secret)"
    )


class Settings(BaseSettings):
    """Every setting comes from the environment variable of the same name, upper-cased."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    domains: Annotated[tuple[CertSpec, ...], NoDecode]
    acme_server: str
    email: str | None = None
    acme_ca_bundle: Path | None = None
    app_containers: Annotated[tuple[str, ...], NoDecode] = ()
    app_services: Annotated[tuple[str, ...], NoDecode] = ()
    app_label: str | None = None
    cert_delivery: Literal["volume", "secret"] = "volume"
    stop_timeout: Duration | None = None
    start_timeout: Duration = 120.0
    http01_port: int = Field(80, ge=1, le=65535)
    http01_address: str = ""
    challenge: Literal["standalone", "webroot", "dns"] = "standalone"
    webroot_path: Path | None = None
    dns_plugin: str | None = None
    dns_credentials: Path | None = None
    dns_propagation: Duration | None = None
    reload_signal: str | None = None
    key_type: Literal["ecdsa", "rsa"] = "ecdsa"
    elliptic_curve: Literal["secp256r1", "secp384r1", "secp521r1"] = "secp256r1"
    rsa_key_size: Literal[2048, 3072, 4096] = 2048
    acme_profile: str | None = None
    check_interval: Duration = 12 * 3600.0
    check_jitter: Duration = 3600.0
    renew_before_expiry: Duration | None = None
    certbot_timeout: Duration = 900.0
    eab_kid: str | None = None
    eab_hmac_key: SecretStr | None = None
    eab_hmac_key_file: Path | None = None
    log_level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    config_dir: Path = Path("/etc/letsencrypt")
    work_dir: Path = Path("/var/lib/letsencrypt")
    logs_dir: Path = Path("/var/log/letsencrypt")
    ignore_lineages: Annotated[tuple[str, ...], NoDecode] = ()
    files_uid: int | None = Field(None, ge=0, validation_alias=AliasChoices("files_uid", "puid"))
    files_gid: int | None = Field(None, ge=0, validation_alias=AliasChoices("files_gid", "pgid"))
    files_perms: Annotated[int | None, NoDecode] = None
    combined_pem: bool = False
    verify: Annotated[tuple[Endpoint, ...], NoDecode] = ()
    verify_wait: Duration = 30.0
    metrics_port: int | None = Field(None, ge=1, le=65535)
    metrics_address: str = "127.0.0.1"
    webhook_url: SecretStr | None = None
    alert_urls: SecretStr | None = None
    alert_on_success: bool = False

    @field_validator("reload_signal")
    @classmethod
    def _signal(cls, raw: str | None) -> str | None:
        name = (raw or "").strip().upper()
        if not name:
            return None
        name = name if name.startswith("SIG") else f"SIG{name}"
        if name not in signal.Signals.__members__:
            raise ValueError(f"{raw!r} is not a signal name (example: SIGHUP)")
        return name

    @property
    def renew_before(self) -> timedelta | None:
        """RENEW_BEFORE_EXPIRY as a timedelta (None: certbot's lifetime rule)."""
        seconds = self.renew_before_expiry
        return None if seconds is None else timedelta(seconds=seconds)

    @property
    def webroot(self) -> Path:
        """Where CHALLENGE=webroot puts challenge files (the app serves them; on the volume)."""
        return self.webroot_path or self.config_dir / "webroot"

    @property
    def dns(self) -> DnsPlugin | None:
        """The DNS plugin's facts with CHALLENGE=dns, else None."""
        if self.challenge != "dns" or not self.dns_plugin:
            return None
        return DNS_PLUGINS.get(self.dns_plugin, OTHER_DNS_PLUGIN)

    @property
    def dns_authenticator(self) -> str | None:
        """certbot's name of the DNS plugin (`dns-rfc2136`) with CHALLENGE=dns, else None."""
        return f"dns-{self.dns_plugin}" if self.dns else None

    @field_validator("domains", mode="before")
    @classmethod
    def _domains(cls, raw: object) -> tuple[CertSpec, ...]:
        return raw if isinstance(raw, tuple) else parse_domains(str(raw))

    @field_validator("acme_server")
    @classmethod
    def _server(cls, raw: str) -> str:
        value = SERVER_ALIASES.get(raw.strip().lower(), raw.strip())
        if not value.startswith(("https://", "http://")):
            choices = ", ".join(SERVER_ALIASES)
            raise ValueError(f"{raw!r} is neither {choices} nor an ACME directory URL")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, raw: str | None) -> str | None:
        value = (raw or "").strip()
        if value and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value or None

    @field_validator("acme_ca_bundle", "eab_hmac_key_file", "dns_credentials")
    @classmethod
    def _readable_file(cls, path: Path | None, info: Any) -> Path | None:  # noqa: ANN401
        if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
            raise ValueError(f"{str(path)!r} is not a readable file")
        if path is not None and info.field_name == "dns_credentials":
            if why := others_may_read(path):
                raise ValueError(why)
            return path.absolute()  # as certbot saves it in the renewal conf
        return path

    @field_validator("dns_credentials", mode="before")
    @classmethod
    def _optional_path(cls, raw: object) -> object:
        return None if isinstance(raw, str) and not raw.strip() else raw

    @field_validator("dns_plugin")
    @classmethod
    def _plugin_name(cls, raw: str | None) -> str | None:
        """`rfc2136`, `dns-rfc2136` or `certbot-dns-rfc2136` -> `rfc2136`."""
        name = (raw or "").strip().lower().removeprefix("certbot-").removeprefix("dns-")
        return name or None

    @field_validator("app_containers", "app_services", mode="before")
    @classmethod
    def _containers(cls, raw: object, info: Any) -> tuple[str, ...]:  # noqa: ANN401
        names = _csv(raw)
        kind = "container" if info.field_name == "app_containers" else "service"
        for name in names:
            if not _CONTAINER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid {kind} name")
        return tuple(n.lstrip("/") for n in names)

    @field_validator("app_label")
    @classmethod
    def _label(cls, raw: str | None) -> str | None:
        if raw is not None and raw.strip() and not _LABEL_SELECTOR.match(raw.strip()):
            raise ValueError(f"{raw!r} is not a label selector (key or key=value)")
        return raw.strip() or None if raw is not None else None

    @field_validator(
        "stop_timeout",
        "start_timeout",
        "check_interval",
        "check_jitter",
        "renew_before_expiry",
        "certbot_timeout",
        "dns_propagation",
        mode="before",
    )
    @classmethod
    def _duration(cls, raw: object) -> float | None:
        return None if raw is None or raw == "" else parse_duration(raw)

    @field_validator("start_timeout", "check_interval", "certbot_timeout", "renew_before_expiry")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("must be greater than zero")
        return value

    @field_validator("rsa_key_size", mode="before")
    @classmethod
    def _int(cls, raw: object) -> object:
        return int(raw) if isinstance(raw, str) and raw.strip().isdigit() else raw

    @field_validator(
        "log_level", "log_format", "key_type", "elliptic_curve", "cert_delivery", mode="before"
    )
    @classmethod
    def _case(cls, raw: object, info: Any) -> object:  # noqa: ANN401
        if not isinstance(raw, str):
            return raw
        return raw.upper() if info.field_name == "log_level" else raw.lower()

    @field_validator("verify", mode="before")
    @classmethod
    def _verify(cls, raw: object) -> tuple[Endpoint, ...]:
        return parse_endpoints(raw)

    @field_validator("verify_wait", mode="before")
    @classmethod
    def _verify_wait(cls, raw: object) -> float:
        return parse_duration(raw)

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _optional_port(cls, raw: object) -> object:
        return None if isinstance(raw, str) and not raw.strip() else raw

    @field_validator("webhook_url", "alert_urls", mode="before")
    @classmethod
    def _urls(cls, raw: object, info: Any) -> object:  # noqa: ANN401
        """Only the form is checked here (never echoing the value: it may hold a token)."""
        text = raw.get_secret_value() if isinstance(raw, SecretStr) else str(raw or "")
        items = [u for u in re.split(r"[\s,]+", text.strip()) if u]
        if not items:
            return None
        if info.field_name == "webhook_url" and (
            len(items) > 1 or not re.match(r"^https?://[^/\s]+", items[0])
        ):
            raise ValueError("must be one http:// or https:// URL")
        if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S", items[0]):
            raise ValueError("must start with a URL (scheme://...)")
        return SecretStr(text.strip())

    @field_validator("ignore_lineages", mode="before")
    @classmethod
    def _lineage_names(cls, raw: object) -> tuple[str, ...]:
        names = _csv(raw)
        for name in names:
            if name != "*" and not _LINEAGE_NAME.match(name):
                raise ValueError(f"{name!r} is not a lineage name (renewal/NAME.conf) or *")
        return names

    @field_validator("files_uid", "files_gid", mode="before")
    @classmethod
    def _optional_id(cls, raw: object) -> object:
        return None if isinstance(raw, str) and not raw.strip() else raw

    @field_validator("files_perms", mode="before")
    @classmethod
    def _octal_mode(cls, raw: object) -> int | None:
        if raw is None or isinstance(raw, int):
            return raw
        text = str(raw).strip().lower().removeprefix("0o")
        if not text:
            return None
        if not re.fullmatch(r"[0-7]{3,4}", text) or int(text, 8) > 0o777:  # noqa: PLR2004
            raise ValueError(f"{raw!r} is not a file mode (octal, e.g. 640 or 0644)")
        mode = int(text, 8)
        if mode & 0o111:
            raise ValueError(f"{raw!r} makes certificate files executable")
        if mode & 0o022:
            raise ValueError(
                f"{raw!r} lets the group or others write certificate files: no write bit but "
                "the owner's (e.g. 640 or 644)"
            )
        if not mode & 0o400:
            raise ValueError(
                f"{raw!r} takes the read bit from the files' owner: it must read them "
                "(e.g. 600 or 644)"
            )
        return mode

    @model_validator(mode="after")
    def _ignored_not_listed(self) -> Settings:
        if both := {s.name for s in self.domains}.intersection(self.ignore_lineages):
            raise ValueError(f"IGNORE_LINEAGES: {min(both)!r} is listed in DOMAINS too")
        return self

    @model_validator(mode="after")
    def _names_per_certificate(self) -> Settings:
        limit = names_allowed(self.acme_profile)
        for spec in self.domains:
            if len(spec.domains) > limit:
                raise ValueError(
                    f"DOMAINS: certificate {spec.name} has {len(spec.domains)} names, more than "
                    f"the {limit} a certificate may hold{_PROFILE_NOTE if limit < 100 else ''}; "  # noqa: PLR2004
                    "split them into several certificates with ;"
                )
        return self

    @model_validator(mode="after")
    def _wildcards_need_dns(self) -> Settings:
        wild = [w for spec in self.domains for w in spec.wildcards]
        if wild and self.challenge != "dns":
            raise ValueError(
                f"DOMAINS: {wild[0]!r} is a wildcard: only CHALLENGE=dns (DNS-01) can obtain it, "
                f"HTTP-01 (CHALLENGE={self.challenge}) cannot"
            )
        return self

    @model_validator(mode="after")
    def _dns_challenge(self) -> Settings:
        if self.challenge != "dns":
            if self.dns_plugin:
                raise ValueError(f"DNS_PLUGIN: set CHALLENGE=dns to use it (not {self.challenge})")
            return self
        if not self.dns_plugin:
            raise ValueError(
                f"DNS_PLUGIN is required with CHALLENGE=dns (one of {', '.join(DNS_PLUGINS)})"
            )
        if why := dns_plugin_problem(self.dns_plugin, installed_plugins()):
            raise ValueError(f"DNS_PLUGIN: {why}")
        plugin = DNS_PLUGINS.get(self.dns_plugin, OTHER_DNS_PLUGIN)
        if plugin.credentials == "file" and self.dns_credentials is None:
            raise ValueError(
                f"DNS_CREDENTIALS is required with DNS_PLUGIN={self.dns_plugin}: the file of "
                f"credentials the plugin reads (README: DNS-01)"
            )
        if self.dns_propagation is not None and not plugin.propagation:
            raise ValueError(
                f"DNS_PROPAGATION: the {self.dns_plugin} plugin waits for the change itself and "
                "takes no propagation time"
            )
        return self

    @model_validator(mode="after")
    def _ports_apart(self) -> Settings:
        if self.metrics_port is not None and self.metrics_port == self.http01_port:
            raise ValueError("METRICS_PORT: must differ from HTTP01_PORT (the challenge port)")
        return self

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        if not self.app_containers and not self.app_services and not self.app_label:
            raise ValueError(
                "APP_CONTAINERS, APP_SERVICES or APP_LABEL: set at least one to name the app"
            )
        if self.cert_delivery == "secret" and not self.app_services and not self.app_label:
            raise ValueError(
                "CERT_DELIVERY=secret gives the certificates to Swarm services: name them with "
                "APP_SERVICES or APP_LABEL"
            )
        if self.eab_hmac_key_file is not None and self.eab_hmac_key is None:
            key = self.eab_hmac_key_file.read_text(encoding="utf-8").strip()
            object.__setattr__(self, "eab_hmac_key", SecretStr(key))
        if (self.eab_kid is None) != (self.eab_hmac_key is None):
            raise ValueError("EAB_KID and EAB_HMAC_KEY (or EAB_HMAC_KEY_FILE) go together")
        return self

    @property
    def acme_env(self) -> dict[str, str]:
        """Environment for certbot: trust ACME_CA_BUNDLE when one is given; route53 reads
        DNS_CREDENTIALS as AWS's shared credentials file."""
        env = {"REQUESTS_CA_BUNDLE": str(self.acme_ca_bundle)} if self.acme_ca_bundle else {}
        if self.dns and self.dns.credentials == "aws" and self.dns_credentials:
            env[AWS_CREDENTIALS_ENV] = str(self.dns_credentials)
        return env

    @property
    def state_dir(self) -> Path:
        """The sidecar's own files on the shared volume (state, lock, recovery record)."""
        return self.config_dir / "sidecar"


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


def load(env: dict[str, str] | None = None) -> Settings:
    """Read and validate the settings, or raise ConfigError with one clear line."""
    try:
        if env is None:
            return Settings()  # type: ignore[call-arg]
        return Settings.model_validate({k.lower(): v for k, v in env.items()})
    except ValidationError as error:
        raise ConfigError(describe(error)) from None
