"""Findings about the Docker API in swarm mode, measured here with docker-py's low-level APIClient.

    E2E_IMAGE_TAG=swarm uv run python -m tests.e2e.swarm_probe

Each section is a snippet the product can take over (it uses `client.api`), with assertions on
what this engine answered and the timings it took. Initialises a single-node swarm if the engine
is in none (and leaves it at the end), uses the e2e images by ID, removes all it creates. Ends
with every METHOD /path it sent: the allow-list a socket proxy needs for swarm mode.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker import types

from tests.e2e.harness import APP_IMAGE, SIDECAR_IMAGE
from tests.e2e.swarm import (
    SwarmStack,
    live_tasks,
    poll,
    running_tasks,
    single_node_swarm,
    spec_diff,
    update_spec,
)

CALLS: dict[str, None] = {}
_ID = re.compile(
    r"(/(?:services|secrets|containers|tasks|exec|nodes|networks)/)(?!create$|json$)[^/]+"
)
_IMAGE = re.compile(r"/images/.+/json$")


def record(response: Any, *_: Any, **__: Any) -> None:
    path = response.request.path_url.split("?")[0]
    path = _IMAGE.sub("/images/{name}/json", _ID.sub(r"\1{id}", path))
    CALLS[f"{response.request.method} {path}"] = None


def show(title: str, value: object = "") -> None:
    print(f"{title}: {value}" if value != "" else f"\n== {title}")


def section_identity(api: docker.APIClient) -> None:
    show("where am I: GET /info -> Swarm")
    swarm = api.info()["Swarm"]
    show(
        "LocalNodeState, ControlAvailable, NodeID",
        (swarm["LocalNodeState"], swarm["ControlAvailable"], swarm["NodeID"]),
    )
    assert swarm["LocalNodeState"] == "active"
    assert swarm["ControlAvailable"] is True  # a manager; False on a worker (no /services there)


def section_list(api: docker.APIClient, stack: SwarmStack) -> tuple[str, str]:
    show("list services by name and by label")
    web = stack.app_service(name="web")
    stack.app_service(name="web2", ports={})  # same label, name with the same prefix
    name = api.inspect_service(web)["Spec"]["Name"]
    by_name = [s["Spec"]["Name"] for s in api.services(filters={"name": "cbs-web"})]
    show("services(filters={'name': 'cbs-web'}) (a PREFIX match)", sorted(by_name))
    assert len(by_name) == 2  # web and web2: compare Spec.Name exactly
    exact = [s for s in api.services(filters={"name": name}) if s["Spec"]["Name"] == name]
    assert [s["ID"] for s in exact] == [web]
    assert api.inspect_service(name)["ID"] == web  # by exact name, by ID, by ID prefix
    assert api.inspect_service(web[:6])["ID"] == web
    labelled = api.services(filters={"label": f"certbot-sidecar.test={stack.uid}"})
    show("services(filters={'label': 'k=v'}) (service labels, exact)", len(labelled))
    assert len(labelled) == 2
    try:
        api.tasks(filters={"service": "no-such-service"})
    except docker.errors.NotFound as error:
        show("tasks of an unknown service", f"404 {error.explanation}")
    glob = stack.app_service(name="glob", mode="global", ports={})
    return web, glob


def section_inspect(api: docker.APIClient, web: str, glob: str) -> None:
    show("inspect")
    service = api.inspect_service(web)
    show("Spec.Mode (replicated)", service["Spec"]["Mode"])
    show("Spec.Mode (global)", api.inspect_service(glob)["Spec"]["Mode"])
    show("Version", service["Version"])
    show("top-level keys", sorted(service))
    show("Endpoint.Ports", service["Endpoint"].get("Ports"))
    assert service["Spec"]["Mode"] == {"Replicated": {"Replicas": 1}}
    assert api.inspect_service(glob)["Spec"]["Mode"] == {"Global": {}}


def section_scale(api: docker.APIClient, stack: SwarmStack, web: str) -> None:
    show("scale to 0 and back with the full spec (5 runs)")
    stack.wait_running(web, 1)
    before = api.inspect_service(web)
    downs, ups = [], []
    for _ in range(5):
        downs.append(stack.scale(web, 0))
        zero = api.inspect_service(web)
        assert spec_diff(before["Spec"], zero["Spec"]) == [".Mode.Replicated.Replicas: 1 -> 0"]
        assert "UpdateStatus" not in zero  # a scale is not a rolling update
        ups.append(stack.scale(web, 1))
    time.sleep(2)
    after = api.inspect_service(web)
    show("1->0 until no live task (s)", [round(x, 2) for x in downs])
    show("0->1 until the task runs (s)", [round(x, 2) for x in ups])
    show("medians", f"down {statistics.median(downs):.2f}s, up {statistics.median(ups):.2f}s")
    show("spec diff after 5 cycles", spec_diff(before["Spec"], after["Spec"]))
    assert spec_diff(before["Spec"], after["Spec"]) == []
    idle = api.inspect_service(web)["Version"]["Index"]
    time.sleep(2)
    assert api.inspect_service(web)["Version"]["Index"] == idle, "Version moves by itself"
    show("Version.Index after a scale: stable while nobody writes", idle)


def section_task_states(api: docker.APIClient, stack: SwarmStack, web: str) -> None:
    show("task states while scaling down (DesiredState, Status.State)")
    seen: list[tuple[float, tuple[tuple[str, str], ...]]] = []
    began = time.monotonic()
    update_spec(api, web, lambda s: s["Mode"]["Replicated"].__setitem__("Replicas", 0))
    while time.monotonic() - began < 10:
        snap = tuple(
            (t["DesiredState"], t["Status"]["State"]) for t in api.tasks(filters={"service": web})
        )
        if not seen or seen[-1][1] != snap:
            seen.append((round(time.monotonic() - began, 2), snap))
        if not snap:
            break
        time.sleep(0.02)
    for at, snap in seen:
        show(f"  +{at:.2f}s", snap)
    stack.scale(web, 1)


def section_pitfalls(api: docker.APIClient, stack: SwarmStack, web: str) -> None:
    show("update_service pitfalls")
    current = api.inspect_service(web)
    try:
        api.update_service(
            web, current["Version"]["Index"], mode=types.ServiceMode("replicated", replicas=1)
        )
    except docker.errors.APIError as error:
        show("only mode= passed (no task_template)", f"{error.status_code} {error.explanation}")
    task = running_tasks(api, web)[0]["ID"]
    api.update_service(
        web,
        current["Version"]["Index"],
        mode=types.ServiceMode("replicated", replicas=1),
        fetch_current_spec=True,
    )
    changed = api.inspect_service(web)
    show("fetch_current_spec=True, replicas unchanged: spec diff")
    for line in spec_diff(current["Spec"], changed["Spec"]):
        show("  ", line)
    poll(
        "a replacement task",
        lambda: running_tasks(api, web) and running_tasks(api, web)[0]["ID"] != task,
        60,
    )
    status = api.inspect_service(web).get("UpdateStatus", {}).get("State")
    show("  -> the running task was REPLACED (a rolling update); UpdateStatus", status)
    try:
        spec = current["Spec"]
        api.update_service(
            web,
            current["Version"]["Index"],
            task_template=spec["TaskTemplate"],
            name=spec["Name"],
            mode=spec["Mode"],
        )
    except docker.errors.APIError as error:
        show("stale Version.Index", f"{error.status_code} {error.explanation}")
    update_spec(api, web, lambda s: s.update(current["Spec"]))  # back to the spec without defaults
    stack.wait_running(web, 1)


def section_health(api: docker.APIClient, stack: SwarmStack) -> None:
    show("healthcheck: a task is 'starting' until its container is healthy")
    check = types.Healthcheck(
        test=[
            "CMD",
            "python3",
            "-c",
            "import os,time; assert time.time() - os.stat('/proc/1').st_ctime > 2",
        ],
        interval=500_000_000,
        retries=10,
    )
    sid = stack.app_service(name="health", healthcheck=check, ports={})
    began = time.monotonic()
    seen: list[tuple[float, str, str | None]] = []
    while time.monotonic() - began < 60:
        for task in api.tasks(filters={"service": sid}):
            cid = task["Status"].get("ContainerStatus", {}).get("ContainerID")
            health = None
            if cid:
                health = (api.inspect_container(cid)["State"].get("Health") or {}).get("Status")
            key = (task["Status"]["State"], health)
            if not seen or seen[-1][1:] != key:
                seen.append((round(time.monotonic() - began, 2), *key))
        if seen and seen[-1][1] == "running":
            break
        time.sleep(0.05)
    for at, state, health in seen:
        show(f"  +{at:.2f}s task {state}", f"container health {health}")
    assert seen[-1][1:] == ("running", "healthy")
    assert (
        api.inspect_service(sid)["Spec"]["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"][0]
        == "CMD"
    )


def section_force(api: docker.APIClient, stack: SwarmStack, glob: str) -> None:
    show("force update of a global service (a rolling restart)")
    stack.wait_running(glob, 1)
    try:
        update_spec(api, glob, lambda s: s.__setitem__("Mode", {"Replicated": {"Replicas": 0}}))
    except docker.errors.APIError as error:
        show("global -> replicated", error.explanation)
    began = time.monotonic()
    force = stack.force_update(glob)
    new_task = stack.wait_running(glob, 1, force=force)
    states = []
    while (state := api.inspect_service(glob).get("UpdateStatus", {}).get("State")) != "completed":
        states.append(state)
        time.sleep(0.1)
    done = time.monotonic() - began
    status = api.inspect_service(glob)["UpdateStatus"]
    show("ForceUpdate", force)
    show("new task (Spec.ForceUpdate == counter) running after", f"{new_task:.2f}s")
    show("UpdateStatus states seen", sorted(set(states)))
    show("UpdateStatus completed after", f"{done:.2f}s {status}")


def section_signal(api: docker.APIClient, stack: SwarmStack) -> None:
    show("RELOAD_SIGNAL to every task on this node")
    sid = stack.app_service(name="sig", replicas=2, ports={})
    stack.wait_running(sid, 2)
    time.sleep(1.5)  # the app installs its SIGHUP handler after start (a SIGHUP before kills it)
    node = api.info()["Swarm"]["NodeID"]
    sent = []
    for task in api.tasks(filters={"service": sid, "desired-state": "running", "node": node}):
        if task["Status"]["State"] == "running":
            cid = task["Status"]["ContainerStatus"]["ContainerID"]
            api.kill(cid, signal="SIGHUP")  # POST /containers/{id}/kill: on the task's node only
            sent.append(cid)
    time.sleep(0.5)
    got = [any("SIGHUP" in line for line in api.logs(c).decode().splitlines()) for c in sent]
    show("sent to / handled by", (len(sent), sum(got)))
    assert len(sent) == 2
    assert all(got)


def section_someone_else(api: docker.APIClient, stack: SwarmStack, web: str) -> None:
    show("someone else scaled it while it was recorded as stopped")
    stack.scale(web, 0)
    ours = api.inspect_service(web)
    record_ = {
        "id": ours["ID"],
        "replicas": 1,
        "version": ours["Version"]["Index"],
        "updated": ours["UpdatedAt"],
    }
    update_spec(
        api, web, lambda s: s["Mode"]["Replicated"].__setitem__("Replicas", 2)
    )  # `service scale =2`
    now = api.inspect_service(web)
    show("record", record_)
    show(
        "now",
        {
            "replicas": now["Spec"]["Mode"]["Replicated"]["Replicas"],
            "version": now["Version"]["Index"],
            "updated": now["UpdatedAt"],
            "previous replicas": now["PreviousSpec"]["Mode"],
        },
    )
    assert now["Version"]["Index"] != record_["version"]
    assert now["UpdatedAt"] != record_["updated"]
    stack.scale(web, 1)


def section_secrets(api: docker.APIClient, stack: SwarmStack) -> None:
    show("secrets")
    labels = stack.labels(**{"certbot-sidecar.lineage": "demo.example.com"})
    made = api.create_secret(f"{stack.uid}-probe-v1", b"CHAIN-1\n", labels=labels)
    stack.secrets.append(made["ID"])
    show("create_secret", made)
    show("inspect_secret (never the data)", json.dumps(api.inspect_secret(made["ID"])["Spec"]))
    listed = api.secrets(filters={"label": "certbot-sidecar.lineage=demo.example.com"})
    show("secrets(filters={'label': ...})", [s["Spec"]["Name"] for s in listed])
    for size in (511_999, 512_000):
        try:
            big = api.create_secret(f"{stack.uid}-size-{size}", b"x" * size, labels=stack.labels())
            stack.secrets.append(big["ID"])
            show(f"{size} bytes", "ok")
        except docker.errors.APIError as error:
            show(f"{size} bytes", f"{error.status_code} {error.explanation}")
    for name in ("a" * 64, "a" * 65):
        try:
            ok = api.create_secret(name, b"x", labels=stack.labels())
            stack.secrets.append(ok["ID"])
            show(f"name of {len(name)} chars", "ok")
        except docker.errors.APIError as error:
            show(f"name of {len(name)} chars", f"{error.status_code} {error.explanation}")
    ref = types.SecretReference(
        made["ID"],
        f"{stack.uid}-probe-v1",
        filename="live/demo/fullchain.pem",
        uid="0",
        gid="0",
        mode=0o444,
    )
    other = api.create_secret(f"{stack.uid}-probe-key-v1", b"KEY-1\n", labels=labels)
    stack.secrets.append(other["ID"])
    key = types.SecretReference(
        other["ID"],
        f"{stack.uid}-probe-key-v1",
        filename="/etc/app/privkey.pem",
        uid="1000",
        gid="1000",
        mode=0o400,
    )
    sid = stack.app_service(name="sec", secrets=[ref, key], ports={})
    stack.wait_running(sid, 1)
    cid = running_tasks(api, sid)[0]["Status"]["ContainerStatus"]["ContainerID"]
    out = api.exec_start(
        api.exec_create(
            cid,
            [
                "sh",
                "-c",
                "ls -ln /run/secrets/live/demo /etc/app; grep -E 'secrets|/etc/app' /proc/mounts",
            ],
        )
    )
    show("in the task", "\n" + out.decode())
    both = [ref, {**ref, "File": {**ref["File"], "Name": "b.pem", "Mode": 0o400}}]
    twice = stack.app_service(name="twice", secrets=both, ports={})
    stack.wait_running(twice, 1)
    cid2 = running_tasks(api, twice)[0]["Status"]["ContainerStatus"]["ContainerID"]
    ls = ["sh", "-c", "ls -ln /run/secrets/live/demo /run/secrets/b.pem"]
    show(
        "ONE secret referenced twice (0444, 0400)",
        "\n" + api.exec_start(api.exec_create(cid2, ls)).decode(),
    )
    try:
        api.remove_secret(made["ID"])
    except docker.errors.APIError as error:
        show("remove a secret in use", f"{error.status_code} {error.explanation}")
    try:
        api.create_secret(f"{stack.uid}-probe-v1", b"again", labels=stack.labels())
    except docker.errors.APIError as error:
        show("same name again", f"{error.status_code} {error.explanation}")


def section_own_service(api: docker.APIClient, stack: SwarmStack) -> None:
    show("the sidecar finds its own task and service (run inside a task of the sidecar image)")
    code = (
        "import re, json, docker\n"
        "mountinfo = open('/proc/self/mountinfo').read()\n"
        "cid = re.search(r'/(?:docker/)?containers/([0-9a-f]{64})/', mountinfo)[1]\n"
        "api = docker.APIClient(version='auto')\n"
        "labels = api.inspect_container(cid)['Config']['Labels']\n"
        "swarm = {k: api.info()['Swarm'][k] for k in ('NodeID', 'ControlAvailable')}\n"
        "mine = {k: v for k, v in labels.items() if k.startswith('com.docker.swarm')}\n"
        "print(json.dumps({'own': cid[:12], 'swarm': swarm, 'labels': mine}))\n"
    )
    container = types.ContainerSpec(
        image=stack.image_id(SIDECAR_IMAGE),
        command=["python3", "-c", code],  # Command replaces the ENTRYPOINT; Args is the CMD
        mounts=[types.Mount("/var/run/docker.sock", "/var/run/docker.sock", type="bind")],
        labels=stack.labels(),
    )
    template = types.TaskTemplate(
        container_spec=container, restart_policy=types.RestartPolicy(condition="none")
    )
    sid = stack._service("whoami", template)
    poll(
        "the task to end",
        lambda: not live_tasks(api, sid) and api.tasks(filters={"service": sid}),
        60,
    )
    logs = ""

    def logged() -> bool:
        nonlocal logs
        logs = b"".join(api.service_logs(sid, stdout=True, stderr=True)).decode()
        return bool(logs)

    poll("the task's logs", logged, 20)
    show("from inside", logs.strip())
    assert '"com.docker.swarm.service.name"' in logs


def main() -> int:
    client = docker.from_env(timeout=300)
    api = client.api
    api.hooks["response"].append(record)
    show("docker-py / API version", (docker.__version__, api._version))
    assert api.inspect_image(APP_IMAGE)  # the e2e images (E2E_IMAGE_TAG) must be built
    with single_node_swarm(client) as swarm, tempfile.TemporaryDirectory() as tmp:
        show("swarm initialised by this run", swarm.initialised)
        stack = SwarmStack(client, Path(tmp), swarm=swarm)
        try:
            section_identity(api)
            web, glob = section_list(api, stack)
            section_inspect(api, web, glob)
            section_scale(api, stack, web)
            section_task_states(api, stack, web)
            section_pitfalls(api, stack, web)
            section_health(api, stack)
            section_force(api, stack, glob)
            section_signal(api, stack)
            section_someone_else(api, stack, web)
            section_secrets(api, stack)
            section_own_service(api, stack)
        finally:
            stack.cleanup()
    show("API calls made (METHOD /path)")
    for call in sorted(CALLS):
        print(f"  {call}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
