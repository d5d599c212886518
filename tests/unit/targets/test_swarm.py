"""Swarm services as the API shows them: their Target, task states, what an update changes;
the scale, restart and secret delivery over an in-memory swarm."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from loguru import logger

from sidecar.errors import NotReadyError
from sidecar.targets.base import EPOCH
from sidecar.targets.marks import SERIAL_LABEL, STOPPED_AT
from sidecar.targets.secret_store import secret_store
from sidecar.targets.secrets import Files
from sidecar.targets.service import ServiceTarget
from sidecar.targets.swarm import (
    fingerprint,
    is_live,
    runs,
    service_target,
)
from sidecar.volume.certs import parse_cert
from tests.unit.helpers import install_cert, make_pem, make_settings
from tests.unit.targets.swarm_api import FakeSwarmApi, swarm_services

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


SPEC: dict[str, Any] = {
    "Name": "shop_web",
    "Labels": {"certbot-sidecar.app": "shop", STOPPED_AT: "2026-12-01T10:00:00+00:00"},
    "Mode": {"Replicated": {"Replicas": 2}},
    "TaskTemplate": {
        "ContainerSpec": {"Image": "sha256:abc", "StopGracePeriod": 30_000_000_000},
        "ForceUpdate": 0,
        "Runtime": "container",
    },
}
SERVICE_DATA = {"ID": "svc1", "Version": {"Index": 41}, "Spec": SPEC}


def task(
    state: str, desired: str = "running", at: str = "2026-12-01T10:00:05.5Z"
) -> dict[str, Any]:
    return {"DesiredState": desired, "Status": {"State": state, "Timestamp": at}, "Spec": {}}


def test_a_replicated_service_becomes_a_stoppable_target():
    """Its own labels, replica count, spec version, stop grace, and when we last scaled it to 0."""
    target = service_target(SERVICE_DATA, [], secret=False)
    assert (type(target), target.name, target.replicas, target.version) == (
        ServiceTarget,
        "shop_web",
        2,
        41,
    )
    assert target.running
    assert target.stoppable
    assert target.stop_timeout == 30
    assert target.finished_at == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert target.labels["certbot-sidecar.app"] == "shop"


def test_a_service_started_when_its_oldest_running_task_started():
    """started_at is the earliest running task's; tasks not running do not count."""
    tasks = [
        task("running", at="2026-12-01T10:00:07Z"),
        task("running", at="2026-12-01T10:00:05Z"),
        task("starting", at="2026-12-01T09:00:00Z"),
    ]
    target = service_target(SERVICE_DATA, tasks, secret=False)
    assert target.started_at == datetime(2026, 12, 1, 10, 0, 5, tzinfo=UTC)
    assert service_target(SERVICE_DATA, [], secret=False).started_at == EPOCH


def test_a_global_service_runs_and_cannot_be_stopped():
    """Mode Global: no replica count; running; only reloaded."""
    data = {**SERVICE_DATA, "Spec": {**SPEC, "Mode": {"Global": {}}}}
    target = service_target(data, [], secret=False)
    assert target.replicas is None
    assert target.running
    assert not target.stoppable


def test_a_service_at_zero_replicas_is_not_running():
    """Scaled to 0 (by us or anyone): nothing to stop; the record decides about a restore."""
    data = {**SERVICE_DATA, "Spec": {**SPEC, "Mode": {"Replicated": {"Replicas": 0}}}}
    assert not service_target(data, [], secret=False).running


def test_a_service_reading_secrets_cannot_reload_by_signal():
    """Secret files never change in a running task: a new certificate needs new tasks."""
    assert not service_target(SERVICE_DATA, [], secret=True).signal_reloads
    assert service_target(SERVICE_DATA, [], secret=False).signal_reloads


def test_tasks_before_a_terminal_state_are_live():
    """A task shutting down still holds its host port: the stop waits for it."""
    assert is_live(task("running", desired="shutdown"))
    assert is_live(task("starting"))
    assert not is_live(task("shutdown", desired="shutdown"))
    assert not is_live(task("failed"))


