from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sidecar.report.status import Row, health, rows, table
from sidecar.volume.journal import Journal
from tests.unit.helpers import DAY, T0, cert_info

A = cert_info(("a.example", "www.a.example"), T0, 90 * DAY)
B = cert_info(("b.example",), T0, 90 * DAY)
NOW = T0 + 30 * DAY
FAILED = Journal(last_result="failed: certbot renew for renew failed (exit 1)", failures=2)


# rows


def test_rows_describe_each_certificate_sorted_by_name():
    """Names, expiry, days left and the next renewal (2/3 of the lifetime)."""
    items = rows({"b.example": B, "a.example": A}, Journal(last_result="ok"), NOW, None)
    assert [r.certificate for r in items] == ["a.example", "b.example"]
    first = items[0]
    assert first.names == ("a.example", "www.a.example")
    assert first.not_after == T0 + 90 * DAY
    assert first.days_left == pytest.approx(60.0)
    assert first.next_renewal == T0 + 60 * DAY
    assert first.last_result == "ok"


def test_row_without_a_certificate_says_so():
    """A configured lineage not yet issued has no dates and shows the last cycle's result."""
    (row,) = rows({"a.example": None}, FAILED, NOW, None)
    assert row == Row("a.example", (), None, None, None, FAILED.last_result)


def test_overdue_renewal_is_shown_as_now():
    """Past its renewal time, the next renewal is the next check, not a date in the past."""
    (row,) = rows({"a.example": A}, Journal(), T0 + 70 * DAY, None)
    assert row.next_renewal == T0 + 70 * DAY


def test_renew_before_expiry_moves_the_next_renewal():
    """With RENEW_BEFORE_EXPIRY=10d the 90-day certificate renews at day 80."""
    (row,) = rows({"a.example": A}, Journal(), NOW, 10 * DAY)
    assert row.next_renewal == T0 + 80 * DAY


def test_expired_certificate_has_negative_days_left():
    """Days left go below zero once the certificate has expired."""
    (row,) = rows({"a.example": A}, Journal(), T0 + 91 * DAY, None)
    assert row.days_left == pytest.approx(-1.0)


def test_recently_renewed_lineage_says_renewed():
    """A lineage the last renewing cycle changed shows `renewed`; others show the result."""
    state = Journal(last_result="ok", renewed=("a.example",))
    items = rows({"a.example": A, "b.example": B}, state, NOW, None)
    assert [r.last_result for r in items] == ["renewed", "ok"]


def test_failed_last_cycle_is_not_hidden_by_an_earlier_renewal():
    """After a failing cycle the operator sees the failure for every certificate."""
    state = Journal(last_result="failed: certbot renew failed", failures=1, renewed=("a.example",))
    (row,) = rows({"a.example": A}, state, NOW, None)
    assert row.last_result.startswith("failed")


def test_row_json_has_iso_times_and_rounded_days():
    """`status --json` gets plain JSON types."""
    (row,) = rows({"a.example": A}, Journal(last_result="ok"), NOW + timedelta(hours=1), None)
    assert row.to_json() == {
        "certificate": "a.example",
        "names": ["a.example", "www.a.example"],
        "not_after": "2025-06-10T00:00:00+00:00",
        "days_left": 59.96,
        "next_renewal": "2025-05-11T00:00:00+00:00",
        "last_result": "ok",
        "issuer": "CN=Sidecar Test CA,O=certbot-sidecar tests",
        "next_check": None,
        "served": {"match": None, "detail": None},
        "ari": None,
    }


def test_row_json_without_a_certificate_uses_nulls():
    """Missing dates are null, not strings."""
    (row,) = rows({"a.example": None}, Journal(), NOW, None)
    assert row.to_json() == {
        "certificate": "a.example",
        "names": [],
        "not_after": None,
        "days_left": None,
        "next_renewal": None,
        "last_result": "never run",
        "issuer": None,
        "next_check": None,
        "served": {"match": None, "detail": None},
        "ari": None,
    }


# table


