"""Docker Swarm services as targets, and the certificates as Swarm secrets (CERT_DELIVERY=secret).

Stop = scale a replicated service to 0 and wait until no task of it runs; start = scale it back
to the count the recovery record kept and wait until that many tasks run (a task is `running`
only once its container is healthy, where it has a healthcheck); restart = `service update
--force`, a rolling restart (the only one a global service has); a signal goes to every task on
this node. Every update sends the service's whole spec back with one change: anything left out
would be dropped (ports, labels), and a spec with defaults filled in would restart every task;
a spec the change leaves as it is is not sent. The scale to 0 and back go out only while the
service is still the one selected or recorded (an operator's `docker service scale` or `stack
deploy` meanwhile wins), also when a concurrent change makes an update retry.

In secret mode every update also points the service at the lineages' current secrets, as far as
they can be had: a lineage that cannot be read, or whose secret cannot be made, keeps the
references the service has, and the scale-back goes out all the same (the cycle's delivery
step reports the problem, and tries again next cycle).
"""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loguru import logger

from sidecar.errors import DockerError, NotReadyError, SidecarError
from sidecar.targets.base import DEFAULT_STOP_TIMEOUT, EPOCH, each
from sidecar.targets.engine import call, log_done, parse_docker_time, post_json, status_of
from sidecar.targets.marks import STOPPED_AT
from sidecar.targets.secret_store import SecretStore, Wanted, point, wanted_anyway
from sidecar.targets.service import ServiceTarget
from sidecar.volume.certs import now_utc

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sidecar.shutdown import StopRequest
    from sidecar.targets.engine import Client

