"""`thermodl reproduce bench-logz`: the time-to-threshold interpolation, and a tiny end-to-end run."""

import math

import numpy as np
import pytest
import xarray as xr

from thermodl.experiments import bench_logz


def test_time_to_threshold_interpolates_log_log():
    t, q = bench_logz.time_to_threshold([1.0, 4.0], [0.1, 0.025], 0.05)
    assert q == "" and t == pytest.approx(2.0)  # RMSE ∝ t^-1: halving the error doubles the time
    assert bench_logz.time_to_threshold([1.0, 2.0], [0.01, 0.005], 0.05) == (1.0, "<=")
    t, q = bench_logz.time_to_threshold([1.0, 2.0], [0.3, 0.2], 0.05)
    assert math.isnan(t) and q == "not reached"


def test_tiny_run_writes_table_data_and_figure(tmp_path):
    pytest.importorskip("blackjax")
    res = bench_logz.run(tmp_path, size="tiny", seed=0)
    for k in ("figure", "table_md", "table_csv", "data", "json"):
        assert (tmp_path / res[k].split("/")[-1]).exists()
    rows = res["rows"]
    cal = {(r["quantity"].split(":")[0], r["method"]): r for r in rows if "calibration" in r["quantity"]}
    assert {("blr5", "ais"), ("blr5", "smc"), ("blr5", "blackjax_hmc"), ("ising4", "ais"), ("ising4", "smc")} \
        <= set(cal)
    for (target, method), r in cal.items():
        assert np.isfinite(r["rmse"]) and r["rmse"] < 1.0 and r["wall_s"] > 0
        if not method.startswith("blackjax"):
            assert r["mean_stderr"] > 0 and np.isfinite(r["measured"])
    assert any(r["method"] == "ratio" and r["quantity"].startswith("blr5") for r in rows)
    assert not any(r["quantity"].startswith("ising4") and r["method"].startswith("blackjax") for r in rows)
    ds = xr.open_dataset(res["data"])
    assert ds["error"].shape[1] == bench_logz.CONFIGS["tiny"]["n_seeds"]
    ds.close()
