"""engine.tempering: parallel tempering, ladder adaptation, round trips, overlaps and the bridge log Z.

Every statistical check uses a fixed seed and a tolerance from the Monte Carlo error reported by the chains
(independent PT systems → chain-to-chain spread), against exact values: Kaufman's log Z of the 2D Ising model,
enumeration of small Ising/SK systems (energies, magnetisation, the two-replica overlap distribution P(q)) and the
closed-form log Z of a Gaussian model.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from thermodl.engine import equilibrium
from thermodl.engine import observables as ob
from thermodl.engine.tempering import (
    bridge_log_partition,
    communication_barrier,
    initial_ladder,
    ladder_from_barrier,
    pt_log_partition,
    run_tempering,
)
from thermodl.models.exact import enumerate_expectation, enumerate_observables
from thermodl.models.ising import Ising2D
from thermodl.models.sk import SK

from toys import Gauss


def _exact_log_z(model, beta):
    with jax.enable_x64(True):
        return float(model.exact_log_partition(jnp.float64(beta)))


def _chain_z(per_chain, exact):
    """z-score of the mean over independent chains (last axis) against an exact value."""
    per_chain = np.asarray(per_chain, np.float64)
    n = per_chain.shape[-1]
    return (per_chain.mean(-1) - exact) / (per_chain.std(-1, ddof=1) / math.sqrt(n))


# ---------------------------------------------------------------------------------------------- ladders
def test_initial_ladder_shapes():
    g = initial_ladder(0.1, 1.0, 5)
    np.testing.assert_allclose(g[1:] / g[:-1], (10.0) ** 0.25)
    q = initial_ladder(0.0, 2.0, 5)
    np.testing.assert_allclose(q, 2.0 * np.linspace(0, 1, 5) ** 2)


def test_ladder_from_barrier_equal_spacing():
    betas = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    rej = np.array([0.05, 0.05, 0.6, 0.2, 0.1])
    new = ladder_from_barrier(betas, rej)
    assert new[0] == 0.0 and new[-1] == 0.5 and np.all(np.diff(new) > 0)
    lam = communication_barrier(betas, rej)
    np.testing.assert_allclose(lam[-1], rej.sum())
    # Λ (piecewise linear between the old points) is equally spaced at the new ones
    np.testing.assert_allclose(np.diff(np.interp(new, betas, lam)), rej.sum() / 5, rtol=1e-12)
    # the hard pair (0.2, 0.3) now holds more ladder points
    assert np.sum((new > 0.2) & (new < 0.3)) >= 1
    # a flat barrier leaves a uniform ladder where it is
    np.testing.assert_allclose(ladder_from_barrier(betas, np.full(5, 0.3)), betas, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(betas=[0.5, 0.2, 0.9]), "strictly increasing"),
        (dict(betas=[0.5]), "at least 2"),
        (dict(betas=(0.0, 1.0, 1)), "n_replicas"),
        (dict(betas=(1.0, 0.5, 4)), "beta_max"),
        (dict(betas=[-0.1, 0.5]), "finite and >= 0"),
        (dict(betas=[0.1, 0.5], n_copies=3), "n_copies"),
        (dict(betas=[0.1, 0.5], n_chains=0), "n_chains"),
        (dict(betas=[0.1, 0.5], kernel="nuts"), "unknown kernel"),
        (dict(betas=[0.1, 0.5], step_size=-1.0), "step_size"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_tempering(Ising2D(4), key=jax.random.key(0), n_steps=2, **kwargs)


def test_pt_too_short_run_is_flagged():
    """20 production steps cannot give 20 round trips per system: not reliable, with one warning naming it."""
    with pytest.warns(RuntimeWarning, match="PT at beta=0.44: not reliable: too few round trips"):
        est = pt_log_partition(Ising2D(4), 0.44, key=jax.random.key(0), n_chains=16, n_steps=20)
    assert not est.reliable and est.diagnostics["unreliable"] and "round trips" in est.reasons[0]


def test_pt_log_partition_bad_beta():
    with pytest.raises(ValueError, match="beta"):
        pt_log_partition(Ising2D(4), float("nan"), key=jax.random.key(0))
    with pytest.raises(ValueError, match="n_replicas"):
        pt_log_partition(Ising2D(4), 0.3, key=jax.random.key(0), n_replicas=1)
    est = pt_log_partition(Ising2D(4), 0.0, key=jax.random.key(0))
    assert est.value == 16 * math.log(2.0) and est.stderr == 0.0


# ---------------------------------------------------------------------------------------------- mechanics
# Runs share shapes (model, R, chains, copies) and the default chunk size where they can, so the compiled chunk
# function is reused across tests.
ISING4 = dict(n_chains=24)
ISING4_LADDER = (0.1, 0.7, 6)


def test_chunk_size_independent_and_no_recompile():
    m = Ising2D(4)
    kw = dict(key=jax.random.key(3), n_steps=30, n_warmup=40, **ISING4)
    a = run_tempering(m, ISING4_LADDER, chunk_size=7, **kw)
    b = run_tempering(m, ISING4_LADDER, **kw)
    for f in ("positions", "round_trips", "swap_rate"):
        np.testing.assert_array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(b, f)), err_msg=f)
    for f in ("labels", "swap_acceptance"):
        np.testing.assert_array_equal(a.exchange[f], b.exchange[f], err_msg=f)
    np.testing.assert_array_equal(np.asarray(a.acceptance.mean), np.asarray(b.acceptance.mean))
    np.testing.assert_array_equal(np.asarray(a.energy.second.mean), np.asarray(b.energy.second.mean))
    np.testing.assert_array_equal(np.asarray(a.magnetization.first.m2), np.asarray(b.magnetization.first.m2))
    np.testing.assert_array_equal(np.asarray(a.bridge_up.log_sum), np.asarray(b.bridge_up.log_sum))
    np.testing.assert_array_equal(a.betas, b.betas)
    assert a.positions.shape == (6, 24, 16) and a.overlap_counts is None
    # labels stay a permutation of the replicas in every chain
    np.testing.assert_array_equal(np.sort(np.asarray(a.exchange["labels"]), axis=0), np.broadcast_to(np.arange(6)[:, None],
                                                                                          (6, 24)))
    # a new ladder, seed and run length reuse the compiled chunk
    before = dict(equilibrium.TRACE_COUNTS)
    run_tempering(m, (0.2, 0.9, 6), key=jax.random.key(9), n_steps=11, n_warmup=5, **ISING4)
    assert dict(equilibrium.TRACE_COUNTS) == before


def test_dtype_preserved(dtype):
    res = run_tempering(Ising2D(4), ISING4_LADDER, key=0, n_steps=20, n_warmup=10, **ISING4)
    assert res.positions.dtype == dtype and res.energy.first.mean.dtype == dtype
    assert res.bridge_down.log_sum.dtype == dtype
    value, stderr, _ = bridge_log_partition(res)
    assert np.isfinite(value) and stderr > 0


def test_moments_match_enumeration_ising4():
    """⟨E⟩ and ⟨m²⟩ in every slot of a PT run on the 4×4 Ising model vs exact enumeration."""
    model = Ising2D(4)
    res = run_tempering(model, ISING4_LADDER, key=jax.random.key(11), n_steps=600, n_warmup=300, **ISING4)
    assert res.positions.shape == (6, 24, 16)
    with jax.enable_x64(True):
        m64 = Ising2D(4, J=jnp.float64(1.0))
        b = jnp.asarray(res.betas, jnp.float64)
        u = np.asarray(enumerate_observables(m64, b).energy)
        m2 = np.asarray(enumerate_expectation(m64, b, lambda x: jnp.mean(x) ** 2))
    z_e = _chain_z(ob.split_moments_total(res.energy).mean, u)
    z_m = _chain_z(ob.split_moments_total(res.magnetization).mean[..., 2], m2)
    z = np.concatenate([z_e, z_m])
    assert np.all(np.isfinite(z))
    # 12 z-scores: Bonferroni at ~1e-3 overall
    assert np.max(np.abs(z)) < 4.0, z
    assert res.round_trip_rate > 0 and np.all(res.swap_rate > 0.05)
    assert not np.any(np.asarray(res.nonfinite))


# ---------------------------------------------------------------------------------------------- log Z
def test_pt_log_partition_ising8_near_critical():
    model = Ising2D(8)
    beta = 0.44
    est = pt_log_partition(model, beta, key=jax.random.key(0), n_replicas=12, n_chains=16, n_steps=1000)
    exact = _exact_log_z(Ising2D(8), beta)
    assert est.method == "pt" and est.beta == beta
    assert 0 < est.stderr < 0.2
    assert abs(est.z_score(exact)) < 3.0, (est, exact)
    d = est.diagnostics
    assert d["round_trip_rate"] > 0 and d["round_trips"] > 0
    assert d["ladder"][0] == 0.0 and d["ladder"][-1] == beta and len(d["swap_rate"]) == 11
    assert d["n_excluded"] == 0 and d["n_systems"] == 16
    assert est.reliable and d["reliable"] and d["reasons"] == [], est.reasons  # an honest answer is not flagged


def _exact_overlap_distribution(model, beta):
    """P(q) of two independent replicas, q = s·s'/N: P(d) = Σ_x [|x| = d] Σ_a p(a) p(a ⊕ x) by a Walsh–Hadamard
    autocorrelation over the 2^N states; returns [N + 1] probabilities indexed by j with q = −1 + 2j/N."""
    n = model.dim
    with jax.enable_x64(True):
        p = np.asarray(enumerate_observables(model, jnp.float64(beta), return_probabilities=True).probabilities)
    h = p.copy()
    step = 1
    while step < h.size:  # fast Walsh–Hadamard transform
        h = h.reshape(-1, 2, step)
        h = np.stack([h[:, 0] + h[:, 1], h[:, 0] - h[:, 1]], axis=1).reshape(-1)
        step *= 2
    g = h**2
    step = 1
    while step < g.size:
        g = g.reshape(-1, 2, step)
        g = np.stack([g[:, 0] + g[:, 1], g[:, 0] - g[:, 1]], axis=1).reshape(-1)
        step *= 2
    auto = g / g.size  # Σ_a p(a) p(a ⊕ x)
    dist = np.array([bin(x).count("1") for x in range(auto.size)])
    p_d = np.bincount(dist, weights=auto, minlength=n + 1)
    return p_d[::-1]  # j = N − d


def _hotelling_p(per_chain_freq, expected):
    """p-value of Hotelling's T² for mean(per_chain_freq) == expected over independent chains.

    Folded bins (|q|) are merged from the outside in until each group holds ≥ 5% of the exact mass; one group is
    dropped (the frequencies sum to one)."""
    groups, cur, mass = [], [], 0.0
    for j in range(len(expected)):
        cur.append(j)
        mass += expected[j]
        if mass >= 0.05:
            groups.append(cur)
            cur, mass = [], 0.0
    if cur:
        groups[-1] += cur
    f = np.stack([per_chain_freq[:, g].sum(1) for g in groups], 1)[:, :-1]
    e = np.array([expected[g].sum() for g in groups])[:-1]
    n, k = f.shape
    d = f.mean(0) - e
    cov = np.atleast_2d(np.cov(f, rowvar=False))
    t2 = n * d @ np.linalg.solve(cov, d)
    return stats.f.sf((n - k) / (k * (n - 1)) * t2, k, n - k)


def test_sk12_log_partition_and_overlap_distribution():
    """SK with N = 12 down to T = 0.5: bridge log Z vs enumeration, and P(q) of two independent copies vs the
    exact two-replica overlap distribution in the hottest and the coldest slot."""
    model = SK.random(jax.random.key(42), 12)
    res = run_tempering(model, (0.0, 2.0, 10), key=jax.random.key(1), n_chains=32, n_steps=800, n_warmup=400,
                        n_copies=2)
    value, stderr, info = bridge_log_partition(res)
    with jax.enable_x64(True):
        model64 = SK(jnp.asarray(model.J, jnp.float64))
        exact = float(model64.exact_log_partition(jnp.float64(2.0))) - 12 * math.log(2.0)
    assert info["n_systems"] == 64
    assert abs(value - exact) < 3.0 * stderr, (value, stderr, exact)
    assert res.round_trip_rate > 0
    assert res.positions.shape == (10, 2, 32, 12) and res.overlap_counts.shape == (10, 32, 13)

    counts = np.asarray(res.overlap_counts, np.float64)  # [R, chains, 13]
    freq = counts / counts.sum(-1, keepdims=True)
    q = np.linspace(-1, 1, 13)
    second_moment = {}
    for slot in (0, 9):
        exact_pq = _exact_overlap_distribution(model64, float(res.betas[slot]))
        np.testing.assert_allclose(exact_pq.sum(), 1.0, rtol=1e-12)
        np.testing.assert_allclose(exact_pq, exact_pq[::-1], atol=1e-12)  # spin-flip symmetry
        folded_f = freq[slot][:, :7] + np.concatenate([freq[slot][:, 12:6:-1], np.zeros((32, 1))], 1)
        folded_e = exact_pq[:7] + np.concatenate([exact_pq[12:6:-1], [0.0]])
        folded_f, folded_e = folded_f[:, ::-1], folded_e[::-1]  # |q| = 0 first
        assert _hotelling_p(folded_f, folded_e) > 1e-3, slot
        # symmetry of the measured P(q): mass at q > 0 vs q < 0
        asym = freq[slot][:, 7:].sum(1) - freq[slot][:, :6].sum(1)
        assert abs(_chain_z(asym, 0.0)) < 3.5
        second_moment[slot] = (freq[slot] @ q**2, exact_pq @ q**2)
    # below T = 1 the mass spreads out to large |q| (exact and measured)
    hot, cold = second_moment[0], second_moment[9]
    assert cold[1] > 0.3 > 3 * hot[1]
    assert _chain_z(cold[0], hot[1]) > 10


def test_ladder_adaptation_uniformises_swap_rates():
    """8×8 Ising across β_c on a geometric ladder: the adapted ladder's swap rates are far more uniform."""
    model = Ising2D(8)
    kw = dict(key=jax.random.key(5), n_chains=16, n_steps=300, n_warmup=800)  # shapes as in the log Z test
    fixed = run_tempering(model, (0.1, 1.0, 12), adapt_ladder=False, **kw)
    adapted = run_tempering(model, (0.1, 1.0, 12), adapt_ladder=True, **kw)
    assert fixed.ladder_history.shape[0] == 1 and adapted.ladder_history.shape[0] > 2
    spread = lambda r: float(np.max(r) - np.min(r))  # noqa: E731
    assert spread(adapted.swap_rate) < 0.5 * spread(fixed.swap_rate), (adapted.swap_rate, fixed.swap_rate)
    assert np.min(adapted.swap_rate) > np.min(fixed.swap_rate)
    assert adapted.round_trip_rate > 0


