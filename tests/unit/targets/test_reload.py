"""Loading a new certificate: the one restart-or-signal decision."""

from __future__ import annotations

from sidecar.targets.reload import load_certificate, reload_signal_for
from tests.unit.helpers import FakeControl, container, service


def test_reload_signal_is_sent_unless_a_retry_needs_a_restart():
    """RELOAD_SIGNAL when set; a restart without it, or when a reload already failed to take."""
    assert reload_signal_for("SIGHUP", retry=False) == "SIGHUP"
    assert reload_signal_for("SIGHUP", retry=True) is None
    assert reload_signal_for(None, retry=False) is None


def test_a_service_reading_secrets_is_restarted_even_with_a_reload_signal():
    """Its files change only in new tasks: a signal could not help, `service update --force`
    does; a container next to it still gets the signal."""
    control = FakeControl(container("web"), service("shop_web", secret=True))
    targets = control.targets()
    assert load_certificate(control, targets, "SIGHUP") == []
    assert control.calls == [("signal SIGHUP", "web"), ("restart", "shop_web")]


def test_a_service_reading_the_volume_gets_the_signal():
    """Volume mode: the signal goes to the service (its tasks on this node)."""
    control = FakeControl(service("shop_web"))
    load_certificate(control, control.targets(), "SIGHUP")
    assert control.calls == [("signal SIGHUP", "shop_web")]
