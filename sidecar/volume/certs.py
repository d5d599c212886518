"""Certificate inspection and the renewal-time rule (pure, over PEM bytes and plain data)."""

from __future__ import annotations

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
    )


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
