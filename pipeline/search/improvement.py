"""Expected improvement in logs: finite and ordered where EI itself underflows to 0 (far
from the incumbent, next to a running trial), with its gradient for L-BFGS-B."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import erfcx, log_ndtr, ndtr

from pipeline.search.posterior import Posterior

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def log_h(z: np.ndarray) -> np.ndarray:
    """log(z * Phi(z) + phi(z)), accurate where EI underflows (z << 0)."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    high, mid, low = z > -1, (z <= -1) & (z > -1e4), z <= -1e4
    zh = z[high]
    out[high] = np.log(zh * ndtr(zh) + np.exp(-0.5 * zh ** 2 - _LOG_SQRT_2PI))
    zm = z[mid]  # Phi/phi = sqrt(pi/2) erfcx(-z/sqrt 2): no underflow
    out[mid] = -0.5 * zm ** 2 - _LOG_SQRT_2PI + np.log1p(
        zm * math.sqrt(math.pi / 2) * erfcx(-zm / math.sqrt(2)))
    zl = z[low]
    out[low] = -0.5 * zl ** 2 - _LOG_SQRT_2PI - 2 * np.log(-zl)
    return out


def log_ei(model: Any, X: np.ndarray, y_best: float, xi: float, log: bool = True) -> np.ndarray:
    """log expected improvement (minimisation) of `model` (or its `Posterior`) at the rows
    of X."""
    mu, std = (model if isinstance(model, Posterior) else Posterior(model))(X)
    std = np.maximum(std, 1e-12)
    value = np.log(std) + log_h((y_best - xi - mu) / std)
    return value if log else np.exp(value)


def log_ei_with_gradient(post: Posterior, x: np.ndarray, y_best: float,
                         xi: float) -> tuple[float, np.ndarray]:
    """log EI at one point and its gradient in x, from the posterior's analytic gradient:
    d log EI = d std / std + Phi(z) / h(z) dz, z = (y_best - xi - mean) / std, with
    Phi(z) / h(z) taken in logs (it stays finite where both underflow)."""
    mu, std, mu_grad, std_grad = post.with_gradient(x)
    std = max(std, 1e-12)
    z = (y_best - xi - mu) / std
    value = math.log(std) + float(log_h(np.array([z]))[0])
    ratio = phi_over_h(z)
    return value, std_grad / std + ratio * (-mu_grad - z * std_grad) / std


def phi_over_h(z: float) -> float:
    """Phi(z) / h(z), the derivative of log h at z. In logs while both stay representable;
    below -30 by its expansion -z - 2/z (relative error ~1/z^4): there the two logs are
    ~1e19 apart from 0 at z = -1e10 and their difference is rounding noise (it overflowed
    exp() in a 300-trial sweep whose GP had collapsed its variance between close points)."""
    if z < -30.0:
        return -z - 2.0 / z
    return math.exp(float(log_ndtr(z)) - float(log_h(np.array([z]))[0]))
