"""The Bayesian-search suite: problems of different character, each with its own budget.

Every problem is a space of named parameters (real, log-scaled real, integer, categorical)
and a function of a {name: value} dict, so the same problem drives our searcher, skopt's
`gp_minimize`, Optuna and random search. Known minima come from the literature or, for the
discrete ones, from enumerating the space; the two real tuning problems (scikit-learn models
on datasets scikit-learn ships, cross-validated) have no known minimum: their regret is
measured against the best value any method found in the same run (`bench.bayes_suite`).
Test functions are shifted or put on asymmetric boxes where the textbook optimum sits at the
centre of the box, which a space-filling design would hit by construction.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from itertools import product
from typing import Any, Literal

import numpy as np

from bench.objectives import branin as _branin
from bench.objectives import hartmann6 as _hartmann6


@dataclass(frozen=True)
class Param:
    name: str
    kind: Literal["real", "log", "int", "cat"]
    low: float = 0.0
    high: float = 1.0
    """Bounds, both inclusive (an int's too)."""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Problem:
    name: str
    character: str
    params: tuple[Param, ...]
    budget: int
    """Evaluations every method gets."""
    fn: Callable[[dict[str, Any]], float]
    """The noise-free objective."""
    minimum: float | None
    """Known global minimum; None: the best value found in the run stands in."""
    noise_sd: float = 0.0
    """Gaussian noise on what a method observes; regret is measured on `fn` at the point
    with the best observed value (what a user would pick)."""
    tags: frozenset[str] = field(default_factory=frozenset)

    def observe(self, values: dict[str, Any], rng: np.random.Generator) -> float:
        return self.fn(values) + (rng.normal(0.0, self.noise_sd) if self.noise_sd else 0.0)


def reals(prefix: str, bounds: list[tuple[float, float]]) -> tuple[Param, ...]:
    return tuple(Param(f"{prefix}{i}", "real", lo, hi) for i, (lo, hi) in enumerate(bounds))


def vector(values: dict[str, Any], prefix: str = "x") -> np.ndarray:
    return np.array([values[k] for k in sorted(values, key=lambda k: int(k[len(prefix):]))
                     if k.startswith(prefix) and k[len(prefix):].isdigit()], dtype=float)


def on_vector(fn: Callable[[np.ndarray], float]) -> Callable[[dict[str, Any]], float]:
    return lambda values: float(fn(vector(values)))


# ---- test functions ------------------------------------------------------------------------

def rosenbrock(x: np.ndarray) -> float:
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


ACKLEY_SHIFT = 3.3  # the optimum off the centre of the box


def ackley(x: np.ndarray) -> float:
    z = x - ACKLEY_SHIFT
    d = len(z)
    return float(-20 * math.exp(-0.2 * math.sqrt(np.sum(z ** 2) / d))
                 - math.exp(np.sum(np.cos(2 * math.pi * z)) / d) + 20 + math.e)


RASTRIGIN_SHIFT = 1.2


def rastrigin(x: np.ndarray) -> float:
    z = x - RASTRIGIN_SHIFT
    return float(10 * len(z) + np.sum(z ** 2 - 10 * np.cos(2 * math.pi * z)))


def schwefel(x: np.ndarray) -> float:
    """Deceptive: the best basin sits near one corner, the second best at the far side."""
    return float(418.9828872724338 * len(x) - np.sum(x * np.sin(np.sqrt(np.abs(x)))))


def styblinski_tang(x: np.ndarray) -> float:
    """2^d basins of two depths per dimension: greedy search settles in a shallower one."""
    return float(0.5 * np.sum(x ** 4 - 16 * x ** 2 + 5 * x))


_SHEKEL_A = np.array([[4, 4, 4, 4], [1, 1, 1, 1], [8, 8, 8, 8], [6, 6, 6, 6], [3, 7, 3, 7],
                      [2, 9, 2, 9], [5, 5, 3, 3], [8, 1, 8, 1], [6, 2, 6, 2], [7, 3.6, 7, 3.6]],
                     dtype=float)
_SHEKEL_C = np.array([1, 2, 2, 4, 4, 6, 3, 7, 5, 5], dtype=float) / 10


def shekel(x: np.ndarray) -> float:
    """Ten narrow wells of different depths on a nearly flat floor (Shekel m=10)."""
    return float(-np.sum(1.0 / (np.sum((x - _SHEKEL_A) ** 2, axis=1) + _SHEKEL_C)))


ELLIPSOID_CENTRE = 1.7


def ellipsoid(x: np.ndarray) -> float:
    """Axis-aligned, condition number 1e3: smooth and unimodal but with 20 scales."""
    weights = 10.0 ** (3 * np.arange(len(x)) / max(len(x) - 1, 1))
    return float(np.sum(weights * (x - ELLIPSOID_CENTRE) ** 2) / np.sum(weights))


PLATEAU_CENTRE = np.array([0.72, 0.18, 0.61, 0.33])


def plateau(x: np.ndarray) -> float:
    """A basin in a flat plain: constant 1 (a diverged run's loss) over most of the cube."""
    return float(min(1.0, np.sum((x - PLATEAU_CENTRE) ** 2) / 0.15))


_H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547],
                         [381, 5743, 8828]])
