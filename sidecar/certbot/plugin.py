"""The certbot plugin `sidecar`: standalone HTTP-01 with the app down only while it must be.

certbot loads it (entry point `certbot.plugins`: the subclass in `sidecar.incertbot`, which gives
it the configuration) in its own process, as authenticator and as installer (`-a sidecar -i
sidecar`):

- `perform` runs after the account is loaded and the order is created, just before the challenges
  are answered: only then are the app containers stopped (once per certbot run, for all lineages).
- The challenge server shuts down within 50 ms (standalone's takes up to 0.5 s), and certbot's
  fixed one-second waits before the first authorization and order polls become FIRST_POLL (a
  Retry-After the CA sends is still obeyed), since the app is down while certbot waits.
- `restart` (the installer's reload, called right after a renewed certificate is saved) starts the
  app in this process once the last renewal the sidecar expects in this run is saved, so several
  certificates due together share one outage. A start that fails there (the Docker API or the
  swarm's leader away) is logged and left to the post-hook and the sidecar: the certificate is
  saved, and certbot would call the renewal failed.
- certbot's post-hook (`sidecar hook post`) and the sidecar itself once certbot exits start the app
  in every other case: a failure, a certificate obtained with `certonly`, certbot killed.
"""

from __future__ import annotations

import errno
import threading
import time
from typing import TYPE_CHECKING, Any

from acme import challenges as acme_challenges
from acme import client as acme_client
from acme import standalone as acme_standalone
from certbot import errors, interfaces
from certbot._internal import auth_handler
from certbot._internal.plugins import standalone
from loguru import logger

from sidecar.certbot import inside
from sidecar.errors import SidecarError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from acme import challenges
    from certbot import achallenges

BIND_WAIT = 5.0
SERVER_POLL = 0.05
FIRST_POLL = 0.2


class _QuickTime:
    """`time` for certbot's pollers: their fixed 1 s first waits shortened to FIRST_POLL."""

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(FIRST_POLL if seconds == 1 else seconds)


def quicken_polling() -> None:
    auth_handler.time = _QuickTime()  # type: ignore[attr-defined,assignment]
    acme_client.time = _QuickTime()  # type: ignore[attr-defined,assignment]


class _QuickServers(acme_standalone.HTTP01DualNetworkedServers):
    def serve_forever(self) -> None:
        for server in self.servers:
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": SERVER_POLL}, daemon=True
            )
            thread.start()
            self.threads.append(thread)


class _QuickServerManager(standalone.ServerManager):
    def run(
        self, port: int, challenge_type: type[challenges.Challenge], listenaddr: str = ""
    ) -> acme_standalone.HTTP01DualNetworkedServers:
        assert challenge_type == acme_challenges.HTTP01  # noqa: S101 (as standalone's own)
        if port in self._instances:
            return self._instances[port]
        try:
            servers = _QuickServers((listenaddr, port), self.http_01_resources)
        except OSError as error:
            raise errors.StandaloneBindError(error, port) from error
        servers.serve_forever()
        self._instances[servers.getsocknames()[0][1]] = servers
        return servers


class Authenticator(standalone.Authenticator, interfaces.Installer):
    """Standalone HTTP-01 with the app containers stopped just for the challenge."""

    description = (
        "certbot-sidecar: standalone HTTP-01 server, stopping the app containers "
        "(APP_CONTAINERS / APP_LABEL) just for the challenge"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(*args, **kwargs)
        self.servers = _QuickServerManager(self.http_01_resources)

    def context(self) -> inside.InCertbot:
        """The configuration and the app's targets in this process: given by the entry point
        certbot loads (`sidecar.incertbot.Authenticator`), which loads the configuration."""
        raise NotImplementedError

    def perform(
        self,
        achalls: Iterable[achallenges.AnnotatedChallenge],
    ) -> list[challenges.ChallengeResponse]:
        achalls = list(achalls)
        if achalls:
            quicken_polling()
            reason = f"the HTTP-01 challenge of {achalls[0].identifier.value}"
            inside.stop_app(self.context(), reason)
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
                        inside.port_busy_message(self.config.http01_port)
                    ) from None
                time.sleep(0.05)

    # The installer side: only `restart` does something (the certificate is on disk by then).

    def restart(self) -> None:
        if inside.this_run().one_saved():
            try:
                inside.start_app(self.context())
            except SidecarError as error:  # tried again by the post-hook, then by the sidecar
                logger.error("could not start the app again yet: {}", error)

    def get_all_names(self) -> list[str]:
        return []

    def deploy_cert(
        self, domain: str, cert_path: str, key_path: str, chain_path: str, fullchain_path: str
    ) -> None:
        pass

    def enhance(self, domain: str, enhancement: str, options: Any = None) -> None:  # noqa: ANN401
        pass

    def supported_enhancements(self) -> list[str]:
        return []

    def save(self, title: str | None = None, temporary: bool = False) -> None:
        pass

    def rollback_checkpoints(self, rollback: int = 1) -> None:
        pass

    def recovery_routine(self) -> None:
        pass

    def config_test(self) -> None:
        pass
