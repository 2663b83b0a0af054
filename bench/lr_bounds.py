"""Does searching around the LR range test's suggestion beat a wide LR range at equal budget?

    .venv/bin/python -m bench.lr_bounds        (about 5 minutes on 2 cores)

The same random-search sweep on digits (mlp, SGD momentum 0.9, 8 trials x 6 epochs, dropout and
width searched too) once with `train.lr: lr_range` and once with `train.lr: {loguniform: [1e-5,
1]}`, for 3 seeds; the best val_loss of each sweep. Writes bench/results/lr_bounds.md.
"""
from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from pipeline import study
from pipeline.config import Experiment

RESULTS = Path(__file__).parent / "results" / "lr_bounds.md"
SEEDS = (0, 1, 2)
LR_DOMAINS = {"lr_range (range test)": "lr_range", "wide [1e-5, 1]": {"loguniform": [1e-5, 1.0]}}


def best_val_loss(lr_domain, seed: int, folder: Path) -> float:
    exp = Experiment.model_validate({
        "name": "bench-lr-bounds", "seed": seed,
        "model": {"arch": "mlp", "hidden": 128}, "train": {"epochs": 6, "momentum": 0.9},
        "lr_range_test": {"enabled": True},
        "search": {"searcher": "random", "num_samples": 8, "max_concurrent": 2,
                   "space": {"train.lr": lr_domain, "model.dropout": {"uniform": [0.0, 0.5]},
                             "model.hidden": {"choice": [64, 128, 256]}}},
        "tracking": {"uri": f"sqlite:///{folder}/mlflow.db"},
        "storage": {"path": str(folder / "ray_results")}})
    return study.run(exp, register=False).best_value


def main() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        results = {name: [best_val_loss(domain, seed, Path(tmp)) for seed in SEEDS]
                   for name, domain in LR_DOMAINS.items()}
    lines = ["# LR range bounds vs a wide LR range (`make bench ARGS=lr_bounds`)", "",
             ("digits mlp, random search, 8 trials x 6 epochs, dropout and width searched too; "
              "best val_loss per sweep."), "",
             "| train.lr domain | " + " | ".join(f"seed {s}" for s in SEEDS) + " | median |",
             "|" + " --- |" * (len(SEEDS) + 2)]
    for name, values in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in values)
                     + f" | {statistics.median(values):.4f} |")
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
