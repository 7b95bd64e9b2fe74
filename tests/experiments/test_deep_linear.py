"""`thermodl reproduce deep-linear`: the BPKR / exact finite-width theory of Bayesian deep linear networks against
known results and independent quadrature, and a tiny end-to-end run of the figure module."""

import csv
import math

import numpy as np
import pytest
import xarray as xr
from scipy import integrate, special

from thermodl.experiments import common
from thermodl.experiments import deep_linear
from thermodl.experiments import theory_bpkr as tb

KW = dict(sigma2=1.0, temperature=0.1)


def _task(seed=0, n_in=16, n_data=12, scale=2.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_data, n_in))
    w = rng.standard_normal(n_in)
    w *= scale * math.sqrt(n_in) / np.linalg.norm(w)
    return tb.linear_task(X, X @ w / math.sqrt(n_in), w), X, w


# ------------------------------------------------------------------------------------------------------- theory
def test_gp_error_matches_direct_linear_algebra():
    """Bias + variance of the GP posterior computed from the spectral form = the weight-space formulas."""
    task, X, w = _task()
    P, n0 = X.shape
    c, T, U = 0.7**3, 0.1, 1.3
    y = X @ w / math.sqrt(n0)
    A = c * U * X @ X.T / n0 + T * np.eye(P)
    mean = c * U / n0 * X.T @ np.linalg.solve(A, y)
    cov = c * U / n0 * (np.eye(n0) - c * U / n0 * X.T @ np.linalg.solve(A, X))
    b, v, _ = tb.error_at_scale(task, U, c=c, temperature=T)
    assert b == pytest.approx(np.sum((mean - w / math.sqrt(n0)) ** 2), rel=1e-10)
    assert v == pytest.approx(np.trace(cov), rel=1e-10)


def test_gibbs_error_is_twice_bayes_error_for_matched_prior():
    """T → 0, teacher on the prior's scale, no hidden layer: E_X ε_g = 2(1 − α₀) (Gibbs = 2 × Bayes error),
    exact in expectation at finite N₀; tolerance from the spread over random data sets."""
    n_in, n_data, n_sets = 40, 16, 60
    errs = []
    for s in range(n_sets):
        task, _, _ = _task(seed=100 + s, n_in=n_in, n_data=n_data, scale=1.0)
        errs.append(tb.gp_generalisation_error(task, n_hidden=0, sigma2=1.0, temperature=1e-9).total)
    errs = np.array(errs)
    z = (errs.mean() - tb.gibbs_error_matched_prior(n_data / n_in)) / (errs.std(ddof=1) / math.sqrt(n_sets))
    assert abs(z) < 4


@pytest.mark.parametrize("alpha,r,L", [(0.5, 1.0, 1), (0.5, 1.0, 3), (2.0, 1.0, 2)])
def test_zero_temperature_matched_teacher_is_not_renormalised(alpha, r, L):
    """r = 1 (teacher norm matched to the NNGP) gives u = 1 for every α and L (u^{L+1} − (1−α)u^L − α = 0)."""
    assert tb.bpkr_renormalisation_zero_temperature(alpha, r, L) == pytest.approx(1.0, abs=1e-12)


def test_zero_temperature_one_hidden_layer_closed_form():
    """L = 1: u = [(1 − α) + √((1 − α)² + 4αr)]/2."""
    for alpha, r in [(0.3, 4.0), (1.5, 2.5), (3.0, 0.5)]:
        closed = 0.5 * ((1 - alpha) + math.sqrt((1 - alpha) ** 2 + 4 * alpha * r))
        assert tb.bpkr_renormalisation_zero_temperature(alpha, r, 1) == pytest.approx(closed, rel=1e-12)