def test_a_task_runs_when_meant_to_and_running():
    """`running` is healthy where there is a healthcheck (swarm keeps it `starting` until)."""
    assert runs(task("running"))
    assert not runs(task("running", desired="shutdown"))
    assert not runs(task("starting"))


def test_a_tasks_copy_of_the_template_matches_without_the_defaults_it_lacks():
    """A task's spec lacks `Runtime`; the force counter and the secrets tell old from new."""
    template = SPEC["TaskTemplate"]
    copy = {"ContainerSpec": {"Image": "sha256:abc"}, "ForceUpdate": 0}
    assert fingerprint(copy) == fingerprint(template)
    assert fingerprint({**copy, "ForceUpdate": 1}) != fingerprint(template)
    ref = {"SecretID": "s1", "File": {"Name": "live/a/privkey.pem"}}
    with_secret = {"ContainerSpec": {"Secrets": [ref]}, "ForceUpdate": 0}
    assert fingerprint(with_secret) != fingerprint(copy)


def test_secret_files_get_the_owner_and_modes_files_settings_ask_for(tmp_path):
    """Root, 0444 and 0400 by default; FILES_UID/FILES_GID/FILES_PERMS as on the volume, without
    write bits (secrets are read-only)."""

    class Client:
        api = None

    plain = make_settings(tmp_path, APP_SERVICES="web", CERT_DELIVERY="secret")
    store = secret_store(Client(), plain.tree)  # type: ignore[arg-type]
    assert store is not None
    assert store._files == Files()
    grouped = make_settings(tmp_path, APP_SERVICES="web", CERT_DELIVERY="secret", FILES_GID="101")
    assert secret_store(Client(), grouped.tree)._files == Files(  # type: ignore[arg-type]
        uid=0, gid=101, cert_mode=0o440, key_mode=0o440
    )


# SwarmServices and SecretStore over an in-memory swarm (swarm_api.FakeSwarmApi)


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """The messages logged during the test."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="DEBUG")
    yield lines
    logger.remove(sink)


def at_count(api: FakeSwarmApi, ident: str) -> int:
    return int(api.spec(ident)["Mode"]["Replicated"]["Replicas"])


def scale_to(count: int) -> Callable[[dict[str, Any]], None]:
    return lambda spec: spec["Mode"]["Replicated"].__setitem__("Replicas", count)


def label(spec: dict[str, Any]) -> None:
    spec["Labels"]["team"] = "shop"


def recorded(api: FakeSwarmApi, ident: str, replicas: int) -> ServiceTarget:
    """The service as the restore passes it: read at 0, with the record's replica count."""
    return dataclasses.replace(api.target(ident), replicas=replicas)


def conflicting(
    replicas: int, meanwhile: Callable[[dict[str, Any]], None]
) -> tuple[FakeSwarmApi, str, ServiceTarget]:
    """A service as the sidecar reads it, changed by someone else just before its update."""
    api = FakeSwarmApi()
    app = api.add_service("web", replicas=replicas)
    api.between = lambda ident: api.change(ident, meanwhile)
    return api, app, api.target(app)


def test_a_scale_back_goes_out_while_the_service_is_as_recorded(logged):
    """At 0 and at the version the restore read: scaled back to the recorded count, once."""
    api = FakeSwarmApi()
    app = api.add_service("web", replicas=0)
    swarm_services(api).start(recorded(api, app, 2))
    assert at_count(api, app) == 2
    assert len(api.posted) == 1
    assert any(line.startswith("started service web (scaled to 2)") for line in logged)


@pytest.mark.parametrize(
    ("meanwhile", "count"), [(scale_to(3), 3), (label, 0)], ids=["scaled", "updated"]
)
def test_a_scale_back_after_a_conflict_leaves_a_service_someone_else_changed(
    logged, meanwhile, count
):
    """On "update out of sequence" the retry reads the spec again and finds it changed by someone
    else (a `docker service scale`, a `stack deploy` at 0): it is left as it is."""
    api, app, target = conflicting(0, meanwhile)
    swarm_services(api).start(dataclasses.replace(target, replicas=2))
    assert at_count(api, app) == count
    assert api.posted == []
    assert "service web was scaled or updated by someone else meanwhile; left as it is" in logged


