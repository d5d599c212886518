"""A certificate's dates on the standard library: cryptography's dates, or a refusal."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sidecar.volume.certdates import validity
from sidecar.volume.certs import parse_cert
from tests.unit.helpers import T0, make_pem

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def der_of(pem: bytes) -> bytes:
    body = re.search(rb"-----BEGIN CERTIFICATE-----(.*?)-----END", pem, re.DOTALL)
    assert body is not None
    return base64.b64decode(body[1])


def pem_of(der: bytes) -> bytes:
    lines = [base64.b64encode(der)[i : i + 64] for i in range(0, len(base64.b64encode(der)), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    "pem",
    [
        make_pem(),
        make_pem(("a.example", "b.example"), T0, datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)),
        make_pem(("late.example",), datetime(2050, 1, 1, tzinfo=UTC)),  # GeneralizedTime
        make_pem(("early.example",), datetime(1999, 5, 6, 7, 8, 9, tzinfo=UTC)),
        make_pem(("rsa.example",), key=RSA_KEY),
        make_pem(()),  # no SAN
    ],
)
def test_the_dates_are_cryptographys(pem):
    """notBefore and notAfter as `parse_cert` reads them, to the second, in UTC."""
    info = parse_cert(pem)
    assert validity(pem) == (info.not_before, info.not_after)
    assert validity(pem)[1].tzinfo is UTC


def test_a_chain_gives_its_first_certificate():
    """fullchain.pem: the leaf's dates, as `parse_cert` reads the first block."""
    leaf = make_pem(("leaf.example",))
    issuer = make_pem(("ca.example",), datetime(2020, 1, 1, tzinfo=UTC))
    assert validity(leaf + issuer) == validity(leaf)


def test_crlf_line_ends_are_read():
    pem = make_pem()
    assert validity(pem.replace(b"\n", b"\r\n")) == validity(pem)


@pytest.mark.parametrize(
    "change",
    [
        lambda pem: pem[: len(pem) // 2],  # truncated
        lambda pem: b"x" + pem,  # text before the block
        lambda pem: pem.replace(b"BEGIN CERTIFICATE", b"BEGIN X509 CERTIFICATE"),
        lambda pem: pem + b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        lambda pem: pem.replace(b"\n", b"\n ", 3),  # a line with an indent
        lambda _: b"",
        lambda _: b"x",
    ],
)
def test_anything_but_pem_certificates_is_refused(change):
    """cryptography reads some of these; this reader leaves them to it."""
    with pytest.raises(ValueError, match=r"."):
        validity(change(make_pem()))


@pytest.mark.parametrize(
    "change",
    [
        lambda der: der + b"\x00\x00",  # something after the certificate
        lambda der: der[:-1],  # one byte short
        lambda der: der[:1] + b"\x80" + der[4:],  # an indefinite length (BER)
        lambda der: der[:1] + bytes([0x83, 0]) + der[2:],  # an overlong length
        lambda der: b"\x31" + der[1:],  # a SET, not a SEQUENCE
    ],
)
def test_der_that_is_not_a_certificate_is_refused(change):
    """Lengths, order and tags are checked, not assumed."""
    with pytest.raises(ValueError, match=r"."):
        validity(pem_of(change(der_of(make_pem()))))


def test_a_date_that_is_no_date_is_refused():
    """A 13th month in notAfter (every byte else intact)."""
    der = der_of(make_pem(not_after=datetime(2025, 6, 1, tzinfo=UTC)))
    broken = der.replace(b"250601000000Z", b"251301000000Z")
    assert broken != der
    with pytest.raises(ValueError, match=r"month"):
        validity(pem_of(broken))
