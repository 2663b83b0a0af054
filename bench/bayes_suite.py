"""The Bayesian-search suite: every problem of `bench.problems` x seeds x methods.

    .venv/bin/python -m bench.bayes_suite [--seeds 10] [--only ours] [--set xi=0.01 ...]
        [--problems Branin,Shekel4] [--fresh] [--workers 2]

Each (method, concurrency, problem, seed) job's regret curve is appended to
bench/results/bayes_suite.jsonl as it finishes, keyed by everything that determines it (the
problem's budget, the method, our `Bayes` options, library versions). A later run reuses the
jobs whose key is already there, so the deterministic (seeded) baselines are computed once
and a change of our defaults reruns only our own rows; `--fresh` ignores the file. Writes
the per-problem table to bench/results/bayes_suite.md.

Regret: best value found minus the known minimum; on a noisy problem the true value of the
point with the best observed value; on a real tuning problem (no known minimum) the best
value any job of the file found stands in for the minimum.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

from bench.problems import BY_NAME, SUITE
from pipeline.config import Bayes

RESULTS = Path(__file__).parent / "results"
STORE = RESULTS / "bayes_suite.jsonl"
BASELINES = [("skopt", 1), ("random", 1), ("optuna-gp", 1), ("optuna-tpe", 1),
             ("optuna-gp", 4)]
TIE = 0.01
"""Regrets below this fraction of random search's median regret on the problem count as
solved: ratios are taken at that floor (0/0 otherwise on the lattice problem, and one
problem's 1e-4 against 1 would swing the geometric mean by itself)."""


def versions() -> str:
    import optuna
    import sklearn
    import skopt
    return f"skopt {skopt.__version__}, sklearn {sklearn.__version__}, optuna {optuna.__version__}"


def code_digest(files: list[Path]) -> str:
    """A digest of what the files do: their syntax trees without docstrings (comments never
    reach the tree), so rewording a docstring keeps the cached rows."""
    trees = []
    for path in files:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list):
                node.body = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(
                    s.value, ast.Constant) and isinstance(s.value.value, str))] or [ast.Pass()]
        trees.append(ast.dump(tree))
    return hashlib.sha1("\n".join(trees).encode()).hexdigest()[:12]


@cache
def searcher_code() -> str:
    """A digest of the searcher's code: a changed searcher reruns our rows."""
    import pipeline.search
    return code_digest(sorted(Path(pipeline.search.__file__).parent.glob("*.py")))


def job_key(method: str, concurrency: int, problem: str, seed: int, options: Bayes | None) -> str:
    spec = {"method": method, "c": concurrency, "problem": problem,
            "budget": BY_NAME[problem].budget, "seed": seed}
    if method == "ours":
        spec["options"] = options.model_dump(mode="json")
        spec["code"] = searcher_code()
    elif method.startswith("optuna") or method == "skopt":
        spec["versions"] = versions()
    return json.dumps(spec, sort_keys=True)


def load(store: Path) -> dict[str, dict[str, Any]]:
    if not store.exists():
        return {}
    rows = (json.loads(line) for line in store.read_text().splitlines() if line.strip())
    return {row["key"]: row for row in rows}


def run_jobs(jobs: list[tuple[str, int, str, int, Bayes | None]], store: Path, workers: int,
             fresh: bool) -> dict[str, dict[str, Any]]:
    from bench.suite_runs import execute

    known = {} if fresh else load(store)
    todo = [j for j in jobs if job_key(*j) not in known]
    print(f"{len(jobs)} jobs, {len(jobs) - len(todo)} already in {store.name}", flush=True)
    store.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool, store.open("a") as out:
        calls = [(problem, method, seed, c, options) for method, c, problem, seed, options in todo]
        for job, (curve, searcher_s) in zip(todo, pool.map(execute, calls)):
            row = {"key": job_key(*job), "curve": curve, "searcher_s": searcher_s}
            out.write(json.dumps(row) + "\n")
            out.flush()
            known[row["key"]] = row
            print(f"  {job[0]} c={job[1]} {job[2]} seed {job[3]}: {curve[-1]:.3g} "
                  f"({searcher_s:.1f} s)", flush=True)
    return known


def curves(rows: dict[str, dict[str, Any]], method: str, c: int, problem: str,
           seeds: range, options: Bayes | None) -> list[list[float]]:
    return [rows[job_key(method, c, problem, s, options)]["curve"] for s in seeds]


