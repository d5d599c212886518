"""certbot's catalogue of renewal conf keys (`renewal/NAME.conf`): which are certbot's own,
which hold hook commands or a lineage's files, and how a plugin's own keys are named."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sidecar.logs import mask_command
from sidecar.volume.ca import LETSENCRYPT

if TYPE_CHECKING:
    from collections.abc import Mapping

NO_INSTALLER = frozenset({"", "null", "none"})
FILES = ("cert", "privkey", "chain", "fullchain")  # the top-level keys naming a lineage's files
# certbot's own renewal keys (certbot._internal.renewal.CONFIG_ITEMS): never removed as a
# plugin's keys, whatever the plugin is called.
CORE_KEYS = frozenset(
    {
        "config_dir",
        "logs_dir",
        "work_dir",
        "user_agent",
        "server",
        "account",
        "authenticator",
        "installer",
        "deploy_hook",
        "pre_hook",
        "post_hook",
        "http01_address",
        "preferred_chain",
        "key_type",
        "elliptic_curve",
        "preferred_profile",
        "required_profile",
        "rsa_key_size",
        "http01_port",
        "must_staple",
        "allow_subset_of_names",
        "reuse_key",
        "autorenew",
        "pref_challs",
    }
)
HOOK_KEYS = frozenset(
    {
        "pre_hook",
        "post_hook",
        "renew_hook",
        "deploy_hook",
        "manual_auth_hook",
        "manual_cleanup_hook",
    }
)
V1_URI = "https://acme-v01.api.letsencrypt.org/directory"  # certbot's constants.V1_URI


def shown(key: str, value: object) -> object:
    """A conf value as logs and `status --json` may show it: hooks with their tokens masked."""
    return mask_command(value) if key in HOOK_KEYS and isinstance(value, str) else value


def saved_server(params: Mapping[str, Any]) -> str:
    """The CA certbot renews a lineage at when no `--server` is given: its saved `server`, or
    certbot's default (Let's Encrypt production) when none is saved or the ACMEv1 URL is."""
    saved = str(params.get("server") or "")
    if not saved or saved == V1_URI:
        return LETSENCRYPT
    return saved


def plugin_keys(params: Mapping[str, Any], plugin: str | None) -> list[str]:
    """A plugin's own saved options (`webroot_path`, `apache_server_root`, `dns_x_credentials`)."""
    if not plugin or plugin.lower() in NO_INSTALLER:
        return []
    prefix = plugin.replace("-", "_") + "_"
    return [k for k in params if k.startswith(prefix) and k not in CORE_KEYS]


def credentials_key(plugin: str) -> str:
    """Where certbot saves a DNS plugin's credentials file: `dns-ovh` -> `dns_ovh_credentials`."""
    return plugin.replace("-", "_") + "_credentials"


def as_text(value: object) -> str | None:
    """A conf value as text (configobj gives strings, lists or sections); None when absent."""
    return None if value is None else str(value)
