"""Logging set up once, in the entry point: loguru to stderr, stdlib loggers routed into it."""

from __future__ import annotations

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


def _extra_text(record: Record) -> None:
    fields = {k: v for k, v in record["extra"].items() if k not in ("source", "extra_text")}
    record["extra"]["extra_text"] = "".join(
        f" [{k}={v}]" for k, v in fields.items() if k == "certificate"
    )


def relog(line: str) -> bool:
    """Log a line a child sidecar wrote through certbot at its own level; False if it is not one."""
    head, _, rest = line.strip().partition(CHILD_PREFIX)
    if head or not rest:
        return False
    level, _, message = rest.partition(" ")
    try:
        logger.log(level, "{}", message)
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
    logger.configure(patcher=_extra_text)
    if os.environ.get(CHILD_ENV):
        logger.add(
            sys.stderr,
            level=level,
            format=CHILD_PREFIX + "{level} {message}",
            colorize=False,
            diagnose=False,
        )
        return  # inside certbot, its own stdlib logging stays as certbot set it up
    if fmt == "json":
        logger.add(sys.stderr, level=level, serialize=True, diagnose=False)
    else:
        logger.add(sys.stderr, level=level, format=TEXT, colorize=False, diagnose=False)
    logging.basicConfig(handlers=[_Intercept()], level=logging.WARNING, force=True)
