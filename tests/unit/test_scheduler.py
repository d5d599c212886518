from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from sidecar import shutdown
from sidecar.certbot.failures import Failure
from sidecar.cycle.problem import Problem
from sidecar.cycle.result import CycleResult
from sidecar.errors import LockedError
from sidecar.scheduler import (
    ARI_FLOOR,
    DUE_SLACK,
    RESTORE_RETRY,
    RETRY_BASE,
    Scheduler,
    crashed,
    delay_after,
    next_delay,
    next_wake,
)
from sidecar.volume.journal import Ari, Journal, load
from tests.unit.helpers import T0, logged, make_settings, noting, save_journal

if TYPE_CHECKING:
    from sidecar.loader import Config

HOUR = 3600.0
INTERVAL = 12 * HOUR
JITTER = HOUR


def rng(seed: int = 7) -> random.Random:
    return random.Random(seed)


def test_after_success_the_next_cycle_is_the_interval_plus_jitter():
    """CHECK_INTERVAL plus a random share of CHECK_JITTER."""
    delays = [next_delay(INTERVAL, JITTER, 0, rng(seed)) for seed in range(200)]
    assert all(INTERVAL <= d <= INTERVAL + JITTER for d in delays)
    assert max(delays) - min(delays) > JITTER / 2


def test_delay_is_reproducible_with_a_seeded_random():
    """The same seed gives the same delay (the rng is the only source of chance)."""
    assert next_delay(INTERVAL, JITTER, 0, rng()) == next_delay(INTERVAL, JITTER, 0, rng())
    assert next_delay(INTERVAL, JITTER, 3, rng()) == next_delay(INTERVAL, JITTER, 3, rng())


def test_without_jitter_the_interval_is_exact():
    """CHECK_JITTER=0 schedules exactly every CHECK_INTERVAL."""
    assert next_delay(INTERVAL, 0.0, 0, rng()) == INTERVAL


def test_negative_failure_count_counts_as_success():
    """Only a positive count backs off."""
    assert next_delay(INTERVAL, 0.0, -1, rng()) == INTERVAL


@pytest.mark.parametrize(
    ("failures", "low", "high"),
    [(1, 300.0, 600.0), (2, 600.0, 1200.0), (3, 1200.0, 2400.0), (4, 2400.0, 4800.0)],
)
def test_failures_back_off_exponentially_from_ten_minutes(failures, low, high):
    """10 min, 20, 40, 80 ... each drawn from the upper half of its window."""
    for seed in range(50):
        assert low <= next_delay(INTERVAL, JITTER, failures, rng(seed)) <= high


def test_backoff_never_exceeds_the_interval():
    """However many failures, a retry comes at the latest after CHECK_INTERVAL."""
    for failures in (7, 8, 20, 60):
        for seed in range(20):
            assert next_delay(INTERVAL, JITTER, failures, rng(seed)) <= INTERVAL
    for seed in range(20):
        assert next_delay(INTERVAL, JITTER, 8, rng(seed)) >= INTERVAL / 2


def test_retry_base_is_configurable():
    """A shorter base (used when CHECK_INTERVAL is short) scales the whole ladder."""
    assert 30.0 <= next_delay(INTERVAL, JITTER, 1, rng(), retry_base=60.0) <= 60.0
    assert 60.0 <= next_delay(INTERVAL, JITTER, 2, rng(), retry_base=60.0) <= 120.0


def test_default_retry_base_is_ten_minutes():
    """RETRY_BASE keeps retries far from the CA's failed-validation limits."""
    assert RETRY_BASE == 600.0


def test_backoff_survives_a_very_long_outage():
    """After thousands of failures (short CHECK_INTERVAL, long outage) the delay is still capped."""
    delay = next_delay(60.0, 0.0, 5000, rng(), retry_base=60.0)
    assert 30.0 <= delay <= 60.0


# Scheduler.run


def ok() -> CycleResult:
    return CycleResult(changed=(), problems=(), duration=0.0)


def test_stop_during_a_cycle_ends_the_loop_without_waiting(tmp_path):
    """SIGTERM while a cycle runs: the loop ends after it, nothing more is scheduled."""
    config = make_settings(tmp_path, CHECK_INTERVAL="1d")
    runs: list[int] = []

    def cycle() -> CycleResult:
        runs.append(1)
        scheduler.stop()
        return ok()

    scheduler = Scheduler(
        config.schedule, config.state_dir, cycle, rng(), stopping=shutdown.REQUEST
    )
    scheduler.run()
    assert len(runs) == 1
    assert load(config.state_dir).next_check_at is None


