from __future__ import annotations

import dataclasses
import errno
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sidecar.errors import DockerError, LockedError, NotReadyError
from sidecar.targets import container as container_kind
from sidecar.targets import outage
from sidecar.targets.container import STOP_MARGIN, StoppedContainer
from sidecar.targets.outage import (
    RECORD,
    cycle_lock,
    read_record,
    recover,
    restore,
    restore_held,
    settle,
    stop_targets,
)
from sidecar.targets.service import StoppedService
from sidecar.volume.files import exclusive_lock, read_json, write_json
from tests.unit.helpers import T0, FakeControl, container, logged, service

if TYPE_CHECKING:
    from sidecar.targets.base import Target

STOPPED_AT = T0 + timedelta(days=30)


@pytest.fixture
def state_dir(tmp_path):
    return tmp_path / "sidecar"


def entry(name: str, stopped_at: datetime = STOPPED_AT) -> StoppedContainer:
    c = container(name)
    return StoppedContainer(c.id, c.name, stopped_at)


def write_record(state_dir, *entries: StoppedContainer) -> None:
    write_json(
        state_dir / RECORD,
        {
            "reason": "test",
            "containers": [
                {
                    "id": e.id,
                    "name": e.name,
                    "stopped_at": e.stopped_at.isoformat(),
                    "stop_timeout": e.stop_timeout,
                }
                for e in entries
            ],
        },
    )


# should_restore


def test_container_we_stopped_and_still_down_is_restored():
    """Stopped, and not started since our stop: ours to start."""
    assert entry("web").should_restore(container("web", running=False, started_at=T0))


def test_container_that_no_longer_exists_is_not_restored():
    """Removed meanwhile (e.g. `compose down`): nothing to start."""
    assert not entry("web").should_restore(None)


def test_running_container_is_not_restored():
    """Already up again (post-hook, restart policy, an operator): leave it."""
    assert not entry("web").should_restore(container("web", running=True, started_at=T0))


def test_container_started_and_stopped_by_someone_else_is_left_stopped():
    """Started after our stop and stopped again: somebody wants it down."""
    later = STOPPED_AT + timedelta(minutes=1)
    assert not entry("web").should_restore(container("web", running=False, started_at=later))


# stop_targets


def test_running_targets_are_recorded_then_stopped(state_dir):
    """The record names every container before the first stop call is made."""
    control = FakeControl(container("web"), container("api"))
    seen_at_stop: list[set[str]] = []
    control.observe = lambda _op, _target: seen_at_stop.append(
        {e.name for e in read_record(state_dir)}
    )
    before = datetime.now(UTC)
    assert stop_targets(state_dir, control, "the HTTP-01 challenge of a.example") == ["api", "web"]
    assert control.names("stop") == ["api", "web"]
    assert seen_at_stop == [{"api", "web"}, {"api", "web"}]
    record = read_record(state_dir)
    assert {e.name for e in record} == {"api", "web"}
    assert all(before <= e.stopped_at <= datetime.now(UTC) for e in record)
    assert read_json(state_dir / RECORD)["reason"] == "the HTTP-01 challenge of a.example"
    assert not control.get("web").running


def test_stopped_targets_are_neither_stopped_nor_recorded(state_dir):
    """A container already down (by its owner) is not ours to start later."""
    control = FakeControl(container("web"), container("worker", running=False))
    assert stop_targets(state_dir, control, "test") == ["web"]
    assert control.names("stop") == ["web"]
    assert [e.name for e in read_record(state_dir)] == ["web"]


def test_nothing_running_means_no_record_and_no_stop(state_dir):
    """With nothing to stop, no record is written."""
    control = FakeControl(container("web", running=False))
    assert stop_targets(state_dir, control, "test") == []
    assert control.calls == []
    assert not (state_dir / RECORD).exists()


