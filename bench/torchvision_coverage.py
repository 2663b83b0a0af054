"""Every torchvision classifier by name through `pipeline.training.models.build_model`.

    .venv/bin/python -m bench.torchvision_coverage [ARCH ...] [--timeout S]   (all: 45 min
    on 2 shared cores; writes bench/results/torchvision_coverage.md)

For each name of `torchvision.models.list_models(module=torchvision.models)` and each of two
inputs, digits-like (1, 8, 8) with 3 classes and CIFAR-like (3, 32, 32) with 10 classes:
build the model, one training step (train mode, batch of BATCH, forward + backward + SGD step)
and one eval forward; check the output shape, that `head_name` names a layer with
num_classes outputs, and that `freeze: backbone` with a weights file (torchvision's own
ImageNet-shaped state dict of the same architecture, as hub weights are) leaves only the head
trainable and changes only the head in a training step. Any library warning raised on the way
counts as a failure (none may reach a user's terminal).

Each model runs in its own process under a time limit, so a model too big for this machine is
reported as such (time-out, or killed for memory) instead of ending the sweep.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "torchvision_coverage.md"
CASES = (((1, 8, 8), 3), ((3, 32, 32), 10))
BATCH = 2  # the smallest batch batch norm trains on; the harshest case for 1x1 feature maps
TIMEOUT_S = 900


def _out_features(module) -> int:
    return getattr(module, "out_features", None) or module.out_channels


def _one_case(arch: str, shape: tuple[int, ...], classes: int, weights: Path) -> dict:
    import torch

    from pipeline.config import Model, Train
    from pipeline.training import torchvision_models
    from pipeline.training.loop import make_optimizer, train_step
    from pipeline.training.models import build_model

    torch.manual_seed(0)
    timings = {}
    started = time.perf_counter()
    model = build_model(Model(arch=arch), shape, classes)
    timings["build_s"] = time.perf_counter() - started
    x = torch.randint(0, 256, (BATCH, *shape), dtype=torch.uint8)
    y = torch.arange(BATCH) % classes
    started = time.perf_counter()
    train_step(model.train(), make_optimizer(Train(), model.parameters()), x, y)
    timings["train_step_s"] = time.perf_counter() - started
    with torch.no_grad():
        out = model.eval()(x)
    assert tuple(out.shape) == (BATCH, classes), f"eval output {tuple(out.shape)}"
    head = torchvision_models.head_name(model.net)
    assert _out_features(model.net.get_submodule(head)) == classes, f"head {head}"

    frozen = build_model(Model(arch=arch, weights=str(weights), freeze="backbone"), shape,
                         classes)
    # the built-in resnet18 is torchvision's with weights: its own head name (fc, not fc.1)
    head = torchvision_models.head_name(frozen.net)
    assert _out_features(frozen.net.get_submodule(head)) == classes, f"frozen head {head}"
    trainable = {n for n, p in frozen.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(f"net.{head}.") for n in trainable), \
        f"trainable outside the head {head}: {sorted(trainable)[:3]}"
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    params = [p for p in frozen.parameters() if p.requires_grad]
    train_step(frozen.train(), make_optimizer(Train(), params), x, y)
    changed = {k for k, v in frozen.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith(f"net.{head}.") for k in changed), \
        f"changed outside the head: {sorted(changed - trainable)[:3]}"
    return {"head": head, **timings}


def check(arch: str) -> dict:
    """Both cases for one architecture: {"cases": [...], "params": n, "warnings": [...]}."""
    import torch
    import torchvision.models

    torch.set_num_threads(1)
    report: dict = {"arch": arch, "cases": []}
    with warnings.catch_warnings(record=True) as caught, tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("always")
        reference = torchvision.models.get_model(arch, weights=None)
        report["params"] = sum(p.numel() for p in reference.parameters())
        weights = Path(tmp) / "weights.pt"
        torch.save(reference.state_dict(), weights)
        del reference
        caught.clear()  # torchvision's own constructor is not ours to answer for
        for shape, classes in CASES:
            name = "x".join(map(str, shape))
            try:
                report["cases"].append({"input": name, "ok": True,
                                        **_one_case(arch, shape, classes, weights)})
            except Exception as error:  # noqa: BLE001 - the sweep records every failure
                line = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                report["cases"].append({"input": name, "ok": False, "error": line[:200]})
        report["warnings"] = sorted({f"{w.category.__name__}: {w.message}"[:160] for w in caught})
    report["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return report


def run_isolated(arch: str, timeout_s: float) -> dict:
    """check(arch) in a child process with a time limit; a crash or time-out is a result."""
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "bench.torchvision_coverage", "--child",
                               arch], capture_output=True, text=True, timeout=timeout_s,
                              check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        return {"arch": arch, "impractical": f"over {timeout_s:.0f} s on this machine",
                "wall_s": time.perf_counter() - started}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        why = "killed (out of memory?)" if done.returncode < 0 else \
            (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return {"arch": arch, "impractical": f"exit {done.returncode}: {why}",
                "wall_s": time.perf_counter() - started}
    report = json.loads(lines[-1])
    report["wall_s"] = time.perf_counter() - started
    return report


def _row(r: dict) -> str:
    if "impractical" in r:
        return f"| {r['arch']} | - | not run: {r['impractical']} | | | {r['wall_s']:.0f} |"
    cases = r["cases"]
    failed = [f"{c['input']}: {c['error']}" for c in cases if not c["ok"]]
    verdict = "ok" if not failed and not r["warnings"] else "; ".join(failed + r["warnings"])
    step = " / ".join(f"{c['train_step_s']:.2f}" for c in cases if c["ok"])
    head = cases[-1].get("head", "?")
    return (f"| {r['arch']} | {r['params'] / 1e6:.1f} | {verdict} | {head} | {step} | "
            f"{r['wall_s']:.0f} | {r['peak_rss_gb']:.1f} |")


def write(reports: list[dict], timeout_s: float) -> None:
    ok = sum(1 for r in reports if "impractical" not in r and all(c["ok"] for c in r["cases"])
             and not r["warnings"])
    lines = [
        "# Every torchvision classifier by name (bench/torchvision_coverage.py)", "",
        (f"Inputs 1x8x8 (3 classes) and 3x32x32 (10 classes), batch {BATCH}, one thread per "
         f"model, {timeout_s:.0f} s limit per model; each checked for output shape, head, "
         "`freeze: backbone` with a weights file, and no library warning."), "",
        f"**{ok} of {len(reports)} pass.**", "",
        "Practical on this CPU, but slow (over 60 s for both cases): "
        + (", ".join(f"{r['arch']} ({r['wall_s']:.0f} s, {r.get('peak_rss_gb', 0):.1f} GB)"
                     for r in reports if r["wall_s"] > 60 and "impractical" not in r)
           or "none") + ".", "",
        ("| arch | params (M) | result | head | train step s (8x8 / 32x32) | wall s | "
         "peak RSS GB |"),
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(_row(r) for r in reports), ""]
    RESULTS.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archs", nargs="*", help="default: every torchvision classifier")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(check(args.archs[0])))
        return
    from pipeline.training.torchvision_models import names

    archs = args.archs or names()
    reports = []
    for arch in archs:
        reports.append(run_isolated(arch, args.timeout))
        print(_row(reports[-1]), flush=True)
    if not args.archs:
        write(reports, args.timeout)


if __name__ == "__main__":
    main()
