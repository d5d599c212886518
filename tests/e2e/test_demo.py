"""The README's first command: `config/demo up` brings up app + sidecar + Pebble, and it works."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from tests.e2e.dns import free_dns_port
from tests.e2e.harness import ROOT, TAG, free_ports

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "config" / "demo"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def sidecar_logs(env: dict[str, str], service: str = "sidecar") -> str:
    done = subprocess.run(
        ["docker", "compose", "logs", "--no-color", service],
        cwd=ROOT,
        env={**env, "COMPOSE_PROFILES": "dns"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout + done.stderr


@pytest.mark.parametrize("mode", ["default", "cooperative", "dns"])
def test_demo_up_serves_a_certificate_from_the_local_ca_and_renews_it(mode):
    """`config/demo up` ends with the app serving Pebble's certificate; `renew` gets a new one.
    With DEMO_CHALLENGE=dns: bind9 beside Pebble, a wildcard certificate, the app never stopped.
    The sidecar works through the guard, which refuses none of its calls."""
    ports = free_ports(6)
    env = {
        **os.environ,
        # This checkout's images, under tags of their own: compose builds them with the demo's
        # extras, and must never replace the images the other e2e tests run (with apprise).
        "DEMO_TAG": f"{TAG}-demo-{mode}",
        "COMPOSE_PROJECT_NAME": f"cbs-demo-{uuid.uuid4().hex[:8]}",
        "DEMO_HTTP_PORT": str(ports[0]),
        "DEMO_HTTPS_PORT": str(ports[1]),
        "DEMO_PEBBLE_PORT": str(ports[2]),
        "DEMO_PEBBLE_MANAGEMENT_PORT": str(ports[3]),
        "DEMO_PEBBLE_DNS_PORT": str(ports[4]),
        "DEMO_CHALLTEST_PORT": str(ports[5]),
    }
    if mode == "cooperative":
        env |= {"DEMO_CHALLENGE": "webroot", "DEMO_RELOAD_SIGNAL": "SIGHUP"}
    if mode == "dns":
        env |= {"DEMO_CHALLENGE": "dns", "DEMO_DNS_PORT": str(free_dns_port())}
    try:
        up = demo(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "serves serial" in up.stdout
        assert "Pebble Intermediate CA" in up.stdout
        first = up.stdout.split("serves serial ", 1)[1].split()[0]

        renewed = demo(env, "renew")

        assert renewed.returncode == 0, renewed.stdout + renewed.stderr
        served = renewed.stdout.strip().splitlines()[-1].split()[0]
        assert served != first
        guard = sidecar_logs(env, "guard")
        assert "certbot-sidecar guard: serving /run/guard/docker.sock" in guard, guard
        assert "refused" not in guard, guard
        if mode != "default":
            assert "stopping" not in renewed.stdout + renewed.stderr
        if mode == "dns":
            assert "for *.demo.example.com, demo.example.com" in up.stdout
            logs = sidecar_logs(env)
            assert "sending SIGHUP" in logs, logs
            assert "stopping" not in logs
            assert "restarting" not in logs
    finally:
        demo(env, "down")
