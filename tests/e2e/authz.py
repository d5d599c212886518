"""Fresh challenges from Pebble: its valid authorizations deactivated before each sidecar run.

Pebble 2.6 reuses an account's valid authorization for about 1 order in 100 even with
PEBBLE_AUTHZREUSE=0: it makes a new one only when `rand.Intn(100) > percent`, and a draw of 0
is not above 0. An order with a reused authorization has no challenge, so the app is not stopped,
and a test of the stop sees none. Deactivating (RFC 8555, 7.5.2) what the accounts on the volume
hold makes every order one with a challenge; a test of reuse keeps them (`keep_authorizations`).
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from typing import TYPE_CHECKING, Any

import josepy as jose
from acme import client, messages

if TYPE_CHECKING:
    from pathlib import Path


def forget_authorizations(le_dir: Path, acme_url: str, ca_file: Path) -> None:
    """Deactivate the valid authorizations of every account under `le_dir` at that CA. Best
    effort: a CA that is down, or any other failure, leaves them as they are."""
    netloc = urllib.parse.urlsplit(acme_url).netloc
    for regr in sorted((le_dir / "accounts" / netloc).glob("**/regr.json")):
        with contextlib.suppress(Exception):
            _deactivate_valid(acme_url, ca_file, regr.parent)


def _deactivate_valid(acme_url: str, ca_file: Path, account_dir: Path) -> None:
    key = jose.JWK.json_loads((account_dir / "private_key.json").read_text())
    alg = jose.RS256 if isinstance(key, jose.JWKRSA) else jose.ES256
    uri = json.loads((account_dir / "regr.json").read_text())["uri"]
    net = client.ClientNetwork(key, alg=alg, timeout=5, user_agent="certbot-sidecar-e2e")
    net.verify_ssl = str(ca_file)  # type: ignore[assignment]  # requests takes a CA file too
    net.account = messages.RegistrationResource(uri=uri, body=messages.Registration())
    acme = client.ClientV2(messages.Directory.from_json(net.get(acme_url).json()), net)

    def get(url: str) -> Any:
        return acme._post_as_get(url)  # POST-as-GET of any URL

    url = get(uri).json().get("orders")
    while url:
        page = get(url)
        for order in page.json().get("orders", []):
            for authz in get(order).json().get("authorizations", []):
                if get(authz).json().get("status") == "valid":
                    acme._post(authz, messages.UpdateAuthorization(status="deactivated"))
        url = page.links.get("next", {}).get("url")
