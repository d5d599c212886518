"""The daemon's idle state: a bare Python process that sleeps, then becomes the sidecar again.

Between cycles `sidecar run` execs this module (same PID, so `docker stop` still reaches it): it
imports nothing beyond the standard library, so the idle container holds about 8 MB instead of
the 50 MB that pydantic, cryptography and the Docker SDK take once loaded. SIGTERM, SIGINT or
SIGHUP end it at once with exit code 0, also one that arrived while the daemon was exec'ing into
it; when the time is up it execs the command given after `--`, holding the signals back across
that exec.

With `--watch STATE_DIR` it also looks, every `watch.WATCH_EVERY` seconds, for a record of stopped
targets that no cycle holds (a `sidecar renew` run by hand that was killed between its stop and
its start of the app): one stat, and only when the record is there a probe of the cycle's lock.
Then it execs the command at once; the command is the daemon resuming with its planned wake
time (`run --resume --until T`), so it starts the app and sleeps on, without an early cycle.

    python -m sidecar.sleeper SECONDS [--watch STATE_DIR] -- COMMAND...
"""

from __future__ import annotations

import sys
import time

from sidecar import shutdown
from sidecar.volume import watch

USAGE = "usage: python -m sidecar.sleeper SECONDS [--watch STATE_DIR] -- COMMAND...\n"


def main(argv: list[str]) -> int:
    shutdown.install()  # first: a signal pending from before the exec is handled here
    parsed = _parse(argv)
    if parsed is None:
        sys.stderr.write(USAGE)
        return 2
    seconds, state_dir, command = parsed
    if not _sleep(seconds, state_dir):
        shutdown.become(command)  # returns only when a stop came meanwhile
    return 0


def _sleep(seconds: float, state_dir: str | None) -> bool:
    """Wait `seconds`, or less when `state_dir` has a record no cycle holds; True on a stop."""
    if state_dir is None:
        return shutdown.REQUEST.wait(seconds)
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if shutdown.REQUEST.wait(min(watch.WATCH_EVERY, left)):
            return True
        if watch.unattended(state_dir):
            return False
    return shutdown.REQUEST.requested()


def _parse(argv: list[str]) -> tuple[float, str | None, list[str]] | None:
    """SECONDS, STATE_DIR (None without --watch) and COMMAND; None when the line is wrong."""
    state_dir = None
    if len(argv) > 2 and argv[1] == "--watch":  # noqa: PLR2004
        state_dir, argv = argv[2], [argv[0], *argv[3:]]
    if len(argv) < 3 or argv[1] != "--":  # noqa: PLR2004
        return None
    try:
        return float(argv[0]), state_dir, argv[2:]
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