def test_second_stop_adds_to_the_record_and_keeps_earlier_entries(state_dir):
    """A new container is appended; a recorded one keeps its original stop time."""
    write_record(state_dir, entry("web"))
    control = FakeControl(container("web", running=False), container("api"))
    assert stop_targets(state_dir, control, "test") == ["api"]
    record = {e.name: e for e in read_record(state_dir)}
    assert record["web"].stopped_at == STOPPED_AT
    assert set(record) == {"api", "web"}


def test_failed_stop_keeps_the_record(state_dir):
    """A Docker error while stopping is logged; the record still covers the container."""
    control = FakeControl(container("web"), container("api"))
    control.fail.add(("stop", "web"))
    assert stop_targets(state_dir, control, "test") == ["api", "web"]
    assert {e.name for e in read_record(state_dir)} == {"api", "web"}


def test_record_times_are_stored_as_utc_iso_strings(state_dir):
    """The record is plain JSON another process (the post-hook) can read."""
    stop_targets(state_dir, FakeControl(container("web")), "test")
    (item,) = read_json(state_dir / RECORD)["targets"]
    assert datetime.fromisoformat(item["stopped_at"]).utcoffset() == timedelta(0)
    assert item["name"] == "web"
    assert item["id"] == container("web").id


# restore


def test_restore_without_a_record_does_nothing(state_dir):
    """Nothing was stopped: no Docker calls at all."""
    control = FakeControl(container("web", running=False))
    assert restore(state_dir, control) == []
    assert control.calls == []


def test_recorded_containers_are_started_and_the_record_cleared(state_dir):
    """The normal post-hook path: start what we stopped, forget the record."""
    write_record(state_dir, entry("web"), entry("api"))
    control = FakeControl(container("web", running=False), container("api", running=False))
    assert sorted(restore(state_dir, control)) == ["api", "web"]
    assert control.names("start") == ["api", "web"]
    assert control.get("web").running
    assert not (state_dir / RECORD).exists()


def test_restore_after_stop_brings_everything_back(state_dir):
    """stop_targets then restore is a round trip to the containers' former state."""
    control = FakeControl(container("web"), container("api"), container("worker", running=False))
    stop_targets(state_dir, control, "test")
    assert sorted(restore(state_dir, control)) == ["api", "web"]
    assert [c.running for c in control.targets()] == [True, True, False]
    assert not (state_dir / RECORD).exists()


def test_restore_leaves_alone_what_someone_else_handled(state_dir):
    """Gone, running again, or restarted-and-stopped by others: none of them is started."""
    later = STOPPED_AT + timedelta(minutes=5)
    write_record(state_dir, entry("gone"), entry("up"), entry("bounced"), entry("web"))
    control = FakeControl(
        container("up", running=True, started_at=later),
        container("bounced", running=False, started_at=later),
        container("web", running=False),
    )
    assert restore(state_dir, control) == ["web"]
    assert control.calls == [("start", "web")]
    assert not (state_dir / RECORD).exists()


def test_failed_start_keeps_the_record_for_the_next_attempt(state_dir):
    """If a container cannot be started, the record stays so a later restore retries."""
    write_record(state_dir, entry("web"), entry("api"))
    control = FakeControl(container("web", running=False), container("api", running=False))
    control.fail.add(("start", "web"))
    assert sorted(restore(state_dir, control)) == ["api", "web"]
    assert control.get("api").running
    assert (state_dir / RECORD).exists()
    control.fail.clear()
    assert restore(state_dir, control) == ["web"]
    assert not (state_dir / RECORD).exists()


def test_record_is_read_back_with_aware_times(state_dir):
    """read_record returns what was written, as Stopped entries."""
    write_record(state_dir, entry("web"), entry("api", STOPPED_AT + timedelta(seconds=1)))
    assert read_record(state_dir) == [
        entry("web"),
        entry("api", STOPPED_AT + timedelta(seconds=1)),
    ]


def test_missing_record_reads_as_empty(state_dir):
    """No file, no entries."""
    assert read_record(state_dir) == []


