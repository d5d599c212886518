"""The daemon's idle state: a bare Python process that sleeps, then becomes the sidecar again.

Between cycles `sidecar run` execs this module (same PID, so `docker stop` still reaches it): it
imports nothing beyond the standard library, so the idle container holds about 8 MB instead of
the 50 MB that pydantic, cryptography and the Docker SDK take once loaded. SIGTERM or SIGINT end
it at once with exit code 0; when the time is up it execs the command given after `--`.

    python -m sidecar.sleeper SECONDS -- COMMAND...
"""

from __future__ import annotations

import os
import signal
import sys
import time


def main(argv: list[str]) -> int:
    seconds, sep, *command = argv
    if sep != "--" or not command:
        sys.stderr.write("usage: python -m sidecar.sleeper SECONDS -- COMMAND...\n")
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    time.sleep(max(0.0, float(seconds)))
    os.execv(command[0], command)  # noqa: S606 (the sidecar's own command line)
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
