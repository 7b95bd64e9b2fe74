"""Priors over the flat weight vector of a weight-space ensemble.

A prior is a small hashable spec (static in the model pytree); the per-weight numbers it implies (the Gaussian
standard deviations) are computed once from the parameter shapes and stored as a traced leaf of the model.

* ``gaussian(sigma, fan_in_scaling=True)``: independent N(0, s_i²) per weight, normalised density on R^dim.
  With ``fan_in_scaling`` every *kernel* (a parameter with ndim ≥ 2, e.g. the ``(in, out)`` kernel of
  ``nnx.Linear`` or the ``(kh, kw, in, out)`` kernel of ``nnx.Conv``) has variance σ²/fan_in with
  fan_in = prod(shape[:-1]); every other parameter (biases, 1-d scales, scalars) has variance σ². Without it
  every weight has variance σ². (Neal 1996, "Bayesian Learning for Neural Networks", ch. 2: the σ²/fan_in
  scaling gives a well-defined infinite-width limit.) Note that ``topologies.Perceptron`` already divides by
  √N in its forward pass; use ``fan_in_scaling=False`` there to get O(1) weights.
* ``spherical()``: the uniform (normalised) measure on the sphere |w|² = dim (Gardner 1988); ``log_prior`` is
  0 with respect to that measure and the ensemble has ``manifold="sphere"``.
* ``binary()``: w ∈ {−1, +1}^dim under the counting measure (Gardner & Derrida 1988; Krauth & Mézard 1989); the
  ensemble is then discrete with log Z(0) = dim·log 2.

Strings are accepted wherever a prior is: ``"gaussian"`` (σ = 1, fan-in scaling), ``"spherical"``, ``"binary"``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Prior",
    "PRIORS",
    "gaussian",
    "spherical",
    "binary",
    "resolve_prior",
    "gaussian_scales",
    "gaussian_log_density",
    "sample_sphere",
]

PRIORS = ("gaussian", "spherical", "binary")


class Prior(NamedTuple):
    """A prior spec (hashable, static).

    kind: ``"gaussian"``, ``"spherical"`` or ``"binary"``.
    sigma: Gaussian scale σ (ignored by the other kinds).
    fan_in_scaling: Gaussian kernels get variance σ²/fan_in when True (see module docstring).
    """

    kind: str
    sigma: float = 1.0
    fan_in_scaling: bool = True


def gaussian(sigma: float = 1.0, fan_in_scaling: bool = True) -> Prior:
    """Independent Gaussian prior: kernels N(0, σ²/fan_in) (if ``fan_in_scaling``), everything else N(0, σ²).

    Args:
      sigma: σ > 0.
      fan_in_scaling: divide the variance of ndim ≥ 2 parameters by fan_in = prod(shape[:-1]).

    Returns:
      a ``Prior`` spec.
    """
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"gaussian prior: sigma must be finite and > 0, got {sigma}")
    return Prior("gaussian", sigma, bool(fan_in_scaling))


def spherical() -> Prior:
    """Uniform prior on the sphere |w|² = dim (normalised; ``manifold="sphere"``)."""
    return Prior("spherical")


def binary() -> Prior:
    """Binary weights w ∈ {−1, +1}^dim under the counting measure (the ensemble becomes discrete)."""
    return Prior("binary")


def resolve_prior(prior) -> Prior:
    """A ``Prior`` from a spec or a name (``"gaussian"``, ``"spherical"``, ``"binary"``)."""
    if isinstance(prior, Prior):
        if prior.kind not in PRIORS:
            raise ValueError(f"unknown prior {prior.kind!r}; choose one of: {', '.join(PRIORS)}")
        return prior
    if isinstance(prior, str):
        if prior == "gaussian":
            return gaussian()
        if prior == "spherical":
            return spherical()
        if prior == "binary":
            return binary()
    raise ValueError(f"unknown prior {prior!r}; choose one of: {', '.join(PRIORS)} (or a models.priors spec)")


def _is_kernel(path, shape: tuple[int, ...]) -> bool:
    names = [str(getattr(k, "key", getattr(k, "name", k))) for k in path]
    names = [n for n in names if n != "value"]
    if names and "bias" in names[-1]:
        return False
    return len(shape) >= 2


def gaussian_scales(prior: Prior, params, dtype=None) -> jax.Array:
    """Per-weight standard deviations ``[dim]`` in ``ravel_pytree(params)`` order.

    Args:
      prior: a gaussian ``Prior``.
      params: the parameter pytree (nnx ``State`` or linen ``{'name': array}`` dict).
      dtype: dtype of the result (default: that of the first parameter).

    Returns:
      ``[dim]`` standard deviations s_i (σ/√fan_in for kernel entries, σ otherwise).
    """
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    if dtype is None:
        dtype = leaves[0][1].dtype if leaves else jnp.float32
    pieces = []
    for path, leaf in leaves:
        shape = tuple(np.shape(leaf))
        s = prior.sigma
        if prior.fan_in_scaling and _is_kernel(path, shape):
            s = prior.sigma / math.sqrt(int(np.prod(shape[:-1])))
        pieces.append(np.full(int(np.prod(shape)), s, dtype=np.float64))
    flat = np.concatenate(pieces) if pieces else np.zeros((0,))
    return jnp.asarray(flat, dtype=dtype)


def gaussian_log_density(w: jax.Array, scales: jax.Array) -> jax.Array:
    """Normalised log N(w; 0, diag(s²)) = Σ_i [−½ (w_i/s_i)² − log s_i − ½ log 2π].

    Args:
      w: ``[dim]`` weights.
      scales: ``[dim]`` standard deviations.

    Returns:
      ``[]`` log density.
    """
    z = w / scales
    return -0.5 * jnp.sum(z * z) - jnp.sum(jnp.log(scales)) - 0.5 * w.shape[-1] * math.log(2 * math.pi)


def sample_sphere(key: jax.Array, dim: int, dtype=jnp.float32) -> jax.Array:
    """One uniform draw ``[dim]`` from the sphere |w|² = dim (normalised Gaussian; Muller 1959)."""
    g = jax.random.normal(key, (dim,), dtype=dtype)
    return g * (math.sqrt(dim) / jnp.linalg.norm(g))
