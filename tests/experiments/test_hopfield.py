"""The ``hopfield`` figure: the AGS T = 0 solver against published numbers, the analysis helpers, the Mattis-gauge
and SK-couplings rewriting, and a tiny end-to-end run."""

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from scipy import special

from thermodl.experiments import hopfield
from thermodl.experiments import theory_spin as theory


def test_capacity_matches_published_values():
    alpha_c, m_c = theory.hopfield_capacity()
    assert alpha_c == pytest.approx(0.137905, abs=2e-6)  # RS value (AGS 1987; digits: Steffan & Kühn 1994)
    assert m_c == pytest.approx(0.967, abs=1e-3)  # AGS 1987: m jumps from 0.967 at α_c
    assert theory.HOPFIELD_ALPHA_C_RS == pytest.approx(alpha_c, abs=1e-6)


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.13, 0.1379])
def test_retrieval_overlap_solves_the_ags_equations(alpha):
    """m = erf(m/√(2αr)), C = √(2/(παr)) exp(−m²/(2αr)), r = 1/(1−C)² (AGS 1987 at T = 0)."""
    m = float(theory.hopfield_retrieval_overlap(alpha))
    # eliminate C and r: from m, solve y = m/√(2αr) by m = erf(y), then check C and r close the system
    y = float(special.erfinv(m))
    r = m**2 / (2 * alpha * y**2)
    C = math.sqrt(2 / (math.pi * alpha * r)) * math.exp(-(m**2) / (2 * alpha * r))
    assert r == pytest.approx(1 / (1 - C) ** 2, rel=1e-7)
    assert m > 0.967


def test_retrieval_overlap_branch_and_jump():
    a = np.linspace(0.0, 0.137, 30)
    m = theory.hopfield_retrieval_overlap(a)
    assert m[0] == 1.0 and np.all(np.diff(m) <= 0) and m[-1] < m[len(m) // 2] < 1.0
    assert theory.hopfield_retrieval_overlap(0.05) == pytest.approx(0.999992, abs=2e-6)
    assert theory.hopfield_retrieval_overlap(0.139) == 0.0  # no retrieval solution above α_c
    with pytest.raises(ValueError, match="alpha"):
        theory.hopfield_retrieval_overlap(-0.1)
    with pytest.raises(ValueError, match="y must"):
        theory.hopfield_load_of_y(0.0)


def test_collapse_location():
    a = np.array([0.1, 0.2, 0.3, 0.4])
    assert hopfield.collapse_location(a, [1.0, 0.9, 0.3, 0.2]) == pytest.approx(0.2 + 0.1 * 0.4 / 0.6)
    assert math.isnan(hopfield.collapse_location(a, [1.0, 0.9, 0.8, 0.7]))  # never collapses on the grid
    assert math.isnan(hopfield.collapse_location(a, [0.4, 0.3, 0.2, 0.1]))  # collapsed before the grid


def test_hebb_network_as_sk_couplings_in_mattis_gauge():
    """The simulated network (SK with the Hebb matrix, pattern 1 = all ones) has the Hopfield energy and flip
    energies, and its overlap with pattern 1 is the mean spin; the gauge maps a general pattern set onto it."""
    from thermodl.models.hopfield import Hopfield
    from thermodl.models.sk import SK

    key = jax.random.key(0)
    xi = jax.random.rademacher(key, (7, 40), dtype=jnp.float32)
    x = jax.random.rademacher(jax.random.fold_in(key, 1), (40,), dtype=jnp.float32)
    gauged = Hopfield(xi * xi[0])  # ξ^μ_i ξ¹_i: pattern 1 becomes all ones
    net = SK(gauged.couplings())
    assert float(net.energy(x * xi[0])) == pytest.approx(float(Hopfield(xi).energy(x)), abs=1e-4)
    np.testing.assert_allclose(net.delta_energy_all(x), gauged.delta_energy_all(x), atol=1e-5)
    assert float(hopfield._overlap_first(x * xi[0])) == pytest.approx(float(Hopfield(xi).retrieval_overlap(x)[0]))


def test_bad_size():
    with pytest.raises(ValueError, match="size"):
        hopfield.run(None, size="huge")


def test_tiny_run_writes_files_and_rows(tmp_path):
    res = hopfield.run(tmp_path, size="tiny", seed=2)
    for k in ("figure", "table_md", "table_csv", "data"):
        assert Path(res[k]).exists() and Path(res[k]).parent == tmp_path
    names = [r["quantity"] for r in res["rows"]]
    assert names[:2] == ["alpha_c, AGS T=0 replica symmetric", "m(alpha_c-), AGS T=0 replica symmetric"]
    assert res["rows"][0]["pass"] and res["rows"][1]["pass"]
    for n in (50, 100):
        assert sum(q.startswith("m, alpha=") and q.endswith(f"N={n}") for q in names) == 2
        assert f"collapse alpha(<m> = 0.5), N={n}" in names
        assert f"fraction of runs at a fixed point, N={n}" in names
    # at the lowest load every run retrieves the pattern (m within one spin of the AGS value)
    for r in res["rows"]:
        if r["quantity"].startswith("m, alpha=0.0"):
            assert r["pass"] and r["measured"] > 0.99, r
    ds = xr.open_dataset(res["data"])
    assert ds["m_sample"].shape == (2, 6, 4)
    assert np.all(np.abs(ds["m_sample"].values) <= 1.0)
    ds.close()
