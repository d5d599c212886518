"""The ACME CA the sidecar uses (ACME_SERVER, ACME_CA_BUNDLE, EAB_*, ACME_PROFILE), and the one
place that decides which CA a certificate is issued and renewed at (`choose_ca`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    from pathlib import Path

    from pydantic import SecretStr

LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
SERVER_ALIASES = {"letsencrypt": LETSENCRYPT, "letsencrypt-staging": LETSENCRYPT_STAGING}


def is_letsencrypt(directory: str) -> bool:
    """A directory of Let's Encrypt (production or staging): its rules, e.g. IP addresses in
    the `shortlived` profile only."""
    return (urlparse(directory).hostname or "").endswith(".api.letsencrypt.org")


@dataclass(frozen=True, slots=True)
class AcmeCA:
    """One CA: its directory URL, the CA bundle that makes its TLS trusted (a private CA), the
    external account binding it asks for, and the profile certificates are requested with."""

    directory: str
    ca_bundle: Path | None = None
    eab_kid: str | None = None
    eab_hmac_key: SecretStr | None = field(default=None, repr=False)
    profile: str | None = None

    @property
    def host(self) -> str:
        """`https://acme-v02.api.letsencrypt.org/directory` -> `acme-v02.api.letsencrypt.org`."""
        return urlparse(self.directory).netloc or self.directory

    def env(self) -> dict[str, str]:
        """Environment for certbot: trust ACME_CA_BUNDLE when one is given."""
        return {"REQUESTS_CA_BUNDLE": str(self.ca_bundle)} if self.ca_bundle else {}

    def eab_options(self) -> dict[str, str]:
        """External account binding, for certbot's config file (never its command line: every
        user can read /proc/PID/cmdline, and certbot logs its arguments)."""
        if not (self.eab_kid and self.eab_hmac_key):
            return {}
        return {"eab-kid": self.eab_kid, "eab-hmac-key": self.eab_hmac_key.get_secret_value()}


def choose_ca(configured: AcmeCA, lineage: str) -> AcmeCA:
    """The CA DOMAINS certificate `lineage` is issued and renewed at: ACME_SERVER for every one.
    The one decision point: a fallback CA, or one per lineage, is a change here."""
    del lineage
    return configured
