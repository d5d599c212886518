"""The sidecar's state file on the shared volume: last cycle, failures, next check."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sidecar.files import read_json, write_json

if TYPE_CHECKING:
    from pathlib import Path

STATE = "state.json"


@dataclass(frozen=True, slots=True)
class State:
    """What `status` and `health` read; written after every cycle and every schedule decision."""

    last_cycle_at: datetime | None = None
    last_result: str = "never run"
    last_success_at: datetime | None = None
    failures: int = 0
    next_check_at: datetime | None = None
    renewed: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


def _when(raw: Any) -> datetime | None:  # noqa: ANN401
    return datetime.fromisoformat(raw) if raw else None


def load_state(state_dir: Path) -> State:
    data = read_json(state_dir / STATE) or {}
    return State(
        last_cycle_at=_when(data.get("last_cycle_at")),
        last_result=data.get("last_result", "never run"),
        last_success_at=_when(data.get("last_success_at")),
        failures=int(data.get("failures", 0)),
        next_check_at=_when(data.get("next_check_at")),
        renewed=tuple(data.get("renewed", ())),
    )


def save_state(state_dir: Path, state: State) -> None:
    write_json(state_dir / STATE, state.to_json())
