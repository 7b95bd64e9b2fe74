"""`thermodl reproduce rbm-digits`: binarised digits, and a tiny end-to-end run (PCD training of a small and a
large RBM, AIS and SMC log Z vs exact for the small one, AIS vs SMC for the large one)."""

import csv
import math

import numpy as np
import pytest
import xarray as xr

from thermodl.experiments import rbm_digits


def test_binary_digits_are_spins_with_a_disjoint_split():
    train, test = rbm_digits.load_binary_digits(0)
    assert train.shape[1] == test.shape[1] == 64 and train.shape[0] + test.shape[0] == 1797
    assert set(np.unique(train)) == {-1.0, 1.0} and set(np.unique(test)) == {-1.0, 1.0}


def test_unknown_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        rbm_digits.run(tmp_path, size="huge")


def test_tiny_run_writes_table_data_and_figure(tmp_path):
    res = rbm_digits.run(tmp_path, size="tiny", seed=0)
    for k in ("figure", "table_md", "table_csv", "data"):
        assert (tmp_path / res[k].split("/")[-1]).exists()
    cfg = rbm_digits._SIZES["tiny"]
    rows = res["rows"]
    small = [r for r in rows if r["quantity"] == f"log Z, RBM 64-{cfg['n_small']}"]
    assert sorted(r["method"] for r in small) == ["ais", "smc"]
    # fixed seed: both estimators within 3 stderr of the exact log Z, and they say they are reliable
    assert all(r["pass"] and r["stderr"] > 0 and r["reliable"] for r in small)
    exact_ll = next(r for r in rows if r["method"] == "exact")
    assert -64 * math.log(2.0) < exact_ll["measured"] < 0
    ll_checks = [r for r in rows if "per digit" in r["quantity"] and r.get("pass") is not None]
    assert len(ll_checks) == 2 and all(r["pass"] for r in ll_checks)
    agree = next(r for r in rows if "agree" in r["quantity"])
    assert agree["pass"] and agree["n_hidden"] == cfg["n_large"] > 20
    large_ll = [r for r in rows if f"64-{cfg['n_large']} (" in r["quantity"] and "per digit" in r["quantity"]]
    assert len(large_ll) == 2 and all(r["stderr"] > 0 and r["test_sampling_stderr"] > 0 for r in large_ll)
    with open(res["table_csv"]) as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    ds = xr.open_dataset(res["data"])
    assert ds["ll_test_small"].shape == (len(cfg["steps"]),)
    assert ds["log_z_large"].shape == (2,)
    # training helped: the final exact test log-likelihood is above the initial one
    assert ds["ll_test_small"][-1] > ds["ll_test_small"][0]
    ds.close()
