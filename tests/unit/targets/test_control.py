"""Containers and Swarm services behind one control: when services are looked for, dispatch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from sidecar.targets.container import ContainerTarget
from sidecar.targets.control import Targets
from sidecar.targets.marks import TASK_ID, TASK_SERVICE
from sidecar.targets.service import ServiceTarget

if TYPE_CHECKING:
    from sidecar.targets.base import Target
from sidecar.targets.marks import SERVICE_ID
from tests.unit.helpers import container, service

WEB = container("web", labels={"app": "shop"})
SIDECAR = container("certbot")
SIDECAR_TASK = container(
    "shop_certbot.1.ab12", labels={TASK_ID: "ab12", TASK_SERVICE: "shop_certbot", SERVICE_ID: "s9"}
)
SHOP_WEB = service("shop_web", labels={"app": "shop"})


class Kind:
    """One kind's control in memory: what it lists, and the operations it was asked for."""

    def __init__(self, *items: Target) -> None:
        self.items = list(items)
        self.kind = type(items[0]) if items else ContainerTarget
        self.asked: list[tuple[str, ...]] = []

    def listed(self, *selection):
        self.asked.append(("listed", *map(str, selection)))
        return self.items

    def inspect(self, ident):
        return next((t for t in self.items if t.id == ident), None)

    def stop(self, target):
        self.asked.append(("stop", target.name))

    def deliver(self, targets):
        self.asked.append(("deliver", *(t.name for t in targets)))
        return []


def control(containers: Kind, services: Kind, **options) -> Targets:
    return Targets(containers, services, **options)  # type: ignore[arg-type]


def test_a_compose_setup_never_asks_for_services():
    """APP_LABEL alone, the sidecar a plain container: no Swarm endpoint is called (a socket
    proxy allowing only container calls keeps working)."""
    containers, services = Kind(WEB, SIDECAR), Kind(SHOP_WEB)
    chosen = control(containers, services, label="app=shop", own_id=SIDECAR.id).targets()
    assert chosen == [WEB]
    assert services.asked == []


def test_a_sidecar_running_as_a_swarm_task_selects_services_by_label_too():
    """Its own container is a task: APP_LABEL then matches services' own labels as well."""
    containers, services = Kind(WEB, SIDECAR_TASK), Kind(SHOP_WEB)
    chosen = control(containers, services, label="app=shop", own_id=SIDECAR_TASK.id).targets()
    assert chosen == [WEB, SHOP_WEB]
    assert services.asked == [("listed", "()", "app=shop")]


def test_app_services_makes_the_sidecar_look_for_services_anywhere():
    """APP_SERVICES (or secret delivery) asks for services even from a plain container."""
    containers, services = Kind(SIDECAR), Kind(SHOP_WEB)
    chosen = control(
        containers, services, service_names=["shop_web"], swarm=True, own_id=SIDECAR.id
    ).targets()
    assert chosen == [SHOP_WEB]


def test_the_sidecars_own_service_is_refused():
    """Its service carries the label too: a config error, not a stop of itself."""
    own = service("shop_certbot", labels={"app": "shop"})
    own_task = container(
        "shop_certbot.1.ab12", labels={TASK_ID: "ab12", TASK_SERVICE: own.name, SERVICE_ID: own.id}
    )
    with pytest.raises(Exception, match="is the sidecar itself"):
        control(Kind(own_task), Kind(own), label="app=shop", own_id=own_task.id).targets()


def test_operations_go_to_the_targets_kind():
    """A container's stop goes to the containers, a service's to the services; each kind is
    given its own targets to deliver to (containers read the volume: nothing to bring)."""
    containers, services = Kind(WEB), Kind(SHOP_WEB)
    both = control(containers, services)
    both.stop(WEB)
    both.stop(SHOP_WEB)
    assert both.deliver([WEB, SHOP_WEB]) == []
    assert containers.asked == [("stop", "web"), ("deliver", "web")]
    assert services.asked == [("stop", "shop_web"), ("deliver", "shop_web")]
    assert both.inspect(ServiceTarget, SHOP_WEB.id) == SHOP_WEB
    assert both.inspect(ContainerTarget, WEB.id) == WEB
