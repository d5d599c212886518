"""`replaces` on renewal orders against Pebble 2.6, which checks it: a renewal names the
certificate it replaces, and one the CA refuses (its one replacement spent) renews anyway."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest

from tests.e2e.harness import disk_serial, served_serial, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.harness import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PEBBLE_REPLACEMENT = "is a replacement of"  # Pebble's log line for an order with `replaces`
FALLBACK = "once more without `replaces`"


def put_back(snapshot: Path, le_dir: Path) -> None:
    """The volume as it was when `snapshot` was copied (its links relative, as certbot's)."""
    shutil.rmtree(le_dir)
    shutil.copytree(snapshot, le_dir, symlinks=True)


def test_a_renewal_replaces_the_current_certificate_and_a_refused_replacement_renews_once(
    stack: Stack,
):
    """First issuance sends no `replaces`; a forced renewal names cert.pem (Pebble logs the
    replacement); with the tree put back to that first certificate, whose one replacement is
    spent, Pebble refuses the order, and the sidecar orders once more without it: renewed, the
    app stopped once, the new certificate served."""
    pebble = stack.start_pebble()
    app = stack.start_app()
    code, logs = stack.sidecar_once("renew")
    assert code == 0, logs
    first = disk_serial(stack.le_dir, stack.domain)
    assert PEBBLE_REPLACEMENT not in pebble.logs().decode(errors="replace")
    snapshot = stack.tmp / "first"
    shutil.copytree(stack.le_dir, snapshot, symlinks=True)

    code, logs = stack.sidecar_once("renew", "--force")

    assert code == 0, logs
    second = disk_serial(stack.le_dir, stack.domain)
    assert second != first
    assert f"the order for {stack.domain} replaces" in logs
    assert pebble.logs().decode(errors="replace").count(PEBBLE_REPLACEMENT) == 1

    put_back(snapshot, stack.le_dir)
    code, logs = stack.sidecar_once("renew", "--force")

    assert code == 0, logs
    third = disk_serial(stack.le_dir, stack.domain)
    assert third not in (first, second)
    assert logs.count(FALLBACK) == 1, logs
    assert logs.count(f"stopping {app.name} for") == 1, logs
    assert pebble.logs().decode(errors="replace").count(PEBBLE_REPLACEMENT) == 1
    assert stack.state(app)["Running"]
    assert wait_for(
        "new cert served", lambda: served_serial(stack.https_port, stack.domain) == third
    )