def test_running_target_left_in_a_kept_record_is_stopped_again(state_dir):
    """After a partly failed restore, the next challenge still stops every running target."""
    control = FakeControl(container("web"), container("api"))
    stop_targets(state_dir, control, "first run")
    control.fail.add(("start", "api"))
    restore(state_dir, control)
    assert control.get("web").running
    assert (state_dir / RECORD).exists()
    assert stop_targets(state_dir, control, "second run") == ["web"]
    assert not control.get("web").running
    control.fail.clear()
    restore(state_dir, control)
    assert control.get("web").running


# a stop still in progress


def test_a_stop_still_within_its_timeout_is_in_progress():
    """Running since before our stop, the stop timeout not over: dockerd may still kill it."""
    e = StoppedContainer(container("web").id, "web", STOPPED_AT, stop_timeout=60)
    web = container("web", started_at=STOPPED_AT - timedelta(hours=1))
    assert e.stop_in_progress(web, STOPPED_AT + timedelta(seconds=30))
    assert not e.stop_in_progress(web, STOPPED_AT + timedelta(seconds=60 + STOP_MARGIN + 1))


def test_a_container_started_after_our_stop_is_no_stop_in_progress():
    """Someone (or we) started it since: nothing of ours is pending."""
    e = StoppedContainer(container("web").id, "web", STOPPED_AT, stop_timeout=60)
    web = container("web", started_at=STOPPED_AT + timedelta(seconds=1))
    assert not e.stop_in_progress(web, STOPPED_AT + timedelta(seconds=5))
    assert not e.stop_in_progress(None, STOPPED_AT)


def test_restore_waits_for_a_stop_in_progress_then_starts_the_app(state_dir, monkeypatch):
    """certbot killed while it stopped an app with a long grace: the record is kept until the
    app has been seen stopped, then it is started (not left to be killed after the record)."""
    monkeypatch.setattr(container_kind, "POLL", 0.01)
    now = datetime.now(UTC)
    control = FakeControl(container("web", started_at=now - timedelta(hours=1)))
    write_record(state_dir, StoppedContainer(control.get("web").id, "web", now, stop_timeout=30))
    polls: list[int] = []

    def inspect(_kind: type, ident: str) -> Target | None:
        polls.append(1)
        if len(polls) == 3:  # dockerd's kill lands while we wait
            control.by_someone_else("web", running=False, finished_at=datetime.now(UTC))
        return control.containers.get(ident)

    monkeypatch.setattr(control, "inspect", inspect)

    assert restore(state_dir, control) == ["web"]
    assert control.calls == [("start", "web")]
    assert read_record(state_dir) == []


def test_the_stop_timeout_is_kept_in_the_record(state_dir):
    """Each entry carries how long its stop may take, for whoever restores it."""
    web = dataclasses.replace(container("web"), stop_timeout=45.0)
    stop_targets(state_dir, FakeControl(web), "test")
    (item,) = read_json(state_dir / RECORD)["targets"]
    assert item["stop_timeout"] == 45.0
    assert read_record(state_dir)[0].stop_timeout == 45.0


def test_an_unreadable_record_is_moved_aside_and_reported(state_dir):
    """A broken record is no crash: it is kept beside for a person, and reads as empty."""
    state_dir.mkdir(parents=True)
    (state_dir / RECORD).write_text("{not json")
    assert read_record(state_dir) == []
    assert list(state_dir.glob(f"{RECORD}.unreadable-*"))


# restores outside a cycle


def test_a_restore_outside_a_cycle_skips_while_a_cycle_holds_the_lock(state_dir):
    """`sidecar renew` by hand during the daemon's challenge: the daemon's record is its own."""
    control = FakeControl(container("web", running=False))
    write_record(state_dir, entry("web"))
    with exclusive_lock(state_dir / "lock"):
        assert recover(state_dir, control) == []
        assert settle(state_dir, control) == []
    assert control.calls == []
    assert read_record(state_dir)

    assert recover(state_dir, control) == ["web"]
    assert control.calls == [("start", "web")]


# Swarm services


