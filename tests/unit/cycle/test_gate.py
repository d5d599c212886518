"""The cycle's pre-flight: what it refuses is neither ordered nor stopped for, the rest goes on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from sidecar import shutdown
from sidecar.cycle import run as cycle
from sidecar.cycle.gate import NAMES, NO_ROOM, described, refusals
from sidecar.cycle.names import Verdict
from sidecar.errors import SidecarError
from tests.unit.helpers import FakeCertbot, FakeControl, container, install_cert, make_pem
from tests.unit.helpers import make_settings as settings

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from sidecar.cycle.result import CycleResult
    from sidecar.loader import Config
    from sidecar.volume.specs import CertSpec

CAA_LINE = 'CAA forbids b.example: b.example CAA 0 issue "other-ca.example" allows only ...'


@dataclass
class FakePreflight:
    """Room or not; the lineages whose names fail; what it was asked about."""

    full: list[str] = field(default_factory=list)
    failing: dict[str, str] = field(default_factory=dict)
    asked: list[tuple[str, ...]] = field(default_factory=list)

    def room(self) -> list[str]:
        return self.full

    def names(self, specs: Sequence[CertSpec]) -> tuple[Verdict, ...]:
        self.asked.append(tuple(s.name for s in specs))
        return tuple(
            Verdict(s.name, (self.failing[s.name],) if s.name in self.failing else ())
            for s in specs
        )


def _due(config: Config, *names: str) -> None:
    """Certificates 80 days into their 90: due."""
    for name in names:
        install_cert(config.config_dir, name, make_pem((name,), datetime.now(UTC) - timedelta(80)))


def _run(config: Config, pre: FakePreflight, certbot: FakeCertbot) -> CycleResult:
    control = FakeControl(container("web"))
    return cycle.run_cycle(config.cycle, certbot, control, shutdown.REQUEST, preflight=pre)


def _config(tmp_path: Path) -> Config:
    return settings(tmp_path / "le", DOMAINS="a.example;b.example")


def test_a_refused_lineage_is_not_renewed_and_the_other_is(tmp_path: Path) -> None:
    """b.example's CAA forbids the CA: only a.example is renewed; b is a permanent problem."""
    config = _config(tmp_path)
    _due(config, "a.example", "b.example")
    certbot = FakeCertbot()
    result = _run(config, FakePreflight(failing={"b.example": CAA_LINE}), certbot)
    assert [run.lineage for run in certbot.runs] == ["a.example"]
    (problem,) = result.problems
    assert (problem.kind, problem.lineage, problem.permanent) == (NAMES, "b.example", True)
    assert problem.message == f"b.example: not renewed: {CAA_LINE}"


def test_every_due_lineage_refused_starts_no_certbot(tmp_path: Path) -> None:
    """Both refused: certbot is not started at all."""
    config = _config(tmp_path)
    _due(config, "a.example", "b.example")
    certbot = FakeCertbot()
    failing = {"a.example": "a.example does not resolve", "b.example": CAA_LINE}
    result = _run(config, FakePreflight(failing=failing), certbot)
    assert certbot.runs == []
    assert {p.lineage for p in result.problems} == {"a.example", "b.example"}


def test_a_new_lineage_refused_is_not_ordered(tmp_path: Path) -> None:
    """No certificate yet and a name without a record: no certonly for it."""
    config = _config(tmp_path)
    _due(config, "a.example")
    certbot = FakeCertbot()
    _run(config, FakePreflight(failing={"b.example": "b.example does not resolve"}), certbot)
    assert [(r.command, r.lineage) for r in certbot.runs] == [("renew", "a.example")]


def test_a_full_volume_orders_nothing(tmp_path: Path) -> None:
    """No room: no certbot run at all, one problem naming the directory, the names not asked."""
    config = _config(tmp_path)
    _due(config, "a.example", "b.example")
    certbot = FakeCertbot()
    pre = FakePreflight(full=["/etc/letsencrypt has 12 KiB and 3 inodes free, ..."])
    result = _run(config, pre, certbot)
    assert certbot.runs == []
    assert pre.asked == []
    (problem,) = result.problems
    assert problem.kind == NO_ROOM
    assert "/etc/letsencrypt has 12 KiB" in problem.message


def test_nothing_due_asks_nothing(tmp_path: Path) -> None:
    """Fresh certificates: no pre-flight; the usual single renew run."""
    config = _config(tmp_path)
    for name in ("a.example", "b.example"):
        install_cert(config.config_dir, name, make_pem((name,), datetime.now(UTC)))
    certbot = FakeCertbot()
    pre = FakePreflight(full=["full"])
    result = _run(config, pre, certbot)
    assert pre.asked == []
    assert result.ok
    assert [(r.command, r.lineage) for r in certbot.runs] == [("renew", None)]


def test_all_passing_keeps_one_run_for_all(tmp_path: Path) -> None:
    """Nothing refused: one `certbot renew` for both (one app outage)."""
    config = _config(tmp_path)
    _due(config, "a.example", "b.example")
    certbot = FakeCertbot()
    pre = FakePreflight()
    _run(config, pre, certbot)
    assert pre.asked == [("a.example", "b.example")]
    assert [(r.command, r.lineage) for r in certbot.runs] == [("renew", None)]


def test_warnings_are_logged_not_failed() -> None:
    """A verdict with only warnings makes no problem."""
    assert refusals([Verdict("a", (), ("a.example has an AAAA record ...",))]) == []


def test_the_dry_run_names_step_fails_with_each_refused_lineage() -> None:
    """`names` FAILED: one line per refused lineage, naming the record."""
    verdicts = [Verdict("a.example"), Verdict("b.example", (CAA_LINE,))]
    with pytest.raises(SidecarError, match=r"^b\.example: not renewed: CAA forbids b\.example"):
        described(verdicts)


def test_the_dry_run_names_step_passes_with_its_warnings() -> None:
    """`names` ok: the count, then each warning and each name DNS did not answer for."""
    verdicts = [
        Verdict("a.example", (), ("a.example has an AAAA record",)),
        Verdict("b.example", unknown=("b.example",)),
    ]
    text = described(verdicts)
    assert text.startswith("the names of 2 certificate(s) resolve and CAA allows the CA")
    assert "warning: a.example: a.example has an AAAA record" in text
    assert "b.example: no DNS answer in time for b.example" in text


def test_a_refused_change_of_names_does_not_hold_back_a_due_renewal(tmp_path: Path) -> None:
    """a.example (fresh, its names changed) refused; b.example due: b is renewed all the same."""
    config = settings(tmp_path / "le", DOMAINS="a.example,www.a.example;b.example")
    install_cert(config.config_dir, "a.example", make_pem(("a.example",), datetime.now(UTC)))
    _due(config, "b.example")
    certbot = FakeCertbot()
    _run(config, FakePreflight(failing={"a.example": "www.a.example does not resolve"}), certbot)
    assert [(r.command, r.lineage) for r in certbot.runs] == [("renew", "b.example")]
