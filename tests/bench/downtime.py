"""Downtime benchmark: app outage per renewal, sidecar idle memory, image size — in ONE run.

    uv run python -m tests.bench.downtime [--runs 5] [--only B S]

Against Pebble (PEBBLE_VA_NOSLEEP=1), the same demo-app image, a probe doing a TLS handshake
with the app every 20 ms. Scenarios:
  A  plain certbot standalone with `--pre-hook "docker stop APP" --post-hook "docker start APP"`
  B  the sidecar's default mode (`sidecar renew --force`)
  G  B through `sidecar guard` (the default compose setups) and B on the raw socket, alternating
     in one stack, and the guard container's memory after them
  C  cooperative mode (no stop: webroot challenge answered by the app, reload by signal)
  D  three certificates due at once, default mode
  E  DNS-01 (`*.NAME` + NAME through bind9, certbot-dns-rfc2136), the app reloading by SIGHUP
  E' DNS-01, the app restarted once to load the new certificate (compare with B)
  P  the first cycle (first issuance) against Docker and against Podman's Docker-compatible API
  S  Docker Swarm: a one-replica service scaled to 0 and back (secrets delivery), on a
     single-node swarm this run initialises (and leaves) if the engine is in none
  S3 S on a three-node swarm of engines in containers (tests/e2e/multinode.py): a replicated
     service with one task per node, the outage as each node's published port sees it
  N  a cycle with nothing due (`sidecar renew`), with no other container on the engine and
     with 500 other (created, idle) containers: the selection asks the engine, not each one
  H  the idle sidecar container's memory, and what its healthcheck costs: `sidecar health` as
     Docker runs it (the light check) against the full interpreter (`cli.cmd_health`), wall
     time and peak RSS of the command in the container, same run, same volume
Prints per scenario the total outage, longest outage and number of outages (min/median/max),
whether the new certificate was served afterwards; then idle RSS, the health check and image
size. Last line: `downtime_ratio=<median total outage of B / median total outage of A>`.
Uses the images the e2e tests build, on BASE_IMAGE or the base tests/prepare.sh makes ready.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import docker

if TYPE_CHECKING:
    from collections.abc import Iterator

from tests.e2e.dns import start_dns
from tests.e2e.harness import (
    GUARD_DIR,
    GUARDED_HOST,
    ROOT,
    SIDECAR_IMAGE,
    Stack,
    base_image,
    build_images,
    disk_serial,
    served_serial,
)
from tests.e2e.multinode import SPREAD, MultiNodeStack, multi_node_swarm
from tests.e2e.podman import PodmanService, PodmanStack
from tests.e2e.swarm import SwarmStack, single_node_swarm

PROBE_EVERY = 0.02
LOCAL = ("127.0.0.1",)


@dataclass
class Probe:
    """Handshakes with the app every 20 ms; outages are runs of failed handshakes."""

    port: int
    name: str
    host: str = "127.0.0.1"
    samples: list[tuple[float, bool]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                served_serial(self.port, self.name, self.host)
                ok = True
            except OSError:
                ok = False
            self.samples.append((began, ok))
            self._stop.wait(max(0.0, PROBE_EVERY - (time.monotonic() - began)))

    def windows(self) -> list[tuple[float, float]]:
        """Each outage as (start, end): from its first failed probe to the next successful one
        (monotonic clock)."""
        out, start = [], None
        for at, ok in self.samples:
            if not ok and start is None:
                start = at
            elif ok and start is not None:
                out.append((start, at))
                start = None
        if start is not None:
            out.append((start, self.samples[-1][0]))
        return out

    def outages(self) -> list[float]:
        """Each outage's length, seconds."""
        return [end - start for start, end in self.windows()]


@dataclass
class Run:
    outages: list[float]
    new_cert_served: bool

    @property
    def total(self) -> float:
        return sum(self.outages)


def settle(stack: Stack, names: list[str], hosts: tuple[str, ...] = LOCAL) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            current = disk_serial(stack.le_dir, names[0])
            if all(served_serial(stack.https_port, names[0], h) == current for h in hosts):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the app does not serve its certificate")


def measure(stack: Stack, names: list[str], renew: callable) -> Run:  # type: ignore[valid-type]
    return measure_on(stack, names, renew)[0]


