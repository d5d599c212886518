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


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict[str, str]:
    """A valid environment rooted in tmp_path; tests change or drop variables in it."""
    values = {
        "DOMAINS": "example.com",
        "ACME_SERVER": "https://acme.test/directory",
        "APP_CONTAINERS": "web",
        "CONFIG_DIR": str(tmp_path / "le"),
        "WORK_DIR": str(tmp_path / "work"),
        "LOGS_DIR": str(tmp_path / "logs"),
        "DOCKER_HOST": "tcp://127.0.0.1:9",  # nothing listens: no real engine is touched
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values
