"""Weight-space ensembles of flax networks (models.weights, priors, losses, topologies, linear)."""

import itertools
import math

import flax.linen as nn
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import integrate, special, stats

from thermodl.models import data, priors, topologies
from thermodl.models.linear import BayesianLinear, linear_evidence
from thermodl.models.perceptron import BinaryPerceptron
from thermodl.models.weights import BinaryWeightEnsemble, WeightEnsemble, weight_ensemble

EPS = {jnp.float32: 2.0**-24, jnp.float64: 2.0**-53}


def _mlp_data(rng, P=12, n_in=3, dtype=np.float32):
    return rng.normal(size=(P, n_in)).astype(dtype)


def _np_layers(ens, w):
    """[(kernel, bias)] per MLP layer as float64 numpy, read from ens.unravel(w) by path."""
    flat = {jax.tree_util.keystr(p): np.asarray(v, np.float64)
            for p, v in jax.tree_util.tree_flatten_with_path(ens.unravel(w))[0]}
    n = len({k.split("]")[1] for k in flat})
    return [(flat[f"['layers'][{i}]['kernel'].value"], flat[f"['layers'][{i}]['bias'].value"]) for i in range(n)]


def _np_forward(layers, x):
    h = np.asarray(x, np.float64)
    for k, b in layers[:-1]:
        h = np.tanh(h @ k + b)
    k, b = layers[-1]
    return h @ k + b


# ----------------------------------------------------------------------------------------------- energies
@pytest.mark.parametrize("loss", ["squared", "logistic", "cross_entropy", "errors"])
def test_energy_matches_explicit_loop(loss, dtype):
    rng = np.random.default_rng(0)
    P, n_out = 16, (3 if loss == "cross_entropy" else 1)
    X = _mlp_data(rng, P, dtype=np.dtype(dtype))
    y = {"squared": rng.normal(size=(P, 1)), "logistic": rng.integers(0, 2, P),
         "cross_entropy": rng.integers(0, 3, P), "errors": rng.choice([-1.0, 1.0], P)}[loss]
    model = topologies.MLP(3, [5], n_out, rngs=nnx.Rngs(1), param_dtype=dtype)
    ens = weight_ensemble(model, X, y, loss=loss)
    w = ens.sample_reference(jax.random.key(2)) * 3.0
    layers = _np_layers(ens, w)
    ref, total_abs = 0.0, 0.0
    for mu in range(P):
        f = _np_forward(layers, X[mu : mu + 1])[0]
        if loss == "squared":
            term = 0.5 * np.sum((f - y[mu]) ** 2)
        elif loss == "logistic":
            term = np.logaddexp(0.0, -(2.0 * y[mu] - 1.0) * f[0])
        elif loss == "cross_entropy":
            term = special.logsumexp(f) - f[y[mu]]
        else:
            term = float(y[mu] * f[0] <= 0)
        ref += term
        total_abs += abs(term)
    E = float(ens.energy(w))
    assert ens.energy(w).dtype == dtype
    # float rounding of P per-example losses (each a few roundings through the network) plus the sum
    tol = 64 * P * EPS[dtype] * (total_abs + 1.0)
    assert abs(E - ref) <= tol, (E, ref, tol)
    assert ens.dim == topologies.count_params(model) == 3 * 5 + 5 + 5 * n_out + n_out
    assert ens.differentiable == (loss != "errors")


def test_unravel_roundtrip_matches_ravel_pytree():
    model = topologies.MLP(4, [3, 2], 2, rngs=nnx.Rngs(0))
    X = np.ones((3, 4), np.float32)
    ens = weight_ensemble(model, X, np.zeros((3, 2)), loss="squared")
    flat, _ = jax.flatten_util.ravel_pytree(nnx.state(model, nnx.Param))
    back = ens.unravel(flat)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(nnx.state(model, nnx.Param))):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ens.predict(flat), model(jnp.asarray(X)), rtol=1e-6)