_H3_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann3(x: np.ndarray) -> float:
    return float(-_H3_ALPHA @ np.exp(-(_H3_A * (x - _H3_P) ** 2).sum(axis=1)))


GRID_STEPS = 20


def integer_hartmann3(values: dict[str, Any]) -> float:
    """Hartmann3 on a 21^3 integer lattice (each integer k is the coordinate k/20)."""
    return hartmann3(np.array([values[f"k{i}"] for i in range(3)], dtype=float) / GRID_STEPS)


@cache
def integer_hartmann3_minimum() -> float:
    lattice = np.array(list(product(range(GRID_STEPS + 1), repeat=3)), dtype=float)
    return float(min(hartmann3(p / GRID_STEPS) for p in lattice))


MIXED_SCALE = {"adam": 1.0, "sgd": 2.5, "rmsprop": 0.6, "lamb": 1.4}
MIXED_OFFSET = {"adam": 0.35, "sgd": 0.0, "rmsprop": 0.9, "lamb": 0.2}


def mixed(values: dict[str, Any]) -> float:
    """A categorical choice that rescales and offsets a Branin over two reals, plus an
    integer with its own quadratic optimum (7): the best category is not the one whose
    landscape is best at a random point."""
    name = values["optimizer"]
    landscape = _branin(np.array([values["x0"], values["x1"]]))
    return MIXED_SCALE[name] * landscape + MIXED_OFFSET[name] + 0.05 * (values["layers"] - 7) ** 2


def mixed_minimum() -> float:
    return min(s * 0.397887357729738 + MIXED_OFFSET[n] for n, s in MIXED_SCALE.items())


# ---- real tuning problems (scikit-learn, bundled data, 3-fold cross-validation) -------------

@cache
def _digits_subset() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(y))[:600]
    return x[rows] / 16.0, y[rows]


def svc_digits(values: dict[str, Any]) -> float:
    """RBF SVM on 600 digits: 3-fold cross-validated error rate."""
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC
    x, y = _digits_subset()
    model = SVC(C=values["C"], gamma=values["gamma"])
    return float(1.0 - cross_val_score(model, x, y, cv=3).mean())


@cache
def _breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer
    return load_breast_cancer(return_X_y=True)


