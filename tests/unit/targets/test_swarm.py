"""Swarm services as the API shows them: their Target, task states, what an update changes."""

from __future__ import annotations

from datetime import UTC, datetime

from sidecar.targets.base import EPOCH, SERVICE
from sidecar.targets.secrets import Files
from sidecar.targets.swarm import (
    STOPPED_AT,
    fingerprint,
    is_live,
    runs,
    secret_store,
    service_target,
)
from tests.unit.helpers import make_settings

SPEC = {
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


def task(state: str, desired: str = "running", at: str = "2026-12-01T10:00:05.5Z") -> dict:
    return {"DesiredState": desired, "Status": {"State": state, "Timestamp": at}, "Spec": {}}


def test_a_replicated_service_becomes_a_stoppable_target():
    """Its own labels, replica count, spec version, stop grace, and when we last scaled it to 0."""
    target = service_target(SERVICE_DATA, [], secret=False)
    assert (target.kind, target.name, target.replicas, target.version) == (
        SERVICE,
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
    store = secret_store(Client(), plain)  # type: ignore[arg-type]
    assert store is not None
    assert store._files == Files()
    grouped = make_settings(tmp_path, APP_SERVICES="web", CERT_DELIVERY="secret", FILES_GID="101")
    assert secret_store(Client(), grouped)._files == Files(  # type: ignore[arg-type,union-attr]
        uid=0, gid=101, cert_mode=0o440, key_mode=0o440
    )
    assert secret_store(Client(), make_settings(tmp_path)) is None  # type: ignore[arg-type]
