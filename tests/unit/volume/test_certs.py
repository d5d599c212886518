from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from certbot._internal.renewal import _default_renewal_time
from cryptography.hazmat.primitives.asymmetric import rsa

from sidecar.volume.certs import (
    SHORT_LIVED,
    is_due,
    now_utc,
    parse_cert,
    renewal_time,
)
from tests.unit.helpers import DAY, ISSUER, T0, cert_info, make_pem


def test_certificate_names_dates_issuer_and_key_type_are_read():
    """parse_cert returns the SAN names in order, the validity in UTC, issuer and key type."""
    info = parse_cert(make_pem(("a.example", "www.a.example"), T0, T0 + 90 * DAY))
    assert info.names == ("a.example", "www.a.example")
    assert info.not_before == T0
    assert info.not_after == T0 + 90 * DAY
    assert info.not_after.tzinfo == UTC
    assert info.issuer == ISSUER
    assert info.key_type == "ecdsa"
    assert info.lifetime == 90 * DAY
    assert info.serial_hex == f"{info.serial:x}"


def test_rsa_certificate_is_reported_as_rsa():
    """KEY_TYPE=rsa lineages show their key type."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    assert parse_cert(make_pem(key=key)).key_type == "rsa"


def test_certificate_without_san_has_no_names():
    """A certificate without the SAN extension yields an empty name list, not an error."""
    assert parse_cert(make_pem(())).names == ()


def test_first_certificate_of_a_chain_is_read():
    """fullchain.pem holds the leaf first; that is the one described."""
    leaf = make_pem(("leaf.example",))
    chain = leaf + make_pem(("intermediate.example",))
    assert parse_cert(chain).names == ("leaf.example",)


def test_garbage_is_not_a_certificate():
    """Non-PEM bytes raise ValueError."""
    with pytest.raises(ValueError):
        parse_cert(b"not a certificate")


def test_renewal_is_due_when_a_third_of_the_lifetime_is_left():
    """A 90-day certificate is due after 60 days (certbot's default)."""
    assert renewal_time(cert_info(lifetime=90 * DAY)) == T0 + 60 * DAY


def test_short_lived_certificate_is_due_at_half_its_lifetime():
    """Under 10 days (e.g. 6-day profiles) renewal starts at half the lifetime."""
    assert renewal_time(cert_info(lifetime=8 * DAY)) == T0 + 4 * DAY
    assert renewal_time(cert_info(lifetime=6 * DAY)) == T0 + 3 * DAY


def test_ten_day_certificate_uses_the_one_third_rule():
    """Exactly SHORT_LIVED is not short-lived."""
    assert renewal_time(cert_info(lifetime=SHORT_LIVED)) == T0 + SHORT_LIVED * 2 / 3


@pytest.mark.parametrize("days", [1, 6, 8, 9.99, 10, 18, 47, 90, 398])
def test_default_rule_agrees_with_certbots_own(days):
    """renewal_time matches certbot's `_default_renewal_time` for short and long lifetimes."""
    pem = make_pem(("a.example",), T0, T0 + timedelta(days=days))
    assert renewal_time(parse_cert(pem)) == _default_renewal_time(pem)


def test_renew_before_expiry_overrides_the_lifetime_rule():
    """RENEW_BEFORE_EXPIRY=30d makes a 90-day certificate due 30 days before it expires."""
    cert = cert_info(lifetime=90 * DAY)
    assert renewal_time(cert, 30 * DAY) == T0 + 60 * DAY
    assert renewal_time(cert, 10 * DAY) == T0 + 80 * DAY


def test_certificate_is_due_from_its_renewal_time_on():
    """Like certbot: not due up to the renewal time, due once it has passed."""
    cert = cert_info(lifetime=90 * DAY)
    due = T0 + 60 * DAY
    assert not is_due(cert, due - timedelta(seconds=1))
    assert not is_due(cert, due)
    assert is_due(cert, due + timedelta(seconds=1))
    assert is_due(cert, due + DAY)
    assert is_due(cert, T0 + 91 * DAY)


def test_due_takes_renew_before_expiry_into_account():
    """With a 10-day interval a 90-day certificate is not due at day 70."""
    cert = cert_info(lifetime=90 * DAY)
    assert is_due(cert, T0 + 70 * DAY)
    assert not is_due(cert, T0 + 70 * DAY, 10 * DAY)


def test_now_is_timezone_aware_utc():
    """Every comparison is between aware UTC datetimes."""
    before = datetime.now(UTC)
    now = now_utc()
    assert now.tzinfo == UTC
    assert before <= now <= datetime.now(UTC)