def test_a_service_is_recorded_with_its_replicas_then_its_version_at_zero(state_dir):
    """The record keeps the count to scale back to, and the spec version our scale to 0 made."""
    control = FakeControl(service("shop_web", replicas=3, version=10))
    assert stop_targets(state_dir, control, "test") == ["shop_web"]
    (entry,) = read_record(state_dir)
    assert isinstance(entry, StoppedService)
    assert (entry.replicas, entry.version) == (3, 11)
    assert control.get("shop_web").replicas == 0


def test_a_service_is_scaled_back_to_its_recorded_count(state_dir):
    """The restore gives it the replicas it had, not the 0 it has now."""
    control = FakeControl(service("shop_web", replicas=3))
    stop_targets(state_dir, control, "test")
    assert restore(state_dir, control) == ["shop_web"]
    assert control.get("shop_web").replicas == 3
    assert not (state_dir / RECORD).exists()


def test_a_service_scaled_by_someone_else_meanwhile_is_left_as_it_is(state_dir):
    """`docker service scale shop_web=2` while it was recorded: 2 it stays, and it is said."""
    control = FakeControl(service("shop_web", replicas=1))
    stop_targets(state_dir, control, "test")
    (recorded,) = read_record(state_dir)
    control.by_someone_else("shop_web", replicas=2, running=True)
    assert restore(state_dir, control) == []
    assert control.get("shop_web").replicas == 2
    assert not (state_dir / RECORD).exists()
    why = recorded.left_alone(control.get("shop_web"))
    assert why == "service shop_web was scaled to 2 by someone else; left as it is"


def test_a_service_updated_by_someone_else_at_zero_stays_at_zero(state_dir):
    """A redeploy with replicas 0 (the spec version moved): their 0, not ours to undo."""
    control = FakeControl(service("shop_web", replicas=1))
    stop_targets(state_dir, control, "test")
    control.by_someone_else("shop_web")
    assert restore(state_dir, control) == []
    assert control.get("shop_web").replicas == 0


def test_a_service_recorded_before_its_version_was_known_is_restored_at_zero(state_dir):
    """Killed during the scale to 0 (no version in the record yet): at 0 it is ours."""
    web = service("shop_web", replicas=0, version=12)
    write_json(
        state_dir / RECORD,
        {
            "targets": [
                {
                    "id": web.id,
                    "name": web.name,
                    "stopped_at": STOPPED_AT.isoformat(),
                    "kind": "service",
                    "replicas": 2,
                    "version": None,
                }
            ]
        },
    )
    control = FakeControl(web)
    assert restore(state_dir, control) == ["shop_web"]
    assert control.get("shop_web").replicas == 2


def test_a_removed_service_is_not_restored(state_dir):
    """`docker stack rm` meanwhile: nothing to scale."""
    control = FakeControl(service("shop_web"))
    stop_targets(state_dir, control, "test")
    control.containers.clear()
    assert restore(state_dir, control) == []
    assert not (state_dir / RECORD).exists()


def test_a_global_service_keeps_running_through_the_challenge(state_dir):
    """It cannot be scaled to 0: not stopped, not recorded; the containers next to it are."""
    control = FakeControl(service("edge", replicas=None), container("web"))
    assert stop_targets(state_dir, control, "test") == ["web"]
    assert control.calls == [("stop", "web")]
    assert [e.name for e in read_record(state_dir)] == ["web"]


def test_no_stop_is_in_progress_on_a_service():
    """Scaling up makes new tasks: nothing of an old stop can hit them, nothing is waited for."""
    at_zero = service("shop_web", replicas=0, version=11)
    recorded = StoppedService(at_zero.id, "shop_web", datetime.now(UTC), 60, 1, 11)
    look = recorded.look(FakeControl(at_zero))
    assert look.start == dataclasses.replace(at_zero, replicas=1)


def test_a_record_of_an_older_sidecar_is_still_read(state_dir):
    """Records written before services existed list `containers`."""
    write_record(state_dir, entry("web"))
    assert read_json(state_dir / RECORD)["containers"]
    assert read_record(state_dir) == [entry("web")]


