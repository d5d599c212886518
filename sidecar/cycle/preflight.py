"""Everything that can be checked before anything is touched: one clear error per problem."""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from loguru import logger

from sidecar.cycle.plan import configured
from sidecar.errors import ConfigError, SidecarError
from sidecar.volume import lineages
from sidecar.volume.confs import load_conf

if TYPE_CHECKING:
    from sidecar.settings import Settings
    from sidecar.targets.base import TargetControl

ACME_TIMEOUT = 15.0


def check_writable(config: Settings) -> None:
    try:
        config.state_dir.mkdir(parents=True, exist_ok=True)
        probe = config.state_dir / ".write-test"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
        if config.challenge == "webroot":
            config.webroot.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"CONFIG_DIR {config.config_dir} is not writable ({error.strerror}); "
            "mount the letsencrypt volume read-write into the sidecar"
        ) from None


def check_lineages(config: Settings) -> None:
    """The configured lineages' renewal confs, certificates and keys load (ConfigError if not);
    a broken lineage outside DOMAINS is reported and left to the adoption step."""
    wanted = configured(config.domains)
    for name in sorted({*lineages.names(config.config_dir), *wanted}):
        try:
            _check_lineage(config, name)
        except ConfigError as error:
            if name in wanted:
                raise
            logger.warning("{} (lineage {} is not in DOMAINS; it is skipped)", error, name)


def _check_lineage(config: Settings, name: str) -> None:
    conf = config.config_dir / "renewal" / f"{name}.conf"
    if conf.exists():
        load_conf(conf)
    lineages.read_strict(config.config_dir, name)
    key = lineages.live_dir(config.config_dir, name) / "privkey.pem"
    if key.exists():
        try:
            load_pem_private_key(key.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as error:
            raise ConfigError(f"{key} is not a readable private key: {error}") from None


def check_targets(control: TargetControl) -> None:
    targets = control.targets()
    logger.info("app targets: {}", ", ".join(t.title for t in targets) or "none found")


def check_acme(config: Settings) -> None:
    """The ACME directory answers (before the app is stopped for a CA that is down)."""
    verify: str | bool = str(config.acme_ca_bundle) if config.acme_ca_bundle else True
    try:
        response = requests.get(config.acme_server, timeout=ACME_TIMEOUT, verify=verify)
        response.raise_for_status()
        if "newOrder" not in response.json():
            raise SidecarError(f"{config.acme_server} is not an ACME directory (no newOrder)")
    except requests.exceptions.SSLError as error:
        if "CERTIFICATE_VERIFY_FAILED" not in str(error):
            raise SidecarError(
                f"ACME server {config.acme_server} unreachable: TLS failed"
            ) from None
        raise SidecarError(
            f"ACME server {config.acme_server}: TLS not trusted ({_first(error)}); "
            "set ACME_CA_BUNDLE for a private CA"
        ) from None
    except (requests.exceptions.RequestException, ValueError) as error:
        raise SidecarError(
            f"ACME server {config.acme_server} unreachable: {_first(error)}"
        ) from None


def _first(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
