"""Adopting a tree made by certbot on a host (apache, nginx, webroot): real lineages from Pebble,
their renewal confs rewritten the way a host install leaves them, then renewed by the sidecar."""

from __future__ import annotations

import re
import shutil
import stat
from typing import TYPE_CHECKING

import configobj
import pytest

from tests.e2e.harness import (
    APP_IMAGE,
    SIDECAR_IMAGE,
    disk_serial,
    free_ports,
    served_serial,
    wait_for,
)

if TYPE_CHECKING:
    from pathlib import Path

    from docker.models.containers import Container

    from tests.e2e.harness import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

APP_UID = 4321  # the non-root app reading one lineage (FILES_UID)
HOST = "/srv/letsencrypt"  # the config dir a host tree was made under


def extra_app(stack: Stack, name: str, port: int, *, user: str | None = None) -> Container:
    """Another app container with the stack's label (stopped and started with the others),
    serving lineage `name` over HTTPS on 127.0.0.1:port, as `user` if given."""
    options: dict[str, object] = {"user": user} if user else {}
    return stack._run(
        APP_IMAGE,
        f"app-{name.split('-', 1)[0]}",
        environment={"CERT_NAME": name, "HTTP_PORT": "8080", "HTTPS_PORT": "8443"},
        labels={"certbot-sidecar.test": stack.uid},
        ports={"8443/tcp": ("127.0.0.1", port)},
        volumes={str(stack.le_dir): {"bind": "/etc/letsencrypt", "mode": "ro"}},
        init=True,
        **options,
    )


def edit_conf(le_dir: Path, name: str, *, top: dict[str, str], params: dict[str, object]) -> None:
    """Rewrite a renewal conf as certbot writes it (configobj); a None value removes the key."""
    path = le_dir / "renewal" / f"{name}.conf"
    conf = configobj.ConfigObj(str(path), encoding="utf-8", default_encoding="utf-8")
    for section, values in ((conf, top), (conf["renewalparams"], params)):
        for key, value in values.items():
            if value is None:
                section.pop(key, None)
            else:
                section[key] = value
    with path.open("wb") as handle:
        conf.write(handle)


def as_host_left_them(le_dir: Path, apache: str, nginx: str, webroot: str) -> None:
    """apache/apache with systemctl hooks; nginx/nginx made under another config dir with a
    `service nginx reload` deploy hook; webroot to a path that does not exist here."""
    edit_conf(
        le_dir,
        apache,
        top={},
        params={
            "authenticator": "apache",
            "installer": "apache",
            "apache_server_root": "/etc/apache2",
            "pre_hook": "systemctl stop apache2",
            "post_hook": "systemctl start apache2",
            "renew_hook": "systemctl reload apache2",
        },
    )
    edit_conf(
        le_dir,
        nginx,
        top={
            "archive_dir": f"{HOST}/archive/{nginx}",
            **{
                k: f"{HOST}/live/{nginx}/{k}.pem" for k in ("cert", "privkey", "chain", "fullchain")
            },
        },
        params={
            "authenticator": "nginx",
            "installer": "nginx",
            "nginx_server_root": "/etc/nginx",
            "renew_hook": "service nginx reload",
            "post_hook": None,
            "config_dir": HOST,
            "work_dir": "/srv/lib/letsencrypt",
            "logs_dir": "/srv/log/letsencrypt",
        },
    )
    edit_conf(
        le_dir,
        webroot,
        top={},
        params={
            "authenticator": "webroot",
            "installer": None,
            "webroot_path": [f"/var/www/{webroot}"],
            "webroot_map": {webroot: f"/var/www/{webroot}"},
        },
    )


def params(le_dir: Path, name: str) -> dict[str, object]:
    conf = configobj.ConfigObj(str(le_dir / "renewal" / f"{name}.conf"), encoding="utf-8")
    return dict(conf["renewalparams"])


def started_at(stack: Stack, container: Container) -> str:
    return str(stack.state(container)["StartedAt"])


def check_plan(plan: str, apache: str, nginx: str, webroot: str, old: str) -> None:
    """`adopt --check` names every change it would make."""
    assert f"{apache}: sidecar" in plan
    assert "authenticator apache -> sidecar" in plan
    assert "pre_hook 'systemctl stop apache2' removed" in plan
    assert "renew_hook 'service nginx reload' removed" in plan
    assert f"archive_dir {HOST}/archive/{nginx} -> /etc/letsencrypt/archive/{nginx}" in plan
    assert f"webroot path /var/www/{webroot} does not exist in the container" in plan
    assert f"{old}: ignore" in plan
    assert "nothing was changed" in plan


