"""`replaces` (RFC 9773 §5) in certbot's renewal orders: the one patch to certbot and acme.

certbot (through 5.10) never names the certificate a renewal replaces, and only an order that
does is exempt from the CA's rate limits inside the certificate's ARI window. `install()` runs
where certbot loads its plugins (`sidecar.incertbot`, imported by every certbot process of the
sidecar) and wraps two functions, checked by `tests/unit/certbot/test_replaces.py` against the
pinned certbot and acme:

- `certbot._internal.renewal.renew_cert` (one lineage renewed, by `renew` or by `certonly` on an
  existing lineage): while it runs, the ARI certificate ID of the lineage's current certificate
  is pending, unless `replaces_for` says the order replaces nothing;
- `acme.client.ClientV2.new_order`: with an ID pending, the order is posted with `replaces`; one
  the CA refuses because of it (`refused_for_replaces`) is posted once more without, and the ID
  is dropped for the rest of that lineage's renewal: never a loop.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from acme import client as acme_client
from acme import errors as acme_errors
from acme import messages
from certbot._internal import renewal
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.json_util import field
from loguru import logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

_REFUSING_TYPES = frozenset({"malformed", "serverInternal", "unauthorized", "badRequest"})


class ReplacingOrder(messages.NewOrder):
    """A new order naming the certificate it replaces (acme 5.9's `NewOrder` has no field)."""

    replaces: str = field("replaces", omitempty=True)


@dataclass(slots=True)
class Pending:
    """The certificate a lineage's renewal replaces; `sent` until the CA refused it once."""

    cert_id: str
    lineage: str
    sent: bool = True


_PENDING: contextvars.ContextVar[Pending | None] = contextvars.ContextVar("replaces", default=None)


def ari_cert_id(cert: x509.Certificate) -> str:
    """RFC 9773 §4.1: base64url(AKI keyIdentifier) "." base64url(serial's DER INTEGER content
    bytes), both without padding."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    serial = cert.serial_number
    serial_bytes = serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)
    return f"{_b64url(aki.key_identifier or b'')}.{_b64url(serial_bytes)}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def key_of(cert: x509.Certificate) -> tuple[str, str]:
    """The certificate's key as certbot names it: ("ecdsa", curve) or ("rsa", size)."""
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ("ecdsa", key.curve.name)
    if isinstance(key, rsa.RSAPublicKey):
        return ("rsa", str(key.key_size))
    return (type(key).__name__, "")


def replaces_for(
    cert: x509.Certificate,
    *,
    dry_run: bool,
    same_ca: bool,
    new_key: tuple[str, str],
) -> str | None:
    """The ARI certificate ID a renewal of `cert` names, or None: not for a dry run (it would
    spend the one replacement the CA allows), not at another CA than the certificate's, not for
    a new key of another type (a key change is a new certificate, not a replacement)."""
    if dry_run or not same_ca or new_key != key_of(cert):
        return None
    try:
        return ari_cert_id(cert)
    except x509.ExtensionNotFound:
        return None


def refused_for_replaces(error: messages.Error | acme_errors.ConflictError) -> bool:
    """Whether a new order carrying `replaces` was refused because of it: a 409 Conflict (RFC
    9773's answer, `alreadyReplaced`: acme raises ConflictError for every 409, its problem
    document dropped), `alreadyReplaced` itself, or a CA's way of saying the certificate is
    unknown or another account's (Pebble 2.6: serverInternal "could not find an order for the
    given certificate", unauthorized "... the certificate being replaced ...")."""
    if isinstance(error, acme_errors.ConflictError):
        return True
    code = (error.typ or "").removeprefix(messages.ERROR_PREFIX)  # `code`: None for new types
    detail = (error.detail or "").lower()
    if code == "alreadyReplaced":
        return True
    return code in _REFUSING_TYPES and ("replace" in detail or "certificate" in detail)


def _described(error: messages.Error | acme_errors.ConflictError) -> str:
    """The refusal in a log line, without the problem's URN: the sidecar reads a failed run's
    ACME problem from its URN (`certbot.failures`), and a refusal retried is none."""
    if isinstance(error, acme_errors.ConflictError):
        return "409 Conflict"
    return f"{(error.typ or '').removeprefix(messages.ERROR_PREFIX)}: {error.detail or ''}"


def _config_key(config: Any) -> tuple[str, str]:  # noqa: ANN401 (certbot's NamespaceConfig)
    if config.key_type == "rsa":
        return ("rsa", str(config.rsa_key_size))
    return (str(config.key_type), str(config.elliptic_curve))


@contextlib.contextmanager
def _pending(value: Pending | None) -> Iterator[None]:
    token = _PENDING.set(value)
    try:
        yield
    finally:
        _PENDING.reset(token)


def _pending_for(config: Any, lineage: Any) -> Pending | None:  # noqa: ANN401 (certbot's)
    """What the renewal of `lineage` (certbot's RenewableCert) under `config` replaces."""
    try:
        with open(lineage.cert, "rb") as file:  # noqa: PTH123 (certbot's path, a str)
            cert = x509.load_pem_x509_certificate(file.read())
    except (OSError, ValueError) as error:
        logger.debug("no `replaces` for {}: {}", lineage.lineagename, error)
        return None
    saved_server = lineage.configuration["renewalparams"].get("server")
    same_ca = saved_server is None or saved_server == config.server
    cert_id = replaces_for(
        cert, dry_run=bool(config.dry_run), same_ca=same_ca, new_key=_config_key(config)
    )
    return Pending(cert_id, lineage.lineagename) if cert_id else None


def _wrap_renew_cert(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def renew_cert(config: Any, sans: Any, le_client: Any, lineage: Any) -> None:  # noqa: ANN401
        with _pending(_pending_for(config, lineage)):
            original(config, sans, le_client, lineage)

    return renew_cert


def _wrap_new_order(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def new_order(self: Any, csr_pem: bytes, profile: str | None = None) -> Any:  # noqa: ANN401
        pending = _PENDING.get()
        if pending is None or not pending.sent:
            return original(self, csr_pem, profile=profile)
        post = self._post
        self._post = functools.partial(_post_replacing, post, pending.cert_id)
        try:
            order = original(self, csr_pem, profile=profile)
        except (messages.Error, acme_errors.ConflictError) as error:
            if not refused_for_replaces(error):
                raise
            pending.sent = False
            logger.warning(
                "the CA refused the order replacing {}'s certificate {} ({}): ordering once "
                "more without `replaces`",
                pending.lineage,
                pending.cert_id,
                _described(error),
            )
        else:
            logger.info(
                "the order for {} replaces certificate {}", pending.lineage, pending.cert_id
            )
            return order
        finally:
            del self._post
        return original(self, csr_pem, profile=profile)

    return new_order


def _post_replacing(post: Callable[..., Any], cert_id: str, url: str, obj: Any, **kw: Any) -> Any:  # noqa: ANN401
    if isinstance(obj, messages.NewOrder):
        obj = ReplacingOrder(identifiers=obj.identifiers, profile=obj.profile, replaces=cert_id)
    return post(url, obj, **kw)


@functools.cache
def install() -> None:
    """Wrap certbot's renewal of a lineage and acme's new order (once per process)."""
    renewal.renew_cert = _wrap_renew_cert(renewal.renew_cert)
    acme_client.ClientV2.new_order = _wrap_new_order(acme_client.ClientV2.new_order)  # type: ignore[method-assign]
