"""`thermodl reproduce edge-of-chaos`: the mean-field solvers against known numbers and independent checks, the
measurement helpers on synthetic data, and a tiny end-to-end run writing table, netCDF and figure."""

import csv
import math

import jax
import numpy as np
import pytest
import xarray as xr

from thermodl.experiments import common
from thermodl.experiments import edge_of_chaos as eoc
from thermodl.experiments import theory_meanfield as mf

# ------------------------------------------------------------------------------------------------ theory


def test_critical_line_known_values():
    # σ_b² = 0: χ₁ = σ_w² φ'(0)² at q* = 0, so the transition is at σ_w² = 1 exactly.
    assert mf.critical_sigma_w2(0.0) == 1.0
    # Schoenholz et al. (ICLR 2017), Fig. 1: with σ_b² = 0.05 the critical point sits at σ_w² ≈ 1.76.
    s = mf.critical_sigma_w2(0.05)
    assert s == pytest.approx(1.76, abs=0.005)
    assert mf.chi_1(s, 0.05) == pytest.approx(1.0, abs=1e-9)
    # the critical line moves to larger σ_w² as σ_b² grows
    assert mf.critical_sigma_w2(0.01) < s < mf.critical_sigma_w2(0.1) < mf.critical_sigma_w2(0.3)


def test_q_star_fixed_point_and_small_q_limit():
    for sw2, sb2 in [(1.2, 0.05), (3.0, 0.05), (2.0, 0.0), (1.5, 0.3)]:
        q = mf.q_star(sw2, sb2)
        assert mf.length_map(q, sw2, sb2) == pytest.approx(q, rel=1e-10)
    assert mf.q_star(0.8, 0.0) == 0.0
    # σ_b = 0 just above σ_w² = 1: tanh² ≈ u² − (2/3)u⁴ gives q* = (1 − 1/σ_w²)/2 + O((σ_w² − 1)²)
    sw2 = 1.01
    assert mf.q_star(sw2, 0.0) == pytest.approx((1 - 1 / sw2) / 2, rel=0.03)


def test_chi1_and_chi_c_are_slopes_of_the_correlation_map():
    # χ₁ = slope of the correlation map at c = 1 (Poole et al. 2016); χ_c = slope at c* (Schoenholz et al.)
    for sw2, sb2 in [(1.2, 0.05), (3.0, 0.05), (1.5, 0.2)]:
        q, h = mf.q_star(sw2, sb2), 1e-5
        slope1 = (1.0 - mf.correlation_map(1.0 - h, sw2, sb2, q)) / h
        assert slope1 == pytest.approx(mf.chi_1(sw2, sb2), rel=1e-3)
        c = mf.c_star(sw2, sb2)
        if c < 1.0:
            assert mf.correlation_map(c, sw2, sb2, q) == pytest.approx(c, abs=1e-10)
            d = (mf.correlation_map(c + 1e-4, sw2, sb2, q) - mf.correlation_map(c - 1e-4, sw2, sb2, q)) / 2e-4
            assert d == pytest.approx(mf.chi_c(sw2, sb2), rel=1e-6)
    # ordered phase: c* = 1 and χ_c = χ₁
    assert mf.c_star(1.2, 0.05) == 1.0
    assert mf.chi_c(1.2, 0.05) == pytest.approx(mf.chi_1(1.2, 0.05), rel=1e-12)
    # chaotic σ_b = 0: the map is odd, c* = 0
    assert mf.c_star(2.0, 0.0) == 0.0


def test_xi_c_diverges_at_the_critical_point():
    s = mf.critical_sigma_w2(0.05)
    near = [mf.xi_c(s - 0.01, 0.05), mf.xi_c(s + 0.01, 0.05)]
    far = [mf.xi_c(1.2, 0.05), mf.xi_c(3.0, 0.05)]
    assert min(near) > 10 * max(far)
    assert mf.xi_c(1.2, 0.05) == pytest.approx(-1 / math.log(mf.chi_1(1.2, 0.05)))


