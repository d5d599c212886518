"""The ACME accounts of the tree as certbot finds them (`account.AccountFileStorage`).

certbot keeps an account under `accounts/<host[:port]/path of the server>/<id>/` and loads it
only when `regr.json`, `private_key.json` and `meta.json` are there. For Let's Encrypt's v02
servers it also loads accounts kept under the old ACMEv1 path (`acme-v01.api.letsencrypt.org`):
an account named by id is found there when the v02 directory lacks it, and when the v02 directory
holds no account at all, the ACMEv1 ones are what certbot lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    from pathlib import Path

FILES = ("regr.json", "private_key.json", "meta.json")
# certbot's constants.LE_REUSE_SERVERS: a server's accounts directory and the one it falls back to
REUSE = {
    "acme-v02.api.letsencrypt.org/directory": "acme-v01.api.letsencrypt.org/directory",
    "acme-staging-v02.api.letsencrypt.org/directory": "acme-staging.api.letsencrypt.org/directory",
}


@dataclass(frozen=True, slots=True)
class Accounts:
    """The accounts certbot can use for one server: its own, and those it inherits from the
    ACMEv1 directory."""

    own: tuple[str, ...] = ()
    inherited: tuple[str, ...] = ()

    @property
    def loadable(self) -> tuple[str, ...]:
        """Ids an `account = ID` in a renewal conf (or `--account ID`) loads."""
        return tuple(dict.fromkeys((*self.own, *self.inherited)))

    @property
    def listed(self) -> tuple[str, ...]:
        """What certbot offers when no account is named: more than one, and it has to ask."""
        return self.own or self.inherited


def server_path(server: str) -> str:
    """certbot's `server_path`: `https://host:port/dir` -> `host:port/dir`."""
    parsed = urlparse(server)
    return (parsed.netloc + parsed.path).strip("/")


def _ids(config_dir: Path, path: str) -> tuple[str, ...]:
    folder = config_dir / "accounts" / path
    if not folder.is_dir():
        return ()
    return tuple(sorted(p.name for p in folder.iterdir() if all((p / f).is_file() for f in FILES)))


def for_server(config_dir: Path, server: str) -> Accounts:
    """The accounts certbot finds in this tree for `server`."""
    path = server_path(server)
    fallback = REUSE.get(path)
    return Accounts(_ids(config_dir, path), _ids(config_dir, fallback) if fallback else ())
