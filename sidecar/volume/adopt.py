"""Adopting lineages certbot made elsewhere: what was found in a renewal conf, and what to do.

Pure decisions over plain data (`volume.found`: `Found`, read by `volume.tree`, and what this
container offers, `Here`); the authenticator's rules are in `volume.authenticators`, the CA's and
account's in `volume.servers`, saved hooks are read by `volume.hooks`. The decision is written
into the renewal conf itself (`volume.tree` rewrites it, with a timestamped backup beside it), so
that the conf stays certbot's single source of truth: one `certbot renew` renews every lineage
the way its conf says, whether the sidecar or an operator runs it, and all lineages on the
sidecar's authenticator share one app outage.

- A lineage saved with an authenticator that cannot work in the container (apache, nginx,
  standalone — the app holds port 80 —, webroot with a path missing here, manual without a usable
  auth hook, a plugin not installed) is renewed the sidecar's way: authenticator `sidecar`, or
  with CHALLENGE=dns the sidecar's DNS plugin and DNS_CREDENTIALS.
- A DNS plugin lineage (`dns-cloudflare`) keeps its plugin and credentials when the plugin is in
  the image and the credentials file is here; otherwise the finding names the extra to build and
  the path to mount (a wildcard cannot move to HTTP-01).
- Installers (apache, nginx, ...) configure a web server that is not here: `installer = null`.
- Hooks whose command cannot run here (not found, or a host service manager such as `systemctl`)
  are removed; the post-hook is the sidecar's.
- Lineages in DOMAINS use ACME_SERVER; others keep the server they were saved with (never moved
  to another CA behind the operator's back). No saved server is certbot's default, Let's Encrypt
  production, and a production lineage is never moved to a staging ACME_SERVER.
- An `account` certbot can load is kept; where certbot would find several accounts for the server
  the lineage's account is pinned, and renewed without `--server` (under which certbot ignores it).
- The four `live/` links are checked as certbot checks them; a safe repair is planned (`layout`),
  otherwise the lineage cannot be renewed and the plan says how to repair it by hand.
- `config_dir`/`work_dir`/`logs_dir` and the lineage's file paths are made to name this tree.
- A lineage in IGNORE_LINEAGES gets certbot's own `autorenew = False` and is otherwise left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sidecar.volume.authenticators import Stuck, adopted_authenticator
from sidecar.volume.confs import AUTHENTICATOR, PARAMS, POST_HOOK, TOP, Edit, quote
from sidecar.volume.hooks import hook_problem
from sidecar.volume.lineages import rebase
from sidecar.volume.renewal_keys import (
    FILES,
    NO_INSTALLER,
    as_text,
    credentials_key,
    plugin_keys,
    saved_server,
    shown,
)
from sidecar.volume.servers import account_for, server_for, server_label, sidecars_server

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sidecar.volume.found import Found, Here
    from sidecar.volume.layout import Step

Action = Literal["sidecar", "own", "ignore", "cannot"]

IGNORE_MARK = "# certbot-sidecar: IGNORE_LINEAGES (remove the name there to renew it again)"
_SUFFIX = re.compile(r"^(?P<base>.+)-(?P<n>\d{4})$")
_WRITTEN_HERE = re.compile(r"^\d+ seconds$")  # the form the sidecar writes RENEW_BEFORE_EXPIRY in
RENEW_MARK = "# certbot-sidecar: RENEW_BEFORE_EXPIRY (removed again when it is unset)"


@dataclass(frozen=True, slots=True)
class Decision:
    """What the sidecar does with one lineage, and the conf changes that make it so."""

    name: str
    action: Action
    does: str
    found: str
    in_domains: bool
    names: tuple[str, ...] = ()
    edits: tuple[Edit, ...] = ()
    changes: tuple[str, ...] = ()  # the edits, described against the values found
    problems: tuple[str, ...] = ()
    authenticator: str | None = None  # after the edits
    server: str | None = None  # after the edits: the CA certbot renews it at
    repairs: tuple[Step, ...] = ()  # the live/ links and archive copies `tree.apply` makes
    pinned_account: str | None = None  # several accounts for its CA: renewed naming this one
    parse_failure: bool = False  # certbot cannot load it: a parse failure at every `renew`

    @property
    def renewable(self) -> bool:
        return self.action in ("sidecar", "own")


def _wanted_paths(found: Found, base: str) -> dict[str, str]:
    """Where this tree holds the lineage's files, following the conf's own paths as certbot does
    (a renamed conf names another `live/` and `archive/` directory)."""
    top = found.top
    lives = [rebase(top[k], "live", base) for k in FILES if top.get(k)]
    live = next((p.rsplit("/", 2)[-2] for p in lives if p), found.name)
    archive = rebase(top["archive_dir"], "archive", base) if top.get("archive_dir") else None
    want = {"archive_dir": archive or f"{base}/archive/{found.name}"}
    want.update({kind: f"{base}/live/{live}/{kind}.pem" for kind in FILES})
    return want


def _path_edits(found: Found, here: Here) -> tuple[list[Edit], list[str]]:
    """Make archive_dir and the four live links name this tree (a tree made elsewhere)."""
    edits: list[Edit] = []
    problems: list[str] = []
    for key, path in _wanted_paths(found, here.config_dir.rstrip("/")).items():
        have = found.top.get(key)
        if have == path or (have is not None and here.exists(have)):
            continue
        if here.exists(path) or (key != "archive_dir" and _repaired(found, path)):
            why = "missing" if have is None else "the tree was made under another directory"
            edits.append(Edit(TOP, key, path, why))
        else:
            problems.append(f"{key} {have or '(missing)'} does not exist here, nor does {path}")
    return edits, problems


def _repaired(found: Found, path: str) -> bool:
    """The layout repair makes this live/ link (it is not there yet)."""
    return any(str(step.link) == path for step in found.layout.steps)


def _hook_edits(found: Found, here: Here) -> list[Edit]:
    params = found.params
    edits = []
    for key in ("pre_hook", "renew_hook", "deploy_hook"):
        command = params.get(key)
        if command and (why := hook_problem(str(command), here.runnable)):
            edits.append(Edit(PARAMS, key, None, why))
    post = params.get("post_hook")
    if post != POST_HOOK:
        why = "starts the app again" if not post else "the sidecar's post-hook starts the app"
        edits.append(Edit(PARAMS, "post_hook", POST_HOOK, why))
    return edits


def _describe_found(found: Found, in_domains: bool, now: datetime | None) -> str:
    params = found.params
    parts = []
    if found.cert is not None:
        cert = found.cert
        parts.append(",".join(cert.names) or "no names")
        days = f" ({(cert.not_after - now) / timedelta(days=1):.0f} days)" if now else ""
        parts.append(f"expires {cert.not_after:%Y-%m-%d}{days}")
        parts.append(str(params.get("key_type") or cert.key_type))
    elif found.cert_error:
        parts.append(found.cert_error)
    parts.append(f"server {server_label(params.get('server'))}")
    if params.get("account"):
        parts.append(f"account {str(params['account'])[:8]}")
    auth = params.get("authenticator") or "none"
    inst = params.get("installer") or "none"
    parts.append(f"{auth}/{inst}")
    parts.extend(
        f"{key} {quote(shown(key, params[key]))}"
        for key in ("pre_hook", "renew_hook")
        if key in params
    )
    if params.get("post_hook") and params.get("post_hook") != POST_HOOK:
        parts.append(f"post_hook {quote(shown('post_hook', params['post_hook']))}")
    if found.adopted_from:
        parts.append(f"adopted from {found.adopted_from} (backup {found.backups[0]})")
    parts.append("in DOMAINS" if in_domains else "not in DOMAINS")
    return "; ".join(parts)


def _stop(found: Found, here: Here, *, in_domains: bool) -> Verdict | None:
    """A lineage the sidecar does not renew: ignored, or impossible to renew as it is."""
    if found.conf_error:
        return _cannot(found.conf_error, [found.conf_error])
    autorenew_off = str(found.params.get("autorenew", "True")).lower() == "false"
    if not in_domains and (found.name in here.ignore or here.ignore_unlisted):
        mark = Edit(PARAMS, "autorenew", "False", "IGNORE_LINEAGES", comment=IGNORE_MARK)
        edits = () if autorenew_off else (mark,)
        return Verdict("ignore", "left alone: not renewed (IGNORE_LINEAGES)", edits)
    if autorenew_off and not (found.autorenew_marked or in_domains):
        return Verdict("ignore", "left alone: its conf says autorenew = False (certbot skips it)")
    if found.cert is None and not found.layout.steps:
        why = "; ".join(found.layout.blocking) or found.cert_error or "no current certificate"
        return _cannot(why, [why])
    return None


def _installer_edits(found: Found, here: Here, removed: set[str]) -> list[Edit]:
    installer = str(found.params.get("installer") or "")
    if installer == here.installer:
        return []
    if installer.lower() in NO_INSTALLER:
        why = "the sidecar's installer starts the app as soon as the certificate is saved"
        return [Edit(PARAMS, "installer", here.installer, why)]
    why = f"no {installer} here: the app reads the files itself"
    edits = [Edit(PARAMS, "installer", here.installer, why)]
    edits += [
        Edit(PARAMS, k, None, f"an option of {installer}")
        for k in plugin_keys(found.params, installer)
        if k not in removed
    ]
    return edits


def _dir_edits(found: Found, here: Here) -> list[Edit]:
    wanted = (("config_dir", here.config_dir), ("work_dir", here.work_dir))
    return [
        Edit(PARAMS, key, want, "this container's directory")
        for key, want in (*wanted, ("logs_dir", here.logs_dir))
        if key in found.params and found.params[key] != want
    ]


def _renew_before_edits(found: Found, here: Here) -> list[Edit]:
    """RENEW_BEFORE_EXPIRY, where certbot reads it: the conf's top-level `renew_before_expiry`;
    once the variable is unset, the value the sidecar wrote (`N seconds`) is removed again, so a
    stale fixed interval never outlives it (with short-lived certificates it would renew at
    every check). A value the operator wrote (`30 days`) is theirs and stays."""
    saved = found.top.get("renew_before_expiry")
    if here.renew_before_expiry is None:
        if saved is not None and _WRITTEN_HERE.match(saved):
            return [Edit(TOP, "renew_before_expiry", None, "RENEW_BEFORE_EXPIRY is not set")]
        return []
    value = f"{int(here.renew_before_expiry)} seconds"
    if saved == value:
        return []
    return [Edit(TOP, "renew_before_expiry", value, "RENEW_BEFORE_EXPIRY", comment=RENEW_MARK)]


def _outcome(
    found: Found, auth: str | None, credentials: str | None, server: str, here: Here
) -> tuple[Action, str]:
    """The sidecar's way: its authenticator; with CHALLENGE=dns also its DNS plugin, for a
    lineage in DOMAINS (DNS_CREDENTIALS apply) or saved with DNS_CREDENTIALS."""
    in_domains = found.name in here.domains
    ours = auth == AUTHENTICATOR or (
        auth == here.authenticator and (in_domains or credentials == here.credentials)
    )
    way = (
        "authenticator sidecar, app stopped for it"
        if here.authenticator == AUTHENTICATOR
        else f"{here.authenticator}, no stop"
    )
    if ours and server == sidecars_server(here, found.name):
        return "sidecar", f"renewed the sidecar's way ({way})"
    if ours:
        return "own", f"renewed the sidecar's way, at its own CA {server_label(server)}"
    return "own", f"renewed its own way: authenticator {auth}, CA {server_label(server)}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the rules decided for one lineage; `decide` makes it a Decision."""

    action: Action
    does: str
    edits: tuple[Edit, ...] = ()
    problems: tuple[str, ...] = ()
    repairs: tuple[Step, ...] = ()
    pinned_account: str | None = None
    unloadable: bool = False  # certbot cannot load it as it is, and no repair is planned