def test_mean_field_trajectory_converges_to_the_fixed_points():
    t = mf.mean_field_trajectory(1.0, 0.3, 3.0, 0.05, 120)  # ξ_c ≈ 9: |c − c*| ~ e^{−120/9}
    assert t.q.shape == t.c.shape == (120,)
    assert t.q[-1] == pytest.approx(mf.q_star(3.0, 0.05), rel=1e-8)
    assert t.c[-1] == pytest.approx(mf.c_star(3.0, 0.05), abs=1e-5)
    assert t.q[0] == pytest.approx(3.0 * 1.0 + 0.05)


def test_finite_width_correction_matches_the_stochastic_length_map():
    """Simulate the exact width-N Markov chain of the per-layer variance Q (N i.i.d. units per layer) and compare
    ⟨Q⟩ − q* and ⟨σ_w² φ'(h)²⟩ − χ₁ with the O(1/N) theory; tolerance: 4 standard errors of the simulation plus
    a 25 % allowance for the O(1/N²) terms (at N = 32 they are ~1/N ≈ 3 % of the correction)."""
    rng = np.random.default_rng(0)
    sw2, sb2, N, M = 3.0, 0.05, 32, 4000
    Q = np.full(M, mf.q_star(sw2, sb2))
    qs, chis = [], []
    for layer in range(60):
        h = np.sqrt(Q)[:, None] * rng.standard_normal((M, N))
        if layer >= 20:
            qs.append(Q.copy())
            chis.append(sw2 * np.mean(np.cosh(h) ** -4, axis=1))
        Q = sw2 * np.mean(np.tanh(h) ** 2, axis=1) + sb2
    qs, chis = np.array(qs).mean(0), np.array(chis).mean(0)  # per chain (chains independent)
    corr = mf.finite_width_correction(sw2, sb2, N)
    for sim, th, ref in [(qs, corr.q, mf.q_star(sw2, sb2)), (chis, corr.chi_1, mf.chi_1(sw2, sb2))]:
        se = sim.std(ddof=1) / math.sqrt(M)
        assert abs(th) > 5 * se  # the effect is resolved, so the check can fail
        assert abs(sim.mean() - ref - th) < 4 * se + 0.25 * abs(th)


def test_theory_rejects_bad_input():
    with pytest.raises(ValueError, match="sigma_w2 must be finite and > 0"):
        mf.chi_1(-1.0, 0.05)
    with pytest.raises(ValueError, match="sigma_b2 must be finite and >= 0"):
        mf.q_star(1.0, -0.1)
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        mf.mean_field_trajectory(1.0, 0.5, 1.0, 0.0, 0)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        mf.finite_width_correction(2.0, 0.1, 0)


# ------------------------------------------------------------------------------------------- measurement


def test_random_mlp_prior_scales():
    """The β = 0 ensemble of the flax MLP draws W ~ N(0, σ_w²/N) and b ~ N(0, σ_b²): sample variances within
    4 standard errors (var of a sample variance of n normals = 2σ⁴/(n−1))."""
    nets = eoc.RandomMLP(16, 3, 1)
    ens = nets.ensemble(2.0, 0.3)
    w = np.asarray(ens.sample_reference(jax.random.key(0)), np.float64)
    params = ens.unravel(w)
    kernels = np.concatenate([np.ravel(params["layers"][i]["kernel"][...]) for i in range(1, 3)])
    biases = np.concatenate([np.ravel(params["layers"][i]["bias"][...]) for i in range(3)])
    for x, var in [(kernels, 2.0 / 16), (biases, 0.3)]:
        assert abs(x.var(ddof=1) - var) < 4 * var * math.sqrt(2 / (x.size - 1))


def test_jacobian_norm_is_the_mean_squared_singular_value():
    nets = eoc.RandomMLP(16, 4, 1)
    ens = nets.ensemble(1.5, 0.1)
    key = jax.random.key(3)
    x = np.ones((1, 16), np.float32)
    net, hs = eoc._preactivations(ens, key, x)
    W = np.asarray(net.layers[2].kernel[...], np.float64)  # [in, out]
    d = 1.0 / np.cosh(np.asarray(hs[1][0], np.float64)) ** 2
    direct = np.sum((W * d[:, None]) ** 2) / 16
    chi, _ = eoc._jacobian_signals(ens, key, x, jac_layers=(1,), window=(1, 2))
    assert float(chi) == pytest.approx(direct, rel=1e-4)
    sv = np.linalg.svd(W.T * d[None, :], compute_uv=False)
    assert direct == pytest.approx(np.mean(sv**2), rel=1e-10)