def measure_on(
    stack: Stack,
    names: list[str],
    renew: callable,  # type: ignore[valid-type]
    hosts: tuple[str, ...] = LOCAL,
) -> list[Run]:
    """One renewal as the app's port on each of `hosts` sees it: a Run per host."""
    settle(stack, names, hosts)
    old = disk_serial(stack.le_dir, names[0])
    with contextlib.ExitStack() as probing:
        probes = [probing.enter_context(Probe(stack.https_port, names[0], host)) for host in hosts]
        time.sleep(0.3)
        renew()
        settle(stack, names, hosts)
        time.sleep(0.3)
    new = disk_serial(stack.le_dir, names[0])
    return [
        Run(p.outages(), new != old and served_serial(stack.https_port, names[0], p.host) == new)
        for p in probes
    ]


def sidecar_renew(stack: Stack, **env: Any) -> None:
    code, logs = stack.sidecar_once("renew", "--force", **env)
    if code:
        raise RuntimeError(logs)


def plain_certbot(stack: Stack, app_name: str, *command: str) -> None:
    """certbot as people run it today: standalone, docker stop/start as pre/post hooks."""
    certbot = shutil.which("certbot", path=str(Path(sys.executable).parent)) or "certbot"
    done = subprocess.run(
        [
            certbot,
            *command,
            "--agree-tos",
            "--register-unsafely-without-email",
            "--non-interactive",
            "--no-random-sleep-on-renew",
            "--config-dir",
            str(stack.le_dir),
            "--work-dir",
            str(stack.tmp / "work"),
            "--logs-dir",
            str(stack.tmp / "logs"),
            "--server",
            stack.acme_url,
            "--authenticator",
            "standalone",
            "--installer",
            "null",
            "--http-01-port",
            str(stack.http_port),
            "--http-01-address",
            "127.0.0.1",
            "--pre-hook",
            f"docker stop {app_name}",
            "--post-hook",
            f"docker start {app_name}",
        ],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "REQUESTS_CA_BUNDLE": str(stack.ca_dir / "ca.pem")},
    )
    if done.returncode:
        raise RuntimeError(done.stdout + done.stderr)


def scenario(client: docker.DockerClient, label: str, runs: int, domains: int = 1) -> list[Run]:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(client, Path(tmp))
        try:
            names = [stack.domain] + [
                f"extra{i}-{stack.uid}.example.com" for i in range(1, domains)
            ]
            env = {"DOMAINS": ";".join(names)}
            if label.startswith("E"):  # bind9 authoritative for the app's name, Pebble through it
                bed = start_dns(stack, zones=(stack.domain,))
                stack.start_pebble(dns_server=bed.address)
                env = dns_env(names[0], bed.credentials, reload=label == "E")
            else:
                stack.start_pebble()
            app = stack.start_app(env={"ACME_WEBROOT": "/etc/letsencrypt/webroot"})
            if label == "C":
                env |= {"CHALLENGE": "webroot", "RELOAD_SIGNAL": "SIGHUP"}
            if label == "A":  # the lineage made by host certbot, as the plain approach does
                plain_certbot(stack, app.name, "certonly", "-d", names[0])
            else:
                code, logs = stack.sidecar_once("renew", **env)
                if code:
                    raise RuntimeError(logs)
            renew = {
                "A": lambda: plain_certbot(stack, app.name, "renew", "--force-renewal"),
                "B": lambda: sidecar_renew(stack, **env),
                "C": lambda: sidecar_renew(stack, **env),
                "D": lambda: sidecar_renew(stack, **env),
                "E": lambda: sidecar_renew(stack, **env),
                "E'": lambda: sidecar_renew(stack, **env),
            }[label]
            return [measure(stack, names, renew) for _ in range(runs)]
        finally:
            stack.cleanup()


@contextlib.contextmanager
def issued(client: docker.DockerClient) -> Iterator[Stack]:
    """A stack (Pebble, the app) whose certificate the sidecar has obtained; removed after."""
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(client, Path(tmp))
        try:
            stack.start_pebble()
            stack.start_app()
            code, logs = stack.sidecar_once("renew")
            if code:
                raise RuntimeError(logs)
            yield stack
        finally:
            stack.cleanup()


