"""Expected improvement while other trials are still running.

A running trial's outcome is unknown but not free: the GP says where it will probably land.
`PendingLogEI` values a candidate x by its expected improvement over the best of the results
so far *and* the running trials' outcomes, averaged over the GP's joint posterior of those
outcomes (Monte Carlo over the running trials, exact over x itself: given one draw of the
running outcomes, x's improvement is an ordinary EI under the conditional posterior). This
is the fantasy-averaged EI of Spearmint (Snoek et al. 2012) and what Optuna's GPSampler
computes as qLogEI over running trials, with the GP's hyperparameters fitted on real results
only.

The alternative to the kriging believer (`pipeline.search.acquisition`), which pins every
running trial at its posterior mean with no variance, so the next suggestion is pushed a
length scale away from it. On the suite at concurrency 4 the two tie (the `Bayes.pending`
option says by how much, where), so the believer, which has an analytic gradient, stays
the default and this is `search.bayes.pending: fantasies`.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, solve_triangular
from scipy.special import logsumexp

from pipeline.search.improvement import log_h
from pipeline.search.posterior import Posterior

SAMPLES = 64
"""Draws of the running trials' joint outcome; the improvement of x given each draw is exact,
so the Monte Carlo error is in the running trials alone (4-16 dimensions)."""
_JITTER = 1e-9


def posterior_cross(model, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Posterior covariance of the latent function between the rows of A and of B, in the
    units of the values the model was fitted to."""
    k_ab = model.kernel_(A, B)  # a WhiteKernel adds nothing between two different arrays
    k_ax = model.kernel_(A, model.X_train_)
    k_xb = model.kernel_(model.X_train_, B)
    return (k_ab - k_ax @ model.K_inv_ @ k_xb) * float(np.ravel(model.y_train_std_)[0]) ** 2


class PendingLogEI:
    """log expected improvement at candidate points, `pending` running (module doc)."""

    def __init__(self, model, pending: np.ndarray, y_best: float, xi: float, seed: int,
                 samples: int = SAMPLES) -> None:
        self.model, self.post, self.pending = model, Posterior(model), pending
        mean_p, _ = self.post(pending)
        cov = posterior_cross(model, pending, pending)
        cov[np.diag_indices_from(cov)] += _JITTER * (1.0 + np.abs(np.diag(cov)).max())
        self.chol = cho_factor(cov, lower=True)[0]
        self.chol = np.tril(self.chol)
        z = np.random.RandomState(seed).normal(size=(samples, len(pending)))
        self.z = z
        outcomes = mean_p[None] + z @ self.chol.T  # (samples, pending)
        self.threshold = np.minimum(y_best - xi, outcomes.min(axis=1))  # best per draw

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(X)
        mean, std = self.post(X)
        w = solve_triangular(self.chol, posterior_cross(self.model, X, self.pending).T,
                             lower=True).T  # (m, pending): x's covariance with the draws
        cond_std = np.sqrt(np.maximum(std ** 2 - (w ** 2).sum(axis=1), 1e-24))
        cond_mean = mean[:, None] + w @ self.z.T  # (m, samples)
        z = (self.threshold[None] - cond_mean) / cond_std[:, None]
        log_ei = np.log(cond_std)[:, None] + log_h(z)
        return logsumexp(log_ei, axis=1) - np.log(self.z.shape[0])
