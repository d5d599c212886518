"""The renewal cycle: plan, certbot runs with the app stopped only while it must be, verify."""

from sidecar.cycle.result import CycleResult
from sidecar.cycle.run import run_cycle

__all__ = ["CycleResult", "run_cycle"]