NODE_ID = "com.docker.swarm.node.id"  # on a task's container
LIVE = frozenset(
    {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running"}
)
FAILED_UPDATE = frozenset({"paused", "rollback_started", "rollback_paused", "rollback_completed"})
STOP_MARGIN = 10.0  # beyond the stop grace period, before tasks still running are an error
UPDATE_TRIES = 3  # a concurrent change of the spec makes an update "out of sequence"
POLL = 0.05
NOT_FOUND, NOT_MANAGER = 404, 503  # the engine's answers
Spec = dict[str, Any]


def is_live(task: dict[str, Any]) -> bool:
    """A task whose container may still run: not yet in a terminal state."""
    return task["Status"]["State"] in LIVE


def runs(task: dict[str, Any]) -> bool:
    """Meant to run and running (healthy, where there is a healthcheck)."""
    return bool(task["DesiredState"] == "running" and task["Status"]["State"] == "running")


def replicas_of(spec: Spec) -> int | None:
    """A replicated service's task count (None: a global service)."""
    mode = spec.get("Mode") or {}
    return int(mode["Replicated"].get("Replicas", 1)) if "Replicated" in mode else None


def fingerprint(template: Spec) -> tuple[object, ...]:
    """What the sidecar's updates change in a task's spec (a task's copy of the template lacks
    some defaults, so the whole spec cannot be compared): the force counter and the secrets."""
    refs = template.get("ContainerSpec", {}).get("Secrets") or []
    return (
        int(template.get("ForceUpdate", 0)),
        tuple(sorted((str(r.get("SecretID")), str(r["File"]["Name"])) for r in refs)),
    )


def service_target(
    service: dict[str, Any], tasks: Sequence[dict[str, Any]], *, secret: bool
) -> ServiceTarget:
    """A target from a service's inspect data and its tasks."""
    spec = service["Spec"]
    replicas = replicas_of(spec)
    labels = spec.get("Labels") or {}
    started = [parse_docker_time(t["Status"].get("Timestamp", "")) for t in tasks if runs(t)]
    grace = spec.get("TaskTemplate", {}).get("ContainerSpec", {}).get("StopGracePeriod")
    return ServiceTarget(
        id=service["ID"],
        name=spec["Name"],
        labels=labels,
        running=replicas is None or replicas > 0,
        started_at=min(started, default=EPOCH),
        finished_at=_stamp(labels.get(STOPPED_AT, "")),
        stop_timeout=grace / 1e9 if grace else DEFAULT_STOP_TIMEOUT,
        replicas=replicas,
        version=int(service["Version"]["Index"]),
        signal_reloads=not secret,  # a secret's file never changes in a running task
    )


def _stamp(raw: str) -> datetime:
    """The time in our STOPPED_AT label (the epoch when absent or not a time)."""
    try:
        stamp = datetime.fromisoformat(raw)
    except ValueError:
        return EPOCH
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


class SwarmServices:
    """Services over a swarm manager's API; in secret mode with the lineages' secrets."""

    kind = ServiceTarget

    def __init__(
        self,
        client: Client,
        *,
        start_timeout: float,
        stopping: StopRequest,
        store: SecretStore | None = None,
        own_id: str | None = None,
    ) -> None:
        self._api = client.api
        self._start_timeout = start_timeout
        self._stopping = stopping
        self._store = store
        self._own_id = own_id

    def listed(self, names: Sequence[str], label: str | None) -> list[ServiceTarget]:
        """The services named (exactly: the API's name filter matches prefixes) or labelled."""
        found: dict[str, dict[str, Any]] = {}
        for name in names:
            listed = self._services({"name": name})
            found.update({s["ID"]: s for s in listed if s["Spec"]["Name"] == name})
        if label:
            found.update({s["ID"]: s for s in self._services({"label": label})})
        if not found:
            return []
        tasks = call("list tasks", self._api.tasks, filters={"desired-state": "running"})
        return [
            service_target(s, [t for t in tasks if t["ServiceID"] == s["ID"]], secret=self.secret)
            for s in found.values()
        ]

    @property
    def secret(self) -> bool:
        return self._store is not None

    def inspect(self, ident: str) -> ServiceTarget | None:
        try:
            service = call(f"inspect service {ident}", self._api.inspect_service, ident)
            tasks = self._tasks(ident, running=True)
        except DockerError as error:
            if status_of(error) == NOT_FOUND:
                return None
            raise
        return service_target(service, tasks, secret=self.secret)

    def stop(self, target: ServiceTarget) -> None:
        """Scale to 0, then wait until no task of it runs (its port is free then)."""
        if target.replicas is None:
            raise DockerError(f"{target.title} is global: it cannot be scaled to 0")
        began = time.monotonic()
        stamp = now_utc().isoformat()

        def to_zero(spec: Spec) -> None:
            spec["Mode"]["Replicated"]["Replicas"] = 0
            spec["Labels"] = {**(spec.get("Labels") or {}), STOPPED_AT: stamp}

        def still_selected(service: dict[str, Any]) -> bool:
            return replicas_of(service["Spec"]) == target.replicas

        if self._update(target, to_zero, still_selected) is None:
            logger.warning(
                "{} was scaled by someone else meanwhile; not scaled to 0, left as it is",
                target.title,
                service=target.name,
            )
            return
        limit = target.stop_timeout + STOP_MARGIN
        while any(is_live(t) for t in self._tasks(target.id)):
            if time.monotonic() - began > limit:
                raise DockerError(
                    f"{target.title}: tasks still run {limit:.0f}s after the scale to 0"
                )
            time.sleep(POLL)
        log_done("stop", target, time.monotonic() - began, f" (scaled {target.replicas} to 0)")

    def start(self, target: ServiceTarget) -> None:
        """Scale back to `target.replicas` (the record's count), in the same update with the
        current secrets that can be had (never without the scale-back); only while the service
        is still the one the record left: at 0, at the spec version `target` was read with."""
        count = target.replicas or 1
        began = time.monotonic()
        refs = self._wanted_anyway(target, "scaled back")

        def scale(spec: Spec) -> None:
            spec["Mode"]["Replicated"]["Replicas"] = count
            point(spec, refs)

        def still_recorded(service: dict[str, Any]) -> bool:
            version = int(service["Version"]["Index"])
            return replicas_of(service["Spec"]) == 0 and target.version in (None, version)

        sent = self._update(target, scale, still_recorded)
        if sent is None:
            logger.warning(
                "{} was scaled or updated by someone else meanwhile; left as it is",
                target.title,
                service=target.name,
            )
            return
        try:
            self._wait_running(target, sent["TaskTemplate"], count)
        except DockerError as error:  # scaled back all the same: no one else's count now
            raise NotReadyError(str(error)) from error
        log_done("start", target, time.monotonic() - began, f" (scaled to {count})")

    def restart(self, target: ServiceTarget) -> None:
        """`service update --force`: every task replaced, one after the other."""
        began = time.monotonic()
        expected = target.replicas if target.replicas is not None else self._nodes(target)
        refs = self._wanted_anyway(target, "restarted")

        def force(spec: Spec) -> None:
            template = spec["TaskTemplate"]
            template["ForceUpdate"] = int(template.get("ForceUpdate", 0)) + 1
            point(spec, refs)

        sent = self._update(target, force)
        if sent is not None:  # always: the force counter moved
            self._wait_running(target, sent["TaskTemplate"], expected)
        log_done("restart", target, time.monotonic() - began, " (service update --force)")

    def signal(self, target: ServiceTarget, name: str) -> None:
        """Send the signal to every running task on this node (others cannot be reached)."""
        node = self._node()
        tasks = [t for t in self._tasks(target.id, running=True) if runs(t)]
        here = [t for t in tasks if node is None or t.get("NodeID") == node]
        for task in here:
            container = task["Status"]["ContainerStatus"]["ContainerID"]
            call(f"signal a task of {target.title}", self._api.kill, container, signal=name)
        logger.info(
            "sent {} to {} task(s) of {}", name, len(here), target.title, service=target.name
        )
        if elsewhere := len(tasks) - len(here):
            logger.warning(
                "{} task(s) of {} run on other nodes and got no {}: unset RELOAD_SIGNAL to have "
                "the service restarted (service update --force) instead",
                elsewhere,
                target.title,
                name,
                service=target.name,
            )

    def deliver(self, targets: Sequence[ServiceTarget]) -> list[str]:
        """Secret mode: point every service at the lineages' current secrets (the swap is its
        reload), then remove the versions no service uses any more. Never raises: the errors,
        one line each (a lineage that cannot be delivered keeps the references it has)."""
        if self._store is None or not targets:
            return []
        try:
            refs = self._store.wanted()
        except SidecarError as error:  # the secrets cannot even be listed
            return [str(error)]
        errors = each(lambda t: self._swap(t, refs), targets)
        if not errors:  # a version still referenced would be refused anyway
            errors += self._store.prune(refs)
        return [*refs.problems, *errors]

    def _swap(self, target: ServiceTarget, refs: Wanted) -> None:
        """Point the service at `refs`; nothing is sent (nor logged) when it has them."""
        began = time.monotonic()
        expected = target.replicas if target.replicas is not None else self._nodes(target)
        sent = self._update(target, lambda s: point(s, refs))
        if sent is None:
            return
        if expected:
            self._wait_running(target, sent["TaskTemplate"], expected)
        logger.info(
            "{} now reads the current certificates from its secrets ({}) in {:.2f}s",
            target.title,
            ", ".join(refs.names),
            time.monotonic() - began,
            service=target.name,
            event="restart",
        )

    def _wanted_anyway(self, target: ServiceTarget, doing: str) -> Wanted:
        """The references for an update that goes out whatever they are (a scale-back, a
        restart); see `secret_store.wanted_anyway`."""
        if self._store is None:
            return Wanted()
        return wanted_anyway(self._store, target, doing)

    def _update(
        self,
        target: ServiceTarget,
        change: Callable[[Spec], None],
        still_ours: Callable[[dict[str, Any]], bool] | None = None,
    ) -> Spec | None:
        """Apply `change` to the current spec and send all of it back, verbatim otherwise; the
        spec sent. A concurrent change ("update out of sequence") is retried on the newer spec.
        None when nothing was sent: `still_ours` (asked of the service as read, at every
        attempt) says it is no longer the one meant, or the change changes nothing."""
        for attempt in range(UPDATE_TRIES):
            service = call(f"inspect {target.title}", self._api.inspect_service, target.id)
            if still_ours is not None and not still_ours(service):
                return None
            spec: Spec = copy.deepcopy(service["Spec"])
            change(spec)
            if spec == service["Spec"]:
                return None
            try:
                result = call(f"update {target.title}", self._post_spec, target.id, service, spec)
            except DockerError as error:
                if attempt + 1 < UPDATE_TRIES and "out of sequence" in str(error.__cause__):
                    continue
                raise
            for warning in (result or {}).get("Warnings") or []:
                logger.debug("Docker on the update of {}: {}", target.title, warning)
            return spec
        raise AssertionError  # pragma: no cover (the last attempt returns or raises)

    def _post_spec(self, ident: str, service: dict[str, Any], spec: Spec) -> Any:  # noqa: ANN401
        """POST /services/ID/update with the spec as it is: docker-py's update_service rebuilds
        it from its arguments (dropping or moving what it does not know)."""
        version = {"version": service["Version"]["Index"]}
        return post_json(self._api, "/services/{0}/update", ident, spec, version)

    def _wait_running(self, target: ServiceTarget, template: Spec, count: int) -> None:
        """Until `count` tasks of the new spec run and no task of an older one is meant to; while
        the sidecar itself stops, the accepted update is enough (swarm starts the tasks)."""
        began = time.monotonic()
        wanted = fingerprint(template)
        while not self._stopping.requested():
            service = call(f"inspect {target.title}", self._api.inspect_service, target.id)
            status = service.get("UpdateStatus") or {}
            if status.get("State") in FAILED_UPDATE:
                raise DockerError(
                    f"{target.title}: its update is {status['State']}: {status.get('Message', '')}"
                )
            tasks = self._tasks(target.id)
            desired = [t for t in tasks if t["DesiredState"] == "running"]
            ready = [t for t in desired if runs(t) and fingerprint(t["Spec"]) == wanted]
            if len(ready) >= count and len(ready) == len(desired):
                return
            if time.monotonic() - began > self._start_timeout:
                raise DockerError(
                    f"{target.title}: {len(ready)} of {count} task(s) running "
                    f"{self._start_timeout:.0f}s after the update (START_TIMEOUT)"
                    + _last_error(tasks)
                )
            time.sleep(POLL)

    def _nodes(self, target: ServiceTarget) -> int:
        """How many tasks a global service runs now (one per node): the count to wait for."""
        return max(1, len({t.get("NodeID") for t in self._tasks(target.id, running=True)}))

    def _tasks(self, ident: str, *, running: bool = False) -> list[dict[str, Any]]:
        filters = {"service": ident, **({"desired-state": "running"} if running else {})}
        return call("list tasks", self._api.tasks, filters=filters)

    def _services(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        try:
            return call("list services", self._api.services, filters=filters)
        except DockerError as error:
            if status_of(error) == NOT_MANAGER:
                raise DockerError(
                    "Swarm services need a manager's Docker API, and this engine is no swarm "
                    "manager: run the sidecar on a manager node (constraint node.role == manager)"
                ) from error
            raise

    def _node(self) -> str | None:
        """This node's id (from the labels of the sidecar's task), None outside a task."""
        if self._own_id is None:
            return None
        own = call("inspect the sidecar's container", self._api.inspect_container, self._own_id)
        return ((own.get("Config") or {}).get("Labels") or {}).get(NODE_ID)


def _last_error(tasks: Sequence[dict[str, Any]]) -> str:
    errors = [t["Status"]["Err"] for t in tasks if t["Status"].get("Err")]
    return f"; last task error: {errors[-1]}" if errors else ""
