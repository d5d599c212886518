"""`sidecar health`, the image's HEALTHCHECK (every minute), on the standard library only.

The full check (`cli.cmd_health`) loads pydantic, configobj, cryptography, loguru and the Docker
SDK to read a few facts: over half a second and 56 MB in the image, every minute, for as long as
the container runs. This module reads the same facts the way the idle sleeper lives, on the
standard library: the variables it needs straight from the environment (the daemon validated that
same environment when it started), the journal's JSON, each renewal conf's `cert` path and
`autorenew` rule, and the certificates' dates (`volume.certdates`); then it takes the full check's
decision and prints its lines. Named tuples and os.path, not dataclasses and pathlib: importing
either would add a sixth or more to the check's time.

It decides only what it reads in the plain form the sidecar and certbot write. Anything else (a
certificate or journal that cannot be read, a conf in configobj syntax beyond that form, a lineage
whose conf names another `live/` directory, an unexpected error) it does not guess at: `main`
returns None and the entry point runs the full check, which also words the problem its own way.
So the decision is the full check's in every case (the unit tests compare both on the same
volumes); only its cost differs.
"""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sidecar.volume.certdates import validity

if TYPE_CHECKING:
    from collections.abc import Mapping

# The same facts as their homes say them (tests/unit/test_healthcheck.py checks each against it):
DANGER_FRACTION = 6  # volume.certs.DANGER_FRACTION: the last sixth of the lifetime
IGNORE_MARK = "# certbot-sidecar: IGNORE_LINEAGES (remove the name there to renew it again)"
JOURNAL, LEGACY = "journal.json", ("state.json", "observe.json")  # volume.journal
JOURNAL_FIELDS = frozenset(  # volume.journal.Journal's
    (
        *("last_cycle_at", "last_result", "last_success_at", "failures", "next_check_at"),
        *("renewed", "cycles", "cycle_failures", "renewals", "downtime", "downtime_at"),
        *("served", "restarted_for", "alerts", "preflight"),
        *("next_check_by", "ari", "issued"),
    )
)
PARAMS = "renewalparams"
CONF = ".conf"

_DIR = re.compile(r"(?:/(?!\.\.?(?:/|$))[^/]+)+")  # as pathlib prints it: absolute, no ., .., //
_DOMAIN = re.compile(r"(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)+")
_SECTION = re.compile(r"\s*(\[+)\s*([\w.*@:/+-]+)\s*(\]+)\s*")
_KEY = re.compile(r"\s*([\w.*@:/+-]+)\s*=\s*(.*?)\s*")
_NOT_PLAIN = re.compile(r"['\"#%]")  # quotes, inline comments, interpolation: configobj's own


class NotPlainError(Exception):
    """Not in the plain form this check reads: the full check decides."""


class View(NamedTuple):
    """What the check needs of the configuration."""

    config_dir: str  # as pathlib would print it (no `.`, `//` or trailing `/`)
    lineages: frozenset[str]  # DOMAINS' certificates
    ignore: frozenset[str]  # IGNORE_LINEAGES but `*`
    ignore_unlisted: bool  # IGNORE_LINEAGES has `*`
    verify: bool


class Served(NamedTuple):
    certificate: str
    match: bool
    checked_at: datetime
    detail: str


class Replacing(NamedTuple):
    """A certificate whose ARI window is over (the CA wants it replaced now)."""

    certificate: str
    end: datetime
    explanation: str


class Facts(NamedTuple):
    """What the check needs of the journal."""

    failures: int
    next_check_at: datetime | None
    last_result: str
    served: tuple[Served, ...]
    ari: tuple[Replacing, ...] = ()


class Conf(NamedTuple):
    """A renewal conf: its top-level values, its [renewalparams] (None: none), the comment lines
    above `autorenew`. A list value (configobj's commas) is None."""

    top: dict[str, str | None]
    params: dict[str, str | None] | None
    autorenew_comments: tuple[str, ...]


def main() -> int | None:
    """Print the decision and return the exit code; None when the full check must decide."""
    try:
        lines, code = check(os.environ, datetime.now(UTC))
    except Exception:  # noqa: BLE001 (not guessed at: the full check decides, and reports it)
        return None
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return code


def check(environ: Mapping[str, str], now: datetime) -> tuple[list[str], int]:
    """The lines `sidecar health` prints and its exit code."""
    view = settings(environ)
    facts = journal(os.path.join(view.config_dir, "sidecar"))
    renewal = os.path.join(view.config_dir, "renewal")
    entries = os.listdir(renewal) if os.path.isdir(renewal) else []
    names = sorted(_stem(n) for n in entries if n.endswith(CONF))
    confs = {name: read_conf(os.path.join(renewal, name + CONF)) for name in names}
    judged = {*names, *view.lineages} - {n for n, c in confs.items() if ignored(n, c, view)}
    dates = {name: current_dates(view, name, confs.get(name)) for name in sorted(judged)}
    return verdict(dates, facts, verify=view.verify, now=now)


