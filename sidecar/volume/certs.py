"""Certificate inspection and the renewal-time rule (pure, over PEM bytes and plain data)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

SHORT_LIVED = timedelta(days=10)
DANGER_FRACTION = 6


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What the sidecar needs to know of one certificate."""

    serial: int
    names: tuple[str, ...]
    issuer: str
    not_before: datetime
    not_after: datetime
    key_type: str
    ari_id: str = ""  # the certificate's ARI identifier (RFC 9773 §4.1); "" without an AKI

    @property
    def lifetime(self) -> timedelta:
        return self.not_after - self.not_before

    @property
    def serial_hex(self) -> str:
        return f"{self.serial:x}"


def parse_cert(pem: bytes) -> CertInfo:
    """Read the first certificate of a PEM file (raises ValueError when it is not one)."""
    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        addresses = san.value.get_values_for_type(x509.IPAddress)
        names = (*san.value.get_values_for_type(x509.DNSName), *map(str, addresses))
    except x509.ExtensionNotFound:
        names = ()
    key = cert.public_key()
    key_type = (
        "ecdsa"
        if isinstance(key, ec.EllipticCurvePublicKey)
        else ("rsa" if isinstance(key, rsa.RSAPublicKey) else type(key).__name__)
    )
    return CertInfo(
        serial=cert.serial_number,
        names=names,
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=key_type,
        ari_id=ari_id(cert),
    )


def ari_id(cert: x509.Certificate) -> str:
    """RFC 9773 §4.1: base64url(the AKI's keyIdentifier) "." base64url(the serial's DER content
    octets, two's complement, so a leading 0x00 when the high bit is set); "" without an AKI."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return ""
    if aki.key_identifier is None:
        return ""
    serial = cert.serial_number
    octets = serial.to_bytes(serial.bit_length() // 8 + 1, "big", signed=True)
    return f"{_b64url(aki.key_identifier)}.{_b64url(octets)}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def renewal_time(cert: CertInfo, renew_before_expiry: timedelta | None = None) -> datetime:
    """When certbot's default rule makes a certificate due (ARI may make it due earlier).

    With `renew_before_expiry` that fixed interval; otherwise when 1/3 of the lifetime is left,
    or 1/2 for certificates shorter than 10 days (certbot's `_default_renewal_time`).
    """
    if renew_before_expiry is not None:
        return cert.not_after - renew_before_expiry
    fraction = 2 if cert.lifetime < SHORT_LIVED else 3
    return cert.not_after - cert.lifetime / fraction


def is_due(cert: CertInfo, now: datetime, renew_before_expiry: timedelta | None = None) -> bool:
    return now > renewal_time(cert, renew_before_expiry)


def danger_zone(cert: CertInfo) -> timedelta:
    """The last sixth of the lifetime (15 of 90 days): unhealthy, and an alert goes out."""
    return cert.lifetime / DANGER_FRACTION


def in_danger_zone(cert: CertInfo, now: datetime) -> bool:
    return cert.not_after - now < danger_zone(cert)


def now_utc() -> datetime:
    return datetime.now(UTC)
