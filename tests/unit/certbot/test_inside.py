"""What runs inside certbot's process: stop and start through the recovery record."""

from __future__ import annotations

import pytest

from sidecar.certbot import inside
from sidecar.errors import DockerError
from sidecar.targets.outage import read_record
from tests.unit.helpers import FakeControl, container, install_cert, make_pem, make_settings


@pytest.fixture
def world(tmp_path):
    """Settings and the app's containers as certbot's process would make them (once)."""
    config = make_settings(tmp_path / "le", FILES_GID="0", FILES_PERMS="640")
    control = FakeControl(container("web"), container("worker", running=False))
    return config, control, inside.InCertbot(config.tree, control)


def test_stop_records_then_stops_only_the_running_targets(world):
    """The record names what was stopped before anything is stopped; a stopped worker stays."""
    config, control, context = world
    assert inside.stop_app(context, "the challenge") == ["web"]
    assert [e.name for e in read_record(config.state_dir)] == ["web"]
    assert control.calls == [("stop", "web")]


def test_start_makes_the_new_files_readable_before_the_app_starts(world):
    """FILES_*: the modes are applied first, then what the record names is started."""
    config, control, context = world
    install_cert(config.config_dir, "example.com", make_pem())
    key = next((config.config_dir / "archive" / "example.com").glob("privkey*.pem"))
    key.chmod(0o600)
    modes: list[int] = []
    control.observe = lambda _op, _t: modes.append(key.stat().st_mode & 0o777)
    inside.stop_app(context, "the challenge")
    modes.clear()

    assert inside.start_app(context) == ["web"]

    assert modes == [0o640], "the key's mode was set before the start"
    assert read_record(config.state_dir) == []


def test_the_port_message_names_the_container_that_publishes_it(monkeypatch):
    """Docker knows who publishes the port: the message names that container."""
    monkeypatch.setattr(inside, "publishers", lambda _port: ["container cbs-other"])
    message = inside.port_busy_message(80)
    assert "container cbs-other publishes it" in message
    assert "APP_CONTAINERS/APP_LABEL" in message


def test_the_port_message_points_at_the_host_when_docker_cannot_tell(monkeypatch):
    """No container publishes it, or Docker cannot be asked: another process holds it."""

    def refuse(port: int) -> list[str]:
        raise DockerError("no answer")

    monkeypatch.setattr(inside, "publishers", refuse)
    assert "another process on the host holds it" in inside.port_busy_message(8080)


def test_the_port_message_names_a_swarm_service_and_how_to_free_the_port(monkeypatch):
    """A task of a service publishes it: add the service; a global one cannot be scaled to 0."""
    holder = "service shop_edge (task shop_edge.1.x8f2)"
    monkeypatch.setattr(inside, "publishers", lambda _port: [holder])
    message = inside.port_busy_message(80)
    assert f"{holder} publishes it" in message
    assert "add that service to APP_SERVICES/APP_LABEL" in message
    assert "a global service cannot be scaled to 0" in message
