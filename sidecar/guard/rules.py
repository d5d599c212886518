"""What the guard lets through to the engine (pure): exactly the calls README "Privileges"
lists, and for each call that changes something, only on the app's targets as APP_CONTAINERS,
APP_SERVICES and APP_LABEL select them (`targets.marks`, the rules `select_targets` goes by) and
on the sidecar's own secrets. Every other call is refused, with the rule that refuses it.

The objects are looked up through `Look` (the guard's own reads of the engine), never taken from
the request: a container's name and labels, a service's current spec, a secret's labels.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs

from sidecar.targets.marks import (
    LINEAGE_LABEL,
    PART_LABEL,
    SERIAL_LABEL,
    SERVICE_ID,
    STOPPED_AT,
    TASK_ID,
    container_selected,
    service_selected,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from sidecar.targets.spec import TargetsSpec

Object = dict[str, Any]
_VERSION = re.compile(r"^/v\d+\.\d+(?=/)")
_ID = r"([A-Za-z0-9][A-Za-z0-9_.-]*)"  # an id or a name: one path segment, no dots alone
_READS = re.compile(
    r"^(?:(?:GET|HEAD) /_ping"
    r"|GET /(?:version|containers/json|containers/" + _ID + r"/json"
    r"|services|services/" + _ID + r"|tasks|secrets))$"
)
_CONTAINER_ACTION = re.compile(r"^POST /containers/" + _ID + r"/(start|stop|restart|kill)$")
_SERVICE_UPDATE = re.compile(r"^POST /services/" + _ID + r"/update$")
_SECRET_CREATE = re.compile(r"^POST /secrets/create$")
_SECRET_DELETE = re.compile(r"^DELETE /secrets/" + _ID + r"$")
# The query parameters a changing call may carry (docker-py's, for the calls the sidecar makes):
# anything else (`rollback=previous` on a service update) is refused.
_ACTION_PARAMS = frozenset({"t", "timeout", "signal"})
_UPDATE_PARAMS = frozenset({"version"})
_SECRET_KEYS = frozenset({"Name", "Labels", "Data"})  # no Driver, no Templating
_OUR_SECRET = (LINEAGE_LABEL, PART_LABEL, SERIAL_LABEL)


class Look(Protocol):
    """The engine's current view of an object (None: there is none by that id or name)."""

    def container(self, ident: str) -> Object | None: ...

    def service(self, ident: str) -> Object | None: ...

    def secret(self, ident: str) -> Object | None: ...


@dataclass(frozen=True, slots=True)
class Call:
    """One request: its method, its path as sent (with the API version and the query), its body."""

    method: str
    target: str
    body: bytes = b""

    @property
    def path(self) -> str:
        """The path without the API version prefix and without the query."""
        return _VERSION.sub("", self.target.partition("?")[0], count=1)

    @property
    def params(self) -> set[str]:
        return set(parse_qs(self.target.partition("?")[2], keep_blank_values=True))

    @property
    def line(self) -> str:
        return f"{self.method} {self.path}"


def decide(call: Call, spec: TargetsSpec, look: Look) -> str | None:
    """None when the call may go to the engine; otherwise the rule that refuses it."""
    line = call.line
    if _READS.match(line):
        return None
    checks: tuple[tuple[re.Pattern[str], Callable[..., str | None]], ...] = (
        (_CONTAINER_ACTION, _container_action),
        (_SERVICE_UPDATE, _service_update),
        (_SECRET_CREATE, _secret_create),
        (_SECRET_DELETE, _secret_delete),
    )
    for pattern, check in checks:
        if match := pattern.match(line):
            return check(call, spec, look, *match.groups())
    return f"{line} is not a call the sidecar makes (README: Privileges)"


def _container_action(
    call: Call, spec: TargetsSpec, look: Look, ident: str, action: str
) -> str | None:
    if extra := call.params - _ACTION_PARAMS:
        return f"{action} of a container with the parameters {', '.join(sorted(extra))}"
    found = look.container(ident)
    if found is None:
        return f"{action} of container {ident}: no such container"
    name = str(found.get("Name", ident)).lstrip("/")
    labels = (found.get("Config") or {}).get("Labels") or {}
    if container_selected(name, labels, spec):
        return None
    if action == "kill" and _task_of_target(labels, spec, look):
        return None  # RELOAD_SIGNAL to a task of a selected service
    return f"{action} of container {name}: not a container APP_CONTAINERS or APP_LABEL selects"


