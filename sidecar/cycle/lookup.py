"""The names' pre-flight, its effects: DNS through dnspython (DNS_RESOLVER, or the system's),
the CA's `caaIdentities` from its directory, the lineage's account URI, the host's IPv6. The
verdicts are `cycle/names.py`'s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import dns.exception
import dns.resolver
import requests

from sidecar.cycle.caa import Caa, relevant_set
from sidecar.cycle.names import Answer, Context, NamesSpec, Verdict, host_has_ipv6, judge
from sidecar.errors import SidecarError
from sidecar.volume.accounts import for_server, server_path
from sidecar.volume.ca import SERVER_ALIASES
from sidecar.volume.confs import PARAMS, load_conf
from sidecar.volume.specs import is_ip

if TYPE_CHECKING:
    from sidecar.volume.ca import AcmeCA
    from sidecar.volume.specs import CertSpec

_LATE = (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout)
_NONE = (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer)
IF_INET6 = Path("/proc/net/if_inet6")


class _Late(Exception):  # noqa: N818 (internal: no answer in time)
    def __init__(self, *, timed_out: bool) -> None:
        super().__init__()
        self.timed_out = timed_out


def resolver(spec: NamesSpec) -> dns.resolver.Resolver:
    """DNS_RESOLVER's servers, or the system's (/etc/resolv.conf)."""
    if not spec.resolvers:
        found = dns.resolver.Resolver(configure=True)
    else:
        found = dns.resolver.Resolver(configure=False)
        found.nameservers = [host for host, _ in spec.resolvers]
        found.nameserver_ports = dict(spec.resolvers)
    found.lifetime = spec.timeout
    return found


def answer(dns_resolver: dns.resolver.Resolver, name: str, *, dns_mode: bool) -> Answer:
    """What DNS says about `name` (None where it did not answer in time). A resolver that timed
    out is not asked again for this name (each query would wait the whole timeout too)."""
    try:
        caa: tuple[Caa, ...] | None = relevant_set(name, lambda n: _caa(dns_resolver, n))
    except _Late as late:
        if late.timed_out:
            return Answer(name, addresses=None, caa=None, zone=None)
        caa = None  # SERVFAIL or REFUSED: the CA would refuse, the check cannot tell why
    if dns_mode:
        return Answer(name, caa=caa, zone=_zone(dns_resolver, name))
    if name.startswith("*."):  # no address to look up (and HTTP-01 cannot validate it anyway)
        return Answer(name, caa=caa, addresses=None)
    v4, v6 = _addresses(dns_resolver, name, "A"), _addresses(dns_resolver, name, "AAAA")
    if v4 is None or v6 is None:
        addresses = None if not (v4 or v6) else (*(v4 or ()), *(v6 or ()))
    else:
        addresses = (*v4, *v6)
    return Answer(name, addresses=addresses, caa=caa)


def _caa(dns_resolver: dns.resolver.Resolver, name: str) -> tuple[Caa, ...]:
    try:
        found = dns_resolver.resolve(name, "CAA")
    except _NONE:
        return ()
    except _LATE as error:
        raise _Late(timed_out=isinstance(error, dns.exception.Timeout)) from None
    owner = str(found.rrset.name).rstrip(".") if found.rrset is not None else name
    return tuple(
        Caa(r.flags, r.tag.decode("ascii", "replace"), r.value.decode("utf-8", "replace"), owner)
        for r in found
    )


def _addresses(dns_resolver: dns.resolver.Resolver, name: str, kind: str) -> tuple[str, ...] | None:
    try:
        return tuple(r.to_text() for r in dns_resolver.resolve(name, kind))
    except _NONE:
        return ()
    except _LATE:
        return None


def _zone(dns_resolver: dns.resolver.Resolver, name: str) -> str | None:
    where = f"_acme-challenge.{name.removeprefix('*.')}"
    try:
        return str(dns.resolver.zone_for_name(where, resolver=dns_resolver)).rstrip(".")
    except dns.resolver.NoRootSOA:
        return ""
    except _LATE:
        return None


def identities(ca: AcmeCA, spec: NamesSpec, timeout: float = 15.0) -> frozenset[str]:
    """CAA_IDENTITIES, else the directory's `meta.caaIdentities` (empty: CAA is not checked)."""
    if spec.identities:
        return frozenset(i.lower() for i in spec.identities)
    verify: str | bool = str(ca.ca_bundle) if ca.ca_bundle else True
    try:
        meta = requests.get(ca.directory, timeout=timeout, verify=verify).json().get("meta", {})
    except (requests.exceptions.RequestException, ValueError, AttributeError) as error:
        raise SidecarError(f"ACME server {ca.directory} unreachable: {error}") from None
    found = meta.get("caaIdentities", []) if isinstance(meta, dict) else []
    return frozenset(str(i).lower() for i in found if isinstance(i, str))


def account_uri(config_dir: Path, server: str, lineage: str) -> str | None:
    """The URI of the account the lineage's conf names, or for a new lineage the one account
    certbot would use (None: none yet, several, or unreadable)."""
    conf = config_dir / "renewal" / f"{lineage}.conf"
    try:
        if conf.exists():
            params = load_conf(conf)[PARAMS]
            account, server = str(params.get("account")), params.get("server") or server
        else:
            (account,) = for_server(config_dir, server).listed
        regr = config_dir / "accounts" / server_path(server) / account / "regr.json"
        uri = json.loads(regr.read_text(encoding="utf-8")).get("uri")
    except (OSError, ValueError, SidecarError, AttributeError):
        return None
    return uri if isinstance(uri, str) else None


def context(ca: AcmeCA, ids: frozenset[str], *, dns_mode: bool) -> Context:
    """The verdicts' context, but the account (per lineage)."""
    try:
        ipv6 = host_has_ipv6(IF_INET6.read_text(encoding="ascii"))
    except OSError:
        ipv6 = False
    public = ca.directory in SERVER_ALIASES.values()
    return Context(ids, dns=dns_mode, ipv6=ipv6, public_ca=public)


def check(
    dns_resolver: dns.resolver.Resolver, spec: CertSpec, base: Context, uri: str | None
) -> Verdict:
    """One lineage's names, judged (its IP addresses have no DNS records and no CAA to check)."""
    names = [n for n in spec.domains if not is_ip(n)]
    answers = tuple(answer(dns_resolver, n, dns_mode=base.dns) for n in names)
    own = Context(base.identities, uri, base.dns, base.ipv6, base.public_ca)
    return judge(spec.name, answers, own)
