"""The Docker socket's guard (`sidecar guard`) in front of a real sidecar on the real engine: the
sidecar's own work goes through (a container stopped and started for the challenge, a service
scaled with its secrets), and every call it must not make, tried from inside the sidecar's
container with the Docker SDK, is refused with 403 naming the rule, and logged by the guard."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.harness import APP_IMAGE, disk_serial, served_serial, wait_for
from tests.e2e.swarm import referenced, replicas, running_tasks

if TYPE_CHECKING:
    from docker.models.containers import Container

    from tests.e2e.harness import Stack
    from tests.e2e.swarm import SwarmStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

# Run with `python3 -c` inside the sidecar's container: each attempt's HTTP status and message.
ATTEMPTS = r"""
import json, sys
import docker

api = docker.from_env().api
kind, args = sys.argv[1], sys.argv[2:]
done = {}

def attempt(name, call):
    try:
        call()
        done[name] = [200, ""]
    except docker.errors.APIError as error:
        done[name] = [error.status_code, error.explanation]

def update_image(service):
    found = api.inspect_service(service)
    spec = found["Spec"]
    spec["TaskTemplate"]["ContainerSpec"]["Image"] = "busybox:latest"
    url = api._url("/services/{0}/update", service)
    api._result(api._post_json(url, data=spec, params={"version": found["Version"]["Index"]}))

if kind == "containers":
    other, app = args
    attempt("inspect another container", lambda: api.inspect_container(other))
    attempt("stop another container", lambda: api.stop(other, timeout=1))
    attempt("create a container", lambda: api.create_container("cbs-none", ["true"]))
    attempt("exec in the app", lambda: api.exec_create(app, ["true"]))
else:
    (service,) = args
    attempt("update the image", lambda: update_image(service))
    attempt("a secret without the labels", lambda: api.create_secret("cbs-unlabelled", b"x"))
print(json.dumps(done))
"""


def attempts(sidecar: Container, *args: str) -> dict[str, list[Any]]:
    """The forbidden calls made inside the sidecar's container (its DOCKER_HOST, its SDK)."""
    code, out = sidecar.exec_run(["python3", "-c", ATTEMPTS, *args])
    assert code == 0, out
    return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def guard_log(stack: Stack) -> str:
    (guard,) = stack.guards
    return guard.logs().decode(errors="replace")


def refused(result: list[Any], rule: str) -> bool:
    status, message = result
    return status == 403 and message.startswith("certbot-sidecar guard: ") and rule in message


def test_the_sidecar_renews_through_the_guard_and_cannot_touch_other_containers(stack: Stack):
    """The app stopped and started for the challenge through the guard; from inside the
    sidecar another container's stop, a container's creation and an exec are refused (403, the
    rule named, one log line each); reads of any container pass; the other container runs."""
    stack.refusing = True
    stack.start_pebble()
    app = stack.start_app()
    other = stack._run(APP_IMAGE, "other", environment={"CERT_NAME": stack.domain})
    sidecar = stack.sidecar(guard=True, VERIFY=f"127.0.0.1:{stack.https_port}")

    def served() -> bool:
        try:
            return served_serial(stack.https_port, stack.domain) == disk_serial(
                stack.le_dir, stack.domain
            )
        except (OSError, FileNotFoundError):
            return False

    wait_for("the certificate served", served, timeout=180)
    wait_for("the cycle's end", lambda: b"cycle done" in sidecar.logs(), timeout=60)
    logs = sidecar.logs().decode(errors="replace")
    assert f"stopped {app.name}" in logs
    assert f"started {app.name}" in logs
    assert "refused" not in guard_log(stack)  # the sidecar's own calls all pass

    done = attempts(sidecar, "containers", other.id, app.id)
    assert done["inspect another container"][0] == 200
    assert refused(done["stop another container"], f"stop of container {other.name}")
    assert refused(done["create a container"], "POST /containers/create is not a call")
    assert refused(done["exec in the app"], "/exec is not a call")
    assert stack.state(other)["Running"]
    assert guard_log(stack).count("refused ") == 3


def test_a_swarm_service_gets_its_secrets_through_the_guard_and_nothing_else(
    swarm_stack: SwarmStack,
):
    """A service scaled to 0 and back with its certificate's secrets through the guard; from
    inside the sidecar an update changing the service's image and a secret without the
    sidecar's labels are refused (403, the rule named, logged)."""
    stack = swarm_stack
    stack.refusing = True
    stack.start_pebble()
    app = stack.app_service(secrets=[])
    stack.wait_running(app, 1)
    sidecar = stack.sidecar(
        guard=True,
        CERT_DELIVERY="secret",
        VERIFY=f"127.0.0.1:{stack.https_port}",
        APP_SERVICES=stack.api.inspect_service(app)["Spec"]["Name"],
        APP_LABEL="",
    )
    wait_for("the secrets on the service", lambda: len(referenced(stack, app)) == 2, timeout=240)
    wait_for("the service back at 1", lambda: len(running_tasks(stack.api, app)) == 1)
    wait_for("the cycle's end", lambda: b"cycle done" in sidecar.logs(), timeout=120)
    logs = sidecar.logs().decode(errors="replace")
    assert "(scaled 1 to 0)" in logs
    assert "(scaled to 1)" in logs
    assert "refused" not in guard_log(stack)

    image = stack.api.inspect_service(app)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    done = attempts(sidecar, "services", app)
    assert refused(done["update the image"], "changes more than the replica count")
    assert refused(done["a secret without the labels"], "created only with the labels")
    after = stack.api.inspect_service(app)["Spec"]
    assert after["TaskTemplate"]["ContainerSpec"]["Image"] == image
    assert replicas(stack, app) == 1
    assert not stack.api.secrets(filters={"name": "cbs-unlabelled"})
    assert guard_log(stack).count("refused ") == 2
