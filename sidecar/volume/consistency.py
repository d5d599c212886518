"""Whether a lineage's four files belong together, as certbot checks them before it lists a
lineage (`crypto_util.verify_renewable_cert`, which `certbot certificates` runs and skips the
lineage on): pure, over the files' bytes, in certbot's order.

1. cert.pem is signed by the first certificate of chain.pem (an RSA or ECDSA key: certbot
   checks no other);
2. fullchain.pem is cert.pem followed by chain.pem (read as text, so line endings aside);
3. cert.pem matches privkey.pem.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes


def mismatch(files: Mapping[str, bytes]) -> str | None:
    """What does not belong together among `cert`, `privkey`, `chain` and `fullchain` (one
    clause), or None when certbot accepts them."""
    try:
        cert = x509.load_pem_x509_certificate(files["cert"])
    except ValueError:
        return "cert.pem is not a PEM certificate"
    try:
        issuer = x509.load_pem_x509_certificate(files["chain"])
    except ValueError:
        return "chain.pem does not start with a PEM certificate"
    if why := _signature(cert, issuer.public_key()):
        return why
    if why := _fullchain(files):
        return why
    return _key(cert, files["privkey"])


def _signature(cert: x509.Certificate, public: PublicKeyTypes) -> str | None:
    algorithm = cert.signature_hash_algorithm
    try:
        if isinstance(public, rsa.RSAPublicKey) and algorithm is not None:
            public.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
        elif isinstance(public, ec.EllipticCurvePublicKey) and algorithm is not None:
            public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
        else:
            return (
                "the first certificate of chain.pem has a key certbot cannot check a signature with"
            )
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return "cert.pem is not signed by the first certificate of chain.pem (not its issuer)"
    return None


def _text(data: bytes) -> str:
    """The file as certbot reads it: text, with universal newlines."""
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def _fullchain(files: Mapping[str, bytes]) -> str | None:
    try:
        whole = _text(files["cert"]) + _text(files["chain"])
        if whole == _text(files["fullchain"]):
            return None
    except UnicodeDecodeError:
        return "cert.pem, chain.pem or fullchain.pem is not UTF-8 text"
    return "fullchain.pem is not cert.pem followed by chain.pem"


def _spki(public: PublicKeyTypes) -> bytes:
    return public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _key(cert: x509.Certificate, data: bytes) -> str | None:
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return "privkey.pem is not a private key certbot can read (empty, encrypted or damaged)"
    if _spki(key.public_key()) != _spki(cert.public_key()):
        return "cert.pem does not match privkey.pem (the certificate is for another key)"
    return None