def _cannot(why: str, problems: Sequence[str], *, unloadable: bool = False) -> Verdict:
    return Verdict("cannot", f"cannot renew it: {why}", (), tuple(problems), unloadable=unloadable)


def decide(found: Found, here: Here, now: datetime | None = None) -> Decision:
    """What to do with one lineage; `edits` make its renewal conf say so, `repairs` its files."""
    in_domains = found.name in here.domains
    verdict = _stop(found, here, in_domains=in_domains) or _adopt(
        found, here, in_domains=in_domains
    )
    values = {**found.top, **found.params}
    after = {e.key: e.value for e in verdict.edits}
    loads = (found.layout.loads or bool(verdict.repairs)) and not verdict.unloadable
    root = Path(here.config_dir)
    return Decision(
        name=found.name,
        action=verdict.action,
        does=verdict.does,
        found=_describe_found(found, in_domains, now),
        in_domains=in_domains,
        names=found.cert.names if found.cert else (),
        edits=verdict.edits,
        changes=(
            *(f"repair: {step.describe(root)}" for step in verdict.repairs),
            *(e.describe(shown(e.key, values.get(e.key))) for e in verdict.edits),
        ),
        problems=verdict.problems,
        authenticator=after.get("authenticator", as_text(found.params.get("authenticator"))),
        server=after.get("server", saved_server(found.params)),
        repairs=verdict.repairs,
        pinned_account=verdict.pinned_account,
        parse_failure=bool(found.conf_error) or not loads,
    )


