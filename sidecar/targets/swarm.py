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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loguru import logger

from sidecar.errors import DockerError, NotReadyError, SidecarError
from sidecar.targets import secrets
from sidecar.targets.base import DEFAULT_STOP_TIMEOUT, EPOCH, SERVICE, Target, each
from sidecar.targets.engine import call, log_done, parse_docker_time, status_of
from sidecar.volume import access, lineages
from sidecar.volume.certs import now_utc

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    from sidecar.settings import Settings
    from sidecar.shutdown import StopRequest
    from sidecar.targets.engine import Client
    from sidecar.targets.secrets import Version

STOPPED_AT = "certbot-sidecar.stopped-at"  # service label: when the sidecar scaled it to 0
NODE_ID = "com.docker.swarm.node.id"  # on a task's container
SERVICE_ID = "com.docker.swarm.service.id"
LIVE = frozenset(
    {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running"}
)
FAILED_UPDATE = frozenset({"paused", "rollback_started", "rollback_paused", "rollback_completed"})
STOP_MARGIN = 10.0  # beyond the stop grace period, before tasks still running are an error
UPDATE_TRIES = 3  # a concurrent change of the spec makes an update "out of sequence"
POLL = 0.05
IN_USE, NOT_FOUND, CONFLICT, NOT_MANAGER = 400, 404, 409, 503  # the engine's answers
READ_ONLY = 0o444
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
) -> Target:
    """A Target from a service's inspect data and its tasks."""
    spec = service["Spec"]
    replicas = replicas_of(spec)
    labels = spec.get("Labels") or {}
    started = [parse_docker_time(t["Status"].get("Timestamp", "")) for t in tasks if runs(t)]
    grace = spec.get("TaskTemplate", {}).get("ContainerSpec", {}).get("StopGracePeriod")
    return Target(
        id=service["ID"],
        name=spec["Name"],
        labels=labels,
        running=replicas is None or replicas > 0,
        started_at=min(started, default=EPOCH),
        finished_at=_stamp(labels.get(STOPPED_AT, "")),
        stop_timeout=grace / 1e9 if grace else DEFAULT_STOP_TIMEOUT,
        kind=SERVICE,
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

    def listed(self, names: Sequence[str], label: str | None) -> list[Target]:
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

    def inspect(self, ident: str, kind: str = SERVICE) -> Target | None:
        del kind  # services only
        try:
            service = call(f"inspect service {ident}", self._api.inspect_service, ident)
            tasks = self._tasks(ident, running=True)
        except DockerError as error:
            if status_of(error) == NOT_FOUND:
                return None
            raise
        return service_target(service, tasks, secret=self.secret)

    def stop(self, target: Target) -> None:
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

    def start(self, target: Target) -> None:
        """Scale back to `target.replicas` (the record's count), in the same update with the
        current secrets that can be had (never without the scale-back); only while the service
        is still the one the record left: at 0, at the spec version `target` was read with."""
        count = target.replicas or 1
        began = time.monotonic()
        refs = self._wanted_anyway(target, "scaled back")

        def scale(spec: Spec) -> None:
            spec["Mode"]["Replicated"]["Replicas"] = count
            self._point(spec, refs)

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

    def restart(self, target: Target) -> None:
        """`service update --force`: every task replaced, one after the other."""
        began = time.monotonic()
        expected = target.replicas if target.replicas is not None else self._nodes(target)
        refs = self._wanted_anyway(target, "restarted")

        def force(spec: Spec) -> None:
            template = spec["TaskTemplate"]
            template["ForceUpdate"] = int(template.get("ForceUpdate", 0)) + 1
            self._point(spec, refs)

        sent = self._update(target, force)
        if sent is not None:  # always: the force counter moved
            self._wait_running(target, sent["TaskTemplate"], expected)
        log_done("restart", target, time.monotonic() - began, " (service update --force)")

    def signal(self, target: Target, name: str) -> None:
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

    def deliver(self, targets: Sequence[Target]) -> list[str]:
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

    def _swap(self, target: Target, refs: Wanted) -> None:
        """Point the service at `refs`; nothing is sent (nor logged) when it has them."""
        began = time.monotonic()
        expected = target.replicas if target.replicas is not None else self._nodes(target)
        sent = self._update(target, lambda s: self._point(s, refs))
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

    def _wanted_anyway(self, target: Target, doing: str) -> Wanted:
        """The references for an update that goes out whatever they are (a scale-back, a
        restart). Never raises: a lineage that cannot be delivered keeps the references the
        service has (all do when the secrets cannot even be listed), in one warning; the
        cycle's delivery step reports it as its error."""
        if self._store is None:
            return Wanted()
        try:
            refs = self._store.wanted()
        except (SidecarError, OSError, ValueError) as error:
            refs = Wanted(problems=(str(error),))
        except Exception as error:  # noqa: BLE001 (a bug: shown with its traceback, but the update still goes out)
            logger.opt(exception=error).error("An unexpected error occurred reading the secrets")
            refs = Wanted(problems=(f"{type(error).__name__}: {error}",))
        if refs.problems:
            logger.warning(
                "{}: {} without the current certificates' secrets: {}",
                target.title,
                doing,
                "; ".join(refs.problems),
                service=target.name,
            )
        return refs

    @staticmethod
    def _point(spec: Spec, refs: Wanted) -> None:
        if not refs.refs:
            return  # volume mode, or no certificate yet
        container = spec["TaskTemplate"].setdefault("ContainerSpec", {})
        new = secrets.swapped(container.get("Secrets") or [], refs.refs, refs.ours)
        if new is not None:
            container["Secrets"] = new

    def _update(
        self,
        target: Target,
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
        api: Any = self._api
        url = api._url("/services/{0}/update", ident)  # noqa: SLF001
        response = api._post_json(url, data=spec, params={"version": service["Version"]["Index"]})  # noqa: SLF001
        return api._result(response, json=True)  # noqa: SLF001

    def _wait_running(self, target: Target, template: Spec, count: int) -> None:
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

    def _nodes(self, target: Target) -> int:
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


@dataclass(frozen=True, slots=True)
class Wanted:
    """The secret references a service should have now: those of the lineages delivered
    (`serials`: lineage -> the serial its secrets hold); `versions`: every secret the sidecar
    has for its lineages; `problems`: the lineages that cannot be delivered now, and why."""

    refs: tuple[dict[str, Any], ...] = ()
    serials: Mapping[str, str] = field(default_factory=dict)
    versions: tuple[Version, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [str(r["SecretName"]) for r in self.refs]

    @property
    def ours(self) -> frozenset[str]:
        """The references a swap replaces: only those of the lineages delivered."""
        return secrets.replaced(self.versions, self.serials)


class SecretStore:
    """The lineages' certificates as versioned secrets: made when missing, removed when unused.

    Private keys go from the volume into the secret only (the swarm's encrypted store; each node
    gets it only for a task that references it); never into a log line.
    """

    def __init__(
        self,
        client: Client,
        config_dir: Path,
        names: Sequence[str],
        files: secrets.Files,
    ) -> None:
        self._api = client.api
        self._config_dir = config_dir
        self._names = tuple(names)
        self._files = files

    def versions(self) -> list[Version]:
        """Every secret the sidecar made for its lineages."""
        found = []
        for name in self._names:
            listed = call(
                "list secrets",
                self._api.secrets,
                filters={"label": f"{secrets.LINEAGE_LABEL}={name}"},
            )
            found += [v for v in map(secrets.version_of, listed) if v and v.lineage == name]
        return found

    def wanted(self) -> Wanted:
        """The references to each lineage's current versions, made first where missing. A
        lineage that cannot be read (or whose secrets cannot be made) is a problem, left out;
        only listing the secrets raises."""
        versions = self.versions()
        refs: list[dict[str, Any]] = []
        serials: dict[str, str] = {}
        problems: list[str] = []
        for name in self._names:
            try:
                pems = lineages.read_pems(self._config_dir, name)
                if pems is None:
                    continue  # no certificate yet
                made = [self._version(versions, name, part, pems) for part in secrets.PARTS]
            except (SidecarError, OSError, ValueError) as error:
                problems.append(f"{name}: {error} (its services keep the secrets they have)")
                continue
            versions += [v for v in made if v not in versions]
            refs += [secrets.reference(v, self._files) for v in made]
            serials[name] = pems.cert.serial_hex
        return Wanted(tuple(refs), serials, tuple(versions), tuple(problems))

    def prune(self, wanted: Wanted) -> list[str]:
        """Remove the versions of the lineages delivered that hold another certificate than the
        current one, once no service uses them (Swarm refuses to remove a secret in use); never
        a version of a lineage that could not be read. The errors."""
        errors = []
        for version in secrets.stale(wanted.versions, wanted.serials):
            try:
                call(f"remove secret {version.name}", self._api.remove_secret, version.id)
            except DockerError as error:
                if status_of(error) == NOT_FOUND:
                    continue
                if status_of(error) == IN_USE:  # "secret X is in use by the following service"
                    logger.info("secret {} is still in use ({})", version.name, error)
                    continue
                errors.append(str(error))
                continue
            logger.info("removed secret {} (no service uses it)", version.name)
        return errors

    def _version(
        self, versions: Sequence[Version], lineage: str, part: str, pems: lineages.Pems
    ) -> Version:
        """The version holding `part` of the current certificate, made if missing."""
        serial = pems.cert.serial_hex
        for version in versions:
            if (version.lineage, version.part, version.serial) == (lineage, part, serial):
                return version
        data = pems.fullchain if part == "fullchain" else pems.privkey
        return self._create(lineage, part, serial, data)

    def _create(self, lineage: str, part: str, serial: str, data: bytes) -> Version:
        if len(data) > secrets.DATA_MAX:
            raise DockerError(f"{lineage}: {part}.pem is larger than a secret may be (500 KiB)")
        name = secrets.secret_name(lineage, part, serial)
        labels = secrets.labels(lineage, part, serial)
        try:
            made = call(f"create secret {name}", self._api.create_secret, name, data, labels=labels)
        except DockerError as error:
            if status_of(error) != CONFLICT:
                raise
            listed = call(f"list secret {name}", self._api.secrets, filters={"name": name})
            found = [s for s in listed if s["Spec"]["Name"] == name]  # made meanwhile
            if not found:
                raise DockerError(f"secret {name} exists, yet it is not listed") from error
            made = found[0]
        logger.info("created secret {} ({} of {}, serial {})", name, part, lineage, serial)
        return secrets.Version(str(made["ID"]), name, lineage, part, serial)


def secret_store(client: Client, config: Settings) -> SecretStore | None:
    """CERT_DELIVERY=secret: the store of the configured lineages, files owned and moded as
    FILES_UID/FILES_GID/FILES_PERMS say (root, 0444 and 0400 by default; never writable, as
    secrets are read-only)."""
    if config.cert_delivery != "secret":
        return None
    policy = access.policy_for(config)
    files = secrets.Files(
        uid=config.files_uid or 0,
        gid=config.files_gid or 0,
        cert_mode=policy.cert_mode & READ_ONLY if policy.active else 0o444,
        key_mode=policy.key_mode & READ_ONLY if policy.active else 0o400,
    )
    return SecretStore(client, config.config_dir, [s.name for s in config.domains], files)
