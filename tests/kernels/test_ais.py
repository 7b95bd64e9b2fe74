"""Annealed importance sampling: log Z(β) − log Z(0) against exact values (enumerated spin models; a 1-d Gaussian
with an inline random-walk Metropolis inner kernel), within 3 delta-method standard errors."""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from thermodl.kernels import ais, block_gibbs, heat_bath

SPINS = (-1.0, 1.0)
N_CHAINS = 2000


def log_mean_exp_and_stderr(log_w):
    """log of the mean weight and its delta-method standard error std(w) / (mean(w) √n)."""
    log_w = np.asarray(log_w, np.float64)
    n = log_w.size
    w = np.exp(log_w - log_w.max())
    return logsumexp(log_w) - np.log(n), w.std(ddof=1) / (w.mean() * np.sqrt(n))


def anneal(transition, inner0, betas, key):
    """AIS over the schedule ``betas`` [K+1] for one chain; returns the final AISState and the last Info."""

    def body(state, xs):
        k, b_prev, b_next = xs
        return ais.step(jax.random.fold_in(key, k), state, b_prev, b_next, transition)

    ks = jnp.arange(betas.shape[0] - 1)
    state, infos = jax.lax.scan(body, ais.init(inner0), (ks, betas[:-1], betas[1:]))
    return state, infos


# ----------------------------------------------------------------------------------------------- spin models
def pairwise(J, h):
    def energy(x):
        return -0.5 * x @ (J @ x) - h @ x

    def delta(x, i):
        return 2 * x[i] * (J[i] @ x + h[i])

    def delta_all(x):
        return 2 * x * (J @ x + h)

    return energy, delta, delta_all


def sk_model(n=10, seed=0):
    rng = np.random.default_rng(seed)
    J = np.triu(rng.normal(size=(n, n)) / np.sqrt(n), 1)
    return J + J.T, 0.3 * rng.normal(size=n)


def ising3():
    J = np.zeros((9, 9))
    for r in range(3):
        for c in range(3):
            for j in (r * 3 + (c + 1) % 3, ((r + 1) % 3) * 3 + c):
                J[r * 3 + c, j] += 1.0
                J[j, r * 3 + c] += 1.0
    return J, np.zeros(9)


