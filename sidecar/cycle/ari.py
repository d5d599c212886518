"""ACME Renewal Information (RFC 9773): the CA's renewal window of each certificate, asked at
every cycle, so the sidecar renews on the CA's clock (and at once when the CA wants a certificate
replaced: a revocation, an incident).

The sidecar asks the CA itself rather than reading what certbot saves: certbot keeps only the
Retry-After (`ari_retry_after`), and before that time it does not ask at all, so a window moved
into the past stays unseen for hours. A failed answer never fails a cycle: the lineage is then
renewed by certbot's own rule (2/3 of the lifetime) as before.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests
from loguru import logger

from sidecar.volume.journal import Ari

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Mapping

    from sidecar.volume.ca import AcmeCA
    from sidecar.volume.certs import CertInfo

    # what asks the CA: `fetch`, or a test's stand-in
    Ask = Callable[
        [AcmeCA, Mapping[str, CertInfo | None], Mapping[str, Ari], datetime, random.Random],
        dict[str, Ari],
    ]

TIMEOUT = 15.0
DEFAULT_RETRY = timedelta(hours=6)  # RFC 9773 §4.3: without Retry-After, ask again in 6 hours


class AriError(Exception):
    """An answer that is not renewal information (logged; never a cycle's failure)."""


def fetch(
    ca: AcmeCA,
    certs: Mapping[str, CertInfo | None],
    known: Mapping[str, Ari],
    now: datetime,
    rng: random.Random,
) -> dict[str, Ari]:
    """The CA's answer for each certificate that has an ARI identifier and has not expired
    (RFC 9773 §4.3: never asked after expiry); a certificate whose answer failed is left out."""
    asked = {n: c for n, c in certs.items() if c is not None and c.ari_id and c.not_after > now}
    if not asked:
        return {}
    verify: str | bool = str(ca.ca_bundle) if ca.ca_bundle else True
    try:
        base = _get(ca.directory, verify).json().get("renewalInfo")
    except (requests.RequestException, ValueError, AttributeError) as error:
        logger.warning("ARI: cannot read the ACME directory {}: {}", ca.directory, error)
        return {}
    if not isinstance(base, str):
        logger.debug("ARI: {} offers no renewalInfo", ca.directory)
        return {}
    found = {}
    for name, cert in sorted(asked.items()):
        try:
            response = _get(f"{base.rstrip('/')}/{cert.ari_id}", verify)
            retry = retry_time(response.headers.get("Retry-After"), now)
            found[name] = answer(response.json(), cert, retry, known.get(name), now=now, rng=rng)
        except (requests.RequestException, ValueError, AttributeError, AriError) as error:
            logger.warning("ARI: no renewal information for {}: {}", name, error, certificate=name)
    return found


def _get(url: str, verify: str | bool) -> requests.Response:
    response = requests.get(url, timeout=TIMEOUT, verify=verify)
    response.raise_for_status()
    return response


def retry_time(header: str | None, now: datetime) -> datetime:
    """Pure: the time a Retry-After header names (seconds, or an HTTP date); 6 hours without one
    or with one that cannot be read."""
    if header:
        if header.strip().isdigit():
            return now + timedelta(seconds=int(header.strip()))
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return when if when.tzinfo else when.replace(tzinfo=UTC)
    return now + DEFAULT_RETRY


def answer(
    body: Any,  # noqa: ANN401 (JSON)
    cert: CertInfo,
    retry_after: datetime,
    previous: Ari | None,
    *,
    now: datetime,
    rng: random.Random,
) -> Ari:
    """Pure: a renewalInfo body as the journal keeps it. The point to renew at is drawn
    uniformly inside the window (RFC 9773 §4.2), once: kept while the CA's window stays. A
    window that opened before the certificate was issued and is not over yet tells nothing of
    this certificate's schedule (Pebble gives every certificate a day either side of 2/3 of its
    lifetime): the sidecar then renews by certbot's rule, and by the window's end at the latest."""
    try:
        window = body["suggestedWindow"]
        start, end = _stamp(window["start"]), _stamp(window["end"])
    except (KeyError, TypeError, ValueError) as error:
        raise AriError(f"no suggestedWindow in the answer ({error!r})") from None
    if end < start:
        raise AriError(f"the window ends ({end}) before it starts ({start})")
    explanation = body.get("explanationURL")
    serial = cert.serial_hex
    same = previous is not None and (previous.serial, previous.start, previous.end) == (
        serial,
        start,
        end,
    )
    if same and previous:
        renew_at = previous.renew_at
    elif start < cert.not_before < now < end:  # a window opened before the certificate was
        renew_at = end  # issued (a test CA's fixed margin on a short-lived one): its end at most
    else:
        renew_at = start + rng.random() * (end - start)
    return Ari(
        serial,
        start,
        end,
        renew_at,
        now,
        retry_after,
        explanation if isinstance(explanation, str) else "",
    )


def _stamp(raw: str) -> datetime:
    """An RFC 3339 time (`Z`, any fraction of a second), in UTC."""
    when = datetime.fromisoformat(raw)
    if when.tzinfo is None:
        raise ValueError(f"{raw!r} has no time zone")
    return when.astimezone(UTC)


def due(
    answers: Mapping[str, Ari], certs: Mapping[str, CertInfo | None], now: datetime
) -> tuple[str, ...]:
    """Pure: the certificates the CA's answer makes due now (the point drawn in the window has
    come, or the window is over), for the current certificate only."""
    return tuple(
        name
        for name, ari in sorted(answers.items())
        if (cert := certs.get(name)) is not None
        and ari.serial == cert.serial_hex
        and ari.renew_at <= now
    )


def current(answers: Mapping[str, Ari], certs: Mapping[str, CertInfo | None]) -> dict[str, Ari]:
    """Pure: the answers that are still about the lineage's current certificate."""
    return {
        name: ari
        for name, ari in answers.items()
        if (cert := certs.get(name)) is not None and ari.serial == cert.serial_hex
    }


def ask_safely(
    ask: Ask,
    ca: AcmeCA,
    certs: Mapping[str, CertInfo | None],
    known: Mapping[str, Ari],
    rng: random.Random,
) -> dict[str, Ari]:
    """`ask` (`fetch`), never raising: ARI never fails a cycle (certbot's own rule stays)."""
    try:
        return ask(ca, certs, known, datetime.now(UTC), rng)
    except Exception as error:  # noqa: BLE001 (a bug here is logged; the renewal goes on)
        logger.opt(exception=error).warning("ARI: asking the CA failed: {}", error)
        return {}


def wanted_now(
    answers: Mapping[str, Ari], certs: Mapping[str, CertInfo | None], now: datetime
) -> tuple[str, ...]:
    """`due`, each said in the log: a warning when the window is over (the CA wants the
    certificate replaced now), a line otherwise (its time in the window has come)."""
    names = due(answers, certs, now)
    for name in names:
        why = answers[name]
        over = why.ended(now)
        logger.log(
            "WARNING" if over else "INFO",
            "{}: the CA asks for a new certificate {} (ARI window {} to {}){}",
            name,
            "now: its window is over" if over else "from now on",
            why.start.isoformat(timespec="minutes"),
            why.end.isoformat(timespec="minutes"),
            f"; see {why.explanation}" if why.explanation else "",
            certificate=name,
        )
    return names
