"""Declarative sweeps: config validation, grid and compile groups, one compilation per group, results vs exact
enumeration, independence of the unit layout, the dataset on disk, refusal of a changed config, resume after
SIGKILL."""

import collections
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import xarray as xr
from scipy import stats

from thermodl.engine import catalog, io, sweep
from thermodl.engine.sweep import plan as sweep_plan
from thermodl.engine.sweep import unit_programs

# Every XLA compilation in this process (tracing counters only see our own programs; this sees everything:
# model building, estimators, exact references).
_EVENTS: collections.Counter = collections.Counter()
jax.monitoring.register_event_duration_secs_listener(lambda event, duration, **kw: _EVENTS.update([event]))
_COMPILE = "/jax/core/compile/backend_compile_duration"

# The static configuration of test_one_compilation_per_group...: no other test may compile it first (the
# test counts traces of the sweep program).
BASE = {
    "model": {"name": "sk", "n": [6, 8]},
    "sweep": {"beta": [0.3, 0.9, 1.5], "disorder_seed": [0, 1]},
    "estimator": {"method": "ensemble", "n_chains": 32, "n_steps": 200, "n_warmup": 50, "compare_exact": True},
    "output": {"unit_size": 3},
}


def _cfg(**sections):
    cfg = json.loads(json.dumps(BASE))
    for sec, body in sections.items():
        cfg.setdefault(sec, {}).update(body)
    return cfg


# ------------------------------------------------------------------------------------------ config errors
@pytest.mark.parametrize("patch, match", [
    ({"modle": {"name": "sk"}}, "unknown config section.*'modle'"),
    ({"model": {"name": "spinglass"}}, "unknown model 'spinglass'"),
    ({"model": {"name": "sk", "n": 0}}, "sk.n must be a positive integer, got 0"),
    ({"model": {"name": "sk", "n": [8, -2]}}, "sk.n must be a positive integer, got -2"),
    ({"model": {"name": "sk", "spins": 8}}, "unknown parameter.*'spins'.*model 'sk'"),
    ({"sweep": {"beta": [0.5, -0.1]}}, "sweep.beta must be finite and >= 0, got -0.1"),
    ({"sweep": {"beta": {"linspace": [0.1, 1.0]}}}, r"linspace needs \[start, stop, n\]"),
    ({"sweep": {"beta": {"linspace": [0.1, 1.0, 0]}}}, "n must be a positive integer, got 0"),
    ({"sweep": {"beta": {"arange": [0, 1, 0.1]}}}, "a table value must be one of"),
    ({"sweep": {"beta": []}}, "at least one value"),
    ({"sweep": {"temperature": 1.0}}, r"unknown key.*'temperature'.*\[sweep\]"),
    ({"estimator": {"method": "mcmc"}}, "unknown method 'mcmc'; choose one of: ensemble, ais"),
    ({"estimator": {"n_chains": 0}}, "estimator.n_chains must be a positive integer, got 0"),
    ({"estimator": {"n_temperatures": 10}}, r"unknown key.*'n_temperatures'.*method 'ensemble'"),
    ({"estimator": {"method": "ais", "n_steps": 10}}, r"unknown key.*'n_steps'.*method 'ais'"),
    ({"sampler": {"kernal": "hmc"}}, r"unknown key.*'kernal'.*\[sampler\]"),
    ({"sampler": {"step_size": -1.0}}, "step_size must be finite and > 0"),
    ({"output": {"path": ["a.nc", "b.nc"]}}, "cannot be grid axes"),
    ({"model": {"name": "sk", "n": 8, "disorder_seed": 1}, "sweep": {"beta": 1.0, "disorder_seed": 2}},
     "disorder_seed is given in"),
    ({"sweep": {"beta": 1.0, "seed": 1, "disorder_seed": 2}}, "both seed and disorder_seed"),
])
def test_bad_config_raises_one_clear_error(patch, match):
    cfg = {**json.loads(json.dumps(BASE)), **patch}  # each patched section replaces BASE's
    with pytest.raises(ValueError, match=match):
        sweep.plan_sweep(cfg)


