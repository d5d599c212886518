"""The selection rules the guard shares with select_targets, on names and labels alone."""

from __future__ import annotations

from sidecar.targets.marks import ONE_OFF, TASK_ID, container_selected, service_selected
from sidecar.targets.spec import TargetsSpec

SPEC = TargetsSpec(containers=("web",), services=("shop_api",), label="app=shop")


def test_containers_are_selected_by_name_or_label_never_as_one_offs_or_tasks():
    """APP_CONTAINERS or APP_LABEL; a one-off or a task container carrying them is not."""
    assert container_selected("/web", {}, SPEC)
    assert container_selected("api", {"app": "shop"}, SPEC)
    assert not container_selected("api", {"app": "blog"}, SPEC)
    assert not container_selected("web", {ONE_OFF: "True"}, SPEC)
    assert not container_selected("web.1.x", {TASK_ID: "x", "app": "shop"}, SPEC)


def test_services_are_selected_by_name_or_their_own_labels():
    """APP_SERVICES names exactly; APP_LABEL matches a service's labels."""
    assert service_selected("shop_api", {}, SPEC)
    assert service_selected("shop_web", {"app": "shop"}, SPEC)
    assert not service_selected("shop_api2", {}, SPEC)
    assert not service_selected("x", {}, TargetsSpec(containers=("x",)))
