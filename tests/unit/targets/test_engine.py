from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, cast

import docker.errors
import pytest
import requests

from sidecar import shutdown
from sidecar.targets import engine as containers
from sidecar.targets.engine import own_container_id, parse_docker_time
from tests.unit.helpers import container

EPOCH = datetime.fromtimestamp(0, UTC)
SELF_ID = "4f0c" + "a" * 60
WEB = container("web", labels={"tls": "true", "com.docker.compose.project": "shop"})
API = container("api", labels={"tls": "false"})
DB = container("db")
SIDECAR = container("sidecar", labels={"com.docker.compose.project": "shop"})
ALL = [WEB, API, DB, SIDECAR]

MOUNTINFO = f"""\
1436 1348 0:110 / / rw,relatime master:411 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2
1445 1436 0:117 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1480 1436 254:1 /var/lib/docker/containers/{SELF_ID}/resolv.conf /etc/resolv.conf rw - ext4
1481 1436 254:1 /var/lib/docker/containers/{SELF_ID}/hostname /etc/hostname rw - ext4 /dev/vda1
1482 1436 254:1 /var/lib/docker/volumes/le/_data /etc/letsencrypt rw - ext4 /dev/vda1 rw
"""


# own_container_id


def test_own_container_id_is_read_from_docker_mounts():
    """resolv.conf/hostname are bind-mounted from /var/lib/docker/containers/<id>/."""
    assert own_container_id(MOUNTINFO) == SELF_ID


def test_own_container_id_works_with_a_rootless_docker_root():
    """The id is found wherever the Docker root directory is."""
    line = f"99 1 0:1 /home/u/.local/share/docker/containers/{SELF_ID}/hostname /etc/hostname rw"
    assert own_container_id(line) == SELF_ID


@pytest.mark.parametrize(
    "mountinfo",
    [
        "",
        "1 0 0:1 / / rw - overlay overlay rw\n",
        "1 0 0:1 /var/lib/docker/containers/abc123/hostname /etc/hostname rw\n",
        f"1 0 0:1 /var/lib/docker/containers/{SELF_ID.upper()}/hostname /etc/hostname rw\n",
    ],
)
def test_outside_a_container_there_is_no_own_id(mountinfo):
    """No 64-hex container directory in the mounts: not running in Docker."""
    assert own_container_id(mountinfo) is None


# parse_docker_time


def test_docker_nanoseconds_are_cut_to_microseconds_in_utc():
    """`...56.123456789Z` -> 56.123456 UTC."""
    assert parse_docker_time("2025-03-12T10:20:56.123456789Z") == datetime(
        2025, 3, 12, 10, 20, 56, 123456, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("raw", "micro"),
    [("2025-03-12T10:20:56Z", 0), ("2025-03-12T10:20:56.5Z", 500000), ("2025-03-12T10:20:56", 0)],
)
def test_docker_time_with_short_or_no_fraction_is_read(raw, micro):
    """Docker drops trailing zeros; missing digits are padded."""
    assert parse_docker_time(raw) == datetime(2025, 3, 12, 10, 20, 56, micro, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["", "0001-01-01T00:00:00Z"])
def test_never_started_container_reads_as_the_epoch(raw):
    """Docker's zero time (never started) compares before everything."""
    assert parse_docker_time(raw) == EPOCH


def test_inspect_data_becomes_container_info():
    """Name without its slash, labels (None means none), running flag and start time."""
    attrs = {
        "Id": WEB.id,
        "Name": "/web",
        "Config": {"Labels": None},
        "State": {"Running": True, "StartedAt": "2025-03-12T10:20:56.000000001Z"},
    }
    info = containers._info(attrs)
    assert info.id == WEB.id
    assert info.name == "web"
    assert info.labels == {}
    assert info.running is True
    assert info.started_at == datetime(2025, 3, 12, 10, 20, 56, tzinfo=UTC)


def test_inspect_data_of_a_created_container_is_stopped_since_the_epoch():
    """Missing State/Config (a created, never-started container) is handled."""
    info = containers._info({"Id": DB.id, "Name": "/db"})
    assert info.running is False
    assert info.started_at == EPOCH
    assert info.labels == {}


# _reason


def test_docker_socket_permission_problem_is_explained():
    """EACCES on the socket becomes a hint about its group and mount."""
    error = OSError(
        "Error while fetching server API version: ('Connection aborted.', "
        "PermissionError(13, 'Permission denied'))"
    )
    assert "permission denied on the Docker socket" in containers._reason(error)


def test_missing_docker_socket_is_explained():
    """No socket: mount it or set DOCKER_HOST."""
    error = OSError("('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))")
    assert containers._reason(error).startswith("no Docker socket")


def test_other_docker_errors_are_cut_to_their_first_line():
    """Long multi-line errors become one readable line."""
    assert containers._reason(RuntimeError("409 Conflict\ntraceback...")) == "409 Conflict"
    assert containers._reason(RuntimeError("x" * 400)) == "x" * 300
    assert containers._reason(RuntimeError()) == "RuntimeError"


