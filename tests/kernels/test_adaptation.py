"""Dual-averaging step-size adaptation for many groups (temperatures) × chains.

* Synthetic acceptance curves α_g(ε) = exp(−c_g ε²) (noise-free): the averaged step size converges to the
  target's root ε* = √(−log δ / c_g), with an error that shrinks with the number of iterations; groups do not
  interact; the algorithm is exactly equivariant under rescaling (c → 4c, ε₀ → ε₀/2 gives ε → ε/2).
* The dual-averaging identity H̄_t = Σ_s (δ − α_s) / (t + t₀), so the mean acceptance over warmup → δ.
* NaN acceptance counts as 0; shapes [G] and [R, G]; jit / vmap; dtype kept; bad input raises.
* With RWM on isotropic Gaussians at several β (one group each, many chains): power-of-two scales make the
  groups exact rescalings of each other, so the adapted step sizes are in exact ratio; the frozen step size
  reaches the target acceptance in a fresh run.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thermodl.kernels import adaptation, rwm

TARGET = 0.6


def _synthetic(c, n_iter, eps0=1.0, target=TARGET):
    """Adapt against α(ε) = exp(−c ε²) for ``n_iter`` iterations; returns (state, acceptances [n_iter, G])."""

    @jax.jit
    def go(c):
        st = adaptation.init(jnp.full(c.shape, eps0, c.dtype))

        def body(st, _):
            a = jnp.exp(-c * adaptation.step_size(st) ** 2)
            return adaptation.update(st, a, target), a

        return jax.lax.scan(body, st, None, length=n_iter)

    return go(c)


def test_converges_to_target_root_and_error_shrinks():
    c = jnp.array([0.5, 2.0, 8.0])
    root = np.sqrt(-np.log(TARGET) / np.asarray(c))
    errors = []
    for n_iter in (100, 1000, 3000):
        st, _ = _synthetic(c, n_iter)
        final = np.asarray(adaptation.final_step_size(st))
        errors.append(np.abs(final / root - 1.0))
    errors = np.array(errors)
    assert np.all(errors[1] < errors[0]) and np.all(errors[2] < errors[1])
    assert errors[-1].max() < 0.01  # 3000 noise-free iterations: within 1% of the root


def test_groups_are_independent_and_scale_equivariant():
    """Group g's iterates depend only on its own acceptances; c → 4c with ε₀ → ε₀/2 halves every iterate."""
    c = jnp.array([0.5, 2.0, 8.0])
    st_all, _ = _synthetic(c, 500)
    st_one, _ = _synthetic(c[1:2], 500)
    np.testing.assert_array_equal(np.asarray(st_all.log_step_size[1:2]), np.asarray(st_one.log_step_size))
    st_scaled, _ = _synthetic(4.0 * c, 500, eps0=0.5)
    np.testing.assert_allclose(
        np.asarray(adaptation.final_step_size(st_scaled)), 0.5 * np.asarray(adaptation.final_step_size(st_all)),
        rtol=1e-5,
    )


def test_dual_averaging_identity():
    """(t + t₀) H̄_t = Σ_{s≤t} (δ − α_s), the identity that drives the mean warmup acceptance to δ."""
    c = jnp.array([0.3, 3.0])
    st, acc = _synthetic(c, 400)
    lhs = (400 + 10.0) * np.asarray(st.error_avg, np.float64)
    rhs = np.sum(TARGET - np.asarray(acc, np.float64), axis=0)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4, atol=1e-4)
    assert np.all(np.asarray(st.count) == 400)


def test_nan_acceptance_counts_as_zero_and_stays_finite():
    st = adaptation.init(jnp.array([0.5, 0.5]))
    for _ in range(20):
        st = adaptation.update(st, jnp.array([jnp.nan, 0.0]), TARGET)
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in st)
    np.testing.assert_array_equal(np.asarray(st.log_step_size[0]), np.asarray(st.log_step_size[1]))
    assert adaptation.step_size(st)[0] < 0.5  # NaN (all chains diverged) shrinks the step
    # an always-accepting group grows without overflow
    st = jax.lax.fori_loop(0, 3000, lambda i, s: adaptation.update(s, jnp.ones(1), 0.5), adaptation.init(jnp.ones(1)))
    eps = np.asarray(adaptation.step_size(st))
    assert np.all(np.isfinite(eps)) and np.all(np.isfinite(eps**2)) and eps[0] > 1e9  # clipped, not inf


