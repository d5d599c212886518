"""Adopting lineages certbot made elsewhere: what was found in a renewal conf, and what to do.

Pure decisions over plain data (`Found`, read by `sidecar.tree`) and what this container offers
(`Here`). The decision is written into the renewal conf itself (`sidecar.tree` rewrites it, with a
timestamped backup beside it), so that the conf stays certbot's single source of truth: one
`certbot renew` renews every lineage the way its conf says, whether the sidecar or an operator runs
it, and all lineages on the sidecar's authenticator share one app outage.

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
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from sidecar.logs import mask_command
from sidecar.settings import LETSENCRYPT, dns_plugin_problem
from sidecar.volume.accounts import Accounts
from sidecar.volume.confs import AUTHENTICATOR, INSTALLER, PARAMS, POST_HOOK, TOP, Edit, quote
from sidecar.volume.layout import Layout, Step
from sidecar.volume.lineages import rebase

if TYPE_CHECKING:
    from sidecar.volume.certs import CertInfo

Action = Literal["sidecar", "own", "ignore", "cannot"]

IGNORE_MARK = "# certbot-sidecar: IGNORE_LINEAGES (remove the name there to renew it again)"
NO_INSTALLER = frozenset({"", "null", "none"})
FILES = ("cert", "privkey", "chain", "fullchain")
# certbot's own renewal keys (certbot._internal.renewal.CONFIG_ITEMS): never removed as a
# plugin's keys, whatever the plugin is called.
CORE_KEYS = frozenset(
    {
        "config_dir",
        "logs_dir",
        "work_dir",
        "user_agent",
        "server",
        "account",
        "authenticator",
        "installer",
        "deploy_hook",
        "pre_hook",
        "post_hook",
        "http01_address",
        "preferred_chain",
        "key_type",
        "elliptic_curve",
        "preferred_profile",
        "required_profile",
        "rsa_key_size",
        "http01_port",
        "must_staple",
        "allow_subset_of_names",
        "reuse_key",
        "autorenew",
        "pref_challs",
    }
)
# Commands that manage services of the host: in the container they are missing or act on the
# wrong machine, so a hook calling them is never kept.
HOST_TOOLS = frozenset(
    {
        "systemctl",
        "service",
        "invoke-rc.d",
        "rc-service",
        "apache2ctl",
        "apachectl",
        "apache2",
        "httpd",
        "nginx",
        "supervisorctl",
        "docker",
        "podman",
    }
)
HOOK_KEYS = frozenset(
    {
        "pre_hook",
        "post_hook",
        "renew_hook",
        "deploy_hook",
        "manual_auth_hook",
        "manual_cleanup_hook",
    }
)
_SHELL_SPLIT = re.compile(r"&&|\|\||[;|&\n]")
_ENV_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ash", "ksh", "busybox"})
# Programs that run another command: the options of each that take a value, and how many
# operands come before the command (`timeout 10 cmd`, `flock /run/x.lock cmd`).
_WRAPPERS: dict[str, tuple[frozenset[str], int]] = {
    "sudo": (frozenset({"-u", "-g", "-h", "-p", "-C", "-D", "-R", "-r", "-t", "-U", "-T"}), 0),
    "doas": (frozenset({"-u", "-C"}), 0),
    "runuser": (frozenset({"-u", "-g", "-G", "-l", "-s"}), 0),
    "su": (frozenset({"-s", "-g", "-G", "-l"}), 0),
    "env": (frozenset({"-u", "-C", "-S"}), 0),
    "nice": (frozenset({"-n"}), 0),
    "ionice": (frozenset({"-c", "-n", "-p", "-t"}), 0),
    "stdbuf": (frozenset({"-i", "-o", "-e"}), 0),
    "timeout": (frozenset({"-s", "-k"}), 1),
    "flock": (frozenset({"-w", "-E"}), 1),
    "chroot": (frozenset(), 1),
    "nohup": (frozenset(), 0),
    "exec": (frozenset(), 0),
    "command": (frozenset(), 0),
    "time": (frozenset(), 0),
    "chronic": (frozenset(), 0),
    "xargs": (frozenset({"-I", "-n", "-P", "-d", "-L", "-s", "-E"}), 0),
}
_BUILTINS = frozenset({"exec", "command", "time"})
_SUFFIX = re.compile(r"^(?P<base>.+)-(?P<n>\d{4})$")
_WRITTEN_HERE = re.compile(r"^\d+ seconds$")  # the form the sidecar writes RENEW_BEFORE_EXPIRY in
RENEW_MARK = "# certbot-sidecar: RENEW_BEFORE_EXPIRY (removed again when it is unset)"
STAGING_MARK = "staging"  # certbot's util.is_staging: any server URL containing "staging"


@dataclass(frozen=True, slots=True)
class Found:
    """One lineage as the tree has it: its renewal conf's values and its current certificate."""

    name: str
    top: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    conf_error: str | None = None
    autorenew_marked: bool = False
    cert: CertInfo | None = None
    cert_error: str | None = None
    backups: tuple[str, ...] = ()
    adopted_from: str | None = None
    layout: Layout = field(default_factory=Layout)  # its four live/ files, as certbot sees them


