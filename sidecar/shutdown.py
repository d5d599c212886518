"""One process-wide stop request: SIGTERM, SIGINT or SIGHUP, caught from the first line of the
process. SIGHUP (a closed terminal, a `docker exec -it` session that went away) is a stop like
the others: its default action would kill a `sidecar renew` between its stop and its start of
the app.

`REQUEST` is the process's one; only the entry points read it (`__main__`, `cli`, `sleeper`,
and `certbot.inside` in certbot's process) and hand it to whatever waits (the runner, the
engine's and swarm's waits, the cycle, the scheduler).

The handler only records the signal and writes one byte to a pipe: it takes no lock, since it may
run between any two bytecodes, also while the interrupted code holds one. Code that waits selects
on that pipe (`wait`), so it wakes at once. Before the process execs another program (the idle
sleeper, or the daemon again after it), `become` holds the signals back: a blocked signal stays
pending across exec, even for PID 1, and the next program's `install` receives it.

Standard library only: the sleeper imports it too.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


class StopRequest:
    """Set once by a signal (or `request`); `wait` returns as soon as it is set."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()  # not inherited by children (O_CLOEXEC)
        os.set_blocking(self._write, False)
        self.signum: int | None = None

    def request(self, signum: int = signal.SIGTERM) -> None:
        """Record the request and wake every waiter; safe in a signal handler (no lock)."""
        if self.signum is None:
            self.signum = signum
            with contextlib.suppress(OSError):
                os.write(self._write, b"\0")

    def requested(self) -> bool:
        """A method, not a property: a stop may come between two reads (type checkers must not
        assume the second one gives what the first gave)."""
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "a stop request"

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds; True (at once) when a stop is requested."""
        if self.requested():
            return True
        poll = select.poll()  # not select(): it fails for descriptors past 1023
        poll.register(self._read, select.POLLIN)
        return bool(poll.poll(max(0.0, timeout) * 1000)) or self.requested()

    def close(self) -> None:
        """Release the pipe (a request made for a test; the process-wide one lives as long)."""
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


REQUEST = StopRequest()


def install() -> None:
    """Catch the stop signals from now on, then let through any that is pending."""
    for sig in SIGNALS:
        signal.signal(sig, _on_signal)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    REQUEST.request(signum)


def become(argv: Sequence[str]) -> None:
    """Exec `argv` in this process with the stop signals held back until it installs its own
    handler. Returns, without exec, when a stop is already requested; raises when exec fails."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        if not REQUEST.requested():
            os.execv(argv[0], list(argv))  # noqa: S606 (the sidecar's own interpreter and module)
    finally:  # reached only without exec: a stop came first, or exec failed
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
