"""An in-memory swarm behind the parts of docker-py's APIClient that `targets.swarm` calls."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import docker.errors
import requests

from sidecar import shutdown
from sidecar.targets.secret_store import SecretStore
from sidecar.targets.secrets import Files
from sidecar.targets.swarm import SwarmServices, service_target

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from sidecar.targets.service import ServiceTarget

OUT_OF_SEQUENCE = "rpc error: code = Unknown desc = update out of sequence"


def api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError(explanation, response=response, explanation=explanation)


class FakeSwarmApi:
    """Services whose tasks run as soon as the spec asks for them (unless `tasks_run` is
    False), and secrets. An update must carry the version it was read at ("update out of
    sequence" otherwise); `between`, when set, runs once between the sidecar's read of a spec and
    its update (someone else's change meanwhile). `refused` lists the calls answered with 403."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, Any]] = {}
        self.made: dict[str, dict[str, Any]] = {}  # secret id -> listed secret
        self.data: dict[str, bytes] = {}  # secret id -> what it holds
        self.posted: list[dict[str, Any]] = []  # every spec an update sent
        self.refused: set[str] = set()
        self.between: Callable[[str], None] | None = None
        self.tasks_run = True

    def add_service(self, name: str, replicas: int = 1, refs: Sequence[dict[str, Any]] = ()) -> str:
        ident = f"svc-{name}"
        container: dict[str, Any] = {"Image": "sha256:app"}
        if refs:
            container["Secrets"] = [dict(r) for r in refs]
        spec = {
            "Name": name,
            "Labels": {},
            "Mode": {"Replicated": {"Replicas": replicas}},
            "TaskTemplate": {"ContainerSpec": container, "ForceUpdate": 0},
        }
        self.services[ident] = {"ID": ident, "Version": {"Index": 10}, "Spec": spec}
        return ident

    def target(self, ident: str) -> ServiceTarget:
        return service_target(self.inspect_service(ident), [], secret=True)

    def spec(self, ident: str) -> dict[str, Any]:
        return self.services[ident]["Spec"]  # type: ignore[no-any-return]

    def version(self, ident: str) -> int:
        return int(self.services[ident]["Version"]["Index"])

    def files(self, ident: str) -> dict[str, str]:
        """The service's secret references: file name -> secret id."""
        refs = self.spec(ident)["TaskTemplate"]["ContainerSpec"].get("Secrets") or []
        return {r["File"]["Name"]: r["SecretID"] for r in refs}

    def change(self, ident: str, edit: Callable[[dict[str, Any]], None]) -> None:
        """Someone else's update (an operator's `docker service scale`, a stack deploy)."""
        edit(self.spec(ident))
        self.services[ident]["Version"]["Index"] += 1

    # the APIClient calls

    def inspect_service(self, ident: str) -> dict[str, Any]:
        if ident not in self.services:
            raise api_error(404, f"service {ident} not found")
        return copy.deepcopy(self.services[ident])

    def _url(self, path: str, ident: str) -> str:
        return path.format(ident)

    def _post_json(self, url: str, data: dict[str, Any], params: dict[str, int]) -> dict[str, Any]:
        ident = url.split("/")[2]
        if self.between is not None:
            between, self.between = self.between, None
            between(ident)
        if params["version"] != self.version(ident):
            raise api_error(500, OUT_OF_SEQUENCE)
        self.services[ident]["Spec"] = copy.deepcopy(data)
        self.services[ident]["Version"]["Index"] += 1
        self.posted.append(copy.deepcopy(data))
        return {}

    def _result(self, response: dict[str, Any], *, json: bool) -> dict[str, Any]:
        assert json
        return response

    def tasks(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        idents = [filters["service"]] if "service" in filters else list(self.services)
        state = "running" if self.tasks_run else "starting"
        return [
            {
                "ServiceID": ident,
                "DesiredState": "running",
                "Status": {"State": state, "Timestamp": "2026-12-01T10:00:05Z"},
                "Spec": copy.deepcopy(self.spec(ident)["TaskTemplate"]),
            }
            for ident in idents
            for _ in range(self.spec(ident)["Mode"]["Replicated"]["Replicas"])
        ]

    def secrets(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        if "secrets" in self.refused:
            raise api_error(403, "Forbidden")
        key, _, value = filters.get("label", "=").partition("=")
        return [
            copy.deepcopy(s)
            for s in self.made.values()
            if ("name" not in filters or s["Spec"]["Name"] == filters["name"])
            and (not key or s["Spec"]["Labels"].get(key) == value)
        ]

    def create_secret(self, name: str, data: bytes, labels: dict[str, str]) -> dict[str, str]:
        if "create_secret" in self.refused:
            raise api_error(403, "Forbidden")
        ident = f"sec{len(self.made) + 1}"
        self.made[ident] = {"ID": ident, "Spec": {"Name": name, "Labels": dict(labels)}}
        self.data[ident] = data
        return {"ID": ident}

    def remove_secret(self, ident: str) -> None:
        if any(ident in self.files(s).values() for s in self.services):
            raise api_error(400, f"secret {ident} is in use by the following service")
        del self.made[ident]
        del self.data[ident]


def swarm_services(
    api: FakeSwarmApi,
    config_dir: Path | None = None,
    names: Sequence[str] = (),
    files: Files = Files(),  # noqa: B008 (frozen)
    *,
    start_timeout: float = 5.0,
) -> SwarmServices:
    """SwarmServices over `api`; in secret mode (with a store of `names`) when `config_dir` is
    given."""
    client: Any = SimpleNamespace(api=api)
    store = None if config_dir is None else SecretStore(client, config_dir, names, files)
    return SwarmServices(
        client, start_timeout=start_timeout, stopping=shutdown.REQUEST, store=store
    )