@dataclass(frozen=True, slots=True)
class Here:
    """What this container offers, and the settings that decide."""

    config_dir: str
    work_dir: str
    logs_dir: str
    acme_server: str
    domains: frozenset[str]
    ignore: frozenset[str] = frozenset()
    ignore_unlisted: bool = False
    plugins: frozenset[str] = frozenset({"sidecar", "standalone", "webroot", "manual", "null"})
    installer: str = INSTALLER  # the one the sidecar's own certbot runs pass (`--installer`)
    # The sidecar's own authenticator: `sidecar` (HTTP-01), or with CHALLENGE=dns its DNS plugin
    # (`dns-rfc2136`) and DNS_CREDENTIALS, as certbot saves them (`dns_rfc2136_credentials`).
    authenticator: str = AUTHENTICATOR
    credentials: str | None = None
    renew_before_expiry: float | None = None  # RENEW_BEFORE_EXPIRY, seconds
    exists: Callable[[str], bool] = lambda _path: False
    runnable: Callable[[str], bool] = lambda _command: False
    accounts: Callable[[str], Accounts] = lambda _server: Accounts()


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

    def to_json(self) -> dict[str, Any]:
        return {
            "lineage": self.name,
            "in_domains": self.in_domains,
            "names": list(self.names),
            "found": self.found,
            "action": self.action,
            "does": self.does,
            "changes": list(self.changes),
            "problems": list(self.problems),
            "authenticator": self.authenticator,
            "server": self.server,
            "account": self.pinned_account,
        }


def shown(key: str, value: object) -> object:
    """A conf value as logs and `status --json` may show it: hooks with their tokens masked."""
    return mask_command(value) if key in HOOK_KEYS and isinstance(value, str) else value


def is_staging(server: str | None) -> bool:
    return bool(server) and STAGING_MARK in str(server)


def server_label(server: object) -> str:
    """`https://acme-v02.api.letsencrypt.org/directory` -> `acme-v02.api.letsencrypt.org`."""
    if not server:
        return "none (certbot's default: Let's Encrypt)"
    return urlparse(str(server)).netloc or str(server)


def saved_server(params: Mapping[str, Any]) -> str:
    """The CA certbot renews a lineage at when no `--server` is given: its saved `server`, or
    certbot's default (Let's Encrypt production) when none is saved or the ACMEv1 URL is."""
    saved = str(params.get("server") or "")
    if not saved or saved == V1_URI:
        return LETSENCRYPT
    return saved


V1_URI = "https://acme-v01.api.letsencrypt.org/directory"  # certbot's constants.V1_URI


def _pieces(command: str) -> list[list[str]]:
    """The simple commands of a shell line, as words (quotes respected: `bash -c "a && b"`)."""
    out: list[list[str]] = []
    for line in command.splitlines():
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            tokens = list(lexer)
        except ValueError:
            out += [part.split() for part in _SHELL_SPLIT.split(line)]
            continue
        words: list[str] = []
        for token in [*tokens, ";"]:
            if token and set(token) <= set(";&|"):
                out.append(words)
                words = []
            else:
                words.append(token)
    return [p for p in out if p]


