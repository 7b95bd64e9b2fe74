"""Bayesian linear regression as a weight-space ensemble with a closed-form partition function.

Energy E(w) = ½ ||Φ w − y||² with design Φ = X (or [X, 1] with a bias), prior N(w; 0, σ_w² I) (the bias has the
same prior variance σ_w²). With A = σ_w⁻² I + β ΦᵀΦ and b = Φᵀy, completing the square gives

    Z(β) = ∫ N(w; 0, σ_w² I) exp(−β ½ ||Φw − y||²) dw
    log Z(β) = −½ log det(I + β σ_w² ΦᵀΦ) − ½ β yᵀy + ½ β² bᵀ A⁻¹ b
             = −½ log det(I + β σ_w² ΦᵀΦ) − ½ [β ||Φ m − y||² + ||m||² / σ_w²],   m = β A⁻¹ b,

the second line (the minimum of the exponent, a sum of non-negative terms) being the one computed: it has no
cancellation at large β. The Gaussian posterior at inverse temperature β is N(m, A⁻¹). Reading β as the noise
precision, the Bayesian evidence is p(y | X) = Z(β) (β / 2π)^{P/2} (MacKay 1992, "Bayesian interpolation";
Bishop 2006, "Pattern Recognition and Machine Learning", §3.5).

The same ensemble is ``weight_ensemble(nnx.Linear(d, 1, use_bias=bias), X, y, loss="squared",
prior=gaussian(σ_w, fan_in_scaling=False))`` (whose flat weights are ordered [bias, kernel] by ravel_pytree;
here the order is [w, bias]).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .base import CONTINUOUS
from .perceptron import _validated_pytree
from .priors import gaussian_log_density

__all__ = ["BayesianLinear", "linear_evidence"]


def _check_regression(X, y, sigma_w, name: str):
    X_np, y_np = np.asarray(X), np.asarray(y)
    if X_np.ndim != 2 or X_np.shape[0] < 1 or X_np.shape[1] < 1:
        raise ValueError(f"{name}: X must have shape [P, d] with P, d ≥ 1, got {X_np.shape}")
    if y_np.ndim == 2 and y_np.shape[1] == 1:
        y_np = y_np[:, 0]
    if y_np.shape != (X_np.shape[0],):
        raise ValueError(f"{name}: y has shape {np.shape(y)} but X has {X_np.shape[0]} rows (expected ({X_np.shape[0]},))")
    if not np.all(np.isfinite(X_np)):
        raise ValueError(f"{name}: X contains NaN or inf")
    if not np.all(np.isfinite(y_np)):
        raise ValueError(f"{name}: y contains NaN or inf")
    sigma_w = float(sigma_w)
    if not (math.isfinite(sigma_w) and sigma_w > 0):
        raise ValueError(f"{name}: sigma_w must be finite and > 0, got {sigma_w}")
    X_j = jnp.asarray(X_np if np.issubdtype(X_np.dtype, np.floating) else X_np.astype(np.float64))
    return X_j, jnp.asarray(y_np, dtype=X_j.dtype), jnp.asarray(sigma_w, dtype=X_j.dtype)


def _design(X: jax.Array, bias: bool) -> jax.Array:
    return jnp.concatenate([X, jnp.ones((X.shape[0], 1), X.dtype)], axis=1) if bias else X


def _posterior(Phi, y, beta, sigma_w):
    """(m, chol of I + βσ²ΦᵀΦ) for the closed-form quantities."""
    d = Phi.shape[1]
    M = jnp.eye(d, dtype=Phi.dtype) + beta * sigma_w**2 * (Phi.T @ Phi)
    L = jnp.linalg.cholesky(M)
    # m = β A⁻¹ Φᵀy with A = σ⁻² M  →  m = β σ² M⁻¹ Φᵀy
    m = beta * sigma_w**2 * jax.scipy.linalg.cho_solve((L, True), Phi.T @ y)
    return m, L


def _log_z(Phi, y, beta, sigma_w):
    m, L = _posterior(Phi, y, beta, sigma_w)
    r = Phi @ m - y
    return -jnp.sum(jnp.log(jnp.diag(L))) - 0.5 * (beta * (r @ r) + (m @ m) / sigma_w**2)


def linear_evidence(X, y, beta=1.0, sigma_w: float = 1.0, bias: bool = False, normalised: bool = False):
    """Closed-form log Z(β) of Bayesian linear regression (see the module docstring).

    Args:
      X: inputs ``[P, d]``.
      y: targets ``[P]``.
      beta: inverse temperature β ≥ 0 (= noise precision), may be traced.
      sigma_w: prior std of every weight (and of the bias).
      bias: add a bias column of ones to the design.
      normalised: return the Bayesian evidence log p(y|X) = log Z(β) + (P/2) log(β/2π) instead of log Z(β).

    Returns:
      ``[]`` log Z(β) (or log evidence).
    """
    X, y, sigma = _check_regression(X, y, sigma_w, "linear_evidence")
    beta = jnp.asarray(beta, X.dtype)
    log_z = _log_z(_design(X, bias), y, beta, sigma)
    if normalised:
        return log_z + 0.5 * X.shape[0] * jnp.log(beta / (2 * math.pi))
    return log_z


@_validated_pytree("X", "y", "sigma_w", static=("bias",))
class BayesianLinear:
    """Bayesian linear regression ensemble with exact log Z(β), ⟨E⟩_β and Gaussian posterior.

    Position w ``[d (+1)]`` = [weights, bias]. Energy ½||Φw − y||², prior N(0, σ_w² I) (normalised).

    Args:
      X: inputs ``[P, d]`` (no NaN/inf).
      y: targets ``[P]`` or ``[P, 1]``.
      sigma_w: prior std σ_w > 0 (a traced leaf).
      bias: fit a bias (static: it changes dim).

    Leaves: ``X [P, d]``, ``y [P]``, ``sigma_w []``.
    """

    kind = CONTINUOUS
    manifold = "euclidean"
    differentiable = True

    def __init__(self, X, y, sigma_w: float = 1.0, bias: bool = False):
        for f, v in zip(self._fields, _check_regression(X, y, sigma_w, "BayesianLinear") + (bool(bias),)):
            object.__setattr__(self, f, v)

    @property
    def dim(self) -> int:
        return self.X.shape[-1] + int(self.bias)  # last axes: a stacked (disorder-axis) model reports d and P

    @property
    def design(self) -> jax.Array:
        """Φ ``[P, dim]``: X, with a column of ones appended when ``bias``."""
        return _design(self.X, self.bias)

    @property
    def n_data(self) -> int:
        return self.X.shape[-2]

    def energy(self, w: jax.Array) -> jax.Array:
        """E(w) = ½ ||Φw − y||², ``[]``."""
        r = self.design @ w - self.y
        return 0.5 * (r @ r)

    def energy_minibatch(self, w: jax.Array, idx: jax.Array) -> jax.Array:
        """Unbiased (P/B) Σ_{μ∈idx} ½ (Φ_μ w − y_μ)² from ``[B]`` example indices."""
        r = self.design[idx] @ w - self.y[idx]
        return 0.5 * (r @ r) * (self.n_data / idx.shape[0])

    def log_prior(self, w: jax.Array) -> jax.Array:
        """log N(w; 0, σ_w² I), ``[]``."""
        return gaussian_log_density(w, jnp.broadcast_to(self.sigma_w, w.shape).astype(w.dtype))

    def sample_reference(self, key: jax.Array) -> jax.Array:
        """One prior draw ``[dim]``."""
        return self.sigma_w * jax.random.normal(key, (self.dim,), self.X.dtype)

    def log_reference_partition(self) -> float:
        """log Z(0) = 0 (normalised prior)."""
        return 0.0

    def exact_log_partition(self, beta) -> jax.Array:
        """Closed-form log Z(β), shape of ``beta``."""
        one = lambda b: _log_z(self.design, self.y, b, self.sigma_w)  # noqa: E731
        return jnp.vectorize(one)(jnp.asarray(beta, self.X.dtype))

    def exact_mean_energy(self, beta) -> jax.Array:
        """⟨E⟩_β = −∂ log Z/∂β, shape of ``beta``."""
        one = jax.grad(lambda b: _log_z(self.design, self.y, b, self.sigma_w))
        return -jnp.vectorize(one)(jnp.asarray(beta, self.X.dtype))

    def posterior(self, beta):
        """Gaussian posterior at β: mean ``[dim]`` and covariance ``[dim, dim]`` = (σ_w⁻² I + βΦᵀΦ)⁻¹."""
        beta = jnp.asarray(beta, self.X.dtype)
        m, L = _posterior(self.design, self.y, beta, self.sigma_w)
        eye = jnp.eye(self.dim, dtype=self.X.dtype)
        return m, self.sigma_w**2 * jax.scipy.linalg.cho_solve((L, True), eye)
