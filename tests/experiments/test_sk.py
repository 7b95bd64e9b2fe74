"""The ``sk`` figure: theory solvers against known numbers / exact enumeration, and a tiny end-to-end run."""

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from thermodl.experiments import sk
from thermodl.experiments import theory_spin as theory


def _random_couplings(rng, n):
    g = rng.normal(size=(n, n)) / math.sqrt(n)
    upper = np.triu(g, 1)
    return upper + upper.T


@pytest.fixture(scope="module")
def exact_n8():
    """Exact u, c, ⟨q²⟩ of 400 SK samples, N = 8, at β = 0.5 and 2 (fixed seed; enumeration, ~1 s)."""
    rng = np.random.default_rng(12345)
    betas = np.array([0.5, 2.0])
    out = [theory.sk_exact_thermodynamics(_random_couplings(rng, 8), betas) for _ in range(400)]
    return betas, {k: np.stack([o[k] for o in out]) for k in ("u", "c", "q2")}


def _mean_se(x):
    return x.mean(0), x.std(0, ddof=1) / math.sqrt(x.shape[0])


# ------------------------------------------------------------------------------------------------ paramagnet
def test_paramagnet_closed_forms():
    assert theory.sk_paramagnetic_energy(0.5) == pytest.approx(-0.25)
    assert theory.sk_paramagnetic_specific_heat(0.5) == pytest.approx(0.125)
    assert theory.sk_spin_glass_susceptibility(0.0) == pytest.approx(1.0)
    assert theory.sk_spin_glass_susceptibility(0.5) == pytest.approx(4.0 / 3.0)
    # c_N = −β² du_N/dβ (the two ALR formulas are consistent)
    b, h, n = 0.6, 1e-6, 20
    du = (theory.sk_paramagnetic_energy(b + h, n) - theory.sk_paramagnetic_energy(b - h, n)) / (2 * h)
    assert theory.sk_paramagnetic_specific_heat(b, n) == pytest.approx(-(b**2) * du, rel=1e-6)


def test_alr_correction_resolved_by_exact_enumeration(exact_n8):
    """Disorder-averaged exact u and c at N = 8, β = 0.5 agree with the 1/N-corrected paramagnet to within
    3 stderr + half the 1/N term, and are resolved away from the N → ∞ value (so the correction is real)."""
    betas, ex = exact_n8
    b, n = betas[0], 8
    for key, fn in (("u", theory.sk_paramagnetic_energy), ("c", theory.sk_paramagnetic_specific_heat)):
        mean, se = _mean_se(ex[key][:, 0])
        finite, limit = float(fn(b, n)), float(fn(b))
        assert abs(mean - finite) < 3 * se + 0.5 * abs(finite - limit), key
        assert abs(mean - limit) > 3 * se, key


def test_susceptibility_allowance_covers_exact_enumeration(exact_n8):
    """N[⟨q²⟩] at N = 8, β = 0.5 is within the documented allowance (2 × annealed 1/N deviation) of 1/(1−β²)."""
    betas, ex = exact_n8
    mean, se = _mean_se(8 * ex["q2"][:, 0])
    chi = float(theory.sk_spin_glass_susceptibility(betas[0]))
    allowance = 2 * abs(float(theory.sk_annealed_susceptibility(betas[0], 8)) - chi)
    assert abs(mean - chi) < 3 * se + allowance
    assert abs(mean - chi) > 3 * se  # the finite-N correction exists and the allowance is needed


def test_gaussian_identity_holds_exactly_below_tc(exact_n8):
    """[u] = −(β/2)(1 − [⟨q²⟩]) (integration by parts over Gaussian J), here at T = 0.5 and N = 8."""
    betas, ex = exact_n8
    b = betas[1]
    delta = ex["u"][:, 1] + 0.5 * b * (1.0 - ex["q2"][:, 1])
    mean, se = _mean_se(delta)
    assert abs(mean) < 3 * se
    wrong = ex["u"][:, 1] + 0.5 * b * (1.0 - 0.8 * ex["q2"][:, 1])  # a 20 % error in q² is detected
    assert abs(wrong.mean()) > 3 * se


def test_annealed_susceptibility_limits():
    for n in (2, 7, 50):
        assert theory.sk_annealed_susceptibility(0.0, n) == pytest.approx(1.0, abs=1e-12)
    assert theory.sk_annealed_susceptibility(0.5, 10**5) == pytest.approx(4.0 / 3.0, rel=1e-4)
    vals = theory.sk_annealed_susceptibility(np.array([0.3, 0.5]), 16)
    assert vals.shape == (2,) and np.all(vals < 1.0 / (1.0 - np.array([0.3, 0.5]) ** 2))


