"""Which authenticator renews an adopted lineage: the one it was saved with, where that can
work in this container, else the sidecar's own (pure; the container's facts come in `Here`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sidecar.volume.confs import AUTHENTICATOR, PARAMS, Edit
from sidecar.volume.hooks import hook_problem
from sidecar.volume.renewal_keys import as_text, credentials_key, plugin_keys

if TYPE_CHECKING:
    from sidecar.volume.certs import CertInfo
    from sidecar.volume.found import Found, Here


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [str(v) for v in value.values()]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if str(v)]
    return [str(value)] if str(value) else []


def _webroot_problem(params: Mapping[str, Any], here: Here) -> str | None:
    paths = _as_list(params.get("webroot_path")) + _as_list(params.get("webroot_map"))
    if not paths:
        return "webroot without a saved path"
    missing = sorted({p for p in paths if not here.exists(p)})
    if missing:
        return f"webroot path {', '.join(missing)} does not exist in the container"
    return None


def _manual_problem(params: Mapping[str, Any], here: Here) -> str | None:
    hook = params.get("manual_auth_hook")
    if not hook:
        return "manual without an auth hook needs a person at the keyboard"
    why = hook_problem(str(hook), here.runnable)
    return f"its manual auth hook cannot run here: {why}" if why else None


_AUTH_CHECKS: dict[str, Callable[[Mapping[str, Any], Here], str | None]] = {
    AUTHENTICATOR: lambda _params, _here: None,
    "standalone": lambda _params, _here: "standalone cannot bind port 80 while the app holds it",
    "webroot": _webroot_problem,
    "manual": _manual_problem,
}


def _dns_problem(auth: str, params: Mapping[str, Any], here: Here) -> str | None:
    """A DNS plugin lineage renews its own way when the plugin is in the image and the
    credentials file it saved is there too."""
    if why := here.plugin_problem(auth.removeprefix("dns-")):
        return why
    path = as_text(params.get(credentials_key(auth)))
    if path and not here.exists(path):
        return f"its credentials file {path} is not in the container (mount it at {path})"
    return None


def authenticator_problem(found: Found, here: Here) -> str | None:
    """Why the saved authenticator cannot renew this lineage in the container, or None."""
    auth = str(found.params.get("authenticator") or "")
    if not auth:
        return "no authenticator saved (certbot skips such a lineage)"
    if check := _AUTH_CHECKS.get(auth):
        return check(found.params, here)
    if auth.startswith("dns-"):
        return _dns_problem(auth, found.params, here)
    return None if auth in here.plugins else f"the {auth} plugin is not installed in the container"


def _http01_impossible(cert: CertInfo | None, here: Here) -> str | None:
    if cert is None or here.authenticator != AUTHENTICATOR:
        return None  # with CHALLENGE=dns the sidecar's own way answers DNS-01
    wild = [n for n in cert.names if n.startswith("*.")]
    if wild:
        return f"{', '.join(wild)} needs DNS-01, which the sidecar answers with CHALLENGE=dns"
    return None


@dataclass(frozen=True, slots=True)
class Moved:
    """The lineage's authenticator once adopted (its own, or the sidecar's), and the edits that
    make it so."""

    authenticator: str | None
    edits: tuple[Edit, ...] = ()


@dataclass(frozen=True, slots=True)
class Stuck:
    """Neither its own authenticator nor the sidecar's can renew the lineage: why."""

    why: str


def adopted_authenticator(found: Found, here: Here) -> Moved | Stuck:
    """Its own authenticator where it works here, else the sidecar's (with the edits moving the
    lineage to it); Stuck when neither can (a wildcard needs DNS-01)."""
    params = found.params
    why_not = authenticator_problem(found, here)
    if not why_not:
        return Moved(str(params.get("authenticator")))
    if impossible := _http01_impossible(found.cert, here):
        return Stuck(f"{why_not}; {impossible}")
    auth = str(params.get("authenticator") or "")
    edits = [Edit(PARAMS, "authenticator", here.authenticator, why_not)]
    ours = credentials_key(here.authenticator) if here.credentials else None
    edits += [
        Edit(PARAMS, k, None, f"an option of {auth}")
        for k in plugin_keys(params, auth)
        if k != ours
    ]
    if ours and here.credentials:
        edits.append(Edit(PARAMS, ours, here.credentials, "DNS_CREDENTIALS"))
    if "pref_challs" in params:
        edits.append(Edit(PARAMS, "pref_challs", None, "the sidecar chooses the challenge"))
    return Moved(here.authenticator, tuple(edits))