def check_confs(le_dir: Path, adopted: tuple[str, ...], old: str, confs: dict[str, bytes]) -> None:
    """The sidecar's way in certbot's format; the host's conf kept byte for byte beside it."""
    for name in adopted:
        saved = params(le_dir, name)
        assert saved["authenticator"] == "sidecar", (name, saved)
        assert saved["post_hook"] == "sidecar hook post"
        host_only = {"pre_hook", "renew_hook", "apache_server_root", "nginx_server_root"}
        assert not host_only & set(saved), saved
        assert "webroot_map" not in saved
        (backup,) = (le_dir / "renewal").glob(f"{name}.conf.sidecar-backup-*")
        assert backup.read_bytes() == confs[f"{name}.conf"]
    assert params(le_dir, adopted[1])["config_dir"] == "/etc/letsencrypt"
    assert params(le_dir, old)["autorenew"] == "False"


def check_files(le_dir: Path, name: str) -> None:
    """FILES_UID: the app owns its key (0600, nobody else reads it); COMBINED_PEM written."""
    live = le_dir / "live" / name
    key = (live / "privkey.pem").resolve()
    assert key.stat().st_uid == APP_UID
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    combined = live / "combined.pem"
    assert combined.read_bytes() == key.read_bytes() + (live / "fullchain.pem").read_bytes()
    assert stat.S_IMODE(combined.stat().st_mode) == 0o600


def test_host_lineages_are_adopted_and_renewed_together_with_one_app_outage(stack: Stack):
    """apache, nginx (tree made elsewhere) and webroot lineages, two of them not in DOMAINS:
    `adopt --check` changes nothing; then one cycle rewrites their confs (backups beside them),
    renews all three with the apps stopped once and started again, and every app serves its new
    certificate — the non-root one too (FILES_UID). An ignored lineage is left as it was."""
    stack.start_pebble()
    apache = stack.domain
    nginx, webroot, old = (f"{tag}-{stack.uid}.example.com" for tag in ("nginx", "webroot", "old"))
    adopted = (apache, nginx, webroot)
    nginx_port, webroot_port = free_ports(2)
    files = {"FILES_UID": str(APP_UID), "COMBINED_PEM": "true"}
    app = stack.start_app()
    code, logs = stack.sidecar_once("renew", DOMAINS=f"{apache};{nginx};{webroot};{old}", **files)
    assert code == 0, logs
    first = {n: disk_serial(stack.le_dir, n) for n in (*adopted, old)}
    apps = {
        apache: (app, stack.https_port),
        nginx: (extra_app(stack, nginx, nginx_port, user=f"{APP_UID}:{APP_UID}"), nginx_port),
        webroot: (extra_app(stack, webroot, webroot_port), webroot_port),
    }
    for name, (_container, port) in apps.items():
        wait_for(f"{name} served", lambda n=name, p=port: served_serial(p, n) == first[n])
    as_host_left_them(stack.le_dir, apache, nginx, webroot)
    confs = {p.name: p.read_bytes() for p in (stack.le_dir / "renewal").iterdir()}

    env = {"DOMAINS": apache, "IGNORE_LINEAGES": old, **files}
    code, plan = stack.sidecar_once("adopt", "--check", **env)
    assert code == 0, plan
    check_plan(plan, apache, nginx, webroot, old)
    assert {p.name: p.read_bytes() for p in (stack.le_dir / "renewal").iterdir()} == confs
    before = {name: started_at(stack, c) for name, (c, _port) in apps.items()}

    code, logs = stack.sidecar_once("renew", RENEW_BEFORE_EXPIRY="100d", **env)

    assert code == 0, logs
    new = {n: disk_serial(stack.le_dir, n) for n in (*adopted, old)}
    assert all(new[n] != first[n] for n in adopted), logs
    assert new[old] == first[old], "an ignored lineage is not renewed"
    stops = [line for line in logs.splitlines() if re.search(r"\bstopping cbs-", line)]
    assert len(stops) == 1, stops  # three certificates due together: one outage
    for name, (container, port) in apps.items():
        assert stack.state(container)["Running"], name
        assert started_at(stack, container) != before[name], f"{name}'s app was not restarted"
        wait_for(f"{name} new cert served", lambda n=name, p=port: served_serial(p, n) == new[n])
    check_confs(stack.le_dir, adopted, old, confs)
    check_files(stack.le_dir, nginx)
    code, status = stack.sidecar_once("status", **env)
    assert code == 0, status
    for host_way in ("apache/apache", "nginx/nginx", "webroot/none"):
        assert f"adopted from {host_way}" in status


