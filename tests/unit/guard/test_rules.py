"""The guard's rules: exactly the sidecar's calls, changes only on its targets and secrets."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from sidecar.guard.rules import Call, beyond, decide
from sidecar.targets.marks import (
    LINEAGE_LABEL,
    PART_LABEL,
    SERIAL_LABEL,
    SERVICE_ID,
    STOPPED_AT,
    TASK_ID,
)
from sidecar.targets.spec import TargetsSpec

LABEL = "certbot-sidecar.app=shop"
SPEC = TargetsSpec(containers=("web",), services=("shop_api",), label=LABEL)
LABELS = {"certbot-sidecar.app": "shop"}
OURS = {LINEAGE_LABEL: "example.com", PART_LABEL: "fullchain", SERIAL_LABEL: "ab"}


def container(name: str, **labels: str) -> dict[str, Any]:
    return {"Id": f"id-{name}", "Name": f"/{name}", "Config": {"Labels": labels}}


def service_spec(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "Name": name,
        "Labels": labels or {},
        "Mode": {"Replicated": {"Replicas": 2}},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "shop:1",
                "Secrets": [{"SecretID": "app-secret", "SecretName": "db", "File": {"Name": "db"}}],
            },
            "ForceUpdate": 0,
        },
    }


class FakeEngine:
    """The engine's objects by id or name."""

    def __init__(self) -> None:
        self.containers = {
            "web": container("web"),
            "db": container("db"),
            "labelled": container("labelled", **{"certbot-sidecar.app": "shop"}),
            "other-label": container("other-label", **{"certbot-sidecar.app": "blog"}),
            "oneoff": container("oneoff", **{"com.docker.compose.oneoff": "True"}),
            "api-task": container("api-task", **{TASK_ID: "t1", SERVICE_ID: "sid-api"}),
            "other-task": container("other-task", **{TASK_ID: "t2", SERVICE_ID: "sid-other"}),
        }
        self.services = {
            "sid-api": {"ID": "sid-api", "Spec": service_spec("shop_api")},
            "sid-other": {"ID": "sid-other", "Spec": service_spec("other")},
            "sid-lab": {"ID": "sid-lab", "Spec": service_spec("lab", LABELS)},
        }
        self.secrets = {
            "ours-1": {"ID": "ours-1", "Spec": {"Name": "example.com_fullchain", "Labels": OURS}},
            "app-secret": {"ID": "app-secret", "Spec": {"Name": "db", "Labels": {}}},
        }

    def container(self, ident: str) -> dict[str, Any] | None:
        return self.containers.get(ident)

    def service(self, ident: str) -> dict[str, Any] | None:
        return self.services.get(ident)

    def secret(self, ident: str) -> dict[str, Any] | None:
        return self.secrets.get(ident)


ENGINE = FakeEngine()


def verdict(method: str, target: str, body: object = None, spec: TargetsSpec = SPEC) -> str | None:
    data = b"" if body is None else json.dumps(body).encode()
    return decide(Call(method, target, data), spec, ENGINE)


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/_ping"),
        ("HEAD", "/_ping"),
        ("GET", "/version"),
        ("GET", "/v1.41/containers/json?all=1&filters=%7B%7D"),
        ("GET", "/v1.41/containers/db/json"),
        ("GET", "/v1.41/services?filters=x"),
        ("GET", "/v1.41/services/sid-other"),
        ("GET", "/v1.41/tasks"),
        ("GET", "/v1.41/secrets"),
    ],
)
def test_reads_the_sidecar_makes_are_let_through_for_any_object(method, target):
    """The listing and inspecting calls of README "Privileges" pass, whatever they read."""
    assert verdict(method, target) is None


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("POST", "/v1.41/containers/create"),
        ("POST", "/v1.41/containers/web/exec"),
        ("POST", "/v1.41/exec/abc/start"),
        ("DELETE", "/v1.41/containers/web"),
        ("GET", "/v1.41/containers/web/logs"),
        ("POST", "/v1.41/containers/web/attach"),
        ("GET", "/v1.41/info"),
        ("POST", "/v1.41/images/create"),
        ("POST", "/v1.41/services/create"),
        ("GET", "/v1.41/secrets/ours-1"),
        ("POST", "/v1.41/containers/web/../db/stop"),
        ("POST", "/v1.41/containers/%2e%2e/stop"),
        ("PUT", "/v1.41/containers/web/archive"),
    ],
)
def test_calls_the_sidecar_never_makes_are_refused_by_name(method, target):
    """Anything not in the list is refused with the rule: not a call the sidecar makes."""
    assert "not a call the sidecar makes" in str(verdict(method, target))


