"""The main job `thermodl reproduce exact-checks`: its check list, its pass/fail logic, and a tiny end-to-end run
that writes the table (Markdown + CSV), the netCDF data and the PNG figure, with every check within 3 sigma."""

import csv
import itertools
import math

import jax
import numpy as np
import pytest
import xarray as xr

from thermodl.engine import cli
from thermodl.experiments import common, exact_checks


def _ising_log_z_enumerated(L: int, beta: float) -> float:
    """Independent brute-force log Z of the L×L periodic Ising model (J = 1), float64."""
    s = np.array(list(itertools.product((-1.0, 1.0), repeat=L * L))).reshape(-1, L, L)
    a = beta * (s * np.roll(s, -1, 1) + s * np.roll(s, -1, 2)).sum(axis=(1, 2))
    return float(a.max() + np.log(np.exp(a - a.max()).sum()))


# ----------------------------------------------------------------------------------------------- the check list


@pytest.mark.parametrize("size", exact_checks.SIZES)
def test_build_checks_covers_every_exact_solution(size):
    checks, overrides = exact_checks.build_checks(size, seed=0)
    groups = {c.group for c in checks}
    assert {"rbm", "perceptron", "linear", "sk"} <= groups
    assert any(g.startswith("ising L=") for g in groups)
    assert set(overrides) == {"linear"}
    for c in checks:
        assert c.method in ("ais", "pt", "ti") and c.beta > 0
        assert len({(c.quantity, c.method) for c in checks}) == len(checks)
    if size != "tiny":
        betas = {c.beta for c in checks if c.group.startswith("ising")}
        assert min(betas) < exact_checks.BETA_C < max(betas) and exact_checks.BETA_C in betas
        assert "ising L=16" in groups
        assert {"ais", "pt", "ti"} <= {c.method for c in checks}
        assert any(c.group == "sk" and c.make_model().dim <= 16 for c in checks)
        perceptron = next(c for c in checks if c.group == "perceptron")
        assert 13 <= perceptron.make_model().dim <= 17


def test_unknown_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown size 'huge'; choose one of: tiny, small, full"):
        exact_checks.run(tmp_path, size="huge")


def test_check_row_can_fail():
    good = common.check_row("q", "ais", 10.2, 0.1, 10.0)
    assert good["z"] == pytest.approx(2.0) and good["pass"]
    bad = common.check_row("q", "ais", 10.4, 0.1, 10.0)
    assert bad["z"] == pytest.approx(4.0) and not bad["pass"]
    assert not common.check_row("q", "ais", math.nan, 0.1, 10.0)["pass"]
    assert not common.check_row("q", "ais", 10.0, math.nan, 10.0)["pass"]
    assert not common.check_row("q", "ais", 10.1, 0.0, 10.0)["pass"]  # zero error bar, wrong value
    assert common.check_row("q", "exact", 10.0, 0.0, 10.0)["pass"]


def test_run_check_flags_a_wrong_reference():
    """The row machinery compares against the reference it is given: a wrong 'exact' value fails the check."""
    from thermodl.models.ising import Ising2D

    check = exact_checks.Check("Ising 4x4", "ising L=4", lambda: Ising2D(4), 0.3, "ais",
                               dict(n_chains=64, n_temperatures=32))
    key = jax.random.key(0)
    right = exact_checks.run_check(check, key)
    assert right["theory"] == pytest.approx(_ising_log_z_enumerated(4, 0.3), rel=1e-10)
    wrong = exact_checks.run_check(check, key, exact_override=lambda b: right["theory"] + 10 * right["stderr"])
    assert wrong["measured"] == right["measured"]
    assert not wrong["pass"] and wrong["z"] < -3


