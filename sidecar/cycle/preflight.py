"""Everything that can be checked before anything is touched: one clear error per problem."""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from loguru import logger

from sidecar.errors import ConfigError, SidecarError
from sidecar.volume import lineages
from sidecar.volume.confs import load_conf

if TYPE_CHECKING:
    from pathlib import Path

    from sidecar.certbot.challenges import Challenge
    from sidecar.targets.base import TargetControl
    from sidecar.volume.ca import AcmeCA
    from sidecar.volume.paths import Paths
    from sidecar.volume.specs import Domains

ACME_TIMEOUT = 15.0


def check_writable(paths: Paths, challenge: Challenge) -> None:
    """The volume takes the sidecar's files (and, with CHALLENGE=webroot, the challenges')."""
    try:
        paths.state_dir.mkdir(parents=True, exist_ok=True)
        probe = paths.state_dir / ".write-test"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
        if challenge.webroot is not None:
            challenge.webroot.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"CONFIG_DIR {paths.config_dir} is not writable ({error.strerror}); "
            "mount the letsencrypt volume read-write into the sidecar"
        ) from None


def check_lineages(config_dir: Path, domains: Domains) -> None:
    """The configured lineages' renewal confs, certificates and keys load (ConfigError if not);
    a broken lineage outside DOMAINS is reported and left to the adoption step."""
    wanted = domains.names
    for name in sorted({*lineages.names(config_dir), *wanted}):
        try:
            _check_lineage(config_dir, name)
        except ConfigError as error:
            if name in wanted:
                raise
            logger.warning("{} (lineage {} is not in DOMAINS; it is skipped)", error, name)


def _check_lineage(config_dir: Path, name: str) -> None:
    conf = config_dir / "renewal" / f"{name}.conf"
    if conf.exists():
        load_conf(conf)
    lineages.read_strict(config_dir, name)
    key = lineages.live_dir(config_dir, name) / "privkey.pem"
    if key.exists():
        try:
            load_pem_private_key(key.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as error:
            raise ConfigError(f"{key} is not a readable private key: {error}") from None


def check_targets(control: TargetControl) -> None:
    targets = control.targets()
    logger.info("app targets: {}", ", ".join(t.title for t in targets) or "none found")


def check_acme(ca: AcmeCA) -> None:
    """The ACME directory answers (before the app is stopped for a CA that is down)."""
    verify: str | bool = str(ca.ca_bundle) if ca.ca_bundle else True
    directory = ca.directory
    try:
        response = requests.get(directory, timeout=ACME_TIMEOUT, verify=verify)
        response.raise_for_status()
        if "newOrder" not in response.json():
            raise SidecarError(f"{directory} is not an ACME directory (no newOrder)")
    except requests.exceptions.SSLError as error:
        if "CERTIFICATE_VERIFY_FAILED" not in str(error):
            raise SidecarError(f"ACME server {directory} unreachable: TLS failed") from None
        raise SidecarError(
            f"ACME server {directory}: TLS not trusted ({_first(error)}); "
            "set ACME_CA_BUNDLE for a private CA"
        ) from None
    except (requests.exceptions.RequestException, ValueError) as error:
        raise SidecarError(f"ACME server {directory} unreachable: {_first(error)}") from None


def _first(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
