"""The sidecar against Podman's Docker-compatible API (issue 14): rootful `podman system service`
started by the tests, Pebble, the app and the sidecar as Podman containers, DOCKER_HOST at it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import docker.errors
import pytest

from tests.e2e.harness import disk_serial, served_serial, wait_for
from tests.e2e.podman import PodmanService, PodmanStack

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

START_TIMED_OUT = "after start (START_TIMEOUT)"


@pytest.fixture(scope="session")
def podman(
    client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PodmanService]:
    """The Podman API as a child process, with the images Docker built (`client` builds them)."""
    service = PodmanService(tmp_path_factory.mktemp("podman"))
    try:
        try:
            service.start()
            service.load_images()
        except (AssertionError, OSError, docker.errors.DockerException) as error:
            pytest.fail(f"e2e tests need rootful Podman (tests/prepare.sh installs it): {error}")
        yield service
    finally:
        service.close()


@pytest.fixture
def stack(podman: PodmanService, tmp_path: Path) -> Iterator[PodmanStack]:
    world = PodmanStack(podman, tmp_path)
    yield world
    world.cleanup()


def issue_first(stack: PodmanStack, **env: str) -> tuple[int, str]:
    code, logs = stack.sidecar_once("renew", **env)
    assert code == 0, logs
    return disk_serial(stack.le_dir, stack.domain), logs


def test_first_issuance_through_podman_serves_the_cert_without_a_start_timeout(stack: PodmanStack):
    """No healthcheck (Podman: State.Health with an empty Status): the start returns at once."""
    stack.start_pebble()
    app = stack.start_app()
    before = stack.state(app)["StartedAt"]

    code, logs = stack.sidecar_once("renew")

    assert START_TIMED_OUT not in logs
    assert code == 0, logs
    serial = disk_serial(stack.le_dir, stack.domain)
    assert stack.state(app)["Running"]
    assert stack.state(app)["StartedAt"] != before, "the app was not stopped for the challenge"
    assert wait_for(
        "the app to serve the cert", lambda: served_serial(stack.https_port, stack.domain) == serial
    )


def test_forced_renewal_through_podman_stops_the_app_once_and_serves_the_new_serial(
    stack: PodmanStack,
):
    """renew --force: one stop, one start that does not time out, the new certificate served;
    APP_CONTAINERS picks the app by its exact name through Podman's name filter."""
    stack.start_pebble()
    app = stack.start_app()
    old, _ = issue_first(stack)
    wait_for("old cert served", lambda: served_serial(stack.https_port, stack.domain) == old)
    decoy = stack.create(f"{app.name}-old")

    code, logs = stack.sidecar_once("renew", "--force", APP_LABEL="", APP_CONTAINERS=app.name)

    assert START_TIMED_OUT not in logs
    assert code == 0, logs
    assert logs.count(f"stopping {app.name}") == 1, logs
    assert logs.count(f"starting {app.name}") == 1, logs
    assert decoy.name not in logs
    new = disk_serial(stack.le_dir, stack.domain)
    assert new != old
    assert stack.state(app)["Running"]
    assert wait_for("new cert served", lambda: served_serial(stack.https_port, stack.domain) == new)


def test_stop_through_podman_gives_the_app_its_grace_period(stack: PodmanStack):
    """Created through the compat API, the app has StopTimeout 0: a stop without `t` is a kill."""
    stack.start_pebble()
    # Takes a second to stop on SIGTERM, then exits 0: killed only when the grace period is 0.
    slow = "python3 /app/app.py & trap 'sleep 1; exit 0' TERM; wait"
    stack.start_app(init=False, command=["sh", "-c", slow])

    code, logs = stack.sidecar_once("renew")

    assert "ignored its stop signal" not in logs, logs
    assert code == 0, logs


def test_sidecar_carrying_the_app_label_on_podman_is_never_its_own_target(stack: PodmanStack):
    """Its own id found in Podman's mountinfo (.../overlay-containers/ID/userdata/...): exit 2."""
    stack.start_pebble()
    app = stack.start_app()
    before = stack.state(app)["StartedAt"]
    key, _, value = stack.app_label.partition("=")

    code, logs = stack.sidecar_once("renew", labels={key: value})

    assert "is the sidecar itself" in logs, logs
    assert code == 2, logs
    assert stack.state(app)["Running"]
    assert stack.state(app)["StartedAt"] == before, "the app must not be touched"
    assert not (stack.le_dir / "live").exists()


def test_port_published_by_another_podman_container_names_that_container(stack: PodmanStack):
    """Another container publishes the challenge port: the error names it, the app runs again."""
    stack.start_pebble()
    app = stack.start_app(publish_http=False)
    blocker = stack.blocker(stack.http_port)

    code, logs = stack.sidecar_once("renew")

    assert code == 1, logs
    assert f"port {stack.http_port} is still in use" in logs
    assert f"container {blocker.name} publishes it" in logs, logs
    assert START_TIMED_OUT not in logs
    assert stack.state(app)["Running"]


def test_reload_signal_through_podman_loads_the_new_cert_without_a_stop(stack: PodmanStack):
    """CHALLENGE=webroot + RELOAD_SIGNAL=SIGHUP: the app is never stopped and serves the renewal."""
    stack.start_pebble()
    app = stack.start_app(env={"ACME_WEBROOT": "/etc/letsencrypt/webroot"})
    started = stack.state(app)["StartedAt"]
    coop = {"CHALLENGE": "webroot", "RELOAD_SIGNAL": "SIGHUP"}
    first, _ = issue_first(stack, **coop)
    wait_for("first cert served", lambda: served_serial(stack.https_port, stack.domain) == first)

    code, logs = stack.sidecar_once("renew", "--force", **coop)

    assert code == 0, logs
    second = disk_serial(stack.le_dir, stack.domain)
    assert second != first
    assert wait_for(
        "the new certificate served without a restart",
        lambda: served_serial(stack.https_port, stack.domain) == second,
    )
    assert stack.state(app)["StartedAt"] == started, "a cooperating app must never be stopped"
    assert f"sent SIGHUP to {app.name}" in logs
    assert "stopping" not in logs


def test_app_healthcheck_that_podman_never_runs_is_named_when_the_start_wait_ends(
    stack: PodmanStack,
):
    """Without systemd Podman never runs a HEALTHCHECK: the error must say so, not just time out."""
    stack.start_pebble()
    every_second = {"test": ["CMD", "true"], "interval": 1_000_000_000, "retries": 1}
    app = stack.start_app(healthcheck=every_second)

    _, logs = stack.sidecar_once("renew", START_TIMEOUT="5s")

    errors = [line for line in logs.splitlines() if "healthy" in line or "healthcheck" in line]
    assert any("systemd" in line for line in errors), logs
    assert stack.state(app)["Running"], logs
