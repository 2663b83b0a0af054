"""The `search` section: searcher, scheduler, the space, and each strategy's options."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from pipeline.config.base import Strict
from pipeline.config.domains import check_domain, numbers_read


class Bayes(Strict):
    """skopt.Optimizer settings. Defaults were first picked on Branin@30 and Hartmann6@60
    (bench/bayes_pipeline.py, 5 seeds, Ray-free loop at concurrency 1 unless said; the
    numbers quoted are from that loop), then checked on the 16-problem suite
    (bench/bayes_suite.py, bench/results/bayes_suite.md), which changed the design size.
    Over 15 seeds, fixed noise (1e-6) and designs of 6, 8 or 14 points were within the
    seed-to-seed spread of these defaults, so the 5-seed differences are weak evidence.
    `output_warping` and `pending` were chosen on all 16 problems x 10 seeds; what else was
    tried there, and lost, is in README ("Bayesian search on problems it was not tuned on")."""
    acq_func: Literal["EI", "PI", "LCB", "gp_hedge"] = "EI"
    """Acquisition function. EI: LCB (kappa 1.96 or 3) and gp_hedge were no better on
    Hartmann6 (~0.12, stuck in the second basin) and gp_hedge costs three optimisations.
    Only EI gets the `local` optimiser (as log EI); the others fall back to skopt's L-BFGS."""
    n_initial_points: int | None = Field(None, ge=1)
    """Design points before the surrogate takes over; null: max(10, 2.5 x searched
    dimensions), capped at a quarter of the sweep's trials (each grid cell's share), never
    under 10. A fixed count cannot serve every problem: Hartmann6 (6-d) ends in its second
    basin (0.12) in 3 of 5 seeds with 10, median 0.0004 with 15; the 20-d Ellipsoid of the
    suite (bench/results/bayes_suite.md) at 60 trials: 2.5 with 50 design points, 0.37 with
    10, hence the cap."""
    initial_point_generator: Literal["random", "sobol", "lhs", "halton"] = "lhs"
    """Space-filling design. lhs: at 20 points Sobol was worse on Hartmann6 (0.12 vs 0.007)
    and skopt warns that Sobol's balance needs a power of two."""
    base_estimator: Literal["GP", "RF", "ET"] = "GP"
    """Surrogate model. GBRT and dummy are left out: they fail on scikit-learn 1.9."""
    xi: float = Field(0.0, ge=0.0)
    """Exploration margin of EI/PI, in the metric's units. 0 (as Optuna): with the settings
    below Hartmann6 0.0009 against 0.0031 with 0.01; Branin unchanged (0.0003)."""
    kappa: float = Field(1.96, ge=0.0)
    """Exploration weight of LCB (skopt's default)."""
    noise: Literal["gaussian"] | Annotated[float, Field(gt=0.0)] = "gaussian"
    """GP noise: "gaussian" fits it (under `gp_prior` a Gamma(1.1, 30) prior keeps it small),
    a number fixes it. Fitted: Hartmann6 0.0031 against 0.0056 at 1e-10, Branin 0.0004
    against 0.0069; a little noise smooths the fit. Running trials still never coincide: the
    believer (`pipeline.search.acquisition` module doc) gives pending points no noise."""
    gp_restarts: int = Field(2, ge=0)
    """Random restarts of the GP's kernel hyperparameter fit (skopt's default): more cost
    every refit, and the fits were not the weak point."""
    gp_prior: bool = True
    """Add Optuna GPSampler's priors to the GP's marginal likelihood (length scales pulled
    towards 1 on the unit cube, signal variance Gamma(2, 1), fitted noise Gamma(1.1, 30)).
    Without them a dimension's length scale runs to skopt's bound 100 (ignored) and
    Hartmann6 went 0.0056 -> 0.0081 (20 design points, noise 1e-10); refits are also ~2x
    faster."""
    acq_optimizer: Literal["sampling", "lbfgs", "local"] = "local"
    """How the acquisition is maximised. local (GP + EI only): log EI at `n_points` random
    candidates plus `n_local` around the best points seen, L-BFGS-B from the
    `n_restarts_optimizer` best. skopt's lbfgs (plain EI from random candidates only) with
    the previous defaults left Hartmann6 at 0.028 and Branin at 0.0054 (not re-measured
    against the final GP settings). Trees have no gradient and always use sampling."""
    n_points: int = Field(2000, ge=10)
    """Random candidates the acquisition is evaluated at. 2000: 10000 (skopt's default) with
    20 restarts gave the same Hartmann6 regret (0.12 vs 0.13) at 4x the searcher time."""
    n_restarts_optimizer: int = Field(5, ge=1)
    """L-BFGS restarts of the acquisition optimiser (skopt's default; 20 did not help)."""
    n_local: int = Field(500, ge=0)
    """`local` only: candidates drawn around the 5 best points seen (Gaussian steps of
    `local_scale`, 1/10 or 1/100 of it): they find the incumbent's basin, which random
    candidates rarely hit closely enough to refine it."""
    local_scale: float = Field(0.1, gt=0.0)
    """`local` only: the largest step of those candidates, as a fraction of each range."""
    output_warping: Literal["yeo-johnson", "none"] = "yeo-johnson"
    """`local` only: what the GP is fitted to. yeo-johnson: the metric standardised and
    power-transformed (HEBO's output warping; monotone, so the best trial stays the best),
    which keeps a long tail of bad values (a diverged run, the far side of a Branin) from
    flattening the basin where the optimum is. On the 16-problem suite it took the geometric
    mean of regret against skopt's defaults from 0.74 to 0.51 (10 seeds; 0.52 with the final
    searcher); ranks mapped to normal quantiles instead lost on 13 of 16 problems (the
    magnitudes matter)."""
    pending: Literal["believer", "fantasies"] = "believer"
    """`local` only: how trials still running shape the next suggestion. believer: each
    pinned at the GP's posterior mean with no variance (kriging believer, kernel fitted on
    real results only); fantasies: expected improvement averaged over the GP's joint
    posterior of their outcomes (qEI over running trials, as Optuna's GPSampler). On the
    suite at concurrency 4 (10 seeds) the two tie: geometric mean of fantasies / believer
    1.03, fantasies better on 5 problems (noisy Branin 0.52 vs 0.80, Rastrigin3, Ellipsoid20)
    and worse on 7 (Branin 0.016 vs 0.008, Plateau4, Mixed4). The believer stays the default:
    it has an analytic gradient, fantasies a finite difference, ~3x the searcher's time."""
    log_ei: bool = True
    """`local` only: maximise log EI, which stays finite and ordered where EI underflows to
    0 (far from the incumbent, or next to a pending point). EI itself: Hartmann6 0.0077 vs
    0.0056 (20 design points, priors, noise 1e-10); without priors Branin preferred EI
    (0.0013 vs 0.012), with priors and fitted noise log EI reaches 0.0003."""


