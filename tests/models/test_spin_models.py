"""Spin models (Ising2D, SK, RBM, Hopfield): energies vs naive loops, flip energies, block masks, pytree
behaviour, observables and input validation."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thermodl.models.base import flip, has_exact, stack_models
from thermodl.models.hopfield import Hopfield
from thermodl.models.ising import Ising2D
from thermodl.models.rbm import RBM
from thermodl.models.sk import SK

# ----------------------------------------------------------------------------------------- naive energies


def naive_ising(model, x):
    L, M, J, h = model.L, model.M, float(model.J), float(model.h)
    s = np.asarray(x, np.float64).reshape(L, M)
    e, scale = 0.0, 0.0
    for r in range(L):
        for c in range(M):
            for rr, cc in (((r + 1) % L, c), (r, (c + 1) % M)):  # lower and right neighbour: each bond once
                e -= J * s[r, c] * s[rr, cc]
                scale += abs(J)
            e -= h * s[r, c]
            scale += abs(h)
    return e, scale


def naive_sk(model, x):
    J, s = np.asarray(model.J, np.float64), np.asarray(x, np.float64)
    e, scale = 0.0, 0.0
    for i in range(len(s)):
        for j in range(i + 1, len(s)):
            e -= J[i, j] * s[i] * s[j]
            scale += abs(J[i, j])
    return e, scale


def naive_hopfield(model, x):
    xi, s = np.asarray(model.patterns, np.float64), np.asarray(x, np.float64)
    P, N = xi.shape
    e, scale = 0.0, 0.0
    for i in range(N):
        for j in range(N):
            if i != j:
                Jij = sum(xi[mu, i] * xi[mu, j] for mu in range(P)) / N
                e -= 0.5 * Jij * s[i] * s[j]
                scale += abs(Jij)
    return e, scale


def naive_rbm(model, x):
    W, a, b = (np.asarray(t, np.float64) for t in (model.W, model.a, model.b))
    x = np.asarray(x, np.float64)
    v, h = x[: model.n_visible], x[model.n_visible :]
    e, scale = 0.0, 0.0
    for i in range(len(v)):
        e -= a[i] * v[i]
        scale += abs(a[i])
        for j in range(len(h)):
            e -= v[i] * W[i, j] * h[j]
            scale += abs(W[i, j])
    for j in range(len(h)):
        e -= b[j] * h[j]
        scale += abs(b[j])
    return e, scale


_KEYS = {"sk9": 1, "hopfield10": 2, "rbm_binary": 3, "rbm_spin": 4, "rbm_binary_wide": 5}
BUILDERS = {
    "ising4x4": (lambda k: Ising2D(4), naive_ising),
    "ising3x5_field": (lambda k: Ising2D(3, 5, J=0.7, h=0.3), naive_ising),
    "ising2x3_afm": (lambda k: Ising2D(2, 3, J=-1.0, h=-0.2), naive_ising),
    "ising6x4": (lambda k: Ising2D(6, 4, J=0.4, h=0.1), naive_ising),
    "sk9": (lambda k: SK.random(k, 9), naive_sk),
    "hopfield10": (lambda k: Hopfield.random(k, 3, 10), naive_hopfield),
    "rbm_binary": (lambda k: RBM.random(k, 4, 3, scale=0.7), naive_rbm),
    "rbm_spin": (lambda k: RBM.random(k, 5, 2, scale=0.7, units="spin"), naive_rbm),
    "rbm_binary_wide": (lambda k: RBM.random(k, 2, 6, scale=0.7), naive_rbm),
}
MODEL_NAMES = list(BUILDERS)


def get_model(name):
    """(model, naive energy) for a spread of shapes, couplings and unit types, built in the current dtype."""
    build, naive = BUILDERS[name]
    return build(jax.random.key(_KEYS.get(name, 0))), naive


def random_configs(model, n, seed=0, dtype=None):
    rng = np.random.default_rng(seed)
    lo, hi = model.values
    return jnp.asarray(np.where(rng.random((n, model.dim)) < 0.5, lo, hi), dtype)


def tol(dtype):
    return 2e-6 if dtype == jnp.float32 else 1e-12


# ----------------------------------------------------------------------------------------- energies


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_energy_matches_naive_loops(name, dtype):
    model, naive = get_model(name)
    xs = random_configs(model, 6, seed=1, dtype=dtype)
    energies = jax.jit(jax.vmap(model.energy))(xs)
    assert energies.shape == (6,) and energies.dtype == dtype
    for x, e in zip(xs, energies):
        ref, scale = naive(model, x)
        assert abs(float(e) - ref) <= tol(dtype) * (1.0 + scale), (name, float(e), ref)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_delta_energy_matches_energy_difference(name, dtype):
    model, naive = get_model(name)
    xs = random_configs(model, 3, seed=2, dtype=dtype)
    de_one = jax.jit(model.delta_energy)
    de_all = jax.jit(model.delta_energy_all)
    for x in xs:
        e0, scale = naive(model, x)
        all_ = np.asarray(de_all(x))
        assert all_.shape == (model.dim,) and all_.dtype == dtype
        for i in range(model.dim):
            e1, _ = naive(model, flip(x, i, model.values))
            want = e1 - e0
            assert abs(float(de_one(x, jnp.int32(i))) - want) <= tol(dtype) * (1.0 + 2 * scale), (name, i)
            assert abs(all_[i] - want) <= tol(dtype) * (1.0 + 2 * scale), (name, i)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_block_masks_are_non_interacting_partitions(name):
    with jax.enable_x64(True):
        model, _ = get_model(name)
        if not callable(getattr(model, "block_masks", None)):
            pytest.skip("fully connected model: no blocks")
        masks = np.asarray(model.block_masks())
        assert masks.dtype == bool and masks.shape[1] == model.dim
        np.testing.assert_array_equal(masks.sum(0), 1)  # every site in exactly one block
        x = random_configs(model, 1, seed=3)[0]
        e0 = model.energy(x)
        de = np.asarray(model.delta_energy_all(x))
        for block in masks:
            sites = np.flatnonzero(block)
            for i, j in itertools.combinations(sites, 2):
                e2 = model.energy(flip(flip(x, i, model.values), j, model.values))
                # non-interacting: the flip energies of a pair add up exactly
                assert abs(float(e2 - e0) - (de[i] + de[j])) < 1e-10, (name, i, j)


def test_block_masks_detect_interaction():
    """The additivity check above can fail: two neighbours of a lattice do interact."""
    with jax.enable_x64(True):
        model = Ising2D(4)
        x = jnp.ones(16)
        de = model.delta_energy_all(x)
        e2 = model.energy(flip(flip(x, 0, model.values), 1, model.values)) - model.energy(x)
        assert abs(float(e2) - float(de[0] + de[1])) > 1.0


@pytest.mark.parametrize("L,M,blocks", [(4, 4, 2), (2, 6, 2), (3, 3, 3), (3, 4, 3), (5, 2, 3), (5, 7, 3)])
def test_ising_colourings(L, M, blocks):
    masks = np.asarray(Ising2D(L, M).block_masks())
    assert masks.shape == (blocks, L * M)
    colour = np.argmax(masks, 0).reshape(L, M)
    # proper colouring of the torus: no site shares its colour with a neighbour
    assert np.all(colour != np.roll(colour, 1, 0)) and np.all(colour != np.roll(colour, 1, 1))


# ----------------------------------------------------------------------------------------- observables


def test_ising_magnetization_and_ground_states(x64):
    model = Ising2D(3, 4, J=1.0)
    up = jnp.ones(12)
    assert float(model.magnetization(up)) == 1.0
    np.testing.assert_allclose(model.magnetization(jnp.stack([up, -up])), [1.0, -1.0])
    assert float(model.energy(up)) == -2 * 12  # 2 bonds per site
    assert float(Ising2D(2, 2).energy(jnp.ones(4))) == -8  # L = M = 2: both bonds of each pair are counted


def test_sk_overlap_and_random_statistics(x64):
    n = 200
    model = SK.random(jax.random.key(3), n)
    J = np.asarray(model.J)
    np.testing.assert_array_equal(J, J.T)
    np.testing.assert_array_equal(np.diag(J), 0.0)
    upper = J[np.triu_indices(n, 1)] * math.sqrt(n)  # should be N(0, 1)
    m = len(upper)
    assert abs(upper.mean()) < 4.0 / math.sqrt(m)
    assert abs(upper.var() - 1.0) < 4.0 * math.sqrt(2.0 / m)
    x = model.sample_reference(jax.random.key(1))
    assert float(model.overlap(x, x)) == 1.0 and float(model.overlap(x, -x)) == -1.0


def test_hopfield_couplings_and_retrieval(x64):
    model = Hopfield.random(jax.random.key(5), 3, 16)
    xi = np.asarray(model.patterns)
    J = np.asarray(model.couplings())
    np.testing.assert_allclose(J, (xi.T @ xi / 16) * (1 - np.eye(16)), atol=1e-15)
    x = random_configs(model, 1, seed=4)[0]
    np.testing.assert_allclose(model.energy(x), -0.5 * x @ J @ x, atol=1e-12)
    m = np.asarray(model.retrieval_overlap(model.patterns))  # [P, P]: row μ = overlaps of pattern μ
    np.testing.assert_allclose(np.diag(m), 1.0)
    np.testing.assert_allclose(m, xi @ xi.T / 16)


def test_sample_reference_is_uniform():
    """Each model's β = 0 draw: right values, shape and dtype; site means consistent with ½ (z < 5)."""
    for name in ("ising3x5_field", "hopfield10", "rbm_binary"):
        model, _ = get_model(name)
        keys = jax.random.split(jax.random.key(11), 2000)
        xs = np.asarray(jax.vmap(model.sample_reference)(keys))
        lo, hi = model.values
        assert xs.shape == (2000, model.dim) and xs.dtype == np.float32
        assert np.all((xs == lo) | (xs == hi)), name
        frac = (xs == hi).mean(0)
        z = (frac - 0.5) / math.sqrt(0.25 / 2000)
        assert np.max(np.abs(z)) < 5.0, (name, z)
        assert model.log_reference_partition() == pytest.approx(model.dim * math.log(2))


