"""engine.llc: λ̂ within 10 % of the exact learning coefficient on 21 width/rank settings (regular linear models,
reduced-rank regression, deep linear networks; MALA, plus SGLD and HMC cross-checks), the estimator's mechanics
and the exact formulas."""

import itertools
import math

import jax
import numpy as np
import pytest

from thermodl.engine import equilibrium
from thermodl.engine.llc import LLCEstimate, default_n_beta, estimate_llc
from thermodl.experiments import theory_slt as slt
from thermodl.experiments.llc import exact_lambda, measure_llc, planted_problems
from thermodl.models import BayesianLinear, Ising2D

# One run setting for every accuracy check: noise-free targets on n = 200 Gaussian inputs (L_n(w*) = 0 at the
# planted most-singular w*), nβ = 10⁴ (β = 50), γ = 1, 8 MALA chains, 6000 steps (half warmup).
RUN = dict(n_data=200, n_beta=1e4, gamma=1.0, n_chains=8, n_steps=6000)
TOL = 0.10


def _check(widths, ranks, seed=1):
    est, lams = measure_llc(widths, ranks, key=jax.random.key(seed), **RUN)
    for i, (r, lam) in enumerate(zip(ranks, lams)):
        assert lam.multiplicity == 1
        ratio = est.value[i] / lam.value
        assert abs(ratio - 1) < TOL, f"widths={widths} r={r}: λ̂={est.value[i]:.3f}±{est.stderr[i]:.3f}, λ={lam.value}"
        assert est.stderr[i] < 0.05 * lam.value
        assert est.reliable[i], est.reasons[i]


# ------------------------------------------------------------------------------------------- accuracy: 21 settings
def test_regular_bayesian_linear_d_over_2():
    """Regular model (BayesianLinear, d = 6, noisy targets): w* = least squares, λ = d/2."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 6)).astype(np.float32)
    y = (X @ rng.standard_normal(6) + rng.standard_normal(200)).astype(np.float32)
    w_star = np.linalg.lstsq(X.astype(np.float64), y.astype(np.float64), rcond=None)[0].astype(np.float32)
    est = estimate_llc(BayesianLinear(X, y), w_star, key=0, n_beta=1e4, gamma=1.0, kernel="mala", n_chains=8,
                       n_steps=4000)
    assert abs(est.value / 3.0 - 1) < TOL and est.reliable, (est.value, est.reasons)


def test_regular_flax_linear_d_over_2():
    """One nnx-free-of-bias linear layer 4 → 3 (d = 12, a flax weight ensemble): λ = 6."""
    _check((4, 3), (3,))


@pytest.mark.parametrize("widths, ranks", [((5, 2, 3), (0, 1, 2)), ((6, 3, 2), (0, 1, 2))])
def test_reduced_rank_regression(widths, ranks):
    """Aoyagi & Watanabe 2005, cases 1 (even), 2 and 3."""
    _check(widths, ranks)


@pytest.mark.slow
@pytest.mark.parametrize("widths, ranks", [((4, 4, 4), (0, 2, 4)), ((3, 4, 5), (0, 2, 3))])
def test_reduced_rank_regression_more(widths, ranks):
    _check(widths, ranks)


@pytest.mark.parametrize("widths, ranks", [((3, 2, 3, 2), (1, 2))])
def test_deep_linear(widths, ranks):
    """Aoyagi 2024, three layers."""
    _check(widths, ranks)


@pytest.mark.slow
@pytest.mark.parametrize("widths, ranks", [((5, 3, 3, 3), (1, 3)), ((4, 3, 3, 4), (2, 3)), ((3, 3, 3, 3), (3,))])
def test_deep_linear_more(widths, ranks):
    _check(widths, ranks)


def test_sgld_minibatch_agrees():
    """SGLD with minibatches of 100 at a small step estimates the same λ (RRR 5-2-3, r = 1 and 2)."""
    est, lams = measure_llc((5, 2, 3), (1, 2), key=jax.random.key(2), kernel="sgld", step_size=5e-6,
                            batch_size=100, **dict(RUN, n_steps=20000))
    for i, lam in enumerate(lams):
        assert abs(est.value[i] / lam.value - 1) < TOL, (est.value, lam)
    assert est.batch_size == 100 and np.all(np.isnan(est.acceptance))


@pytest.mark.slow
def test_hmc_agrees():
    """Full-batch HMC (8 leapfrog steps, adapted step size) on RRR 5-2-3, r = 1 and 2 (accuracy only: a chain
    or two may be flagged for > 1 % divergent trajectories)."""
    est, lams = measure_llc((5, 2, 3), (1, 2), key=jax.random.key(3), kernel="hmc", num_integration_steps=8,
                            **dict(RUN, n_steps=1500))
    for i, lam in enumerate(lams):
        assert abs(est.value[i] / lam.value - 1) < TOL, (est.value, lam)


# ------------------------------------------------------------------------------------------------- mechanics
def _small(gamma=1.0, **kw):
    model, w_star, _ = planted_problems((3, 2, 2), (1,), n_data=50)
    one = jax.tree.map(lambda a: a[0], model)
    return estimate_llc(one, w_star[0], key=kw.pop("key", 3), n_beta=kw.pop("n_beta", 1e3), gamma=gamma,
                        n_chains=4, n_steps=kw.pop("n_steps", 200), **kw)


def test_result_fields_and_same_key_identical():
    a, b = _small(), _small()
    assert isinstance(a, LLCEstimate)
    np.testing.assert_array_equal(a.per_chain, b.per_chain)
    assert a.value == b.value
    assert a.per_chain.shape == (4,) and a.loss_trace.shape == (100,) and a.distance_trace.shape == (100,)
    assert a.loss_at_w_star == pytest.approx(0.0, abs=1e-6) and a.beta == pytest.approx(1e3 / 50)
    assert np.isfinite(a.value) and a.stderr > 0 and 0 < a.acceptance < 1
    d = a.to_dict()
    assert d["kernel"] == "mala" and isinstance(d["value"], float)
    assert _small(key=4).value != a.value


def test_default_n_beta_is_n_over_log_n():
    est = _small(n_beta=None)
    assert est.n_beta == pytest.approx(50 / math.log(50)) == default_n_beta(50)


def test_new_n_beta_or_gamma_does_not_recompile():
    _small()
    before = dict(equilibrium.TRACE_COUNTS)
    _small(n_beta=2e3)
    _small(gamma=7.0)
    assert dict(equilibrium.TRACE_COUNTS) == before


@pytest.mark.parametrize("kwargs, match", [
    (dict(w_star=np.zeros(3, np.float32)), "w_star"),
    (dict(w_star=np.full(10, np.nan, np.float32)), "w_star"),
    (dict(n_beta=0.0), "n_beta"),
    (dict(n_beta=float("inf")), "n_beta"),
    (dict(gamma=-1.0), "gamma"),
    (dict(kernel="rwm"), "kernel"),
    (dict(batch_size=8), "batch_size"),
    (dict(kernel="sgld", batch_size=500), "batch_size"),
    (dict(n_chains=0), "n_chains"),
])
def test_bad_inputs_one_value_error(kwargs, match):
    model, w_star, _ = planted_problems((3, 2, 2), (1,), n_data=50)
    one = jax.tree.map(lambda a: a[0], model)
    args = dict(w_star=w_star[0], key=0, n_chains=2, n_steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        estimate_llc(one, **args)


def test_spin_model_rejected():
    with pytest.raises(ValueError, match="continuous"):
        estimate_llc(Ising2D(4), np.zeros(16, np.float32), key=0)


def test_unreliable_when_chains_escape_a_flat_direction():
    """γ = 0 and a weight the loss ignores (a zero input column): the chain diffuses away — flagged."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((100, 3)).astype(np.float32)
    X[:, 2] = 0.0
    y = (X[:, :2] @ np.array([1.0, -0.5])).astype(np.float32)
    w_star = np.array([1.0, -0.5, 0.0], np.float32)
    est = estimate_llc(BayesianLinear(X, y), w_star, key=0, n_beta=1e4, gamma=0.0, kernel="mala", n_chains=4,
                       n_steps=2000)
    assert not est.reliable and any("escaped" in r for r in est.reasons), est.reasons
    held = estimate_llc(BayesianLinear(X, y), w_star, key=0, n_beta=1e4, gamma=1.0, kernel="mala", n_chains=4,
                        n_steps=2000)
    assert held.reliable, held.reasons