def test_a_tree_with_an_undecodable_conf_and_a_production_lineage_without_server(stack: Stack):
    """One conf with a Latin-1 byte (certbot cannot read it), one production lineage saved
    without a `server` line, one healthy lineage due, ACME_SERVER a staging-like URL of the test
    CA: the healthy one renews with one stop, the production one keeps no server (certbot's
    default, production), the broken conf is left byte for byte, nothing crashes and `status`
    lists all three."""
    stack.start_pebble()
    healthy = stack.domain
    prod, broken = (f"{tag}-{stack.uid}.example.com" for tag in ("prod", "latin"))
    stack.start_app()
    code, logs = stack.sidecar_once("renew", DOMAINS=f"{healthy};{prod};{broken}")
    assert code == 0, logs
    first = {n: disk_serial(stack.le_dir, n) for n in (healthy, prod, broken)}
    edit_conf(stack.le_dir, healthy, top={"renew_before_expiry": "100 days"}, params={})
    edit_conf(stack.le_dir, prod, top={}, params={"server": None})
    bad = stack.le_dir / "renewal" / f"{broken}.conf"
    bad.write_bytes(b"# certificat g\xe9r\xe9 par l'h\xf4te\n" + bad.read_bytes())
    saved = bad.read_bytes()
    env = {"DOMAINS": f"{healthy};{prod}", "ACME_SERVER": f"{stack.acme_url}?staging"}

    code, plan = stack.sidecar_once("adopt", "--check", **env)
    assert code == 0, plan
    assert "is not UTF-8 (byte 0xe9 on line 1)" in plan
    assert f"{prod}: own" in plan, plan

    code, logs = stack.sidecar_once("renew", **env)

    assert code == 0, logs
    assert "Traceback" not in logs
    assert disk_serial(stack.le_dir, healthy) != first[healthy], logs
    assert disk_serial(stack.le_dir, prod) == first[prod]
    stops = [line for line in logs.splitlines() if re.search(r"\bstopping cbs-", line)]
    assert len(stops) == 1, stops
    assert "server" not in params(stack.le_dir, prod), "a production lineage moved to staging"
    assert "staging" not in str(params(stack.le_dir, healthy)["server"])
    assert bad.read_bytes() == saved
    code, status = stack.sidecar_once("status", **env)
    assert code == 0, status
    for name in (healthy, prod, broken):
        assert status.count(name) >= 2, (name, status)  # its row and its lineage block


def register_second_account(stack: Stack) -> str:
    """A second real account at the test CA, made by certbot in a config dir of its own and put
    next to the first one in the tree (as a host that registered twice has it); its id."""
    other = stack.tmp / "other-config"
    other.mkdir()
    container = stack._run(
        SIDECAR_IMAGE,
        "register",
        entrypoint="certbot",
        command=[
            "register",
            "-n",
            "--agree-tos",
            "--register-unsafely-without-email",
            "--server",
            stack.acme_url,
            "--config-dir",
            "/other",
        ],
        network_mode="host",
        environment={"REQUESTS_CA_BUNDLE": "/pebble-ca/ca.pem"},
        volumes={
            str(other): {"bind": "/other", "mode": "rw"},
            str(stack.ca_dir): {"bind": "/pebble-ca", "mode": "ro"},
        },
    )
    assert container.wait(timeout=120)["StatusCode"] == 0, container.logs().decode()
    server_dir = f"localhost:{stack.ports[0]}/dir"
    (account,) = (other / "accounts" / server_dir).iterdir()
    shutil.copytree(account, stack.le_dir / "accounts" / server_dir / account.name)
    return account.name


def test_a_lineage_among_two_accounts_of_its_ca_renews_with_its_own(stack: Stack):
    """Two accounts for the CA: certbot under `--server` would ignore the conf's `account` and
    ask which to use; the sidecar's renew leaves the server to the confs, so certbot takes the
    conf's account and the renewal succeeds (forced and due alike)."""
    stack.start_pebble()
    stack.start_app()
    code, logs = stack.sidecar_once("renew")
    assert code == 0, logs
    first = disk_serial(stack.le_dir, stack.domain)
    mine = params(stack.le_dir, stack.domain)["account"]
    other = register_second_account(stack)
    assert other != mine

    code, plan = stack.sidecar_once("adopt", "--check")
    assert code == 0, plan
    assert f"renewed with account {mine} named" in plan, plan

    code, logs = stack.sidecar_once("renew", "--force")

    assert code == 0, logs
    assert "Please choose an account" not in logs
    assert disk_serial(stack.le_dir, stack.domain) != first, logs
    assert params(stack.le_dir, stack.domain)["account"] == mine
