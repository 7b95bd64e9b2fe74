"""engine.ti: quadrature on non-uniform grids, the error budget of thermodynamic integration, and log Z of the 2D
Ising model against Kaufman's exact solution (within 3 reported standard errors)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thermodl.engine.ti import (
    cumulative_weights,
    interval_weights,
    ti_curve,
    ti_grid,
    ti_integrate,
    ti_log_partition,
)
from thermodl.models.exact import exact_thermodynamics
from thermodl.models.ising import Ising2D


def _exact_ising(L, betas):
    """(log Z [K], U [K], Var E [K]) of the L×L Ising torus from Kaufman's formula (float64, autodiff)."""
    betas = np.asarray(betas, np.float64)
    padded = np.zeros(64)  # one fixed shape: one compilation per lattice size
    padded[: betas.size] = betas
    with jax.enable_x64(True):
        out = _exact_batch(Ising2D(L, J=jnp.float64(1.0)), jnp.asarray(padded))
        return tuple(np.asarray(o)[: betas.size] for o in (out.log_partition, out.energy, out.energy_variance))


@jax.jit
def _exact_batch(model, betas):
    return jax.vmap(lambda b: exact_thermodynamics(model, b))(betas)


# ---------------------------------------------------------------------------------------------- quadrature
def test_cubic_rule_exact_for_cubics_on_nonuniform_grid():
    b = np.sort(np.r_[0.0, np.random.default_rng(0).uniform(0, 2, 9), 2.0])
    W, Wt = cumulative_weights(b, "cubic"), cumulative_weights(b, "trapezoid")
    cases = [(lambda x: 1 + x, lambda x: x + x**2 / 2), (lambda x: x**3 - 2 * x**2, lambda x: x**4 / 4 - 2 * x**3 / 3)]
    for f, F in cases:
        np.testing.assert_allclose(W @ f(b), F(b) - F(b[0]), atol=1e-12)
    np.testing.assert_allclose(Wt @ (1 + b), b + b**2 / 2, atol=1e-12)
    assert not np.allclose(Wt @ b**3, b**4 / 4, atol=1e-6)  # the trapezoid is only second order
    np.testing.assert_allclose(interval_weights(b).sum(0), W[-1])
    for rule in ("quadratic_left", "quadratic_right"):
        np.testing.assert_allclose(interval_weights(b, rule).sum(0) @ (b**2 - b), 8 / 3 - 2, atol=1e-12)
    with pytest.raises(ValueError, match="rule"):
        cumulative_weights(b, "simpson38")


def test_monte_carlo_error_propagation_is_calibrated():
    """Noisy ⟨E⟩ with known standard errors: (estimate − truth)/mc_stderr is N(0, 1) over many replicates."""
    rng = np.random.default_rng(1)
    b = np.linspace(0, 1, 9) ** 1.5
    u_true = 3 * b**3 - b  # integrated exactly by the cubic rule
    se = 0.05 + 0.2 * b
    exact = -(3 * b**4 / 4 - b**2 / 2)
    z = []
    for _ in range(1000):
        c = ti_integrate(b, u_true + se * rng.standard_normal(b.size), se)
        z.append((c.log_z[-1] - exact[-1]) / c.mc_stderr[-1])
        assert np.all(c.stderr >= c.mc_stderr) and c.stderr[0] == 0
    # std of 1000 N(0,1) draws: 1 ± 0.022
    assert abs(np.mean(z)) < 0.1 and 0.93 < np.std(z) < 1.07


@pytest.mark.parametrize("L, beta", [(4, 0.6), (8, 0.3), (8, 0.4407), (8, 0.6)])
def test_quadrature_error_estimate_covers_coarse_grids(L, beta):
    """With the exact U(β) (no noise) only the quadrature error is left: the error bar must cover it on coarse
    grids, grow as the grid coarsens, and stay small on a fine grid."""
    errs = {}
    for K, kind in [(5, "linear"), (6, "linear"), (8, "linear"), (8, "quadratic"), (32, "linear")]:
        grid = ti_grid(beta, K, kind)
        log_z, u, _ = _exact_ising(L, grid)
        est, err = ti_curve(grid, u, np.zeros(K), log_z0=float(log_z[0]))
        assert np.all(np.abs(est - log_z) <= err + 1e-9), (K, kind, est - log_z, err)
        errs[(K, kind)] = err[-1]
    assert errs[(5, "linear")] > errs[(8, "linear")] > 4 * errs[(32, "linear")]
    assert errs[(32, "linear")] < 0.05


def test_thermodynamic_grid_concentrates_where_variance_is_large():
    beta = 0.8
    pilot = ti_grid(beta, 16, "quadratic")
    _, _, var = _exact_ising(8, pilot)
    g = ti_grid(beta, 24, "thermodynamic", energy_variance=var, pilot_betas=pilot)
    assert g[0] == 0 and g[-1] == beta and np.all(np.diff(g) > 0)
    gap = lambda lo, hi: np.diff(g)[(g[:-1] >= lo) & (g[:-1] < hi)].mean()  # noqa: E731
    assert gap(0.38, 0.5) < gap(0.0, 0.1) and gap(0.38, 0.5) < 0.5 * gap(0.65, 0.8)
    np.testing.assert_allclose(ti_grid(2.0, 5, "quadratic"), [0, 0.125, 0.5, 1.125, 2.0])