def test_pt_gaussian_hmc_adapts_step_size_per_slot():
    """Continuous kernel with per-temperature step-size adaptation: log Z of a Gaussian vs the closed form."""
    a = jnp.array([1.0, 4.0, 16.0, 64.0])
    beta = 4.0
    est = pt_log_partition(Gauss(a), beta, key=jax.random.key(2), n_replicas=8, n_chains=16, n_steps=1000,
                           kernel="hmc", num_integration_steps=5)
    exact = -0.5 * float(np.sum(np.log1p(beta * np.asarray(a, np.float64))))
    assert abs(est.z_score(exact)) < 3.0, (est, exact)
    assert est.reliable, est.reasons
    eps = est.diagnostics["step_size"]
    assert eps[-1] < eps[0]  # colder slots need smaller steps
    acc = est.diagnostics["acceptance"]
    assert np.all(np.abs(acc - 0.8) < 0.15), acc


@pytest.mark.slow
def test_pt_log_partition_z_scores_are_honest():
    """Across 10 seeds the z-scores against enumeration have mean ≈ 0 and spread ≈ 1."""
    model = SK.random(jax.random.key(7), 12)
    with jax.enable_x64(True):
        exact = float(SK(jnp.asarray(model.J, jnp.float64)).exact_log_partition(jnp.float64(1.5)))
    z = [pt_log_partition(model, 1.5, key=jax.random.key(100 + s), n_replicas=8, n_chains=16, n_steps=600)
         .z_score(exact) for s in range(10)]
    assert abs(np.mean(z)) < 1.0 and 0.4 < np.std(z, ddof=1) < 1.8, z
