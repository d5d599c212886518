"""certbot's way into the sidecar: the plugin class certbot loads (entry point `certbot.plugins`,
name `sidecar`) in its own process, with the configuration loaded there once, by the loader, as
every entry point of the sidecar loads it."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from sidecar import loader, logs, shutdown
from sidecar.certbot import plugin, replaces

if TYPE_CHECKING:
    from sidecar.certbot.inside import InCertbot

# certbot imports this module in every one of its processes (its plugin discovery loads every
# entry point), whichever authenticator a lineage has: the one place to patch its renewals.
replaces.install()


class Authenticator(plugin.Authenticator):
    """The sidecar's plugin (`-a sidecar -i sidecar`), configured from the environment."""

    def context(self) -> InCertbot:
        return in_certbot()


@functools.cache
def in_certbot() -> InCertbot:
    """The configuration and the app's targets, made once per certbot process."""
    config = loader.load()
    logs.setup(config.log_level)
    return loader.in_certbot(config, shutdown.REQUEST)