def test_unreliable_when_sgld_diverges():
    model, w_star, _ = planted_problems((3, 2, 2), (1,), n_data=50)
    one = jax.tree.map(lambda a: a[0], model)
    est = estimate_llc(one, w_star[0], key=0, n_beta=1e4, kernel="sgld", step_size=1.0, n_chains=4, n_steps=200)
    assert not est.reliable and est.reasons


# --------------------------------------------------------------------------------------------- exact formulas
def test_regular_is_d_over_2():
    assert slt.regular(7) == (3.5, 1)
    assert slt.deep_linear([4, 3], 2) == (6.0, 1)


def test_rrr_full_rank_is_the_reduced_parametrisation():
    """r = H ≤ min(M, N): the rank-H matrices form a manifold of dimension H(M + N − H); λ is half of it."""
    for M, N, H in itertools.product(range(1, 7), repeat=3):
        if H <= min(M, N):
            assert slt.reduced_rank_regression(M, N, H, H).value == H * (M + N - H) / 2


def test_rrr_overparametrised_is_mn_over_2_and_known_values():
    assert slt.reduced_rank_regression(2, 2, 5, 1) == (2.0, 1)  # case 4: M + N < H + r
    assert slt.reduced_rank_regression(1, 1, 1, 0) == (0.5, 2)  # K = (ab)²: λ = 1/2, m = 2
    assert slt.reduced_rank_regression(2, 2, 2, 0) == (1.5, 1)  # |BA|² with 2×2 A, B


def test_deep_linear_reduces_to_aoyagi_watanabe_and_is_symmetric():
    for M, N, H in itertools.product(range(1, 7), repeat=3):
        for r in range(min(M, N, H) + 1):
            assert slt.deep_linear([M, H, N], r) == slt.reduced_rank_regression(M, N, H, r)
    for widths in ([3, 5, 2, 4], [5, 4, 3, 2, 3], [4, 4, 4, 4, 4], [2, 6, 3, 5]):
        for r in range(min(widths) + 1):
            assert slt.deep_linear(widths, r) == slt.deep_linear(widths[::-1], r)
            # never above half the parameter count (λ ≤ d/2 for any model)
            assert 0 < slt.deep_linear(widths, r).value <= sum(a * b for a, b in zip(widths[:-1], widths[1:])) / 2


def test_exact_lambda_router_and_bad_ranks():
    assert exact_lambda((5, 2, 3), 1) == slt.reduced_rank_regression(5, 3, 2, 1)
    with pytest.raises(ValueError, match="rank"):
        slt.deep_linear([3, 2, 3], 3)
    with pytest.raises(ValueError, match="rank"):
        slt.reduced_rank_regression(3, 3, 2, 3)