def test_fit_correlation_depth_recovers_xi_on_synthetic_decay():
    rng = np.random.default_rng(1)
    xi, M, L = 6.0, 40, 60
    layers = np.arange(L)
    delta = 0.5 * np.exp(-layers / xi)[None, :] + 0.01 * rng.standard_normal((M, L))
    fit = eoc.fit_correlation_depth(delta, n_boot=200, seed=0)
    assert fit["window"][0] == eoc.L_MIN and fit["window"][1] > eoc.L_MIN + 5
    assert abs(fit["xi"] - xi) < 4 * fit["xi_stderr"]
    assert fit["xi_stderr"] < 1.0
    flat = 0.01 * rng.standard_normal((M, L))  # no signal: no fit
    assert math.isnan(eoc.fit_correlation_depth(flat, n_boot=10)["xi"])


def test_critical_fit_root_and_error():
    sw2 = np.linspace(1.5, 2.0, 6)
    chi = 0.4 + 0.35 * sw2
    root, se, slope = eoc.critical_fit(sw2, chi, np.full(6, 0.01))
    assert root == pytest.approx(0.6 / 0.35) and slope == pytest.approx(0.35)
    assert 0 < se < 0.05


def test_correlation_inputs_have_exact_lengths_and_correlations():
    X = eoc.correlation_inputs(32, 3)
    assert X.shape == (9, 32)
    np.testing.assert_allclose((X**2).mean(1), 1.0, rtol=1e-12)
    a, A, B = X[0::3], X[1::3], X[2::3]
    np.testing.assert_allclose((a * A).mean(1), eoc.C_A, atol=1e-12)
    np.testing.assert_allclose((a * B).mean(1), eoc.C_B, atol=1e-12)


# ------------------------------------------------------------------------------------------- end to end


def test_registered_in_the_experiment_registry():
    from thermodl.engine import registry

    assert registry.load_experiment("edge-of-chaos") is eoc
    assert set(eoc.SIZES) == {"tiny", "small", "full"}


def test_unknown_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown size 'huge'; choose one of: tiny, small, full"):
        eoc.run(tmp_path, size="huge")


def test_tiny_run_writes_table_data_and_figure(tmp_path):
    res = eoc.run(tmp_path, size="tiny", seed=0)
    for k in ("figure", "table_md", "table_csv", "data"):
        assert (tmp_path / res[k].split("/")[-1]).exists()
    with open(res["table_csv"]) as fh:
        rows = list(csv.DictReader(fh))
    names = [r["quantity"] for r in rows]
    assert names == ["chi_1 (sigma_w2=1.2, sigma_b2=0.05)", "q* (sigma_w2=1.2, sigma_b2=0.05)",
                     "chi_1 (sigma_w2=3, sigma_b2=0.05)", "q* (sigma_w2=3, sigma_b2=0.05)",
                     "critical sigma_w2 at sigma_b2=0.05 (chi_1 = 1)"]
    for r in res["rows"]:
        assert r["stderr"] > 0 and r["allowance"] >= 0 and math.isfinite(r["measured"])
        # the one rule (common.check_row): |measured − theory| < t·stderr + allowance, z in Monte Carlo stderrs
        assert r["z"] == pytest.approx((r["measured"] - r["theory"]) / r["stderr"])
        bound = common.t_quantile(r["dof"]) * r["stderr"] + r["allowance"]
        assert r["pass"] == (abs(r["measured"] - r["theory"]) < bound)
    ds = xr.open_dataset(res["data"])
    assert ds["chi1_measured"].shape == (2, 3)
    assert np.all(np.isfinite(ds["chi1_measured"].values))
    # the ordered corner is ordered and the chaotic one chaotic, even at this tiny size
    assert ds["chi1_measured"].sel(sigma_w2=0.8, sigma_b2=0.05).item() < 1 < ds["chi1_measured"].sel(
        sigma_w2=3.0, sigma_b2=0.0).item()
    ds.close()
