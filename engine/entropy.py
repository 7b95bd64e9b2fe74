"""Entropy at fixed training error: β(ε₀) by root finding on the equilibrium runner, then S = log Z + β⟨E⟩.

Training error of a weight ensemble: ε(β) = ⟨E⟩_β / P with P = ``model.n_data`` the number of training examples.
For error-count energies (``models.BinaryPerceptron``, ``SphericalPerceptron``, ``weight_ensemble(...,
loss="errors")``) this is the Gibbs training error, the mean fraction of misclassified examples. For other losses
it is the mean training loss per example (squared loss: ½ mean squared residual; cross-entropy: mean negative log
likelihood); pass ``n_data`` to normalise differently (``n_data=1``: ε is ⟨E⟩ itself).

Root finding. U(β) = ⟨E⟩_β is non-increasing (dU/dβ = −Var_β E ≤ 0). (1) one ``run_ensemble`` call on a geometric
grid of β (plus 0) brackets the crossing U = ε₀P, interpolated linearly in log β; (2) ``n_newton`` Newton steps
β ← β + (U(β) − ε₀P)/Var_β(E), each one ``run_ensemble`` at one β (β is traced: no recompilation). The β error
propagates the stderr of U through the slope: δβ = stderr(U)/Var_β(E).

Entropy. S(ε₀) = log Z(β) + β ε₀ P, the Legendre transform of log Z at U = ε₀P (per parameter: / ``model.dim``).
Because d/dβ [log Z(β) + β U₀] = U₀ − U(β) vanishes at the root, S computed with the target ε₀P is stationary in
β: an error δβ moves it only by ½ Var_β(E) δβ² (included in the error), while the plug-in log Z + β⟨E⟩_measured
(also reported) carries β·stderr(U) more. log Z comes from ``engine.api.log_partition`` (SMC by default), whose
stderr and ``reliable`` flag are carried through. Conventions as everywhere: discrete models use the counting
measure (S/N ∈ [0, log 2] for ±1 weights; S → log #solutions as ε₀ → 0), continuous ones the normalised prior
(S ≤ 0: the log volume fraction; the spherical perceptron's S → Gardner's version-space volume as ε₀ → 0).

This is the CANONICAL entropy at β(ε₀): at finite N it differs from the microcanonical log #{w : E(w) = ε₀P} (or
≤ ε₀P) by O(log N) terms; calibrations must compare like with like (canonical exact values by enumeration at β).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np

from .keys import as_key, fold
from .validate import check_positive_int

__all__ = ["BetaAtError", "EntropyAtError", "beta_at_training_error", "entropy_at_training_error"]


class BetaAtError(NamedTuple):
    """Output of ``beta_at_training_error``.

    Fields:
        beta, beta_stderr: the root β(ε₀) and stderr(U)/Var_β(E).
        training_error, training_error_stderr: ε measured at the last evaluated β (close to ``beta``).
        energy_variance: Var_β(E) there. n_data: P (the normalisation of ε).
        history: list of (β, ε, stderr ε) of every evaluation (grid, then Newton steps).
        reliable, reasons: False when ε₀ is outside the grid's range or the Newton steps did not settle.
    """

    beta: float
    beta_stderr: float
    training_error: float
    training_error_stderr: float
    energy_variance: float
    n_data: float
    history: list
    reliable: bool
    reasons: tuple


class EntropyAtError(NamedTuple):
    """Output of ``entropy_at_training_error``: S per parameter at training error ε₀.

    Fields:
        entropy, entropy_stderr: (log Z(β) + β ε₀ P)/N ± (stderr log Z ⊕ ½ Var δβ²)/N.
        entropy_plugin, entropy_plugin_stderr: (log Z(β) + β U_measured)/N ± its error (log Z ⊕ β stderr U).
        eps0, beta, beta_stderr, log_z, log_z_stderr, n_params: the pieces. root: ``BetaAtError``.
        log_z_estimate: the ``LogZEstimate``. reliable, reasons: from the root and from the log Z estimator.
    """

    entropy: float
    entropy_stderr: float
    entropy_plugin: float
    entropy_plugin_stderr: float
    eps0: float
    beta: float
    beta_stderr: float
    log_z: float
    log_z_stderr: float
    n_params: int
    root: BetaAtError
    log_z_estimate: Any
    reliable: bool
    reasons: tuple


def _measure(model, betas, key, n_chains, n_steps, kernel, options):
    from .ensemble import run_ensemble

    res = run_ensemble(model, np.asarray(betas, np.float64), key=key, n_chains=n_chains, n_steps=n_steps,
                       kernel=kernel, **options)
    u, v = res.mean_energy(), res.energy_variance()
    return (np.asarray(u.mean, np.float64), np.asarray(u.stderr, np.float64), np.asarray(v.mean, np.float64))


def beta_at_training_error(model: Any, eps0: float, *, key, n_chains: int = 64, n_steps: int = 1000,
                           kernel: str = "auto", beta_max: float = 64.0, n_grid: int = 12, n_newton: int = 2,
                           n_data: float | None = None, **options) -> BetaAtError:
    """β such that the ensemble's training error ⟨E⟩_β / P equals ε₀ (module doc).

    Args:
        model: a thermodl model with ``n_data`` (or pass ``n_data``). eps0: target training error (> 0, below
            the β = 0 value). key: jax key or int seed (grid: fold(key, 0); Newton step i: fold(key, 1 + i)).
        n_chains, n_steps, kernel, **options: ``run_ensemble`` settings of every evaluation.
        beta_max: largest β of the bracketing grid (geometric, ``n_grid`` points from beta_max·2^(1−n_grid)).
        n_newton: Newton steps after the bracket.

    Returns:
        ``BetaAtError``.
    """
    p = float(n_data if n_data is not None else model.n_data)
    eps0 = float(eps0)
    if not (math.isfinite(eps0) and eps0 > 0):
        raise ValueError(f"eps0 must be finite and > 0, got {eps0!r}")
    n_grid = check_positive_int(n_grid, "n_grid")
    key = as_key(key)
    u0 = eps0 * p
    grid = np.concatenate([[0.0], np.geomspace(beta_max * 2.0 ** (1 - n_grid), beta_max, n_grid)])
    u, se, var = _measure(model, grid, fold(key, 0), n_chains, n_steps, kernel, options)
    history = [(float(b), float(x / p), float(s / p)) for b, x, s in zip(grid, u, se)]
    reasons = []
    if u[0] <= u0:
        raise ValueError(f"eps0={eps0} is not below the beta=0 training error {u[0] / p:.4g}: no beta >= 0 reaches it")
    below = np.nonzero(u <= u0)[0]
    if below.size == 0:
        reasons.append(f"training error at beta_max={beta_max:g} is {u[-1] / p:.4g} > eps0: raise beta_max")
        beta = float(grid[-1])
    else:
        j = int(below[0])
        if j == 1:  # between β = 0 and the first grid point: linear in β
            beta = float(grid[1] * (u[0] - u0) / (u[0] - u[1]))
        else:
            t = (u[j - 1] - u0) / (u[j - 1] - u[j]) if u[j - 1] != u[j] else 0.5
            beta = float(math.exp(math.log(grid[j - 1]) + t * (math.log(grid[j]) - math.log(grid[j - 1]))))
    lo, hi = beta / 4.0, beta * 4.0
    uk, sk, vk = u[-1], se[-1], var[-1]
    for i in range(n_newton):
        (uk,), (sk,), (vk,) = _measure(model, [beta], fold(key, 1 + i), n_chains, n_steps, kernel, options)
        history.append((beta, float(uk / p), float(sk / p)))
        step = (uk - u0) / vk if vk > 0 else 0.0
        beta = float(np.clip(beta + step, lo, hi))
    beta_se = float(sk / vk) if vk > 0 else math.inf
    if n_newton and abs(uk - u0) > 3.0 * sk + 0.5 * vk * beta_se and abs(uk - u0) > 0.1 * u0:
        reasons.append(f"Newton steps did not settle: U = {uk:.4g} vs target {u0:.4g} at the last evaluation")
    if not math.isfinite(beta_se):
        reasons.append("zero energy variance at the root: beta is not determined by the training error")
    return BetaAtError(beta, beta_se, float(uk / p), float(sk / p), float(vk), p, history, not reasons,
                       tuple(reasons))


def entropy_at_training_error(model: Any, eps0: float, *, key, method: str = "smc", n_chains: int = 64,
                              n_steps: int = 1000, kernel: str = "auto", beta_max: float = 64.0,
                              n_data: float | None = None, logz_options: dict | None = None,
                              **options) -> EntropyAtError:
    """Entropy per parameter of the weight ensemble at training error ε₀ (module doc).

    Args:
        model, eps0, n_chains, n_steps, kernel, beta_max, n_data, **options: see ``beta_at_training_error``.
        key: jax key or int seed (root: fold(key, 0); log Z: fold(key, 1)).
        method: ``engine.api.log_partition`` method for log Z(β) ("smc" default; "exact" for calibration).
        logz_options: options of that estimator (default: same ``kernel``).

    Returns:
        ``EntropyAtError``.
    """
    from .api import log_partition

    key = as_key(key)
    root = beta_at_training_error(model, eps0, key=fold(key, 0), n_chains=n_chains, n_steps=n_steps,
                                  kernel=kernel, beta_max=beta_max, n_data=n_data, **options)
    lz_opts = dict(logz_options or {})
    if method != "exact":
        lz_opts.setdefault("kernel", kernel)
    est = log_partition(model, root.beta, method=method, key=None if method == "exact" else fold(key, 1),
                        **lz_opts)
    n = int(model.dim)
    u0 = float(eps0) * root.n_data
    second = 0.5 * root.energy_variance * root.beta_stderr**2
    s = (est.value + root.beta * u0) / n
    s_se = math.hypot(est.stderr, second) / n
    u_meas = root.training_error * root.n_data
    s_plug = (est.value + root.beta * u_meas) / n
    s_plug_se = math.hypot(est.stderr, root.beta * root.training_error_stderr * root.n_data) / n
    reasons = list(root.reasons) + [f"log Z: {r}" for r in est.reasons]
    if reasons:
        warnings.warn(f"entropy at eps0={eps0:g}: not reliable: " + "; ".join(reasons), RuntimeWarning,
                      stacklevel=2)
    return EntropyAtError(float(s), float(s_se), float(s_plug), float(s_plug_se), float(eps0), root.beta,
                          root.beta_stderr, float(est.value), float(est.stderr), n, root, est, not reasons,
                          tuple(reasons))
