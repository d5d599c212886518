"""CAA evaluation against RFC 8659's examples (and RFC 8657's parameters)."""

from __future__ import annotations

from sidecar.cycle.caa import Caa, Request, evaluate, parse_issuer, relevant_set

NET = frozenset({"ca.example.net"})
ORG = frozenset({"ca.example.org"})


def _zone(records: dict[str, list[Caa]], cnames: dict[str, str] | None = None):
    """A lookup over plain data that follows CNAMEs, as a resolver does."""
    aliases = cnames or {}

    def lookup(name: str) -> list[Caa]:
        seen = 0
        while name in aliases and seen < 8:
            name, seen = aliases[name], seen + 1
        return records.get(name, [])

    return lookup


def _caa(tag: str, value: str, flags: int = 0, owner: str = "example.com") -> Caa:
    return Caa(flags, tag, value, owner)


def test_no_caa_anywhere_in_the_tree_gives_an_empty_set() -> None:
    """RFC 8659 section 3: X.Y.Z with no CAA at any level: Empty."""
    assert relevant_set("x.y.z", _zone({})) == ()


def test_the_climb_stops_at_the_first_name_with_caa() -> None:
    """RFC 8659 section 3: A.B.C with `issue example.com` at B.C returns that set."""
    record = _caa("issue", "example.com", owner="b.c")
    zone = _zone({"b.c": [record], "c": [_caa("issue", ";", owner="c")]})
    assert relevant_set("a.b.c", zone) == (record,)


def test_a_wildcard_climbs_from_its_base_name() -> None:
    """`*.example.com` uses the set of example.com."""
    record = _caa("issue", "ca.example.net")
    assert relevant_set("*.example.com", _zone({"example.com": [record]})) == (record,)


def test_the_lookup_follows_a_cname_to_the_target_set() -> None:
    """CAA(X) chases aliases (RFC 1034 4.3.2): a CNAME's target's records are X's."""
    record = _caa("issue", "ca.example.org", owner="cdn.example.org")
    zone = _zone(
        {"cdn.example.org": [record], "example.com": [_caa("issue", ";")]},
        {"www.example.com": "cdn.example.org"},
    )
    assert relevant_set("www.example.com", zone) == (record,)
    assert evaluate((record,), Request("www.example.com", ORG)).allowed


def test_a_simple_issue_record_allows_only_that_ca() -> None:
    """`example.com CAA 0 issue "ca.example.net"`: ca.example.net may, others may not."""
    records = [_caa("issue", "ca.example.net")]
    assert evaluate(records, Request("example.com", NET)).allowed
    refused = evaluate(records, Request("example.com", ORG))
    assert not refused.allowed
    assert 'CAA 0 issue "ca.example.net"' in refused.reason
    assert "allows only ca.example.net" in refused.reason


def test_two_issue_records_allow_either_ca() -> None:
    """Section 4.2: issue ca.example.net and issue ca.example.org: both may issue."""
    records = [_caa("issue", "ca.example.net"), _caa("issue", "ca.example.org")]
    assert evaluate(records, Request("example.com", NET)).allowed
    assert evaluate(records, Request("example.com", ORG)).allowed
    assert not evaluate(records, Request("example.com", frozenset({"letsencrypt.org"}))).allowed


def test_the_empty_issuer_forbids_every_ca() -> None:
    """Section 4.2: `issue ";"` allows no CA."""
    decision = evaluate([_caa("issue", ";")], Request("example.com", NET))
    assert not decision.allowed
    assert "forbids every CA" in decision.reason


def test_issuewild_governs_wildcards_and_issue_the_rest() -> None:
    """Section 4.3: issue ca.example.net, issuewild ca.example.org."""
    records = [_caa("issue", "ca.example.net"), _caa("issuewild", "ca.example.org")]
    assert evaluate(records, Request("example.com", NET)).allowed
    assert not evaluate(records, Request("example.com", ORG)).allowed
    assert evaluate(records, Request("*.example.com", ORG)).allowed
    assert not evaluate(records, Request("*.example.com", NET)).allowed


def test_without_issuewild_issue_governs_wildcards() -> None:
    """Section 4.3: a wildcard falls back to the issue records."""
    records = [_caa("issue", "ca.example.net")]
    assert evaluate(records, Request("*.example.com", NET)).allowed
    assert not evaluate(records, Request("*.example.com", ORG)).allowed


def test_only_issuewild_leaves_plain_names_to_any_ca() -> None:
    """A set with issuewild but no issue does not restrict a non-wildcard name."""
    records = [_caa("issuewild", ";")]
    assert evaluate(records, Request("example.com", ORG)).allowed
    assert not evaluate(records, Request("*.example.com", ORG)).allowed


def test_an_unknown_critical_tag_forbids_issuance() -> None:
    """Section 4.1's example: `CAA 128 tbs "Unknown"` beside an issue for the CA: refused."""
    records = [_caa("issue", "ca.example.net"), _caa("tbs", "Unknown", flags=128)]
    decision = evaluate(records, Request("example.com", NET))
    assert not decision.allowed
    assert "critical" in decision.reason


def test_an_unknown_tag_without_the_critical_flag_is_ignored() -> None:
    """`CAA 0 tbs "Unknown"` changes nothing; a set of only iodef restricts nothing."""
    records = [_caa("issue", "ca.example.net"), _caa("tbs", "Unknown")]
    assert evaluate(records, Request("example.com", NET)).allowed
    assert evaluate([_caa("iodef", "mailto:a@example.com")], Request("example.com", ORG)).allowed


def test_accounturi_allows_only_that_account() -> None:
    """RFC 8657: `issue "ca.example.net; accounturi=URI"` allows that account only."""
    uri = "https://ca.example.net/acct/1"
    records = [_caa("issue", f"ca.example.net; accounturi={uri}")]
    assert evaluate(records, Request("example.com", NET, uri)).allowed
    other = evaluate(records, Request("example.com", NET, "https://ca.example.net/acct/2"))
    assert not other.allowed
    assert f"allows only the account {uri}" in other.reason


def test_validationmethods_allows_only_those_methods() -> None:
    """RFC 8657: `validationmethods=dns-01` refuses http-01."""
    records = [_caa("issue", "ca.example.net; validationmethods=dns-01,tls-alpn-01")]
    assert evaluate(records, Request("example.com", NET, method="dns-01")).allowed
    refused = evaluate(records, Request("example.com", NET, method="http-01"))
    assert not refused.allowed
    assert "not http-01" in refused.reason


def test_issuer_values_are_parsed_with_their_parameters() -> None:
    """`ca.example.net; account=230123` parses; a parameter without `=` is malformed."""
    issuer = parse_issuer(" CA.example.net ; account=230123 ")
    assert issuer is not None
    assert issuer.domain == "ca.example.net"
    assert issuer.parameter("account") == "230123"
    assert parse_issuer("ca.example.net; nonsense") is None
    assert parse_issuer(";") == parse_issuer("")


def test_a_malformed_issue_value_allows_no_ca() -> None:
    """A record the CA cannot parse does not authorize it."""
    decision = evaluate([_caa("issue", "ca.example.net; broken")], Request("example.com", NET))
    assert not decision.allowed
    assert "malformed" in decision.reason


def test_no_records_allow_every_ca() -> None:
    """An empty relevant set: any CA may issue."""
    assert evaluate((), Request("example.com", ORG)).allowed
