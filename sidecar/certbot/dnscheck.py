"""The dry run's check of CHALLENGE=dns, in this process and without the CA: the DNS plugin
loads, accepts DNS_CREDENTIALS, and adds and removes a TXT record through the provider, as
certbot's own run does before the CA looks.

The plugin is set up the way certbot sets it up (its plugin registry and its argument parser,
so every option has the plugin's own default) and driven through certbot's Authenticator
interface (`perform`, `cleanup`) with a challenge made here: a random token, never one a CA
asked for, under `_acme-challenge.NAME`, removed at once.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from acme import challenges, messages
from certbot import achallenges
from certbot import errors as certbot_errors
from certbot._internal import cli
from certbot._internal.display import obj as display_obj
from certbot._internal.plugins import disco
from certbot.plugins import dns_common
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.jwk import JWKEC

from sidecar.errors import ConfigError, SidecarError
from sidecar.volume.files import others_may_read

if TYPE_CHECKING:
    from sidecar.certbot.argv import Flags
    from sidecar.certbot.challenges import Dns


@dataclass
class DnsPluginCheck:
    """The three checks, in order: `load`, `credentials`, `record` (each raises SidecarError
    with one line, or returns what it found)."""

    dns: Dns
    flags: Flags  # certbot's directories
    _plugin: Any = field(default=None, init=False)

    @property
    def name(self) -> str:
        return self.dns.authenticator

    def load(self) -> str:
        """certbot finds the plugin (its entry point imports) and sets it up."""
        display_obj.set_display(display_obj.NoninteractiveDisplay(io.StringIO()))
        os.environ.update(self.dns.env())  # route53's credentials (the dry run's process ends soon)
        plugins = disco.PluginsRegistry.find_all()
        entry = plugins.get(self.name)
        if entry is None:
            raise ConfigError(f"certbot does not find the {self.name} plugin in this image")
        try:
            config = cli.prepare_and_parse_args(plugins, self._argv())
            self._plugin = entry.init(config)
            self._plugin.prepare()
        except Exception as error:  # noqa: BLE001 (a plugin's own code: any error is its answer)
            raise SidecarError(f"{self.name} does not load: {_line(error)}") from None
        version = entry.entry_point.dist.version if entry.entry_point.dist else "?"
        return f"{self.name} {version} loads"

    def credentials(self) -> str:
        """DNS_CREDENTIALS is readable, open to no other user, and the plugin accepts it."""
        path = self.dns.credentials
        if path is None:
            return f"no DNS_CREDENTIALS: {self.name} uses the environment's credentials"
        try:
            path.read_bytes()
            mode = path.stat().st_mode & 0o777
            unsafe = others_may_read(path)
        except OSError as error:
            raise ConfigError(f"DNS_CREDENTIALS {path}: {error.strerror}") from None
        if unsafe:
            raise ConfigError(f"DNS_CREDENTIALS: {unsafe}")
        if isinstance(self._plugin, dns_common.DNSAuthenticator):
            try:
                self._plugin._setup_credentials()  # noqa: SLF001 (what perform does first)
            except certbot_errors.Error as error:
                raise ConfigError(f"{self.name} refuses {path}: {_line(error)}") from None
        return f"{path} (mode {mode:04o}) is readable, by no other user, and {self.name} takes it"

    def record(self, domain: str) -> str:
        """A TXT record at `_acme-challenge.DOMAIN` added through the plugin, then removed."""
        achall = _challenge(domain.removeprefix("*."))
        where = achall.validation_domain_name(achall.identifier.value)
        try:
            self._plugin.perform([achall])
        except Exception as error:  # noqa: BLE001 (see load)
            raise SidecarError(f"adding a TXT record at {where} failed: {_line(error)}") from None
        try:
            self._plugin.cleanup([achall])
        except Exception as error:  # noqa: BLE001
            raise SidecarError(
                f"a TXT record at {where} was added but removing it failed: {_line(error)}"
            ) from None
        return f"a TXT record at {where} was added and removed through {self.name}"

    def _argv(self) -> list[str]:
        """certbot's command line for the plugin, without waiting for propagation (the CA does
        not look at this record)."""
        flags = self.flags
        return [
            "certonly",
            "--non-interactive",
            "--authenticator",
            self.name,
            *self.dns.options(propagation=0),
            "--config-dir",
            str(flags.paths.config_dir),
            "--work-dir",
            str(flags.paths.work_dir),
            "--logs-dir",
            str(flags.paths.logs_dir),
        ]


def _challenge(domain: str) -> achallenges.KeyAuthorizationAnnotatedChallenge:
    """A dns-01 challenge for `domain` with a random token and a throw-away account key."""
    key = JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    challb = messages.ChallengeBody(
        chall=challenges.DNS01(token=os.urandom(32)),
        uri="urn:certbot-sidecar:dry-run",
        status=messages.STATUS_PENDING,
    )
    identifier = messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=domain)
    return achallenges.KeyAuthorizationAnnotatedChallenge(
        challb=challb, identifier=identifier, account_key=key
    )


def _line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] or type(error).__name__
