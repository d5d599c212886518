"""The DNS-01 test bed for e2e tests: bind9 (config/dns) beside a Stack's Pebble.

    bed = start_dns(stack)                          # authoritative for example.test
    stack.start_pebble(dns_server=bed.address)      # Pebble resolves through bind only
    code, out = run_certbot(stack, "certonly", *bed.certbot_args(), "-d", "*.example.test")

Every sidecar container of the stack then sees the credentials at `bed.credentials`
(`/dns-out/rfc2136.ini`, mode 0600); `bed.variant(...)` writes a broken copy beside it.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import docker.errors

from tests.e2e.harness import DNS_IMAGE, SIDECAR_IMAGE, _healthy, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    from docker.models.containers import Container

    from tests.e2e.harness import Stack

ZONE = "example.test"
OUT_MOUNT = "/dns-out"  # where the sidecar (and certbot) containers see the bed's files
CREDENTIALS_NAME = "rfc2136.ini"


def free_dns_port() -> int:
    """A loopback port free for both UDP and TCP (named listens on both)."""
    for _ in range(50):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no loopback port free for UDP and TCP")


@dataclass
class DnsBed:
    """A running bind9 container: its zone(s), its address and its published credentials."""

    container: Container
    zones: tuple[str, ...]
    port: int
    out_dir: Path  # on the host; mounted at OUT_MOUNT in every sidecar container of the stack
    host: str = "127.0.0.1"  # where named listens (Stack.place)

    @property
    def address(self) -> str:
        """`HOST:PORT`, for Pebble's -dnsserver (`Stack.start_pebble(dns_server=...)`)."""
        return f"{self.host}:{self.port}"

    @property
    def credentials(self) -> str:
        """The certbot-dns-rfc2136 credentials file as the sidecar container sees it."""
        return f"{OUT_MOUNT}/{CREDENTIALS_NAME}"

    @property
    def credentials_on_host(self) -> Path:
        return self.out_dir / CREDENTIALS_NAME

    def settings(self) -> dict[str, str]:
        """The credentials ini as a dict (dns_rfc2136_server, _port, _name, _secret, _algorithm)."""
        pairs = (
            line.split("=", 1)
            for line in self.credentials_on_host.read_text().splitlines()
            if "=" in line and not line.startswith("#")
        )
        return {k.strip(): v.strip() for k, v in pairs}

    def variant(self, name: str, mode: int = 0o600, **changes: str | None) -> str:
        """A copy of the credentials with some keys changed (None drops one), e.g.
        `variant("wrong.ini", dns_rfc2136_secret=...)`; its path in the sidecar container."""
        values = {**self.settings(), **changes}
        path = self.out_dir / name
        path.write_text("".join(f"{k} = {v}\n" for k, v in values.items() if v is not None))
        path.chmod(mode)
        return f"{OUT_MOUNT}/{name}"

    def certbot_args(self, credentials: str | None = None, propagation: int = 0) -> list[str]:
        """certbot's flags for dns-01 through this bed."""
        return [
            "--authenticator",
            "dns-rfc2136",
            "--dns-rfc2136-credentials",
            credentials or self.credentials,
            "--dns-rfc2136-propagation-seconds",
            str(propagation),
        ]

    def txt(self, name: str) -> list[str]:
        """The TXT strings bind serves for `name` now (e.g. `_acme-challenge.example.test`)."""
        dig = f"dig +short +time=2 +tries=1 -p {self.port} @{self.host} TXT".split()
        code, out = self.container.exec_run([*dig, name])
        assert code == 0, out
        return re.findall(r'"([^"]*)"', out.decode())

    def stop(self, timeout: int = 5) -> None:
        """Stop named (SIGTERM): dns-01 against it then times out (the plugin waits 2 x 45 s)."""
        self.container.stop(timeout=timeout)

    def start(self) -> None:
        """Start it again: same key, same port, zones rebuilt (no TXT record survives)."""
        self.container.start()
        wait_for("the DNS bed to answer", lambda: _healthy(self.container), timeout=60)


def start_dns(
    stack: Stack,
    zones: tuple[str, ...] = (ZONE,),
    port: int | None = None,
    **env: str,
) -> DnsBed:
    """Start the DNS bed for `stack` (where `stack.place` says: loopback of the host network, or
    a multi-node bed's network; labelled and removed with the stack); mount its output directory
    into every sidecar container of the stack at OUT_MOUNT."""
    port = port or free_dns_port()
    out_dir = stack.tmp / "dns-out"
    out_dir.mkdir(parents=True, exist_ok=True)
    host, where = stack.place("dns")
    container = stack._run(
        DNS_IMAGE,
        "dns",
        environment={"DNS_ZONE": " ".join(zones), "DNS_LISTEN": f"{host}:{port}", **env},
        volumes={str(out_dir): {"bind": OUT_MOUNT, "mode": "rw"}},
        **where,
    )
    wait_for("the DNS bed to answer", lambda: _healthy(container), timeout=60)
    stack.sidecar_volumes[str(out_dir)] = {"bind": OUT_MOUNT, "mode": "ro"}
    return DnsBed(container, zones, port, out_dir, host)


def run_certbot(stack: Stack, *args: str, timeout: float = 300) -> tuple[int, str, float]:
    """certbot itself (not the sidecar) in the sidecar image, as a host's certbot would run:
    the stack's volume, Pebble's CA trusted, the DNS bed's files. Exit code, output, seconds.
    `--server`, `--non-interactive`, `--agree-tos` and an account without e-mail are added."""
    stack.le_dir.mkdir(parents=True, exist_ok=True)
    command = list(args)
    if command and command[0] in {"certonly", "renew", "certificates", "revoke", "delete"}:
        command += ["--non-interactive", "--server", stack.acme_url]
        if command[0] == "certonly":
            command += ["--agree-tos", "--register-unsafely-without-email"]
    began = time.monotonic()
    container = stack._run(
        SIDECAR_IMAGE,
        f"certbot-{len(stack.containers)}",
        entrypoint=["certbot"],
        command=command,
        network_mode="host",
        environment={"REQUESTS_CA_BUNDLE": "/pebble-ca/ca.pem"},
        volumes={
            str(stack.le_dir): {"bind": "/etc/letsencrypt", "mode": "rw"},
            str(stack.ca_dir): {"bind": "/pebble-ca", "mode": "ro"},
            **stack.sidecar_volumes,
        },
    )
    try:
        code = container.wait(timeout=timeout)["StatusCode"]
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.stop(timeout=1)
    return code, container.logs().decode(errors="replace"), time.monotonic() - began