def test_stop_before_run_runs_no_cycle(tmp_path):
    """A stop that arrives before the loop starts is honoured."""
    config = make_settings(tmp_path)
    scheduler = Scheduler(
        config.schedule,
        config.state_dir,
        lambda: pytest.fail("cycle ran"),
        rng(),
        stopping=shutdown.REQUEST,
    )
    scheduler.stop()
    scheduler.run()


def test_next_check_time_is_saved_after_each_cycle(tmp_path):
    """`status` can show when the next check comes; cycles repeat after the delay."""
    config = make_settings(tmp_path, CHECK_INTERVAL="0.02s", CHECK_JITTER="0")
    runs: list[datetime] = []

    def cycle() -> CycleResult:
        runs.append(datetime.now(UTC))
        if len(runs) == 3:
            scheduler.stop()
        return ok()

    scheduler = Scheduler(
        config.schedule, config.state_dir, cycle, rng(), stopping=shutdown.REQUEST
    )
    scheduler.run()
    assert len(runs) == 3
    saved = load(config.state_dir).next_check_at
    assert saved is not None
    assert runs[1] <= saved <= runs[2] + timedelta(seconds=1)
    assert runs[2] - runs[0] >= timedelta(seconds=0.04)


def test_next_check_keeps_the_rest_of_the_state(tmp_path):
    """Saving the schedule does not overwrite what the cycle recorded."""
    config = make_settings(tmp_path, CHECK_INTERVAL="0.01s", CHECK_JITTER="0")
    save_journal(config.state_dir, Journal(last_result="ok", renewed=("example.com",)))
    calls: list[int] = []

    def cycle() -> CycleResult:
        calls.append(1)
        if len(calls) == 2:
            scheduler.stop()
        return ok()

    scheduler = Scheduler(
        config.schedule, config.state_dir, cycle, rng(), stopping=shutdown.REQUEST
    )
    scheduler.run()
    state = load(config.state_dir)
    assert state.last_result == "ok"
    assert state.renewed == ("example.com",)
    assert state.next_check_at is not None


def test_failures_in_the_state_file_make_the_wait_a_backoff(tmp_path):
    """After failed cycles the wait is the backoff (base capped at a short interval), no jitter."""
    config = make_settings(tmp_path, CHECK_INTERVAL="0.2s", CHECK_JITTER="5s")
    save_journal(config.state_dir, Journal(failures=1))
    ends: list[datetime] = []

    def cycle() -> CycleResult:
        if ends:
            scheduler.stop()
        ends.append(datetime.now(UTC))
        return ok()

    scheduler = Scheduler(
        config.schedule, config.state_dir, cycle, rng(), stopping=shutdown.REQUEST
    )
    scheduler.run()
    at = load(config.state_dir).next_check_at
    assert at is not None
    assert timedelta(seconds=0.1) <= at - ends[0] <= timedelta(seconds=0.25)
    assert ends[1] - ends[0] < timedelta(seconds=1)


def test_cycle_skipped_for_a_held_lock_does_not_end_the_daemon(tmp_path):
    """The lock message says the cycle is skipped; the daemon keeps its schedule."""
    config = make_settings(tmp_path, CHECK_INTERVAL="0.01s", CHECK_JITTER="0")
    calls: list[int] = []

    def cycle() -> CycleResult:
        calls.append(1)
        if len(calls) == 1:
            raise LockedError("another renewal cycle is running")
        scheduler.stop()
        return ok()

    scheduler = Scheduler(
        config.schedule, config.state_dir, cycle, rng(), stopping=shutdown.REQUEST
    )
    scheduler.run()
    assert len(calls) == 2


# delay_after: how the kind of failure changes the wait


def failed(*failures: Failure) -> CycleResult:
    problems = tuple(Problem(f.kind, None, "failed", f.permanent, f.not_before) for f in failures)
    return CycleResult(changed=(), problems=problems, duration=1.0)


def test_a_permanent_failure_waits_the_full_interval_not_the_backoff(tmp_path):
    """The CA said retrying cannot help: the next try is a normal check, not in 10 minutes."""
    config = make_settings(tmp_path, CHECK_INTERVAL="12h", CHECK_JITTER="0")
    result = failed(Failure("unauthorized", "refused", permanent=True))
    assert delay_after(result, 1, config.schedule, rng(), T0) == 12 * 3600


