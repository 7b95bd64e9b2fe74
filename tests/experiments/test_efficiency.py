"""`thermodl reproduce efficiency`: a tiny end-to-end run writes table, netCDF and figure, and every check passes."""

import csv

import xarray as xr

from thermodl.engine.registry import EXPERIMENTS
from thermodl.experiments import efficiency


def test_registered():
    assert EXPERIMENTS["efficiency"] == "thermodl.experiments.efficiency"
    assert set(efficiency.SIZES) == {"tiny", "quick", "full"}


def test_tiny_run(tmp_path):
    res = efficiency.run(tmp_path, size="tiny", seed=0)
    assert res["n_fail"] == 0, [r["quantity"] for r in res["rows"] if r.get("pass") is False]
    assert res["n_pass"] >= 8
    quantities = [r["quantity"] for r in res["rows"]]
    assert any("Crooks" in r["method"] for r in res["rows"])
    assert any("Jarzynski" in q for q in quantities) and any("MLP" in q for q in quantities)
    with open(res["table_csv"]) as f:
        assert len(list(csv.DictReader(f))) == len(res["rows"])
    ds = xr.open_dataset(res["data"])
    assert ds["eta"].dims == ("system", "K") and "mlp_eta" in ds
    assert "Physica A 632" in ds.attrs["framing"]
    ds.close()
    assert (tmp_path / "results.png").stat().st_size > 0