@pytest.mark.parametrize("L", [1, 2, 3])
def test_saddle_point_reaches_zero_temperature_limit(L):
    """The full solver at T → 0 (P ≤ N₀) agrees with the T = 0 polynomial, α = P/N, r = yᵀ(cG)⁻¹y/P."""
    task, X, w = _task(n_in=16, n_data=12)
    width, c = 5.0, 1.0
    r = float(np.sum(task.z**2 / (c * task.lam))) / len(task.z)
    u = tb.bpkr_renormalisation(task, width=width, n_hidden=L, sigma2=1.0, temperature=1e-9)
    assert r > 3.0  # a teacher four times the prior's scale: genuinely renormalised
    assert u == pytest.approx(tb.bpkr_renormalisation_zero_temperature(12 / width, r, L), rel=1e-6)


def test_saddle_point_minimises_effective_hamiltonian():
    task, _, _ = _task()
    for L in (1, 2, 3):
        u = tb.bpkr_renormalisation(task, width=6.0, n_hidden=L, **KW)
        grid = np.exp(np.linspace(-3, 3, 4001))
        h = tb.effective_hamiltonian(task, grid, width=6.0, n_hidden=L, **KW)
        h_u = tb.effective_hamiltonian(task, u, width=6.0, n_hidden=L, **KW)
        assert h_u <= h.min() + 1e-9
        d = 1e-5
        dh = (tb.effective_hamiltonian(task, u * (1 + d), width=6.0, n_hidden=L, **KW)
              - tb.effective_hamiltonian(task, u * (1 - d), width=6.0, n_hidden=L, **KW)) / (2 * d * u)
        assert abs(dh) < 1e-4


def test_infinite_width_limit_is_the_nngp():
    """N → ∞ at fixed P: u → 1 and both the saddle point and the exact mixture give the NNGP ε_g."""
    task, _, _ = _task()
    for L in (1, 3):
        gp = tb.gp_generalisation_error(task, n_hidden=L, **KW).total
        assert tb.bpkr_renormalisation(task, width=1e8, n_hidden=L, **KW) == pytest.approx(1.0, abs=1e-6)
        assert tb.bpkr_generalisation_error(task, width=1e8, n_hidden=L, **KW).total == pytest.approx(gp, rel=1e-6)
        assert tb.exact_generalisation_error(task, width=1e5, n_hidden=L, **KW).total == pytest.approx(gp, rel=1e-3)
    # no hidden layer: nothing to renormalise at any width
    assert tb.bpkr_generalisation_error(task, width=3, n_hidden=0, **KW).total == pytest.approx(
        tb.gp_generalisation_error(task, n_hidden=0, **KW).total)


def _quad_error(task, width, L, sigma2, T):
    """ε_g of the Gamma scale mixture by adaptive quadrature over u_1 (, u_2): independent of the grid code."""
    k, c = width / 2, sigma2 ** (L + 1)

    def prior(u):
        return math.exp(k * math.log(k) - special.gammaln(k) + (k - 1) * math.log(u) - k * u)

    def like(U):
        d = c * U * task.lam + T
        return math.exp(-0.5 * np.sum(task.z**2 / d + np.log(d)))

    def eps(U):
        b, v, _ = tb.error_at_scale(task, U, c=c, temperature=T)
        return float(b + v)

    if L == 1:
        num = integrate.quad(lambda u: prior(u) * like(u) * eps(u), 0, np.inf, limit=200)[0]
        den = integrate.quad(lambda u: prior(u) * like(u), 0, np.inf, limit=200)[0]
    else:
        num = integrate.dblquad(lambda u2, u1: prior(u1) * prior(u2) * like(u1 * u2) * eps(u1 * u2),
                                0, 30, 0, 30, epsabs=1e-12)[0]
        den = integrate.dblquad(lambda u2, u1: prior(u1) * prior(u2) * like(u1 * u2), 0, 30, 0, 30,
                                epsabs=1e-12)[0]
    return num / den


@pytest.mark.parametrize("width,L", [(4, 1), (9, 1), (6, 2)])
def test_exact_mixture_matches_quadrature(width, L):
    task, _, _ = _task(n_in=10, n_data=8)
    ours = tb.exact_generalisation_error(task, width=width, n_hidden=L, **KW).total
    assert ours == pytest.approx(_quad_error(task, width, L, 1.0, 0.1), rel=2e-4)


