"""The rules of the settings' fields, each a reusable `Annotated` type: what a duration, a port,
an octal mode, a list of names or a URL carrying a token looks like. Pure: no field reads a file
or asks the system (the loader does that, once, after the fields are valid)."""

from __future__ import annotations

import ipaddress
import re
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr
from pydantic_settings import NoDecode

if TYPE_CHECKING:
    from collections.abc import Callable

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_CONTAINER_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_LABEL_SELECTOR = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_./-]*(=.*)?$")
_LINEAGE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S")
_HTTP_URL = re.compile(r"^https?://[^/\s]+")
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def parse_duration(raw: object) -> float:
    """`90`, `90s`, `30m`, `12h`, `7d` -> seconds."""
    if isinstance(raw, int | float):
        return float(raw)
    match = _DURATION.match(str(raw).lower())
    if not match:
        raise ValueError(f"{raw!r} is not a duration (examples: 90s, 30m, 12h, 7d)")
    return float(match[1]) * _UNIT_SECONDS[match[2]]


def blank_is_none(raw: object) -> object:
    """An empty (or blank) variable is an unset one."""
    return None if raw is None or (isinstance(raw, str) and not raw.strip()) else raw


def _optional_duration(raw: object) -> float | None:
    """An empty variable is unset (a required duration then says it wants a number)."""
    return None if raw is None or raw == "" else parse_duration(raw)


def _positive(value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise ValueError("must be greater than zero")
    return value


def csv(raw: object) -> tuple[str, ...]:
    if isinstance(raw, list | tuple):
        return tuple(str(x) for x in raw)
    return tuple(x.strip() for x in str(raw).split(",") if x.strip())


def _names_of(kind: str) -> Callable[[object], tuple[str, ...]]:
    """Comma-separated container (or service) names; a leading `/` (Docker's form) dropped."""

    def names(raw: object) -> tuple[str, ...]:
        listed = csv(raw)
        for name in listed:
            if not _CONTAINER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid {kind} name")
        return tuple(n.lstrip("/") for n in listed)

    return names


def _lineage_names(raw: object) -> tuple[str, ...]:
    names = csv(raw)
    for name in names:
        if name != "*" and not _LINEAGE_NAME.match(name):
            raise ValueError(f"{name!r} is not a lineage name (renewal/NAME.conf) or *")
    return names


def _label(raw: str | None) -> str | None:
    if raw is not None and raw.strip() and not _LABEL_SELECTOR.match(raw.strip()):
        raise ValueError(f"{raw!r} is not a label selector (key or key=value)")
    return raw.strip() or None if raw is not None else None


def _email(raw: str | None) -> str | None:
    value = (raw or "").strip()
    if value and not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value or None


def _signal(raw: str | None) -> str | None:
    name = (raw or "").strip().upper()
    if not name:
        return None
    name = name if name.startswith("SIG") else f"SIG{name}"
    if name not in signal.Signals.__members__:
        raise ValueError(f"{raw!r} is not a signal name (example: SIGHUP)")
    return name


def _plugin_name(raw: str | None) -> str | None:
    """`rfc2136`, `dns-rfc2136` or `certbot-dns-rfc2136` -> `rfc2136`."""
    name = (raw or "").strip().lower().removeprefix("certbot-").removeprefix("dns-")
    return name or None


def _octal_mode(raw: object) -> int | None:
    """FILES_PERMS: octal, readable by the owner, never executable, written by the owner only."""
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
            f"{raw!r} takes the read bit from the files' owner: it must read them (e.g. 600 or 644)"
        )
    return mode


def _urls(*, webhook: bool) -> Callable[[object], SecretStr | None]:
    """One URL (a webhook) or several (apprise's): only their form is checked, never echoing
    the value (it may hold a token)."""

    def urls(raw: object) -> SecretStr | None:
        text = raw.get_secret_value() if isinstance(raw, SecretStr) else str(raw or "")
        items = [u for u in re.split(r"[\s,]+", text.strip()) if u]
        if not items:
            return None
        if webhook and (len(items) > 1 or not _HTTP_URL.match(items[0])):
            raise ValueError("must be one http:// or https:// URL")
        if not _URL.match(items[0]):
            raise ValueError("must start with a URL (scheme://...)")
        return SecretStr(text.strip())

    return urls


def _identities(raw: object) -> tuple[str, ...]:
    """CAA_IDENTITIES: comma-separated CA domains (`letsencrypt.org`)."""
    names = tuple(n.lower() for n in csv(raw))
    for name in names:
        if not _DOMAIN.match(name):
            raise ValueError(f"{name!r} is not a domain name (a CA's CAA identity)")
    return names


def _resolvers(raw: object) -> tuple[tuple[str, int], ...]:
    """DNS_RESOLVER: comma-separated `ADDRESS`, `ADDRESS:PORT` or `[IPV6]:PORT`."""
    found = []
    for item in csv(raw):
        host, port = item, "53"
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":") or "53"
        elif item.count(":") == 1:
            host, port = item.split(":")
        try:
            address = str(ipaddress.ip_address(host))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address (with an optional :PORT)") from None
        if not port.isdigit() or not 1 <= int(port) <= 65535:  # noqa: PLR2004
            raise ValueError(f"{item!r} has no valid port")
        found.append((address, int(port)))
    return tuple(found)


def _lower(raw: object) -> object:
    return raw.lower() if isinstance(raw, str) else raw


def _upper(raw: object) -> object:
    return raw.upper() if isinstance(raw, str) else raw


def _int(raw: object) -> object:
    return int(raw) if isinstance(raw, str) and raw.strip().isdigit() else raw


Duration = Annotated[float, NoDecode, BeforeValidator(_optional_duration)]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
OptionalDuration = Annotated[float | None, NoDecode, BeforeValidator(_optional_duration)]
OptionalPositiveDuration = Annotated[OptionalDuration, AfterValidator(_positive)]
Wait = Annotated[float, NoDecode, BeforeValidator(parse_duration)]  # never empty
Port = Annotated[int, Field(ge=1, le=65535)]
OptionalPort = Annotated[Port | None, BeforeValidator(blank_is_none)]
OptionalId = Annotated[Annotated[int, Field(ge=0)] | None, BeforeValidator(blank_is_none)]
OptionalFile = Annotated[Path | None, BeforeValidator(blank_is_none)]
OctalMode = Annotated[int | None, NoDecode, BeforeValidator(_octal_mode)]
ContainerNames = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_names_of("container"))]
ServiceNames = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_names_of("service"))]
LineageNames = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_lineage_names)]
LabelSelector = Annotated[str | None, AfterValidator(_label)]
Email = Annotated[str | None, AfterValidator(_email)]
SignalName = Annotated[str | None, AfterValidator(_signal)]
PluginName = Annotated[str | None, AfterValidator(_plugin_name)]
WebhookUrl = Annotated[SecretStr | None, BeforeValidator(_urls(webhook=True))]
AlertUrls = Annotated[SecretStr | None, BeforeValidator(_urls(webhook=False))]
CaaIdentities = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_identities)]
Resolvers = Annotated[tuple[tuple[str, int], ...], NoDecode, BeforeValidator(_resolvers)]
Lower = BeforeValidator(_lower)
Upper = BeforeValidator(_upper)
IntText = BeforeValidator(_int)