def guard_scenario(client: docker.DockerClient, runs: int) -> tuple[float, float]:
    """Run and report scenario G: B through the guard and on the raw socket, alternating, in
    one stack; then the guard container's RSS. The medians (guarded, raw)."""
    with issued(client) as stack:
        where = stack.start_guard(stack.sidecar_env())
        guard = stack.containers[-1]
        through = {"socket": False, "DOCKER_HOST": GUARDED_HOST}
        guarded, raw = [], []
        for _ in range(runs):
            stack.sidecar_volumes[str(where)] = {"bind": GUARD_DIR, "mode": "rw"}
            guarded.append(measure(stack, [stack.domain], lambda: sidecar_renew(stack, **through)))
            del stack.sidecar_volumes[str(where)]
            raw.append(measure(stack, [stack.domain], lambda: sidecar_renew(stack, guard=False)))
        time.sleep(2)
        rss = container_rss_mb(guard)
    through_guard = report("G", "B through the guard", guarded)
    on_socket = report("G", "B on the raw socket", raw)
    print(f"guard container RSS after the runs (tini + the guard): {rss:.1f} MB", flush=True)
    print(f"guard_outage_ratio={through_guard / on_socket:.3f}" if on_socket else "", flush=True)
    return through_guard, on_socket


def dns_env(name: str, credentials: str, *, reload: bool) -> dict[str, str]:
    """CHALLENGE=dns for `*.name` + `name` (lineage `name`), reloading by SIGHUP or restarting."""
    env = {
        "DOMAINS": f"*.{name},{name}",
        "CHALLENGE": "dns",
        "DNS_PLUGIN": "rfc2136",
        "DNS_CREDENTIALS": credentials,
        "DNS_PROPAGATION": "0",
    }
    return env | {"RELOAD_SIGNAL": "SIGHUP"} if reload else env


def swarm_scenario(client: docker.DockerClient, runs: int) -> list[Run]:
    """S: `sidecar renew --force` as a swarm task; the app a one-replica service with host-mode
    ports reading its certificate from the secrets the sidecar gives it."""
    secret = {"CERT_DELIVERY": "secret"}
    with single_node_swarm(client) as swarm, tempfile.TemporaryDirectory() as tmp:
        stack = SwarmStack(client, Path(tmp), swarm=swarm)
        try:
            stack.start_pebble()
            app = stack.app_service(secrets=[])
            stack.wait_running(app, 1)
            swarm_renew(stack, **secret)
            return [
                measure(stack, [stack.domain], lambda: swarm_renew(stack, "--force", **secret))
                for _ in range(runs)
            ]
        finally:
            stack.cleanup()


def three_node_scenario(client: docker.DockerClient, runs: int) -> dict[str, list[Run]]:
    """S3: S on a three-node swarm of engines in containers (tests/e2e/multinode.py), the app a
    replicated service with one task on each node; the outage as each node's port 443 sees it."""
    secret = {"CERT_DELIVERY": "secret"}
    with (
        tempfile.TemporaryDirectory() as tmp,
        multi_node_swarm(client, Path(tmp)) as bed,
    ):
        stack = MultiNodeStack(client, Path(tempfile.mkdtemp(dir=bed.shared)), bed=bed)
        try:
            stack.start_pebble()
            app = stack.app_service(replicas=3, placement=SPREAD, secrets=[])
            stack.wait_running(app, 3)
            swarm_renew(stack, **secret)
            hosts = tuple(n.ip for n in bed.nodes)
            measured = [
                measure_on(
                    stack, [stack.domain], lambda: swarm_renew(stack, "--force", **secret), hosts
                )
                for _ in range(runs)
            ]
            return {n.name: [per_node[i] for per_node in measured] for i, n in enumerate(bed.nodes)}
        finally:
            stack.cleanup()


def swarm_renew(stack: SwarmStack, *flags: str, **env: str) -> None:
    code, logs = stack.sidecar_service_once("renew", *flags, **env)
    if code:
        raise RuntimeError(logs)


