"""certbot as a subprocess (the only subprocess user): run to its end, its timeout or the stop
request, its output logged line by line."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from sidecar.certbot.argv import redact
from sidecar.errors import CertbotError
from sidecar.logs import CHILD_ENV, relog

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from sidecar.certbot.argv import Run
    from sidecar.shutdown import StopRequest

KILL_GRACE = 15.0  # after CERTBOT_TIMEOUT
STOP_GRACE = 4.0  # after a stop request: the whole exit fits in Docker's 10 s grace
WAIT_STEP = 0.05
# Never in certbot's environment (its hooks inherit it): only the sidecar itself uses them.
SECRET_ENV = frozenset(
    {"EAB_KID", "EAB_HMAC_KEY", "EAB_HMAC_KEY_FILE", "WEBHOOK_URL", "ALERT_URLS"}
)
_SEPARATOR = re.compile(r"^[- ]+$")
_NOISE = re.compile(
    r"^(Saving debug log|Ask for help|[- ]+$|\d+ renew failure|All renewals failed|  /)"
)
_RECOVERY = "Encountered exception during recovery"
_CHALLENGES_FAILED = "Some challenges have failed"
_HOOK_OUTPUT = re.compile(r"^Hook '[a-z-]+' (ran with error output|reported output):")


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
        # a hook's output header is no error itself (its lines follow, when there are any)
        errors = [ln for ln in lines if "error" in ln.lower() and not _HOOK_OUTPUT.match(ln)]
        # a cleanup's failure (certbot's "recovery") follows from the first one: named only alone
        errors = [ln for ln in errors if not ln.startswith(_RECOVERY)] or errors
        picked = errors[-2:] or lines[-2:]
        if any(_CHALLENGES_FAILED in ln for ln in picked):
            # why: the CA's own words, e.g. the address it dialled and what it got there
            picked += [ln for ln in lines if ln.startswith("Detail:")]
        return " | ".join(dict.fromkeys(picked))


def certbot_executable() -> str:
    """certbot from the same environment as the sidecar."""
    return str(Path(sys.executable).parent / "certbot")


class CertbotRunner:
    """Runs certbot to its end, its timeout, or the stop request `stop` (SIGTERM/SIGINT):
    then certbot gets SIGTERM (it closes its challenge server), and SIGKILL if it lingers."""

    def __init__(self, timeout: float, stop: StopRequest) -> None:
        self._timeout = timeout
        self._stop = stop

    def run(self, run: Run) -> CertbotResult:
        """Run certbot as `run` says (its command line rendered here, its environment added);
        never after a stop request (the result says `stopped`). Its secrets (certbot options)
        reach certbot in a config file only root can read, removed afterwards: never on its
        command line."""
        if self._stop.requested():
            return CertbotResult(-1, timed_out=False, stopped=True)
        with _config_file(run.secrets) as extra:
            return self._run([*run.argv(), *extra], run.env)

    def _run(self, args: list[str], env: Mapping[str, str] | None) -> CertbotResult:
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
                env={**_inherited(), **(env or {}), "PATH": path, CHILD_ENV: "1"},
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


def _inherited() -> dict[str, str]:
    """The sidecar's environment without its secrets: certbot and its hooks never need them."""
    return {k: v for k, v in os.environ.items() if k.upper() not in SECRET_ENV}


@contextlib.contextmanager
def _config_file(options: Mapping[str, str]) -> Iterator[list[str]]:
    """`--config FILE` holding `options`, in a directory only this user can enter."""
    if not options:
        yield []
        return
    folder = Path(tempfile.mkdtemp(prefix="sidecar-certbot-"))  # mode 0700
    try:
        path = folder / "cli.ini"
        path.touch(mode=0o600)
        path.write_text("".join(f"{k} = {v}\n" for k, v in options.items()), encoding="utf-8")
        yield ["--config", str(path)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