def settings(environ: Mapping[str, str]) -> View:
    """The variables as the settings read them (names in any case)."""
    env = {key.lower(): value for key, value in environ.items()}
    if "acme_server" not in env or "domains" not in env:
        raise NotPlainError("a required variable is missing: the full check says which")
    config_dir = env.get("config_dir", "/etc/letsencrypt")
    if not _DIR.fullmatch(config_dir):
        raise NotPlainError("CONFIG_DIR is not a plain absolute path")
    ignore = _csv(env.get("ignore_lineages", ""))
    return View(
        config_dir=config_dir,
        lineages=lineages(env["domains"]),
        ignore=frozenset(ignore) - {"*"},
        ignore_unlisted="*" in ignore,
        verify=bool(_csv(env.get("verify", ""))),
    )


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in raw.split(",") if x.strip())


def lineages(raw: str) -> frozenset[str]:
    """DOMAINS' lineage names (the first name of each certificate, without `*.`)."""
    names: set[str] = set()
    seen: set[str] = set()
    for group in raw.split(";"):
        domains = [d.strip().lower().rstrip(".") for d in group.split(",") if d.strip()]
        if not domains:
            continue
        name = domains[0].removeprefix("*.")
        if not all(_DOMAIN.fullmatch(d) for d in domains) or seen & set(domains) or name in names:
            raise NotPlainError("DOMAINS is not plain: the full check says why")
        seen.update(domains)
        names.add(name)
    if not names:
        raise NotPlainError("DOMAINS names no certificate")
    return frozenset(names)


def _stem(name: str) -> str:
    """The lineage a `renewal/` entry names, as pathlib's `glob("*.conf")` and `stem` see it."""
    if name == CONF:
        raise NotPlainError("renewal/.conf")  # pathlib's stem of it is `.conf` itself
    return name.removesuffix(CONF)


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def journal(state_dir: str) -> Facts:
    """The journal's facts, where `volume.journal.load` reads them without a warning."""
    try:
        data = json.loads(_read(os.path.join(state_dir, JOURNAL)).decode("utf-8"))
    except FileNotFoundError:
        if any(os.path.lexists(os.path.join(state_dir, name)) for name in LEGACY):
            raise NotPlainError("the journal of an earlier version") from None
        data = {}
    if not isinstance(data, dict):
        raise NotPlainError("the journal is not a JSON object")
    _other_fields(data)
    return Facts(
        failures=int(data.get("failures", 0)),
        next_check_at=_when(data.get("next_check_at")),
        last_result=str(data.get("last_result", "never run")),
        served=_served(data.get("served")),
        ari=_ari(data.get("ari")),
    )


def _when(raw: Any) -> datetime | None:  # noqa: ANN401 (JSON)
    return datetime.fromisoformat(raw) if raw else None


def _served(data: Any) -> tuple[Served, ...]:  # noqa: ANN401 (JSON)
    out = []
    for name, item in (data or {}).items():
        if isinstance(item, dict) and (at := _when(item.get("checked_at"))) is not None:
            out.append(Served(str(name), bool(item.get("match")), at, str(item.get("detail", ""))))
    return tuple(sorted(out))


def _ari(data: Any) -> tuple[Replacing, ...]:  # noqa: ANN401 (JSON)
    """The CA's windows (every time read: one the full check cannot read is no plain journal)."""
    out = []
    for name, item in (data or {}).items():
        for key in ("start", "renew_at", "checked_at", "retry_after"):
            _when(item.get(key))
        end = _when(item["end"])
        if end is None or not isinstance(item["serial"], str):
            raise NotPlainError(f"the journal's ARI answer for {name} is incomplete")
        out.append(Replacing(str(name), end, str(item.get("explanation", ""))))
    return tuple(sorted(out))


def _other_fields(data: dict[str, Any]) -> None:
    """Raises where `journal.from_json` raises on a field the check does not read (the full
    check then reads an empty journal, with a warning). A field this check does not know (the
    journal grew one) goes to the full check, until it is listed here."""
    if not set(data) <= JOURNAL_FIELDS:
        raise NotPlainError(f"journal fields unknown here: {sorted(set(data) - JOURNAL_FIELDS)}")
    for key in ("last_cycle_at", "last_success_at", "downtime_at"):
        _when(data.get(key))
    int(data.get("cycles", 0))
    int(data.get("cycle_failures", 0))
    tuple(data.get("renewed", ()))
    [int(v) for v in (data.get("renewals") or {}).values()]
    (data.get("restarted_for") or {}).items()
    for item in (data.get("preflight") or {}).values():
        _when(item["checked_at"])
    [datetime.fromisoformat(t) for times in (data.get("issued") or {}).values() for t in times]


