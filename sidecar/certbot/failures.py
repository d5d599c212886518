"""What a failed certbot run means for the next attempt (pure, over certbot's output)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

# ACME problem types (RFC 8555 §6.7) that the same request will hit again: retrying soon only
# spends the CA's failed-validation budget. They need a person (DNS, firewall, config).
PERMANENT = {
    "rejectedIdentifier": "the CA will not issue for this name",
    "unauthorized": "the CA refused the answer: check that the names point at this host "
    "(HTTP-01) or that the DNS plugin updates the zone the CA reads (DNS-01)",
    "caa": "a CAA DNS record forbids this CA",
    "dns": "the names do not resolve (DNS)",
    "malformed": "the CA rejected the request as malformed",
    "externalAccountRequired": "the CA requires external account binding (EAB_KID/EAB_HMAC_KEY)",
    "accountDoesNotExist": "the saved ACME account no longer exists at the CA",
    "incorrectResponse": "the challenge was answered by something else (another server on :80?)",
    "connection": "the CA could not connect to port 80 of this host (firewall, DNS, port mapping)",
    "tls": "the CA could not connect over TLS",
}
# certbot's DNS plugins failing before the CA is asked (their PluginError lines): a key or a file
# that is wrong stays wrong until the configuration changes.
DNS_PERMANENT = {
    "didn't like the signature": (
        "dnsKeyRejected",
        "the DNS server rejected the key in DNS_CREDENTIALS (wrong secret or algorithm)",
    ),
    "didn't know the key": (
        "dnsKeyUnknown",
        "the DNS server does not know the key in DNS_CREDENTIALS (wrong key name or algorithm)",
    ),
    "is not a valid IPv4 or IPv6 address": (
        "dnsServerAddress",
        "the DNS server in DNS_CREDENTIALS must be an IP address, not a hostname",
    ),
    "File not found: ": ("dnsCredentials", "the DNS credentials file is missing"),
    "in credentials configuration file": (
        "dnsCredentials",
        "DNS_CREDENTIALS lacks a setting the plugin needs",
    ),
    "Error parsing credentials configuration": (
        "dnsCredentials",
        "DNS_CREDENTIALS is not an ini file the plugin can read",
    ),
    "Unable to determine base domain": (
        "dnsZone",
        "the DNS server is not authoritative for the names' zone",
    ),
    **dict.fromkeys(
        (f"Received response from server: {rcode}" for rcode in ("REFUSED", "NOTAUTH", "NOTZONE")),
        ("dnsRefused", "the DNS server refused the update (may the key update this zone?)"),
    ),
}
_DNS_TIMEOUT = re.compile(r"Encountered error .*(timed out|[Tt]imeout)")
# The problem type: in an error's text (`urn:ietf:params:acme:error:rateLimited :: ...`), or
# as certbot reports a failed challenge (`  Type:   unauthorized`, the prefix left off).
_PROBLEM = re.compile(
    r"urn:ietf:params:acme:error:([A-Za-z]+)|^\s*Type:\s+([A-Za-z]+)\s*$", re.MULTILINE
)
# The CA could not ask the DNS for the TXT record (the server down, or its resolver's SERVFAIL
# when no authoritative server answers): an outage, retried with backoff.
_TXT_LOOKUP = re.compile(r"TXT records for DNS challenge|looking up TXT")
_OUTAGE = re.compile(r"timed out|timeout|connection refused|SERVFAIL", re.IGNORECASE)
_RETRY_AFTER = re.compile(r"[Rr]etry after (\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)( UTC|Z)?")
_LOCKED = "Another instance of Certbot is already running"
PORT_BUSY = "portBusy"  # the kind of failure: the challenge port held after the app stopped
PORT_BUSY_TEXT = "is still in use after the app was stopped"  # in the plugin's error line
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
    if PORT_BUSY_TEXT in text:  # the line names who holds the port and what to do
        return Failure(PORT_BUSY, "")
    if "rateLimited" in text:
        match = _RETRY_AFTER.search(text)
        when = datetime.fromisoformat(match[1].replace(" ", "T") + "+00:00") if match else None
        return Failure(
            "rateLimited", "the CA's rate limit was hit", permanent=when is None, not_before=when
        )
    return (
        _permanent(text)
        or _dns_plugin(text)
        or _problem(text)
        or Failure("error", "certbot failed")
    )


def _problems(text: str) -> list[str]:
    return [urn or short for urn, short in _PROBLEM.findall(text)]


def _permanent(text: str) -> Failure | None:
    """An ACME problem retrying cannot fix; but the CA not reaching the DNS is an outage."""
    if any(_TXT_LOOKUP.search(line) and _OUTAGE.search(line) for line in text.splitlines()):
        return Failure("dnsUnreachable", "the CA could not query the DNS server (down?)")
    for problem in _problems(text):
        if problem in PERMANENT:
            return Failure(problem, PERMANENT[problem], permanent=True)
    return None


def _problem(text: str) -> Failure | None:
    problems = _problems(text)
    return Failure(problems[-1], "the CA reported a problem") if problems else None


def _dns_plugin(text: str) -> Failure | None:
    """A DNS plugin's own failure: its key or credentials (permanent), or no answer (retried)."""
    for marker, (kind, reason) in DNS_PERMANENT.items():
        if marker in text:
            return Failure(kind, reason, permanent=True)
    if _DNS_TIMEOUT.search(text):
        return Failure("dnsTimeout", "the DNS server did not answer (down or unreachable?)")
    return None


def only_parse_failures(lines: tuple[str, ...] | list[str], known: int) -> bool:
    """`certbot renew` failed only over renewal confs it cannot load, no more than the `known`
    ones the adoption already reports (each renewal of the others went through)."""
    counts = _COUNTS.findall("\n".join(lines))
    if not counts:
        return False
    renew, parse = (int(n) for n in counts[-1])
    return renew == 0 and 0 < parse <= known
