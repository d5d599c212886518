from __future__ import annotations

import pytest

from sidecar import shutdown


@pytest.fixture(autouse=True)
def fresh_stop_request(monkeypatch: pytest.MonkeyPatch) -> shutdown.StopRequest:
    """Each test has its own process-wide stop request: a stop never leaks into the next test."""
    request = shutdown.StopRequest()
    monkeypatch.setattr(shutdown, "REQUEST", request)
    return request
