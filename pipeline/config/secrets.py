"""Which config values are secrets, so that no MLflow param, artifact or terminal line shows one."""
from __future__ import annotations

import os
import re
from typing import Any

SECRET_NAME = re.compile(r"(secret|password|passwd|token|api_?key|access_?key|credential)",
                         re.IGNORECASE)
AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")


def looks_secret(name: str, value: Any) -> bool:
    """Named like a secret, shaped like an AWS key id, or equal to a secret-named env var."""
    text = str(value)
    if SECRET_NAME.search(name) or AWS_KEY_ID.search(text):
        return True
    return len(text) >= 6 and any(text == v for k, v in os.environ.items()
                                  if SECRET_NAME.search(k))


def redact(tree: Any, name: str = "") -> Any:
    """A copy of a nested config with secret-looking values replaced by '***'."""
    if isinstance(tree, dict):
        return {k: redact(v, f"{name}.{k}") for k, v in tree.items()}
    if isinstance(tree, list):
        return [redact(v, name) for v in tree]
    return "***" if tree is not None and looks_secret(name, tree) else tree
