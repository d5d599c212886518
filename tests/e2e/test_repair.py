"""A tree damaged by hand, a restore or a migration, on real parts: live/NAME/ removed, the renewal
conf removed, files that do not belong together; real lineages from Pebble, judged and repaired by
the sidecar, checked against certbot itself."""

from __future__ import annotations

import re
import shutil
from typing import TYPE_CHECKING

import configobj
import pytest

from tests.e2e.harness import SIDECAR_IMAGE, disk_serial, served_serial, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    from docker.models.containers import Container

    from tests.e2e.harness import Stack
    from tests.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

KINDS = ("cert", "privkey", "chain", "fullchain")


def issued(stack: Stack, **env: str) -> int:
    """The first cycle: the stack's certificate obtained; its serial."""
    code, logs = stack.sidecar_once("renew", **env)
    assert code == 0, logs
    return disk_serial(stack.le_dir, stack.domain)


def numbered(le_dir: Path) -> list[str]:
    """Every numbered copy of a lineage (`NAME-0001`) in renewal/, live/ or archive/."""
    suffix = re.compile(r"-\d{4}$")  # not a `-0` inside the name (`app-0382abcd.example.com`)
    found = [
        *le_dir.glob("renewal/*.conf"),
        *le_dir.glob("live/*"),
        *le_dir.glob("archive/*"),
    ]
    return sorted(
        str(p.relative_to(le_dir)) for p in found if suffix.search(p.name.removesuffix(".conf"))
    )


def issued_by_pebble(pebble: Container) -> int:
    """How many certificates Pebble issued (its log says so for each)."""
    return len(re.findall(r"Issued certificate serial", pebble.logs().decode(errors="replace")))


def cycles_done(daemon: Container) -> int:
    return len(re.findall(r"\bcycle (?:done|failed)\b", daemon.logs().decode(errors="replace")))


def obtains(logs: str) -> bool:
    """The sidecar ran `certbot certonly` (its line before it; "not obtaining" is a refusal)."""
    return re.search(r"(?<!not )obtaining a certificate for", logs) is not None


def params(le_dir: Path, name: str) -> dict[str, str]:
    conf = configobj.ConfigObj(str(le_dir / "renewal" / f"{name}.conf"), encoding="utf-8")
    return dict(conf["renewalparams"])


def certbot_certificates(stack: Stack) -> str:
    """certbot's own listing of the tree (`certbot certificates`), run in the container with the
    sidecar's mounts."""
    container = stack._run(
        SIDECAR_IMAGE,
        f"certificates-{len(stack.containers)}",
        entrypoint="certbot",
        command=["certificates", "--config-dir", "/etc/letsencrypt"],
        volumes={
            str(stack.le_dir): {"bind": "/etc/letsencrypt", "mode": "rw"},
            **stack.sidecar_volumes,
        },
    )
    container.wait(timeout=120)
    return container.logs().decode(errors="replace")


def test_a_removed_live_directory_is_restored_and_no_certificate_is_obtained_again(stack: Stack):
    """live/NAME/ deleted by hand (conf and archive kept), the app restarted meanwhile (it waits
    for its files): the daemon puts live/NAME/ back from the archive in its first cycle; after
    several cycles no NAME-0001 exists, Pebble issued nothing more, and the app serves it."""
    pebble = stack.start_pebble()
    app = stack.start_app()
    serial = issued(stack)
    assert issued_by_pebble(pebble) == 1
    live = stack.le_dir / "live" / stack.domain
    shutil.rmtree(live)
    app.restart(timeout=10)

    daemon = stack.sidecar(
        "run", CHECK_INTERVAL="5s", CHECK_JITTER="0", VERIFY=f"127.0.0.1:{stack.https_port}"
    )

    wait_for("three cycles", lambda: cycles_done(daemon) >= 3, timeout=240, every=1)
    logs = daemon.logs().decode(errors="replace")
    assert "cycle failed" not in logs, logs
    assert not obtains(logs)
    assert numbered(stack.le_dir) == []
    for kind in KINDS:
        assert str((live / f"{kind}.pem").readlink()) == f"../../archive/{stack.domain}/{kind}1.pem"
    assert disk_serial(stack.le_dir, stack.domain) == serial
    assert issued_by_pebble(pebble) == 1
    wait_for(
        "the restored cert served", lambda: served_serial(stack.https_port, stack.domain) == serial
    )


