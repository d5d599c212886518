"""The adoption as the operator reads it: the plan's text and `status --json`."""

from __future__ import annotations

from sidecar.report.adoption import decision_json, render
from sidecar.volume.adopt import decide
from tests.unit.helpers import T0
from tests.unit.volume.test_adopt import PEBBLE, found, here, host_params


def test_render_shows_each_lineage_its_changes_and_the_tree_findings():
    """The report: one block per lineage, then the tree's problems."""
    decision = decide(found(params=host_params(server=PEBBLE, account="acc-pebble")), here())
    text = render([decision], ["live/x/cert.pem -> ../../archive/x/cert1.pem is broken"])
    assert text.startswith("a.example: sidecar")
    assert "  change:  authenticator apache -> sidecar" in text
    assert "tree:\n  live/x/cert.pem" in text
    assert render([], []) == "no lineages in the tree yet"


def test_tokens_in_saved_hooks_are_masked_in_what_is_shown():
    """A deploy hook posting to a webhook: the plan and `status --json` never show its token."""
    hook = "curl -fsS https://hooks.slack.com/services/T0001/B0002/abcdefghijklmnopqrstuvwx"
    lineage = found(params=host_params(renew_hook=hook, pre_hook="notify --token=s3cr3tvalue"))
    decision = decide(lineage, here(), now=T0)
    shown = decision.found + " ".join(decision.changes) + str(decision_json(decision))
    assert "abcdefghijklmnopqrstuvwx" not in shown
    assert "s3cr3tvalue" not in shown
    assert "hooks.slack.com" in shown
