"""`thermodl reproduce gardner`: the capacity theory (Cover, Gardner RS volume, binary RS entropy) against known
numbers, the helpers (LP separability, zero-pattern padding, the engine's population annealing + TI vs exact
enumeration), and a tiny end-to-end run writing the table, netCDF and figure."""

import csv
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from scipy import stats

from thermodl.engine.smc import population_anneal
from thermodl.engine.ti import ti_integrate
from thermodl.experiments import gardner
from thermodl.experiments import theory_perceptron as tp
from thermodl.models.base import stack_models
from thermodl.models.perceptron import BinaryPerceptron, SphericalPerceptron, gardner_capacity


# ------------------------------------------------------------------------------------------------ theory
def test_cover_formula_known_values():
    for n in range(1, 40):
        assert tp.cover_separable_probability(2 * n, n) == 0.5  # crossing at α = 2 for every N (symmetry)
        assert tp.cover_separable_probability(n, n) == 1.0  # P ≤ N points in general position: always
    # Cover's count C(P, N) = 2 Σ_{k<N} C(P−1, k) dichotomies: P = 4 points in the plane -> 8 of 16
    assert tp.cover_separable_probability(4, 2) == 0.5
    assert tp.cover_separable_probability(3, 2) == 0.75
    assert tp.cover_separable_probability(5, 1) == 2.0 / 32.0  # N = 1: only y = ±sign(x)
    with pytest.raises(ValueError, match="P must be a positive integer"):
        tp.cover_separable_probability(0, 3)


def test_gardner_volume_limits_and_capacity():
    assert tp.gardner_log_volume(0.0) == (0.0, 0.0)
    a = 0.01  # small α: q* ≈ 2α/π and (1/N) ln V ≈ −α ln 2 − α²/π² (expansion of the RS functional)
    v = tp.gardner_log_volume(a)
    assert v.q == pytest.approx(2 * a / math.pi, rel=0.02)
    assert v.log_volume == pytest.approx(-a * math.log(2) - a**2 / math.pi**2, rel=1e-3)
    prev = 0.0
    for a in (0.25, 0.5, 1.0, 1.5, 1.9):
        v = tp.gardner_log_volume(a)
        assert v.log_volume < -a * math.log(2) < 0  # quenched below the annealed bound
        assert v.log_volume < prev
        prev = v.log_volume
    assert tp.gardner_log_volume(1.99).q > 0.99  # q -> 1 at α_c = 2 = gardner_capacity(0)
    assert gardner_capacity(0.0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="capacity"):
        tp.gardner_log_volume(2.05)
    with pytest.raises(ValueError, match="alpha must be finite"):
        tp.gardner_log_volume(-1.0)


def test_gardner_volume_is_stationary_in_q():
    a = 1.0
    v = tp.gardner_log_volume(a)

    def g(q):
        return 0.5 * math.log1p(-q) + q / (2 * (1 - q)) + tp._energetic(q, a, 0.0)

    h = 1e-4
    assert (g(v.q + h) - g(v.q - h)) / (2 * h) == pytest.approx(0.0, abs=1e-5)
    assert g(v.q) == pytest.approx(v.log_volume, abs=1e-10)


def test_binary_entropy_rs_known_numbers():
    s0 = tp.binary_entropy_rs(0.0)
    assert s0.entropy == pytest.approx(math.log(2))
    for a in (0.2, 0.5, 0.8):
        assert tp.binary_entropy_rs(a).entropy < (1 - a) * math.log(2)  # below the annealed entropy
    assert tp.binary_zero_entropy_alpha() == pytest.approx(0.833, abs=1e-3)  # Krauth & Mézard 1989


# ------------------------------------------------------------------------------------------------ helpers
def test_linearly_separable():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 10))
    assert gardner.linearly_separable(X, np.sign(X @ rng.standard_normal(10)))  # teacher labels
    assert not gardner.linearly_separable(np.array([[1.0, 2.0], [1.0, 2.0]]), np.array([1.0, -1.0]))
    assert not gardner.linearly_separable(np.array([[1.0, 0], [0, 1.0], [1.0, 1.0]]), np.array([1.0, 1.0, -1.0]))


