"""The guard's settings: its socket, the engine's, and the targets as the sidecar reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.errors import ConfigError
from sidecar.guard.config import read


def test_defaults_and_the_targets_are_read_like_the_sidecars():
    """Comma lists, Docker's leading slash dropped, blank entries ignored."""
    spec = read({"APP_CONTAINERS": " /web, api ,", "APP_LABEL": " app=shop "})
    assert spec.listen == Path("/run/guard/docker.sock")
    assert spec.engine == Path("/var/run/docker.sock")
    assert spec.targets.containers == ("web", "api")
    assert spec.targets.label == "app=shop"
    assert spec.max_connections == 32


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({}, "APP_CONTAINERS, APP_SERVICES or APP_LABEL"),
        ({"APP_CONTAINERS": "web app"}, "APP_CONTAINERS"),
        ({"APP_SERVICES": "a,-b"}, "APP_SERVICES"),
        ({"APP_LABEL": "=x"}, "APP_LABEL"),
        ({"APP_LABEL": "a", "DOCKER_HOST": "tcp://127.0.0.1:2375"}, "DOCKER_HOST"),
        ({"APP_LABEL": "a", "GUARD_MAX_CONNECTIONS": "0"}, "GUARD_MAX_CONNECTIONS"),
    ],
)
def test_bad_settings_name_the_variable(environ, variable):
    """One line naming the variable and the rule."""
    with pytest.raises(ConfigError, match=variable):
        read(environ)
