"""`replaces` in renewal orders: the ARI certificate ID, when an order names it, the one retry
without it, and what the patch relies on in the pinned certbot and acme."""

from __future__ import annotations

import inspect
from datetime import timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from acme import client as acme_client
from acme import crypto_util, messages
from acme import errors as acme_errors
from certbot._internal import main, renewal
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sidecar.certbot import replaces
from tests.unit.helpers import T0, logged

if TYPE_CHECKING:
    from pathlib import Path

KEY = ec.generate_private_key(ec.SECP256R1())
# RFC 9773 §4.1's example: this AKI keyIdentifier and serial give this certificate ID
AKI = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
SERIAL = 0x87654321
RFC_ID = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def issued(serial: int = SERIAL, key: Any = KEY, *, aki: bytes | None = AKI) -> x509.Certificate:
    name = x509.Name.from_rfc4514_string("CN=a.example")
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(x509.Name.from_rfc4514_string("CN=Test CA"))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(T0)
        .not_valid_after(T0 + timedelta(days=90))
    )
    if aki is not None:
        extension = x509.AuthorityKeyIdentifier(aki, None, None)
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(KEY, hashes.SHA256())


def test_the_certificate_id_is_the_rfc_example_and_what_acme_asks_ari_for():
    """base64url(AKI) "." base64url(the serial's DER INTEGER bytes, a leading zero when the top
    bit is set), no padding: RFC 9773's example, and acme's own ARI path for any serial."""
    assert replaces.ari_cert_id(issued()) == RFC_ID
    for serial in (1, 0x7F, 0x80, 0xFFFF, x509.random_serial_number()):
        cert = issued(serial)
        assert replaces.ari_cert_id(cert) == acme_client._renewal_info_path_component(cert)


def test_a_renewal_names_the_certificate_it_replaces_unless_dry_new_ca_or_new_key():
    """The ID on a real renewal at the certificate's CA with a key of the same kind; none for a
    dry run, at another CA, for another key type, or without an AKI."""
    cert = issued()
    same = ("ecdsa", "secp256r1")
    assert replaces.replaces_for(cert, dry_run=False, same_ca=True, new_key=same) == RFC_ID
    assert replaces.replaces_for(cert, dry_run=True, same_ca=True, new_key=same) is None
    assert replaces.replaces_for(cert, dry_run=False, same_ca=False, new_key=same) is None
    assert replaces.replaces_for(cert, dry_run=False, same_ca=True, new_key=("rsa", "2048")) is None
    bare = issued(aki=None)
    assert replaces.replaces_for(bare, dry_run=False, same_ca=True, new_key=same) is None


def test_the_key_is_named_as_certbot_names_it():
    """ecdsa with its curve, rsa with its size: what the run's key_type is compared with."""
    assert replaces.key_of(issued()) == ("ecdsa", "secp256r1")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert replaces.key_of(issued(key=rsa_key)) == ("rsa", "2048")


def refusal(code: str, detail: str = "") -> messages.Error:
    """The CA's problem document of type `code` (also one acme does not know yet)."""
    error: messages.Error = messages.Error.from_json(
        {"type": messages.ERROR_PREFIX + code, "detail": detail}
    )
    return error


@pytest.mark.parametrize(
    ("code", "detail", "refused"),
    [
        ("alreadyReplaced", "", True),
        ("malformed", "cannot indicate an order replaces certificate with serial 01", True),
        ("serverInternal", "could not find an order for the given certificate: nope", True),
        ("unauthorized", "requester account did not request the certificate being replaced", True),
        ("rateLimited", "too many certificates already issued for this replacement", False),
        ("malformed", "Order included a DNS identifier with an invalid value", False),
        ("rejectedIdentifier", "forbidden name", False),
    ],
)
def test_refusals_because_of_replaces_are_told_from_other_errors(code, detail, refused):
    """alreadyReplaced, or an answer naming the replaced/unknown certificate; not a rate limit
    or a problem with the names."""
    error = refusal(code, detail)
    assert replaces.refused_for_replaces(error) is refused


# What the patch relies on: when a certbot or acme upgrade changes one of these, look again
# (a `replaces` field in acme's NewOrder, or a way to pass it to new_order: use it instead).


def test_acme_new_order_still_takes_a_csr_and_a_profile_and_posts_a_new_order():
    """`ClientV2.new_order(csr_pem, profile)` builds a `messages.NewOrder` and posts it through
    `self._post(url, order)`: the wrapper swaps the order on that call."""
    signature = inspect.signature(inspect.unwrap(acme_client.ClientV2.new_order))
    assert list(signature.parameters) == ["self", "csr_pem", "profile"]
    source = inspect.getsource(inspect.unwrap(acme_client.ClientV2.new_order))
    assert "messages.NewOrder(identifiers=identifiers, profile=profile)" in source
    assert "self._post(self.directory['newOrder'], order)" in source


def test_acme_still_raises_a_conflict_error_for_every_409():
    """RFC 9773's refusal of a second replacement is a 409, which acme raises as ConflictError
    (without its problem document): the wrapper takes that error as the refusal."""
    source = inspect.getsource(acme_client.ClientNetwork._check_response)
    assert "if response.status_code == 409:\n            raise errors.ConflictError(" in source