def test_energy_minibatch_is_unbiased_over_all_subsets():
    rng = np.random.default_rng(3)
    P, B = 7, 3
    model = topologies.MLP(2, [4], 1, rngs=nnx.Rngs(0))
    ens = weight_ensemble(model, rng.normal(size=(P, 2)), rng.choice([-1, 1], P), loss="logistic")
    w = ens.sample_reference(jax.random.key(0))
    subsets = jnp.asarray(list(itertools.combinations(range(P), B)))
    est = jax.jit(jax.vmap(ens.energy_minibatch, in_axes=(None, 0)))(w, subsets)
    np.testing.assert_allclose(float(jnp.mean(est)), float(ens.energy(w)), rtol=1e-5)
    assert ens.n_data == P
    # a single full "minibatch" is the energy itself
    np.testing.assert_allclose(ens.energy_minibatch(w, jnp.arange(P)), ens.energy(w), rtol=1e-6)


def test_test_error_classification_and_squared():
    rng = np.random.default_rng(4)
    model = topologies.MLP(3, [4], 1, rngs=nnx.Rngs(0))
    X, Xt = rng.normal(size=(10, 3)), rng.normal(size=(25, 3))
    yt = rng.choice([-1.0, 1.0], 25)
    ens = weight_ensemble(model, X, rng.choice([0, 1], 10), loss="logistic", X_test=Xt, y_test=yt)
    w = ens.sample_reference(jax.random.key(1))
    f = np.asarray(ens.predict(w, jnp.asarray(Xt, jnp.float32)))[:, 0]
    assert float(ens.test_error(w)) == pytest.approx(np.mean(yt * f <= 0), abs=1e-7)
    ytr = rng.normal(size=25)
    sq = weight_ensemble(model, X, rng.normal(size=10), loss="squared", X_test=Xt, y_test=ytr)
    assert float(sq.test_error(w)) == pytest.approx(np.mean(0.5 * (f - ytr) ** 2), rel=1e-5)
    no_test = weight_ensemble(model, X, rng.normal(size=10))
    with pytest.raises(ValueError, match="held-out"):
        no_test.test_error(w)


class _LinenMLP(nn.Module):
    width: int
    n_out: int

    @nn.compact
    def __call__(self, x):
        h = jnp.tanh(nn.Dense(self.width)(x))  # Dense_0 (named in order of construction)
        return nn.Dense(self.n_out)(h)


def test_linen_and_nnx_paths_give_the_same_energies():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(9, 3)).astype(np.float32), rng.normal(size=(9, 2))
    nnx_model = topologies.MLP(3, [4], 2, rngs=nnx.Rngs(0))
    lin = _LinenMLP(4, 2)
    params = lin.init(jax.random.key(0), X[:1])
    e_nnx = weight_ensemble(nnx_model, X, y)
    e_lin = weight_ensemble((lin, params), X, y)
    e_lin_bare = weight_ensemble((lin, params["params"]), X, y)
    assert e_nnx.dim == e_lin.dim == e_lin_bare.dim
    # both ravel as [layer0 bias, layer0 kernel, layer1 bias, layer1 kernel]: one flat w is one network
    for k in range(3):
        w = jax.random.normal(jax.random.key(k), (e_nnx.dim,))
        np.testing.assert_allclose(e_nnx.energy(w), e_lin.energy(w), rtol=1e-6)
        np.testing.assert_allclose(e_lin.energy(w), e_lin_bare.energy(w), rtol=0)
        np.testing.assert_allclose(e_nnx.log_prior(w), e_lin.log_prior(w), rtol=1e-6)


