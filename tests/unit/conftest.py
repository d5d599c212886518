from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

import pytest

from sidecar import shutdown

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def fresh_stop_request(monkeypatch: pytest.MonkeyPatch) -> Iterator[shutdown.StopRequest]:
    """Each test has its own process-wide stop request: a stop never leaks into the next test.
    Its pipe is closed afterwards (select() takes no descriptor above 1023)."""
    request = shutdown.StopRequest()
    monkeypatch.setattr(shutdown, "REQUEST", request)
    yield request
    for fd in (request._read, request._write):
        with contextlib.suppress(OSError):
            os.close(fd)