def test_acme_new_order_has_no_replaces_field_of_its_own():
    """acme's NewOrder fields are the ones ReplacingOrder copies, and `replaces` is not one."""
    fields = set(messages.NewOrder._fields)
    copied = {"identifiers", "profile"}
    others = {"status", "authorizations", "certificate", "finalize", "expires", "error"}
    assert fields == copied | others
    assert set(replaces.ReplacingOrder._fields) == fields | {"replaces"}


def test_certbot_still_renews_a_lineage_through_renewal_renew_cert():
    """certbot's `_get_and_save_cert` calls `renewal.renew_cert(config, sans, le_client,
    lineage)` through the module, where the wrapper is installed."""
    signature = inspect.signature(inspect.unwrap(renewal.renew_cert))
    assert list(signature.parameters) == ["config", "sans", "le_client", "lineage"]
    source = inspect.getsource(inspect.unwrap(main._get_and_save_cert))
    assert "renewal.renew_cert(config, sans, le_client, lineage)" in source


# The wrapped new_order, on a real acme client with a fake network.


class FakeNet:
    """acme's network: answers new orders (or refuses the first `refuse` ones)."""

    def __init__(self, refuse: list[Exception]) -> None:
        self.refuse = refuse
        self.posted: list[dict[str, Any]] = []

    def post(self, url: str, obj: Any, **_kw: Any) -> Any:
        self.posted.append(obj.to_partial_json())
        if self.refuse:
            raise self.refuse.pop(0)
        body = {"status": "pending", "identifiers": [], "authorizations": [], "finalize": url}
        return SimpleNamespace(json=lambda: body, headers={"Location": url + "/1"})


def order(net: FakeNet, pending: replaces.Pending | None) -> Any:
    directory = messages.Directory({"newOrder": "https://ca.test/new-order", "newNonce": "n"})
    client = acme_client.ClientV2(directory, net)  # type: ignore[arg-type]
    new_order = replaces._wrap_new_order(inspect.unwrap(acme_client.ClientV2.new_order))
    key_pem = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    csr = crypto_util.make_csr(key_pem, ["a.example"])
    with replaces._pending(pending):
        return new_order(client, csr, profile="tlsserver")


def test_a_renewal_order_carries_replaces_and_a_first_one_does_not():
    """With a certificate pending the order names it; without one it is acme's own order."""
    net = FakeNet([])
    order(net, replaces.Pending(RFC_ID, "a.example"))
    order(net, None)
    assert net.posted[0]["replaces"] == RFC_ID
    assert net.posted[0]["profile"] == "tlsserver"
    assert "replaces" not in net.posted[1]


@pytest.mark.parametrize(
    "refused",
    [refusal("alreadyReplaced"), acme_errors.ConflictError("UNKNOWN-LOCATION")],
    ids=["alreadyReplaced", "409"],
)
def test_an_order_refused_because_of_replaces_is_sent_once_more_without_it(refused):
    """alreadyReplaced (acme raises a 409 as ConflictError, its type dropped): one more order
    without `replaces`, logged, and that one is used."""
    net = FakeNet([refused])
    pending = replaces.Pending(RFC_ID, "a.example")
    with logged() as lines:
        result = order(net, pending)
    assert [("replaces" in posted) for posted in net.posted] == [True, False]
    assert result.uri == "https://ca.test/new-order/1"
    (warning,) = [line for line in lines if "once more without `replaces`" in line]
    assert "urn:" not in warning  # not read as the run's ACME problem (certbot.failures)
    order(net, pending)  # later orders of that renewal (certbot's own retries): none
    assert "replaces" not in net.posted[2]


def test_a_second_refusal_or_another_error_is_raised_never_a_loop():
    """The retry without `replaces` is the only one; a rate limit is not retried at all."""
    again = messages.Error.with_code("malformed", detail="the certificate being replaced")
    net = FakeNet([again, again])
    with pytest.raises(messages.Error):
        order(net, replaces.Pending(RFC_ID, "a.example"))
    assert len(net.posted) == 2
    limited = FakeNet([messages.Error.with_code("rateLimited", detail="too many")])
    with pytest.raises(messages.Error):
        order(limited, replaces.Pending(RFC_ID, "a.example"))
    assert len(limited.posted) == 1


def test_the_renewal_of_a_lineage_replaces_its_current_certificate(tmp_path: Path):
    """certbot's lineage and config: the ID of its cert.pem at the lineage's own CA; none on a
    dry run, at another server, for a key of another type, or when its cert.pem cannot be
    read."""
    cert_path = tmp_path / "cert.pem"
    cert_path.write_bytes(issued().public_bytes(serialization.Encoding.PEM))
    ca = "https://ca.test/dir"
    lineage = SimpleNamespace(
        cert=str(cert_path),
        lineagename="a.example",
        configuration={"renewalparams": {"server": ca}},
    )

    def config(**changes: Any) -> Any:
        values = {"server": ca, "dry_run": False, "key_type": "ecdsa"}
        return SimpleNamespace(**{**values, "elliptic_curve": "secp256r1", **changes})

    assert replaces._pending_for(config(), lineage) == replaces.Pending(RFC_ID, "a.example")
    assert replaces._pending_for(config(dry_run=True), lineage) is None
    assert replaces._pending_for(config(server="https://other.test/dir"), lineage) is None
    rsa_key = config(key_type="rsa", rsa_key_size=2048)  # `--force` after KEY_TYPE changed
    assert replaces._pending_for(rsa_key, lineage) is None
    cert_path.unlink()
    assert replaces._pending_for(config(), lineage) is None
