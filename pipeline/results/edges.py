"""Best values at the edge of their search range: the optimum may lie beyond the range.

Only intervals count (uniform, loguniform, int, lr_range): a list of choices or grid values is
the set the user wants tried, not a range to widen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pipeline.config import LR_RANGE

EDGE_FRACTION = 0.05  # of the range's width (in log space for log domains)
_INTERVALS = ("loguniform", "uniform", "randint", "int")


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    log: bool

    def position(self, value: float) -> float:
        """Where `value` lies from low (0) to high (1), in log space for log domains."""
        if self.log:
            return math.log(value / self.low) / math.log(self.high / self.low)
        return (value - self.low) / (self.high - self.low)


def interval(spec: Any, lr_bounds: tuple[float, float] | None = None) -> Interval | None:
    """The searched interval of a space entry; None for lists (and lr_range without bounds)."""
    if spec == LR_RANGE:
        return Interval(*lr_bounds, log=True) if lr_bounds else None
    (kind, args), = spec.items()
    if kind not in _INTERVALS:
        return None
    return Interval(float(args[0]), float(args[1]), kind == "loguniform")


def edge(value: float, span: Interval, fraction: float = EDGE_FRACTION) -> str | None:
    """"low" or "high" when `value` lies within `fraction` of that bound, else None."""
    where = span.position(value)
    if where <= fraction:
        return "low"
    if where >= 1 - fraction:
        return "high"
    return None


def edge_warnings(best: dict[str, Any], space: dict[str, Any],
                  lr_bounds: tuple[float, float] | None = None) -> dict[str, str]:
    """Searched path -> a one-line warning, for each interval whose best value is at an edge."""
    warnings = {}
    for path, spec in space.items():
        span = interval(spec, lr_bounds)
        if span is None or best.get(path) is None:
            continue
        side = edge(float(best[path]), span)
        if side is not None:
            warnings[path] = (f"{path}: the best value {float(best[path]):.4g} is at the {side} "
                              f"edge of [{span.low:.4g}, {span.high:.4g}]; the optimum may lie "
                              "beyond it, widen the range")
    return warnings