def test_a_rate_limit_waits_at_least_until_the_time_the_ca_named(tmp_path):
    """rateLimited with `retry after`: the backoff is stretched to that time (plus < 60 s)."""
    config = make_settings(tmp_path, CHECK_INTERVAL="12h", CHECK_JITTER="0")
    later = T0 + timedelta(hours=30)
    result = failed(Failure("rateLimited", "limit", not_before=later))
    delay = delay_after(result, 1, config.schedule, rng(), T0)
    assert 30 * 3600 <= delay <= 30 * 3600 + 60


def test_an_ordinary_failure_backs_off_from_ten_minutes(tmp_path):
    """A transient failure: the first retry comes after 5 to 10 minutes."""
    config = make_settings(tmp_path, CHECK_INTERVAL="12h", CHECK_JITTER="1h")
    delay = delay_after(failed(Failure("error", "certbot failed")), 1, config.schedule, rng(), T0)
    assert 300 <= delay <= 600


def test_a_short_interval_caps_the_backoff_base(tmp_path):
    """CHECK_INTERVAL below ten minutes: retries never wait longer than the interval."""
    config = make_settings(tmp_path, CHECK_INTERVAL="2m", CHECK_JITTER="0")
    delay = delay_after(failed(Failure("error", "x")), 5, config.schedule, rng(), T0)
    assert delay <= 120


# the loop survives, and acts between cycles


class FakeTime(shutdown.StopRequest):
    """A stop request whose waits pass on a fake monotonic clock instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def wait(self, timeout: float) -> bool:
        if not self.requested():
            self.now += max(0.0, timeout)
        return self.requested()


@pytest.fixture
def fake_time():
    request = FakeTime()
    yield request
    request.close()


def test_a_bug_in_a_cycle_is_logged_counted_as_a_failure_and_the_daemon_goes_on(
    tmp_path, fake_time
):
    """'An unexpected error occurred' with the traceback; the journal counts a failed cycle, so
    the next one comes after the backoff; then the next cycle runs."""
    config = make_settings(tmp_path, CHECK_INTERVAL="1d", CHECK_JITTER="0")
    calls: list[float] = []

    def cycle() -> CycleResult:
        calls.append(fake_time.now)
        if len(calls) == 1:
            raise KeyError("State")
        fake_time.request()
        return ok()

    with logged() as lines:
        Scheduler(
            config.schedule,
            config.state_dir,
            cycle,
            rng(),
            stopping=fake_time,
            clock=fake_time.clock,
        ).run()
    assert len(calls) == 2
    assert RETRY_BASE / 2 <= calls[1] - calls[0] <= RETRY_BASE
    state = load(config.state_dir)
    assert state.failures == 1
    assert state.last_result == "failed: An unexpected error occurred (KeyError: 'State')"
    assert any(ln.startswith("CRITICAL An unexpected error occurred") for ln in lines)
    assert any("Traceback" in ln and "KeyError: 'State'" in ln for ln in lines)


def test_a_crashed_cycle_is_a_failure_in_the_journal():
    """Pure: failures, cycles and cycle failures go up; the error is named by its type."""
    after = crashed(Journal(failures=2, cycles=5), OSError("disk"), T0)
    assert (after.failures, after.cycles, after.cycle_failures) == (3, 6, 1)
    assert after.last_cycle_at == T0
    assert after.last_result == "failed: An unexpected error occurred (OSError: disk)"


def test_a_restore_is_retried_and_a_stop_meanwhile_names_what_stays_down(tmp_path, fake_time):
    """Targets still down after the cycle: retried every few seconds; SIGTERM before they run
    is an error naming them and saying that the next start of the sidecar starts them."""
    config = make_settings(tmp_path, CHECK_INTERVAL="1d")
    tries: list[float] = []

    def restore() -> list[str]:
        tries.append(fake_time.now)
        if len(tries) == 3:
            fake_time.request()
        return ["web", "service shop_api"]

    with logged() as lines:
        Scheduler(
            config.schedule,
            config.state_dir,
            ok,
            rng(),
            restore=restore,
            stopping=fake_time,
            clock=fake_time.clock,
        ).run()
    assert [b - a for a, b in itertools.pairwise(tries)] == [RESTORE_RETRY] * 2
    assert lines[-2] == (
        "ERROR web, service shop_api still stopped by the sidecar, and SIGTERM received: not "
        "started again; the next start of the sidecar starts them\n"
    )


def test_an_early_wake_restores_and_runs_no_cycle_before_the_planned_time(tmp_path, fake_time):
    """Woken by the sleeper for a record no cycle held: what is down is started, and the cycle
    still comes at its planned time (no unplanned renewal)."""
    config = make_settings(tmp_path, CHECK_INTERVAL="1h", CHECK_JITTER="0")
    events: list[tuple[str, float]] = []

    def cycle() -> CycleResult:
        events.append(("cycle", fake_time.now))
        fake_time.request()
        return ok()

    def restore() -> list[str]:
        events.append(("restore", fake_time.now))
        return []

    planned = fake_time.now + 600
    scheduler = Scheduler(
        config.schedule,
        config.state_dir,
        cycle,
        rng(),
        restore=restore,
        stopping=fake_time,
        clock=fake_time.clock,
    )
    scheduler.run(until=planned)
    assert events[0] == ("restore", 1000.0)
    assert [e for e in events if e[0] == "cycle"] == [("cycle", planned)]
    assert load(config.state_dir).next_check_at is None  # the schedule was not touched


def cycles_after_a_wake(config: Config, fake_time: FakeTime, until: float) -> list[float]:
    """When cycles ran (on the fake clock) after the daemon woke with `until` as its plan; the
    first cycle ends the loop."""
    runs: list[float] = []

    def cycle() -> CycleResult:
        runs.append(fake_time.now)
        fake_time.request()
        return ok()

    Scheduler(
        config.schedule, config.state_dir, cycle, rng(), stopping=fake_time, clock=fake_time.clock
    ).run(until=until)
    return runs


def test_a_wake_at_the_planned_time_runs_the_cycle(tmp_path, fake_time):
    """The sleeper's time was up (within DUE_SLACK of the plan): the cycle runs at once."""
    config = make_settings(tmp_path, CHECK_INTERVAL="1h")
    assert cycles_after_a_wake(config, fake_time, fake_time.now + DUE_SLACK / 2) == [1000.0]