@pytest.mark.parametrize("cls", [SphericalPerceptron, BinaryPerceptron])
def test_zero_padding_adds_a_constant_energy(cls):
    rng = np.random.default_rng(1)
    X, y = np.sign(rng.standard_normal((6, 7))).astype(np.float32), np.sign(rng.standard_normal(6)).astype(np.float32)
    Xp, yp, n_pad = gardner.pad_patterns(X, y, 10)
    assert n_pad == 4 and Xp.shape == (10, 7)
    m, mp = cls(X, y), cls(Xp, yp)
    for _ in range(20):
        w = jnp.asarray(np.sign(rng.standard_normal(7)), jnp.float32)
        assert float(mp.energy(w)) == float(m.energy(w)) + 4
    with pytest.raises(ValueError, match="cannot pad 6 patterns to 5"):
        gardner.pad_patterns(X, y, 5)


def test_population_annealing_and_ti_match_exact_log_partition():
    """The engine's population annealing (as the figure calls it) + TI of ⟨E⟩ to β = 20 reproduces the enumerated
    log Z(20) of small binary perceptrons: the per-sample differences average to zero within their sample-to-sample
    standard error (t quantile); so does the SMC log Ẑ of the same run."""
    N, P, D = 9, 5, 6
    rng = np.random.default_rng(3)
    probs = [(np.sign(rng.standard_normal((P, N))).astype(np.float32),
              np.sign(rng.standard_normal(P)).astype(np.float32)) for _ in range(D)]
    models = stack_models([BinaryPerceptron(X, y) for X, y in probs])
    grid = gardner.zero_temperature_grid(10)
    res = population_anneal(models, grid, key=jax.random.key(0), n_particles=32, n_sweeps=90, n_measure=60,
                            kernel="heat_bath", resampling="systematic")
    res.mean_energy[:, 0] = P / 2  # the exact β = 0 value, as the figure does
    assert res.mean_energy.shape == (D, 10) and res.n_nonfinite == 0
    exact = np.array([float(BinaryPerceptron(X, y).exact_log_partition(20.0)) for X, y in probs])
    est = np.array([ti_integrate(grid, res.mean_energy[d], res.mean_energy_stderr[d]).log_z[-1] + N * math.log(2)
                    for d in range(D)])
    for est in (est, res.log_z + N * math.log(2)):
        diff = est - exact
        t = diff.mean() / (diff.std(ddof=1) / math.sqrt(D))
        assert abs(t) < stats.t.ppf(1 - 0.0027 / 2, D - 1), (diff, t)
        assert np.all(np.abs(diff) < 1.0)


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("size", gardner.SIZES)
def test_size_presets_are_consistent(size):
    cfg = gardner._SIZES[size]
    assert len(cfg.volume_N) >= 2 and list(cfg.volume_N) == sorted(cfg.volume_N)
    for N in cfg.volume_N:  # P ≤ N Gaussian patterns are always separable: E ln V is finite
        assert all(round(a * N) <= N and abs(a * N - round(a * N)) < 1e-9 for a in cfg.volume_alphas)
    assert all(N % 2 == 1 for N in cfg.enum_N + (cfg.ais_N,))  # odd N: ±1 weights and patterns never tie
    assert max(cfg.enum_N + (cfg.ais_N,)) <= 24 and len(cfg.enum_N) >= 2
    assert {1.5, 2.0, 2.5} <= set(cfg.cover_alphas)


def test_unknown_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        gardner.run(tmp_path, size="huge")


@pytest.mark.slow
def test_tiny_run_writes_table_data_and_figure(tmp_path):
    res = gardner.run(tmp_path, size="tiny", seed=1)
    for k in ("figure", "table_md", "table_csv", "data"):
        assert Path(res[k]).exists() and Path(res[k]).parent == tmp_path
    with open(res["table_csv"]) as f:
        rows = list(csv.DictReader(f))
    names = [r["quantity"] for r in rows]
    assert sum(q.startswith("P_sep gaussian") for q in names) == 6
    assert sum(q.startswith("(1/N) ln V, N=10") for q in names) == 2
    assert any(q.startswith("binary N=9") for q in names)
    assert any(q.startswith("alpha where the binary RS entropy vanishes") for q in names)
    for r in res["rows"]:
        if r["pass"] is not None:
            assert math.isfinite(r["measured"]) and math.isfinite(r["tolerance"])
    ds = xr.open_dataset(res["data"])
    assert ds["volume_log_v"].shape == (2, 2, 4)
    assert np.isfinite(ds["volume_log_v"]).all()
    assert ds["enum_N"].values.tolist() == [9, 11]
    ds.close()