def test_table_has_a_header_and_aligned_columns_without_trailing_spaces():
    """Each column is as wide as its widest cell; missing values read as words or dashes."""
    items = rows({"a.example": A, "b.example": None}, Journal(last_result="ok"), NOW, None)
    header = (
        "CERTIFICATE  NAMES                    ISSUER           NOT AFTER           DAYS LEFT  "
        "NEXT CHECK  ARI WINDOW  NEXT RENEWAL      SERVED  LAST RESULT"
    )
    assert table(items).splitlines() == [
        header,
        (
            "a.example    a.example,www.a.example  Sidecar Test CA  2025-06-10 00:00    60.0       "
            "-           -           2025-05-11 00:00  -       ok"
        ),
        (
            "b.example    -                        -                no certificate yet  -          "
            "-           -           at next check     -       ok"
        ),
    ]


def test_table_cuts_long_results():
    """A long certbot error is cut to 60 characters to keep the table readable."""
    (row,) = rows({"a.example": A}, Journal(last_result="failed: " + "x" * 200), NOW, None)
    last = table([row]).splitlines()[1]
    assert last.endswith("failed: " + "x" * 52)


def test_empty_table_is_just_the_header():
    """No certificates configured: the header alone."""
    assert table([]) == (
        "CERTIFICATE  NAMES  ISSUER  NOT AFTER  DAYS LEFT  NEXT CHECK  ARI WINDOW  NEXT RENEWAL  "
        "SERVED  "
        "LAST RESULT"
    )


# health


def test_fresh_certificates_are_healthy():
    """Far from expiry and no failures: no problems."""
    assert health({"a.example": A, "b.example": B}, Journal(last_result="ok"), NOW) == []


def test_certificate_in_the_last_sixth_of_its_life_is_unhealthy():
    """15 days before a 90-day certificate expires the container turns unhealthy."""
    assert health({"a.example": A}, Journal(), T0 + 75 * DAY - timedelta(seconds=1)) == []
    (problem,) = health({"a.example": A}, Journal(), T0 + 75 * DAY + timedelta(seconds=1))
    assert problem == "a.example: expires 2025-06-10T00:00+00:00, inside the danger zone"


def test_expired_certificate_is_unhealthy():
    """An expired certificate is in the danger zone too."""
    assert health({"a.example": A}, Journal(), T0 + 100 * DAY)


def test_danger_zone_can_be_given_explicitly():
    """A fixed zone overrides the 1/6-of-lifetime rule."""
    assert health({"a.example": A}, Journal(), NOW, danger=61 * DAY)
    assert health({"a.example": A}, Journal(), NOW, danger=59 * DAY) == []


def test_short_lived_certificate_danger_zone_scales_with_its_lifetime():
    """A 6-day certificate is unhealthy in its last day only."""
    short = cert_info(lifetime=6 * DAY)
    assert health({"s": short}, Journal(), T0 + 4 * DAY) == []
    assert health({"s": short}, Journal(), T0 + 5 * DAY + timedelta(hours=1))


def test_missing_certificate_is_unhealthy_only_after_a_failed_cycle():
    """Before the first issuance it is fine; after a failed attempt it is not."""
    assert health({"a.example": None}, Journal(), NOW) == []
    assert health({"a.example": None}, FAILED, NOW) == [
        "a.example: no certificate and the last cycle failed"
    ]


def test_failing_renewal_whose_next_attempt_is_too_late_is_unhealthy():
    """Failures plus a next check inside the danger zone: it would come too late."""
    state = Journal(failures=3, next_check_at=T0 + 76 * DAY)
    assert health({"a.example": A}, state, T0 + 70 * DAY) == [
        "a.example: renewal failing and the next attempt comes too late"
    ]


def test_failing_renewal_with_time_to_retry_is_healthy():
    """Failures alone are no alarm while the retry comes before the danger zone."""
    state = Journal(failures=3, next_check_at=T0 + 71 * DAY)
    assert health({"a.example": A}, state, T0 + 70 * DAY) == []
    assert health({"a.example": A}, Journal(failures=3), T0 + 70 * DAY) == []


def test_late_next_check_without_failures_is_healthy():
    """A regular schedule is not a problem by itself."""
    state = Journal(failures=0, next_check_at=T0 + 80 * DAY)
    assert health({"a.example": A}, state, T0 + 70 * DAY) == []


def test_each_unhealthy_certificate_is_reported_in_name_order():
    """Every problem is listed, sorted by certificate."""
    late = datetime(2025, 6, 5, tzinfo=UTC)
    problems = health({"b.example": B, "a.example": A, "c.example": None}, FAILED, late)
    assert [p.split(":")[0] for p in problems] == ["a.example", "b.example", "c.example"]
