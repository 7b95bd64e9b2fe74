"""Geodesic slice sampling on |x|² = dim against exact distributions on the sphere, and through the engine.

* Spherical perceptron (dim 3, three random patterns, margin κ = 0.3): E = number of errors is piecewise constant
  (no gradient). Exact error-count probabilities by numerical integration over S² (Archimedes: z = cos ϑ and the
  azimuth are uniform, a midpoint grid in (z, φ)); the sampled mean energy by batch-means z-scores (ESS-scaled),
  the final draws of independent chains by χ², each with a power check at a colder β.
* von Mises–Fisher on S² (dim 3, smooth energy, and the same tilt through the log prior at β = 0): E[t], E[t²]
  with t = m·x̂, exact L(κ) = coth κ − 1/κ.
* The circle (dim 2) with a flat energy: the angle is uniform (KS).
* Un-jitted / jitted / vmapped, both dtypes; same key, same bits; injected NaN energies and the shrinkage cap.
* The engine binds it with no engine edit: ``make_sampler(model, "slice_sphere")`` and ``run_ensemble``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from thermodl.engine.ensemble import run_ensemble
from thermodl.engine.kernel_binding import KERNELS, make_sampler, resolve_kernel
from thermodl.kernels import slice_sphere, sphere
from thermodl.models import SphericalPerceptron

P_MIN = 1e-3


def run(energy, log_prior, x0, betas, n_steps, seed, last_only=False):
    """Chains [C] from x0 [C, dim] at per-chain β, jitted once; (positions [C, n_steps, dim] or [C, dim],
    divergences [C], mean energy evaluations per step [C])."""

    @jax.jit
    def go(x0, betas):
        def one(c, x, beta):
            key_c = jax.random.fold_in(jax.random.key(seed), c)

            def body(carry, t):
                st, div, evals = carry
                st, info = slice_sphere.step(jax.random.fold_in(key_c, t), st, energy, beta, log_prior)
                return (st, div + info.is_divergent, evals + info.num_energy_evaluations), (
                    None if last_only else st.position
                )

            init = (slice_sphere.init(x, energy, log_prior), jnp.int32(0), jnp.int32(0))
            (st, div, evals), xs = jax.lax.scan(body, init, jnp.arange(n_steps))
            return st.position if last_only else xs, div, evals / n_steps

        return jax.vmap(one)(jnp.arange(x0.shape[0]), x0, betas)

    xs, div, evals = go(x0, betas)
    return np.asarray(xs, np.float64), np.asarray(div), np.asarray(evals)


def batch_mean_z(values, exact, n_batches=8):
    """z of the grand mean of values [chains, draws] vs exact; stderr from chains × n_batches batch means."""
    c, n = values.shape
    bm = values[:, : n - n % n_batches].reshape(c, n_batches, -1).mean(axis=2).ravel()
    return (values.mean() - exact) / (bm.std(ddof=1) / math.sqrt(bm.size))


def uniform_start(key, n, dim):
    return sphere.project(jax.random.normal(key, (n, dim)))


# ------------------------------------------------------------------------------------------- spherical perceptron
def perceptron():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(3, 3)).astype(np.float32)
    y = np.array([1.0, -1.0, 1.0], np.float32)
    return SphericalPerceptron(X, y, kappa=0.3)


def exact_error_probabilities(model, n_grid=1500):
    """Prior probabilities of 0..P errors by a midpoint grid on S² (uniform in z and φ), float64."""
    z = -1.0 + (np.arange(n_grid) + 0.5) * (2.0 / n_grid)
    phi = (np.arange(2 * n_grid) + 0.5) * (math.pi / n_grid)
    s = np.sqrt(1.0 - z**2)
    pts = np.stack(np.broadcast_arrays(s[:, None] * np.cos(phi), s[:, None] * np.sin(phi), z[:, None]), -1)
    w = math.sqrt(3.0) * pts.reshape(-1, 3)
    X, y, kappa = (np.asarray(a, np.float64) for a in (model.X, model.y, model.kappa))
    stab = y * (w @ X.T) / math.sqrt(3.0)
    errors = np.sum(stab <= kappa, axis=1)  # Δ_μ = κ counts as an error, as the model does
    return np.bincount(errors, minlength=X.shape[0] + 1) / errors.size


def boltzmann(prior, beta):
    p = prior * np.exp(-beta * np.arange(prior.size))
    return p / p.sum()


@pytest.mark.slow
def test_spherical_perceptron_mean_energy_and_error_distribution():
    model = perceptron()
    prior = exact_error_probabilities(model)
    assert np.all(prior > 0.02)  # every error count is reachable: a real test of the weights
    betas = np.array([0.7, 2.5])
    per, burn, keep = 128, 100, 600
    beta_chain = np.repeat(betas, per)
    x0 = uniform_start(jax.random.key(1), beta_chain.size, 3)
    xs, div, evals = run(model.energy, model.log_prior, x0, jnp.asarray(beta_chain, jnp.float32), burn + keep, 2)
    assert div.sum() == 0 and np.all(evals < 10)
    energies = np.asarray(jax.vmap(jax.vmap(model.energy))(jnp.asarray(xs[:, burn:], jnp.float32)), np.float64)
    for beta in betas:
        e = energies[beta_chain == beta]
        exact = float(np.dot(np.arange(prior.size), boltzmann(prior, beta)))
        assert abs(batch_mean_z(e, exact)) < 4.0, (beta, e.mean(), exact)
        colder = float(np.dot(np.arange(prior.size), boltzmann(prior, 1.25 * beta)))
        assert abs(batch_mean_z(e, colder)) > 5.0  # power: a 25% colder target is detected
    # independent final draws by χ²
    n = 3000
    x0 = uniform_start(jax.random.key(4), n, 3)
    xf, div, _ = run(model.energy, None, x0, jnp.full(n, 1.2), 60, 5, last_only=True)
    assert div.sum() == 0
    counts = np.bincount(np.asarray(jax.vmap(model.energy)(jnp.asarray(xf, jnp.float32))).astype(int),
                         minlength=prior.size)
    assert stats.chisquare(counts, n * boltzmann(prior, 1.2)).pvalue > P_MIN, counts
    assert stats.chisquare(counts, n * boltzmann(prior, 1.5)).pvalue < P_MIN


# ------------------------------------------------------------------------------------------- smooth energies
M_DIR = np.array([1.0, 2.0, 2.0]) / 3.0


def langevin_fn(kappa):
    return 1.0 / np.tanh(kappa) - 1.0 / kappa


@pytest.mark.parametrize("via_prior", [False, True])
def test_von_mises_fisher_moments(via_prior):
    kappa = 3.0
    m = jnp.asarray(M_DIR, jnp.float32)
    tilt = lambda x: kappa * jnp.dot(m, x) / jnp.sqrt(3.0)  # noqa: E731
    if via_prior:  # β = 0: the prior alone; the energy is a distractor (0·E = 0)
        energy, log_prior, beta = (lambda x: jnp.sum(x**4)), tilt, 0.0
    else:
        energy, log_prior, beta = (lambda x: -tilt(x)), None, 1.0
    n, burn, keep = 256, 50, 400
    x0 = uniform_start(jax.random.key(6), n, 3)
    xs, div, _ = run(energy, log_prior, x0, jnp.full(n, beta), burn + keep, 7)
    assert div.sum() == 0
    t = xs[:, burn:] @ M_DIR / math.sqrt(3.0)
    L = langevin_fn(kappa)
    z1 = batch_mean_z(t, L)
    z2 = batch_mean_z(t**2, 1.0 / kappa**2 - 1.0 / np.sinh(kappa) ** 2 + L**2)
    assert max(abs(z1), abs(z2)) < 4.0, (z1, z2)
    assert abs(batch_mean_z(t, langevin_fn(1.2 * kappa))) > 5.0


def test_circle_is_uniform():
    n = 2000
    energy = lambda x: jnp.zeros((), x.dtype)  # noqa: E731
    x0 = jnp.tile(jnp.array([[math.sqrt(2.0), 0.0]]), (n, 1))
    xs, div, evals = run(energy, None, x0, jnp.ones(n), 3, 8, last_only=True)
    assert div.sum() == 0 and np.all(evals == 1.0)  # a flat energy: the first angle is always on the slice
    angle = np.arctan2(xs[:, 1], xs[:, 0])
    assert stats.kstest(angle, stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue > P_MIN


# ------------------------------------------------------------------------------------------- mechanics
def test_jit_vmap_dtype_and_same_key(dtype):
    h = jnp.array([0.3, -0.5, 0.8, 0.1], dtype)
    energy = lambda x: -jnp.dot(h, x) + 0.1 * jnp.sum(x**3)  # noqa: E731
    st = slice_sphere.init(jnp.array([1.0, 2.0, -1.0, 0.5], dtype), energy)
    assert st.position.dtype == dtype and st.energy.dtype == dtype
    assert float(jnp.sum(st.position**2)) == pytest.approx(4.0, rel=1e-5)
    key = jax.random.key(9)
    a, ia = slice_sphere.step(key, st, energy, 1.3)
    b, ib = slice_sphere.step(key, st, energy, 1.3)
    assert np.array_equal(np.asarray(a.position), np.asarray(b.position))
    assert int(ia.num_energy_evaluations) == int(ib.num_energy_evaluations) >= 1
    j, ij = jax.jit(slice_sphere.step, static_argnums=2)(key, st, energy, 1.3)
    tol = 1e-5 if dtype == jnp.float32 else 1e-12
    np.testing.assert_allclose(np.asarray(j.position), np.asarray(a.position), rtol=tol, atol=tol)
    batch = jax.tree.map(lambda v: jnp.stack([v, v, v]), st)
    keys = jnp.stack([key, jax.random.key(1), key])
    v, iv = jax.vmap(lambda k, s: slice_sphere.step(k, s, energy, 1.3))(keys, batch)
    assert v.position.shape == (3, 4) and v.position.dtype == dtype and v.energy.dtype == dtype
    assert iv.num_energy_evaluations.shape == (3,) and iv.num_energy_evaluations.dtype == jnp.int32
    np.testing.assert_allclose(np.asarray(v.position[0]), np.asarray(a.position), rtol=tol, atol=tol)
    np.testing.assert_array_equal(np.asarray(v.position[0]), np.asarray(v.position[2]))
    assert bool(ia.is_accepted) and float(ia.acceptance_probability) == 1.0 and not bool(ia.is_divergent)
    np.testing.assert_allclose(np.asarray(a.energy), np.asarray(energy(a.position)), rtol=tol, atol=tol)
    assert float(np.sum(np.asarray(a.position, np.float64) ** 2)) == pytest.approx(4.0, rel=10 * tol)


def test_nan_energy_and_shrinkage_cap_stay_put():
    x0 = slice_sphere.init(jnp.array([0.3, -1.0, 0.5]), lambda x: jnp.zeros(())).position
    key = jax.random.key(0)
    # NaN everywhere but at x0: the first proposal is invalid -> stay put, divergent, one evaluation
    nan_energy = lambda x: jnp.where(jnp.all(x == x0), 0.0, jnp.nan)  # noqa: E731
    st = slice_sphere.State(x0, jnp.float32(0.0), jnp.float32(0.0))
    new, info = slice_sphere.step(key, st, nan_energy, 1.0)
    assert bool(info.is_divergent) and not bool(info.is_accepted) and float(info.acceptance_probability) == 0.0
    assert int(info.num_energy_evaluations) == 1 and np.array_equal(new.position, x0)
    # a current energy far below every other point (a stale cached energy): the slice is never met -> cap
    low = slice_sphere.State(x0, jnp.float32(-1e6), jnp.float32(0.0))
    new, info = slice_sphere.step(key, low, lambda x: jnp.float32(0.0), 1.0, None, 7)
    assert bool(info.is_divergent) and int(info.num_energy_evaluations) == 7
    assert np.array_equal(new.position, x0) and float(new.energy) == -1e6
    # a non-finite current state: nothing to slice, no evaluation
    bad = slice_sphere.State(x0, jnp.float32(jnp.nan), jnp.float32(0.0))
    _, info = slice_sphere.step(key, bad, lambda x: jnp.float32(0.0), 1.0)
    assert bool(info.is_divergent) and int(info.num_energy_evaluations) == 0
    with pytest.raises(ValueError, match="max_shrinkage_steps"):
        slice_sphere.step(key, st, nan_energy, 1.0, None, 0)
    with pytest.raises(ValueError, match="dim"):
        slice_sphere.init(jnp.ones(1), nan_energy)


# ------------------------------------------------------------------------------------------- through the engine
def test_engine_binds_it_without_an_engine_edit():
    model = perceptron()
    assert "slice_sphere" in KERNELS and resolve_kernel(model, "slice_sphere") == "slice_sphere"
    assert resolve_kernel(model) == "sphere"  # the "auto" rule is unchanged
    s = make_sampler(model, "slice_sphere")
    assert s.name == "slice_sphere" and s.target_acceptance is None and s.settings is slice_sphere.SETTINGS
    st = s.init(jnp.ones(3))
    new, info = jax.jit(s.step)(jax.random.key(0), st, 1.0, None)
    again, _ = s.step(jax.random.key(0), st, 1.0, 0.123)  # a step size is ignored
    assert new.position.shape == (3,) and bool(info.is_accepted)
    np.testing.assert_allclose(np.asarray(again.position), np.asarray(new.position), rtol=1e-5)
    assert make_sampler(model, "slice_sphere", max_shrinkage_steps=20).settings.options[0].name == "max_shrinkage_steps"
    with pytest.raises(ValueError, match="max_shrinkage_steps must be a positive int"):
        make_sampler(model, "slice_sphere", max_shrinkage_steps=20.0)
    with pytest.raises(ValueError, match="unknown option.*'step_size_jitter'.*'slice_sphere'.*max_shrinkage_steps"):
        make_sampler(model, "slice_sphere", step_size_jitter=0.1)


@pytest.mark.slow
def test_run_ensemble_with_slice_sphere_matches_exact_energy():
    model = perceptron()
    prior = exact_error_probabilities(model)
    betas = [0.5, 2.0]
    r = run_ensemble(model, betas, key=jax.random.key(3), n_chains=64, n_steps=300, n_warmup=50,
                     kernel="slice_sphere")
    assert r.kernel == "slice_sphere"
    assert int(np.sum(r.n_divergent)) == 0 and not np.any(r.nonfinite)
    np.testing.assert_allclose(np.asarray(r.acceptance.mean), 1.0)
    f, s = r.energy.first, r.energy.second
    chain_means = (np.asarray(f.mean) * np.asarray(f.count) + np.asarray(s.mean) * np.asarray(s.count)) / (
        np.asarray(f.count) + np.asarray(s.count))
    for t, beta in enumerate(betas):
        exact = float(np.dot(np.arange(prior.size), boltzmann(prior, beta)))
        m = chain_means[t]  # independent chains: their means give an honest standard error
        z = (m.mean() - exact) / (m.std(ddof=1) / math.sqrt(m.size))
        assert abs(z) < 4.0, (beta, m.mean(), exact, z)