def test_disorder_seed_and_monte_carlo_seed_never_mix():
    """[sweep] disorder_seed alone draws the couplings; [estimator] seed (Monte Carlo) never changes the model;
    the old spelling [sweep] seed is read as disorder_seed (FutureWarning), giving the same plan."""
    plan = sweep.plan_sweep({"model": {"name": "sk", "n": 6}, "sweep": {"beta": 1.0, "disorder_seed": [0, 1]},
                             "estimator": {"seed": [0, 7]}})
    assert {a.name: a.role for a in plan.axes} == {"seed": "point", "disorder_seed": "model"}
    models = {}
    for flat in range(4):
        pt = sweep.point_config(plan, flat)
        models[pt["sweep"]["disorder_seed"], pt["estimator"]["seed"]] = np.asarray(sweep_plan.model_of(pt).J)
    np.testing.assert_array_equal(models[0, 0], models[0, 7])
    np.testing.assert_array_equal(models[1, 0], models[1, 7])
    assert not np.array_equal(models[0, 0], models[1, 0])
    with pytest.warns(FutureWarning, match=r"\[sweep\] seed is the old name of the disorder seed"):
        old = sweep.plan_sweep({"model": {"name": "sk", "n": 6}, "sweep": {"beta": 1.0, "seed": [0, 1]},
                                "estimator": {"seed": [0, 7]}})
    assert old.cfg_hash == plan.cfg_hash and old.axes == plan.axes


def test_bad_kernel_for_model_and_missing_output_path(tmp_path):
    with pytest.raises(ValueError, match="kernel 'hmc' needs a continuous model"):
        sweep.run_sweep(_cfg(sampler={"kernel": "hmc"}), out=tmp_path / "x.nc", progress=False)
    with pytest.raises(ValueError, match="no output path"):
        sweep.run_sweep(_cfg(), progress=False)
    with pytest.raises(ValueError, match="does not exist"):
        sweep.run_sweep(tmp_path / "missing.toml")
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------ grid & groups
def test_plan_axes_roles_groups_and_units():
    toml = textwrap.dedent("""
        [model]
        name = "ising2d"
        L = [4, 6]
        J = [1.0, 0.5]
        [sampler]
        kernel = ["heat_bath", "block_gibbs"]
        [estimator]
        seed = [0, 1]
        [sweep]
        beta = {linspace = [0.2, 1.0, 5]}
        disorder_seed = {range = [3]}
        [output]
        unit_size = 4
    """)
    plan = sweep.plan_sweep(toml)
    roles = {a.name: a.role for a in plan.axes}
    assert roles == {"L": "static", "J": "model", "kernel": "static", "seed": "point",
                     "beta": "point", "disorder_seed": "model"}
    assert plan.shape == (2, 2, 2, 2, 5, 3)
    np.testing.assert_allclose(dict(zip([a.name for a in plan.axes], [a.values for a in plan.axes]))["beta"],
                               np.linspace(0.2, 1.0, 5))
    assert len(plan.groups) == 4  # L × kernel
    seen = np.concatenate([g.flat.ravel() for g in plan.groups])
    np.testing.assert_array_equal(np.sort(seen), np.arange(np.prod(plan.shape)))  # every point exactly once
    g = plan.groups[0]
    assert g.flat.shape == (2 * 3, 2 * 5) and (g.m_chunk, g.t_chunk) == (1, 4)
    blocks = sweep.units(g)
    assert sum(len(m) * len(t) for m, t in blocks) == g.flat.size
    pt = sweep.point_config(plan, int(g.flat[1, 3]))
    assert pt["model"]["L"] == 4 and pt["sampler"]["kernel"] == "heat_bath"
    assert pt["sweep"]["beta"] == pytest.approx(0.8)


def test_catalog_traced_parameters_keep_the_signature():
    sig = catalog.model_signature
    sk0, sk5 = catalog.build_model("sk", {"n": 6, "disorder_seed": 0}), catalog.build_model("sk", {"n": 6, "disorder_seed": 5})
    assert sig(sk0) == sig(sk5) and not np.array_equal(sk0.J, sk5.J)
    assert sig(catalog.build_model("sk", {"n": 6})) != sig(catalog.build_model("sk", {"n": 8}))
    a, b = catalog.build_model("ising2d", {"L": 4, "J": 1.0}), catalog.build_model("ising2d", {"L": 4, "J": 0.3})
    assert sig(a) == sig(b) and float(b.J) == pytest.approx(0.3)
    for name in catalog.model_names():
        assert catalog.traced_params(name) <= set(catalog.model_params(name))
    with pytest.raises(ValueError, match="unknown parameter"):
        catalog.build_model("ising2d", {"L": 4, "n": 3})


