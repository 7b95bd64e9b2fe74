"""Sizes survive stacking: for every model family, ``stack_models([m, m2])`` (leaves [2, ...]) reports the same
``dim`` (and ``n_data``, layer sizes, ...) as one model, and its energy vmaps over the disorder axis.

Also: ``models.base.has_exact`` (the protocol check) agrees with ``engine.exact.exact_source`` on closed forms.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from thermodl.models import data, topologies
from thermodl.models.base import has_exact, stack_models
from thermodl.models.hopfield import Hopfield
from thermodl.models.ising import Ising2D
from thermodl.models.linear import BayesianLinear
from thermodl.models.perceptron import BinaryPerceptron, SphericalPerceptron
from thermodl.models.rbm import RBM
from thermodl.models.sk import SK
from thermodl.models.weights import weight_ensemble


def _pair(seed_a: int, seed_b: int, build):
    return build(np.random.default_rng(seed_a)), build(np.random.default_rng(seed_b))


def _perceptron(cls):
    return lambda r: cls(r.choice([-1.0, 1.0], size=(7, 5)).astype(np.float32),
                         r.choice([-1.0, 1.0], size=7).astype(np.float32))


def _weights(net_fn, x_shape, prior):
    def build(r):
        X = r.standard_normal(x_shape).astype(np.float32)
        y = r.choice([-1.0, 1.0], size=x_shape[0]).astype(np.float32)
        return weight_ensemble(net_fn(), X, y, loss="errors" if prior == "binary" else "logistic", prior=prior)
    return build


FAMILIES = {
    "ising": (lambda r: Ising2D(3, 4, J=float(r.uniform(0.5, 1.5))), ("L", "M")),
    "sk": (lambda r: SK((lambda u: u + u.T)(np.triu(r.standard_normal((6, 6)), 1))), ()),
    "hopfield": (lambda r: Hopfield(r.choice([-1.0, 1.0], size=(3, 8)).astype(np.float32)), ("n_patterns",)),
    "rbm": (lambda r: RBM(r.standard_normal((5, 3)).astype(np.float32), r.standard_normal(5).astype(np.float32),
                          r.standard_normal(3).astype(np.float32), units="spin"), ("n_visible", "n_hidden")),
    "binary_perceptron": (_perceptron(BinaryPerceptron), ("n_data",)),
    "spherical_perceptron": (_perceptron(SphericalPerceptron), ("n_data",)),
    "bayesian_linear": (lambda r: BayesianLinear(r.standard_normal((9, 4)), r.standard_normal(9), bias=True),
                        ("n_data",)),
    "weights_mlp": (_weights(lambda: topologies.MLP(4, [3], 1, rngs=nnx.Rngs(0)), (10, 4), "gaussian"), ("n_data",)),
    "weights_cnn": (_weights(lambda: topologies.SmallCNN(1, (2, 2), rngs=nnx.Rngs(0)), (6, 8, 8), "spherical"),
                    ("n_data",)),
    "weights_binary": (_weights(lambda: topologies.Perceptron(5, rngs=nnx.Rngs(0)), (7, 5), "binary"), ("n_data",)),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_sizes_survive_stacking(family):
    build, sizes = FAMILIES[family]
    m, m2 = _pair(0, 1, build)
    stacked = stack_models([m, m2])
    assert jax.tree.leaves(stacked)[0].shape[0] == 2
    assert stacked.dim == m.dim == m2.dim
    for name in sizes:
        assert getattr(stacked, name) == getattr(m, name), name
    assert stacked.log_reference_partition() == m.log_reference_partition()
    # energy vmaps over the disorder axis and matches each model alone
    x = m.sample_reference(jax.random.key(3))
    assert x.shape == (stacked.dim,)
    e = jax.jit(jax.vmap(lambda mm: mm.energy(x)))(stacked)
    np.testing.assert_allclose(e, [float(m.energy(x)), float(m2.energy(x))], rtol=1e-5, atol=1e-5)
    # ... and so do per-model draws of the reference ensemble (a [2, dim] batch)
    xs = jax.vmap(lambda mm, k: mm.sample_reference(k))(stacked, jax.random.split(jax.random.key(4), 2))
    assert xs.shape == (2, m.dim)


def test_weight_ensemble_with_data_keeps_n_data():
    ens = FAMILIES["weights_cnn"][0](np.random.default_rng(0))
    r = np.random.default_rng(5)
    other = ens.with_data(r.standard_normal((11, 64)).astype(np.float32), r.choice([-1.0, 1.0], size=11))
    assert (ens.n_data, other.n_data) == (6, 11) and other.dim == ens.dim
    assert stack_models([other, other]).n_data == 11


def test_gardner_patterns_stack_without_subclasses():
    """The stack the Gardner / Gibbs-learning figures build: plain perceptrons, leaves [D, P, N]."""
    ms = [BinaryPerceptron(*data.gardner_patterns(jax.random.key(s), 9, 5)) for s in range(3)]
    stacked = stack_models(ms)
    assert stacked.X.shape == (3, 9, 5) and (stacked.dim, stacked.n_data) == (5, 9)
    counts = jax.vmap(lambda mm: mm.energy_counts())(stacked)
    np.testing.assert_array_equal(counts[1], ms[1].energy_counts())


@pytest.mark.parametrize("model", [
    Ising2D(4), Ising2D(16, h=0.1), Ising2D(13, 14, J=-1.0), SK(np.zeros((8, 8))), SK(np.zeros((21, 21))),
    Hopfield(np.ones((2, 21))), RBM(np.zeros((21, 21))), RBM(np.zeros((6, 3))),
    BayesianLinear(np.ones((3, 2)), np.ones(3)), BinaryPerceptron(np.ones((3, 5)), np.ones(3)),
], ids=lambda m: repr(type(m).__name__))
def test_has_exact_agrees_with_engine(model):
    from thermodl.engine.exact import exact_source

    assert has_exact(model) == (exact_source(model) == "closed_form")
    assert has_exact(stack_models([model, model])) == has_exact(model)