def test_jit_over_the_model_does_not_recompile_for_new_data_or_new_module_instances():
    traces = []

    @jax.jit
    def energy_and_grad(model, w):
        traces.append(1)  # runs only while tracing
        return jax.value_and_grad(model.energy)(w)

    rng = np.random.default_rng(6)
    make = lambda seed: topologies.MLP(3, [4], 1, rngs=nnx.Rngs(seed))  # noqa: E731
    ens = weight_ensemble(make(0), rng.normal(size=(8, 3)), rng.normal(size=8))
    w = ens.sample_reference(jax.random.key(0))
    energy_and_grad(ens, w)
    e2, _ = energy_and_grad(ens.with_data(rng.normal(size=(8, 3)), rng.normal(size=8)), w)
    energy_and_grad(weight_ensemble(make(7), rng.normal(size=(8, 3)), rng.normal(size=8)), w)
    assert len(traces) == 1
    ens3 = weight_ensemble(make(0), rng.normal(size=(8, 3)), rng.normal(size=8), prior=priors.gaussian(2.0))
    energy_and_grad(ens3, w)  # a new σ only changes the traced scales leaf
    assert len(traces) == 1
    energy_and_grad(weight_ensemble(make(0), rng.normal(size=(9, 3)), rng.normal(size=9)), w)
    assert len(traces) == 2  # a new number of examples is a new shape


# ------------------------------------------------------------------------------------------------- priors
def test_gaussian_prior_scales_fan_in_and_normalisation():
    model = topologies.MLP(4, [3], 2, rngs=nnx.Rngs(0))
    ens = weight_ensemble(model, np.zeros((2, 4)), np.zeros((2, 2)), prior=priors.gaussian(1.5))
    layers = [("b", 3, 1.5), ("k", 12, 1.5 / 2.0), ("b", 2, 1.5), ("k", 6, 1.5 / math.sqrt(3))]
    expected = np.concatenate([np.full(n, s) for _, n, s in layers])
    np.testing.assert_allclose(ens.scales, expected, rtol=1e-6)
    flat = weight_ensemble(model, np.zeros((2, 4)), np.zeros((2, 2)), prior=priors.gaussian(1.5, False))
    np.testing.assert_allclose(flat.scales, np.full(ens.dim, 1.5))
    # log_prior is the normalised product density: compare with scipy
    w = ens.sample_reference(jax.random.key(0))
    ref = np.sum(stats.norm.logpdf(np.asarray(w, np.float64), scale=expected))
    assert float(ens.log_prior(w)) == pytest.approx(ref, rel=1e-5)