def test_an_early_wake_waits_at_most_one_interval(tmp_path, fake_time):
    """A planned time far off (a wrong value) is no hang: the cycle comes within an interval."""
    config = make_settings(tmp_path, CHECK_INTERVAL="1m", CHECK_JITTER="0")
    assert cycles_after_a_wake(config, fake_time, fake_time.now + 10 * 86400) == [1060.0]


def test_the_idle_process_gets_the_rest_of_the_wait_after_an_early_wake(tmp_path, fake_time):
    """With the sleeper: it is exec'd again for the time left until the planned cycle."""
    config = make_settings(tmp_path, CHECK_INTERVAL="1h")
    waits: list[float] = []

    def idle(seconds: float) -> None:
        waits.append(seconds)
        fake_time.request()  # an exec returns only on a stop

    scheduler = Scheduler(
        config.schedule,
        config.state_dir,
        lambda: pytest.fail("cycle ran"),
        rng(),
        idle=idle,
        stopping=fake_time,
        clock=fake_time.clock,
    )
    scheduler.run(until=fake_time.now + 600)
    assert waits == [600.0]


def test_the_wait_in_this_process_acts_on_a_record_no_cycle_holds(tmp_path, fake_time):
    """METRICS_PORT keeps the daemon's process: it watches as the sleeper does, and restores."""
    config = make_settings(tmp_path, CHECK_INTERVAL="1h", CHECK_JITTER="0")
    restores: list[float] = []
    looks: list[float] = []

    def unattended() -> bool:
        looks.append(fake_time.now)
        if len(looks) == 3:
            return True
        if len(looks) == 4:
            fake_time.request()
        return False

    scheduler = Scheduler(
        config.schedule,
        config.state_dir,
        ok,
        rng(),
        restore=lambda: noting(restores, fake_time.now, []),
        unattended=unattended,
        stopping=fake_time,
        clock=fake_time.clock,
    )
    scheduler.run()
    assert restores == [1000.0, looks[2]]


# next_wake: the next check follows the CA (ARI)


def window(renew_in: float, retry_in: float | None = None, *, serial: str = "c0ffee") -> Ari:
    """The CA's answer: the point drawn in its window `renew_in` seconds from T0, Retry-After
    `retry_in` seconds from T0."""
    at = T0 + timedelta(seconds=renew_in)
    retry = T0 + timedelta(seconds=retry_in) if retry_in is not None else None
    return Ari(serial, at - timedelta(hours=1), at + timedelta(hours=1), at, T0, retry)


