"""Binary and spherical perceptrons (models.perceptron)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import special, stats

from thermodl.models import data, topologies
from thermodl.models.base import enumerate_states, has_exact, stack_models
from thermodl.models.perceptron import BinaryPerceptron, SphericalPerceptron, gardner_capacity
from thermodl.models.weights import weight_ensemble


def _brute_force_counts(X, y, kappa=0.0):
    """Histogram of the number of errors over all 2^N ±1 weight vectors, float64 numpy."""
    N = X.shape[1]
    W = np.asarray(enumerate_states(N, dtype=jnp.float32), np.float64)
    stab = y[None, :] * (W @ np.asarray(X, np.float64).T) / math.sqrt(N)
    errors = np.sum(stab <= kappa, axis=1)
    return np.bincount(errors, minlength=X.shape[0] + 1)


def _flip_all(w):
    return jnp.where(jnp.eye(w.shape[0], dtype=bool), -w[None, :], w[None, :])


@pytest.mark.parametrize("kappa, gaussian", [(0.0, False), (0.3, False), (0.0, True)])
def test_binary_delta_energy_matches_energy_differences(kappa, gaussian):
    key = jax.random.key(1)
    X, y = data.gardner_patterns(key, 17, 11)
    if gaussian:
        X = jax.random.normal(key, X.shape)
    bp = BinaryPerceptron(X, y, kappa=kappa)

    @jax.jit
    def check(bp, w):
        diffs = jax.vmap(bp.energy)(_flip_all(w)) - bp.energy(w)
        per_site = jax.vmap(lambda i: bp.delta_energy(w, i))(jnp.arange(bp.dim))
        return diffs, per_site, bp.delta_energy_all(w)

    for k in range(6):
        w = bp.sample_reference(jax.random.key(10 + k))
        diffs, per_site, fast = check(bp, w)
        np.testing.assert_array_equal(per_site, diffs)
        np.testing.assert_array_equal(fast, diffs)


def test_energy_matches_explicit_loop_and_counts_zero_field_as_error():
    rng = np.random.default_rng(0)
    X, y = rng.choice([-1.0, 1.0], (9, 7)), rng.choice([-1.0, 1.0], 9)
    bp = BinaryPerceptron(X, y)
    w = rng.choice([-1.0, 1.0], 7)
    assert float(bp.energy(jnp.asarray(w, jnp.float32))) == sum(float(y[m] * (X[m] @ w) <= 0) for m in range(9))
    # even N: w·x = 0 is an error whatever the label
    tie = BinaryPerceptron(np.array([[1.0, -1.0], [1.0, -1.0]]), np.array([1.0, -1.0]))
    assert float(tie.energy(jnp.array([1.0, 1.0]))) == 2.0
    assert float(tie.delta_energy(jnp.array([1.0, -1.0]), 1)) == 1.0  # from one error to two
    # 0/1 labels are mapped to ±1
    np.testing.assert_array_equal(BinaryPerceptron(X, (y + 1) / 2).y, y)


@pytest.mark.parametrize("N", [9, 10, 11, 12, 13])
def test_solution_count_vs_brute_force(N):
    key = jax.random.key(N)
    P = N // 2 + 1
    X, y = data.gardner_patterns(key, P, N)
    bp = BinaryPerceptron(X, y, kappa=0.2 if N == 12 else 0.0)
    ref = _brute_force_counts(np.asarray(X), np.asarray(y), float(bp.kappa))
    counts = np.asarray(bp.energy_counts())
    np.testing.assert_array_equal(counts, ref)
    assert int(bp.count_solutions()) == ref[0] and counts.sum() == 2**N
    assert has_exact(bp)


def test_solution_count_with_split_enumeration_and_teacher():
    # N = 15 > 12 exercises the (low 12 sites) × (high sites) scan; a teacher guarantees ≥ 1 solution
    ts = data.teacher_student(jax.random.key(3), 20, 15, teacher="binary_perceptron", P_test=0, inputs="binary")
    bp = BinaryPerceptron(ts.X, ts.y)
    assert float(bp.energy(ts.teacher_params)) == 0.0
    ref = _brute_force_counts(np.asarray(ts.X), np.asarray(ts.y))
    np.testing.assert_array_equal(bp.energy_counts(), ref)
    assert int(bp.count_solutions()) >= 1


def test_exact_log_partition_limits_and_brute_force(x64):
    X, y = data.gardner_patterns(jax.random.key(5), 8, 11, dtype=jnp.float64)
    bp = BinaryPerceptron(X, y)
    ref = _brute_force_counts(np.asarray(X), np.asarray(y))
    E = np.arange(len(ref))
    for beta in (0.0, 0.4, 1.7):
        expect = special.logsumexp(-beta * E, b=ref)
        assert float(bp.exact_log_partition(beta)) == pytest.approx(expect, rel=1e-12)
        mean_e = np.sum(ref * E * np.exp(-beta * E)) / np.sum(ref * np.exp(-beta * E))
        assert float(bp.exact_mean_energy(beta)) == pytest.approx(mean_e, rel=1e-12)
    assert float(bp.exact_log_partition(0.0)) == pytest.approx(bp.log_reference_partition(), rel=1e-12)
    # β → ∞: log Z → log #solutions, with the remainder bounded by 2^N e^{-β} / n_0
    n0 = int(bp.count_solutions())
    assert abs(float(bp.exact_log_partition(60.0)) - math.log(n0)) <= 2.0**11 * math.exp(-60.0) / n0 + 1e-14


def test_enumeration_limit_and_bad_inputs():
    X, y = data.gardner_patterns(jax.random.key(0), 3, 25)
    with pytest.raises(ValueError, match="N = 25"):
        BinaryPerceptron(X, y).energy_counts()
    good_X, good_y = np.ones((3, 5)), np.ones(3)
    for args, msg in [((np.ones(5), good_y), "shape"), ((good_X, np.ones(4)), "patterns"),
                      ((np.full((3, 5), np.nan), good_y), "NaN"), ((good_X, np.array([1.0, 2.0, 1.0])), "binary"),
                      ((good_X, good_y, float("nan")), "kappa")]:
        for cls in (BinaryPerceptron, SphericalPerceptron):
            with pytest.raises(ValueError, match=msg):
                cls(*args)


def test_binary_perceptron_equals_weight_ensemble_of_perceptron_topology():
    X, y = data.gardner_patterns(jax.random.key(7), 14, 9)
    bp = BinaryPerceptron(X, y)
    ens = weight_ensemble(topologies.Perceptron(9, rngs=nnx.Rngs(0)), X, y, loss="errors", prior="binary")
    W = enumerate_states(9)[::7]
    np.testing.assert_array_equal(jax.vmap(bp.energy)(W), jax.jit(jax.vmap(ens.energy))(W))
    np.testing.assert_array_equal(jax.vmap(bp.delta_energy_all)(W[:20]), jax.vmap(ens.delta_energy_all)(W[:20]))


def test_jit_and_vmap_over_stacked_perceptrons_do_not_recompile():
    traces = []

    @jax.jit
    def energies(models, w):
        traces.append(1)
        return jax.vmap(lambda m: m.delta_energy_all(w))(models)

    w = jnp.ones(9)
    stacks = [stack_models([BinaryPerceptron(*data.gardner_patterns(jax.random.key(s + 10 * r), 6, 9))
                            for s in range(3)]) for r in range(2)]
    a = energies(stacks[0], w)
    energies(stacks[1], w)
    energies(stacks[0].replace(kappa=jnp.full(3, 0.5, jnp.float32)), w)
    assert len(traces) == 1 and a.shape == (3, 9)
    single = BinaryPerceptron(*data.gardner_patterns(jax.random.key(1), 6, 9))
    np.testing.assert_array_equal(a[1], single.delta_energy_all(w))


# ------------------------------------------------------------------------------------------- spherical
def test_spherical_perceptron_energy_and_reference():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(12, 8)), rng.choice([-1.0, 1.0], 12)
    sp = SphericalPerceptron(X, y, kappa=0.25)
    assert sp.kind == "continuous" and sp.manifold == "sphere" and not sp.differentiable
    w = sp.sample_reference(jax.random.key(0))
    assert float(jnp.sum(w**2)) == pytest.approx(8.0, rel=1e-5)
    w64 = np.asarray(w, np.float64)
    ref = sum(float(y[m] * (X[m] @ w64) / math.sqrt(8) <= 0.25) for m in range(12))
    assert float(sp.energy(w)) == ref
    assert float(sp.log_prior(w)) == 0.0 and sp.log_reference_partition() == 0.0
    np.testing.assert_allclose(sp.stabilities(w), y * (X @ w64) / math.sqrt(8), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kappa", [0.0, 0.5])
def test_spherical_mean_energy_at_beta_zero(kappa):
    # ±1 patterns have |x| = √N, so Δ = y √N s with s the cosine between w and x; (s + 1)/2 ~ Beta((N-1)/2,
    # (N-1)/2) for w uniform on the sphere, hence P(error) = BetaCDF((κ/√N + 1)/2) for every pattern.
    N, P, n = 9, 5, 4000
    X, y = data.gardner_patterns(jax.random.key(4), P, N)
    sp = SphericalPerceptron(X, y, kappa=kappa)
    W = jax.vmap(sp.sample_reference)(jax.random.split(jax.random.key(8), n))
    E = np.asarray(jax.vmap(sp.energy)(W), np.float64)
    p_err = stats.beta.cdf((kappa / math.sqrt(N) + 1) / 2, (N - 1) / 2, (N - 1) / 2)
    z = (E.mean() - P * p_err) / (E.std(ddof=1) / math.sqrt(n))
    assert abs(z) < 4.0, (E.mean(), P * p_err, z)


def test_gardner_capacity():
    assert gardner_capacity(0.0) == pytest.approx(2.0, rel=1e-9)
    for kappa in (0.5, 1.0, -0.5):
        closed = 1.0 / ((1 + kappa**2) * stats.norm.cdf(kappa) + kappa * stats.norm.pdf(kappa))
        assert gardner_capacity(kappa) == pytest.approx(closed, rel=1e-8)
    with pytest.raises(ValueError, match="kappa"):
        gardner_capacity(float("inf"))


def test_nan_weights_give_nan_energy_and_stacked_dim():
    """A NaN weight vector must not score as a perfect solution; a stacked model still reports N and P."""
    import jax.numpy as jnp
    import numpy as np

    from thermodl.models import BinaryPerceptron, SphericalPerceptron, stack_models

    rng = np.random.default_rng(0)
    X = rng.choice([-1.0, 1.0], size=(7, 5))
    y = rng.choice([-1.0, 1.0], size=7)
    for cls in (BinaryPerceptron, SphericalPerceptron):
        m = cls(X, y)
        w = jnp.full((5,), jnp.nan)
        assert bool(jnp.isnan(m.energy(w)))
        stacked = stack_models([m, cls(X, -y)])
        assert (stacked.dim, stacked.n_data) == (5, 7)