def test_gaussian_prior_is_normalised_quadrature_1d(x64):
    model = nnx.Linear(1, 1, use_bias=False, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    ens = weight_ensemble(model, np.ones((1, 1)), np.ones(1), prior=priors.gaussian(0.7))
    f = lambda t: float(jnp.exp(ens.log_prior(jnp.array([t]))))  # noqa: E731
    val, err = integrate.quad(f, -np.inf, np.inf)
    assert abs(val - 1.0) < 1e-9 + 10 * err


def test_gaussian_prior_is_normalised_importance_sampling():
    # E_q[p/q] = 1 for a normalised p; q = N(0, (1.5 s)²) is wider than p so the weights have finite variance.
    model = topologies.MLP(3, [2], 1, rngs=nnx.Rngs(0))
    ens = weight_ensemble(model, np.zeros((2, 3)), np.zeros(2), prior="gaussian")
    n, s = 20000, np.asarray(ens.scales, np.float64)
    z = np.random.default_rng(7).normal(size=(n, ens.dim))
    w = z * 1.5 * s
    log_q = np.sum(stats.norm.logpdf(w, scale=1.5 * s), axis=1)
    log_p = np.asarray(jax.vmap(ens.log_prior)(jnp.asarray(w, jnp.float32)), np.float64)
    ratio = np.exp(log_p - log_q)
    zscore = (ratio.mean() - 1.0) / (ratio.std(ddof=1) / math.sqrt(n))
    assert abs(zscore) < 4.0, zscore


def test_sample_reference_moments_match_the_prior():
    model = topologies.MLP(8, [4], 1, rngs=nnx.Rngs(0))
    ens = weight_ensemble(model, np.zeros((2, 8)), np.zeros(2))
    n = 4000
    draws = np.asarray(jax.vmap(ens.sample_reference)(jax.random.split(jax.random.key(1), n)), np.float64)
    s = np.asarray(ens.scales, np.float64)
    # the variance of u = (w/s)² estimates 1 with stderr sqrt(2/(n·dim)) pooled over all weights
    u = (draws / s) ** 2
    z_var = (u.mean() - 1.0) / (u.std(ddof=1) / math.sqrt(u.size))
    z_mean = (draws / s).mean() / (1.0 / math.sqrt(u.size))
    assert abs(z_var) < 4 and abs(z_mean) < 4
    assert ens.log_reference_partition() == 0.0 and ens.manifold == "euclidean"


def test_spherical_prior():
    model = topologies.Perceptron(7, rngs=nnx.Rngs(0))
    ens = weight_ensemble(model, np.ones((3, 7)), np.ones(3), loss="errors", prior="spherical")
    assert isinstance(ens, WeightEnsemble) and ens.manifold == "sphere" and not ens.differentiable
    draws = jax.vmap(ens.sample_reference)(jax.random.split(jax.random.key(0), 3000))
    np.testing.assert_allclose(jnp.sum(draws**2, axis=1), 7.0, rtol=1e-5)
    # uniform on the sphere: every coordinate has mean 0 and E[w_i²] = 1 (w_i² has variance 2N/(N+2) - ... ≤ 2)
    m = np.asarray(draws, np.float64)
    assert np.all(np.abs(m.mean(0)) / (1.0 / math.sqrt(3000)) < 4.5)
    assert float(ens.log_prior(draws[0])) == 0.0


def test_binary_prior_gives_a_discrete_ensemble_with_fast_perceptron_flips():
    X, y = data.gardner_patterns(jax.random.key(0), 12, 9)
    ens = weight_ensemble(topologies.Perceptron(9, rngs=nnx.Rngs(0)), X, y, loss="errors", prior="binary")
    assert isinstance(ens, BinaryWeightEnsemble) and ens.kind == "discrete" and ens.perceptron_path
    assert ens.values == (-1.0, 1.0) and ens.log_reference_partition() == pytest.approx(9 * math.log(2))
    bp = BinaryPerceptron(X, y)
    flips = jnp.where(jnp.eye(9, dtype=bool), -1.0, 1.0)  # row i flips weight i

    @jax.jit
    def check(ens, bp, w):
        diffs = jax.vmap(ens.energy)(flips * w) - ens.energy(w)
        per_site = jax.vmap(lambda i: ens.delta_energy(w, i))(jnp.arange(9))
        return ens.energy(w), bp.energy(w), diffs, ens.delta_energy_all(w), per_site

    for k in range(5):
        w = ens.sample_reference(jax.random.key(k))
        assert set(np.unique(np.asarray(w))) <= {-1.0, 1.0}
        e, e_bp, diffs, fast, per_site = check(ens, bp, w)
        assert float(e) == float(e_bp)
        np.testing.assert_array_equal(fast, diffs)
        np.testing.assert_array_equal(per_site, diffs)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_binary_prior_flip_energies_fast_and_fallback(loss):
    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(10, 6)), rng.choice([-1.0, 1.0], 10)
    for model in (topologies.Perceptron(6, rngs=nnx.Rngs(0)), topologies.MLP(6, [2], 1, rngs=nnx.Rngs(0))):
        ens = weight_ensemble(model, X, y, loss=loss, prior="binary")
        assert ens.perceptron_path == isinstance(model, topologies.Perceptron)
        w = ens.sample_reference(jax.random.key(1))
        flips = jnp.where(jnp.eye(ens.dim, dtype=bool), -1.0, 1.0)
        diffs = jax.jit(jax.vmap(ens.energy))(flips * w) - ens.energy(w)
        # float32 rounding of the per-example losses, summed over P = 10 examples
        scale = 64 * 2.0**-24 * (float(jnp.sum(jnp.abs(ens.example_losses(w)))) + 1.0)
        np.testing.assert_allclose(jax.jit(ens.delta_energy_all)(w), diffs, atol=scale)
        np.testing.assert_allclose(ens.delta_energy(w, 2), diffs[2], atol=scale)