# ------------------------------------------------------------------------------------------ running
def test_one_compilation_per_group_and_none_for_new_numbers(tmp_path):
    before = unit_programs.TRACE_COUNTS["chunk"]
    ds = sweep.run_sweep(_cfg(), out=tmp_path / "a.nc", progress=False)
    assert unit_programs.TRACE_COUNTS["chunk"] - before == 2  # n = 6 and n = 8; 2 units each
    # new β values and disorder seeds (traced numbers) with the same shapes: no new compilation
    mid, compiles = unit_programs.TRACE_COUNTS["chunk"], _EVENTS[_COMPILE]
    ds2 = sweep.run_sweep(_cfg(sweep={"beta": [0.2, 0.7, 1.1], "disorder_seed": [7, 9]}), out=tmp_path / "b.nc",
                          progress=True)
    assert unit_programs.TRACE_COUNTS["chunk"] == mid
    assert _EVENTS[_COMPILE] == compiles  # nothing at all was compiled again (models, exact references, ...)
    assert not np.allclose(ds.energy.values, ds2.energy.values)

    # the dataset: a coordinate per axis, stderr and diagnostics beside each observable, provenance attrs
    assert ds.energy.dims == ("n", "beta", "disorder_seed") and ds.energy.shape == (2, 3, 2)
    np.testing.assert_allclose(ds.beta.values, [0.3, 0.9, 1.5])
    for v in ("energy", "specific_heat", "abs_magnetization", "magnetization_sq", "binder_cumulant"):
        assert f"{v}_stderr" in ds and np.all(ds[f"{v}_stderr"].values > 0)
    for v in ("energy_rhat", "energy_ess", "acceptance", "nan_chains", "n_divergent"):
        assert v in ds
    assert np.all(ds.nan_chains.values == 0) and np.all(ds.energy_rhat.values < 1.1)
    assert json.loads(ds.attrs["config"]) == sweep_plan.public_config(sweep.plan_sweep(_cfg()).config)
    for pkg in ("thermodl", "jax", "flax", "numpy", "xarray"):
        assert ds.attrs[f"{pkg}_version"]
    xr.testing.assert_identical(io.read_netcdf(tmp_path / "a.nc"), ds)
    assert not (tmp_path / "a.nc.parts").exists()

    # the numbers: SK N=6, 8 (2 disorder samples, 3 temperatures) vs enumeration, z-scores from the reported
    # stderr, χ² over all 24 values of ⟨E⟩ and C (a sampler at a wrong β gives |z| ≫ 3)
    z = np.concatenate([((ds[v] - ds[f"{v}_exact"]) / ds[f"{v}_stderr"]).values.ravel()
                        for v in ("energy", "specific_heat")])
    assert np.all(np.abs(z) < 4.5), z
    assert stats.chi2.sf(np.sum(z**2), z.size) > 1e-3, z

    # a finished sweep is loaded, not recomputed
    again = sweep.run_sweep(_cfg(), out=tmp_path / "a.nc", progress=False)
    xr.testing.assert_identical(again, ds)
    assert unit_programs.TRACE_COUNTS["chunk"] == mid

    # a different config with the same output path is refused unless forced
    with pytest.raises(ValueError, match="different sweep config.*force"):
        sweep.run_sweep(_cfg(sweep={"beta": [1.5, 0.9, 0.4], "disorder_seed": [1, 0]}), out=tmp_path / "a.nc",
                        progress=False)
    # reordered and extended grid: every point sits elsewhere in its unit (or in another unit), yet the points
    # common to both grids are bitwise equal: keys come from each point's own parameters, lanes are independent
    ds3 = sweep.run_sweep(_cfg(sweep={"beta": [1.5, 0.9, 0.4], "disorder_seed": [1, 0]}), out=tmp_path / "a.nc",
                          progress=False, force=True)
    assert unit_programs.TRACE_COUNTS["chunk"] == mid
    common = dict(beta=[0.9, 1.5], disorder_seed=[0, 1])
    xr.testing.assert_equal(ds3.sel(common), ds.sel(common))


def test_exact_method_and_dry_run(tmp_path, capsys):
    cfg = {"model": {"name": "ising2d", "L": [2, 4]}, "sweep": {"beta": [0.2, 0.44]},
           "estimator": {"method": "exact"}, "output": {"path": str(tmp_path / "ex.nc")}}
    plan = sweep.run_sweep(cfg, dry_run=True)
    out = capsys.readouterr().out
    assert "2 compile group(s)" in out and "MiB/device" in out and "L=4" in out
    assert not list(tmp_path.iterdir()) and list(plan.coords) == ["L", "beta"]
    ds = sweep.run_sweep(cfg, progress=False)
    model = catalog.build_model("ising2d", {"L": 4})
    assert ds.log_Z.sel(L=4, beta=0.44).item() == pytest.approx(float(model.exact_log_partition(0.44)), rel=1e-6)
    # and the 2×2 torus against brute force
    from thermodl.models.base import enumerate_states
    m2 = catalog.build_model("ising2d", {"L": 2})
    e = np.array([float(m2.energy(s)) for s in enumerate_states(4)])
    np.testing.assert_allclose(ds.log_Z.sel(L=2).values, [np.log(np.exp(-b * e).sum()) for b in (0.2, 0.44)],
                               rtol=1e-6)


