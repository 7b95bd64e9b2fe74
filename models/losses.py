"""Per-example losses that turn network outputs into the energy of a weight-space ensemble.

The energy of a weight ensemble is E(w) = Σ_μ ℓ(f_w(x_μ), y_μ) (see ``weights.weight_ensemble``); this module
holds the ℓ's, the check that targets fit a network's output, and the canonical form the targets are stored in:

============== ====================================== ==================================================
name           targets (as stored)                    ℓ(f, y) per example
============== ====================================== ==================================================
squared        float, the network output's shape      ½ ||f − y||²  (summed over output axes)
logistic       float ±1 [P] (0/1 or ±1 accepted)      softplus(−y·f)  = log(1 + e^{−y f}), one logit
cross_entropy  int [P] in [0, K)                      logsumexp(f) − f_y   (K logits)
errors         float ±1 [P] (one output) or int [P]   Θ(−y·f) with y·f = 0 counted as an error (one output);
               (K outputs)                            [argmax f ≠ y] for K ≥ 2 outputs
============== ====================================== ==================================================

``errors`` is piecewise constant (``differentiable`` is False for ensembles that use it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["LOSSES", "per_example_loss", "misclassified", "check_loss", "canonical_targets"]

LOSSES = ("squared", "logistic", "cross_entropy", "errors")
CLASSIFICATION = ("logistic", "cross_entropy", "errors")


def check_loss(loss: str) -> str:
    """Return ``loss`` if it is a known loss name, else raise ``ValueError`` listing the valid ones."""
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of: {', '.join(LOSSES)}")
    return loss


def _one_output(f: jax.Array) -> jax.Array:
    """[B] or [B, 1] network outputs -> [B]."""
    return f.reshape(f.shape[0])


def per_example_loss(loss: str, f: jax.Array, y: jax.Array) -> jax.Array:
    """ℓ(f_μ, y_μ) for every example.

    Args:
      loss: one of ``LOSSES``.
      f: network outputs ``[B, *out]``.
      y: targets in canonical form (``canonical_targets``), ``[B, *out]`` for squared, ``[B]`` otherwise.

    Returns:
      ``[B]`` losses in the output dtype.
    """
    if loss == "squared":
        d = (f - y).reshape(f.shape[0], -1)
        return 0.5 * jnp.sum(d * d, axis=1)
    if loss == "logistic":
        return jax.nn.softplus(-y * _one_output(f))
    if loss == "cross_entropy":
        logz = jax.nn.logsumexp(f, axis=-1)
        return logz - jnp.take_along_axis(f, y[:, None], axis=-1)[:, 0]
    if loss == "errors":
        return misclassified(f, y).astype(f.dtype)
    raise ValueError(f"unknown loss {loss!r}; choose one of: {', '.join(LOSSES)}")


def misclassified(f: jax.Array, y: jax.Array) -> jax.Array:
    """Boolean ``[B]``: y·f ≤ 0 for one output (±1 labels), argmax f ≠ y for K ≥ 2 outputs (int labels)."""
    if jnp.issubdtype(y.dtype, jnp.integer):
        return jnp.argmax(f.reshape(f.shape[0], -1), axis=-1) != y
    return y * _one_output(f) <= 0


def canonical_targets(loss: str, y, out_shape: tuple[int, ...], *, what: str = "y") -> jax.Array:
    """Check targets against the network's output shape and convert them to the stored form.

    Args:
      loss: one of ``LOSSES``.
      y: targets, ``[P, ...]`` (host array or jax array with concrete values).
      out_shape: the network's output shape for ONE example batch of size 1, e.g. ``(1, 1)`` or ``(1, K)``.
      what: name used in error messages ("y" or "y_test").

    Returns:
      ``[P, *out_shape[1:]]`` float targets (squared), ``[P]`` ±1 floats (logistic / errors with one output)
      or ``[P]`` int32 labels (cross_entropy / errors with K ≥ 2 outputs).

    Raises:
      ValueError: targets that do not fit the network output or the loss (values, shape, NaN).
    """
    check_loss(loss)
    y_np = np.asarray(y)
    if y_np.ndim == 0:
        raise ValueError(f"{what} must have a leading data axis, got a scalar")
    p = y_np.shape[0]
    event = tuple(out_shape[1:])
    n_out = int(np.prod(event)) if event else 1
    if np.issubdtype(y_np.dtype, np.floating) and not np.all(np.isfinite(y_np)):
        raise ValueError(f"{what} contains NaN or inf")
    if loss == "squared":
        y_f = y_np if np.issubdtype(y_np.dtype, np.floating) else y_np.astype(np.float64)
        if y_np.shape[1:] == event:
            return jnp.asarray(y_f)
        if y_np.ndim == 1 and n_out == 1:
            return jnp.asarray(y_f.reshape((p,) + event))
        raise ValueError(f"{what} has shape {y_np.shape} but the network outputs shape {(p,) + event}")
    if loss == "cross_entropy" or (loss == "errors" and n_out > 1):
        if len(event) != 1 or n_out < 2:
            raise ValueError(f"loss {loss!r} with integer labels needs a network with K ≥ 2 logits; "
                             f"the network outputs shape {(p,) + event}")
        y_flat = y_np.reshape(p, -1) if y_np.ndim > 1 else y_np
        if y_flat.ndim != 1 or y_flat.shape[0] != p:
            raise ValueError(f"{what} must be integer labels of shape ({p},), got shape {y_np.shape}")
        if not np.all(np.equal(np.mod(y_flat, 1), 0)) or y_flat.min() < 0 or y_flat.max() >= n_out:
            raise ValueError(f"{what} must hold integer labels in [0, {n_out}), got values in "
                             f"[{y_flat.min()}, {y_flat.max()}]")
        return jnp.asarray(y_flat.astype(np.int32))
    # logistic / errors with one output: labels ±1 (0/1 accepted and mapped to ±1)
    if n_out != 1:
        raise ValueError(f"loss {loss!r} with ±1 labels needs a network with one output; "
                         f"the network outputs shape {(p,) + event}")
    y_flat = y_np.reshape(p, -1) if y_np.ndim > 1 else y_np
    if y_flat.ndim != 1 or y_flat.shape[0] != p:
        raise ValueError(f"{what} must have shape ({p},) or ({p}, 1), got {y_np.shape}")
    values = set(np.unique(y_flat).tolist())
    if values <= {-1.0, 1.0}:
        pm = y_flat
    elif values <= {0.0, 1.0}:
        pm = 2.0 * y_flat - 1.0
    else:
        raise ValueError(f"{what} must hold binary labels (0/1 or ±1) for loss {loss!r}, got values "
                         f"{sorted(values)[:5]}")
    dt = y_np.dtype if np.issubdtype(y_np.dtype, np.floating) else np.float64
    return jnp.asarray(np.asarray(pm, dtype=dt))  # float64 host values become the default jax float
