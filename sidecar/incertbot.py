"""certbot's way into the sidecar: the plugin class certbot loads (entry point `certbot.plugins`,
name `sidecar`) in its own process, with the configuration loaded there once, by the loader, as
every entry point of the sidecar loads it."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from sidecar import loader, logs, shutdown
from sidecar.certbot import plugin

if TYPE_CHECKING:
    from sidecar.certbot.inside import InCertbot


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