# ------------------------------------------------------------------------------------------------ RS, exact
def test_rs_solution_known_values():
    assert theory.sk_rs_overlap(0.9) == 0.0
    assert theory.sk_rs_energy(1.0) == pytest.approx(-0.5)
    # near T_c: q ≈ τ = 1 − T (SK 1975)
    b = 1.001
    assert theory.sk_rs_overlap(b) == pytest.approx(1.0 - 1.0 / b, rel=5e-3)
    # RS ground-state energy −√(2/π) = −0.7979 (SK 1975)
    assert theory.sk_rs_energy(1000.0) == pytest.approx(-math.sqrt(2.0 / math.pi), abs=2e-6)
    q = theory.sk_rs_overlap(2.0)  # the fixed point equation itself, by Gauss–Hermite quadrature
    z, w = np.polynomial.hermite_e.hermegauss(301)
    assert np.sum(w * np.tanh(2.0 * math.sqrt(q) * z) ** 2) / math.sqrt(2 * math.pi) == pytest.approx(q, abs=1e-6)
    assert theory.SK_GROUND_STATE_ENERGY == pytest.approx(-0.7632, abs=1e-4)


def test_exact_thermodynamics_matches_model_log_partition():
    """NumPy enumeration agrees with −d log Z/dβ and d² log Z/dβ² of ``models.sk.SK.exact_log_partition``."""
    from thermodl.models.sk import SK

    rng = np.random.default_rng(3)
    J = _random_couplings(rng, 6)
    betas = np.array([0.3, 1.7])
    ex = theory.sk_exact_thermodynamics(J, betas)
    with jax.enable_x64(True):
        log_z = SK(jnp.asarray(J)).exact_log_partition
        for k, b in enumerate(betas):
            u = -float(jax.grad(log_z)(jnp.float64(b))) / 6
            c = b**2 * float(jax.grad(jax.grad(log_z))(jnp.float64(b))) / 6
            assert ex["u"][k] == pytest.approx(u, rel=1e-10)
            assert ex["c"][k] == pytest.approx(c, rel=1e-8)
    assert np.all((ex["q2"] >= 1 / 6 - 1e-12) & (ex["q2"] <= 1 + 1e-12))


def test_bad_inputs():
    with pytest.raises(ValueError, match="beta"):
        theory.sk_paramagnetic_energy(1.2)
    with pytest.raises(ValueError, match="n must"):
        theory.sk_paramagnetic_energy(0.5, 1)
    with pytest.raises(ValueError, match="N <= 20"):
        theory.sk_exact_thermodynamics(np.zeros((21, 21)), [1.0])
    with pytest.raises(ValueError, match="size"):
        sk.run(None, size="huge")


# ------------------------------------------------------------------------------------------------ end to end
def test_tiny_run_writes_files_and_rows(tmp_path):
    res = sk.run(tmp_path, size="tiny", seed=1)
    for k in ("figure", "table_md", "table_csv", "data"):
        assert Path(res[k]).exists() and Path(res[k]).parent == tmp_path
    names = [r["quantity"] for r in res["rows"]]
    for n in (8, 12):
        for t in ("2", "1.6"):
            for q in ("u", "c", "N<q^2>"):
                assert f"{q}, T={t}, N={n}" in names
        assert f"u + (beta/2)(1 - <q^2>), T=0.4, N={n}" in names
        for q, t in (("u", "0.4"), ("<q^2>", "0.4"), ("c", "1")):
            assert f"{q}, T={t}, N={n} (same J)" in names
        assert f"min round trips per PT system, N={n}" in names
    assert "d ln<q^2>/d ln N, T=0.4, N=8..12" in names
    assert len(names) == 23
    assert all(isinstance(r["pass"], bool) for r in res["rows"])
    # PT vs exact enumeration on the same couplings is a sharp engine check even at this size
    for r in res["rows"]:
        if r["method"] == "PT - exact enumeration":
            assert r["pass"], r
    ds = xr.open_dataset(res["data"])
    assert ds["u_sample"].shape == (2, 3, 19)
    assert ds["pq_N12"].shape == (19, 13)
    np.testing.assert_allclose(ds["pq_N12"].sum("q_N12"), 1.0, rtol=1e-6)
    ds.close()
