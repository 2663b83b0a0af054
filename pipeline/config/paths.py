"""Dotted paths (`train.lr`, `search.space.train.lr`) into nested config dicts."""
from __future__ import annotations

from typing import Any

from pipeline.config.base import ConfigError

_FREE_FORM = (("search", "space"), ("params",))  # mappings whose keys may hold dots


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set `tree[a][b][c] = value` for path `a.b.c`; under search.space and params the rest
    of the path is one key (`search.space.train.lr` sets space["train.lr"])."""
    parts = path.split(".")
    for i in range(1, len(parts)):
        if tuple(parts[:i]) in _FREE_FORM:
            parts = parts[:i] + [".".join(parts[i:])]
            break
    node = tree
    for key in parts[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{path}: {key} is a value, not a section")
    node[parts[-1]] = value


def get_path(tree: dict[str, Any], path: str) -> Any:
    """`tree[a][b]` for `a.b`; params keys may hold dots."""
    head, _, rest = path.partition(".")
    if head == "params" or not rest:
        return tree[head][rest] if rest else tree[head]
    return get_path(tree[head], rest)