def test_saddle_point_error_is_a_finite_width_correction():
    """At fixed α = P/N the relative gap between the exact mixture and the BPKR saddle point shrinks as the
    system grows (it is the O(1/N) fluctuation correction the saddle point omits)."""
    gaps = []
    for m in (1, 4):
        task, _, _ = _task(seed=3, n_in=16 * m, n_data=12 * m)
        ex = tb.exact_generalisation_error(task, width=4 * m, n_hidden=2, **KW).total
        bp = tb.bpkr_generalisation_error(task, width=4 * m, n_hidden=2, **KW).total
        gaps.append(abs(ex - bp) / ex)
    assert gaps[1] < gaps[0] / 2


def test_bad_inputs_raise():
    task, X, w = _task()
    with pytest.raises(ValueError, match="width must be > 0"):
        tb.bpkr_generalisation_error(task, width=0, n_hidden=1, **KW)
    with pytest.raises(ValueError, match="n_hidden must be an integer >= 0"):
        tb.exact_generalisation_error(task, width=4, n_hidden=-1, **KW)
    with pytest.raises(ValueError, match="sigma2 must be finite and > 0"):
        tb.gp_generalisation_error(task, n_hidden=1, sigma2=-1.0, temperature=0.1)
    with pytest.raises(ValueError, match="need X"):
        tb.linear_task(X, X[:, 0], w[:3])
    with pytest.raises(ValueError, match="temperature > 0"):
        tb.exact_generalisation_error(task, width=4, n_hidden=1, sigma2=1.0, temperature=0.0)


# ------------------------------------------------------------------------------------------------ the figure
def test_make_data_shapes_and_teacher_norm():
    import jax

    w, X, y = deep_linear.make_data(jax.random.key(0), 12, 7, 3)
    assert X.shape == (3, 7, 12) and y.shape == (3, 7)
    assert np.sum(w**2) == pytest.approx(deep_linear.TEACHER_SCALE**2 * 12)
    np.testing.assert_allclose(y, X @ w / math.sqrt(12))


def test_unknown_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        deep_linear.run(tmp_path, size="huge")


def test_tiny_run_writes_table_data_and_figure(tmp_path):
    res = deep_linear.run(tmp_path, size="tiny", seed=0)
    for k in ("figure", "table_md", "table_csv", "data"):
        assert (tmp_path / res[k].split("/")[-1]).exists()
    cfg = deep_linear._SIZES["tiny"]
    n_cfg = len(cfg["widths"]) * len(cfg["depths"])
    rows = res["rows"]
    assert len(rows) == 2 * n_cfg
    assert [r["method"] for r in rows[:2]] == ["HMC vs exact finite width", "HMC vs BPKR saddle point"]
    for r in rows:
        assert math.isfinite(r["measured"]) and r["mc_stderr"] > 0 and r["n_excluded"] == 0
        assert r["z"] == pytest.approx((r["measured"] - r["theory"]) / r["stderr"])
        assert r["stderr"] == r["mc_stderr"]  # the allowance adds to t·stderr (common.check_row), not in quadrature
        bound = common.t_quantile(r["dof"]) * r["stderr"] + r["allowance"]
        assert r["pass"] == (abs(r["measured"] - r["theory"]) < bound)
    exact_row = rows[0]
    assert exact_row["allowance"] == 0 and abs(exact_row["z"]) < 4  # fixed seed; the engine samples the posterior
    with open(res["table_csv"]) as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    ds = xr.open_dataset(res["data"])
    assert ds["eps_g_measured"].shape == (len(cfg["depths"]), len(cfg["widths"]), cfg["n_datasets"])
    assert ds["eps_g_bpkr_curve"].shape == (len(cfg["depths"]), cfg["curve_points"])
    ds.close()
