"""Logging set up once, in the entry point: loguru to stderr, stdlib loggers routed into it."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

CHILD_ENV = "SIDECAR_IN_CERTBOT"
CHILD_PREFIX = "@sidecar "
TEXT = "{time:YYYY-MM-DD HH:mm:ss.SSS!UTC}Z {level: <7} {message}{extra[extra_text]}"
FIELDS = ("event", "certificate", "container", "duration", "outcome")  # stable, documented


_SECRETS: list[str] = []
_MODE = {"format": "text"}


def hide(*secrets: str) -> None:
    """Never show these strings (alert URLs and their tokens) in any log line from now on."""
    _SECRETS.extend(x for x in secrets if x and x not in _SECRETS)
    _SECRETS.sort(key=len, reverse=True)


def redact(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


def _extra_text(record: Record) -> None:
    if _SECRETS:
        record["message"] = redact(record["message"])
    if _MODE["format"] == "json":
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
            fields, end = json.JSONDecoder().raw_decode(message)
            message = message[end:].removeprefix(" ")
        except ValueError:
            fields = {}
        if not isinstance(fields, dict):
            fields = {}
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


def setup(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr; inside certbot (plugin, hooks) in a form the parent sidecar re-logs."""
    logger.remove()
    _MODE["format"] = "text" if os.environ.get(CHILD_ENV) else fmt
    logger.configure(patcher=_extra_text)
    if os.environ.get(CHILD_ENV):
        logger.add(
            sys.stderr,
            level=level,
            format=CHILD_PREFIX + "{level} {extra[child_extra]} {message}",
            colorize=False,
            diagnose=False,
        )
        return  # inside certbot, its own stdlib logging stays as certbot set it up
    if fmt == "json":
        logger.add(sys.stderr, level=level, serialize=True, diagnose=False)
    else:
        logger.add(sys.stderr, level=level, format=TEXT, colorize=False, diagnose=False)
    logging.basicConfig(handlers=[_Intercept()], level=logging.WARNING, force=True)
