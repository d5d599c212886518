"""The daemon's idle state: a bare Python process that sleeps, then becomes the sidecar again.

Between cycles `sidecar run` execs this module (same PID, so `docker stop` still reaches it): it
imports nothing beyond the standard library, so the idle container holds about 8 MB instead of
the 50 MB that pydantic, cryptography and the Docker SDK take once loaded. SIGTERM or SIGINT end
it at once with exit code 0, also one that arrived while the daemon was exec'ing into it; when the
time is up it execs the command given after `--`, holding the signals back across that exec.

    python -m sidecar.sleeper SECONDS -- COMMAND...
"""

from __future__ import annotations

import sys

from sidecar import shutdown


def main(argv: list[str]) -> int:
    shutdown.install()  # first: a signal pending from before the exec is handled here
    seconds, command = _parse(argv)
    if command is None:
        sys.stderr.write("usage: python -m sidecar.sleeper SECONDS -- COMMAND...\n")
        return 2
    if not shutdown.REQUEST.wait(seconds):
        shutdown.become(command)  # returns only when a stop came meanwhile
    return 0


def _parse(argv: list[str]) -> tuple[float, list[str] | None]:
    if len(argv) < 3 or argv[1] != "--":  # noqa: PLR2004
        return 0.0, None
    try:
        return float(argv[0]), argv[2:]
    except ValueError:
        return 0.0, None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