class Asha(Strict):
    grace_period: int = Field(1, ge=1)
    """Epochs every trial runs before it may be stopped."""
    reduction_factor: float = Field(3.0, gt=1.0)


class HyperBand(Strict):
    """Ray's synchronous HyperBand: brackets of trials run to a milestone, the best 1/eta
    go on (the rest pause, resumed from their checkpoint if picked again); max_t is
    train.epochs."""
    reduction_factor: float = Field(3.0, gt=1.0)
    """eta: the share of a bracket that goes on is 1/reduction_factor."""


class Median(Strict):
    """Ray's median stopping rule: stop a trial whose best result so far is worse than the
    median of the other trials' running averages at the same epoch."""
    grace_period: int = Field(1, ge=1)
    """Epochs every trial runs before it may be stopped."""
    min_samples_required: int = Field(3, ge=1)
    """Other trials needed at that epoch before the median counts."""


class Pbt(Strict):
    """Population Based Training (Jaderberg et al. 2017, Ray's PopulationBasedTraining)."""
    perturbation_interval: int = Field(2, ge=1)
    """Epochs between exploits; every trial checkpoints every epoch, so none is skipped."""
    quantile_fraction: float = Field(0.25, gt=0.0, le=0.5)
    """The worst this share of the population clones one of the best this share."""
    resample_probability: float = Field(0.25, ge=0.0, le=1.0)
    """Chance a cloned value is drawn afresh from its search.space domain instead of being
    multiplied by 0.8 or 1.2 (kept inside the domain)."""
    synch: bool = False
    """Perturb only when every member has reached the same epoch (Ray's synch mode). Off
    (Ray's default), each trial is ranked against the others' latest results: when the
    population takes turns on fewer slots than members, a trial at epoch 1 can be ranked
    against others at epoch 3 and cloned away for being behind, not for being worse (on the
    digits bench that lost one seed's best trial: bench/results/schedulers.md). On: less of
    that, more waiting; the end-to-end tests cover the default only."""


class Budget(Strict):
    """What a sweep may spend. Once either limit is reached no new trial starts; running trials
    finish (what they spent is not refunded). Both null: no limit."""
    usd: float | None = Field(None, gt=0.0)
    """Estimated dollars: trial hours x the hourly price of their node type (cluster.node_type,
    priced by the cluster config's metadata.prices_usd_per_hour); null: no limit."""
    hours: float | None = Field(None, gt=0.0)
    """Trial-hours: the trials' wall time summed (two trials running for an hour: 2); null:
    no limit."""


class Search(Strict):
    searcher: Literal["grid", "random", "bayes"] = "random"
    scheduler: Literal["fifo", "asha", "hyperband", "median", "pbt"] = "fifo"
    """fifo: every trial runs to the end; asha, hyperband, median: stop (or pause) poor
    trials; pbt: poor trials clone good ones and perturb their values (search.pbt)."""
    metric: str = "val_loss"
    """Reported metric the sweep optimises."""
    mode: Literal["min", "max"] = "min"
    num_samples: int = Field(8, ge=1)
    """Trials per grid cell: with `grid:` entries, every searcher runs num_samples x cells
    trials (grid and random repeat the whole grid, bayes searches each cell)."""
    max_concurrent: int = Field(2, ge=1)
    """Trials running at once (also capped by the cluster's free resources)."""
    max_failures: int = Field(0, ge=0)
    """Retries of a trial that raised, before it is marked failed."""
    space: dict[str, Any] = Field(default_factory=dict)
    """Dotted field path -> domain: {loguniform|uniform|randint|int: [lo, hi]},
    {choice: [...]}, {grid: [...]}, or the string `lr_range`."""
    points_to_evaluate: list[dict[str, Any]] = Field(default_factory=list)
    """Configs (dotted path -> value) to try first; bayes also accepts `_result`."""
    bayes: Bayes = Bayes()
    asha: Asha = Asha()
    hyperband: HyperBand = HyperBand()
    median: Median = Median()
    pbt: Pbt = Pbt()
    budget: Budget = Budget()

    @field_validator("space")
    @classmethod
    def _domains(cls, space: dict[str, Any]) -> dict[str, Any]:
        space = {path: numbers_read(domain) for path, domain in space.items()}
        for path, domain in space.items():
            check_domain(path, domain)
        return space



def trial_count(search: Search) -> int:
    """Trials a sweep runs: `num_samples` in each cell of the grid that `grid:` entries span."""
    cells = 1
    for spec in search.space.values():
        if isinstance(spec, dict) and "grid" in spec:
            cells *= len(spec["grid"])
    return search.num_samples * cells
