"""The package's rooms import one way: the pure-PyTorch room pulls in neither Ray nor MLflow,
the search room no MLflow, and no module grows past the size a reader takes in at once."""
from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "pipeline"


def imported_by(modules: list[str]) -> set[str]:
    """Top-level packages in sys.modules after importing `modules` in a fresh interpreter."""
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    return set(done.stdout.split())


def room_modules(room: str) -> list[str]:
    return [f"pipeline.{room}.{path.stem}" for path in sorted((PACKAGE / room).glob("*.py"))
            if path.stem != "__init__"]


def test_training_imports_no_ray_and_no_mlflow() -> None:
    loaded = imported_by(room_modules("training"))
    assert "torch" in loaded  # the check would pass vacuously if nothing was imported
    assert not loaded & {"ray", "mlflow"}


@pytest.mark.parametrize("room", ["config", "search"])
def test_lower_rooms_import_no_mlflow(room: str) -> None:
    loaded = imported_by(room_modules(room))
    assert "mlflow" not in loaded
    if room == "config":
        assert not loaded & {"ray", "torch"}


def test_a_custom_trainables_sweep_imports_no_torch() -> None:
    """Its driver and its trials' wrapper: torch costs 1.6 s a process, and a custom
    trainable may not use it at all."""
    loaded = imported_by(["pipeline.cli", "pipeline.study", "pipeline.execution.placement"])
    assert {"pipeline", "ray", "mlflow"} <= loaded
    assert not loaded & {"torch", "torchvision", "sklearn"}


def test_at_most_eight_modules_at_the_top_and_none_over_300_lines() -> None:
    assert len(list(PACKAGE.glob("*.py"))) <= 8
    too_long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
                if (n := len(p.read_text().splitlines())) > 300}
    assert too_long == {}


def test_every_room_says_what_it_owns() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        doc = init.read_text()
        assert doc.startswith('"""') and len(doc.split('"""')[1].strip().splitlines()) >= 2, init