def reference(rows: dict[str, dict[str, Any]], problem: str) -> float:
    """0 for problems with a known minimum (the curves are regrets already); else the best
    value of any job on the problem in the store."""
    if BY_NAME[problem].minimum is not None:
        return 0.0
    return min(r["curve"][-1] for r in rows.values() if json.loads(r["key"])["problem"] == problem)


def median_final(runs: list[list[float]], offset: float) -> float:
    return statistics.median(c[-1] - offset for c in runs)


def table(rows: dict[str, dict[str, Any]], problems: list[str], seeds: range,
          options: Bayes, arms: list[tuple[str, str, int]]) -> tuple[list[str], dict[str, float]]:
    """Markdown lines of median [min-max] final regret per problem and arm, and summary
    ratios of our c=1 against each baseline (geometric means over the problems)."""
    names = [a[0] for a in arms]
    lines = ["| problem (budget) | " + " | ".join(names) + " | ours / skopt | seeds won-lost |",
             "| --- |" + " --- |" * (len(names) + 2)]
    logs: dict[str, list[float]] = {}
    losses = []
    for problem in problems:
        offset = reference(rows, problem)
        finals, per_seed = {}, {}
        cells = []
        for name, method, c in arms:
            runs = curves(rows, method, c, problem, seeds, options if method == "ours" else None)
            values = per_seed[name] = [r[-1] - offset for r in runs]
            finals[name] = statistics.median(values)
            cells.append(f"{finals[name]:.3g} [{min(values):.2g}–{max(values):.2g}]")
        floor = TIE * finals["random"] + 1e-12
        ratio = {n: max(finals["ours c=1"], floor) / max(v, floor) for n, v in finals.items()}
        for n, r in ratio.items():
            logs.setdefault(n, []).append(math.log(r))
        if ratio["skopt"] > 1.0:
            losses.append(problem)
        cells.append(f"{ratio['skopt']:.2f}" + (" **lost**" if ratio["skopt"] > 1 else ""))
        cells.append(head_to_head(per_seed["ours c=1"], per_seed["skopt"], floor))
        lines.append(f"| {problem} ({BY_NAME[problem].budget}) | " + " | ".join(cells) + " |")
    geomeans = {n: math.exp(statistics.mean(v)) for n, v in logs.items()}
    lines += ["", "Geometric mean over the problems of (ours c=1 median regret / the arm's): "
              + ", ".join(f"{n} {g:.2f}" for n, g in geomeans.items() if n != "ours c=1") + ".",
              f"Problems where ours c=1 has a higher median regret than skopt's defaults: "
              f"{', '.join(losses) or 'none'}."]
    return lines, geomeans


def head_to_head(ours: list[float], theirs: list[float], floor: float) -> str:
    """Seeds where ours ended lower / higher than the other arm on the same seed (both at or
    under the solved floor: a tie), and the two-sided sign test's p: how far a median
    difference is from a coin toss."""
    won = sum(max(a, floor) < max(b, floor) for a, b in zip(ours, theirs))
    lost = sum(max(a, floor) > max(b, floor) for a, b in zip(ours, theirs))
    n = won + lost
    tail = sum(math.comb(n, k) for k in range(min(won, lost) + 1)) / 2 ** n if n else 1.0
    return f"{won}-{lost} (p {min(1.0, 2 * tail):.2f})"


def concurrency_table(rows: dict[str, dict[str, Any]], problems: list[str], seeds: range,
                      options: Bayes) -> list[str]:
    """Ours at c=4 against Optuna's GPSampler at c=4, and c=4's lag: the evaluations c=1's
    median curve needs to reach c=4's median final regret (goal: at most one batch, 4).
    Where both reach the solved floor (TIE x random's median regret: the lattice problem's
    exact optimum, the SVM's best CV error), that literal lag only says how early c=1 got
    there; the lag column then compares when each median curve first reached the floor."""
    lines = ["| problem (budget) | ours c=4 | optuna-gp c=4 | c=1 reaches it at | lag |",
             "| --- | --- | --- | --- | --- |"]
    for problem in problems:
        offset = reference(rows, problem)
        budget = BY_NAME[problem].budget
        floor = TIE * median_final(curves(rows, "random", 1, problem, seeds, None), offset)

        def median_curve(c: int) -> list[float]:
            runs = curves(rows, "ours", c, problem, seeds, options)
            return [statistics.median(r[i] - offset for r in runs) for i in range(budget)]

        serial, parallel = median_curve(1), median_curve(4)
        ours4 = parallel[-1]
        theirs = median_final(curves(rows, "optuna-gp", 4, problem, seeds, None), offset)
        at = next((i + 1 for i, v in enumerate(serial) if v <= ours4), None)
        if at and ours4 <= floor:  # both solved: when did each get there?
            lag = next(i + 1 for i, v in enumerate(parallel) if v <= floor) - at
            note = " (both solved)"
        else:
            lag, note = (budget - at if at else None), ""
        lag_cell = "- **never**" if lag is None else \
            f"{lag}{note}" + ("" if lag <= 4 else " **over 4**")
        mark = "" if ours4 <= theirs else " **worse**"
        lines.append(f"| {problem} ({budget}) | {ours4:.3g}{mark} | {theirs:.3g} | "
                     f"{at or 'never'} | {lag_cell} |")
    return lines


