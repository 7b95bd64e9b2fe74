"""Weight-space Gibbs ensembles of flax networks: p_β(w) ∝ prior(w) · exp(−β Σ_μ ℓ(f_w(x_μ), y_μ)).

``weight_ensemble(model, X, y, loss=..., prior=...)`` turns a flax NNX module (or a linen ``(module, params)``
pair) and a data set into a thermodl model over the flat parameter vector w ``[dim]`` (ravelled in
``jax.flatten_util.ravel_pytree`` order). The network is split once (``nnx.split(model, nnx.Param, ...)``) and
merged inside the energy, so only arrays reach the kernels. Data, targets and prior scales are pytree leaves
(traced: a new data set of the same shape never recompiles, ``with_data``); the graphdef, loss and prior kind are
static. The statistical mechanics of learning in weight space follows Seung, Sompolinsky & Tishby (1992) and
Engel & Van den Broeck, "Statistical Mechanics of Learning" (2001).

* Gaussian / spherical prior → ``WeightEnsemble`` (``kind="continuous"``, ``manifold`` "euclidean"/"sphere").
* Binary prior → ``BinaryWeightEnsemble`` (``kind="discrete"``, ``values=(-1, 1)``, counting measure,
  log Z(0) = dim·log 2). Flip energies: for a bias-free ``topologies.Perceptron`` the pre-activations are
  updated in O(P) per flip (u_μ → u_μ − 2 w_i X_μi); otherwise by recomputing the per-example losses.

Energies sum per-example losses in the data dtype (float32: relative error ≲ P·2⁻²⁴, checked against float64
loops in the tests). ``weight_ensemble`` validates its inputs on the host: call it outside ``jax.jit``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from . import losses as _losses
from . import priors as _priors
from .base import CONTINUOUS, DISCRETE, flip, log_reference_binary
from .topologies import Perceptron

__all__ = ["WeightEnsemble", "BinaryWeightEnsemble", "weight_ensemble", "split_network"]


class _Net(NamedTuple):
    """Static, hashable description of a network: how to apply it and how to unravel its flat weights."""

    framework: str  # "nnx" or "linen"
    definition: Any  # nnx GraphDef or the linen Module
    treedef: Any  # PyTreeDef of the params pytree
    shapes: tuple  # shape of each params leaf, in treedef order
    param_dtype: str  # dtype of the flat vector that ``sample_reference`` draws


def split_network(model):
    """Split a flax network into (static ``_Net``, params pytree, other state pytree).

    Args:
      model: an ``nnx.Module``, or a tuple ``(linen_module, variables)`` with ``variables`` either the params
        dict or the full ``{'params': ..., other collections}`` dict from ``module.init``.

    Returns:
      ``(net, params, rest)``: ``rest`` holds non-parameter state (nnx) or non-'params' collections (linen).
    """
    if isinstance(model, nnx.Module):
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        framework, definition = "nnx", graphdef
    elif isinstance(model, tuple) and len(model) == 2 and isinstance(model[0], nn.Module):
        definition, variables = model
        variables = dict(variables)
        if "params" in variables:
            params = variables.pop("params")
            rest = variables
        else:
            params, rest = variables, {}
        framework = "linen"
    else:
        raise ValueError(f"model must be a flax nnx.Module or a (linen_module, params) tuple, got {type(model)!r}")
    leaves, treedef = jax.tree.flatten(params)
    if not leaves:
        raise ValueError("model has no parameters")
    shapes = tuple(tuple(np.shape(leaf)) for leaf in leaves)
    dtype = str(jnp.result_type(*leaves))
    return _Net(framework, definition, treedef, shapes, dtype), params, rest


def _unravel(net: _Net, w: jax.Array):
    sizes = [math.prod(s) for s in net.shapes]
    pieces = jnp.split(w, np.cumsum(sizes)[:-1].tolist()) if len(sizes) > 1 else [w]
    return jax.tree.unflatten(net.treedef, [p.reshape(s) for p, s in zip(pieces, net.shapes)])


def _apply(net: _Net, rest, params, X: jax.Array) -> jax.Array:
    if net.framework == "nnx":
        return nnx.merge(net.definition, params, rest)(X)
    return net.definition.apply({"params": params, **rest}, X)


def _check_data(X, what: str = "X") -> jax.Array:
    X_np = np.asarray(X)
    if X_np.ndim < 1 or X_np.shape[0] < 1:
        raise ValueError(f"{what} must have a non-empty leading data axis, got shape {X_np.shape}")
    if not np.issubdtype(X_np.dtype, np.number) and X_np.dtype != np.bool_:
        raise ValueError(f"{what} must be numeric, got dtype {X_np.dtype}")
    if not np.all(np.isfinite(X_np)):
        raise ValueError(f"{what} contains NaN or inf")
    if not np.issubdtype(X_np.dtype, np.floating):
        return jnp.asarray(X_np, dtype=jnp.zeros(()).dtype)
    return jnp.asarray(X_np)


def _prepare(net: _Net, params, rest, loss: str, X, y, what_x="X", what_y="y"):
    """Validate one data set against the network and the loss; return (X, canonical y)."""
    X = _check_data(X, what_x)
    try:
        out = jax.eval_shape(lambda p, x: _apply(net, rest, p, x), params, X[:1])
    except Exception as err:  # noqa: BLE001 - any tracing failure means the data do not fit the network
        raise ValueError(f"{what_x} with shape {X.shape} does not fit the model: {err}") from None
    y_np = np.asarray(y)
    if y_np.ndim < 1 or y_np.shape[0] != X.shape[0]:
        raise ValueError(f"{what_y} has shape {y_np.shape} but {what_x} has {X.shape[0]} examples")
    return X, _losses.canonical_targets(loss, y_np, tuple(out.shape), what=what_y)


class _DataMethods:
    """Methods shared by the continuous and binary weight ensembles (fields: net, rest, X, y, X_test, y_test,
    loss)."""

    @property
    def dim(self) -> int:
        return sum(math.prod(s) for s in self.net.shapes)

    @property
    def n_data(self) -> int:
        """P, read as the axis before the ``example_ndim`` axes of one example, so a stacked (disorder-axis)
        ensemble with X ``[D, P, ...]`` reports P too."""
        return self.X.shape[self.X.ndim - self.example_ndim - 1]

    def unravel(self, x: jax.Array):
        """The flat weights ``[dim]`` as the network's params pytree (nnx ``State`` / linen dict)."""
        return _unravel(self.net, x)

    def predict(self, x: jax.Array, X: jax.Array | None = None) -> jax.Array:
        """Network outputs ``[P, *out]`` for weights ``x`` ``[dim]`` on ``X`` (default: the training inputs)."""
        return _apply(self.net, self.rest, self.unravel(x), self.X if X is None else X)

    def example_losses(self, x: jax.Array) -> jax.Array:
        """ℓ(f_w(x_μ), y_μ) for every training example, ``[P]``."""
        return _losses.per_example_loss(self.loss, self.predict(x), self.y)

    def energy(self, x: jax.Array) -> jax.Array:
        """E(w) = Σ_μ ℓ(f_w(x_μ), y_μ), ``[]``."""
        return jnp.sum(self.example_losses(x))

    def energy_minibatch(self, x: jax.Array, idx: jax.Array) -> jax.Array:
        """Unbiased estimate (P/B) Σ_{μ∈idx} ℓ_μ of E(w) from the ``[B]`` example indices ``idx``
        (drawn uniformly, with or without replacement)."""
        f = self.predict(x, self.X[idx])
        batch = _losses.per_example_loss(self.loss, f, self.y[idx])
        return jnp.sum(batch) * (self.n_data / idx.shape[0])

    def test_error(self, x: jax.Array) -> jax.Array:
        """Generalisation error of weights ``x`` on the held-out data, ``[]``: fraction misclassified
        (logistic, cross_entropy, errors) or mean ½||f − y||² (squared). Averaged over a Gibbs ensemble of
        ``x`` it is the Gibbs generalisation error."""
        if self.X_test is None:
            raise ValueError("no held-out data: pass X_test and y_test to weight_ensemble")
        f = self.predict(x, self.X_test)
        if self.loss == "squared":
            return jnp.mean(_losses.per_example_loss("squared", f, self.y_test))
        return jnp.mean(_losses.misclassified(f, self.y_test).astype(f.dtype))

    def with_data(self, X, y, X_test=None, y_test=None):
        """The same ensemble on a new data set (validated; same shapes → no recompilation under jit)."""
        params = jax.tree.unflatten(self.net.treedef, [jnp.zeros(s, self.net.param_dtype) for s in self.net.shapes])
        X, y = _prepare(self.net, params, self.rest, self.loss, X, y)
        X_test, y_test = _prepare_test(self.net, params, self.rest, self.loss, X_test, y_test)
        return self.replace(X=X, y=y, X_test=X_test, y_test=y_test, example_ndim=X.ndim - 1)


