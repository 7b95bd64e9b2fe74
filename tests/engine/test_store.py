"""The sweep result store: atomic writes, manifest, resume, refusal of a different config."""

import json
import os

import numpy as np
import pytest
import xarray as xr

from thermodl.engine import io
from thermodl.engine.sweep import store


def _ds(values, idx):
    return xr.Dataset({"point_index": ("point", np.asarray(idx, np.int64)),
                       "energy": ("point", np.asarray(values, np.float64))})


def test_config_hash_is_canonical_and_sensitive():
    a = {"model": {"name": "sk", "n": 8}, "sweep": {"beta": [0.1, 0.2]}}
    b = {"sweep": {"beta": [0.1, 0.2]}, "model": {"n": 8, "name": "sk"}}  # same content, other key order
    assert store.config_hash(a) == store.config_hash(b)
    c = {"model": {"name": "sk", "n": 8}, "sweep": {"beta": [0.1, 0.2000001]}}
    assert store.config_hash(a) != store.config_hash(c)
    assert store.unit_key("h", {"points": [1, 2]}) != store.unit_key("h", {"points": [1, 3]})
    assert store.unit_key("h", {"points": [1, 2]}) != store.unit_key("g", {"points": [1, 2]})


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.nc"
    io.write_netcdf(_ds([1.0], [0]), target)
    before = target.read_bytes()

    def boom(self, path, *args, **kwargs):  # write part of a file, then die
        with open(path, "wb") as f:
            f.write(b"partial")
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(RuntimeError, match="mid-write"):
        io.write_netcdf(_ds([2.0], [0]), target)
    assert target.read_bytes() == before  # old content intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc"]  # no temp file left


def test_units_round_trip_and_resume(tmp_path):
    out = tmp_path / "res.nc"
    st = store.SweepStore(out, "abc", "{}")
    assert st.completed() == set()
    st.save_unit("k1", _ds([1.5, 2.5], [0, 1]), {"points": [0, 1]})
    assert st.has_unit("k1")
    xr.testing.assert_identical(st.load_unit("k1"), _ds([1.5, 2.5], [0, 1]))
    manifest = json.loads((tmp_path / "res.nc.parts" / "manifest.json").read_text())
    assert manifest["config_hash"] == "abc" and "k1" in manifest["units"]

    # a unit file written just before a kill that came before the manifest update is adopted on reopen;
    # a temp file left by a kill during a write is removed
    io.write_netcdf(_ds([3.5], [2]), tmp_path / "res.nc.parts" / "unit-k2.nc")
    (tmp_path / "res.nc.parts" / ".unit-k3.nc.xyz.tmp").write_bytes(b"junk")
    st2 = store.SweepStore(out, "abc", "{}")
    assert st2.completed() == {"k1", "k2"}
    assert not list((tmp_path / "res.nc.parts").glob(".*.tmp"))

    # resume=False starts again
    st3 = store.SweepStore(out, "abc", "{}", resume=False)
    assert st3.completed() == set()


def test_refuses_a_different_config_unless_forced(tmp_path):
    out = tmp_path / "res.nc"
    st = store.SweepStore(out, "abc", "{}")
    st.save_unit("k1", _ds([1.0], [0]))
    with pytest.raises(ValueError, match="different sweep config.*force"):
        store.SweepStore(out, "other", "{}")
    st = store.SweepStore(out, "other", "{}", force=True)
    assert st.completed() == set()

    final = _ds([1.0], [0]).assign_attrs(config_hash="other")
    st.finalize(final)
    assert out.exists() and not (tmp_path / "res.nc.parts").exists()
    xr.testing.assert_identical(store.SweepStore(out, "other", "{}").load_final(), final)
    with pytest.raises(ValueError, match="different sweep config"):
        store.SweepStore(out, "third", "{}")
    store.SweepStore(out, "third", "{}", force=True)
    assert not out.exists()


def test_package_versions():
    v = store.package_versions()
    assert set(v) == {"thermodl", "jax", "flax", "numpy", "xarray"}
    assert v["numpy"] == np.__version__


def test_netcdf_engine_round_trips_types(tmp_path):
    ds = xr.Dataset({"a": (("x",), np.arange(3, dtype=np.int64)), "b": (("x",), np.array([0.1, np.nan, 2.0]))},
                    coords={"x": ["p", "q", "r"]}, attrs={"config": '{"a":1}'})
    io.write_netcdf(ds, tmp_path / "t.nc")
    back = io.read_netcdf(tmp_path / "t.nc")
    np.testing.assert_array_equal(back["a"].values, [0, 1, 2])
    np.testing.assert_array_equal(back["b"].values, ds["b"].values)
    assert list(back["x"].values) == ["p", "q", "r"] and back.attrs["config"] == '{"a":1}'
    assert os.listdir(tmp_path) == ["t.nc"]
