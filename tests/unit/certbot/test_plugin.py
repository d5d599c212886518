"""The certbot plugin, in this process with a real challenge server on a loopback port."""

from __future__ import annotations

import argparse
import socket
import urllib.request
from typing import TYPE_CHECKING

import pytest
from acme import challenges, messages
from certbot import achallenges, errors
from cryptography.hazmat.primitives.asymmetric import rsa
from josepy.jwk import JWKRSA

from sidecar.certbot import inside, plugin
from sidecar.certbot.argv import EXPECTED_ENV
from sidecar.errors import DockerError
from tests.unit.helpers import noting

if TYPE_CHECKING:
    from collections.abc import Iterator

TOKEN = b"t" * 32
KEY = JWKRSA(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def achall(domain: str = "a.example") -> achallenges.KeyAuthorizationAnnotatedChallenge:
    body = messages.ChallengeBody(
        chall=challenges.HTTP01(token=TOKEN), uri="https://ca.test/chall/1", status=None
    )
    name = messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=domain)
    return achallenges.KeyAuthorizationAnnotatedChallenge(
        challb=body, identifier=name, account_key=KEY
    )


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """What the plugin asked of the app (stop, start) instead of a Docker engine."""
    seen: list[str] = []
    monkeypatch.setattr(
        inside, "stop_app", lambda _context, reason: noting(seen, f"stop: {reason}", [])
    )
    monkeypatch.setattr(inside, "start_app", lambda _context: noting(seen, "start", []))
    monkeypatch.setattr(plugin.Authenticator, "context", lambda _self: None)
    monkeypatch.setattr(inside, "port_busy_message", lambda port: f"port {port} is busy")
    return seen


@pytest.fixture
def auth(calls) -> Iterator[plugin.Authenticator]:
    config = argparse.Namespace(http01_port=free_port(), http01_address="127.0.0.1")
    authenticator = plugin.Authenticator(config, "sidecar")
    yield authenticator
    for port in authenticator.servers.running():
        authenticator.servers.stop(port)


def test_perform_stops_the_app_once_then_answers_the_challenge_on_the_port(auth, calls):
    """The app is stopped just before the challenge is answered; the key authorization is served."""
    challenge = achall()
    (response,) = auth.perform([challenge])
    assert response.key_authorization == challenge.validation(KEY)
    assert calls == ["stop: the HTTP-01 challenge of a.example"]
    url = f"http://127.0.0.1:{auth.config.http01_port}{challenge.chall.path}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        served = answer.read().decode()
    assert served == challenge.validation(KEY)
    auth.cleanup([challenge])
    assert auth.servers.running() == {}


def test_no_challenge_means_no_stop(auth, calls):
    """A reused authorization: certbot calls perform with nothing; the app keeps running."""
    assert auth.perform([]) == []
    assert calls == []


def test_a_port_still_held_after_the_stop_is_a_clear_plugin_error(auth, calls, monkeypatch):
    """Something else holds the challenge port: certbot gets the message naming the port."""
    monkeypatch.setattr(plugin, "BIND_WAIT", 0.2)
    port = auth.config.http01_port
    with (
        socket.create_server(("127.0.0.1", port)),
        pytest.raises(errors.PluginError, match=f"port {port} is busy"),
    ):
        auth.perform([achall()])
    assert calls[0].startswith("stop")


def test_the_app_is_started_once_the_last_expected_renewal_is_saved(calls, monkeypatch):
    """Two renewals expected in this run: the installer's restart starts the app after the 2nd."""
    monkeypatch.setenv(EXPECTED_ENV, "2")
    inside.this_run.cache_clear()
    authenticator = plugin.Authenticator(argparse.Namespace(http01_port=80), "sidecar")
    authenticator.restart()
    assert calls == []
    authenticator.restart()
    assert calls == ["start"]


def test_without_an_expected_count_every_saved_certificate_starts_the_app(calls, monkeypatch):
    """certonly (no count given): the app is started as soon as its certificate is saved."""
    monkeypatch.delenv(EXPECTED_ENV, raising=False)
    inside.this_run.cache_clear()
    plugin.Authenticator(argparse.Namespace(http01_port=80), "sidecar").restart()
    assert calls == ["start"]


def test_a_failed_start_after_the_saved_certificate_is_no_failed_renewal(monkeypatch):
    """The swarm's leader away when the certificate is saved: the start's error is logged, not
    raised into certbot (which would report the saved renewal as failed); the post-hook and the
    sidecar start the app."""

    def start(_context: object) -> list[str]:
        raise DockerError("inspect service app failed: rpc error: context deadline exceeded")

    monkeypatch.delenv(EXPECTED_ENV, raising=False)
    inside.this_run.cache_clear()
    monkeypatch.setattr(inside, "start_app", start)
    monkeypatch.setattr(plugin.Authenticator, "context", lambda _self: None)
    plugin.Authenticator(argparse.Namespace(http01_port=80), "sidecar").restart()


def test_certbots_fixed_one_second_poll_waits_are_shortened(monkeypatch):
    """While the app is down certbot polls after FIRST_POLL, not 1 s; other waits are kept."""
    slept: list[float] = []
    monkeypatch.setattr("sidecar.certbot.plugin.time.sleep", slept.append)
    plugin._QuickTime.sleep(1)
    plugin._QuickTime.sleep(3)
    assert slept == [plugin.FIRST_POLL, 3]
