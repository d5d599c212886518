from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from sidecar import shutdown

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def fresh_stop_request(monkeypatch: pytest.MonkeyPatch) -> Iterator[shutdown.StopRequest]:
    """Each test has its own process-wide stop request: a stop never leaks into the next test,
    nor does its pipe (past 1024 open descriptors `select` fails)."""
    request = shutdown.StopRequest()
    monkeypatch.setattr(shutdown, "REQUEST", request)
    yield request
    os.close(request._read)
    os.close(request._write)
