"""The sidecar image as built: its OCI labels, its healthcheck command."""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING

import pytest

from tests.e2e.harness import ROOT, SIDECAR_IMAGE

if TYPE_CHECKING:
    import docker

pytestmark = pytest.mark.e2e


def test_the_image_carries_its_oci_labels(client: docker.DockerClient):
    """Title, description, licenses, version from pyproject.toml; revision and source from the
    build (their defaults when not given)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    image = client.images.get(SIDECAR_IMAGE)
    labels = {
        k.removeprefix("org.opencontainers.image."): v
        for k, v in image.labels.items()
        if k.startswith("org.opencontainers.image.")
    }
    expected = {
        "title": project["name"],
        "description": project["description"],
        "licenses": project["license"],
        "version": project["version"],
        "revision": "unknown",
        "source": "",
    }
    assert {k: labels.get(k) for k in expected} == expected  # a base image may add its own
    assert image.attrs["Config"]["Healthcheck"]["Test"] == ["CMD", "sidecar", "health"]
