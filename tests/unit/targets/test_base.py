"""Targets: selection by name and label, and acting on several at once."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from sidecar.errors import ConfigError, DockerError
from sidecar.targets.base import NoTargetError, each
from sidecar.targets.marks import TASK_ID, TASK_SERVICE, label_matches
from sidecar.targets.select import select_targets
from tests.unit.helpers import container, logged, service

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


def test_a_bug_in_one_target_neither_stops_the_others_nor_escapes():
    """An OSError or KeyError (no SidecarError) is one error line naming the target and the
    exception's type, with the traceback in the log once; every other target is handled."""
    done: list[str] = []

    def start(target):
        done.append(target.name)
        if target.name == "api":
            raise FileNotFoundError(2, "No such file or directory")
        if target.name == "db":
            raise KeyError("State")

    with logged() as lines:
        errors = each(start, [WEB, API, DB])
    assert sorted(done) == ["api", "db", "web"]
    assert sorted(errors) == [
        "api: unexpected FileNotFoundError: [Errno 2] No such file or directory",
        "db: unexpected KeyError: 'State'",
    ]
    tracebacks = [line for line in lines if "Traceback" in line]
    assert len(tracebacks) == 2
    assert all(line.startswith("ERROR An unexpected error occurred with ") for line in tracebacks)


def test_each_over_nothing_does_nothing():
    """No targets, no threads, no errors."""
    assert each(lambda _: pytest.fail("called"), []) == []


def test_a_one_off_container_is_never_a_target():
    """`docker compose run web task` copies web's labels: the task is not stopped or started."""
    task = container(
        "shop-web-run-1a2b", labels={**WEB.labels, "com.docker.compose.oneoff": "True"}
    )
    assert select_targets([WEB, task], [], "tls=true", None) == [WEB]


def test_a_container_a_stop_would_delete_is_refused_with_the_fix():
    """AutoRemove (`docker run --rm`): the sidecar will not stop it, and says why."""
    temporary = dataclasses.replace(container("web", labels={"tls": "true"}), auto_remove=True)
    with pytest.raises(ConfigError, match=r"AutoRemove .* would delete it"):
        select_targets([temporary], [], "tls=true", None)


def test_missing_app_containers_are_their_own_error_kind():
    """Not found (yet) is a NoTargetError: after a start the daemon waits for a recreate."""
    with pytest.raises(NoTargetError):
        select_targets([DB], ["web"], None, None)
    with pytest.raises(NoTargetError):
        select_targets([DB], [], "tls=true", None)


# Swarm services

TASK = container(
    "shop_web.1.x8f2",
    labels={"tls": "true", TASK_ID: "x8f2", TASK_SERVICE: "shop_web"},
)
SHOP_WEB = service("shop_web", labels={"tls": "true"})
SHOP_API = service("shop_api", labels={"tls": "false"})
SERVICES = [SHOP_WEB, SHOP_API]


def test_services_are_chosen_by_name():
    """APP_SERVICES picks exactly the named services; containers come first, then services."""
    chosen = select_targets([*ALL, *SERVICES], ["db"], None, None, service_names=["shop_api"])
    assert chosen == [DB, SHOP_API]


def test_a_missing_service_is_a_no_target_error_naming_it():
    """A typo in APP_SERVICES (or a stack not deployed yet) is reported as not found."""
    with pytest.raises(NoTargetError, match=r"^APP_SERVICES: no service named shop_wbe$"):
        select_targets(SERVICES, [], None, None, service_names=["shop_wbe"])


def test_the_label_selects_containers_by_theirs_and_services_by_their_own():
    """APP_LABEL matches a container's labels and a service's labels (deploy.labels)."""
    chosen = select_targets([*ALL, *SERVICES], [], "tls=true", None, swarm=True)
    assert chosen == [WEB, SHOP_WEB]


def test_a_swarm_task_container_is_never_a_target():
    """Stopping a task makes swarm replace it: its labels select nothing, its service may."""
    assert select_targets([TASK, SHOP_WEB], [], "tls=true", None, swarm=True) == [SHOP_WEB]


def test_a_label_only_tasks_carry_names_their_service_and_the_fix():
    """A stack's container `labels:` land on the tasks: the error says to use deploy.labels."""
    with pytest.raises(NoTargetError, match=r"no container or service has the label tls=true"):
        select_targets([TASK], [], "tls=true", None, swarm=True)
    with pytest.raises(NoTargetError, match=r"tasks of the swarm service shop_web .*deploy.labels"):
        select_targets([TASK], [], "tls=true", None, swarm=True)


def test_a_task_named_in_app_containers_is_refused_naming_its_service():
    """APP_CONTAINERS=shop_web.1.x8f2: the sidecar says to name shop_web in APP_SERVICES."""
    with pytest.raises(ConfigError, match=r"task of the swarm service shop_web .* APP_SERVICES"):
        select_targets([TASK], [TASK.name], None, None)


def test_the_sidecars_own_service_is_never_a_target():
    """In a swarm the sidecar runs as a service: selecting that service is a config error."""
    own = service("shop_certbot", labels={"tls": "true"})
    with pytest.raises(ConfigError, match=r"^service shop_certbot is the sidecar itself"):
        select_targets([own, SHOP_WEB], [], "tls=true", None, self_service=own.id, swarm=True)


def test_a_global_service_cannot_be_stopped_but_a_replicated_one_can():
    """Global services have no replica count to scale to 0."""
    assert SHOP_WEB.stoppable
    assert not service("edge", replicas=None).stoppable
    assert WEB.stoppable
