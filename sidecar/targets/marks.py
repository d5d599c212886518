"""The labels by which the sidecar knows containers, services and its own objects, and which of
them the settings select: standard library only, so that the guard (`sidecar guard`, a small
process) decides with the same rules as `select.select_targets`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sidecar.targets.spec import TargetsSpec

ONE_OFF = "com.docker.compose.oneoff"
TASK_ID = "com.docker.swarm.task.id"  # on every container a swarm task runs in
TASK_SERVICE = "com.docker.swarm.service.name"
SERVICE_ID = "com.docker.swarm.service.id"  # on a task's container
STOPPED_AT = "certbot-sidecar.stopped-at"  # service label: when the sidecar scaled it to 0
# on the secrets the sidecar makes (CERT_DELIVERY=secret; `targets.secrets`)
LINEAGE_LABEL = "certbot-sidecar.lineage"
PART_LABEL = "certbot-sidecar.part"
SERIAL_LABEL = "certbot-sidecar.serial"


def label_matches(labels: Mapping[str, str], selector: str) -> bool:
    key, sep, value = selector.partition("=")
    return key in labels and (not sep or labels[key] == value)


def ordinary(labels: Mapping[str, str]) -> bool:
    """A container that may be a target: not a one-off (`docker compose run` copies the service's
    labels), not a swarm task's (swarm would replace it: its service is the target)."""
    return labels.get(ONE_OFF) != "True" and TASK_ID not in labels


def container_selected(name: str, labels: Mapping[str, str], spec: TargetsSpec) -> bool:
    """The container is one APP_CONTAINERS names or APP_LABEL selects (select_targets' rule)."""
    if not ordinary(labels):
        return False
    return name.lstrip("/") in spec.containers or bool(
        spec.label and label_matches(labels, spec.label)
    )


def service_selected(name: str, labels: Mapping[str, str], spec: TargetsSpec) -> bool:
    """The service is one APP_SERVICES names or whose own labels APP_LABEL selects."""
    return name in spec.services or bool(spec.label and label_matches(labels, spec.label))