def test_example_configs_plan_and_dry_run(capsys):
    configs = {p.stem: p for p in (Path(sweep.__file__).parents[2] / "experiments" / "configs").glob("*.toml")}
    assert set(configs) >= {"sk", "ising", "perceptron"}
    for path in configs.values():
        assert sweep.plan_sweep(path).groups
    ds = sweep.run_sweep(configs["sk"], dry_run=True)
    assert "2 compile group(s)" in capsys.readouterr().out and ds.attrs["config_hash"]


@pytest.mark.slow
def test_looped_estimators_compile_once_and_match_exact(tmp_path):
    """AIS and PT through a sweep: log Z vs enumeration within the reported errors; a second sweep with new β
    values and disorder seeds compiles nothing; thermodynamics (TI) fills U, C, log Z per β."""
    cfg = {"model": {"name": "sk", "n": 8}, "sweep": {"beta": [0.5, 1.2], "disorder_seed": [0, 1]},
           "estimator": {"method": ["ais", "pt"], "n_chains": 32, "compare_exact": True}}
    ds = sweep.run_sweep(cfg, out=tmp_path / "a.nc", progress=False)
    assert ds.log_Z.dims == ("method", "beta", "disorder_seed") and "log_Z_stderr" in ds and "ess" in ds
    z = ds.z_score.values.ravel()
    assert np.all(np.abs(z) < 4.5) and stats.chi2.sf(np.sum(z**2), z.size) > 1e-3, z
    compiles = _EVENTS[_COMPILE]
    cfg2 = {**cfg, "sweep": {"beta": [0.6, 1.1], "disorder_seed": [3, 4]}}
    sweep.run_sweep(cfg2, out=tmp_path / "b.nc", progress=False)
    assert _EVENTS[_COMPILE] == compiles

    th = sweep.run_sweep({"model": {"name": "ising2d", "L": 4}, "sweep": {"beta": [0.1, 0.3, 0.5]},
                          "estimator": {"method": "thermodynamics", "via": "ti", "n_chains": 16, "n_steps": 200}},
                         out=tmp_path / "t.nc", progress=False)
    exact = np.array([float(catalog.build_model("ising2d", {"L": 4}).exact_log_partition(b)) for b in th.beta.values])
    assert np.all(np.abs((th.log_Z.values - exact) / th.log_Z_stderr.values) < 4.5)
    assert {"U", "U_stderr", "C", "C_stderr", "S", "F"} <= set(th.data_vars)


# ------------------------------------------------------------------------------------------ resume after SIGKILL
_SCRIPT = """
import sys
from thermodl.engine.sweep import run_sweep
run_sweep(sys.argv[1], out=sys.argv[2], progress=False)
"""

_RESUME_TOML = """
[model]
name = "sk"
n = 6
[sweep]
beta = {linspace = [0.2, 1.6, 8]}
disorder_seed = [0, 1, 2, 3, 4]
[estimator]
n_chains = 8
n_steps = 400
n_warmup = 50
[output]
unit_size = 1
"""


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path, monkeypatch):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(_RESUME_TOML)
    out = tmp_path / "killed.nc"
    parts = Path(str(out) + ".parts")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(cfg), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("unit-*.nc"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(random.Random(1).uniform(0.0, 0.3))  # at a random moment, possibly mid-write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read().decode()[-2000:]
    assert not out.exists()
    n_done = len(list(parts.glob("unit-*.nc")))
    assert 2 <= n_done < 40

    computed = []
    real = unit_programs.run_ensemble_unit
    monkeypatch.setattr(unit_programs, "run_ensemble_unit",
                        lambda pts, *a, **k: computed.append(len(pts)) or real(pts, *a, **k))
    resumed = sweep.run_sweep(cfg, out=out, progress=False)
    assert len(computed) == 40 - n_done  # completed units were loaded, never recomputed
    monkeypatch.setattr(unit_programs, "run_ensemble_unit", real)
    reference = sweep.run_sweep(cfg, out=tmp_path / "reference.nc", progress=False)
    xr.testing.assert_identical(resumed, reference)