def test_linear_reference_is_the_closed_form_of_the_flax_ensemble(x64):
    """The flax nnx.Linear weight ensemble and BayesianLinear are the same model: same energy, same prior."""
    import jax.numpy as jnp

    key = jax.random.key(3)
    model = exact_checks._linear(3, 12, key)()
    X, y = exact_checks._linear_data(3, 12, key)
    w = jax.random.normal(jax.random.key(1), (3,))
    np.testing.assert_allclose(model.energy(w), 0.5 * jnp.sum((X @ w - y) ** 2), rtol=1e-5)
    np.testing.assert_allclose(model.log_prior(w), -0.5 * jnp.sum(w**2) - 1.5 * math.log(2 * math.pi), rtol=1e-5)
    exact = exact_checks._linear_exact(3, 12, key)(0.7)
    # Closed form written out here independently: log N(y; 0, I/β + X Xᵀ).
    Xn, yn = np.asarray(X, np.float64), np.asarray(y, np.float64)
    cov = np.eye(12) / 0.7 + Xn @ Xn.T
    sign, logdet = np.linalg.slogdet(cov)
    evidence = -0.5 * (yn @ np.linalg.solve(cov, yn) + logdet + 12 * math.log(2 * math.pi))
    # Z(β) = ∫ prior(w) e^{−β E(w)} dw = N(y; 0, I/β + XXᵀ) · (2π/β)^{P/2}
    assert exact == pytest.approx(evidence + 6 * math.log(2 * math.pi / 0.7), rel=1e-9)


# ------------------------------------------------------------------------------------------- end to end (tiny)


@pytest.mark.slow
def test_tiny_run_writes_table_netcdf_and_figure(tmp_path):
    """One tiny end-to-end run through the CLI (one test, so pytest-xdist never runs it twice)."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "exact-checks", "--size", "tiny", "--out", str(tmp_path), "--seed", "0", "--quiet"])
    folder = tmp_path / "exact-checks"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exact-checks"]  # no temporary folder left behind
    assert sorted(p.name for p in folder.iterdir()) == ["results.csv", "results.md", "results.nc", "results.png"]
    assert (folder / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The table: one row per check, standard columns, pass = |z| < 3, every check passing.
    with open(folder / "results.csv") as f:
        rows = list(csv.DictReader(f))
    checks, _ = exact_checks.build_checks("tiny", 0)
    assert [r["quantity"] for r in rows] == [c.quantity for c in checks]
    for col in ("quantity", "method", "measured", "stderr", "theory", "z", "tolerance", "pass", "wall_s"):
        assert col in rows[0]
    md = (folder / "results.md").read_text()
    assert md.startswith("| quantity | method | measured | stderr | theory | z | tolerance | pass | wall_s |")
    assert md.count("\n") == len(rows) + 2
    for r in rows:
        stderr, z = float(r["stderr"]), float(r["z"])
        assert stderr > 0 and math.isfinite(z)
        assert r["pass"] == str(abs(z) < 3)
        assert abs(z) < 3, r  # every estimator within 3 of its own standard errors of the exact value
    perceptron = next(r for r in rows if r["group"] == "perceptron")
    assert float(perceptron["log_n_solutions"]) == pytest.approx(float(perceptron["theory"]), abs=0.01)
    assert exc.value.code == 0

    # The netCDF: the table, and Kaufman's curve for the figure, checked against brute-force enumeration.
    with xr.open_dataset(folder / "results.nc") as ds:
        assert ds.sizes["check"] == len(checks)
        for name in ("table_measured", "table_stderr", "table_theory", "table_z", "table_pass"):
            assert name in ds, name
        curve = ds["log_Z_per_spin_exact_L4"]
        betas = ds["beta_curve"].values
        for b in (0.0, 0.3, 0.6):
            i = int(np.argmin(np.abs(betas - b)))
            assert curve.values[i] == pytest.approx(_ising_log_z_enumerated(4, betas[i]) / 16, rel=1e-10)
        ising = ds["table_group"].values == "ising L=4"
        theory = ds["table_theory"].values[ising]
        beta = ds["table_beta"].values[ising]
        np.testing.assert_allclose(theory, [_ising_log_z_enumerated(4, b) for b in beta], rtol=1e-10)
