"""The names' pre-flight verdicts, pure: what DNS answered for each name of a lineage (gathered
by `cycle/lookup.py`) judged the way the CA will judge it, before anything is stopped.

A failure (the name does not resolve, CAA forbids the CA, the `_acme-challenge` zone does not
answer) means the CA would refuse: the lineage is not renewed this cycle. A warning (an AAAA
record on a host without IPv6, only private addresses at a public CA) is logged. A DNS timeout
is no verdict: the cycle goes on as it would without the check.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sidecar.cycle.caa import Caa, Request, evaluate


@dataclass(frozen=True, slots=True)
class NamesSpec:
    """CHECK_NAMES, CAA_IDENTITIES (for a CA whose directory publishes none) and DNS_RESOLVER
    (`host` or `host:port`; empty: the system's resolver)."""

    on: bool = True
    identities: tuple[str, ...] = ()
    resolvers: tuple[tuple[str, int], ...] = ()
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class Answer:
    """What DNS said about one name. None: no answer in time (no verdict). `addresses`: A and
    AAAA after CNAMEs (empty: the name does not resolve); `caa`: the relevant CAA set;
    `zone`: the zone `_acme-challenge.NAME` falls in (empty: none answers), with CHALLENGE=dns."""

    name: str
    addresses: tuple[str, ...] | None = ()
    caa: tuple[Caa, ...] | None = ()
    zone: str | None = ""


@dataclass(frozen=True, slots=True)
class Context:
    """What the verdict depends on besides DNS: the CA's identities (empty: CAA not checkable),
    the lineage's account URI, the method, whether the host has a global IPv6 address and
    whether the CA is a public one (it cannot reach private addresses)."""

    identities: frozenset[str]
    account_uri: str | None = None
    dns: bool = False
    ipv6: bool = True
    public_ca: bool = False

    @property
    def method(self) -> str:
        return "dns-01" if self.dns else "http-01"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One lineage's pre-flight: failures (one line each, naming the name and the record),
    warnings, and names DNS did not answer for in time."""

    lineage: str
    failures: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """What `status` shows: the failures, else ok with the warnings."""
        if self.failures:
            return "; ".join(self.failures)
        return "; ".join(("ok", *self.warnings))

    def line(self) -> str:
        """The one line of a failed lineage."""
        return f"{self.lineage}: not renewed: {'; '.join(self.failures)}"


def judge(lineage: str, answers: tuple[Answer, ...], context: Context) -> Verdict:
    """Every name's answer judged; the lineage fails when one name does."""
    failures: list[str] = []
    warnings: list[str] = []
    unknown: list[str] = []
    for answer in answers:
        fails, warns, late = _name(answer, context)
        failures += fails
        warnings += warns
        unknown += late
    return Verdict(lineage, tuple(failures), tuple(warnings), tuple(dict.fromkeys(unknown)))


def _name(answer: Answer, context: Context) -> tuple[list[str], list[str], list[str]]:
    fails: list[str] = []
    warns: list[str] = []
    late: list[str] = []
    name = answer.name
    if answer.caa is None:
        late.append(name)
    elif context.identities:
        request = Request(name, context.identities, context.account_uri, context.method)
        decision = evaluate(answer.caa, request)
        if not decision.allowed:
            fails.append(f"CAA forbids {name} at this CA: {decision.reason}")
    if context.dns:
        if answer.zone is None:
            late.append(name)
        elif not answer.zone:
            fails.append(f"no DNS zone answers for _acme-challenge.{name.removeprefix('*.')}")
        return fails, warns, late
    if answer.addresses is None:
        late.append(name)
    elif not answer.addresses:
        fails.append(f"{name} does not resolve (no A or AAAA record)")
    else:
        warns += address_warnings(name, answer.addresses, context)
    return fails, warns, late


def address_warnings(name: str, addresses: tuple[str, ...], context: Context) -> list[str]:
    """AAAA without host IPv6 (Let's Encrypt tries IPv6 first); only private addresses at a
    public CA (it cannot reach them)."""
    parsed = [ipaddress.ip_address(a) for a in addresses]
    warns = []
    v6 = [str(a) for a in parsed if a.version == 6]  # noqa: PLR2004
    if v6 and not context.ipv6:
        warns.append(
            f"{name} has an AAAA record ({v6[0]}) but this host has no global IPv6 address: "
            "the CA tries IPv6 first"
        )
    if context.public_ca and all(a.is_private or a.is_loopback for a in parsed):
        warns.append(
            f"{name} resolves only to private or loopback addresses ({', '.join(addresses)}): "
            "a public CA cannot reach them"
        )
    return warns


def host_has_ipv6(if_inet6: str) -> bool:
    """A global IPv6 address among /proc/net/if_inet6's lines (scope 00, not loopback)."""
    for line in if_inet6.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3] == "00" and fields[0] != "0" * 31 + "1":  # noqa: PLR2004
            return True
    return False
