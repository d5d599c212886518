"""The pre-flight's DNS adapter: dnspython's answers and errors as the verdicts' data."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset

from sidecar.cycle.caa import Caa
from sidecar.cycle.lookup import account_uri, answer, check
from sidecar.cycle.names import Context
from sidecar.volume.specs import CertSpec

if TYPE_CHECKING:
    from pathlib import Path

    from sidecar.cycle.names import Answer


class _Answer(list[Any]):
    def __init__(self, name: str, kind: str, values: list[str]) -> None:
        rdtype = dns.rdatatype.from_text(kind)
        rdatas = [dns.rdata.from_text(dns.rdataclass.IN, rdtype, v) for v in values]
        super().__init__(rdatas)
        self.rrset = dns.rrset.from_rdata_list(dns.name.from_text(name), 60, rdatas)


class _Resolver:
    """Answers from a table; a missing name is NXDOMAIN, "late" times out."""

    def __init__(self, table: dict[tuple[str, str], list[str]], late: str = "") -> None:
        self.table, self.late = table, late

    def resolve(self, name: str, kind: str) -> _Answer:
        if name == self.late:
            raise dns.exception.Timeout
        if (name, kind) in self.table:
            return _Answer(name, kind, self.table[name, kind])
        if any(n == name for n, _ in self.table):
            raise dns.resolver.NoAnswer
        raise dns.resolver.NXDOMAIN


def _answer(table: dict[tuple[str, str], list[str]], name: str, late: str = "") -> Answer:
    return answer(cast("dns.resolver.Resolver", _Resolver(table, late)), name, dns_mode=False)


def test_addresses_and_the_closest_caa_set_are_gathered() -> None:
    """A and AAAA of the name; CAA found one level up, with its owner."""
    table = {
        ("www.example.com", "A"): ["192.0.2.1"],
        ("example.com", "CAA"): ['0 issue "letsencrypt.org"'],
    }
    found = _answer(table, "www.example.com")
    assert found.addresses == ("192.0.2.1",)
    assert found.caa == (Caa(0, "issue", "letsencrypt.org", "example.com"),)


def test_a_name_without_records_has_no_addresses() -> None:
    """NXDOMAIN for A and AAAA: an empty tuple (the verdict: does not resolve)."""
    assert _answer({}, "gone.example.com").addresses == ()


def test_a_timeout_is_none_not_an_empty_answer() -> None:
    """A timeout leaves addresses and CAA unknown (no verdict)."""
    found = _answer({}, "slow.example.com", late="slow.example.com")
    assert found.addresses is None
    assert found.caa is None


def test_the_account_uri_comes_from_the_lineages_conf_or_the_only_account(tmp_path: Path) -> None:
    """The conf's `account` names the regr.json holding the URI; a new lineage takes the one
    account of the server."""
    server = "https://ca.example/dir"
    account = tmp_path / "accounts" / "ca.example" / "dir" / "abc"
    account.mkdir(parents=True)
    (account / "regr.json").write_text(json.dumps({"uri": "https://ca.example/acct/7"}))
    for name in ("private_key.json", "meta.json"):
        (account / name).write_text("{}")
    assert account_uri(tmp_path, server, "new.example") == "https://ca.example/acct/7"
    (tmp_path / "renewal").mkdir()
    conf = f"[renewalparams]\naccount = abc\nserver = {server}\n"
    (tmp_path / "renewal" / "a.example.conf").write_text(conf)
    assert account_uri(tmp_path, server, "a.example") == "https://ca.example/acct/7"
    (tmp_path / "renewal" / "b.example.conf").write_text("[renewalparams]\naccount = zzz\n")
    assert account_uri(tmp_path, server, "b.example") is None


def test_a_resolver_that_times_out_is_not_asked_again_for_the_name() -> None:
    """After the CAA query timed out, no A or AAAA query waits the timeout again."""
    stub = _Resolver({}, late="slow.example.com")
    asked: list[str] = []

    def resolve(name: str, kind: str) -> _Answer:
        asked.append(kind)
        return _Resolver.resolve(stub, name, kind)

    stub.resolve = resolve  # type: ignore[method-assign]
    found = answer(cast("dns.resolver.Resolver", stub), "slow.example.com", dns_mode=False)
    assert (found.addresses, found.caa) == (None, None)
    assert asked == ["CAA"]


def test_ip_addresses_are_not_looked_up_and_pass() -> None:
    """An IP-address certificate has no DNS records or CAA to check: only its names are asked."""
    stub = _Resolver({("app.example.com", "A"): ["127.0.0.1"]})
    asked: list[str] = []

    def resolve(name: str, kind: str) -> _Answer:
        asked.append(name)
        return _Resolver.resolve(stub, name, kind)

    stub.resolve = resolve  # type: ignore[method-assign]
    spec = CertSpec("app.example.com", ("app.example.com", "127.0.0.1", "2001:db8::7"))
    verdict = check(cast("dns.resolver.Resolver", stub), spec, Context(frozenset()), None)
    assert verdict.ok
    assert "app.example.com" in asked
    assert not [n for n in asked if ":" in n or n[0].isdigit()]
    only_ip = CertSpec("127.0.0.1", ("127.0.0.1",))
    assert check(cast("dns.resolver.Resolver", stub), only_ip, Context(frozenset()), None).ok
