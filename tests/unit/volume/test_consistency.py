from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sidecar.volume.consistency import mismatch
from tests.unit.helpers import ca_pem, lineage_files, make_pem


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_files_as_certbot_saves_them_belong_together():
    """cert signed by the chain's first certificate, fullchain = cert + chain, the key's."""
    assert mismatch(lineage_files(make_pem())) is None


def test_an_rsa_lineage_is_checked_with_its_own_padding():
    """An RSA issuer's signature (PKCS#1 v1.5, as certbot verifies it) is accepted."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem, chain = make_pem(key=key), ca_pem(key)
    files = {"cert": pem, "privkey": _key_pem(key), "chain": chain, "fullchain": pem + chain}
    assert mismatch(files) is None


def test_line_endings_do_not_count_as_certbot_reads_text():
    """A fullchain saved with CRLF still equals cert + chain (certbot reads universal newlines)."""
    files = lineage_files(make_pem())
    files["fullchain"] = files["fullchain"].replace(b"\n", b"\r\n")
    assert mismatch(files) is None


def test_a_fullchain_of_another_certificate_is_named():
    """fullchain.pem left from another certificate: certbot's 'fullchain does not match'."""
    files = lineage_files(make_pem())
    files["fullchain"] = lineage_files(make_pem(("other.example",)))["fullchain"]
    assert mismatch(files) == "fullchain.pem is not cert.pem followed by chain.pem"


def test_a_certificate_from_another_issuer_is_named():
    """cert.pem swapped for one another CA signed: its signature does not verify."""
    other = ec.generate_private_key(ec.SECP256R1())
    files = lineage_files(make_pem())
    files["cert"] = make_pem(key=other)
    assert "cert.pem is not signed by the first certificate of chain.pem" in str(mismatch(files))


def test_a_certificate_for_another_key_is_named():
    """privkey.pem of another key: certbot's check_privatekey fails."""
    files = lineage_files(make_pem())
    files["privkey"] = _key_pem(ec.generate_private_key(ec.SECP256R1()))
    assert "cert.pem does not match privkey.pem" in str(mismatch(files))


def test_unreadable_files_are_named():
    """A chain that is no certificate, a key that is no key: each named."""
    files = lineage_files(make_pem())
    assert "chain.pem does not start with a PEM certificate" in str(
        mismatch({**files, "chain": b"junk"})
    )
    assert "privkey.pem is not a private key" in str(mismatch({**files, "privkey": b"junk\n"}))
    assert "cert.pem is not a PEM certificate" in str(mismatch({**files, "cert": b""}))