def _task_of_target(labels: Mapping[str, str], spec: TargetsSpec, look: Look) -> bool:
    """The container is a swarm task of a service the settings select."""
    if TASK_ID not in labels or SERVICE_ID not in labels:
        return False
    service = look.service(labels[SERVICE_ID])
    return service is not None and _selected(service, spec)


def _selected(service: Object, spec: TargetsSpec) -> bool:
    own = service.get("Spec") or {}
    return service_selected(str(own.get("Name", "")), own.get("Labels") or {}, spec)


def _service_update(call: Call, spec: TargetsSpec, look: Look, ident: str) -> str | None:
    if extra := call.params - _UPDATE_PARAMS:
        return f"update of a service with the parameters {', '.join(sorted(extra))}"
    found = look.service(ident) or {}
    current: Object = found.get("Spec") or {}
    name = current.get("Name", ident)
    if not _selected(found, spec):
        return f"update of service {name}: not a service APP_SERVICES or APP_LABEL selects"
    posted = _json_object(call.body)
    if posted is None:
        return f"update of service {name}: the body is not a service spec (a JSON object)"
    if beyond(posted) != beyond(current):
        return (
            f"update of service {name}: changes more than the replica count, the label "
            f"{STOPPED_AT}, ForceUpdate and the sidecar's own secret references"
        )
    if foreign := _foreign_secret(current, posted, look):
        return f"update of service {name}: adds or removes the secret {foreign}, not the sidecar's"
    return None


def _foreign_secret(current: Object, posted: Object, look: Look) -> str | None:
    """A secret the update adds or removes that the sidecar did not make (its name)."""
    for ref in _changed_refs(current, posted):
        secret = look.secret(str(ref.get("SecretID", "")))
        if secret is None or not _ours(secret):
            return str(ref.get("SecretName", ref.get("SecretID")))
    return None


def beyond(spec: Object) -> Object:
    """A service spec less what the sidecar's updates change: the replica count, its
    STOPPED_AT label, the force counter and the secret references (checked one by one)."""
    rest = copy.deepcopy(spec)
    replicated = (rest.get("Mode") or {}).get("Replicated")
    if isinstance(replicated, dict):
        replicated.pop("Replicas", None)
    labels = rest.get("Labels")
    if isinstance(labels, dict):
        labels.pop(STOPPED_AT, None)
        if not labels:
            rest.pop("Labels")
    template = rest.get("TaskTemplate")
    if isinstance(template, dict):
        template.pop("ForceUpdate", None)
        container = template.get("ContainerSpec")
        if isinstance(container, dict):
            container.pop("Secrets", None)
    return rest


def _refs(spec: Object) -> dict[str, Object]:
    """A spec's secret references, each by its JSON form."""
    template = spec.get("TaskTemplate") or {}
    refs = (template.get("ContainerSpec") or {}).get("Secrets") or []
    return {json.dumps(r, sort_keys=True): r for r in refs if isinstance(r, dict)}


def _changed_refs(current: Object, posted: Object) -> list[Object]:
    """The references added or removed (or changed: both forms)."""
    before, after = _refs(current), _refs(posted)
    return [r for k, r in {**before, **after}.items() if (k in before) != (k in after)]


def _ours(secret: Object) -> bool:
    labels = (secret.get("Spec") or {}).get("Labels") or {}
    return all(label in labels for label in _OUR_SECRET)


def _secret_create(call: Call, _spec: TargetsSpec, _look: Look) -> str | None:
    posted = _json_object(call.body)
    if posted is None or set(posted) - _SECRET_KEYS:
        return "a secret is created only with a name, labels and data"
    labels = posted.get("Labels") or {}
    if not isinstance(labels, dict) or not all(label in labels for label in _OUR_SECRET):
        return f"secret {posted.get('Name')}: created only with the labels {', '.join(_OUR_SECRET)}"
    return None


def _secret_delete(_call: Call, _spec: TargetsSpec, look: Look, ident: str) -> str | None:
    found = look.secret(ident)
    if found is None or not _ours(found):
        return f"secret {ident}: removed only when it carries the sidecar's labels"
    return None


def _json_object(body: bytes) -> Object | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # not JSON (or not UTF-8), or nested beyond reason
        return None
    return value if isinstance(value, dict) else None