def test_after_a_partly_failed_restore_only_what_did_not_start_stays_recorded(state_dir):
    """A service scaled up again must not stay recorded: it would look scaled by someone else."""
    control = FakeControl(service("shop_web"), service("shop_api"))
    stop_targets(state_dir, control, "test")
    control.fail.add(("start", "shop_web"))
    restore(state_dir, control)
    assert [e.name for e in read_record(state_dir)] == ["shop_web"]
    control.fail.clear()
    assert restore(state_dir, control) == ["shop_web"]
    assert control.get("shop_api").replicas == 1


# no exception escapes a restore


def test_a_bug_starting_one_target_keeps_exactly_it_recorded_and_starts_the_others(state_dir):
    """An OSError from one start (no SidecarError): the others run, the record names only it."""
    control = FakeControl(container("web"), container("api"), container("db"))
    stop_targets(state_dir, control, "test")
    control.crash[("start", "api")] = OSError(errno.EIO, "Input/output error")
    with logged() as lines:
        assert sorted(restore(state_dir, control)) == ["api", "db", "web"]
    assert [c.running for c in control.targets()] == [False, True, True]
    assert [e.name for e in read_record(state_dir)] == ["api"]
    assert any("could not start api: unexpected OSError" in line for line in lines)
    control.crash.clear()
    assert restore(state_dir, control) == ["api"]
    assert not (state_dir / RECORD).exists()


def test_a_bug_looking_at_one_entry_keeps_it_recorded_and_every_other_is_tried(state_dir):
    """A KeyError from inspecting one target: every other entry is still started."""
    control = FakeControl(container("web"), container("api"))
    stop_targets(state_dir, control, "test")
    control.crash[("inspect", "api")] = KeyError("State")
    assert restore(state_dir, control) == ["web"]
    assert control.get("web").running
    assert [e.name for e in read_record(state_dir)] == ["api"]


def test_settle_never_raises_and_names_what_is_still_down(state_dir):
    """The daemon's retry after a cycle: a bug is logged, and what is still down is named."""
    control = FakeControl(container("web"), container("api"))
    stop_targets(state_dir, control, "test")
    control.crash[("start", "web")] = FileNotFoundError(2, "No such file or directory")
    assert settle(state_dir, control) == ["web"]
    control.crash.clear()
    assert settle(state_dir, control) == []