def _adopt(found: Found, here: Here, *, in_domains: bool) -> Verdict:
    """A lineage the sidecar renews, when it can: the edits that make its conf work here."""
    edits = []
    if str(found.params.get("autorenew", "True")).lower() == "false":
        why = "listed in DOMAINS" if in_domains else "no longer in IGNORE_LINEAGES"
        edits.append(Edit(PARAMS, "autorenew", None, why))
    path_edits, problems = _path_edits(found, here)
    unloadable = bool(problems) or not found.layout.loads  # else certbot loads it, as it is
    if problems := [*problems, *found.layout.blocking]:
        notes = [*found.layout.problems, *problems]
        return _cannot("; ".join(problems), notes, unloadable=unloadable)
    moved = adopted_authenticator(found, here)
    if isinstance(moved, Stuck):
        return _cannot(moved.why, [moved.why])
    edits += [*path_edits, *moved.edits]
    edits += _installer_edits(found, here, {e.key for e in edits})
    edits += _hook_edits(found, here) + _dir_edits(found, here) + _renew_before_edits(found, here)
    server, server_edits, notes = server_for(found, here, in_domains=in_domains)
    account_edits, pinned = account_for(found, here, server)
    if pinned:
        notes.append(
            f"{len(here.accounts(server).listed)} accounts exist for {server_label(server)}: "
            f"renewed with account {pinned} named (certbot would ask which otherwise)"
        )
    saved = {**found.params, **{e.key: e.value for e in edits}}
    auth = moved.authenticator
    credentials = as_text(saved.get(credentials_key(auth))) if auth else None
    action, does = _outcome(found, auth, credentials, server, here)
    return Verdict(
        action,
        does,
        (*edits, *server_edits, *account_edits),
        (*found.layout.problems, *notes),
        found.layout.steps,
        pinned,
    )


def ignored(decisions: Sequence[Decision]) -> frozenset[str]:
    """Lineages certbot will skip (autorenew = False): not part of what a renewal expects."""
    return frozenset(d.name for d in decisions if d.action == "ignore")


def suffix_base(name: str) -> str | None:
    """`example.com-0001` -> `example.com` (certbot's numbered copy of a lineage)."""
    match = _SUFFIX.match(name)
    return match["base"] if match else None