def test_the_stop_timeout_is_the_containers_own_unless_stop_timeout_is_set():
    """Config.StopTimeout (compose's stop_grace_period) is used; STOP_TIMEOUT overrides it."""
    attrs = {"Id": DB.id, "Name": "/db", "Config": {"StopTimeout": 45}, "HostConfig": {}}
    assert containers._info(attrs).stop_timeout == 45
    assert containers._info(attrs, stop_timeout=5).stop_timeout == 5
    assert containers._info({"Id": DB.id, "Name": "/db"}).stop_timeout == 10


def test_auto_remove_is_read_from_the_host_config():
    """HostConfig.AutoRemove marks a container a stop would delete."""
    attrs = {"Id": DB.id, "Name": "/db", "HostConfig": {"AutoRemove": True}}
    assert containers._info(attrs).auto_remove


@pytest.mark.parametrize(
    ("state", "ready"),
    [
        ({"Running": True}, "ready"),
        ({"Running": True, "Health": {"Status": "healthy"}}, "ready"),
        ({"Running": True, "Health": {"Status": "starting"}}, "starting"),
        ({"Running": True, "Health": {"Status": "unhealthy"}}, "unhealthy"),
        ({"Running": False, "Status": "exited", "ExitCode": 1}, "exited"),
        ({"Running": False, "Status": "created"}, "not running"),
    ],
)
def test_readiness_of_a_started_container(state, ready):
    """Running (and healthy where it has a healthcheck) is ready; exited is a failed start."""
    assert containers.readiness(state) == ready


# Podman's Docker-compatible API


PODMAN_ID = "f13bbc2cae1a67db8432ef892b253f3e52c3615beabb8d5f49d64a8dc410dffa"
STORE = "/run/containers/storage/overlay-containers"
LAYERS = "/var/lib/containers/storage/overlay"
PODMAN_MOUNTINFO = "\n".join(
    [
        f"383 338 0:112 / / rw - overlay overlay rw,upperdir={LAYERS}/{'b' * 64}/diff",
        f"390 383 254:0 {STORE}/{PODMAN_ID}/userdata/resolv.conf /etc/resolv.conf rw - ext4 x",
        f"394 383 254:0 {STORE}/{PODMAN_ID}/userdata/hostname /etc/hostname rw - ext4 x",
    ]
)


def test_own_container_id_is_read_from_podman_mounts():
    """Podman's userdata paths (overlay-containers/ID/...) name the sidecar's own container,
    not a layer directory (overlay/ID/diff)."""
    assert own_container_id(PODMAN_MOUNTINFO) == PODMAN_ID


def test_own_container_id_works_with_podmans_vfs_driver():
    """Rootless Podman keeps containers under vfs-containers/ID/."""
    root = "/home/u/.local/share/containers/storage/vfs-containers"
    line = f"1 2 0:1 {root}/{PODMAN_ID}/userdata/hosts /etc/hosts rw - ext4 /dev/vda rw"
    assert own_container_id(line) == PODMAN_ID


def test_an_empty_health_status_means_no_healthcheck():
    """Podman reports `Health: {Status: ""}` for a container without one: it is ready."""
    state = {"Running": True, "Health": {"Status": "", "FailingStreak": 0, "Log": None}}
    assert containers.readiness(state) == "ready"


def test_a_healthcheck_that_never_ran_is_named_as_podmans_systemd_limit():
    """`starting` with no result ever logged: the start wait says why it will not end."""
    state = {"Running": True, "Health": {"Status": "starting", "Log": None}}
    assert "Podman runs healthchecks only through systemd" in containers.never_checked(state)
    ran = {"Running": True, "Health": {"Status": "starting", "Log": [{"ExitCode": 1}]}}
    assert containers.never_checked(ran) == ""


def test_a_stop_timeout_of_zero_counts_as_none_set():
    """Podman's compat API shows StopTimeout 0 where Docker leaves it out: never an instant kill."""
    attrs = {"Id": DB.id, "Name": "/db", "Config": {"StopTimeout": 0}}
    assert containers._info(attrs).stop_timeout == 10


def test_who_publishes_a_port_is_read_from_the_listed_ports():
    """Podman rejects the `publish` filter: the list's Ports show the publisher instead."""
    listed = {
        "Names": ["/web"],
        "Ports": [
            {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 18080, "Type": "tcp"},
            {"PrivatePort": 53, "PublicPort": 5353, "Type": "udp"},
        ],
    }
    assert containers.publishes(listed, 18080)
    assert not containers.publishes(listed, 5353), "a UDP port is not the challenge port"
    assert not containers.publishes({"Names": ["/x"], "Ports": None}, 18080)


def test_a_container_removed_meanwhile_counts_as_gone_on_docker_and_podman():
    """Listed, then removed before its inspect: Docker answers 404, Podman 500 'no such
    container'; both mean it is gone (skipped), any other error is an error."""
    response = requests.Response()
    response.status_code = 500
    podman = docker.errors.APIError(
        "500 Server Error",
        response,
        explanation="container X does not exist in database: no such container",
    )
    assert containers.gone(podman)
    assert containers.gone(docker.errors.NotFound("404 Client Error: No such container"))
    other = docker.errors.APIError("500 Server Error", response, explanation="disk full")
    assert not containers.gone(other)