def test_a_scale_back_of_a_service_changed_since_the_restore_read_it_sends_nothing(logged):
    """The guard is asked at the first attempt too: a spec version the restore did not see is
    someone else's."""
    api = FakeSwarmApi()
    app = api.add_service("web", replicas=0)
    target = recorded(api, app, 1)
    api.change(app, label)
    swarm_services(api).start(target)
    assert api.posted == []
    assert at_count(api, app) == 0


def test_a_stop_after_a_conflict_applies_to_the_newer_spec_at_the_selected_count():
    """A concurrent label change: the retry scales the newer spec to 0, keeping the label."""
    api, app, target = conflicting(2, label)
    swarm_services(api).stop(target)
    assert at_count(api, app) == 0
    assert api.spec(app)["Labels"]["team"] == "shop"
    assert STOPPED_AT in api.spec(app)["Labels"]


def test_a_stop_leaves_a_service_scaled_by_someone_else_meanwhile(logged):
    """Not at the count it was selected with any more: not scaled to 0, not waited for."""
    api, app, target = conflicting(2, scale_to(3))
    swarm_services(api).stop(target)
    assert at_count(api, app) == 3
    assert api.posted == []
    assert any("service web was scaled by someone else meanwhile" in line for line in logged)


def test_a_restart_after_a_conflict_forces_the_newer_spec():
    """`service update --force` needs no guard: it applies to whatever the spec is now."""
    api, app, target = conflicting(1, label)
    swarm_services(api).restart(target)
    assert api.spec(app)["TaskTemplate"]["ForceUpdate"] == 1
    assert api.spec(app)["Labels"]["team"] == "shop"


def test_a_scale_back_whose_tasks_do_not_run_in_time_is_started_but_not_ready():
    """START_TIMEOUT over after the accepted update: NotReadyError (the record is done with it:
    the count it has now is ours, not someone else's)."""
    api = FakeSwarmApi()
    app = api.add_service("web", replicas=0)
    api.tasks_run = False
    with pytest.raises(NotReadyError, match="0 of 2 task"):
        swarm_services(api, start_timeout=0).start(recorded(api, app, 2))
    assert at_count(api, app) == 2


def _refuse_creating(api: FakeSwarmApi, config_dir: Path) -> None:
    api.refused.add("create_secret")


def _refuse_listing(api: FakeSwarmApi, config_dir: Path) -> None:
    api.refused.add("secrets")


def _break_fullchain(api: FakeSwarmApi, config_dir: Path) -> None:
    link = config_dir / "live" / "a.example" / "fullchain.pem"
    link.unlink()
    link.symlink_to("../../archive/a.example/gone.pem")


@pytest.mark.parametrize("fault", [_refuse_creating, _refuse_listing, _break_fullchain])
def test_a_secret_that_cannot_be_had_never_keeps_a_service_at_zero(tmp_path, logged, fault):
    """A proxy refusing `POST /secrets/create` or `GET /secrets`, an unreadable fullchain.pem:
    the scale-back goes out with the references the service has, and one warning says why."""
    install_cert(tmp_path, "a.example", make_pem(("a.example",)))
    api = FakeSwarmApi()
    app = api.add_service("web", replicas=0)
    fault(api, tmp_path)
    swarm_services(api, tmp_path, ["a.example"]).start(recorded(api, app, 1))
    assert at_count(api, app) == 1
    assert api.files(app) == {}
    (warning,) = [line for line in logged if "without the current certificates' secrets" in line]
    assert warning.startswith("service web: scaled back without the current certificates' secrets")