def test_shapes_jit_vmap_dtype(dtype):
    eps0 = jnp.asarray([[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]], dtype)  # [replicas, groups]
    st = adaptation.init(eps0)
    assert all(leaf.shape == (2, 3) for leaf in st)
    np.testing.assert_allclose(np.asarray(adaptation.final_step_size(st)), np.asarray(eps0), rtol=1e-6)
    acc = jnp.asarray([[0.1, 0.5, 0.9], [0.0, 1.0, 0.7]], dtype)
    eager = adaptation.update(st, acc, TARGET)
    jitted = jax.jit(adaptation.update)(st, acc, TARGET)
    vmapped = jax.vmap(adaptation.update, in_axes=(0, 0, None))(st, acc, TARGET)
    for a, b, v, s in zip(eager, jitted, vmapped, st):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(a), np.asarray(v), rtol=1e-6)
        assert a.dtype == s.dtype == b.dtype
    assert eager.log_step_size.dtype == dtype
    assert adaptation.step_size(eager).dtype == dtype
    # a scalar acceptance broadcasts; a per-group target works
    adaptation.update(st, 0.5, jnp.asarray([0.3, 0.6, 0.8], dtype))
    # more acceptance than the target -> larger step, less -> smaller
    up = adaptation.step_size(adaptation.update(adaptation.init(jnp.ones(2, dtype)), jnp.array([0.9, 0.1]), 0.5))
    down = adaptation.step_size(adaptation.init(jnp.ones(2, dtype)))
    assert up[0] > up[1] and up[0] > down[0] * 1.0


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="initial_step_size"):
        adaptation.init(jnp.array([0.1, 0.0]))
    with pytest.raises(ValueError, match="initial_step_size"):
        adaptation.init(-1.0)
    st = adaptation.init(jnp.ones(3))
    with pytest.raises(ValueError, match="target"):
        adaptation.update(st, jnp.ones(3), 1.5)
    with pytest.raises(ValueError, match="target"):
        adaptation.update(st, jnp.ones(3), 0.0)
    with pytest.raises(ValueError, match="mean_acceptance"):
        adaptation.update(st, jnp.ones(4), 0.5)
    with pytest.raises(ValueError, match="mean_acceptance"):
        adaptation.update(st, jnp.ones((2, 3)), 0.5)
    # traced values are not checked and do not raise
    jax.jit(lambda t: adaptation.update(st, jnp.ones(3), t))(0.5)
    jax.jit(adaptation.init)(jnp.ones(2))


def test_adapts_rwm_across_temperatures():
    """RWM on N(0, I/β) in dim 4 at β = 1, 1/4, 1/16 (scales 1, 2, 4: exact in floating point), 64 chains per
    group with the same keys and scaled starts, so the groups are exact rescalings: the adapted step sizes are in
    ratio 1 : 2 : 4. Frozen after 300 warmup iterations, the step size gives the target acceptance in a fresh run
    within the sampling error plus the 0.03 accuracy required of a 300-iteration warmup (the noise-free
    synthetic test above shows dual averaging's own error at this length is ~1%)."""
    dim, n_chains, n_warm, n_run, target = 4, 64, 300, 300, 0.3
    betas = jnp.array([1.0, 0.25, 0.0625])
    energy = lambda x: 0.5 * jnp.sum(x**2)  # noqa: E731
    scales = 1.0 / jnp.sqrt(betas)
    x0 = jax.random.normal(jax.random.key(0), (n_chains, dim))
    x0 = scales[:, None, None] * x0[None]  # [G, chains, dim]

    def sweep(states, t, eps, base):
        def one(st, c, beta, e):
            return rwm.step(jax.random.fold_in(jax.random.fold_in(base, c), t), st, energy, beta, None, e)

        per_group = jax.vmap(one, in_axes=(0, 0, None, None))  # chains
        return jax.vmap(per_group, in_axes=(0, None, 0, 0))(states, jnp.arange(n_chains), betas, eps)

    @jax.jit
    def warmup(x0):
        states = jax.vmap(jax.vmap(lambda x: rwm.init(x, energy, None)))(x0)
        ad = adaptation.init(0.1 * scales)

        def body(carry, t):
            states, ad = carry
            states, info = sweep(states, t, adaptation.step_size(ad), jax.random.key(1))
            return (states, adaptation.update(ad, info.acceptance_probability.mean(axis=1), target)), None

        (states, ad), _ = jax.lax.scan(body, (states, ad), jnp.arange(n_warm))
        return states, ad

    @jax.jit
    def production(states, eps):
        def body(states, t):
            states, info = sweep(states, t, eps, jax.random.key(2))
            return states, info.is_accepted.mean(axis=1)

        return jax.lax.scan(body, states, jnp.arange(n_run))[1]  # [n_run, G]

    states, ad = warmup(x0)
    final = np.asarray(adaptation.final_step_size(ad))
    np.testing.assert_allclose(final / final[0], [1.0, 2.0, 4.0], rtol=1e-5)
    acc = np.asarray(production(states, jnp.asarray(final)))  # [n_run, G], chain-averaged accept indicators
    # standard error from batch means over time (10 batches of 30 steps; chains are independent)
    bm = acc.reshape(10, -1, 3).mean(axis=1)
    se = bm.std(axis=0, ddof=1) / math.sqrt(10)
    assert np.all(np.abs(acc.mean(axis=0) - target) < 0.03 + 4.0 * se), (acc.mean(axis=0), se)
    # it did adapt: the initial step size 0.1·scale accepts far more often than the target
    assert np.all(final > 5 * 0.1 * np.asarray(scales))