def _prepare_test(net, params, rest, loss, X_test, y_test):
    if (X_test is None) != (y_test is None):
        raise ValueError("pass both X_test and y_test, or neither")
    if X_test is None:
        return None, None
    return _prepare(net, params, rest, loss, X_test, y_test, "X_test", "y_test")


@struct.dataclass
class WeightEnsemble(_DataMethods):
    """Continuous weight-space ensemble (Gaussian or spherical prior). Build with ``weight_ensemble``.

    Leaves: ``X [P, ...]``, ``y [P, ...]`` (canonical targets), ``X_test``, ``y_test`` (or None), ``scales``
    ``[dim]`` (Gaussian prior std per weight; None for the spherical prior), ``rest`` (non-parameter state).
    Static: ``net``, ``loss``, ``prior_kind`` ("gaussian" / "spherical"), ``differentiable``, ``example_ndim``
    (axes of one input example); σ and fan-in scaling live in ``scales``, so a new prior width does not recompile.
    """

    X: jax.Array
    y: jax.Array
    X_test: jax.Array | None
    y_test: jax.Array | None
    scales: jax.Array | None
    rest: Any
    net: _Net = struct.field(pytree_node=False)
    loss: str = struct.field(pytree_node=False)
    prior_kind: str = struct.field(pytree_node=False)
    differentiable: bool = struct.field(pytree_node=False, default=True)
    example_ndim: int = struct.field(pytree_node=False, default=1)  # axes of one input example (X is [P, ...])

    kind = CONTINUOUS

    @property
    def manifold(self) -> str:
        return "sphere" if self.prior_kind == "spherical" else "euclidean"

    def log_prior(self, x: jax.Array) -> jax.Array:
        """Normalised log prior ``[]`` (Lebesgue on R^dim, or the normalised uniform measure on the sphere)."""
        if self.prior_kind == "spherical":
            return jnp.zeros((), x.dtype)
        return _priors.gaussian_log_density(x, self.scales.astype(x.dtype))

    def sample_reference(self, key: jax.Array) -> jax.Array:
        """One draw ``[dim]`` from the prior (the β = 0 ensemble)."""
        if self.prior_kind == "spherical":
            return _priors.sample_sphere(key, self.dim, self.net.param_dtype)
        return self.scales * jax.random.normal(key, (self.dim,), self.scales.dtype)

    def log_reference_partition(self) -> float:
        """log Z(0) = 0 (normalised prior)."""
        return 0.0