ARMS = [("ours c=1", "ours", 1), ("ours c=4", "ours", 4), ("skopt", "skopt", 1),
        ("optuna-gp", "optuna-gp", 1), ("optuna-gp c=4", "optuna-gp", 4),
        ("optuna-tpe", "optuna-tpe", 1), ("random", "random", 1)]


def parse_options(pairs: list[str]) -> Bayes:
    values = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:  # a bare word: none, yeo-johnson, EI
            values[key] = raw
    return Bayes(**values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.bayes_suite", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--problems", default=",".join(p.name for p in SUITE))
    parser.add_argument("--only", choices=["ours", "ours1", "baselines"], default=None,
                        help="ours1: our rows at concurrency 1 only (for trying options)")
    parser.add_argument("--set", dest="options", action="append", default=[],
                        help="a Bayes option for our rows, e.g. --set xi=0.01")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--fresh", action="store_true", help="recompute every job")
    parser.add_argument("--store", type=Path, default=STORE)
    parser.add_argument("--report-only", action="store_true",
                        help="no jobs: the tables from what the store holds")
    args = parser.parse_args(argv or [])
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # BLAS threads oversubscribe 2 cores
    options = parse_options(args.options)
    problems, seeds = args.problems.split(","), range(args.seeds)
    ours = [("ours", c) for c in (1, 4)]
    arms = {"ours": ours, "ours1": ours[:1], "baselines": BASELINES}.get(args.only,
                                                                         ours + BASELINES)
    # Seed-major: an interrupted run leaves every method on the first seeds, not one method
    # on all of them.
    jobs = [(m, c, p, s, options if m == "ours" else None)
            for s in seeds for p in problems for m, c in arms]
    rows = load(args.store) if args.report_only else run_jobs(jobs, args.store, args.workers,
                                                              args.fresh)
    report(rows, problems, seeds, options, write=args.store == STORE)


def report(rows: dict[str, dict[str, Any]], problems: list[str], seeds: range, options: Bayes,
           write: bool) -> None:
    """The tables over the seeds every arm has finished (an interrupted cold run of the
    baselines says how many it covers), printed and, for the whole suite, written."""
    def done(arm: tuple[str, str, int], seed: int) -> bool:
        return all(job_key(arm[1], arm[2], p, seed, options if arm[1] == "ours" else None)
                   in rows for p in problems)
    complete = [s for s in seeds if all(done(a, s) for a in ARMS)]
    if not complete:
        print("no seed has every arm yet: no table")
        return
    covered = range(len(complete)) if complete == list(range(len(complete))) else None
    if covered is None:
        raise RuntimeError(f"seeds {complete} are complete, not a prefix: rerun the missing")
    lines, _ = table(rows, problems, covered, options, ARMS)
    lines += ["", "Concurrency 4 (trials finishing in start order):", "",
              *concurrency_table(rows, problems, covered, options)]
    searcher_s = statistics.median(rows[job_key("ours", 1, p, s, options)]["searcher_s"]
                                   for p in problems for s in covered)
    text = "\n".join(lines) + f"\n\nOur searcher's own time per run, median: {searcher_s:.1f} s.\n"
    print(text)
    if write and len(problems) == len(SUITE):
        (RESULTS / "bayes_suite.md").write_text(
            f"# Bayesian suite\n\n{len(covered)} of {len(seeds)} seeds (those every arm has "
            f"finished); median [min–max] final regret.\n\n{text}\nOptions: `{options!r}`\n")


if __name__ == "__main__":
    main(sys.argv[1:])