def test_rbm_free_energy_visible_sums_out_hidden(x64):
    model = RBM.random(jax.random.key(2), 4, 3, scale=0.9, units="spin")
    beta = 0.8
    hs = np.array(list(itertools.product([-1.0, 1.0], repeat=3)))
    for v in random_configs(model, 4, seed=5)[:, :4]:
        xs = jnp.concatenate([jnp.broadcast_to(v, (8, 4)), jnp.asarray(hs)], 1)
        log_sum = jax.nn.logsumexp(-beta * jax.vmap(model.energy)(xs))
        np.testing.assert_allclose(-beta * model.free_energy_visible(v, beta), log_sum, rtol=1e-13)
    vs = jnp.asarray(list(itertools.product([-1.0, 1.0], repeat=4)))
    np.testing.assert_allclose(jax.nn.logsumexp(model.log_marginal_visible(vs, beta)), 0.0, atol=1e-12)


# ----------------------------------------------------------------------------------------- pytree behaviour


def test_new_couplings_do_not_recompile():
    traces = []

    @jax.jit
    def total(model, x, beta):
        traces.append(1)  # Python side effect: runs only while tracing
        return -beta * model.energy(x) + jnp.sum(model.delta_energy_all(x))

    keys = jax.random.split(jax.random.key(0), 3)
    for k in keys:
        total(SK.random(k, 8), jnp.ones(8), 0.5)
    for J, h in [(1.0, 0.0), (0.3, 0.2), (-1.0, 0.5)]:
        total(Ising2D(4, J=J, h=h), jnp.ones(16), 0.7)
    for k in keys:
        total(Hopfield.random(k, 2, 8), jnp.ones(8), 1.5)
        total(RBM.random(k, 3, 5), jnp.ones(8), 1.5)
    assert len(traces) == 4  # one trace per model type / shape

    # exact log Z: new β and new J reuse the compiled function
    exact_traces = []

    @jax.jit
    def exact(model, beta):
        exact_traces.append(1)
        return model.exact_log_partition(beta)

    with jax.enable_x64(True):
        for J, beta in [(1.0, 0.2), (0.5, 0.4), (2.0, 0.9)]:
            assert np.isfinite(exact(Ising2D(6, J=J), beta))
    assert len(exact_traces) == 1


