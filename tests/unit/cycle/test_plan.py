from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sidecar.cycle.plan import Plan, changed_lineages, expected_renewals, needs_issuance, plan_cycle
from sidecar.volume.specs import CertSpec
from tests.unit.helpers import cert_info

A = CertSpec("a.example", ("a.example", "www.a.example"))
B = CertSpec("b.example", ("b.example",))


def test_missing_certificate_needs_issuance():
    """No certificate yet: certonly must obtain one."""
    assert needs_issuance(A, None)


def test_certificate_with_the_configured_names_needs_no_issuance():
    """Same names in any order: renewal is certbot renew's business."""
    assert not needs_issuance(A, cert_info(("www.a.example", "a.example")))


def test_added_or_removed_name_needs_issuance():
    """A changed DOMAINS list re-issues the lineage with the new names."""
    assert needs_issuance(A, cert_info(("a.example",)))
    assert needs_issuance(A, cert_info(("a.example", "www.a.example", "old.a.example")))


def test_first_cycle_issues_everything_and_renews_nothing():
    """With an empty tree every certificate is obtained and `renew` is skipped."""
    assert plan_cycle((A, B), {"a.example": None, "b.example": None}) == Plan(
        issue=(A, B), renew=False
    )


def test_up_to_date_tree_only_renews():
    """Existing lineages with the configured names: `certbot renew` decides what is due."""
    lineages = {"a.example": cert_info(A.domains), "b.example": cert_info(B.domains)}
    assert plan_cycle((A, B), lineages) == Plan(issue=(), renew=True)


def test_only_the_missing_certificate_is_issued_and_the_rest_renewed():
    """A new certificate added to DOMAINS is issued next to renewing the existing one."""
    assert plan_cycle((A, B), {"a.example": cert_info(A.domains), "b.example": None}) == Plan(
        issue=(B,), renew=True
    )


def test_configured_lineage_missing_from_the_snapshot_is_issued():
    """A spec without an entry in the snapshot counts as having no certificate."""
    assert plan_cycle((A,), {}) == Plan(issue=(A,), renew=False)


def test_unconfigured_lineage_still_triggers_renew():
    """A lineage certbot knows but DOMAINS no longer lists keeps being renewed."""
    lineages = {"a.example": cert_info(A.domains), "old.example": cert_info(("old.example",))}
    assert plan_cycle((A,), lineages) == Plan(issue=(), renew=True)


def test_a_lineage_the_tree_holds_but_certbot_cannot_load_is_never_issued():
    """No readable certificate, or other names, for a lineage certbot cannot load: certonly
    would save NAME-0001 beside it, so it is held (and reported), the others still issued."""
    lineages = {"a.example": None, "b.example": cert_info(("b.example", "old.b.example"))}
    plan = plan_cycle((A, B), lineages, held={"a.example", "b.example"})
    assert plan == Plan(issue=(), renew=True, held=(A, B))
    assert plan_cycle((A, B), {"a.example": None, "b.example": None}, held={"a.example"}) == Plan(
        issue=(B,), renew=False, held=(A,)
    )


def test_a_held_lineage_with_its_certificate_needs_nothing():
    """Held but up to date: nothing to obtain, nothing to report here (renew decides)."""
    lineages = {"a.example": cert_info(A.domains)}
    assert plan_cycle((A,), lineages, held={"a.example"}) == Plan(issue=(), renew=True)


def test_issue_keeps_the_configured_order():
    """Certificates are obtained in DOMAINS order."""
    assert plan_cycle((B, A), {}).issue == (B, A)


def test_new_serial_marks_a_lineage_changed():
    """A renewed certificate differs from the one before."""
    before = {"a.example": cert_info(serial=1)}
    after = {"a.example": cert_info(serial=2)}
    assert changed_lineages(before, after) == ("a.example",)


def test_same_certificate_is_not_a_change():
    """Nothing renewed, nothing changed."""
    snapshot = {"a.example": cert_info(), "b.example": None}
    assert changed_lineages(snapshot, dict(snapshot)) == ()


def test_first_certificate_of_a_lineage_is_a_change():
    """Issued where there was none (None before, or absent from the snapshot)."""
    after = {"a.example": cert_info(), "b.example": cert_info(("b.example",))}
    assert changed_lineages({"a.example": None}, after) == ("a.example", "b.example")


def test_certificate_that_disappeared_is_not_a_change():
    """Only new certificates count; a lineage without one has nothing to load."""
    assert changed_lineages({"a.example": cert_info()}, {"a.example": None}) == ()


def test_changed_lineages_are_sorted_by_name():
    """Stable output for logs and the state file."""
    after = {"z.example": cert_info(serial=2), "a.example": cert_info(serial=3)}
    before = {"z.example": cert_info(serial=1), "a.example": cert_info(serial=1)}
    assert changed_lineages(before, after) == ("a.example", "z.example")


def test_expected_renewals_counts_what_certbot_will_renew():
    """Due lineages by certbot's default rule; with --force every existing one."""
    now = datetime(2026, 6, 1, tzinfo=UTC)
    fresh = cert_info(not_before=now - timedelta(days=1))
    old = cert_info(not_before=now - timedelta(days=80))
    lineages = {"a": fresh, "b": old, "c": None}
    assert expected_renewals(lineages, now, None, force=False) == 1
    assert expected_renewals(lineages, now, None, force=True) == 2
    assert expected_renewals(lineages, now, timedelta(days=90), force=False) == 2