def idle_scenario(client: docker.DockerClient, runs: int) -> None:
    """Run and report scenario H: the idle container's RSS, then the health check, light and
    full, alternating, `runs` times each, in that container (a certificate, a journal)."""
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(client, Path(tmp))
        try:
            stack.start_pebble()
            stack.start_app()
            daemon = stack.sidecar("run", CHECK_INTERVAL="1h", LOG_LEVEL="INFO")
            deadline = time.monotonic() + 120
            while "next check at" not in daemon.logs().decode():
                if time.monotonic() > deadline:
                    raise RuntimeError(daemon.logs().decode())
                time.sleep(0.5)
            time.sleep(2)
            print(
                f"idle RSS of the sidecar container (tini + the sleeper): "
                f"{container_rss_mb(daemon):.1f} MB",
                flush=True,
            )
            light, full = [], []
            for _ in range(runs):
                light.append(command_cost(daemon, ["sidecar", "health"]))
                full.append(command_cost(daemon, FULL_HEALTH))
        finally:
            stack.cleanup()
    for name, costs in (("light (the image's)", light), ("full interpreter", full)):
        seconds, peaks = zip(*costs, strict=True)
        print(
            f"health check, {name}: s {stats(list(seconds))}  peak RSS MB {stats(list(peaks))}",
            flush=True,
        )


