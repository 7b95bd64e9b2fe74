"""Network topologies (flax NNX modules) whose weight space thermodl samples.

Every module takes ``rngs`` (``nnx.Rngs``) for its initial weights and ``param_dtype`` (float32 by default),
and maps inputs ``[P, n_in]`` to outputs ``[P, n_out]``. Turn one into an ensemble with
``weights.weight_ensemble(module, X, y, ...)``. A module with a piecewise-constant output (sign units) has
``differentiable = False``, which the ensemble propagates (so the engine picks a gradient-free kernel).

* ``Perceptron(n_in, bias=False)``: f(x) = w·x/√N (+ b): the Gardner (1988) normalisation, so ±1 or spherical
  weights (|w|² = N) give O(1) pre-activations.
* ``CommitteeMachine(n_in, n_hidden, activation="erf"|"sign")``: f(x) = (1/K) Σ_k g(w_k·x/√N) with fixed unit
  second-layer weights (Schwarze & Hertz 1992; soft committee with g(h) = erf(h/√2): Saad & Solla 1995).
* ``MLP(n_in, widths, n_out, activation, bias=True)``: fully connected, nnx.Linear default (LeCun) init.
* ``DeepLinear(n_in, width, depth, n_out)``: ``depth`` bias-free linear maps (Saxe, McClelland & Ganguli 2014).
* ``SmallCNN(n_out=10)``: two 3×3 conv layers with ReLU and 2×2 average pooling, then a linear read-out, for 8×8
  single-channel images (``data.digits``), inputs ``[P, 64]``, ``[P, 8, 8]`` or ``[P, 8, 8, 1]``.

The "erf" activation is g(h) = erf(h/√2) everywhere (so g'(0) = √(2/π), g ∈ (−1, 1)).
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["ACTIVATIONS", "Perceptron", "CommitteeMachine", "MLP", "DeepLinear", "SmallCNN", "count_params"]


def _erf(h):
    return jax.scipy.special.erf(h / math.sqrt(2.0))


ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "erf": _erf,
    "linear": lambda h: h,
    "sign": jnp.sign,
}


def _activation(name: str, allowed: Sequence[str]):
    if name not in allowed:
        raise ValueError(f"unknown activation {name!r}; choose one of: {', '.join(allowed)}")
    return ACTIVATIONS[name]


def _positive(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class Perceptron(nnx.Module):
    """f(x) = w·x/√N (+ b), output ``[P, 1]``; weights initialised N(0, 1).

    Args:
      n_in: N, the input dimension.
      bias: add a scalar bias b (initialised 0).
      rngs: ``nnx.Rngs`` for the initial weights.
      param_dtype: parameter dtype.
    """

    def __init__(self, n_in: int, bias: bool = False, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        self.n_in = _positive("n_in", n_in)
        self.bias = bool(bias)
        self.linear = nnx.Linear(n_in, 1, use_bias=self.bias, kernel_init=nnx.initializers.normal(1.0),
                                 param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.bias:
            k = self.linear.kernel[...]
            return x @ k / math.sqrt(self.n_in) + self.linear.bias[...]
        return self.linear(x) / math.sqrt(self.n_in)


class CommitteeMachine(nnx.Module):
    """f(x) = (1/K) Σ_k g(w_k·x/√N), output ``[P, 1]``; first-layer weights N(0, 1), second layer fixed.

    Args:
      n_in: N, the input dimension.
      n_hidden: K, the number of hidden units.
      activation: ``"erf"`` (g(h) = erf(h/√2), soft committee) or ``"sign"`` (then ``differentiable=False``).
      rngs: ``nnx.Rngs``.
      param_dtype: parameter dtype.
    """

    def __init__(self, n_in: int, n_hidden: int, activation: str = "erf", *, rngs: nnx.Rngs,
                 param_dtype=jnp.float32):
        self.n_in = _positive("n_in", n_in)
        self.n_hidden = _positive("n_hidden", n_hidden)
        self.activation = activation
        _activation(activation, ("erf", "sign"))
        self.differentiable = activation != "sign"
        self.hidden = nnx.Linear(n_in, n_hidden, use_bias=False, kernel_init=nnx.initializers.normal(1.0),
                                 param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        g = ACTIVATIONS[self.activation]
        h = g(self.hidden(x) / math.sqrt(self.n_in))
        return jnp.mean(h, axis=-1, keepdims=True)


class MLP(nnx.Module):
    """Fully connected network n_in → widths[0] → … → n_out, activation between layers, linear output.

    Args:
      n_in: input dimension.
      widths: hidden widths (may be empty: a single linear layer).
      n_out: output dimension.
      activation: ``"tanh"``, ``"relu"``, ``"erf"`` or ``"linear"``.
      bias: biases in every layer (initialised 0).
      rngs: ``nnx.Rngs``.
      param_dtype: parameter dtype.
    """

    def __init__(self, n_in: int, widths: Sequence[int], n_out: int, activation: str = "tanh",
                 bias: bool = True, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        sizes = [_positive("n_in", n_in)] + [_positive("width", w) for w in widths] + [_positive("n_out", n_out)]
        _activation(activation, ("tanh", "relu", "erf", "linear"))
        self.activation = activation
        self.layers = nnx.List([nnx.Linear(a, b, use_bias=bias, param_dtype=param_dtype, rngs=rngs)
                                for a, b in zip(sizes[:-1], sizes[1:])])

    def __call__(self, x: jax.Array) -> jax.Array:
        g = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = g(layer(x))
        return self.layers[-1](x)


class DeepLinear(nnx.Module):
    """``depth`` bias-free linear maps n_in → width → … → width → n_out (depth = number of weight matrices).

    Args:
      n_in, width, n_out: layer sizes.
      depth: number of weight matrices (≥ 1; depth 1 is a single n_in → n_out map).
      rngs: ``nnx.Rngs``.
      param_dtype: parameter dtype.
    """

    def __init__(self, n_in: int, width: int, depth: int, n_out: int, *, rngs: nnx.Rngs,
                 param_dtype=jnp.float32):
        _positive("depth", depth)
        sizes = [_positive("n_in", n_in)] + [_positive("width", width)] * (depth - 1) + [_positive("n_out", n_out)]
        self.layers = nnx.List([nnx.Linear(a, b, use_bias=False, param_dtype=param_dtype, rngs=rngs)
                                for a, b in zip(sizes[:-1], sizes[1:])])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = layer(x)
        return x


class SmallCNN(nnx.Module):
    """conv3×3(1→c1)-ReLU-avgpool2 → conv3×3(c1→c2)-ReLU-avgpool2 → linear(4·c2 → n_out), for 8×8 images.

    Args:
      n_out: number of outputs (classes / logits).
      channels: ``(c1, c2)`` feature maps.
      rngs: ``nnx.Rngs``.
      param_dtype: parameter dtype.

    Inputs ``[P, 64]``, ``[P, 8, 8]`` or ``[P, 8, 8, 1]``; outputs ``[P, n_out]``.
    """

    def __init__(self, n_out: int = 10, channels: tuple[int, int] = (8, 16), *, rngs: nnx.Rngs,
                 param_dtype=jnp.float32):
        c1, c2 = (_positive("channels", c) for c in channels)
        self.conv1 = nnx.Conv(1, c1, (3, 3), param_dtype=param_dtype, rngs=rngs)
        self.conv2 = nnx.Conv(c1, c2, (3, 3), param_dtype=param_dtype, rngs=rngs)
        self.out = nnx.Linear(4 * c2, _positive("n_out", n_out), param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], 8, 8, 1)
        x = nnx.avg_pool(jax.nn.relu(self.conv1(x)), (2, 2), strides=(2, 2))
        x = nnx.avg_pool(jax.nn.relu(self.conv2(x)), (2, 2), strides=(2, 2))
        return self.out(x.reshape(x.shape[0], -1))


def count_params(model) -> int:
    """Number of trainable scalars: of an NNX module (its ``nnx.Param``s), a ``(linen_module, params)`` pair
    or a params pytree."""
    if isinstance(model, nnx.Module):
        tree = nnx.state(model, nnx.Param)
    elif isinstance(model, tuple) and len(model) == 2:
        tree = model[1]
    else:
        tree = model
    # works on abstract modules too (nnx.eval_shape: ShapeDtypeStruct leaves)
    return int(sum(math.prod(getattr(leaf, "shape", ())) for leaf in jax.tree.leaves(tree)))
