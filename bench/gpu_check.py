"""GPU check: fractional packing, whole-GPU trials, CUDA placement and AMP speed. Never in CI.

Written on a machine without a GPU, where it runs as `--fake-gpus 1 --smoke` (Ray told there is
a GPU, trials on the CPU: checks the plumbing and fails the CUDA check, as it should). Results of
the run on a real GPU: bench/results/gpu_check.md.

    .venv/bin/python -m bench.gpu_check                 # a machine with one or more GPUs
    .venv/bin/python -m bench.gpu_check --smoke         # tiny models, seconds per trial
    RAY_ADDRESS=HEAD:6379 MLFLOW_TRACKING_URI=http://... .venv/bin/python -m bench.gpu_check

Two sweeps through study.run, as `make tune` runs them, each half with train.amp off and half on:
  packed  4 trials x gpu 0.25: all four at once on one GPU
  whole   2 trials x gpu 1: one after the other on a one-GPU machine
  images  4 trials x gpu 0.25 on an image folder (CIFAR-shaped: 32x32, crop + flip on the
          GPU, normalised), one per train.amp x train.compile: samples/s and peak GPU memory
          per trial, and samples/s of all four together
  bare    the whole-GPU configuration trained in this process, outside Ray, for in-trial / bare
It checks that every trial trained on CUDA (the `device` tag of its MLflow run), that the packed
trials shared one GPU at the same time, and prints samples/s without and with AMP (bf16
autocast). Exit 0 when every check passes, 1 otherwise.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import ray
import yaml

from pipeline import study
from pipeline.config import load

FULL = {"data": {"dataset": "fake", "fake_size": 16384, "batch_size": 256},
        "model": {"arch": "resnet18"}, "train": {"epochs": 3, "lr": 0.05}}
SMOKE = {"data": {"dataset": "digits", "limit": 300}, "model": {"arch": "mlp", "hidden": 32},
         "train": {"epochs": 1}}


def run_sweep(name: str, gpu: float, repeats: int, sizes: dict,
              space: dict | None = None) -> list:
    """One sweep, half its trials with AMP; its child runs (one per trial) from MLflow."""
    experiment = {
        "name": f"gpu-check-{name}", **sizes, "resources": {"cpu": 0.5, "gpu": gpu},
        "search": {"searcher": "grid", "num_samples": repeats, "max_concurrent": 4,
                   "space": space or {"train.amp": {"grid": [False, True]}}},
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.yaml"
        path.write_text(yaml.safe_dump(experiment))
        outcome = study.run(load(path))
    return outcome.store.client.search_runs(
        [outcome.store.experiment_id], f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'")


def image_sweep(smoke: bool) -> list:
    """4 packed trials on a generated image folder, one per (amp, compile)."""
    from bench.imagefolder_data import write_folder

    root = write_folder(Path(tempfile.mkdtemp()) / "images", per_class=40 if smoke else 1500,
                        classes=4, sizes=(32, 40))
    sizes = {"data": {"dataset": "imagefolder", "root": str(root), "image_size": 32,
                      "batch_size": 256, "augment": ["crop", "flip"], "normalize": True},
             "model": {"arch": "cnn" if smoke else "resnet18"},
             "train": {"epochs": 1 if smoke else 4, "lr": 0.05}}
    return run_sweep("images", 0.25, 1, sizes, {"train.amp": {"grid": [False, True]},
                                                 "train.compile": {"grid": [False, True]}})


def image_table(runs: list) -> list[str]:
    lines = ["| amp | compile | samples/s | peak GPU memory (MB) |", "| --- | --- | --- | --- |"]
    for run in sorted(runs, key=lambda r: (r.data.params["train.amp"],
                                           r.data.params["train.compile"])):
        m = run.data.metrics
        lines.append(f"| {run.data.params['train.amp']} | {run.data.params['train.compile']} "
                     f"| {m.get('samples_per_s', 0):.0f} | {m.get('gpu_mem_mb', float('nan')):.0f} |")
    total = sum(r.data.metrics.get("samples_per_s", 0) for r in runs)
    return [*lines, f"all four at once: {total:.0f} samples/s"]


def bare_throughput(sizes: dict) -> dict[bool, float]:
    """Last-epoch samples/s of the `whole` configuration trained here, outside Ray and MLflow."""
    from pipeline.config import Experiment
    from pipeline.training import loop as training
    from pipeline.training.data import load as load_data

    speed = {}
    for amp in (False, True):
        exp = Experiment.model_validate({"name": "gpu-check-bare", **sizes}).with_values(
            {"train.amp": amp})
        speed[amp] = list(training.fit(exp, load_data(exp.data)))[-1].metrics["samples_per_s"]
    return speed


def overlapping(runs: list) -> bool:
    """Whether every trial started before any of them ended."""
    return max(r.info.start_time for r in runs) < min(r.info.end_time for r in runs)


def throughput(runs: list) -> dict[bool, float]:
    """Mean samples/s of the last epoch, without (False) and with (True) AMP."""
    by_amp: dict[bool, list[float]] = {False: [], True: []}
    for run in runs:
        by_amp[run.data.params["train.amp"] == "True"].append(run.data.metrics["samples_per_s"])
    return {amp: statistics.fmean(values) for amp, values in by_amp.items() if values}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GPU placement and AMP check")
    parser.add_argument("--smoke", action="store_true", help="tiny models (plumbing only)")
    parser.add_argument("--fake-gpus", type=int, default=0,
                        help="start a local Ray that declares this many GPUs (no CUDA needed; "
                             "the CUDA check then fails, as it should)")
    args = parser.parse_args(argv)
    if args.fake_gpus:
        ray.init(num_gpus=args.fake_gpus, include_dashboard=False, logging_level="WARNING")
    sizes = SMOKE if args.smoke else FULL
    bare = bare_throughput(sizes)
    packed = run_sweep("packed", 0.25, 2, sizes)
    whole = run_sweep("whole", 1, 1, sizes)
    images = image_sweep(args.smoke)
    gpus_in_cluster = ray.cluster_resources().get("GPU", 0)

    checks = {
        "4 packed + 2 whole trials finished": len(packed) == 4 and len(whole) == 2
        and all(r.info.status == "FINISHED" for r in packed + whole),
        "every trial trained on CUDA": all(r.data.tags.get("device", "").startswith("cuda")
                                           for r in packed + whole),
        "packed trials ran at once on one GPU": overlapping(packed)
        and len({(r.data.tags["node_id"], r.data.tags["gpu_ids"]) for r in packed}) == 1,
        "whole-GPU trials ran one after the other": gpus_in_cluster > 1
        or not overlapping(whole),
        "4 image-folder trials (amp x compile) finished on CUDA, at once":
        len(images) == 4 and all(r.info.status == "FINISHED"
                                 and r.data.tags.get("device", "").startswith("cuda")
                                 for r in images) and overlapping(images),
    }
    print(f"\nGPUs in the cluster: {gpus_in_cluster:g}")
    print("| sweep | samples/s, fp32 | samples/s, AMP | AMP speed-up |")
    print("| --- | --- | --- | --- |")
    for name, runs in (("packed (4 x 0.25 GPU)", packed), ("whole (2 x 1 GPU)", whole)):
        speed = throughput(runs)
        ratio = speed[True] / speed[False] if len(speed) == 2 else float("nan")
        print(f"| {name} | {speed.get(False, 0):.0f} | {speed.get(True, 0):.0f} | "
              f"{ratio:.2f}x |")
    speed = throughput(whole)
    print("| whole, in-trial / bare (outside Ray) | "
          + " | ".join(f"{speed.get(amp, 0) / bare[amp]:.2f}" for amp in (False, True)) + " | |")
    print("\nImage folder, 4 trials x 0.25 GPU:\n" + "\n".join(image_table(images)))
    for check, passed in checks.items():
        print(f"{'PASS' if passed else 'FAIL'}  {check}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
