"""One thing that went wrong in a cycle, as data: alerts tell problems apart by kind and lineage,
never by their text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that went wrong in a cycle: what kind of thing (`rateLimited`, `lineageBroken`,
    `verify`, ...), for which lineage (None: the cycle as a whole), in one line for the operator.
    `permanent`: retrying on the short backoff cannot help; `not_before`: a time the CA gave."""

    kind: str
    lineage: str | None
    message: str
    permanent: bool = False
    not_before: datetime | None = None
