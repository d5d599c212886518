from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sidecar import containers
from sidecar.containers import (
    each,
    label_matches,
    own_container_id,
    parse_docker_time,
    select_targets,
)
from sidecar.errors import ConfigError, DockerError
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


# label_matches


@pytest.mark.parametrize(
    ("labels", "selector", "matches"),
    [
        ({"tls": "true"}, "tls", True),
        ({"tls": ""}, "tls", True),
        ({"tls": "true"}, "tls=true", True),
        ({"tls": "true"}, "tls=false", False),
        ({"tls": "true"}, "tls=", False),
        ({"tls": ""}, "tls=", True),
        ({"other": "tls"}, "tls", False),
        ({}, "tls", False),
        ({"rule": "a=b"}, "rule=a=b", True),
    ],
)
def test_label_selector_is_a_key_or_an_exact_key_value(labels, selector, matches):
    """`key` needs the label to exist; `key=value` needs that exact value."""
    assert label_matches(labels, selector) is matches


# select_targets


def test_targets_are_chosen_by_name():
    """APP_CONTAINERS picks exactly the named containers, sorted by name."""
    assert select_targets(ALL, ["web", "api"], None, None) == [API, WEB]


def test_missing_named_container_is_a_config_error_naming_each():
    """A typo in APP_CONTAINERS is reported before anything is stopped."""
    with pytest.raises(ConfigError, match=r"APP_CONTAINERS: no container named wbe, ap1$"):
        select_targets(ALL, ["wbe", "web", "ap1"], None, None)


def test_targets_are_chosen_by_label():
    """APP_LABEL picks every container carrying the label (and value)."""
    assert select_targets(ALL, [], "tls=true", None) == [WEB]
    assert select_targets(ALL, [], "tls", None) == [API, WEB]


def test_label_matching_nothing_is_a_config_error_when_it_is_the_only_selector():
    """Without names, a label that selects nothing means the app is not found."""
    with pytest.raises(ConfigError, match=r"APP_LABEL: no container has the label tls=yes"):
        select_targets(ALL, [], "tls=yes", None)


def test_label_matching_nothing_is_fine_next_to_names():
    """With names given, an unmatched label adds nothing and is no error."""
    assert select_targets(ALL, ["db"], "tls=yes", None) == [DB]


def test_names_and_label_are_united_without_duplicates():
    """A container selected both ways is a target once."""
    assert select_targets(ALL, ["web", "db"], "tls=true", None) == [DB, WEB]


def test_no_containers_and_no_selection_gives_no_targets():
    """An empty selection selects nothing (settings forbid it; the function stays total)."""
    assert select_targets([], [], None, None) == []


def test_sidecar_itself_is_never_a_target():
    """If the selection includes the sidecar's own container, that is a config error."""
    with pytest.raises(ConfigError, match=r"^sidecar is the sidecar itself; it must not be"):
        select_targets(ALL, [], "com.docker.compose.project=shop", SIDECAR.id)


def test_own_id_outside_the_selection_does_not_matter():
    """Knowing the sidecar's id only guards against selecting it."""
    assert select_targets(ALL, ["web"], None, SIDECAR.id) == [WEB]


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


# each


def test_each_applies_to_every_target_and_collects_docker_errors():
    """One failing container does not keep the others from being handled."""
    done: list[str] = []

    def start(target):
        done.append(target.name)
        if target.name == "api":
            raise DockerError("exited right after start")

    errors = each(start, [WEB, API, DB])
    assert sorted(done) == ["api", "db", "web"]
    assert errors == ["api: exited right after start"]


def test_each_over_nothing_does_nothing():
    """No targets, no threads, no errors."""
    assert each(lambda _: pytest.fail("called"), []) == []


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