def exact_delta_log_z(J, h, beta):
    n = J.shape[0]
    s = np.where(((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1) == 1, 1.0, -1.0)
    e = -0.5 * np.einsum("si,ij,sj->s", s, J, s) - s @ h
    return logsumexp(-beta * e) - n * np.log(2.0)


@functools.lru_cache(maxsize=None)
def spin_ais_runner(kernel_name, n_steps):
    """jit(vmap over chains): uniform (exact β = 0) start, AIS along a linear schedule 0 -> beta_end in n_steps.

    ``transition_scale`` multiplies the β the inner kernel runs at (1: correct; 0.5: a broken transition).
    Returns the final log weights [N_CHAINS].
    """

    def one_chain(key, beta_end, J, h, masks, transition_scale):
        energy, delta, delta_all = pairwise(J, h)
        k0, krun = jax.random.split(key)
        x0 = jnp.where(jax.random.bernoulli(k0, 0.5, h.shape), 1.0, -1.0)
        if kernel_name == "block_gibbs":
            inner0 = block_gibbs.init(x0, energy)

            def transition(k, s, b):
                return block_gibbs.step(k, s, energy, transition_scale * b, delta_all, masks, SPINS)

        else:
            inner0 = heat_bath.init(x0, energy)

            def transition(k, s, b):
                return heat_bath.step(k, s, energy, transition_scale * b, delta, SPINS)

        betas = jnp.linspace(0.0, beta_end, n_steps + 1)
        return anneal(transition, inner0, betas, krun)[0].log_weight

    @jax.jit
    def run(seed, beta_end, J, h, masks, transition_scale):
        keys = jax.vmap(lambda c: jax.random.fold_in(jax.random.key(seed), c))(jnp.arange(N_CHAINS))
        return jax.vmap(one_chain, in_axes=(0,) + (None,) * 5)(keys, beta_end, J, h, masks, transition_scale)

    return run


def colour3():
    r, c = np.divmod(np.arange(9), 3)
    return jnp.asarray(np.stack([(r + c) % 3 == k for k in range(3)]))


CASES = [("heat_bath", "sk10", 1.5), ("block_gibbs", "ising3", 0.6)]


def spin_case(kernel_name, model_name, beta, transition_scale, seed):
    J, h = sk_model() if model_name == "sk10" else ising3()
    masks = colour3() if model_name == "ising3" else jnp.ones((1, h.size), bool)
    run = spin_ais_runner(kernel_name, 100)
    log_w = run(seed, beta, jnp.asarray(J, jnp.float32), jnp.asarray(h, jnp.float32), masks, transition_scale)
    estimate, stderr = log_mean_exp_and_stderr(log_w)
    return estimate, stderr, exact_delta_log_z(J, h, beta)


@pytest.mark.parametrize("kernel_name,model_name,beta", CASES)
def test_ais_log_partition_spin_models(kernel_name, model_name, beta):
    for seed in (0, 1):
        estimate, stderr, exact = spin_case(kernel_name, model_name, beta, 1.0, seed)
        assert 0 < stderr < 0.1  # the error bar is informative, not vacuous
        assert abs(estimate - exact) < 3 * stderr, (seed, estimate, exact, stderr)


def test_ais_with_broken_transition_is_detected():
    """Inner kernel at β/2 (does not leave the intermediate targets invariant): the same check fails."""
    estimate, stderr, exact = spin_case("heat_bath", "sk10", 1.5, 0.5, 0)
    assert abs(estimate - exact) > 3 * stderr, (estimate, exact, stderr)


# ----------------------------------------------------------------------------------------------- Gaussian + RWM
class RWMState(NamedTuple):
    position: jax.Array  # [1]
    energy: jax.Array  # []


A = 10.0  # E(x) = A x² / 2, prior N(0, 1): Z(β) = (1 + βA)^(-1/2)


def gaussian_transition(key, state, beta, n_moves=4):
    """n_moves random-walk Metropolis moves targeting N(0,1)·exp(−β A x²/2), step 2.4 / √(1 + βA)."""
    scale = 2.4 / jnp.sqrt(1.0 + beta * A)

    def move(s, k):
        k_prop, k_acc = jax.random.split(k)
        x_new = s.position + scale * jax.random.normal(k_prop, s.position.shape, s.position.dtype)
        e_new = 0.5 * A * jnp.sum(x_new**2)
        log_ratio = -beta * (e_new - s.energy) - 0.5 * jnp.sum(x_new**2 - s.position**2)
        accept = jnp.log(jax.random.uniform(k_acc, dtype=s.position.dtype)) < log_ratio
        return RWMState(jnp.where(accept, x_new, s.position), jnp.where(accept, e_new, s.energy)), accept

    state, accepts = jax.lax.scan(move, state, jax.random.split(key, n_moves))
    return state, {"acceptance_rate": accepts.mean()}


def test_ais_gaussian_rwm(dtype):
    n_steps, beta_end = 100, 1.0

    @jax.jit
    def run(seed):
        def one_chain(c):
            key = jax.random.fold_in(jax.random.key(seed), c)
            k0, krun = jax.random.split(key)
            x0 = jax.random.normal(k0, (1,), dtype)  # exact β = 0 draw (the prior)
            inner0 = RWMState(x0, 0.5 * A * jnp.sum(x0**2))
            betas = jnp.linspace(0.0, beta_end, n_steps + 1, dtype=dtype)
            return anneal(gaussian_transition, inner0, betas, krun)

        return jax.vmap(one_chain)(jnp.arange(N_CHAINS))

    state, infos = run(0)
    assert state.log_weight.dtype == dtype and state.inner.position.dtype == dtype
    assert infos.log_weight_increment.shape == (N_CHAINS, n_steps)
    assert not np.any(np.asarray(infos.is_divergent))
    assert np.all(np.asarray(infos.acceptance_probability) == 1.0)  # the inner info carries no such field
    estimate, stderr = log_mean_exp_and_stderr(state.log_weight)
    exact = -0.5 * np.log1p(beta_end * A)
    assert 0 < stderr < 0.1
    assert abs(estimate - exact) < 3 * stderr, (estimate, exact, stderr)


# ----------------------------------------------------------------------------------------------- mechanics
def test_step_mechanics_and_edge_cases():
    energy = lambda x: jnp.sum(x)  # noqa: E731
    state = ais.init(heat_bath.init(jnp.ones(3), energy))
    assert float(state.log_weight) == 0.0 and state.log_weight.dtype == jnp.float32
    identity = lambda k, s, b: (s, heat_bath.HeatBathInfo(jnp.float32(0.25), jnp.bool_(False), jnp.bool_(False), jnp.int32(0)))  # noqa: E731
    new, info = ais.step(jax.random.key(0), state, 0.2, 0.5, identity)
    assert float(info.log_weight_increment) == pytest.approx(-0.3 * 3.0, rel=1e-6)
    assert float(new.log_weight) == pytest.approx(-0.9, rel=1e-6)
    assert float(info.acceptance_probability) == 0.25 and not bool(info.is_accepted)
    jit_new, _ = jax.jit(ais.step, static_argnums=4)(jax.random.key(0), state, 0.2, 0.5, identity)
    np.testing.assert_array_equal(new.log_weight, jit_new.log_weight)
    # E = +inf: zero β increment adds 0 (0·∞ = 0); a positive one sends the weight to 0 (log −inf), not NaN.
    inf_state = ais.init(heat_bath.HeatBathState(jnp.ones(3), jnp.float32(jnp.inf)))
    s1, i1 = ais.step(jax.random.key(0), inf_state, 0.0, 0.0, identity)
    assert float(s1.log_weight) == 0.0 and not bool(i1.is_divergent)
    s2, i2 = ais.step(jax.random.key(0), s1, 0.0, 0.1, identity)
    assert float(s2.log_weight) == -np.inf and not bool(i2.is_divergent)
    s3, _ = ais.step(jax.random.key(0), s2, 0.1, 0.2, identity)
    assert float(s3.log_weight) == -np.inf and np.isfinite(float(s3.log_weight_compensation))
    # NaN energy: divergent
    nan_state = ais.init(heat_bath.HeatBathState(jnp.ones(3), jnp.float32(jnp.nan)))
    assert bool(ais.step(jax.random.key(0), nan_state, 0.0, 0.1, identity)[1].is_divergent)
    with pytest.raises(ValueError, match="energy"):
        ais.init({"position": jnp.ones(3)})


def test_compensated_accumulation_is_exact_to_float32_rounding():
    """Kahan-summed float32 log weight over 20 000 steps equals the float64 sum of the same float32 increments to
    within a few ulp of the total; a plain float32 running sum would be off by orders of magnitude more."""
    n_steps = 20000
    energies = np.random.default_rng(0).normal(500.0, 50.0, n_steps).astype(np.float32)
    betas = jnp.asarray(np.linspace(0.0, 1.0, n_steps + 1), jnp.float32)

    class Fake(NamedTuple):
        energy: jax.Array

    def transition(key, s, beta):
        del beta
        return Fake(jnp.asarray(energies)[key]), None

    @jax.jit
    def run():
        def body(state, xs):
            k, b0, b1 = xs
            # the "key" is the step index, used by the fake transition to look up the next energy
            return ais.step(k, state, b0, b1, lambda i, s, b: transition(i + 1, s, b))

        ks = jnp.arange(n_steps - 1)
        return jax.lax.scan(body, ais.init(Fake(jnp.asarray(energies[0]))), (ks, betas[:-2], betas[1:-1]))

    state, info = run()
    increments = np.asarray(info.log_weight_increment, np.float64)
    exact = increments.sum()  # float64 sum of float32 numbers: exact enough (≲1e-12 relative)
    ulp = np.spacing(np.float32(abs(exact)))
    kahan_err = abs(float(state.log_weight) - exact)
    naive = np.float32(0.0)
    for inc in np.asarray(info.log_weight_increment):
        naive = np.float32(naive + inc)
    naive_err = abs(float(naive) - exact)
    assert kahan_err <= 2 * ulp, (kahan_err, ulp)
    assert naive_err > 10 * kahan_err + ulp, (naive_err, kahan_err)  # the test can tell the difference