def _unwrap(words: list[str], via: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """The program that would actually run, through `sudo -u x`, `bash -c "..."`, `env A=1`,
    `timeout 10`...; with the wrappers it runs through."""
    while words and _ENV_ASSIGN.match(words[0]):
        words = words[1:]
    if not words:
        return []
    first, rest = words[0], words[1:]
    base = first.rsplit("/", 1)[-1]
    if (base in _SHELLS or base in ("su", "runuser")) and (script := _script(rest)) is not None:
        return [found for piece in _pieces(script) for found in _unwrap(piece, (*via, first))]
    if base in _WRAPPERS:
        options, operands = _WRAPPERS[base]
        i = 0
        while i < len(rest) and rest[i].startswith("-"):
            i += 2 if rest[i] in options else 1
            if rest[i - 1] == "--":
                break
        inner = rest[i + operands :]
        if inner:
            return _unwrap(inner, (*via, first))
    if base in _SHELLS and rest and not rest[0].startswith("-"):
        return [(rest[0], (*via, first))]  # `bash /path/script.sh`
    return [(first, via)]


def _script(args: list[str]) -> str | None:
    """The command string of `sh -c '...'` (also `-lc`, `su user -c '...'`), or None."""
    for i, arg in enumerate(args[:-1]):
        if arg.startswith("-") and not arg.startswith("--") and "c" in arg[1:]:
            return args[i + 1]
    return None


def hook_commands(command: str) -> list[str]:
    """The program each part of a shell command line runs (`a && b | c` -> a, b, c), looking
    through wrappers (`sudo -u www-data x`, `bash -c "x"`, `env A=1 x`) to the command they run."""
    return [program for piece in _pieces(command) for program, _via in _unwrap(piece, ())]


def hook_problem(command: str, runnable: Callable[[str], bool]) -> str | None:
    """Why a saved hook cannot run in the container, or None if it can: decided by the command
    that would actually run, then by the wrappers it runs through."""
    for piece in _pieces(command):
        for program, via in _unwrap(piece, ()):
            base = program.rsplit("/", 1)[-1]
            through = f" (run through {' '.join(via)})" if via else ""
            if base in HOST_TOOLS or program.startswith("/etc/init.d/"):
                return f"{base} manages the host's services, not the app's container{through}"
            if not runnable(program):
                return f"{program} is not found in the container{through}"
            for wrapper in via:
                if wrapper not in _BUILTINS and not runnable(wrapper):
                    return f"{wrapper} is not found in the container (it would run {program})"
    return None


def plugin_keys(params: Mapping[str, Any], plugin: str | None) -> list[str]:
    """A plugin's own saved options (`webroot_path`, `apache_server_root`, `dns_x_credentials`)."""
    if not plugin or plugin.lower() in NO_INSTALLER:
        return []
    prefix = plugin.replace("-", "_") + "_"
    return [k for k in params if k.startswith(prefix) and k not in CORE_KEYS]


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [str(v) for v in value.values()]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if str(v)]
    return [str(value)] if str(value) else []


def _text(value: object) -> str | None:
    return None if value is None else str(value)


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


def credentials_key(plugin: str) -> str:
    """Where certbot saves a DNS plugin's credentials file: `dns-ovh` -> `dns_ovh_credentials`."""
    return plugin.replace("-", "_") + "_credentials"


def _dns_problem(auth: str, params: Mapping[str, Any], here: Here) -> str | None:
    """A DNS plugin lineage renews its own way when the plugin is in the image and the
    credentials file it saved is there too."""
    if why := dns_plugin_problem(auth.removeprefix("dns-"), here.plugins):
        return why
    path = _text(params.get(credentials_key(auth)))
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