def test_stacked_disorder_vmaps():
    models = [SK.random(k, 6) for k in jax.random.split(jax.random.key(1), 4)]
    stacked = stack_models(models)
    assert stacked.J.shape == (4, 6, 6) and stacked.dim == 6
    x = jnp.ones(6)
    e = jax.vmap(lambda m: m.energy(x))(stacked)
    np.testing.assert_allclose(e, [m.energy(x) for m in models], rtol=1e-6)
    ising = stack_models([Ising2D(3, J=J) for J in (0.5, 1.0, 2.0)])
    np.testing.assert_allclose(jax.vmap(lambda m: m.energy(jnp.ones(9)))(ising), [-9.0, -18.0, -36.0])


def test_has_exact_is_truthful():
    assert has_exact(Ising2D(64)) and has_exact(Ising2D(13, 16, J=0.5))
    assert has_exact(Ising2D(8, h=0.1)) and has_exact(Ising2D(3, J=-1.0))  # transfer matrix
    assert not has_exact(Ising2D(16, h=0.1))
    assert not has_exact(Ising2D(13, 14, J=-1.0))  # frustrated and too wide for the transfer matrix
    assert has_exact(Ising2D(14, 16, J=-1.0))  # bipartite: gauge-equivalent to the ferromagnet
    assert has_exact(SK(np.zeros((20, 20)))) and not has_exact(SK(np.zeros((21, 21))))
    assert has_exact(Hopfield(np.ones((2, 20)))) and not has_exact(Hopfield(np.ones((2, 21))))
    assert has_exact(RBM(np.zeros((100, 20)))) and not has_exact(RBM(np.zeros((21, 21))))
    with pytest.raises(ValueError, match="h=0.1"):
        Ising2D(16, h=0.1).exact_log_partition(0.3)
    with pytest.raises(ValueError, match="N=21"):
        SK(np.zeros((21, 21))).exact_log_partition(0.3)


