"""A lineage whose renewal conf is gone: the conf rebuilt in certbot's own format from what the
tree still holds.

certbot renews only what `renewal/*.conf` names. Copying `live/` and `archive/` to a new host
without `renewal/` (a common migration), or deleting a conf, leaves a certificate nothing renews:
the first sign would be the danger-zone alert. For a `DOMAINS` lineage whose `live/NAME/` or
`archive/NAME/` is still there, the sidecar writes the conf certbot's `certonly` would have
saved: the paths in this tree, the key type from the certificate's key, and the sidecar's own
renewal values (tree.py gives them). Where the tree cannot describe the lineage (no readable
certificate, no private key) the conf is not written, and the cycle says what is missing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sidecar.volume import confs, layout

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


@dataclass(frozen=True, slots=True)
class Rebuild:
    """`conf`: the rebuilt conf (None: it cannot be); `says`: one line on what it holds, or
    what is missing."""

    name: str
    conf: bytes | None
    says: str

    @property
    def finding(self) -> str:
        head = f"renewal/{self.name}.conf is missing (certbot renews no lineage without one)"
        if self.conf is None:
            return (
                f"{head} and cannot be rebuilt: {self.says}; restore it from a backup, or move "
                f"live/{self.name}/ and archive/{self.name}/ out of the tree for a new certificate"
            )
        return f"{head}: rebuilt in certbot's format: {self.says}"


def leftover(folder: Path) -> bool:
    """certbot's own test before it makes a lineage (`new_lineage`): the path is there and is not
    an empty directory ("live directory exists for NAME")."""
    if folder.is_symlink() or folder.is_file():
        return True
    with contextlib.suppress(OSError):
        return folder.is_dir() and any(folder.iterdir())
    return False


def _first_file(candidates: list[Path]) -> Path | None:
    return next((p for p in candidates if p.is_file()), None)


def _newest(archive: Path, kind: str) -> list[Path]:
    return [archive / f"{kind}{n}.pem" for n in layout.versions(archive, kind)]


def key_params(cert: x509.Certificate) -> dict[str, str] | None:
    """certbot's `key_type` with `elliptic_curve` or `rsa_key_size`, from the certificate's key."""
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"key_type": "ecdsa", "elliptic_curve": key.curve.name}
    if isinstance(key, rsa.RSAPublicKey):
        return {"key_type": "rsa", "rsa_key_size": str(key.key_size)}
    return None


def _described(config_dir: Path, name: str) -> tuple[Path, x509.Certificate] | str:
    """The certificate the lineage's files hold (live/, else the archive's newest), or what is
    missing; a private key must be there too."""
    live, archive = config_dir / "live" / name, config_dir / "archive" / name
    found = None
    for path in [live / "cert.pem", *_newest(archive, "cert")]:
        with contextlib.suppress(OSError, ValueError):
            found = (path, x509.load_pem_x509_certificate(path.read_bytes()))
            break
    if found is None:
        where = f"live/{name}/cert.pem nor archive/{name}/certN.pem"
        return f"neither {where} is a readable certificate"
    if _first_file([live / "privkey.pem", *_newest(archive, "privkey")]) is None:
        return f"no private key: neither live/{name}/privkey.pem nor archive/{name}/privkeyN.pem"
    return found


def plan(config_dir: Path, name: str, params: Mapping[str, str]) -> Rebuild | None:
    """The conf of lineage `name` (`params`: the sidecar's [renewalparams], certbot's order;
    the key's values go before `post_hook`), None when there is nothing to rebuild: a conf is
    there, or no file of the lineage is (a first issuance makes it)."""
    live, archive = config_dir / "live" / name, config_dir / "archive" / name
    if (config_dir / "renewal" / f"{name}.conf").exists():
        return None
    if not (leftover(live) or leftover(archive)):
        return None
    found = _described(config_dir, name)
    if isinstance(found, str):
        return Rebuild(name, None, found)
    path, cert = found
    key = key_params(cert)
    if key is None:
        return Rebuild(name, None, f"{layout.rel(path, config_dir)} has a key certbot cannot use")
    top = {
        "version": metadata.version("certbot"),
        "archive_dir": str(archive),
        **{kind: str(live / f"{kind}.pem") for kind in layout.KINDS},
    }
    at = list(params).index("post_hook") if "post_hook" in params else len(params)
    ordered = [*list(params.items())[:at], *key.items(), *list(params.items())[at:]]
    renewal = dict(ordered)
    says = (
        f"from {layout.rel(path, config_dir)}, key {' '.join(key.values())}, server "
        f"{renewal.get('server')}, account {renewal.get('account', 'none (certbot registers one)')}"
        f", authenticator {renewal.get('authenticator')}"
    )
    return Rebuild(name, confs.render(top, renewal), says)