def _server(found: Found, here: Here, in_domains: bool) -> tuple[str, list[Edit], list[str]]:
    """The CA to renew at: ACME_SERVER for DOMAINS (never production to staging), else the saved
    one; no saved server is certbot's default, Let's Encrypt production."""
    saved = saved_server(found.params)
    notes: list[str] = []
    if not in_domains:
        target = saved if saved.startswith(("https://", "http://")) else here.acme_server
    elif saved != here.acme_server and is_staging(here.acme_server) and not is_staging(saved):
        target = saved
        notes.append(
            f"kept on {server_label(saved)}: ACME_SERVER is a staging CA and certbot never "
            "replaces a trusted certificate with a test one"
        )
    else:
        target = here.acme_server
        if is_staging(saved) and not is_staging(target):
            notes.append(
                "holds a test certificate from a staging CA; it is replaced when due "
                "(`sidecar renew --force` replaces it now)"
            )
    if target == saved:
        return target, [], notes
    why = "listed in DOMAINS: ACME_SERVER" if in_domains else "no usable server saved: ACME_SERVER"
    return target, [Edit(PARAMS, "server", target, why)], notes


def _account(found: Found, here: Here, server: str) -> tuple[list[Edit], str | None]:
    """Keep an account certbot loads; name one where certbot would find several (it would ask);
    returns the edits and the account to pin when there are several."""
    accounts = here.accounts(server)
    account = str(found.params.get("account") or "") or None
    several = len(accounts.listed) > 1
    label = server_label(server)
    if account in accounts.loadable:
        return [], account if several else None
    if account is None and not several:
        return [], None
    if accounts.loadable:
        chosen = (accounts.listed or accounts.loadable)[0]
        why = (
            f"account {account} does not exist for {label} in this tree"
            if account
            else f"{len(accounts.listed)} accounts exist for {label}; certbot would have to ask"
        )
        return [Edit(PARAMS, "account", chosen, why)], chosen if several else None
    why = f"no account for {label} in this tree; certbot registers one at the next renewal"
    return [Edit(PARAMS, "account", None, why)], None


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


def _stop(found: Found, here: Here, in_domains: bool) -> tuple[Action, str, list[Edit]] | None:
    """A lineage the sidecar does not renew: ignored, or impossible to renew as it is."""
    if found.conf_error:
        return "cannot", f"cannot renew it: {found.conf_error}", []
    autorenew_off = str(found.params.get("autorenew", "True")).lower() == "false"
    if not in_domains and (found.name in here.ignore or here.ignore_unlisted):
        mark = Edit(PARAMS, "autorenew", "False", "IGNORE_LINEAGES", comment=IGNORE_MARK)
        edits = [] if autorenew_off else [mark]
        return "ignore", "left alone: not renewed (IGNORE_LINEAGES)", edits
    if autorenew_off and not (found.autorenew_marked or in_domains):
        return "ignore", "left alone: its conf says autorenew = False (certbot skips it)", []
    if found.cert is None and not found.layout.steps:
        why = "; ".join(found.layout.blocking) or found.cert_error or "no current certificate"
        return "cannot", f"cannot renew it: {why}", []
    return None


def _authenticator_edits(found: Found, here: Here) -> tuple[list[Edit], str | None]:
    """Edits moving the lineage to the sidecar's authenticator if its own cannot work here;
    raises ValueError when neither can (a wildcard needs DNS-01)."""
    params = found.params
    why_not = authenticator_problem(found, here)
    if not why_not:
        return [], str(params.get("authenticator"))
    if impossible := _http01_impossible(found.cert, here):
        raise ValueError(f"{why_not}; {impossible}")
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
    return edits, here.authenticator


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
    auth: str | None, credentials: str | None, server: str, here: Here, in_domains: bool
) -> tuple[Action, str]:
    """The sidecar's way: its authenticator; with CHALLENGE=dns also its DNS plugin, for a
    lineage in DOMAINS (DNS_CREDENTIALS apply) or saved with DNS_CREDENTIALS."""
    ours = auth == AUTHENTICATOR or (
        auth == here.authenticator and (in_domains or credentials == here.credentials)
    )
    way = (
        "authenticator sidecar, app stopped for it"
        if here.authenticator == AUTHENTICATOR
        else f"{here.authenticator}, no stop"
    )
    if ours and server == here.acme_server:
        return "sidecar", f"renewed the sidecar's way ({way})"
    if ours:
        return "own", f"renewed the sidecar's way, at its own CA {server_label(server)}"
    return "own", f"renewed its own way: authenticator {auth}, CA {server_label(server)}"