def test_recover_never_raises_even_when_the_lock_fails(state_dir, monkeypatch):
    """The start-up recovery: an error of the volume itself is logged, the daemon goes on."""
    write_record(state_dir, entry("web"))

    def broken(_path: Path, **_: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(outage, "exclusive_lock", broken)
    with logged() as lines:
        assert recover(state_dir, FakeControl(container("web", running=False))) == []
    assert any("Input/output error" in line for line in lines)


def test_a_record_that_cannot_be_rewritten_still_starts_the_app(state_dir, monkeypatch):
    """A volume remounted read-only: the start needs no write; the failed clear is a warning."""
    control = FakeControl(container("web", running=False))
    write_record(state_dir, entry("web"))

    def refused(*_: object, **__: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "unlink", refused)
    monkeypatch.setattr(outage, "_write", refused)
    with logged() as lines:
        assert restore(state_dir, control) == ["web"]
    assert control.get("web").running
    assert any(line.startswith("WARNING could not update the record") for line in lines)
    monkeypatch.undo()
    assert restore(state_dir, control) == []  # the entry left behind is harmless: it runs
    assert control.names("start") == ["web"]


# one clock: engine times against engine times


def engine_entry(
    name: str, started_at: datetime, stopped_at: datetime = STOPPED_AT
) -> StoppedContainer:
    """A record entry with the engine's StartedAt of the run that was stopped."""
    return dataclasses.replace(entry(name, stopped_at), started_at=started_at)


def test_a_stop_records_the_engines_start_time_of_the_run_it_stops(state_dir):
    """The container's own StartedAt goes into the record (and is read back)."""
    started = T0 - timedelta(days=3)
    stop_targets(state_dir, FakeControl(container("web", started_at=started)), "test")
    (item,) = read_json(state_dir / RECORD)["targets"]
    assert datetime.fromisoformat(item["started_at"]) == started
    (entry,) = read_record(state_dir)
    assert isinstance(entry, StoppedContainer)
    assert entry.started_at == started


def test_an_engine_clock_ahead_of_the_sidecars_does_not_leave_the_app_down():
    """The engine's StartedAt later than our stop time (clock skew, a remote DOCKER_HOST): the
    container still on the run we stopped is ours to start."""
    ahead = STOPPED_AT + timedelta(hours=2)
    web = container("web", running=False, started_at=ahead)
    assert engine_entry("web", ahead).should_restore(web)
    assert not entry("web").should_restore(web)  # the sidecar's clock alone got it wrong


def test_a_start_by_someone_else_is_seen_on_the_engines_clock_whatever_ours_says():
    """Started again after our stop, by the engine's clock, though before our stop time by ours."""
    behind = STOPPED_AT - timedelta(hours=2)
    again = container("web", running=False, started_at=behind + timedelta(seconds=1))
    assert not engine_entry("web", behind).should_restore(again)
    assert engine_entry("web", behind).left_alone(again) is not None


def test_the_same_start_time_is_the_same_run():
    """Equal StartedAt: nobody started it since; earlier (a stepped engine clock) neither."""
    web = container("web", running=False, started_at=T0)
    assert engine_entry("web", T0).should_restore(web)
    assert engine_entry("web", T0 + timedelta(seconds=1)).should_restore(web)


def test_a_stop_in_progress_is_the_run_we_stopped_still_running():
    """Same StartedAt and running, within the stop timeout by our own clock: still stopping,
    whatever the engine's clock says; a new run is no stop of ours."""
    ahead = STOPPED_AT + timedelta(hours=2)
    e = dataclasses.replace(engine_entry("web", ahead), stop_timeout=60)
    assert e.stop_in_progress(container("web", started_at=ahead), STOPPED_AT + timedelta(seconds=5))
    newer = container("web", started_at=ahead + timedelta(seconds=1))
    assert not e.stop_in_progress(newer, STOPPED_AT + timedelta(seconds=5))
    late = STOPPED_AT + timedelta(seconds=60 + STOP_MARGIN + 1)
    assert not e.stop_in_progress(container("web", started_at=ahead), late)


def test_a_record_without_engine_times_is_judged_by_the_stop_time(state_dir):
    """Records of an older sidecar have no started_at: the earlier rule still applies."""
    write_record(state_dir, entry("web"))
    (old,) = read_record(state_dir)
    assert isinstance(old, StoppedContainer)
    assert old.started_at is None
    assert old.should_restore(container("web", running=False, started_at=T0))
    later = STOPPED_AT + timedelta(seconds=1)
    assert not old.should_restore(container("web", running=False, started_at=later))


# the lock is not a promise: its holder restores


def test_the_cycle_lock_starts_what_the_record_names_before_it_is_released(state_dir):
    """Whatever happens under it, a bug too: the record is acted on before the lock goes."""
    control = FakeControl(container("web"))

    def cycle() -> None:
        with cycle_lock(state_dir, control):
            stop_targets(state_dir, control, "test")
            raise RuntimeError("a bug after the stop")

    with pytest.raises(RuntimeError):
        cycle()
    assert control.get("web").running
    assert not (state_dir / RECORD).exists()


def test_the_cycle_lock_without_a_record_asks_docker_nothing(state_dir):
    """The usual end of a cycle: the record is already gone, nothing more is done."""
    control = FakeControl(container("web"))
    with cycle_lock(state_dir, control):
        pass
    assert control.calls == []


def test_the_cycle_lock_is_held_while_a_restore_outside_waits(state_dir):
    """A restore outside a cycle skips while the cycle holds the lock: that holder restores."""
    control = FakeControl(container("web", running=False))
    write_record(state_dir, entry("web"))
    with cycle_lock(state_dir, control):
        assert recover(state_dir, control) == []
        with pytest.raises(LockedError):
            exclusive_lock(state_dir / "lock").__enter__()
    assert control.names("start") == ["web"]


def test_restore_held_makes_a_control_only_when_there_is_a_record(state_dir):
    """`sidecar adopt`: no record, no Docker; a record, its targets started."""
    made: list[FakeControl] = []
    control = FakeControl(container("web", running=False))

    def make() -> FakeControl:
        made.append(control)
        return control

    assert restore_held(state_dir, make) == []
    assert made == []
    write_record(state_dir, entry("web"))
    assert restore_held(state_dir, make) == ["web"]
    assert control.get("web").running
    assert not (state_dir / RECORD).exists()


def test_restore_held_without_docker_says_the_record_could_not_be_acted_on(state_dir):
    """The Docker API unreachable: reported, nothing raised, the record kept for a cycle."""
    write_record(state_dir, entry("web"))

    def unreachable() -> FakeControl:
        raise DockerError("cannot reach the Docker engine")

    with logged() as lines:
        assert restore_held(state_dir, unreachable) == []
    assert any("could not be acted on (cannot reach the Docker engine)" in ln for ln in lines)
    assert read_record(state_dir)


def test_a_start_the_engine_accepted_but_not_ready_in_time_leaves_the_record(state_dir):
    """NotReadyError (started or scaled back, not ready within START_TIMEOUT) is reported, yet
    the target is no longer recorded: a later restore must not take it for someone else's."""
    control = FakeControl(container("web"), container("api"))
    stop_targets(state_dir, control, "test")
    control.crash[("start", "web")] = NotReadyError("web not healthy 120s after start")
    assert sorted(restore(state_dir, control)) == ["api", "web"]
    assert not (state_dir / RECORD).exists()


# A record as the version before the typed entries wrote it: containers with and without the
# engine's StartedAt, services with and without their version at 0.
WRITTEN_BEFORE = """{
  "reason": "the HTTP-01 challenge of a.example",
  "targets": [
    {
      "id": "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
      "name": "web",
      "started_at": "2026-11-29T10:00:00+00:00",
      "stop_timeout": 10.0,
      "stopped_at": "2026-12-01T10:00:00+00:00"
    },
    {
      "id": "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
      "name": "worker",
      "stop_timeout": 45.0,
      "stopped_at": "2026-12-01T10:00:00+00:00"
    },
    {
      "id": "sssssssssssssssssssssssss",
      "kind": "service",
      "name": "shop_web",
      "replicas": 2,
      "stop_timeout": 30.0,
      "stopped_at": "2026-12-01T10:00:00+00:00",
      "version": 42
    },
    {
      "id": "ttttttttttttttttttttttttt",
      "kind": "service",
      "name": "shop_api",
      "replicas": 1,
      "stop_timeout": 10.0,
      "stopped_at": "2026-12-01T10:00:00+00:00",
      "version": null
    }
  ]
}"""


def test_a_record_written_by_the_previous_version_reads_as_typed_entries(state_dir):
    """Upgrading with apps stopped: each entry is read as its kind, with all it said."""
    at = datetime(2026, 12, 1, 10, tzinfo=UTC)
    expected: list[StoppedContainer | StoppedService] = [
        StoppedContainer("c" * 64, "web", at, 10.0, at - timedelta(days=2)),
        StoppedContainer("d" * 64, "worker", at, 45.0),
        StoppedService("s" * 25, "shop_web", at, 30.0, replicas=2, version=42),
        StoppedService("t" * 25, "shop_api", at, 10.0, replicas=1),
    ]
    state_dir.mkdir()
    (state_dir / RECORD).write_text(WRITTEN_BEFORE)
    assert read_record(state_dir) == expected
    outage._write(state_dir, "again", expected)  # and what this version writes reads back
    assert read_record(state_dir) == expected
    (_, _, kept, at_zero) = read_json(state_dir / RECORD)["targets"]
    assert "kind" not in read_json(state_dir / RECORD)["targets"][0]  # older readers: containers
    assert kept["kind"] == at_zero["kind"] == "service"
