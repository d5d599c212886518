"""A certificate's validity dates from its PEM file, with the standard library only.

`sidecar health` runs every minute; reading two dates must not load cryptography (see
sidecar.healthcheck). This reader takes only what certbot writes — PEM CERTIFICATE blocks and
nothing else — and walks the first one's DER strictly: every length minimal and inside its parent,
the Certificate and TBSCertificate fields in their order, nothing left over. Anything else raises
ValueError, as `certs.parse_cert` does; the caller then lets the full reader (cryptography) speak.
"""

from __future__ import annotations

import binascii
import re
from datetime import UTC, datetime

_BLOCK = rb"-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END CERTIFICATE-----"
_FILE = re.compile(rb"(?:\s*" + _BLOCK + rb")+\s*")
_FIRST = re.compile(_BLOCK)
SEQUENCE, INTEGER, BIT_STRING, VERSION, EXTENSIONS = 0x30, 0x02, 0x03, 0xA0, 0xA3
UNIQUE_IDS_AND_EXTENSIONS = (0x81, 0x82, EXTENSIONS)  # issuerUID [1], subjectUID [2], [3]
CONSTRUCTED = 0x20
HIGH_TAG = 0x1F  # a tag number in more bytes: not in certificates
LONG = 0x80  # a length in more bytes; the long form only from 128 on (DER)
UTC_TIME, GENERALIZED_TIME = 0x17, 0x18
_TIME = {
    UTC_TIME: re.compile(rb"(\d\d)(\d{10})Z"),
    GENERALIZED_TIME: re.compile(rb"(\d{4})(\d{10})Z"),
}

Element = tuple[int, int, int]  # tag, start of its content, end of its content


def validity(pem: bytes) -> tuple[datetime, datetime]:
    """notBefore and notAfter (UTC) of the first certificate in a file of PEM certificates."""
    if not _FILE.fullmatch(pem):
        raise ValueError("not a file of PEM certificates only")
    first = _FIRST.search(pem)
    if first is None:  # the full match found one; for the type checker
        raise ValueError("no PEM certificate")
    try:
        der = binascii.a2b_base64(re.sub(rb"\s+", b"", first[1]), strict_mode=True)
    except binascii.Error as error:
        raise ValueError(f"bad base64: {error}") from None
    return _validity(der)


def _validity(der: bytes) -> tuple[datetime, datetime]:
    (certificate,) = _sequence(der, (0, 0, len(der)), tags=(SEQUENCE,))
    tbs, _, _ = _sequence(der, certificate, tags=(SEQUENCE, SEQUENCE, BIT_STRING))
    fields = _sequence(der, tbs)
    at = 1 if fields and fields[0][0] == VERSION else 0
    expected = (INTEGER, SEQUENCE, SEQUENCE, SEQUENCE, SEQUENCE, SEQUENCE)
    main, rest = fields[at : at + len(expected)], fields[at + len(expected) :]
    if tuple(f[0] for f in main) != expected:
        raise ValueError("not a TBSCertificate")
    tags = [f[0] for f in rest]
    if tags != sorted(set(tags)) or not set(tags) <= set(UNIQUE_IDS_AND_EXTENSIONS):
        raise ValueError("unexpected fields after subjectPublicKeyInfo")
    not_before, not_after = _sequence(der, main[3], count=2)
    return _time(der, not_before), _time(der, not_after)


def _sequence(
    der: bytes, parent: Element, *, count: int | None = None, tags: tuple[int, ...] = ()
) -> list[Element]:
    """The elements inside `parent` (the whole of it, each one well formed, down to the leaves)."""
    _, at, end = parent
    out = []
    while at < end:
        element = _element(der, at, end)
        if element[0] & CONSTRUCTED:
            _sequence(der, element)
        out.append(element)
        at = element[2]
    if count is not None and len(out) != count:
        raise ValueError(f"{len(out)} elements where DER has {count}")
    if tags and tuple(e[0] for e in out) != tags:
        raise ValueError("not a Certificate")
    return out


def _element(der: bytes, at: int, limit: int) -> Element:
    """The element at `at`, which must end by `limit`; ValueError unless it is DER."""
    if at + 2 > limit or der[at] & HIGH_TAG == HIGH_TAG:
        raise ValueError("truncated, or a tag DER certificates do not use")
    tag, first, at = der[at], der[at + 1], at + 2
    length = first
    if first & LONG:
        count = first & ~LONG
        raw = der[at : at + count]
        if not 1 <= count <= 4 or len(raw) != count or raw[0] == 0:  # noqa: PLR2004
            raise ValueError("indefinite or overlong length (BER, not DER)")
        length, at = int.from_bytes(raw, "big"), at + count
        if length < LONG:
            raise ValueError("long form for a short length (BER, not DER)")
    if at + length > limit:
        raise ValueError("an element runs past its parent")
    return tag, at, at + length


def _time(der: bytes, element: Element) -> datetime:
    tag, start, end = element
    pattern = _TIME.get(tag)
    match = pattern.fullmatch(der[start:end]) if pattern else None
    if match is None:
        raise ValueError("a validity date that is neither UTCTime nor GeneralizedTime")
    year = int(match[1])
    if tag == UTC_TIME:  # RFC 5280, 4.1.2.5.1
        year += 1900 if year >= 50 else 2000  # noqa: PLR2004
    month, day, hour, minute, second = (int(match[2][i : i + 2]) for i in range(0, 10, 2))
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