@pytest.mark.parametrize(
    "args, match",
    [
        (([0.1, 0.2, 0.3], [1, 2, 3], [0, 0, 0]), "start at 0"),
        (([0.0, 0.3, 0.2], [1, 2, 3], [0, 0, 0]), "strictly increasing"),
        (([0.0, 0.3], [1, 2], [0, 0]), "at least 3"),
        (([0.0, 0.1, 0.3], [1, np.nan, 3], [0, 0, 0]), "mean_energy must be finite"),
        (([0.0, 0.1, 0.3], [1, 2, 3], [0, -1, 0]), "mean_energy_stderr"),
        (([0.0, 0.1, 0.3], [1, 2], [0, 0, 0]), "shape"),
    ],
)
def test_ti_curve_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        ti_curve(*args)


def test_ti_log_partition_bad_input():
    m = Ising2D(4)
    with pytest.raises(ValueError, match="beta"):
        ti_log_partition(m, -0.1, key=0)
    with pytest.raises(ValueError, match="sampler"):
        ti_log_partition(m, 0.3, key=0, sampler="smc")
    with pytest.raises(ValueError, match="grid"):
        ti_log_partition(m, 0.3, key=0, grid="cubic")
    with pytest.raises(ValueError, match="end at beta"):
        ti_log_partition(m, 0.3, key=0, grid=[0.0, 0.1, 0.2])
    with pytest.raises(ValueError, match="n_betas"):
        ti_log_partition(m, 0.3, key=0, n_betas=2)
    est = ti_log_partition(m, 0.0, key=0)
    assert est.value == 16 * math.log(2.0) and est.stderr == 0.0 and est.method == "ti"


# ---------------------------------------------------------------------------------------------- vs Kaufman
@pytest.mark.parametrize("L, beta", [(4, 0.3), (4, 0.6), (8, 0.3), (8, 0.4407), (8, 0.6)])
def test_ti_log_partition_vs_kaufman(L, beta):
    est = ti_log_partition(Ising2D(L), beta, key=jax.random.key(L * 100 + int(beta * 1000)), n_chains=16,
                           n_steps=400)
    exact = float(_exact_ising(L, [beta])[0][0])
    assert abs(est.z_score(exact)) < 3.0, (est, exact, est.diagnostics["quadrature_error"])
    d = est.diagnostics
    assert d["grid"].shape == (32,) and d["n_excluded_chains"] == 0
    assert 0 < est.stderr < 0.5 and d["mc_stderr"] <= est.stderr
    assert est.reliable and d["reasons"] == [], est.reasons  # an honest answer is not flagged


def test_coarse_grid_with_noise_is_wider_and_covers():
    """Monte Carlo ⟨E⟩ on a deliberately coarse grid: a larger error bar that still covers, and a flag."""
    beta, L = 0.4407, 8
    exact = float(_exact_ising(L, [beta])[0][0])
    with pytest.warns(RuntimeWarning, match="quadrature error dominates"):
        coarse = ti_log_partition(Ising2D(L), beta, key=jax.random.key(3), grid="linear", n_betas=5, n_chains=16,
                                  n_steps=400)
    fine = ti_log_partition(Ising2D(L), beta, key=jax.random.key(4), grid="linear", n_betas=32, n_chains=16,
                            n_steps=400)
    assert coarse.diagnostics["quadrature_dominated"] and not fine.diagnostics["quadrature_dominated"]
    assert coarse.stderr > 2 * fine.stderr, (coarse, fine)
    assert not coarse.reliable and any("quadrature" in r for r in coarse.reasons) and fine.reliable, fine.reasons
    assert abs(coarse.z_score(exact)) < 3.0 and abs(fine.z_score(exact)) < 3.0


def test_ti_with_parallel_tempering_samples():
    beta = 0.4407
    est = ti_log_partition(Ising2D(4), beta, key=jax.random.key(8), n_betas=16, grid="linear", n_chains=16,
                           n_steps=600, sampler="pt")
    exact = float(_exact_ising(4, [beta])[0][0])
    assert abs(est.z_score(exact)) < 3.0, est
    assert est.diagnostics["round_trip_rate"] > 0 and est.diagnostics["sampler"] == "pt"


@pytest.mark.slow
def test_ti_z_scores_are_honest():
    """Across 10 seeds, z-scores against Kaufman near β_c have mean ≈ 0 and spread ≈ 1."""
    beta = 0.4407
    exact = float(_exact_ising(4, [beta])[0][0])
    z = [ti_log_partition(Ising2D(4), beta, key=jax.random.key(500 + s), n_chains=16, n_steps=300).z_score(exact)
         for s in range(10)]
    assert abs(np.mean(z)) < 1.0 and 0.4 < np.std(z, ddof=1) < 1.8, z