def forest_breast_cancer(values: dict[str, Any]) -> float:
    """Random forest (30 trees) on breast cancer: 3-fold cross-validated log loss."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import cross_val_score
    x, y = _breast_cancer()
    model = RandomForestClassifier(
        n_estimators=30, max_depth=values["max_depth"],
        min_samples_leaf=values["min_samples_leaf"], max_features=values["max_features"],
        criterion=values["criterion"], random_state=0, n_jobs=1)
    return float(-cross_val_score(model, x, y, cv=3, scoring="neg_log_loss").mean())


SUITE: tuple[Problem, ...] = (
    Problem("Branin", "smooth, three equal minima, 2-d",
            reals("x", [(-5.0, 10.0), (0.0, 15.0)]), 30, on_vector(_branin), 0.397887357729738),
    Problem("Hartmann6", "multimodal, 6-d", reals("x", [(0.0, 1.0)] * 6), 60,
            on_vector(_hartmann6), -3.322368011391339),
    Problem("Rosenbrock4", "ill-conditioned curved valley, 4-d", reals("x", [(-2.0, 2.0)] * 4),
            50, on_vector(rosenbrock), 0.0),
    Problem("Ackley5", "strongly multimodal, regular ripples, 5-d",
            reals("x", [(-15.0, 30.0)] * 5), 60, on_vector(ackley), 0.0),
    Problem("Rastrigin3", "strongly multimodal, 3-d", reals("x", [(-5.12, 5.12)] * 3), 50,
            on_vector(rastrigin), 0.0),
    Problem("Schwefel2", "deceptive: best and second-best basins far apart, 2-d",
            reals("x", [(-500.0, 500.0)] * 2), 40, on_vector(schwefel), 0.0),
    Problem("StyblinskiTang8", "basins of different depths, 8-d", reals("x", [(-5.0, 5.0)] * 8),
            60, on_vector(styblinski_tang), -39.16616570377142 * 8),
    Problem("Shekel4", "narrow wells of different depths on a flat floor, 4-d",
            reals("x", [(0.0, 10.0)] * 4), 60, on_vector(shekel), -10.536409816692046),
    Problem("Ellipsoid20", "smooth unimodal, condition 1e3, 20-d",
            reals("x", [(-5.0, 10.0)] * 20), 60, on_vector(ellipsoid), 0.0),
    Problem("Plateau4", "flat plain around one basin, 4-d", reals("x", [(0.0, 1.0)] * 4), 40,
            on_vector(plateau), 0.0),
    Problem("NoisyHartmann6", "Hartmann6, observed with noise sd 0.1",
            reals("x", [(0.0, 1.0)] * 6), 60, on_vector(_hartmann6), -3.322368011391339,
            noise_sd=0.1, tags=frozenset({"noisy"})),
    Problem("NoisyBranin", "Branin, observed with noise sd 1",
            reals("x", [(-5.0, 10.0), (0.0, 15.0)]), 30, on_vector(_branin), 0.397887357729738,
            noise_sd=1.0, tags=frozenset({"noisy"})),
    Problem("IntHartmann3", "integer lattice 21^3",
            tuple(Param(f"k{i}", "int", 0, GRID_STEPS) for i in range(3)), 40,
            integer_hartmann3, integer_hartmann3_minimum()),
    Problem("Mixed4", "categorical x integer x 2 reals",
            (Param("optimizer", "cat", choices=tuple(MIXED_SCALE)), Param("layers", "int", 1, 12),
             *reals("x", [(-5.0, 10.0), (0.0, 15.0)])), 40, mixed, mixed_minimum()),
    Problem("SVC-digits", "real: RBF SVM C and gamma (log), 3-fold CV error",
            (Param("C", "log", 1e-2, 1e3), Param("gamma", "log", 1e-5, 1.0)), 30, svc_digits,
            None, tags=frozenset({"real"})),
    Problem("Forest-cancer", "real: random forest, mixed int/real/categorical, CV log loss",
            (Param("max_depth", "int", 1, 20), Param("min_samples_leaf", "int", 1, 30),
             Param("max_features", "real", 0.05, 1.0),
             Param("criterion", "cat", choices=("gini", "entropy"))), 40,
            forest_breast_cancer, None, tags=frozenset({"real"})),
)


# Held out: functions the defaults were never run on while they were chosen (bench.bayes_heldout
# only reads them, after the fact), from the usual test-function collections.
def levy(x: np.ndarray) -> float:
    w = 1 + (x - 1) / 4
    return float(np.sin(np.pi * w[0]) ** 2
                 + np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(np.pi * w[:-1] + 1) ** 2))
                 + (w[-1] - 1) ** 2 * (1 + np.sin(2 * np.pi * w[-1]) ** 2))


def griewank(x: np.ndarray) -> float:
    x = x - 2.0  # off the centre of the box
    return float(np.sum(x ** 2) / 4000
                 - np.prod(np.cos(x / np.sqrt(np.arange(1, len(x) + 1)))) + 1)


def michalewicz(x: np.ndarray, m: int = 10) -> float:
    i = np.arange(1, len(x) + 1)
    return float(-np.sum(np.sin(x) * np.sin(i * x ** 2 / np.pi) ** (2 * m)))


def six_hump_camel(x: np.ndarray) -> float:
    a, b = x
    return float((4 - 2.1 * a * a + a ** 4 / 3) * a * a + a * b + (-4 + 4 * b * b) * b * b)


def goldstein_price(x: np.ndarray) -> float:
    a, b = x
    p = 1 + (a + b + 1) ** 2 * (19 - 14 * a + 3 * a * a - 14 * b + 6 * a * b + 3 * b * b)
    q = 30 + (2 * a - 3 * b) ** 2 * (18 - 32 * a + 12 * a * a + 48 * b - 36 * a * b + 27 * b * b)
    return float(p * q)


def dixon_price(x: np.ndarray) -> float:
    i = np.arange(2, len(x) + 1)
    return float((x[0] - 1) ** 2 + np.sum(i * (2 * x[1:] ** 2 - x[:-1]) ** 2))


def eggholder(x: np.ndarray) -> float:
    a, b = x
    return float(-(b + 47) * np.sin(np.sqrt(abs(b + a / 2 + 47)))
                 - a * np.sin(np.sqrt(abs(a - (b + 47)))))


def powell(x: np.ndarray) -> float:
    x = x.reshape(-1, 4)
    return float(np.sum((x[:, 0] + 10 * x[:, 1]) ** 2 + 5 * (x[:, 2] - x[:, 3]) ** 2
                        + (x[:, 1] - 2 * x[:, 2]) ** 4 + 10 * (x[:, 0] - x[:, 3]) ** 4))


def scaled_quadratic(x: np.ndarray) -> float:
    """A bowl with its floor near one edge and axes scaled 1:30:3."""
    return float(np.sum((x - np.array([0.9, 0.05, 0.3])) ** 2 * np.array([1, 30, 3])))


HELD_OUT: tuple[Problem, ...] = (
    Problem("Levy5", "held out: multimodal with a trend, 5-d", reals("x", [(-10.0, 10.0)] * 5),
            50, on_vector(levy), 0.0),
    Problem("Griewank6", "held out: fine ripples on a wide bowl, 6-d",
            reals("x", [(-20.0, 30.0)] * 6), 50, on_vector(griewank), 0.0),
    Problem("Michalewicz5", "held out: steep narrow valleys on a flat floor, 5-d",
            reals("x", [(0.0, math.pi)] * 5), 60, on_vector(michalewicz), -4.687658),
    Problem("SixHumpCamel", "held out: two global and four local minima, 2-d",
            reals("x", [(-3.0, 3.0), (-2.0, 2.0)]), 30, on_vector(six_hump_camel),
            -1.0316284534898774),
    Problem("GoldsteinPrice", "held out: values over six orders of magnitude, 2-d",
            reals("x", [(-2.0, 2.0)] * 2), 30, on_vector(goldstein_price), 3.0),
    Problem("DixonPrice6", "held out: curved valley, 6-d", reals("x", [(-10.0, 10.0)] * 6), 50,
            on_vector(dixon_price), 0.0),
    Problem("Eggholder", "held out: deceptive, rugged, optimum at the edge, 2-d",
            reals("x", [(-512.0, 512.0)] * 2), 40, on_vector(eggholder), -959.6407),
    Problem("Powell8", "held out: singular quartic valley, 8-d", reals("x", [(-4.0, 5.0)] * 8),
            60, on_vector(powell), 0.0),
    Problem("Quadratic3", "held out: scaled bowl near an edge, 3-d", reals("x", [(0.0, 1.0)] * 3),
            30, on_vector(scaled_quadratic), 0.0),
)
BY_NAME = {p.name: p for p in (*SUITE, *HELD_OUT)}
