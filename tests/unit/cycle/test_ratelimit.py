"""Let's Encrypt's 5 certificates per set of names per week, counted from the journal: a forced
renewal that would be the fifth is refused, saying when the next one is possible."""

from __future__ import annotations

from datetime import datetime, timedelta

from sidecar.cycle.ratelimit import LIMIT, WEEK, count, counted, key, recent, refusals
from sidecar.volume.ca import LETSENCRYPT, LETSENCRYPT_STAGING
from tests.unit.helpers import T0, cert_info

DAY = timedelta(days=1)
NOW = T0 + 30 * DAY
CERT = cert_info(("a.example", "www.a.example"), NOW - DAY)
NAMES = key(CERT.names)


def days_ago(*days: float) -> list[datetime]:
    return [NOW - d * DAY for d in days]


def test_the_set_of_names_ignores_order_and_case():
    """The CA counts the exact set of names: `www.A.example,a.example` is the same set."""
    assert key(("www.A.example", "a.example")) == key(("a.example", "www.a.example"))
    assert key(("a.example",)) != key(("a.example", "www.a.example"))


def test_only_the_last_seven_days_count():
    """A certificate from 7 days ago no longer counts; one from 6.9 days ago does."""
    times = days_ago(8, 7, 6.9, 1)
    assert recent(times, NOW) == days_ago(6.9, 1)
    assert count({NAMES: times}, CERT, NOW) == 2


def test_a_cycle_that_saved_a_certificate_counts_it_and_drops_what_is_older_than_a_week():
    """The journal keeps a week per set of names; a set with nothing left goes."""
    before = {NAMES: days_ago(9, 2), "old.example": days_ago(10)}
    after = counted(before, {"a.example": CERT, "b.example": None}, ("a.example",), NOW)
    assert after == {NAMES: [*days_ago(2), NOW]}


def test_four_in_a_week_refuses_a_forced_fifth_and_says_when_the_next_is_possible():
    """At Let's Encrypt: one line naming the certificate, the count, the time, the dry run."""
    issued = {NAMES: days_ago(6, 5, 3, 1)}
    (line,) = refusals(issued, {"a.example": CERT}, NOW, LETSENCRYPT)
    assert line.startswith("not forcing a renewal of a.example: 4 certificates for its names")
    assert f"possible from {(NOW - 6 * DAY + WEEK).isoformat(timespec='minutes')}" in line
    assert "`sidecar renew --dry-run` is free" in line


def test_the_next_possible_time_frees_enough_of_a_crowded_week():
    """Five already (a renewal the CA asked for used the last): two must age out first."""
    issued = {NAMES: days_ago(6, 5, 3, 2, 1)}
    (line,) = refusals(issued, {"a.example": CERT}, NOW, LETSENCRYPT)
    assert f"possible from {(NOW - 5 * DAY + WEEK).isoformat(timespec='minutes')}" in line


def test_three_in_a_week_let_a_forced_renewal_go_ahead():
    """The fourth is no problem: nothing refused."""
    assert refusals({NAMES: days_ago(6, 5, 1)}, {"a.example": CERT}, NOW, LETSENCRYPT) == []
    assert LIMIT == 5


def test_other_sets_of_names_and_other_cas_are_not_refused():
    """Another set of names has its own count; staging and private CAs have their own limits."""
    issued = {key(("b.example",)): days_ago(6, 5, 3, 1), NAMES: days_ago(6, 5, 3, 1)}
    b = cert_info(("b.example",), NOW - DAY)
    assert [
        line.split(":")[0] for line in refusals(issued, {"b.example": b}, NOW, LETSENCRYPT)
    ] == ["not forcing a renewal of b.example"]
    assert refusals(issued, {"a.example": CERT}, NOW, LETSENCRYPT_STAGING) == []
    assert refusals(issued, {"a.example": CERT}, NOW, "https://ca.internal/dir") == []
    assert refusals(issued, {"a.example": None}, NOW, LETSENCRYPT) == []
