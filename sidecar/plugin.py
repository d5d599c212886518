"""The certbot authenticator `sidecar`: standalone HTTP-01, with the app stopped at the last moment.

certbot loads it (entry point `certbot.plugins`) in its own process. `perform` runs after the
account is loaded and the order is created, just before the challenges are answered: only then are
the app containers stopped (once per certbot run, for all lineages). They are started again by the
post-hook (`sidecar hook post`), which certbot runs after all lineages, also after a failure, and
by the sidecar itself once certbot exits, whatever happened to it.
"""

from __future__ import annotations

import errno
import time
from typing import TYPE_CHECKING, Any

from certbot import errors
from certbot._internal.plugins import standalone

from sidecar import hooks

if TYPE_CHECKING:
    from collections.abc import Iterable

    from acme import challenges
    from certbot import achallenges

BIND_WAIT = 5.0


class Authenticator(standalone.Authenticator):
    """Standalone HTTP-01 with the app containers stopped just before the challenge."""

    description = (
        "certbot-sidecar: standalone HTTP-01 server, stopping the app containers "
        "(APP_CONTAINERS / APP_LABEL) just before the challenge is answered"
    )

    def perform(
        self,
        achalls: Iterable[achallenges.AnnotatedChallenge],
    ) -> list[challenges.ChallengeResponse]:
        achalls = list(achalls)
        if achalls:
            hooks.stop_app(f"the HTTP-01 challenge of {achalls[0].domain}")
        return [self._bind(achall) for achall in achalls]

    def _bind(self, achall: Any) -> Any:  # noqa: ANN401
        """Bind port 80 once the app let go of it (docker-proxy may take a moment)."""
        deadline = time.monotonic() + BIND_WAIT
        while True:
            try:
                return self._perform_single(achall)
            except errors.StandaloneBindError as error:
                if error.socket_error.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise errors.PluginError(
                        hooks.port_busy_message(self.config.http01_port)
                    ) from None
                time.sleep(0.05)
