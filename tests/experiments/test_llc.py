"""`thermodl reproduce llc`: registration, the planted problems, and a tiny end-to-end run of the figure module."""

import math

import jax
import numpy as np
import pytest
import xarray as xr

from thermodl.engine import registry
from thermodl.experiments import common
from thermodl.experiments import llc


def test_registered():
    assert registry.EXPERIMENTS["llc"] == "thermodl.experiments.llc"
    mod = registry.load_experiment("llc")
    assert mod.NAME == "llc" and set(mod.SIZES) == {"tiny", "quick", "full"}


def test_planted_problem_is_a_zero_loss_rank_r_point():
    model, w_star, w0 = llc.planted_problems((5, 3, 3, 4), (0, 2, 3), n_data=40)
    assert w_star.shape == (3, model.dim) == (3, 5 * 3 + 3 * 3 + 3 * 4)
    for k, r in enumerate((0, 2, 3)):
        assert np.linalg.matrix_rank(w0[k], tol=1e-6) == r
        one = jax.tree.map(lambda a: a[k], model)
        assert float(one.energy(w_star[k])) == pytest.approx(0.0, abs=1e-6)
        W = np.asarray(llc._end_to_end((5, 3, 3, 4))(w_star[k])).reshape(5, 4)
        np.testing.assert_allclose(W, w0[k], atol=1e-5)


def test_unknown_size():
    with pytest.raises(ValueError, match="unknown size"):
        llc.run(".", size="huge")


def test_tiny_run_writes_table_data_and_figure(tmp_path):
    res = llc.run(tmp_path, size="tiny", seed=0)
    for k in ("figure", "table_md", "table_csv", "data"):
        assert (tmp_path / res[k].split("/")[-1]).exists()
    rows = res["rows"]
    cfg = llc._SIZES["tiny"]
    n_llc = sum(len(r) for _, r in cfg["settings"])
    assert len(rows) == n_llc + len(cfg["gen"]["ns"])
    for r in rows:
        assert math.isfinite(r["measured"]) and r["stderr"] > 0
        bound = common.t_quantile(r["dof"]) * r["stderr"] + r["allowance"]
        assert r["pass"] == (abs(r["measured"] - r["theory"]) < bound)
    for r in rows[:n_llc]:
        assert r["allowance"] == pytest.approx(llc.LLC_ALLOWANCE * r["theory"])
        assert abs(r["ratio"] - 1) < 0.1  # fixed seed; the tiny run is still well within 10 %
    ds = xr.open_dataset(res["data"])
    assert ds.sizes["setting"] == n_llc and ds.sizes["n"] == len(cfg["gen"]["ns"])
    ds.close()