@struct.dataclass
class BinaryWeightEnsemble(_DataMethods):
    """Discrete ensemble over ±1 weights (counting measure). Build with ``weight_ensemble(..., prior="binary")``.

    Leaves: ``X``, ``y``, ``X_test``, ``y_test``, ``rest``. Static: ``net``, ``loss``, ``perceptron_path``
    (True for a bias-free ``topologies.Perceptron``: O(P) flip energies from the pre-activations), ``example_ndim``
    (axes of one input example).
    """

    X: jax.Array
    y: jax.Array
    X_test: jax.Array | None
    y_test: jax.Array | None
    rest: Any
    net: _Net = struct.field(pytree_node=False)
    loss: str = struct.field(pytree_node=False)
    perceptron_path: bool = struct.field(pytree_node=False, default=False)
    example_ndim: int = struct.field(pytree_node=False, default=1)  # axes of one input example (X is [P, ...])

    kind = DISCRETE
    values = (-1.0, 1.0)
    differentiable = False

    def sample_reference(self, key: jax.Array) -> jax.Array:
        """Uniform ±1 weights ``[dim]``."""
        return jax.random.rademacher(key, (self.dim,), dtype=self.net.param_dtype)

    def log_reference_partition(self) -> float:
        """log Z(0) = dim·log 2 (counting measure)."""
        return log_reference_binary(self.dim)

    def _flip_losses(self, x: jax.Array, i: jax.Array) -> jax.Array:
        """Per-example losses ``[P]`` after flipping weight i."""
        if self.perceptron_path:
            X = self.X.reshape(self.n_data, -1)
            u = X @ x - 2.0 * x[i] * X[:, i]
            f = (u / math.sqrt(self.dim)).reshape(self.n_data, 1)
            return _losses.per_example_loss(self.loss, f, self.y)
        return self.example_losses(flip(x, i, self.values))

    def _losses_now(self, x: jax.Array) -> jax.Array:
        if self.perceptron_path:
            f = (self.X.reshape(self.n_data, -1) @ x / math.sqrt(self.dim)).reshape(self.n_data, 1)
            return _losses.per_example_loss(self.loss, f, self.y)
        return self.example_losses(x)

    def delta_energy(self, x: jax.Array, i: jax.Array) -> jax.Array:
        """E(x with weight i flipped) − E(x), ``[]`` (summed per example, so no cancellation of totals)."""
        return jnp.sum(self._flip_losses(x, i) - self._losses_now(x))

    def delta_energy_all(self, x: jax.Array) -> jax.Array:
        """The flip energy of every weight, each flipped alone, ``[dim]``."""
        now = self._losses_now(x)
        if self.perceptron_path:
            X = self.X.reshape(self.n_data, -1)
            u = X @ x
            U = u[None, :] - 2.0 * x[:, None] * X.T  # [dim, P] pre-activations after each single flip
            f = (U / math.sqrt(self.dim))[..., None]
            after = jax.vmap(lambda fi: _losses.per_example_loss(self.loss, fi, self.y))(f)
            return jnp.sum(after - now[None, :], axis=1)
        return jax.vmap(lambda i: jnp.sum(self._flip_losses(x, i) - now))(jnp.arange(self.dim))