def test_a_swarm_task_publishing_a_port_is_named_by_its_service():
    """The port holder is a task container: the message names its service (the target)."""
    listed = {
        "Names": ["/shop_web.1.x8f2"],
        "Labels": {"com.docker.swarm.service.name": "shop_web"},
        "Ports": [{"PublicPort": 80, "Type": "tcp"}],
    }
    assert containers._publisher(listed) == "service shop_web (task shop_web.1.x8f2)"
    assert containers._publisher({"Names": ["/web"]}) == "container web"


# listing the candidates


class _Api:
    """The engine's list and inspect calls over many containers, counting the inspects."""

    def __init__(self, names_labels: dict[str, dict[str, str]]) -> None:
        self.attrs: dict[str, dict[str, Any]] = {
            f"{i:064x}": {
                "Id": f"{i:064x}",
                "Name": f"/{name}",
                "Config": {"Labels": labels},
                "State": {"Running": True},
            }
            for i, (name, labels) in enumerate(names_labels.items(), 1)
        }
        self.inspected: list[str] = []

    def containers(self, *, all: bool, filters: dict[str, str]) -> list[dict[str, object]]:  # noqa: A002
        assert all
        out = []
        for ident, attrs in self.attrs.items():
            labels = attrs["Config"]["Labels"]
            if "name" in filters and not re.search(filters["name"], attrs["Name"]):
                continue
            if "label" in filters:
                key, _, value = filters["label"].partition("=")
                if key not in labels or (value and labels[key] != value):
                    continue
            out.append({"Id": ident, "Names": [attrs["Name"]], "Labels": labels})
        return out

    def inspect_container(self, ident: str) -> dict[str, object]:
        self.inspected.append(ident)
        return self.attrs[ident]


class _Client:
    def __init__(self, api: _Api) -> None:
        self.api = api


def test_only_the_named_labelled_and_own_containers_are_inspected():
    """A host with 500 other containers: the engine filters by name and label, and only those
    (and the sidecar's own container) are inspected."""
    others = {f"other-{i}": {"x": str(i)} for i in range(500)}
    api = _Api({**others, "web": {}, "web2": {}, "w.b": {}, "wxb": {}, "api": {"app": "shop"}})
    own = next(i for i, a in api.attrs.items() if a["Name"] == "/other-7")
    found = containers.DockerContainers(
        _Client(api),  # type: ignore[arg-type]
        stop_timeout=None,
        start_timeout=1,
        stopping=shutdown.REQUEST,
    ).listed(["web", "w.b"], "app=shop", own)
    assert sorted(t.name for t in found) == ["api", "other-7", "w.b", "web"]
    assert len(api.inspected) == 4


def test_a_name_filter_matches_the_whole_name_only():
    """`web` is not `web2` nor `my-web`; a dot is a dot (`w.b` is not `wxb`)."""
    assert containers.name_pattern("w.b") == r"^/?w\.b$"


def test_docker_pys_private_calls_behind_post_json_are_still_there_as_used():
    """`post_json` (a service update with the spec as it is) drives docker-py's private request
    plumbing: this fails as soon as docker-py renames or reshapes any of it."""
    import inspect  # noqa: PLC0415

    import docker  # noqa: PLC0415

    def parameters(name: str) -> list[str]:
        return list(inspect.signature(getattr(docker.APIClient, name)).parameters)

    assert parameters("_url")[:3] == ["self", "pathfmt", "args"]  # _url(path, ident)
    assert parameters("_post_json")[:3] == ["self", "url", "data"]  # (url, data=, params=)
    assert "kwargs" in parameters("_post_json")  # params= goes through to requests
    assert parameters("_result")[:3] == ["self", "response", "json"]  # (response, json=True)
    client = docker.APIClient(base_url="tcp://127.0.0.1:9", version="1.44")
    url = cast("Any", client)._url("/services/{0}/update", "abc")  # the stubs leave it out
    assert url.endswith("/v1.44/services/abc/update")


def test_post_json_posts_the_spec_as_it_is_to_the_path_filled_in():
    """The whole spec and the version it was read at reach docker-py's plumbing unchanged."""
    calls: list[tuple[str, object]] = []

    class Api:
        def _url(self, path: str, ident: str) -> str:
            return path.format(ident)

        def _post_json(self, url: str, data: object, params: dict[str, int]) -> str:
            calls.append((url, (data, params)))
            return "response"

        def _result(self, response: str, *, json: bool) -> dict[str, str]:
            return {"got": response, "json": str(json)}

    spec = {"Name": "web", "Unknown": {"Kept": True}}
    result = containers.post_json(Api(), "/services/{0}/update", "svc1", spec, {"version": 7})
    assert calls == [("/services/svc1/update", (spec, {"version": 7}))]
    assert result == {"got": "response", "json": "True"}
