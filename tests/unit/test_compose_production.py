"""config/compose.production.yaml, the file the README sends users to: valid for Compose (linted by
`docker compose config`), Let's Encrypt and no test CA, a configuration the sidecar accepts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar import loader
from sidecar.guard import config as guard_config
from sidecar.volume.ca import LETSENCRYPT

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "config" / "compose.production.yaml"


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    """The file as Compose resolves it (`docker compose config`); an error fails the test."""
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI with Compose v2 is missing: tests/prepare.sh installs it")
    done = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_it_is_the_app_and_the_sidecar_with_lets_encrypt(project):
    """No Pebble, no test CA bundle: a copy of it gets trusted certificates."""
    assert set(project["services"]) == {"app", "certbot", "guard"}
    env = project["services"]["certbot"]["environment"]
    assert env["ACME_SERVER"] == "letsencrypt"
    assert "ACME_CA_BUNDLE" not in env


def test_its_sidecar_configuration_is_valid(project, tmp_path):
    """The settings accept it as it stands (the names are examples to replace)."""
    env = project["services"]["certbot"]["environment"]
    config = loader.load({**env, "CONFIG_DIR": str(tmp_path)})
    assert config.ca.directory == LETSENCRYPT
    assert config.verify.on


def test_the_sidecar_targets_the_app_by_its_label(project):
    """APP_LABEL selects exactly the label the app carries."""
    key, _, value = project["services"]["certbot"]["environment"]["APP_LABEL"].partition("=")
    assert project["services"]["app"]["labels"] == {key: value}


def test_the_volume_and_the_engine_are_where_the_sidecar_needs_them(project):
    """The whole volume (writable) for the sidecar, read-only for the app; the guard's socket
    (not the engine's); the host network (port 80 for the challenge)."""
    app, sidecar = project["services"]["app"], project["services"]["certbot"]
    mounts = {v["target"]: v for v in sidecar["volumes"]}
    assert mounts["/etc/letsencrypt"]["source"] == "letsencrypt"
    assert not mounts["/etc/letsencrypt"].get("read_only")
    assert mounts["/run/guard"]["source"] == "guard"
    assert "/var/run/docker.sock" not in mounts
    assert sidecar["environment"]["DOCKER_HOST"] == "unix:///run/guard/docker.sock"
    assert sidecar["network_mode"] == "host"
    (volume,) = app["volumes"]
    assert (volume["source"], volume["target"], volume["read_only"]) == (
        "letsencrypt",
        "/etc/letsencrypt",
        True,
    )


def test_it_builds_the_image_from_the_repository(project):
    """`build:` names this repository's Dockerfile, so `up --build` makes the image."""
    build = project["services"]["certbot"]["build"]
    assert Path(build["context"]) == ROOT
    assert (ROOT / build["dockerfile"]).is_file()


def test_the_readme_shows_this_file():
    """README "Use it with your app" shows the file's services, not a copy drifting apart."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Use it with your app") :]
    block = section[section.index("```yaml\n") + len("```yaml\n") :]
    shown = yaml.safe_load(block[: block.index("\n```\n")])
    assert shown == {k: v for k, v in yaml.safe_load(COMPOSE.read_text()).items() if k != "name"}


def test_only_the_guard_holds_the_engines_socket_and_guards_the_sidecars_targets(project):
    """The guard mounts the socket, serves it on the shared volume, has no network, and selects
    the same targets as the sidecar (its settings valid as they stand)."""
    guard, sidecar = project["services"]["guard"], project["services"]["certbot"]
    mounts = {v["target"]: v for v in guard["volumes"]}
    assert mounts["/var/run/docker.sock"]["type"] == "bind"
    assert mounts["/run/guard"]["source"] == "guard"
    assert guard["network_mode"] == "none"
    assert guard["command"] == ["guard"]
    assert guard["image"] == sidecar["image"]
    spec = guard_config.read(guard["environment"])
    assert spec.listen == Path("/run/guard/docker.sock")
    assert spec.targets.label == sidecar["environment"]["APP_LABEL"]
