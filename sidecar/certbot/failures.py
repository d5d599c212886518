"""What a failed certbot run means for the next attempt (pure, over certbot's output)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

# ACME problem types (RFC 8555 §6.7) that the same request will hit again: retrying soon only
# spends the CA's failed-validation budget. They need a person (DNS, firewall, config).
PERMANENT = {
    "rejectedIdentifier": "the CA will not issue for this name",
    "unauthorized": "the CA refused: check that the names point at this host",
    "caa": "a CAA DNS record forbids this CA",
    "dns": "the names do not resolve (DNS)",
    "malformed": "the CA rejected the request as malformed",
    "externalAccountRequired": "the CA requires external account binding (EAB_KID/EAB_HMAC_KEY)",
    "accountDoesNotExist": "the saved ACME account no longer exists at the CA",
    "incorrectResponse": "the challenge was answered by something else (another server on :80?)",
    "connection": "the CA could not connect to port 80 of this host (firewall, DNS, port mapping)",
    "tls": "the CA could not connect over TLS",
}
_PROBLEM = re.compile(r"urn:ietf:params:acme:error:([A-Za-z]+)")
_RETRY_AFTER = re.compile(r"[Rr]etry after (\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)( UTC|Z)?")
_LOCKED = "Another instance of Certbot is already running"
_COUNTS = re.compile(r"(\d+) renew failure\(s\), (\d+) parse failure\(s\)")


@dataclass(frozen=True, slots=True)
class Failure:
    """`permanent`: retrying on the short backoff cannot help; `not_before`: a CA-given time."""

    kind: str
    reason: str
    permanent: bool = False
    not_before: datetime | None = None


def classify(lines: tuple[str, ...] | list[str]) -> Failure:
    """Read certbot's output for the ACME problem or the local condition behind a failure."""
    text = "\n".join(lines)
    if _LOCKED in text:
        return Failure("locked", "another certbot (run by hand?) holds this config dir")
    if "rateLimited" in text:
        match = _RETRY_AFTER.search(text)
        when = datetime.fromisoformat(match[1].replace(" ", "T") + "+00:00") if match else None
        return Failure(
            "rateLimited", "the CA's rate limit was hit", permanent=when is None, not_before=when
        )
    for problem in _PROBLEM.findall(text):
        if problem in PERMANENT:
            return Failure(problem, PERMANENT[problem], permanent=True)
    if problems := _PROBLEM.findall(text):
        return Failure(problems[-1], "the CA reported a problem")
    return Failure("error", "certbot failed")


def only_parse_failures(lines: tuple[str, ...] | list[str], known: int) -> bool:
    """`certbot renew` failed only over renewal confs it cannot load, no more than the `known`
    ones the adoption already reports (each renewal of the others went through)."""
    counts = _COUNTS.findall("\n".join(lines))
    if not counts:
        return False
    renew, parse = (int(n) for n in counts[-1])
    return renew == 0 and 0 < parse <= known
