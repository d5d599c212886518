"""What a failed certbot run means for the next attempt: certbot's output classified."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sidecar.certbot.failures import PERMANENT, classify, only_parse_failures


def problem(kind: str, detail: str = "detail") -> tuple[str, ...]:
    return (
        "Certbot failed to authenticate some domains (authenticator: sidecar).",
        f"  Type:   urn:ietf:params:acme:error:{kind}",
        f"  Detail: {detail}",
    )


@pytest.mark.parametrize("kind", sorted(PERMANENT))
def test_problems_retrying_cannot_fix_are_permanent(kind):
    """unauthorized, dns, caa, ...: the short backoff would only spend the CA's budget."""
    failure = classify(problem(kind))
    assert failure.kind == kind
    assert failure.permanent
    assert failure.reason == PERMANENT[kind]


def test_a_rate_limit_with_a_retry_time_waits_for_that_time():
    """rateLimited naming `retry after`: not permanent, but not before that time."""
    lines = problem(
        "rateLimited",
        "too many certificates (5) already issued for this exact set of identifiers in the "
        "last 168h0m0s, retry after 2025-03-14 09:30:00 UTC",
    )
    failure = classify(lines)
    assert failure.kind == "rateLimited"
    assert not failure.permanent
    assert failure.not_before == datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def test_a_rate_limit_without_a_time_waits_the_full_interval():
    """No retry time given: treated as permanent (the full interval), never the short backoff."""
    failure = classify(problem("rateLimited", "too many new orders recently"))
    assert failure.permanent
    assert failure.not_before is None


def test_another_certbot_holding_the_lock_is_its_own_kind():
    """certbot's lock message: someone runs certbot by hand in the same config dir."""
    failure = classify(("Another instance of Certbot is already running.",))
    assert failure.kind == "locked"
    assert not failure.permanent


def test_an_unknown_acme_problem_is_retried_on_the_backoff():
    """A problem type we do not know (serverInternal): the CA said something, retry later."""
    failure = classify(problem("serverInternal"))
    assert failure.kind == "serverInternal"
    assert not failure.permanent


def test_a_failure_without_an_acme_problem_is_a_plain_error():
    """Timeouts, crashes, local trouble: the short backoff applies."""
    failure = classify(("Traceback (most recent call last):", "ConnectionError"))
    assert failure.kind == "error"
    assert not failure.permanent


def test_a_permanent_problem_wins_over_an_earlier_transient_one():
    """Several problems in one run: any permanent one makes the failure permanent."""
    lines = (*problem("serverInternal"), *problem("unauthorized"))
    assert classify(lines).kind == "unauthorized"


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (
            "Encountered error adding TXT record: The peer didn't like the signature we sent",
            "dnsKeyRejected",
        ),
        (
            "Encountered error adding TXT record: The peer didn't know the key we used",
            "dnsKeyUnknown",
        ),
        (
            "The configured target DNS server (localhost) is not a valid IPv4 or IPv6 address.",
            "dnsServerAddress",
        ),
        ("File not found: /creds/missing.ini", "dnsCredentials"),
        ("Received response from server: REFUSED", "dnsRefused"),
    ],
)
def test_a_dns_plugin_refused_key_or_file_is_permanent(line, kind):
    """certbot's DNS plugin lines for a wrong key or file: retrying cannot fix them."""
    failure = classify(("Certbot failed to authenticate some domains.", line))
    assert failure.kind == kind
    assert failure.permanent


def test_a_dns_server_that_does_not_answer_is_retried():
    """The DNS server down (the plugin's query timed out): backed off, not given up on."""
    line = "Encountered error when making query: The DNS operation timed out."
    failure = classify((line,))
    assert failure.kind == "dnsTimeout"
    assert not failure.permanent
    assert "did not answer" in failure.reason


def test_the_cas_problem_type_wins_over_a_dns_cleanup_line():
    """An ACME problem the CA named comes first; a cleanup error after it does not hide it."""
    lines = (*problem("caa"), "Encountered error deleting TXT record: The DNS operation timed out.")
    assert classify(lines).kind == "caa"


def test_a_failed_challenge_is_classified_by_the_type_certbot_prints_without_its_prefix():
    """certbot 5 reports a failed challenge as `Type:   unauthorized`: still permanent."""
    lines = (
        (
            "Certbot failed to authenticate some domains (authenticator: dns-rfc2136). The "
            "Certificate Authority reported these problems:"
        ),
        "  Identifier: example.test",
        "  Type:   unauthorized",
        '  Detail: Incorrect TXT record "x" found at _acme-challenge.example.test',
    )
    failure = classify(lines)
    assert (failure.kind, failure.permanent) == ("unauthorized", True)


@pytest.mark.parametrize(
    "detail",
    [
        (
            'Error retrieving TXT records for DNS challenge ("read udp 127.0.0.1:59353->'
            '127.0.0.1:18153: read: connection refused")'
        ),
        "DNS problem: query timed out looking up TXT for _acme-challenge.example.com",
        (
            "DNS problem: SERVFAIL looking up TXT for _acme-challenge.example.com - the domain's "
            "nameservers may be malfunctioning"
        ),
    ],
)
def test_the_ca_not_reaching_the_dns_server_is_an_outage_retried(detail):
    """The CA could not ask the DNS server for the TXT record (down): backed off, not given up."""
    for kind in ("unauthorized", "dns"):
        failure = classify(
            ("  Identifier: example.test", f"  Type:   {kind}", f"  Detail: {detail}")
        )
        assert (failure.kind, failure.permanent) == ("dnsUnreachable", False)


def test_parse_failures_of_confs_already_reported_are_told_apart_from_renewal_failures():
    """`0 renew failure(s), 1 parse failure(s)` with one known unloadable conf: the rest went
    through; a renew failure, or more parse failures than known, is a failure."""
    tail = [
        "Renewal configuration file x.conf produced an unexpected error",
        "0 renew failure(s), 1 parse failure(s)",
    ]
    assert only_parse_failures(tail, 1)
    assert not only_parse_failures(tail, 0)
    assert not only_parse_failures(["1 renew failure(s), 1 parse failure(s)"], 1)
    assert not only_parse_failures(["certbot failed"], 1)
