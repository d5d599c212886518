from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from sidecar import shutdown

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def fresh_stop_request(monkeypatch: pytest.MonkeyPatch) -> Iterator[shutdown.StopRequest]:
    """Each test has its own process-wide stop request: a stop never leaks into the next test,
    and its pipe is closed after it."""
    request = shutdown.StopRequest()
    monkeypatch.setattr(shutdown, "REQUEST", request)
    yield request
    request.close()