def test_differentiable_flag_follows_loss_and_units():
    X, y = np.ones((2, 4)), np.ones(2)
    assert weight_ensemble(topologies.CommitteeMachine(4, 2, rngs=nnx.Rngs(0)), X, y).differentiable
    sign = topologies.CommitteeMachine(4, 2, "sign", rngs=nnx.Rngs(0))
    assert not weight_ensemble(sign, X, y).differentiable


# ------------------------------------------------------------------------------------------------- topologies
def test_topologies_forward_and_param_counts():
    x = jax.random.normal(jax.random.key(0), (5, 6))
    p = topologies.Perceptron(6, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(p(x)[:, 0], x @ p.linear.kernel[...][:, 0] / math.sqrt(6), rtol=1e-6)
    pb = topologies.Perceptron(6, bias=True, rngs=nnx.Rngs(0))
    assert topologies.count_params(pb) == 7
    cm = topologies.CommitteeMachine(6, 3, rngs=nnx.Rngs(0))
    W = cm.hidden.kernel[...]
    np.testing.assert_allclose(cm(x)[:, 0], jnp.mean(jax.scipy.special.erf(x @ W / math.sqrt(6) / math.sqrt(2)), 1),
                               rtol=1e-5)
    dl = topologies.DeepLinear(6, 4, 3, 2, rngs=nnx.Rngs(0))  # 3 layers: n_in → 4 → 4 → n_out
    prod = dl.layers[0].kernel[...] @ dl.layers[1].kernel[...] @ dl.layers[2].kernel[...]
    np.testing.assert_allclose(dl(x), x @ prod, rtol=1e-5, atol=1e-6)
    assert topologies.count_params(dl) == 6 * 4 + 4 * 4 + 4 * 2
    cnn = nnx.eval_shape(lambda: topologies.SmallCNN(10, (4, 6), rngs=nnx.Rngs(0)))  # abstract: no init cost
    assert nnx.eval_shape(lambda m, x: m(x), cnn, jnp.ones((3, 64))).shape == (3, 10)
    assert nnx.eval_shape(lambda m, x: m(x), cnn, jnp.ones((3, 8, 8, 1))).shape == (3, 10)
    assert topologies.count_params(cnn) == (9 * 4 + 4) + (9 * 4 * 6 + 6) + (4 * 6 * 10 + 10)
    for act in ("relu", "erf", "linear"):
        mlp = nnx.eval_shape(lambda: topologies.MLP(6, [3], 2, act, rngs=nnx.Rngs(0)))  # noqa: B023
        assert nnx.eval_shape(lambda m, x: m(x), mlp, x).shape == (5, 2)
    with pytest.raises(ValueError, match="activation 'gelu'"):
        topologies.MLP(6, [3], 2, "gelu", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="n_hidden"):
        topologies.CommitteeMachine(6, 0, rngs=nnx.Rngs(0))


def test_cnn_cross_entropy_on_digits():
    d = data.digits(classes=(3, 5, 8), test_fraction=0.2, n_train=40)
    ens = weight_ensemble(topologies.SmallCNN(3, (2, 3), rngs=nnx.Rngs(0)), d.X, d.y, loss="cross_entropy",
                          X_test=d.X_test, y_test=d.y_test)
    w = ens.sample_reference(jax.random.key(0))
    E, g, err = jax.jit(lambda m, w: (*jax.value_and_grad(m.energy)(w), m.test_error(w)))(ens, w)
    assert np.isfinite(E) and np.all(np.isfinite(g)) and g.shape == (ens.dim,)
    assert 0.0 <= float(err) <= 1.0 and float(err) * len(d.y_test) == pytest.approx(round(float(err) * len(d.y_test)))


# ------------------------------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_value_error():
    model = topologies.MLP(3, [2], 1, rngs=nnx.Rngs(0))
    X, y = np.ones((4, 3)), np.ones(4)
    cases = [
        (dict(loss="hinge"), "hinge"),
        (dict(prior="laplace"), "laplace"),
        (dict(X=np.ones((4, 5))), "does not fit"),
        (dict(X=np.where(np.eye(4, 3) > 0, np.nan, 1.0)), "NaN"),
        (dict(y=np.array([1.0, np.nan, 0.0, 1.0])), "NaN"),
        (dict(y=np.ones(3)), "examples"),
        (dict(y=np.ones((4, 2))), "shape"),
        (dict(y=np.array([0, 2, 1, 0]), loss="logistic"), "binary labels"),
        (dict(y=np.array([0, 1, 1, 0]), loss="cross_entropy"), "K ≥ 2"),
        (dict(X_test=np.ones((2, 3))), "both"),
    ]
    for kwargs, msg in cases:
        args = dict(X=X, y=y)
        args.update(kwargs)
        Xa, ya = args.pop("X"), args.pop("y")
        with pytest.raises(ValueError, match=msg):
            weight_ensemble(model, Xa, ya, **args)
    mc = topologies.MLP(3, [2], 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        weight_ensemble(mc, X, np.array([0, 1, 3, 2]), loss="cross_entropy")
    with pytest.raises(ValueError, match="flax"):
        weight_ensemble(lambda x: x, X, y)
    with pytest.raises(ValueError, match="sigma"):
        priors.gaussian(-1.0)


# ------------------------------------------------------------------------------------------ Bayesian linear
def _linear_data(rng, P, d):
    X = rng.normal(size=(P, d))
    return X, X @ rng.normal(size=d) + 0.3 * rng.normal(size=P)


@pytest.mark.parametrize("beta", [0.3, 2.0])
def test_bayesian_linear_closed_form_vs_quadrature_1d(x64, beta):
    rng = np.random.default_rng(9)
    X, y = _linear_data(rng, 6, 1)
    sigma = 0.8
    bl = BayesianLinear(X, y, sigma_w=sigma)
    integrand = lambda w: stats.norm.pdf(w, scale=sigma) * np.exp(-beta * 0.5 * np.sum((X[:, 0] * w - y) ** 2))  # noqa: E731
    val, err = integrate.quad(integrand, -20, 20, epsabs=0, epsrel=1e-12, points=[0.0])
    assert float(bl.exact_log_partition(beta)) == pytest.approx(math.log(val), abs=1e-9 + err / val)
    # <E> = -d log Z / dβ and the posterior mean, also by quadrature
    e_val, _ = integrate.quad(lambda w: integrand(w) * 0.5 * np.sum((X[:, 0] * w - y) ** 2), -20, 20,
                              epsabs=0, epsrel=1e-12)
    m_val, _ = integrate.quad(lambda w: integrand(w) * w, -20, 20, epsabs=0, epsrel=1e-12)
    assert float(bl.exact_mean_energy(beta)) == pytest.approx(e_val / val, rel=1e-8)
    assert float(bl.posterior(beta)[0][0]) == pytest.approx(m_val / val, rel=1e-8)


def test_bayesian_linear_closed_form_vs_quadrature_2d_with_bias(x64):
    rng = np.random.default_rng(10)
    X, y = _linear_data(rng, 5, 1)
    sigma, beta = 1.3, 0.9
    bl = BayesianLinear(X, y, sigma_w=sigma, bias=True)
    assert bl.dim == 2

    x0 = X[:, 0]

    def integrand(b, w):
        r = x0 * w + b - y
        return math.exp(-0.5 * (w * w + b * b) / sigma**2 - beta * 0.5 * float(r @ r)) / (2 * math.pi * sigma**2)

    val, err = integrate.dblquad(integrand, -10, 10, -10, 10, epsabs=1e-13, epsrel=1e-10)
    assert float(bl.exact_log_partition(beta)) == pytest.approx(math.log(val), abs=1e-7)
    assert float(linear_evidence(X, y, beta, sigma, bias=True)) == pytest.approx(math.log(val), abs=1e-7)


def test_linear_evidence_is_the_gaussian_marginal_likelihood(x64):
    rng = np.random.default_rng(11)
    X, y = _linear_data(rng, 7, 3)
    sigma, beta = 0.6, 4.0
    cov = sigma**2 * X @ X.T + np.eye(7) / beta
    ref = stats.multivariate_normal(np.zeros(7), cov).logpdf(y)
    assert float(linear_evidence(X, y, beta, sigma, normalised=True)) == pytest.approx(ref, rel=1e-10)
    assert float(linear_evidence(X, y, 0.0, sigma)) == pytest.approx(0.0, abs=1e-12)


def test_bayesian_linear_equals_weight_ensemble_of_nnx_linear(dtype):
    rng = np.random.default_rng(12)
    X, y = _linear_data(rng, 9, 3)
    X, y = X.astype(np.dtype(dtype)), y.astype(np.dtype(dtype))
    sigma = 0.7
    bl = BayesianLinear(X, y, sigma_w=sigma)
    ens = weight_ensemble(nnx.Linear(3, 1, use_bias=False, param_dtype=dtype, rngs=nnx.Rngs(0)), X, y,
                          loss="squared", prior=priors.gaussian(sigma, fan_in_scaling=False))
    assert bl.dim == ens.dim == 3
    for k in range(4):
        w = ens.sample_reference(jax.random.key(k)) * 2
        tol = 64 * EPS[dtype] * (float(bl.energy(w)) + 1)
        assert float(bl.energy(w)) == pytest.approx(float(ens.energy(w)), abs=tol)
        assert float(bl.log_prior(w)) == pytest.approx(float(ens.log_prior(w)), rel=64 * EPS[dtype])
    np.testing.assert_allclose(bl.sample_reference(jax.random.key(0)).shape, (3,))
    # with a bias: nnx ravels [bias, kernel], BayesianLinear uses [w, bias]
    blb = BayesianLinear(X, y, sigma_w=sigma, bias=True)
    ensb = weight_ensemble(nnx.Linear(3, 1, param_dtype=dtype, rngs=nnx.Rngs(0)), X, y,
                           prior=priors.gaussian(sigma, fan_in_scaling=False))
    w = ensb.sample_reference(jax.random.key(9))
    w_bl = jnp.concatenate([w[1:], w[:1]])
    assert float(blb.energy(w_bl)) == pytest.approx(float(ensb.energy(w)), rel=64 * EPS[dtype])
    assert float(blb.log_prior(w_bl)) == pytest.approx(float(ensb.log_prior(w)), rel=64 * EPS[dtype])


def test_bayesian_linear_bad_inputs_and_jit():
    rng = np.random.default_rng(13)
    X, y = _linear_data(rng, 5, 2)
    for kwargs, msg in [(dict(y=np.ones(4)), "rows"), (dict(X=np.ones(5)), "shape"),
                        (dict(sigma_w=0.0), "sigma_w"), (dict(y=np.full(5, np.nan)), "NaN")]:
        args = dict(X=X, y=y)
        args.update(kwargs)
        with pytest.raises(ValueError, match=msg):
            BayesianLinear(**args)
    traces = []

    @jax.jit
    def log_z(model, beta):
        traces.append(1)
        return model.exact_log_partition(beta)

    a = log_z(BayesianLinear(X, y), 1.0)
    b = log_z(BayesianLinear(*_linear_data(rng, 5, 2), sigma_w=2.0), 0.5)
    assert len(traces) == 1 and np.isfinite(a) and np.isfinite(b)
