"""The process-wide stop request: no signal lost, no lock taken, across exec too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from sidecar import shutdown


@pytest.fixture
def handlers():
    """install() replaces the SIGTERM/SIGINT handlers: put the test runner's back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in shutdown.SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_wait_returns_at_once_when_a_stop_is_requested_from_another_thread():
    """A waiter wakes as soon as the request is set, not at the end of its timeout."""
    request = shutdown.StopRequest()
    threading.Timer(0.1, request.request).start()
    began = time.monotonic()
    assert request.wait(30)
    assert time.monotonic() - began < 30, "woken before its timeout"
    assert request.requested()
    request.close()


def test_wait_times_out_without_a_request():
    """No request: wait sleeps its time and says False."""
    request = shutdown.StopRequest()
    assert not request.wait(0.05)
    assert not request.requested()


def test_the_first_signal_is_the_one_remembered():
    """A second signal (Ctrl-C after SIGTERM) does not change what was asked."""
    request = shutdown.StopRequest()
    request.request(signal.SIGINT)
    request.request(signal.SIGTERM)
    assert request.signum == signal.SIGINT
    assert request.name == "SIGINT"


def test_sigterm_and_sigint_set_the_process_wide_request(handlers):
    """After install(), both signals only record the request (no exception, no exit)."""
    shutdown.install()
    os.kill(os.getpid(), signal.SIGINT)
    assert shutdown.REQUEST.wait(5)
    assert shutdown.REQUEST.name == "SIGINT"


def test_sighup_is_a_stop_like_sigterm(handlers):
    """A hangup (the terminal of a `sidecar renew` by hand closed) asks for a stop, no kill."""
    shutdown.install()
    os.kill(os.getpid(), signal.SIGHUP)
    assert shutdown.REQUEST.wait(5)
    assert shutdown.REQUEST.name == "SIGHUP"


def test_the_handler_takes_no_lock_so_a_signal_inside_a_locked_block_does_not_deadlock(handlers):
    """A signal that lands while the main thread holds a lock is recorded, and the code goes on."""
    shutdown.install()
    lock = threading.Lock()
    with lock:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs here, between bytecodes, with the lock held
    assert shutdown.REQUEST.requested()


def test_a_signal_held_back_across_exec_reaches_the_next_program():
    """SIGTERM arriving while the process execs the sleeper ends the sleeper at once, exit 0."""
    result = python(
        """
        import os, signal, sys
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        os.kill(os.getpid(), signal.SIGTERM)  # pending: as if docker stop came during the exec
        sleeper = ["-m", "sidecar.sleeper", "60", "--", "/bin/echo", "ran"]
        os.execv(sys.executable, [sys.executable, *sleeper])
        """
    )
    assert result.returncode == 0, result.stderr
    assert "ran" not in result.stdout


def test_become_holds_the_signals_back_until_the_next_program_installs_its_handler():
    """become() execs with SIGTERM blocked: the new program sees it pending, not dropped."""
    result = python(
        """
        import os, signal, sys, threading
        from sidecar import shutdown
        shutdown.install()
        check = "import signal as s; print(s.SIGTERM in s.pthread_sigmask(s.SIG_BLOCK, []))"
        shutdown.become([sys.executable, "-c", check])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_become_does_not_exec_once_a_stop_is_requested():
    """A stop that came first wins: no exec, and the signals are let through again."""
    result = python(
        """
        import signal, sys
        from sidecar import shutdown
        shutdown.install()
        shutdown.REQUEST.request(signal.SIGTERM)
        shutdown.become(["/bin/echo", "exec'd"])
        print("stayed", signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, []))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stayed False"


def test_the_entry_point_catches_sigterm_before_the_heavy_imports():
    """`python -m sidecar` installs the handler first: a SIGTERM during startup is a clean stop."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DOMAINS": "", "PATH": os.environ.get("PATH", "")},
    )
    time.sleep(0.15)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, 2), err  # stopped, or the config error: never killed
    assert proc.returncode != -signal.SIGTERM


def test_wait_works_with_descriptors_past_1023():
    """A process with many open files (connections, logs): the wait still wakes on a request."""
    held = []
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            held.append(fd)
            if fd > 1100:
                break
        request = shutdown.StopRequest()
        assert not request.wait(0.01)
        request.request()
        assert request.wait(5)
        request.close()
    finally:
        for fd in held:
            os.close(fd)
