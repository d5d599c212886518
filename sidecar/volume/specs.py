"""The certificates DOMAINS asks for, and which lineages the sidecar renews and when."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
WILDCARD = "*."


@dataclass(frozen=True, slots=True)
class CertSpec:
    """One certificate: its lineage name (the first domain, without `*.`) and all its names."""

    name: str
    domains: tuple[str, ...]

    @property
    def wildcards(self) -> tuple[str, ...]:
        return tuple(d for d in self.domains if d.startswith(WILDCARD))

    @property
    def ip_addresses(self) -> tuple[str, ...]:
        """The IP addresses among its names (certbot's `--ip-address`, not `-d`)."""
        return tuple(d for d in self.domains if is_ip(d))


def is_ip(name: str) -> bool:
    """An IPv4 or IPv6 address (as DOMAINS gives it or certbot names it), not a domain name."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def check_name(name: str) -> str:
    """An IP address in the form certbot writes it (`2001:DB8:0::7` -> `2001:db8::7`), or a
    domain name as `check_domain` returns it."""
    try:
        return str(ipaddress.ip_address(name.strip()))
    except ValueError:
        return check_domain(name)


def check_domain(name: str) -> str:
    """Return the lower-cased name, or raise ValueError saying why it is not usable. A wildcard
    (`*.example.com`) passes here; only CHALLENGE=dns may ask for one (Settings checks)."""
    domain = name.strip().lower().rstrip(".")
    if not domain.isascii():
        raise ValueError(_not_ascii(name.strip()))
    labels = domain.removeprefix(WILDCARD).split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):  # noqa: PLR2004
        raise ValueError(f"{name!r} is not a valid domain name")
    if labels[-1].isdigit():
        raise ValueError(f"{name!r} is neither a domain name nor an IP address")
    return domain


def _not_ascii(name: str) -> str:
    """The hint for an internationalized name: certbot and the lineage's directory need its
    ASCII (punycode) form. It is not converted here: IDNA 2003 and 2008 map a few characters
    differently (ß, ς), and which form the DNS holds is the operator's to say."""
    plain = f"{name!r} is not an ASCII domain name; give its punycode (xn--) form as DNS holds it"
    try:
        labels = [
            label.encode("idna").decode("ascii") if not label.isascii() else label
            for label in name.lower().split(".")
        ]
    except UnicodeError:
        return plain
    if any(
        not old.isascii() and not new.startswith("xn--")
        for old, new in zip(name.lower().split("."), labels, strict=True)
    ):
        return plain  # IDNA 2003 maps it to other letters (straße -> strasse): no safe guess
    return f"{name!r} is not ASCII: give its punycode form, {'.'.join(labels)!r}"


def parse_domains(raw: str) -> tuple[CertSpec, ...]:
    """`a.com,www.a.com;b.com` -> two certificates, named after their first domain (certbot's
    own name for a wildcard first: `*.a.com,a.com` is lineage `a.com`). A certificate of IP
    addresses only is named after its first address, as certbot names it."""
    specs: list[CertSpec] = []
    seen: set[str] = set()
    for group in raw.split(";"):
        names = tuple(dict.fromkeys(check_name(n) for n in group.split(",") if n.strip()))
        if not names:
            continue
        if dup := seen.intersection(names):
            raise ValueError(f"{min(dup)!r} is listed in two certificates")
        seen.update(names)
        first = next((n for n in names if not is_ip(n)), names[0])  # certbot's order: -d first
        spec = CertSpec(first.removeprefix(WILDCARD), names)
        _check_wildcards(spec)
        if twin := next((s for s in specs if s.name == spec.name), None):
            raise ValueError(
                f"{twin.domains[0]!r} and {names[0]!r} would both be lineage {spec.name}; "
                f"list them in one certificate ({twin.domains[0]},{names[0]})"
            )
        specs.append(spec)
    if not specs:
        raise ValueError("no domain names given (example: DOMAINS=example.com,www.example.com)")
    return tuple(specs)


def _check_wildcards(spec: CertSpec) -> None:
    """The CA refuses a certificate naming both `*.a.com` and a name it covers (`www.a.com`)."""
    for wildcard in spec.wildcards:
        base = wildcard.removeprefix(WILDCARD)
        if covered := [d for d in spec.domains if d != wildcard and d.split(".", 1)[-1] == base]:
            raise ValueError(
                f"{covered[0]!r} is covered by {wildcard!r}; the CA rejects both in one "
                "certificate, keep one"
            )


# Names per certificate at Let's Encrypt: 100, 25 with the short-lived profiles.
MAX_NAMES = 100
SHORT_PROFILES = {"tlsserver": 25, "shortlived": 25}


def names_allowed(profile: str | None) -> int:
    return SHORT_PROFILES.get((profile or "").strip().lower(), MAX_NAMES)


@dataclass(frozen=True, slots=True)
class Domains:
    """DOMAINS' certificates; IGNORE_LINEAGES (`*`: every lineage not in DOMAINS); and
    RENEW_BEFORE_EXPIRY (seconds; None: certbot's lifetime rule)."""

    specs: tuple[CertSpec, ...]
    ignore: tuple[str, ...] = ()
    renew_before_expiry: float | None = None

    @property
    def names(self) -> frozenset[str]:
        """The lineage names DOMAINS asks for."""
        return frozenset(s.name for s in self.specs)

    @property
    def renew_before(self) -> timedelta | None:
        """RENEW_BEFORE_EXPIRY as a timedelta (None: certbot's lifetime rule)."""
        seconds = self.renew_before_expiry
        return None if seconds is None else timedelta(seconds=seconds)

    def renewed_here(self, lineage: str) -> bool:
        """A lineage the sidecar renews: in DOMAINS, or not ignored."""
        return lineage in self.names or not (lineage in self.ignore or "*" in self.ignore)