def read_conf(path: str) -> Conf:
    """The conf as configobj reads it, for the plain form certbot and the sidecar write: comments,
    `[sections]` and `[[subsections]]`, `key = value` without quotes, inline comments or `%`."""
    top: dict[str, str | None] = {}
    params: dict[str, str | None] | None = None
    above: tuple[str, ...] = ()
    section: tuple[str, ...] = ()
    taken: dict[tuple[str, ...], set[str]] = {(): set()}  # keys and sections: one namespace
    comments: list[str] = []
    started = False
    for line in _read(path).decode("utf-8-sig").splitlines():
        if not line.strip() or line.strip().startswith("#"):
            comments.append(line)
            continue
        preceding, comments = (tuple(comments) if started else ()), []
        started = True  # configobj keeps the comments above the first item as the file's own
        if match := _SECTION.fullmatch(line):
            section = _enter(section, match, taken)
            if section == (PARAMS,):
                params = {}
            continue
        match = _KEY.fullmatch(line)
        if not match or match[1] in taken[section] or _NOT_PLAIN.search(match[2]):
            raise NotPlainError(f"{path}: a line beyond the plain form")
        taken[section].add(match[1])
        if section == ():
            top[match[1]] = _value(match[2])
        elif section == (PARAMS,) and params is not None:
            params[match[1]] = _value(match[2])
            above = preceding if match[1] == "autorenew" else above
    if PARAMS in top:
        raise NotPlainError(f"{path}: renewalparams is not a section")
    return Conf(top, params, above)


def _enter(
    section: tuple[str, ...], match: re.Match[str], taken: dict[tuple[str, ...], set[str]]
) -> tuple[str, ...]:
    """The section a `[name]` line opens (configobj's nesting: one level deeper at most)."""
    depth, name = len(match[1]), match[2]
    if depth != len(match[3]) or depth > len(section) + 1:
        raise NotPlainError("a section nested configobj would refuse")
    parent = section[: depth - 1]
    if name in taken[parent]:
        raise NotPlainError(f"{name} twice")
    taken[parent].add(name)
    taken[(*parent, name)] = set()
    return (*parent, name)


def _value(raw: str) -> str | None:
    """A plain value, or None for a list (`a, b` or `a,`); raises where configobj would."""
    if "," not in raw:
        return raw
    items = raw.split(",")
    if raw != "," and not all(item.strip() for item in items[:-1]):
        raise NotPlainError("a list configobj would refuse")
    return None


def _text(values: Mapping[str, str | None], key: str, default: str | None = None) -> str | None:
    if key in values and values[key] is None:
        raise NotPlainError(f"{key} is a list")
    return values.get(key, default)


def ignored(name: str, conf: Conf, view: View) -> bool:
    """certbot skips it (`autorenew = False`), so it is not judged: adopt's `ignore` outcome."""
    if conf.params is None:
        return False  # no [renewalparams]: adopt cannot renew it, and says so
    in_domains = name in view.lineages
    if not in_domains and (name in view.ignore or view.ignore_unlisted):
        return True
    off = str(_text(conf.params, "autorenew", "True")).lower() == "false"
    return off and not (IGNORE_MARK in conf.autorenew_comments or in_domains)


def current_dates(view: View, name: str, conf: Conf | None) -> tuple[datetime, datetime] | None:
    """The dates of lineage `name`'s current certificate; None while it has none."""
    path = os.path.join(view.config_dir, "live", name, "cert.pem")
    saved = _text(conf.top, "cert") if conf else None
    if (saved and saved != path) or name == "live":  # `live/live`: rebased
        raise NotPlainError(f"{name}: its conf names another live directory")
    if not os.path.exists(path):
        if os.path.islink(path):
            raise NotPlainError(f"{path} is a broken symlink")
        return None
    try:
        return validity(_read(path))
    except (OSError, ValueError) as error:
        raise NotPlainError(f"{path}: {error}") from None


def verdict(
    dates: Mapping[str, tuple[datetime, datetime] | None],
    facts: Facts,
    *,
    verify: bool,
    now: datetime,
) -> tuple[list[str], int]:
    """Pure: `report.status` `health`, `served_problems` and `failing`, as `cmd_health` prints."""
    problems = []
    for name, span in sorted(dates.items()):
        if span is None:
            if facts.failures:
                problems.append(f"{name}: no certificate and the last cycle failed")
            continue
        not_before, not_after = span
        zone = (not_after - not_before) / DANGER_FRACTION
        if not_after - now < zone:
            when = not_after.isoformat(timespec="minutes")
            problems.append(f"{name}: expires {when}, inside the danger zone")
        elif facts.failures and facts.next_check_at and facts.next_check_at > not_after - zone:
            problems.append(f"{name}: renewal failing and the next attempt comes too late")
    if verify:
        problems += [
            f"{s.certificate}: {s.detail} (checked {s.checked_at.isoformat(timespec='seconds')})"
            for s in facts.served
            if not s.match
        ]
    lines = [f"unhealthy: {problem}" for problem in problems]
    if facts.failures:
        at = facts.next_check_at
        lines.append(
            f"warning: renewal failing: {facts.failures} failure(s) in a row, next attempt "
            f"{at.isoformat(timespec='seconds') if at else 'soon'}; "
            f"last: {facts.last_result[:200]}"
        )
    lines += [  # report.status.replacing
        f"warning: replacement requested: the CA asks to replace {r.certificate} now (its "
        f"renewal window ended {r.end.isoformat(timespec='minutes')})"
        + (f"; see {r.explanation}" if r.explanation else "")
        for r in facts.ari
        if r.end <= now
    ]
    if not problems:
        lines.append("healthy")
    return lines, 1 if problems else 0
