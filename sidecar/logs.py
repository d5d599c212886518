"""Logging set up once, in the entry point: loguru to stderr, stdlib loggers routed into it."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import sys
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

CHILD_ENV = "SIDECAR_IN_CERTBOT"
CHILD_PREFIX = "@sidecar "
TEXT = "{time:YYYY-MM-DD HH:mm:ss.SSS!UTC}Z {level: <7} {message}{extra[extra_text]}"
FIELDS = ("event", "certificate", "container", "duration", "outcome")  # stable, documented


_TOKENISH_MIN = 6
_LONG = 16
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"]+")
_SECRET_OPTION = re.compile(
    r"((?:(?:bearer|basic)\s+|(?:-u|--user)[= ]\s*[^:\s'\"]+:"
    r"|[\w-]*(?:token|secret|passw(?:or)?d|api[_-]?key|auth)[\w-]*"
    r"\s*[=: ]\s*(?:(?:bearer|basic)\s+)?))(?!\*\*\*)([^\s'\"]+)",
    re.IGNORECASE,
)


class Secrets:
    """Strings no log line shows (alert URLs and their tokens); the entry point makes one and
    hands it to `setup` and to whatever learns a secret (the alert notifier)."""

    def __init__(self) -> None:
        self._items: list[str] = []

    def hide(self, *secrets: str) -> None:
        """Never show these strings in any log line from now on."""
        self._items.extend(x for x in secrets if x and x not in self._items)
        self._items.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._items:
            text = text.replace(secret, "***")
        return text


def secret_parts(url: str) -> set[str]:
    """The URL and every part of it that may be a token (password, user, path, query values)."""
    parts = {url}
    try:
        split = urlsplit(url)
        host = split.hostname or ""
        candidates = [split.password or "", split.username or ""]
        if split.scheme not in ("http", "https"):
            candidates.append(host)  # apprise puts tokens where a host would be (tgram://TOKEN)
        candidates += [unquote(s) for s in split.path.split("/")]
        candidates += [v for _, v in parse_qsl(split.query)]
    except ValueError:
        return parts
    for item in candidates:
        if _tokenish(item):
            parts.add(item)
    return parts


def _tokenish(text: str) -> bool:
    if len(text) < _TOKENISH_MIN:
        return False  # too short to be a secret on its own
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return any(c.isdigit() for c in text) or len(text) >= _LONG or "-" in text
    return False  # an IP address


def mask_command(command: str) -> str:
    """A command line (a saved certbot hook) as it may be shown: the token-like parts of every
    URL in it, and the values of token, secret, password and key options, replaced by ***."""
    for url in _URL.findall(command):
        for part in sorted(secret_parts(url) - {url}, key=len, reverse=True):
            command = command.replace(part, "***")
    return _SECRET_OPTION.sub(lambda m: m[1] + "***", command)


def _extra_text(secrets: Secrets, fmt: str, record: Record) -> None:
    record["message"] = secrets.redact(record["message"])
    if fmt == "json":
        return  # the serializer shows `extra` as it is
    carried = {k: record["extra"][k] for k in FIELDS if k in record["extra"]}
    record["extra"]["child_extra"] = json.dumps(carried, separators=(",", ":"))
    fields = {
        k: v for k, v in record["extra"].items() if k not in ("source", "extra_text", "child_extra")
    }
    record["extra"]["extra_text"] = "".join(
        f" [{k}={v}]" for k, v in fields.items() if k == "certificate"
    )


def relog(line: str) -> bool:
    """Log a line a child sidecar wrote through certbot at its own level; False if it is not one."""
    head, _, rest = line.strip().partition(CHILD_PREFIX)
    if head or not rest:
        return False
    level, _, message = rest.partition(" ")
    fields: dict[str, object] = {}
    if message.startswith("{"):
        try:
            decoded, end = json.JSONDecoder().raw_decode(message)
            message = message[end:].removeprefix(" ")
        except ValueError:
            decoded = {}
        fields = decoded if isinstance(decoded, dict) else {}
    try:
        logger.bind(**{k: v for k, v in fields.items() if k in FIELDS}).log(level, "{}", message)
    except ValueError:
        return False
    return True


class _Intercept(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(exception=record.exc_info).log(level, "{}: {}", record.name, record.getMessage())


def setup(level: str = "INFO", fmt: str = "text", secrets: Secrets | None = None) -> Secrets:
    """Log to stderr; inside certbot (plugin, hooks) in a form the parent sidecar re-logs.
    `secrets` (a new, empty one when None) are masked in every line; returned for the caller."""
    logger.remove()
    secrets = Secrets() if secrets is None else secrets
    shown = "text" if os.environ.get(CHILD_ENV) else fmt
    logger.configure(patcher=partial(_extra_text, secrets, shown))
    if os.environ.get(CHILD_ENV):
        logger.add(
            sys.stderr,
            level=level,
            format=CHILD_PREFIX + "{level} {extra[child_extra]} {message}",
            colorize=False,
            diagnose=False,
        )
        return secrets  # inside certbot, its own stdlib logging stays as certbot set it up
    if fmt == "json":
        logger.add(sys.stderr, level=level, serialize=True, diagnose=False)
    else:
        logger.add(sys.stderr, level=level, format=TEXT, colorize=False, diagnose=False)
    logging.basicConfig(handlers=[_Intercept()], level=logging.WARNING, force=True)
    return secrets
