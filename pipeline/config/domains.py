"""Search-space domains as users write them: `{loguniform: [lo, hi]}`, `{grid: [...]}`, ..."""
from __future__ import annotations

import math
from typing import Any

LR_RANGE = "lr_range"  # space entry whose bounds come from the LR range test
_INTERVALS = ("loguniform", "uniform", "randint", "int")
_LISTS = ("choice", "grid")


def numbers_read(domain: Any) -> Any:
    """An interval's bounds written `1e-5` read as the number they are: YAML 1.1 takes an
    exponent without a dot for a string, which a plain field converts and a domain refused
    (`expected [low, high] numbers`)."""
    if not isinstance(domain, dict) or len(domain) != 1:
        return domain
    (kind, args), = domain.items()
    if kind not in _INTERVALS or not isinstance(args, list):
        return domain

    def number(value: Any) -> Any:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
        return value

    return {kind: [number(v) for v in args]}


def check_domain(path: str, domain: Any) -> None:
    """Raise ValueError naming `path` unless `domain` is a well-formed search domain."""
    where = f"search.space.{path}"
    if domain == LR_RANGE:
        if path != "train.lr":
            raise ValueError(f"{where}: lr_range only applies to train.lr")
        return
    if not isinstance(domain, dict) or len(domain) != 1:
        raise ValueError(f"{where}: expected one of {_INTERVALS + _LISTS} or 'lr_range'")
    (kind, args), = domain.items()
    if kind in _LISTS:
        if not isinstance(args, list) or not args:
            raise ValueError(f"{where}.{kind}: expected a non-empty list")
        return
    if kind not in _INTERVALS:
        raise ValueError(f"{where}: unknown domain {kind!r} (one of {_INTERVALS + _LISTS})")
    if (not isinstance(args, list) or len(args) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in args)
            or not all(math.isfinite(v) for v in args)):
        raise ValueError(f"{where}.{kind}: expected [low, high] numbers")
    low, high = args
    if low >= high:
        raise ValueError(f"{where}.{kind}: low {low} must be below high {high}")
    if kind == "loguniform" and low <= 0:
        raise ValueError(f"{where}.loguniform: bounds must be positive")
    if kind in ("randint", "int") and not all(float(v).is_integer() for v in args):
        raise ValueError(f"{where}.{kind}: bounds must be integers")


def domain_values(domain: Any) -> list[Any]:
    """Representative values of a domain (its ends or members), to type-check the field."""
    if domain == LR_RANGE:
        return []
    (_, args), = domain.items()
    return list(args)