# `sidecar health` as it was before the light check: the whole command line imported.
FULL_HEALTH = [
    "python3",
    "-c",
    "import sys; from sidecar.cli import main; sys.exit(main(['health']))",
]
# Wall time and peak RSS of a command run in the container (its own process tree, waited for).
_COST = (
    "import resource, subprocess, sys, time\n"
    "began = time.perf_counter()\n"
    "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=False)\n"
    "print(time.perf_counter() - began, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def command_cost(container: object, command: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of `command` in `container`, measured inside it."""
    result = container.exec_run(["python3", "-c", _COST, *command])  # type: ignore[attr-defined]
    seconds, kilobytes = result.output.decode().split()
    return float(seconds), int(kilobytes) / 1024


# RSS of every process in the container but the one reading it (tini as PID 1, the sleeper).
_RSS = (
    'for s in /proc/[0-9]*/status; do [ "${s#/proc/}" = "$$/status" ] && continue; '
    "sed -n 's/^VmRSS:[[:space:]]*\\([0-9]*\\).*/\\1/p' \"$s\"; done"
)


def container_rss_mb(container: object) -> float:
    out = container.exec_run(["sh", "-c", _RSS]).output.decode()  # type: ignore[attr-defined]
    return sum(int(x) for x in out.split() if x.isdigit()) / 1024


def cycle_seconds(stack: Stack) -> float:
    """`sidecar renew`: the cycle's own duration."""
    code, logs = stack.sidecar_once("renew")
    if code:
        raise RuntimeError(logs)
    return float(logs.split("cycle done in ", 1)[1].split("s", 1)[0])


def first_cycle_seconds(stack: Stack) -> float:
    """`sidecar renew` on an empty volume (first issuance): the cycle's own duration."""
    stack.start_pebble()
    stack.start_app()
    return cycle_seconds(stack)


def engines(client: docker.DockerClient, runs: int) -> tuple[list[float], list[float]]:
    """First-cycle seconds against Docker and against Podman's API, `runs` each."""
    docker_times, podman_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        service = PodmanService(Path(tmp) / "podman-api")
        service.tmp.mkdir()
        service.start()
        try:
            service.load_images()
            for i in range(runs):
                for engine, times in (("docker", docker_times), ("podman", podman_times)):
                    where = Path(tmp) / f"{engine}-{i}"
                    stack = (
                        Stack(client, where) if engine == "docker" else PodmanStack(service, where)
                    )
                    try:
                        times.append(first_cycle_seconds(stack))
                    finally:
                        stack.cleanup()
        finally:
            service.close()
    return docker_times, podman_times


def crowded_scenario(client: docker.DockerClient, runs: int, others: int = 500) -> None:
    """Run and report scenario N: a cycle's time with `others` idle containers vs none."""
    with issued(client) as stack:
        alone = [cycle_seconds(stack) for _ in range(runs)]
        for i in range(others):
            stack.create(f"cbs-idle-{stack.uid}-{i}")
        crowded = [cycle_seconds(stack) for _ in range(runs)]
    print(
        f"N cycle with nothing due, s: no other container {stats(alone)}, {others} other "
        f"containers {stats(crowded)} (ratio of medians "
        f"{statistics.median(crowded) / statistics.median(alone):.2f})",
        flush=True,
    )


def stats(values: list[float]) -> str:
    return f"{min(values):.2f}/{statistics.median(values):.2f}/{max(values):.2f}"


def report(label: str, what: str, runs: list[Run]) -> float:
    totals = [r.total for r in runs]
    longest = [max(r.outages, default=0.0) for r in runs]
    counts = [float(len(r.outages)) for r in runs]
    served = sum(r.new_cert_served for r in runs)
    print(
        f"{label} {what}: total outage s {stats(totals)}  longest s {stats(longest)}  "
        f"outages {stats(counts)}  new cert served {served}/{len(runs)}",
        flush=True,
    )
    return statistics.median(totals)


WHAT = {
    "A": "plain pre/post hooks",
    "B": "sidecar default mode",
    "C": "cooperative mode (webroot + SIGHUP)",
    "D": "three certificates due at once",
    "E": "DNS-01, wildcard, reload by SIGHUP",
    "E'": "DNS-01, wildcard, one restart",
    "S": "Swarm: one-replica service, secrets",
    "S3": "Swarm on three nodes: one task per node, secrets",
}


def engine_scenario(client: docker.DockerClient, runs: int) -> None:
    """Run and report scenario P: the first cycle against Docker and against Podman."""
    on_docker, on_podman = engines(client, runs)
    print(
        f"P first cycle (first issuance), s: Docker {stats(on_docker)}, "
        f"Podman {stats(on_podman)} (Podman/Docker median "
        f"{statistics.median(on_podman) / statistics.median(on_docker):.2f})",
        flush=True,
    )


def outage_scenario(client: docker.DockerClient, label: str, runs: int) -> float:
    """Run and report one outage scenario; its median total outage (S3: each node's, the
    largest returned)."""
    if label == "S3":
        per_node = three_node_scenario(client, runs)
        return max(report(f"{label} {n}", WHAT[label], r) for n, r in per_node.items())
    if label == "S":
        measured = swarm_scenario(client, runs)
    else:
        measured = scenario(client, label, runs, domains=3 if label == "D" else 1)
    return report(label, WHAT[label], measured)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[*sorted(WHAT), "G", "H", "P", "N"],
        help="just these scenarios",
    )
    args = parser.parse_args()
    client = docker.from_env(timeout=300)
    build_images(client)
    print(
        f"min/median/max over {args.runs} runs, probe every {PROBE_EVERY * 1000:.0f} ms", flush=True
    )
    if args.only:
        for label in args.only:
            if label == "P":
                engine_scenario(client, args.runs)
            elif label == "N":
                crowded_scenario(client, args.runs)
            elif label == "H":
                idle_scenario(client, args.runs)
            elif label == "G":
                guard_scenario(client, args.runs)
            else:
                outage_scenario(client, label, args.runs)
        return 0
    a, b = (outage_scenario(client, label, args.runs) for label in "AB")
    guard_scenario(client, args.runs)
    for label in ("C", "D", "E", "E'"):
        outage_scenario(client, label, args.runs)
    idle_scenario(client, args.runs)
    outage_scenario(client, "S", args.runs)
    outage_scenario(client, "S3", args.runs)
    engine_scenario(client, args.runs)
    crowded_scenario(client, args.runs)
    base = base_image()
    default, _ = client.images.build(
        path=str(ROOT), tag="certbot-sidecar:bench", buildargs={"BASE_IMAGE": base}, rm=True
    )
    slim = default.attrs["Size"] / 1e6
    full = client.images.get(SIDECAR_IMAGE).attrs["Size"] / 1e6
    base_size = client.images.get(base).attrs["Size"] / 1e6
    print(
        f"image size: {slim:.0f} MB (base {base} {base_size:.0f} MB + {slim - base_size:.0f} MB; "
        f"with EXTRAS=alerts,dns-rfc2136 {full:.0f} MB)"
    )
    print(f"downtime_ratio={b / a:.3f}" if a else "downtime_ratio=nan")
    return 0


if __name__ == "__main__":
    sys.exit(main())