@pytest.mark.parametrize("name", ["web", "labelled", "id-web"[3:]])
@pytest.mark.parametrize("action", ["start", "stop", "restart", "kill"])
def test_selected_containers_may_be_stopped_started_restarted_and_signalled(name, action):
    """APP_CONTAINERS by name, APP_LABEL by label: the four actions pass."""
    assert verdict("POST", f"/v1.41/containers/{name}/{action}?t=10") is None


@pytest.mark.parametrize("name", ["db", "other-label", "oneoff", "api-task", "missing"])
def test_other_containers_may_not_be_stopped(name):
    """Another container, a one-off, a task container (stop) or none at all: refused."""
    refused = verdict("POST", f"/v1.41/containers/{name}/stop")
    assert refused is not None
    assert "stop of container" in refused


def test_a_task_of_a_selected_service_may_be_signalled_but_not_of_another():
    """RELOAD_SIGNAL reaches a selected service's tasks; another service's task is refused."""
    assert verdict("POST", "/v1.41/containers/api-task/kill?signal=SIGHUP") is None
    assert verdict("POST", "/v1.41/containers/other-task/kill?signal=SIGHUP") is not None


def test_a_container_action_with_unknown_parameters_is_refused():
    """Only the parameters docker-py sends for the sidecar's calls."""
    assert "parameters" in str(verdict("POST", "/v1.41/containers/web/start?detachKeys=x"))


def updated(ident: str, change: Any) -> str | None:
    spec = copy.deepcopy(ENGINE.services[ident]["Spec"])
    change(spec)
    return verdict("POST", f"/v1.41/services/{ident}/update?version=12", spec)


def test_the_sidecars_own_service_changes_pass():
    """Replicas, its label, ForceUpdate and a reference to its own secret: let through."""

    def change(spec: dict[str, Any]) -> None:
        spec["Mode"]["Replicated"]["Replicas"] = 0
        spec["Labels"][STOPPED_AT] = "2026-12-07T01:00:00+00:00"
        spec["TaskTemplate"]["ForceUpdate"] = 3
        ref = {"SecretID": "ours-1", "SecretName": "example.com_fullchain_ab", "File": {}}
        spec["TaskTemplate"]["ContainerSpec"]["Secrets"].append(ref)

    assert updated("sid-api", change) is None
    assert updated("sid-lab", lambda s: s["Mode"]["Replicated"].update(Replicas=0)) is None


def test_a_service_update_changing_the_image_is_refused():
    """Any field beyond the sidecar's own is refused: the image here."""
    refused = updated("sid-api", lambda s: s["TaskTemplate"]["ContainerSpec"].update(Image="x"))
    assert "changes more than the replica count" in str(refused)


def test_an_update_of_a_service_not_selected_is_refused():
    """Even the sidecar's kind of change, on another service."""
    refused = updated("sid-other", lambda s: s["Mode"]["Replicated"].update(Replicas=0))
    assert "not a service APP_SERVICES or APP_LABEL selects" in str(refused)


def test_an_update_dropping_or_adding_the_apps_own_secret_is_refused():
    """The app's own secret references stay as they are."""
    refused = updated("sid-api", lambda s: s["TaskTemplate"]["ContainerSpec"].update(Secrets=[]))
    assert "adds or removes the secret db" in str(refused)


def test_an_update_asking_for_a_rollback_or_with_no_spec_is_refused():
    """`rollback=previous` would bring back any earlier spec; a body that is no spec neither."""
    assert "parameters rollback" in str(
        verdict("POST", "/v1.41/services/sid-api/update?version=1&rollback=previous", {})
    )
    refused = decide(Call("POST", "/v1.41/services/sid-api/update", b"[1"), SPEC, ENGINE)
    assert "not a service spec" in str(refused)


def test_the_comparison_ignores_only_the_sidecars_fields():
    """A spec without Labels and one with only the sidecar's label compare equal."""
    spec = service_spec("x")
    del spec["Labels"]
    marked = {**copy.deepcopy(spec), "Labels": {STOPPED_AT: "now"}}
    assert beyond(spec) == beyond(marked)
    assert beyond(spec) != beyond({**spec, "EndpointSpec": {"Ports": []}})


def test_secrets_are_created_and_removed_only_with_the_sidecars_labels():
    """Creation needs the three labels; removal needs them on the secret as it is."""
    body = {"Name": "example.com_privkey_ab", "Data": "", "Labels": OURS}
    assert verdict("POST", "/v1.41/secrets/create", body) is None
    assert verdict("POST", "/v1.41/secrets/create", {**body, "Labels": {}}) is not None
    assert verdict("POST", "/v1.41/secrets/create", {**body, "Driver": {"Name": "x"}}) is not None
    assert verdict("DELETE", "/v1.41/secrets/ours-1") is None
    assert "sidecar's labels" in str(verdict("DELETE", "/v1.41/secrets/app-secret"))
    assert verdict("DELETE", "/v1.41/secrets/missing") is not None
