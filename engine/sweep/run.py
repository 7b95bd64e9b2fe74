"""Running a sweep: units computed (or resumed from disk), stored atomically, assembled into one dataset.

``run_sweep(config)`` plans the sweep (``engine.sweep.plan``), runs every unit not yet on disk with the programs
of ``engine.sweep.unit_programs``, saves each unit atomically in the store (``engine.sweep.store``), and writes the
final dataset with one dimension per grid axis.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
import xarray as xr

from ..io import canonical_json
from .plan import SweepPlan, Group, describe_plan, model_of, plan_sweep, point_config, public_config, units
from .store import SweepStore, package_versions, unit_key

__all__ = ["run_sweep"]


def _unit_points(plan: SweepPlan, group: Group, ms: np.ndarray, ts: np.ndarray) -> list[list[dict]]:
    return [[point_config(plan, int(group.flat[m, t])) for t in ts] for m in ms]


def _unit_dataset(res: dict[str, np.ndarray], flat: np.ndarray) -> xr.Dataset:
    from .unit_programs import INT_VARS

    data = {"point_index": ("point", flat.ravel().astype(np.int64))}
    for k, v in res.items():
        v = np.asarray(v).ravel()
        data[k] = ("point", v.astype(np.int64) if k in INT_VARS and np.all(np.isfinite(v)) else v.astype(np.float64))
    return xr.Dataset(data)


def _assemble(plan: SweepPlan, parts: list[xr.Dataset]) -> xr.Dataset:
    """One dataset with a dimension per grid axis from the per-point unit datasets."""
    from .unit_programs import INT_VARS

    n = int(np.prod(plan.shape)) if plan.shape else 1
    names = sorted({str(v) for ds in parts for v in ds.data_vars if v != "point_index"},
                   key=lambda v: (v.replace("_stderr", "").replace("_exact", ""), v))
    arrays = {v: np.full(n, np.nan) for v in names}
    for ds in parts:
        idx = ds["point_index"].values
        for v in ds.data_vars:
            if v != "point_index":
                arrays[str(v)][idx] = ds[v].values
    dims = tuple(a.name for a in plan.axes)
    data = {}
    for v, arr in arrays.items():
        if v in INT_VARS and np.all(np.isfinite(arr)):
            arr = arr.astype(np.int64)
        data[v] = (dims, arr.reshape(plan.shape))
    coords = {a.name: (a.name, np.asarray(a.values)) for a in plan.axes}
    versions = package_versions()
    attrs = {
        "title": "thermodl sweep",
        "config": canonical_json(public_config(plan.config)),
        "config_hash": plan.cfg_hash,
        "axes": canonical_json({a.name: {"section": a.section, "key": a.key, "role": a.role} for a in plan.axes}),
        "n_compile_groups": len(plan.groups),
        "conventions": "energy is the total energy E (not per site); <obs>_stderr = standard error over independent "
                       "chains (non-finite chains excluded, counted in nan_chains); *_rhat = split R-hat, *_ess = "
                       "batch-means ESS; log_Z in nats",
        **{f"{k}_version": v for k, v in versions.items()},
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _progress(enabled: bool):
    if not enabled:
        return None
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("points"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=_console(stderr=True))


def run_sweep(config: Any, *, out: str | os.PathLike | None = None, resume: bool = True, dry_run: bool = False,
              progress: bool = True, force: bool = False) -> xr.Dataset:
    """Run a declarative sweep (``thermodl sweep CONFIG.toml``).

    Args:
        config: TOML path, TOML string or dict (see the module docstring).
        out: output netCDF path (default ``[output] path``).
        resume: reuse the completed units of an interrupted run of the same config (False: recompute).
        dry_run: only print the grid, the compile groups with their point counts and a device-memory estimate
            per unit; nothing is run or written.
        progress: show rich progress bars (per compile group and overall, with ETA).
        force: overwrite the results of a different config at ``out``.

    Returns:
        the result ``xarray.Dataset`` (dims = grid axes; for a dry run: coordinates only, the plan in attrs).

    Raises:
        ValueError: bad config, missing output path, a different config's results at ``out`` (without force).
    """
    from .. import sharding
    from .unit_programs import run_ensemble_unit, run_looped_unit

    plan = plan_sweep(config)
    mesh = sharding.chain_mesh()
    first_models = [model_of(point_config(plan, int(g.flat[0, 0]))) for g in plan.groups]  # validates early
    for g, model in zip(plan.groups, first_models):
        pt = point_config(plan, int(g.flat[0, 0]))
        if pt["estimator"]["method"] == "ensemble":
            from ..kernel_binding import make_sampler

            make_sampler(model, pt["sampler"]["kernel"], **{k: v for k, v in pt["sampler"].items()
                                                             if k not in ("kernel", "step_size", "adapt")})
    if dry_run:
        text = describe_plan(plan, first_models, mesh)
        _print(text)
        coords = {a.name: (a.name, np.asarray(a.values)) for a in plan.axes}
        return xr.Dataset(coords=coords, attrs={"plan": text, "config_hash": plan.cfg_hash})
    out = out if out is not None else plan.config["output"].get("path")
    if not out:
        raise ValueError("no output path: pass out=... (CLI: --out) or set [output] path in the config")
    st = SweepStore(out, plan.cfg_hash, canonical_json(public_config(plan.config)), resume=resume,
                          force=force)
    if resume:
        done = st.load_final()
        if done is not None:
            return done
    bar = _progress(progress)
    total = int(np.prod(plan.shape)) if plan.shape else 1
    keys = []
    with bar if bar is not None else contextlib.nullcontext():
        overall = bar.add_task("all groups", total=total) if bar else None
        for g in plan.groups:
            label = ", ".join(f"{k}={v}" for k, v in g.static.items()) or "group"
            task = bar.add_task(f"  {label}", total=g.flat.size) if bar else None
            for ms, ts in units(g):
                flat = g.flat[np.ix_(ms, ts)]
                key = unit_key(plan.cfg_hash, {"group": g.index, "points": flat.ravel().tolist()})
                keys.append(key)
                if not st.has_unit(key):
                    pts = _unit_points(plan, g, ms, ts)
                    if pts[0][0]["estimator"]["method"] == "ensemble":
                        res = run_ensemble_unit(pts, g.m_chunk, g.t_chunk, model_of, mesh)
                    else:
                        res = run_looped_unit(pts, model_of)
                    st.save_unit(key, _unit_dataset(res, flat), {"group": g.index, "points": flat.ravel().tolist()})
                if bar:
                    bar.advance(task, flat.size)
                    bar.advance(overall, flat.size)
    st.finalize(_assemble(plan, [st.load_unit(k) for k in keys]), keep_parts=plan.config["output"]["keep_parts"])
    return st.load_final()


def _console(stderr: bool = False):
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, highlight=False, width=None if stream.isatty() else 200)


def _print(text: str) -> None:
    _console().print(text, markup=False)

