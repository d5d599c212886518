"""certbot as a subprocess: building its command lines (pure) and running them (the only
subprocess user), with a timeout and its output logged line by line."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from sidecar import shutdown
from sidecar.errors import CertbotError
from sidecar.logs import CHILD_ENV, relog

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sidecar.settings import CertSpec, Settings
    from sidecar.shutdown import StopRequest

AUTHENTICATOR = "sidecar"
POST_HOOK = "sidecar hook post"
_SECRET_FLAGS = frozenset({"--eab-hmac-key"})
KILL_GRACE = 15.0  # after CERTBOT_TIMEOUT
STOP_GRACE = 4.0  # after a stop request: the whole exit fits in Docker's 10 s grace
WAIT_STEP = 0.05
_SEPARATOR = re.compile(r"^[- ]+$")
_NOISE = re.compile(
    r"^(Saving debug log|Ask for help|[- ]+$|\d+ renew failure|All renewals failed|  /)"
)
_HOOK_OUTPUT = re.compile(r"^Hook '[a-z-]+' (ran with error output|reported output):")


def _authenticator(settings: Settings) -> list[str]:
    """Standalone with the app stopped (default), or the app's own webroot (cooperative)."""
    if settings.challenge == "webroot":
        return ["--authenticator", "webroot", "--webroot-path", str(settings.webroot)]
    return ["--authenticator", AUTHENTICATOR]


def common_args(settings: Settings, *, dry_run: bool) -> list[str]:
    """Flags every certbot run of the sidecar gets."""
    args = [
        "--non-interactive",
        "--agree-tos",
        "--config-dir",
        str(settings.config_dir),
        "--work-dir",
        str(settings.work_dir),
        "--logs-dir",
        str(settings.logs_dir),
        "--server",
        settings.acme_server,
        *_authenticator(settings),
        "--installer",
        AUTHENTICATOR,
        "--http-01-port",
        str(settings.http01_port),
        "--post-hook",
        POST_HOOK,
    ]
    if settings.http01_address:
        args += ["--http-01-address", settings.http01_address]
    if settings.email:
        args += ["--email", settings.email, "--no-eff-email"]
    else:
        args += ["--register-unsafely-without-email"]
    if settings.eab_kid and settings.eab_hmac_key:
        args += [
            "--eab-kid",
            settings.eab_kid,
            "--eab-hmac-key",
            settings.eab_hmac_key.get_secret_value(),
        ]
    if settings.acme_profile:
        args += ["--preferred-profile", settings.acme_profile]
    if dry_run:
        args.append("--dry-run")
    return args


def certonly_args(settings: Settings, spec: CertSpec, *, dry_run: bool = False) -> list[str]:
    """Obtain (or re-obtain with new names) the lineage `spec.name`."""
    args = ["certonly", "--cert-name", spec.name, "--key-type", settings.key_type]
    if settings.key_type == "ecdsa":
        args += ["--elliptic-curve", settings.elliptic_curve]
    else:
        args += ["--rsa-key-size", str(settings.rsa_key_size)]
    for domain in spec.domains:
        args += ["-d", domain]
    return [*args, "--keep-until-expiring", "--expand", *common_args(settings, dry_run=dry_run)]


def renew_args(settings: Settings, *, force: bool = False, dry_run: bool = False) -> list[str]:
    """Renew every lineage that certbot's rules (lifetime, ARI, renew_before_expiry) make due."""
    args = ["renew", "--no-random-sleep-on-renew"]
    if force:
        args.append("--force-renewal")
    return [*args, *common_args(settings, dry_run=dry_run)]


def redact(argv: list[str]) -> list[str]:
    """The command line as it may be logged: secret values replaced."""
    return ["***" if i > 0 and argv[i - 1] in _SECRET_FLAGS else arg for i, arg in enumerate(argv)]


@dataclass(frozen=True, slots=True)
class CertbotResult:
    returncode: int
    timed_out: bool
    tail: tuple[str, ...] = field(default=())
    stopped: bool = False  # ended (or never started) because the sidecar was asked to stop

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.stopped

    def summary(self) -> str:
        """certbot's most telling output lines, for one error line."""
        lines = [ln.strip() for ln in self.tail if not _NOISE.match(ln)]
        errors = [ln for ln in lines if "error" in ln.lower()]
        return " | ".join(dict.fromkeys(errors[-2:] or lines[-2:]))


def certbot_executable() -> str:
    """certbot from the same environment as the sidecar."""
    return str(Path(sys.executable).parent / "certbot")


class CertbotRunner:
    """Runs certbot to its end, its timeout, or the process's stop request (SIGTERM/SIGINT):
    then certbot gets SIGTERM (it closes its challenge server), and SIGKILL if it lingers."""

    def __init__(
        self, env: dict[str, str], timeout: float, stop: StopRequest | None = None
    ) -> None:
        self._env = env
        self._timeout = timeout
        self._stop = stop or shutdown.REQUEST

    def run(self, args: list[str], env: Mapping[str, str] | None = None) -> CertbotResult:
        """Run certbot with `args` (and `env` added to its environment); never after a stop
        request (the result says `stopped`)."""
        if self._stop.requested:
            return CertbotResult(-1, timed_out=False, stopped=True)
        argv = [certbot_executable(), *args]
        logger.debug("running {}", " ".join(redact(argv)))
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                start_new_session=True,  # a Ctrl-C on the terminal reaches the sidecar only
                env={**os.environ, **self._env, **(env or {}), "PATH": path, CHILD_ENV: "1"},
            )
        except OSError as error:
            raise CertbotError(f"cannot run certbot: {error}") from None
        tail: deque[str] = deque(maxlen=20)
        reader = threading.Thread(target=_pump, args=(proc, tail), daemon=True)
        reader.start()
        ended = self._wait(proc)
        reader.join(5)
        return CertbotResult(
            proc.returncode, timed_out=ended == "timeout", tail=tuple(tail), stopped=ended == "stop"
        )

    def _wait(self, proc: subprocess.Popen[str]) -> str | None:
        """Until certbot exits (None), or its timeout or a stop request ends it."""
        deadline = time.monotonic() + self._timeout
        while proc.poll() is None:
            if self._stop.wait(min(WAIT_STEP, max(0.0, deadline - time.monotonic()))):
                logger.info("{} received: stopping certbot", self._stop.name)
                _end(proc, STOP_GRACE)
                return "stop"
            if time.monotonic() >= deadline:
                logger.error(
                    "certbot ran longer than CERTBOT_TIMEOUT ({:.0f}s); stopping it", self._timeout
                )
                _end(proc, KILL_GRACE)
                return "timeout"
        return None


def _end(proc: subprocess.Popen[str], grace: float) -> None:
    """SIGTERM certbot's process group; SIGKILL it after `grace` seconds."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def _signal_group(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _pump(proc: subprocess.Popen[str], tail: deque[str]) -> None:
    assert proc.stdout is not None  # noqa: S101
    for raw in proc.stdout:
        line = raw.rstrip()
        if not line or relog(line):
            continue
        tail.append(line)
        if _HOOK_OUTPUT.match(line) or _SEPARATOR.match(line):
            logger.debug("certbot: {}", line)
        else:
            logger.info("certbot: {}", line)