def weight_ensemble(model, X, y, *, loss: str = "squared", prior="gaussian", X_test=None, y_test=None):
    """The Gibbs ensemble over the weights of a flax network: E(w) = Σ_μ ℓ(f_w(x_μ), y_μ).

    Args:
      model: an ``nnx.Module`` (its current ``nnx.Param``s fix the parameter layout) or a linen
        ``(module, params)`` tuple.
      X: inputs ``[P, ...]`` (no NaN/inf).
      y: targets ``[P, ...]``: real targets for "squared" (same shape as the network output, or ``[P]`` for
        one output); binary labels 0/1 or ±1 for "logistic" / "errors" (one output logit); integer class labels
        for "cross_entropy" (and for "errors" with K ≥ 2 outputs: argmax errors).
      loss: ``"squared"`` (½||f − y||²), ``"logistic"`` (softplus(−y f)), ``"cross_entropy"`` or ``"errors"``
        (number of training errors, y·f = 0 counted as an error; not differentiable).
      prior: a ``priors`` spec or name: ``"gaussian"`` (σ = 1 with fan-in scaling), ``"spherical"``, ``"binary"``.
      X_test, y_test: optional held-out data for ``test_error``.

    Returns:
      ``WeightEnsemble`` (gaussian / spherical prior) or ``BinaryWeightEnsemble`` (binary prior), with
      ``dim`` = number of parameters, ``energy(w [dim]) -> []``, ``energy_minibatch(w, idx [B])``,
      ``n_data``, ``unravel``, ``predict``, ``test_error``, ``sample_reference``, ``log_reference_partition``.

    Raises:
      ValueError: unknown loss / prior, a model that is not flax, data that do not fit the network or loss,
        NaN/inf in the data.
    """
    loss = _losses.check_loss(loss)
    prior = _priors.resolve_prior(prior)
    net, params, rest = split_network(model)
    X, y = _prepare(net, params, rest, loss, X, y)
    X_test, y_test = _prepare_test(net, params, rest, loss, X_test, y_test)
    differentiable = loss != "errors" and bool(getattr(model, "differentiable", True))
    if prior.kind == "binary":
        fast = isinstance(model, Perceptron) and not model.bias
        return BinaryWeightEnsemble(X, y, X_test, y_test, rest, net, loss, fast, example_ndim=X.ndim - 1)
    scales = _priors.gaussian_scales(prior, params, net.param_dtype) if prior.kind == "gaussian" else None
    return WeightEnsemble(X, y, X_test, y_test, scales, rest, net, loss, prior.kind, differentiable,
                          example_ndim=X.ndim - 1)
