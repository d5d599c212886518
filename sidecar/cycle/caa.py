"""CAA as the CA evaluates it (RFC 8659, with RFC 8657's `accounturi` and `validationmethods`),
pure: over the records a lookup returns, never the network.

`relevant_set` climbs the tree from the name to the first name with a CAA record set (the
lookup follows CNAMEs, as a resolver does); `evaluate` says whether that set lets the CA issue
for the name (wildcard or not), for this account and validation method, and names the record
that decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

CRITICAL = 128  # the issuer critical flag (RFC 8659 section 4.1)
KNOWN_TAGS = frozenset({"issue", "issuewild", "iodef", "issuemail", "contactemail"})


@dataclass(frozen=True, slots=True)
class Caa:
    """One CAA record: its flags, tag and value, as published at `owner`."""

    flags: int
    tag: str
    value: str
    owner: str = ""

    def __str__(self) -> str:
        at = f"{self.owner} " if self.owner else ""
        return f'{at}CAA {self.flags} {self.tag} "{self.value}"'


@dataclass(frozen=True, slots=True)
class Issuer:
    """An `issue` or `issuewild` value: the CA's domain (empty for `;`: no CA) and parameters."""

    domain: str
    parameters: tuple[tuple[str, str], ...] = ()

    def parameter(self, key: str) -> str | None:
        return next((v for k, v in self.parameters if k == key), None)


@dataclass(frozen=True, slots=True)
class Request:
    """What the CA is asked for: the name, the CA's identities (its `caaIdentities`), the
    account's URI (None when not known yet) and the validation method (`http-01`, `dns-01`)."""

    name: str
    identities: frozenset[str]
    account_uri: str | None = None
    method: str = "http-01"

    @property
    def wildcard(self) -> bool:
        return self.name.startswith("*.")


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether the CA may issue, and the record(s) that decide it (empty: no CAA at all)."""

    allowed: bool
    reason: str


def relevant_set(name: str, lookup: Callable[[str], Sequence[Caa]]) -> tuple[Caa, ...]:
    """RFC 8659 section 3: the CAA record set of the name, else of its parent, up to the top
    level (a wildcard's `*.` is left out). `lookup` follows CNAMEs, as a resolver does."""
    labels = name.removeprefix("*.").rstrip(".").lower().split(".")
    for start in range(len(labels)):
        found = tuple(lookup(".".join(labels[start:])))
        if found:
            return found
    return ()


def parse_issuer(value: str) -> Issuer | None:
    """`ca.example; accounturi=https://...; validationmethods=http-01` (RFC 8659 section 4.2);
    None when the value is malformed (it then allows no CA)."""
    domain, _, rest = value.strip().partition(";")
    domain = domain.strip().lower()
    if domain and not all(label.isascii() and label for label in domain.split(".")):
        return None
    parameters: list[tuple[str, str]] = []
    for part in rest.split(";"):
        if not part.strip():
            continue
        key, equals, val = part.strip().partition("=")
        if not equals or not key.strip().isalnum():
            return None
        parameters.append((key.strip().lower(), val.strip()))
    return Issuer(domain, tuple(parameters))


def evaluate(records: Collection[Caa], request: Request) -> Decision:
    """RFC 8659 section 4: a critical tag the CA does not know forbids issuance; `issuewild`
    governs wildcards when the set has one (else `issue` does); without either, any CA may
    issue; an issuer `;` (no domain) allows none; a matching issuer with `accounturi` allows
    only that account, with `validationmethods` only those methods."""
    unknown = [r for r in records if r.flags & CRITICAL and r.tag.lower() not in KNOWN_TAGS]
    if unknown:
        reason = f"{unknown[0]} is critical and not understood by the CA"
        return Decision(allowed=False, reason=reason)
    tags = {r.tag.lower() for r in records}
    tag = "issuewild" if request.wildcard and "issuewild" in tags else "issue"
    governing = [r for r in records if r.tag.lower() == tag]
    if not governing:
        reason = f"no {tag} record" if records else "no CAA record restricts it"
        return Decision(allowed=True, reason=reason)
    refusals = []
    for record in governing:
        why = _refusal(record, request)
        if why is None:
            return Decision(allowed=True, reason=f"{record} allows it")
        refusals.append(why)
    return Decision(allowed=False, reason="; ".join(refusals))


def _refusal(record: Caa, request: Request) -> str | None:
    """Why this record does not allow the request (None: it does)."""
    issuer = parse_issuer(record.value)
    if issuer is None:
        return f"{record} is malformed"
    if not issuer.domain:
        return f"{record} forbids every CA"
    if issuer.domain not in {i.lower() for i in request.identities}:
        return f"{record} allows only {issuer.domain}"
    account = issuer.parameter("accounturi")
    if account is not None and account != request.account_uri:
        return f"{record} allows only the account {account}"
    methods = issuer.parameter("validationmethods")
    if methods is not None and request.method not in {m.strip() for m in methods.split(",")}:
        return f"{record} allows only {methods}, not {request.method}"
    return None
