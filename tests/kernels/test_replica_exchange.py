"""Replica-exchange swaps: the acceptance formula on hand-made inputs, and a full parallel-tempering run
(heat bath + even/odd swaps) on a 10-spin SK-like model against its enumerated distributions."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from thermodl.kernels import heat_bath
from thermodl.kernels.replica_exchange import SwapInfo, apply_permutation, swap_permutation

SPINS = (-1.0, 1.0)
P_MIN = 1e-3


def reference_log_ratio(energies, betas):
    e, b = np.asarray(energies, np.float64), np.asarray(betas, np.float64)
    return (b[:-1] - b[1:]) * (e[:-1] - e[1:])


def perm_from_accepted(accepted):
    perm = np.arange(len(accepted) + 1)
    for k in np.flatnonzero(accepted):
        perm[k], perm[k + 1] = perm[k + 1], perm[k]
    return perm


# ----------------------------------------------------------------------------------------------- hand-made inputs
@pytest.mark.parametrize("parity", [0, 1])
def test_acceptance_formula_and_permutation(parity, dtype):
    energies = jnp.asarray([3.0, 1.0, 2.5, -4.0, 0.5], dtype)
    betas = jnp.asarray([0.1, 0.5, 0.6, 1.0, 2.0], dtype)
    perm, info = swap_permutation(jax.random.key(0), energies, betas, parity)
    proposed = np.arange(4) % 2 == parity
    expected = np.where(proposed, np.minimum(1.0, np.exp(reference_log_ratio(energies, betas))), 0.0)
    assert info.acceptance_probability.dtype == dtype and perm.dtype == jnp.int32
    np.testing.assert_allclose(info.acceptance_probability, expected, rtol=10 * float(jnp.finfo(dtype).eps))
    np.testing.assert_array_equal(info.is_proposed, proposed)
    assert not np.any(np.asarray(info.is_accepted) & ~proposed)
    np.testing.assert_array_equal(perm, perm_from_accepted(np.asarray(info.is_accepted)))
    # same key -> same output, jitted with a traced parity as well
    perm2, info2 = jax.jit(swap_permutation)(jax.random.key(0), energies, betas, jnp.int32(parity))
    np.testing.assert_array_equal(perm, perm2)
    np.testing.assert_array_equal(info.is_accepted, info2.is_accepted)


def test_certain_and_impossible_swaps():
    betas = jnp.asarray([0.2, 0.4, 0.8, 1.6])
    # E increasing with β (colder slots hold higher energies): every log ratio > 0, all proposed pairs swap.
    perm, info = swap_permutation(jax.random.key(1), jnp.asarray([-2.0, 1.0, 3.0, 5.0]), betas, 0)
    np.testing.assert_array_equal(perm, [1, 0, 3, 2])
    np.testing.assert_array_equal(info.acceptance_probability, [1.0, 0.0, 1.0])
    perm, info = swap_permutation(jax.random.key(1), jnp.asarray([-2.0, 1.0, 3.0, 5.0]), betas, 1)
    np.testing.assert_array_equal(perm, [0, 2, 1, 3])
    # E_k = +inf in the hotter slot of a pair: log ratio −inf, never swapped.
    for seed in range(20):
        perm, info = swap_permutation(jax.random.key(seed), jnp.asarray([jnp.inf, -1.0, jnp.inf, 0.0]), betas, 0)
        np.testing.assert_array_equal(perm, [0, 1, 2, 3])
        np.testing.assert_array_equal(info.acceptance_probability, 0.0)


def test_nan_and_equal_temperature_pairs():
    # Both energies +inf at different β: (Δβ)(inf − inf) is NaN -> divergent, rejected, probability 0 (not NaN).
    perm, info = swap_permutation(jax.random.key(2), jnp.asarray([jnp.inf, jnp.inf, 1.0]), jnp.asarray([0.1, 1.0, 2.0]), 0)
    np.testing.assert_array_equal(perm, [0, 1, 2])
    assert np.all(np.isfinite(info.acceptance_probability))
    np.testing.assert_array_equal(info.is_divergent, [True, False])
    # Equal β: the swap is always valid (0·∞ = 0), even between infinite energies.
    perm, info = swap_permutation(jax.random.key(2), jnp.asarray([jnp.inf, 2.0, 0.0]), jnp.asarray([1.0, 1.0, 2.0]), 0)
    np.testing.assert_array_equal(perm, [1, 0, 2])
    assert not np.any(info.is_divergent)


def test_acceptance_frequency_binomial():
    """Over many keys the swap of one pair happens with probability exp((β0 − β1)(E0 − E1))."""
    energies, betas, n = jnp.asarray([2.0, 0.4]), jnp.asarray([0.5, 1.0]), 20000
    p = float(np.exp(reference_log_ratio(energies, betas)[0]))
    keys = jax.random.split(jax.random.key(3), n)
    perms, infos = jax.jit(jax.vmap(swap_permutation, in_axes=(0, None, None, None)))(keys, energies, betas, 0)
    swapped = np.asarray(perms[:, 0] == 1)
    np.testing.assert_array_equal(swapped, np.asarray(infos.is_accepted[:, 0]))
    z = (swapped.sum() - n * p) / np.sqrt(n * p * (1 - p))
    assert abs(z) < 4.0, z


def test_single_slot_and_bad_inputs():
    perm, info = swap_permutation(jax.random.key(0), jnp.asarray([1.0]), jnp.asarray([1.0]), 0)
    np.testing.assert_array_equal(perm, [0])
    assert info.acceptance_probability.shape == (0,)
    with pytest.raises(ValueError, match="betas"):
        swap_permutation(jax.random.key(0), jnp.zeros(3), jnp.zeros(4), 0)
    with pytest.raises(ValueError, match="energies"):
        swap_permutation(jax.random.key(0), jnp.zeros((3, 2)), jnp.zeros((3, 2)), 0)
    with pytest.raises(ValueError, match="leading axis"):
        apply_permutation({"a": jnp.zeros((3, 2)), "b": jnp.zeros(4)}, jnp.arange(3))


def test_apply_permutation_pytree():
    state = heat_bath.HeatBathState(jnp.arange(12.0).reshape(4, 3), jnp.asarray([10.0, 11.0, 12.0, 13.0]))
    perm = jnp.asarray([1, 0, 3, 2])
    out = apply_permutation(state, perm)
    assert isinstance(out, heat_bath.HeatBathState)
    np.testing.assert_array_equal(out.position, np.asarray(state.position)[[1, 0, 3, 2]])
    np.testing.assert_array_equal(out.energy, [11.0, 10.0, 13.0, 12.0])
    # [R, C, ...] layout: vmap over the chain axis with one permutation per chain
    states = jnp.arange(8.0).reshape(4, 2)
    perms = jnp.asarray([[1, 0, 2, 3], [0, 1, 3, 2]])
    out = jax.vmap(apply_permutation, in_axes=(1, 0), out_axes=1)(states, perms)
    np.testing.assert_array_equal(out[:, 0], np.asarray(states[:, 0])[[1, 0, 2, 3]])
    np.testing.assert_array_equal(out[:, 1], np.asarray(states[:, 1])[[0, 1, 3, 2]])


# ----------------------------------------------------------------------------------------------- full PT run
def sk_model(n=10, seed=0):
    rng = np.random.default_rng(seed)
    J = np.triu(rng.normal(size=(n, n)) / np.sqrt(n), 1)
    return J + J.T, 0.3 * rng.normal(size=n)


def sk_states_energies(J, h):
    n = J.shape[0]
    s = np.where(((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1) == 1, 1.0, -1.0)
    return s, -0.5 * np.einsum("si,ij,sj->s", s, J, s) - s @ h


BETAS = np.asarray([0.3, 0.7, 1.2, 2.0])
N_CHAINS, N_ROUNDS = 3000, 40


@functools.lru_cache(maxsize=None)
def pt_runner():
    """jit(vmap over chains) of N_ROUNDS rounds of [one heat-bath sweep per replica, one even/odd swap round].

    ``energy_sign`` = −1 feeds negated energies to the swap: the wrong acceptance rule, to show detection.
    Returns the final states [C, R, dim] (taken right after a swap round) and the SwapInfo of the last two rounds.
    """

    def one_chain(key, betas, J, h, energy_sign):
        def energy(x):
            return -0.5 * x @ (J @ x) - h @ x

        def delta(x, i):
            return 2 * x[i] * (J[i] @ x + h[i])

        num_r, dim = betas.shape[0], h.shape[0]
        k0, krun = jax.random.split(key)
        x0 = jnp.where(jax.random.bernoulli(k0, 0.5, (num_r, dim)), 1.0, -1.0)
        states = jax.vmap(lambda x: heat_bath.init(x, energy))(x0)
        sweep = jax.vmap(lambda k, s, b: heat_bath.step(k, s, energy, b, delta, SPINS)[0])
        zeros = SwapInfo(jnp.zeros(num_r - 1), *(jnp.zeros(num_r - 1, bool),) * 3)

        def body(t, carry):
            states, _, info_last = carry
            k_sweep, k_swap = jax.random.split(jax.random.fold_in(krun, t))
            states = sweep(jax.random.split(k_sweep, num_r), states, betas)
            perm, info = swap_permutation(k_swap, energy_sign * states.energy, betas, t % 2)
            return apply_permutation(states, perm), info_last, info

        return jax.lax.fori_loop(0, N_ROUNDS, body, (states, zeros, zeros))

    @jax.jit
    def run(seed, betas, J, h, energy_sign):
        keys = jax.vmap(lambda c: jax.random.fold_in(jax.random.key(seed), c))(jnp.arange(N_CHAINS))
        return jax.vmap(one_chain, in_axes=(0, None, None, None, None))(keys, betas, J, h, energy_sign)

    return run


def chi2_pvalue(counts, probs, min_expected=5.0):
    expected = counts.sum() * probs
    keep = expected >= min_expected
    obs = np.append(counts[keep], counts[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    return stats.chisquare(obs, exp).pvalue


def pt_pvalues(energy_sign, seeds=(0, 1)):
    """Per β: Fisher-combined χ² p-value over seeds of the final-state histograms; plus the final SwapInfos."""
    J, h = sk_model()
    states_np, energies_np = sk_states_energies(J, h)
    run = pt_runner()
    per_beta = [[] for _ in BETAS]
    infos = []
    for seed in seeds:
        final, info_a, info_b = run(seed, jnp.asarray(BETAS, jnp.float32), jnp.asarray(J, jnp.float32),
                                    jnp.asarray(h, jnp.float32), jnp.float32(energy_sign))
        idx = ((np.asarray(final.position) == 1.0).astype(np.int64) << np.arange(10)).sum(-1)  # [C, R]
        for r, beta in enumerate(BETAS):
            logp = -beta * energies_np
            probs = np.exp(logp - np.logaddexp.reduce(logp))
            per_beta[r].append(chi2_pvalue(np.bincount(idx[:, r], minlength=1024).astype(float), probs))
        infos.append((info_a, info_b))
    combined = [stats.combine_pvalues(np.maximum(p, 1e-300), method="fisher").pvalue for p in per_beta]
    return np.asarray(combined), infos, energies_np


def exact_swap_acceptance(energies, beta_a, beta_b):
    """E[min(1, exp((β_a − β_b)(E_a − E_b)))] with E_a, E_b independent draws of the two Boltzmann laws."""
    pa, pb = (np.exp(-b * energies - np.logaddexp.reduce(-b * energies)) for b in (beta_a, beta_b))
    ratio = np.minimum(1.0, np.exp((beta_a - beta_b) * (energies[:, None] - energies[None, :])))
    return pa @ ratio @ pb


def test_parallel_tempering_reproduces_exact_distributions():
    combined, infos, energies = pt_pvalues(+1.0)
    # Bonferroni over the R temperatures (the R histograms of one run share chains, so are not independent).
    assert np.all(combined > P_MIN / len(BETAS)), combined
    # The swaps really happen, at the stationary rate: mean acceptance probability of the last two rounds
    # (each pair proposed in one of them) against its exact expectation, z-test over independent chains.
    for info_a, info_b in infos:
        for k in range(len(BETAS) - 1):
            info = info_a if bool(info_a.is_proposed[0, k]) else info_b
            acc = np.asarray(info.acceptance_probability[:, k], np.float64)
            exact = exact_swap_acceptance(energies, BETAS[k], BETAS[k + 1])
            z = (acc.mean() - exact) / (acc.std(ddof=1) / np.sqrt(acc.size))
            assert abs(z) < 4.0, (k, acc.mean(), exact, z)
            flips = np.asarray(info.is_accepted[:, k], np.float64)
            z = (flips.mean() - exact) / np.sqrt(exact * (1 - exact) / flips.size)
            assert abs(z) < 4.0, (k, flips.mean(), exact, z)


def test_wrong_swap_rule_is_detected():
    """The same χ² machinery rejects PT whose swap uses the wrong sign of the energy difference."""
    combined, _, _ = pt_pvalues(-1.0)
    assert np.min(combined) < P_MIN / len(BETAS), combined