def decide(found: Found, here: Here, now: datetime | None = None) -> Decision:
    """What to do with one lineage; `edits` make its renewal conf say so, `repairs` its files."""
    in_domains = found.name in here.domains
    described = _describe_found(found, in_domains, now)

    def result(
        action: Action,
        does: str,
        edits: list[Edit],
        problems: list[str],
        **more: Any,  # noqa: ANN401
    ) -> Decision:
        values = {**found.top, **found.params}
        after = {e.key: e.value for e in edits}
        repairs: tuple[Step, ...] = more.pop("repairs", ())
        root = Path(here.config_dir)
        unloadable: bool = more.pop("unloadable", False)
        loads = (found.layout.loads or bool(repairs)) and not unloadable
        return Decision(
            name=found.name,
            action=action,
            does=does,
            found=described,
            in_domains=in_domains,
            names=found.cert.names if found.cert else (),
            edits=tuple(edits),
            changes=(
                *(f"repair: {step.describe(root)}" for step in repairs),
                *(e.describe(shown(e.key, values.get(e.key))) for e in edits),
            ),
            problems=tuple(problems),
            authenticator=after.get("authenticator", _text(found.params.get("authenticator"))),
            server=after.get("server", saved_server(found.params)),
            repairs=repairs,
            parse_failure=bool(found.conf_error) or not loads,
            **more,
        )

    if stop := _stop(found, here, in_domains):
        action, does, edits = stop
        problems = [does.removeprefix("cannot renew it: ")] if action == "cannot" else []
        return result(action, does, edits, problems)
    edits = []
    if str(found.params.get("autorenew", "True")).lower() == "false":
        why = "listed in DOMAINS" if in_domains else "no longer in IGNORE_LINEAGES"
        edits.append(Edit(PARAMS, "autorenew", None, why))
    path_edits, problems = _path_edits(found, here)
    unloadable = bool(problems) or not found.layout.loads  # else certbot loads it, as it is
    problems += found.layout.blocking
    if problems:
        does = "cannot renew it: " + "; ".join(problems)
        notes = [*found.layout.problems, *problems]
        return result("cannot", does, [], notes, unloadable=unloadable)
    try:
        auth_edits, auth = _authenticator_edits(found, here)
    except ValueError as error:
        return result("cannot", f"cannot renew it: {error}", [], [str(error)])
    edits += path_edits + auth_edits
    edits += _installer_edits(found, here, {e.key for e in edits})
    edits += _hook_edits(found, here) + _dir_edits(found, here) + _renew_before_edits(found, here)
    server, server_edits, notes = _server(found, here, in_domains)
    account_edits, pinned = _account(found, here, server)
    if pinned:
        notes.append(
            f"{len(here.accounts(server).listed)} accounts exist for {server_label(server)}: "
            f"renewed with account {pinned} named (certbot would ask which otherwise)"
        )
    saved = {**found.params, **{e.key: e.value for e in edits}}
    credentials = _text(saved.get(credentials_key(auth))) if auth else None
    action, does = _outcome(auth, credentials, server, here, in_domains)
    return result(
        action,
        does,
        edits + server_edits + account_edits,
        [*found.layout.problems, *notes],
        repairs=found.layout.steps,
        pinned_account=pinned,
    )


def ignored(decisions: Sequence[Decision]) -> frozenset[str]:
    """Lineages certbot will skip (autorenew = False): not part of what a renewal expects."""
    return frozenset(d.name for d in decisions if d.action == "ignore")


def suffix_base(name: str) -> str | None:
    """`example.com-0001` -> `example.com` (certbot's numbered copy of a lineage)."""
    match = _SUFFIX.match(name)
    return match["base"] if match else None


def render(decisions: Sequence[Decision], findings: Sequence[str]) -> str:
    """The adoption report, as `sidecar adopt --check` and `sidecar status` print it."""
    lines = []
    for d in decisions:
        lines.append(f"{d.name}: {d.action} — {d.does}")
        lines.append(f"  found:   {d.found}")
        lines.extend(f"  change:  {c}" for c in d.changes)
        lines.extend(f"  note:    {p}" for p in d.problems)
    if findings:
        lines.append("tree:")
        lines.extend(f"  {f}" for f in findings)
    return "\n".join(lines) if lines else "no lineages in the tree yet"
