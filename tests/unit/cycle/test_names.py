"""The names' pre-flight verdicts: failures, warnings and DNS timeouts (no verdict)."""

from __future__ import annotations

from sidecar.cycle.caa import Caa
from sidecar.cycle.names import Answer, Context, host_has_ipv6, judge

LE = frozenset({"letsencrypt.org"})
OTHER_CA = (Caa(0, "issue", "other-ca.example", "b.example.test"),)


def test_a_name_resolving_with_no_caa_passes() -> None:
    """A resolving name without CAA: ok, no warning."""
    verdict = judge("a", (Answer("a.example.test", ("192.0.2.1",)),), Context(LE))
    assert verdict.ok
    assert verdict.warnings == ()


def test_caa_for_another_ca_fails_the_lineage_naming_name_and_record() -> None:
    """CAA allowing only other-ca.example: one line naming the name and the record."""
    answers = (Answer("b.example.test", ("192.0.2.1",), OTHER_CA),)
    verdict = judge("b", answers, Context(LE))
    assert not verdict.ok
    line = verdict.line()
    assert line.startswith("b: not renewed: CAA forbids b.example.test")
    assert 'b.example.test CAA 0 issue "other-ca.example"' in line


def test_a_name_that_does_not_resolve_fails() -> None:
    """No A and no AAAA: the CA cannot reach it."""
    verdict = judge("c", (Answer("c.example.test", ()),), Context(LE))
    assert verdict.failures == ("c.example.test does not resolve (no A or AAAA record)",)


def test_a_dns_timeout_is_no_verdict() -> None:
    """No answer in time: neither failure nor warning; the name is listed as unknown."""
    verdict = judge("d", (Answer("d.example.test", None, None),), Context(LE))
    assert verdict.ok
    assert verdict.unknown == ("d.example.test",)


def test_without_ca_identities_caa_is_not_checked() -> None:
    """A CA publishing no caaIdentities (and no CAA_IDENTITIES): CAA is not judged."""
    answers = (Answer("b.example.test", ("192.0.2.1",), OTHER_CA),)
    assert judge("b", answers, Context(frozenset())).ok


def test_aaaa_on_a_host_without_ipv6_is_a_warning() -> None:
    """An AAAA record while the host has no global IPv6 address: warned, not failed."""
    answers = (Answer("e.example.test", ("192.0.2.1", "2001:db8::1")),)
    verdict = judge("e", answers, Context(LE, ipv6=False))
    assert verdict.ok
    assert "AAAA record (2001:db8::1)" in verdict.warnings[0]


def test_only_private_addresses_at_a_public_ca_is_a_warning() -> None:
    """10.0.0.5 for a public CA: warned; at a private CA: nothing."""
    answers = (Answer("f.example.test", ("10.0.0.5",)),)
    assert "private or loopback" in judge("f", answers, Context(LE, public_ca=True)).warnings[0]
    assert judge("f", answers, Context(LE, public_ca=False)).warnings == ()


def test_dns_mode_needs_the_challenge_zone_not_an_address() -> None:
    """CHALLENGE=dns: no A/AAAA needed; a missing zone fails; CAA is checked for dns-01."""
    dns = Context(LE, dns=True)
    assert judge("g", (Answer("*.example.test", (), (), "example.test"),), dns).ok
    missing = judge("g", (Answer("g.example.test", (), (), ""),), dns)
    assert missing.failures == ("no DNS zone answers for _acme-challenge.g.example.test",)
    http_only = (Caa(0, "issue", "letsencrypt.org; validationmethods=http-01", "example.test"),)
    refused = judge("g", (Answer("g.example.test", (), http_only, "example.test"),), dns)
    assert "not dns-01" in refused.failures[0]


def test_accounturi_of_another_account_fails() -> None:
    """CAA naming another account URI than the lineage's: refused."""
    record = Caa(0, "issue", "letsencrypt.org; accounturi=https://ca/acct/9", "example.test")
    answers = (Answer("h.example.test", ("192.0.2.1",), (record,)),)
    assert not judge("h", answers, Context(LE, "https://ca/acct/1")).ok
    assert judge("h", answers, Context(LE, "https://ca/acct/9")).ok


def test_global_ipv6_is_read_from_if_inet6() -> None:
    """Scope 00 and not ::1 counts; loopback and link-local do not."""
    loopback = "00000000000000000000000000000001 01 80 10 80       lo"
    link = "fe800000000000000000000000000001 02 40 20 80     eth0"
    global_ = "20010db8000000000000000000000001 02 40 00 00     eth0"
    assert not host_has_ipv6(f"{loopback}\n{link}\n")
    assert host_has_ipv6(f"{loopback}\n{global_}\n")