def test_a_lineage_the_archive_cannot_restore_is_alerted_once_and_never_obtained_again(
    stack: Stack, receiver: Receiver
):
    """live/NAME/ deleted and the archive's chain gone too: no certonly at any cycle (it would
    save NAME-0001), one alert naming it, the next try after the full interval."""
    pebble = stack.start_pebble()
    stack.start_app()
    issued(stack)
    shutil.rmtree(stack.le_dir / "live" / stack.domain)
    (stack.le_dir / "archive" / stack.domain / "chain1.pem").unlink()

    daemon = stack.sidecar(
        "run",
        CHECK_INTERVAL="5s",
        CHECK_JITTER="0",
        WEBHOOK_URL=f"http://127.0.0.1:{receiver.port}/hook",
    )

    alert = receiver.wait("/hook", "renewal-failed")
    assert f"would save a new lineage {stack.domain}-0001 beside it" in alert["message"]
    wait_for("three cycles", lambda: cycles_done(daemon) >= 3, timeout=240, every=1)
    logs = daemon.logs().decode(errors="replace")
    assert "needs attention; next try" in logs
    assert not obtains(logs)
    assert numbered(stack.le_dir) == []
    assert issued_by_pebble(pebble) == 1
    assert len([b for _, b in receiver.received if b["event"] == "renewal-failed"]) == 1


def test_a_removed_renewal_conf_is_rebuilt_and_a_forced_renewal_keeps_the_lineage(stack: Stack):
    """renewal/NAME.conf deleted: `adopt --check` plans it, the next cycle rebuilds it in
    certbot's format (the values certonly saved), and a forced renewal renews the same lineage
    (no NAME-0001) that the app then serves."""
    stack.start_pebble()
    app = stack.start_app()
    first = issued(stack)
    conf = stack.le_dir / "renewal" / f"{stack.domain}.conf"
    saved = params(stack.le_dir, stack.domain)
    conf.unlink()

    code, plan = stack.sidecar_once("adopt", "--check")
    assert code == 0, plan
    assert f"renewal/{stack.domain}.conf is missing" in plan
    assert "rebuilt in certbot's format" in plan
    assert not conf.exists()

    code, logs = stack.sidecar_once("renew")
    assert code == 0, logs
    assert f"renewal/{stack.domain}.conf written" in logs
    assert not obtains(logs)
    rebuilt = params(stack.le_dir, stack.domain)
    assert rebuilt == saved, (rebuilt, saved)
    assert f"Certificate Name: {stack.domain}" in certbot_certificates(stack)

    code, logs = stack.sidecar_once("renew", "--force")

    assert code == 0, logs
    second = disk_serial(stack.le_dir, stack.domain)
    assert second != first
    assert numbered(stack.le_dir) == []
    assert sorted(p.name for p in (stack.le_dir / "renewal").glob("*.conf")) == [conf.name]
    assert (stack.le_dir / "archive" / stack.domain / "cert2.pem").exists()
    assert stack.state(app)["Running"]
    wait_for(
        "the renewed cert served", lambda: served_serial(stack.https_port, stack.domain) == second
    )


def test_a_cert_linked_from_outside_that_certbot_refuses_is_not_called_renewable(stack: Stack):
    """live/NAME/cert.pem an absolute link to an earlier certificate of the lineage kept outside
    the tree (a tree posted by a user): chain.pem and fullchain.pem do not go with it, and certbot
    skips the lineage ("fullchain does not match cert + chain"). The sidecar says it cannot be
    renewed and how to repair it, copies nothing in, and after that repair by hand both certbot
    and the sidecar take the lineage."""
    outside = stack.tmp / "outside"
    outside.mkdir()
    stack.sidecar_volumes[str(outside)] = {"bind": "/srv/outside", "mode": "ro"}
    stack.start_pebble()
    stack.start_app()
    issued(stack)
    code, logs = stack.sidecar_once("renew", "--force")
    assert code == 0, logs
    archive = stack.le_dir / "archive" / stack.domain
    (outside / "cert.pem").write_bytes((archive / "cert1.pem").read_bytes())
    link = stack.le_dir / "live" / stack.domain / "cert.pem"
    link.unlink()
    link.symlink_to("/srv/outside/cert.pem")
    assert "fullchain does not match cert + chain" in certbot_certificates(stack)

    code, plan = stack.sidecar_once("adopt", "--check")
    assert code == 0, plan
    assert f"{stack.domain}: cannot" in plan
    assert "fullchain.pem is not cert.pem followed by chain.pem after the repair" in plan
    assert f"point live/{stack.domain}/*.pem at archive/{stack.domain}/*2.pem" in plan
    code, logs = stack.sidecar_once("renew")
    assert "renewed the sidecar's way" not in logs
    assert not obtains(logs)
    assert not (archive / "cert3.pem").exists(), "nothing copied in"
    assert str(link.readlink()) == "/srv/outside/cert.pem"
    code, status = stack.sidecar_once("status")
    assert f"{stack.domain}: cannot" in status, status
    assert "renewed the sidecar's way" not in status

    link.unlink()  # the repair the line names
    link.symlink_to(f"../../archive/{stack.domain}/cert2.pem")

    assert "fullchain does not match" not in certbot_certificates(stack)
    code, plan = stack.sidecar_once("adopt", "--check")
    assert f"{stack.domain}: sidecar" in plan, plan