def test_a_refused_secret_is_one_delivery_error_line_and_never_raises(tmp_path):
    """The cycle's delivery step gets the failure as a line naming the lineage and the call."""
    install_cert(tmp_path, "a.example", make_pem(("a.example",)))
    api = FakeSwarmApi()
    app = api.add_service("web")
    api.refused.add("create_secret")
    (error,) = swarm_services(api, tmp_path, ["a.example"]).deliver([api.target(app)])
    assert error.startswith("a.example: Docker: create secret a.example_fullchain_")
    assert "403" in error
    assert "\n" not in error
    api.refused.add("secrets")
    (error,) = swarm_services(api, tmp_path, ["a.example"]).deliver([api.target(app)])
    assert error.startswith("Docker: list secrets failed: 403")


def test_a_scale_back_carries_the_current_secrets_in_the_same_update(tmp_path):
    """One update: the recorded count and the current certificate's secrets."""
    pem = make_pem(("a.example",))
    install_cert(tmp_path, "a.example", pem)
    api = FakeSwarmApi()
    app = api.add_service("web", replicas=0)
    swarm_services(api, tmp_path, ["a.example"]).start(recorded(api, app, 1))
    (sent,) = api.posted
    assert sent["Mode"]["Replicated"]["Replicas"] == 1
    files = api.files(app)
    assert api.data[files["live/a.example/fullchain.pem"]].startswith(pem)


def test_an_unreadable_lineage_keeps_its_secrets_on_every_service(tmp_path):
    """DOMAINS="a;b" with live/a/cert.pem broken: the next delivery gives b its new secrets,
    keeps a's references and versions, reports a; b's old versions go."""
    install_cert(tmp_path, "a.example", make_pem(("a.example",)))
    install_cert(tmp_path, "b.example", make_pem(("b.example",)))
    api = FakeSwarmApi()
    app = api.add_service("web")
    services = swarm_services(api, tmp_path, ["a.example", "b.example"])
    assert services.deliver([api.target(app)]) == []
    before = api.files(app)
    cert = tmp_path / "live" / "a.example" / "cert.pem"
    cert.unlink()
    cert.write_bytes(b"garbage")
    install_cert(tmp_path, "b.example", make_pem(("b.example",)))  # renewed

    (error,) = services.deliver([api.target(app)])

    after = api.files(app)
    for part in ("fullchain", "privkey"):
        name = f"live/a.example/{part}.pem"
        assert after[name] == before[name]
        assert after[name] in api.made
        name = f"live/b.example/{part}.pem"
        assert after[name] != before[name]
        assert before[name] not in api.made  # pruned
    assert error.startswith("a.example: ")
    assert "not a readable certificate" in error


def test_a_service_with_the_current_secrets_is_not_updated_again(tmp_path, logged):
    """An unchanged spec is never posted: no version bump, no "now reads" line."""
    install_cert(tmp_path, "a.example", make_pem(("a.example",)))
    api = FakeSwarmApi()
    app = api.add_service("web")
    services = swarm_services(api, tmp_path, ["a.example"])
    services.deliver([api.target(app)])
    version = api.version(app)
    logged.clear()
    assert services.deliver([api.target(app)]) == []
    assert api.version(app) == version
    assert not [line for line in logged if "now reads the current certificates" in line]


def test_a_renamed_lineages_secrets_hold_the_certificate_their_serial_names(tmp_path):
    """renewal/a.example.conf naming live/other.example: the bytes and the serial both come
    from there, not from a stale live/a.example."""
    install_cert(tmp_path, "a.example", make_pem(("a.example",)))
    current = make_pem(("a.example",))
    install_cert(tmp_path, "other.example", current)
    renewal = tmp_path / "renewal"
    (renewal / "other.example.conf").replace(renewal / "a.example.conf")
    api = FakeSwarmApi()
    app = api.add_service("web")
    assert swarm_services(api, tmp_path, ["a.example"]).deliver([api.target(app)]) == []
    secret = api.files(app)["live/a.example/fullchain.pem"]
    labels = api.made[secret]["Spec"]["Labels"]
    assert api.data[secret].startswith(current)
    assert labels[SERIAL_LABEL] == f"{parse_cert(current).serial:x}"
