"""The CA and the account an adopted lineage renews with (pure; the tree's accounts come in
`Here`)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlparse

from sidecar.volume.ca import choose_ca
from sidecar.volume.confs import PARAMS, Edit
from sidecar.volume.renewal_keys import saved_server

if TYPE_CHECKING:
    from sidecar.volume.found import Found, Here

STAGING_MARK = "staging"  # certbot's util.is_staging: any server URL containing "staging"


def is_staging(server: str | None) -> bool:
    return bool(server) and STAGING_MARK in str(server)


def server_label(server: object) -> str:
    """`https://acme-v02.api.letsencrypt.org/directory` -> `acme-v02.api.letsencrypt.org`."""
    if not server:
        return "none (certbot's default: Let's Encrypt)"
    return urlparse(str(server)).netloc or str(server)


def sidecars_server(here: Here, lineage: str) -> str:
    """The CA the sidecar renews `lineage` at (`ca.choose_ca`: ACME_SERVER)."""
    return choose_ca(here.ca, lineage).directory


def server_for(found: Found, here: Here, *, in_domains: bool) -> tuple[str, list[Edit], list[str]]:
    """The CA to renew at: ACME_SERVER for DOMAINS (never production to staging), else the saved
    one; no saved server is certbot's default, Let's Encrypt production."""
    saved = saved_server(found.params)
    ours = sidecars_server(here, found.name)
    notes: list[str] = []
    if not in_domains:
        target = saved if saved.startswith(("https://", "http://")) else ours
    elif saved != ours and is_staging(ours) and not is_staging(saved):
        target = saved
        notes.append(
            f"kept on {server_label(saved)}: ACME_SERVER is a staging CA and certbot never "
            "replaces a trusted certificate with a test one"
        )
    else:
        target = ours
        if is_staging(saved) and not is_staging(target):
            notes.append(
                "holds a test certificate from a staging CA; it is replaced when due "
                "(`sidecar renew --force` replaces it now)"
            )
    if target == saved:
        return target, [], notes
    why = "listed in DOMAINS: ACME_SERVER" if in_domains else "no usable server saved: ACME_SERVER"
    return target, [Edit(PARAMS, "server", target, why)], notes


def account_for(found: Found, here: Here, server: str) -> tuple[list[Edit], str | None]:
    """Keep an account certbot loads; name one where certbot would find several (it would ask);
    returns the edits and the account to pin when there are several."""
    accounts = here.accounts(server)
    account = str(found.params.get("account") or "") or None
    several = len(accounts.listed) > 1
    label = server_label(server)
    if account in accounts.loadable:
        return [], account if several else None
    if account is None and not several:
        return [], None
    if accounts.loadable:
        chosen = (accounts.listed or accounts.loadable)[0]
        why = (
            f"account {account} does not exist for {label} in this tree"
            if account
            else f"{len(accounts.listed)} accounts exist for {label}; certbot would have to ask"
        )
        return [Edit(PARAMS, "account", chosen, why)], chosen if several else None
    why = f"no account for {label} in this tree; certbot registers one at the next renewal"
    return [Edit(PARAMS, "account", None, why)], None
