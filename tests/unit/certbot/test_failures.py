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