# ----------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: Ising2D(0), "L must be an integer ≥ 2, got 0"),
        (lambda: Ising2D(1), "L must be an integer ≥ 2, got 1"),
        (lambda: Ising2D(4, -3), "M must be an integer ≥ 2, got -3"),
        (lambda: Ising2D(2.5), "L must be an integer ≥ 2, got 2.5"),
        (lambda: Ising2D(4, J=float("nan")), "J must be finite"),
        (lambda: Ising2D(4, h=float("inf")), "h must be finite"),
        (lambda: SK(jnp.zeros((3, 4))), r"square matrix \[N, N\], got shape \(3, 4\)"),
        (lambda: SK(jnp.zeros(3)), r"square matrix \[N, N\], got shape \(3,\)"),
        (lambda: SK(jnp.zeros((0, 0))), r"N ≥ 1 spins, got shape \(0, 0\)"),
        (lambda: SK(jnp.array([[0.0, 1.0], [2.0, 0.0]])), "symmetric, got max"),
        (lambda: SK(jnp.array([[1.0, 0.5], [0.5, 0.0]])), "zero diagonal, got max"),
        (lambda: SK(jnp.array([[0.0, jnp.nan], [jnp.nan, 0.0]])), "finite, got 2 NaN/inf"),
        (lambda: SK.random(jax.random.key(0), 0), "n must be a positive integer, got 0"),
        (lambda: SK.random(jax.random.key(0), 4, scale=-1.0), "scale must be positive"),
        (lambda: RBM(jnp.zeros((3, 2)), units="ising"), "units must be 'binary' or 'spin', got 'ising'"),
        (lambda: RBM(jnp.zeros((0, 2))), r"n_visible, n_hidden\] with both ≥ 1, got \(0, 2\)"),
        (lambda: RBM(jnp.zeros(3)), r"got \(3,\)"),
        (lambda: RBM(jnp.zeros((3, 2)), jnp.zeros(4)), r"a must have shape \[3\], got \(4,\)"),
        (lambda: RBM(jnp.zeros((3, 2)), None, jnp.zeros(3)), r"b must have shape \[2\], got \(3,\)"),
        (lambda: RBM(jnp.full((3, 2), jnp.nan)), "W must be finite, got 6 NaN/inf"),
        (lambda: RBM.random(jax.random.key(0), 3, 0), "n_hidden must be a positive integer, got 0"),
        (lambda: Hopfield(jnp.array([[1.0, 0.5]])), "entries ±1, got 0.5"),
        (lambda: Hopfield(jnp.ones((0, 5))), r"\[P, N\] with P, N ≥ 1, got \(0, 5\)"),
        (lambda: Hopfield(jnp.ones(5)), r"got \(5,\)"),
        (lambda: Hopfield.random(jax.random.key(0), 0, 5), "n_patterns must be a positive integer, got 0"),
    ],
)
def test_bad_input_raises_value_error(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_rounding_asymmetry_is_symmetrised(x64):
    A = np.random.default_rng(0).normal(size=(7, 4))
    J = A @ A.T
    J[np.diag_indices(7)] = 0.0
    J[0, 1] += 1e-13  # rounding-level asymmetry: accepted and removed
    model = SK(jnp.asarray(J))
    np.testing.assert_array_equal(np.asarray(model.J), np.asarray(model.J).T)