def test_without_answers_the_wake_is_the_interval_plus_jitter():
    """No CA answer (no ARI, or it failed): CHECK_INTERVAL plus jitter, as before."""
    for seed in range(50):
        delay = next_delay(6 * HOUR, JITTER, 0, rng(seed))
        wake = next_wake(delay, "CHECK_INTERVAL", {}, T0)
        assert wake.delay == delay
        assert 6 * HOUR <= wake.delay <= 7 * HOUR
        assert wake.reason == "CHECK_INTERVAL"


def test_a_window_point_before_the_interval_wakes_the_daemon_then():
    """The point drawn in a certificate's window comes first: the check is then, named for it."""
    wake = next_wake(6 * HOUR, "CHECK_INTERVAL", {"a.example": window(2 * HOUR, 7 * HOUR)}, T0)
    assert (wake.delay, wake.reason) == (2 * HOUR, "ARI window of a.example")


def test_the_ca_retry_after_wakes_the_daemon_to_ask_again():
    """Retry-After before the interval and the window: the CA is asked again then."""
    answers = {"a.example": window(30 * 86400, 3 * HOUR), "b.example": window(40 * 86400, 4 * HOUR)}
    wake = next_wake(6 * HOUR, "CHECK_INTERVAL", answers, T0)
    assert (wake.delay, wake.reason) == (3 * HOUR, "ARI Retry-After of a.example")


def test_the_earliest_of_several_certificates_wins():
    """Each lineage's times count; the earliest ahead is the next check."""
    answers = {"a.example": window(5 * HOUR, 6 * HOUR), "b.example": window(HOUR, 6 * HOUR)}
    assert next_wake(12 * HOUR, "CHECK_INTERVAL", answers, T0).reason == "ARI window of b.example"


def test_times_later_than_the_interval_leave_it():
    """A window a month ahead and the usual 6-hour Retry-After: the interval (with its jitter)
    stays the next check."""
    answers = {"a.example": window(30 * 86400, 6 * HOUR + 1)}
    assert next_wake(6 * HOUR, "CHECK_INTERVAL", answers, T0).reason == "CHECK_INTERVAL"


def test_a_past_window_does_not_wake_the_daemon_again():
    """A point already past was acted on by the cycle that just ran (renewed, or its failure
    backs off): no loop of immediate checks."""
    answers = {"a.example": window(-HOUR, -60)}
    assert next_wake(600.0, "backoff", answers, T0) == next_wake(600.0, "backoff", {}, T0)


def test_an_ari_time_seconds_away_is_taken_at_the_floor():
    """A Retry-After of a second is no busy loop: at least ARI_FLOOR."""
    wake = next_wake(6 * HOUR, "CHECK_INTERVAL", {"a.example": window(86400, 1)}, T0)
    assert wake.delay == ARI_FLOOR


def test_the_daemon_records_when_and_why_it_checks_next(tmp_path):
    """The journal (status) gets the time and its reason: the CA's window here."""
    config = make_settings(tmp_path, CHECK_INTERVAL="6h", CHECK_JITTER="0")
    soon = datetime.now(UTC) + timedelta(hours=2)
    ari = Ari("c0ffee", soon - timedelta(hours=1), soon + timedelta(hours=1), soon, soon)
    save_journal(config.state_dir, Journal(ari={"a.example": ari}))
    scheduler = Scheduler(config.schedule, config.state_dir, ok, rng(), stopping=shutdown.REQUEST)
    delay = scheduler._schedule(ok())
    assert 2 * HOUR - 60 < delay <= 2 * HOUR
    state = load(config.state_dir)
    assert state.next_check_by == "ARI window of a.example"
    assert state.next_check_at is not None


def test_a_rate_limit_is_never_cut_short_by_an_ari_time(tmp_path):
    """The CA named a time (rateLimited): an earlier window point does not wake the daemon."""
    config = make_settings(tmp_path, CHECK_INTERVAL="6h", CHECK_JITTER="0")
    soon = datetime.now(UTC) + timedelta(minutes=30)
    ari = Ari("c0ffee", soon - timedelta(hours=1), soon + timedelta(hours=1), soon, soon)
    save_journal(config.state_dir, Journal(failures=1, ari={"a.example": ari}))
    later = datetime.now(UTC) + timedelta(hours=3)
    scheduler = Scheduler(config.schedule, config.state_dir, ok, rng(), stopping=shutdown.REQUEST)
    delay = scheduler._schedule(failed(Failure("rateLimited", "limit", not_before=later)))
    assert delay >= 3 * HOUR - 60
    assert load(config.state_dir).next_check_by == "the retry time the CA named"
