"""Declarative parameter sweeps: TOML config → grid → compile groups → batched, sharded, resumable runs.

A sweep config (TOML file or dict) has the sections ``[model]``, ``[data]``, ``[sampler]``, ``[estimator]``,
``[sweep]`` and ``[output]``; any scalar may instead be a grid axis: a list, ``{linspace=[a, b, n]}``,
``{logspace=[a, b, n]}`` (10^a … 10^b), ``{geomspace=[a, b, n]}`` or ``{range=[start, stop(, step)]}``::

    [model]
    name = "sk"
    n = [8, 12]                     # static: changes shapes -> one compile group per value
    [sweep]
    beta = {linspace = [0.2, 2.0, 10]}
    seed = [0, 1, 2, 3]             # disorder seeds -> stacked models, batched
    [estimator]
    method = "ensemble"             # | "ais" | "pt" | "ti" | "exact" | "thermodynamics"
    n_chains = 64
    n_steps = 2000
    [output]
    path = "sk.nc"

The full grid is the Cartesian product of all axes. Axes are classified (``AXIS_ROLES``):

* **static** — sizes, model name, kernel, method, budgets: a new value may change shapes or the program, so
  every combination of static values is a *compile group*, compiled once;
* **model** — values that only change the model's numbers (disorder ``seed``, J, h, σ_w; see
  ``factories.traced_params``): the models of a group are stacked (``models.stack_models``) along a disorder
  axis;
* **point** — β, the step size and the sampling seed (``[estimator] seed``): traced scalars per point.

A group is the rectangle [model variants × points]; it is cut into *units* of about ``[output] unit_size`` grid
points (padded to one shape, so each group compiles exactly once). For ``method="ensemble"`` a unit runs as ONE
call of one jitted program over (disorder × points × chains) lanes, the chain axis sharded over all local
devices (``engine.sharding``). The log-Z methods (``ais``, ``pt``, ``ti``, ``exact``) and ``thermodynamics``
loop over the unit's points calling the engine's estimators, whose compiled functions take the model and β as
traced arguments (compiled once per group too).

Randomness: point p gets the key fold_in(fold_in(key(0), h₀), h₁) with (h₀, h₁) a hash of p's full parameter
set (including ``[estimator] seed``), and chain c of it fold_in(·, c) with the GLOBAL chain index: results
depend neither on the unit layout, nor on the number of devices, nor on which other points the grid holds.

Each unit is written atomically into ``OUT.parts/`` (``engine.store``); a killed sweep resumes from the units on
disk; the final dataset (netCDF, h5netcdf) has one dimension per grid axis, every observable with its
``<obs>_stderr`` and diagnostics, and attrs with the config (JSON) and the package versions.
"""

from __future__ import annotations

import copy
import itertools
import os
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from . import factories, store
from .sweep_config import METHODS, SECTIONS, load_config, normalize_config, values

__all__ = [
    "METHODS",
    "Axis",
    "Group",
    "SweepPlan",
    "load_config",
    "normalize_config",
    "plan_sweep",
    "run_sweep",
    "point_config",
    "units",
    "describe_plan",
]


class Axis(NamedTuple):
    """One grid axis: dataset dimension ``name`` from ``[section] key``; ``role`` static | model | point."""

    name: str
    section: str
    key: str
    values: tuple
    role: str


class Group(NamedTuple):
    """A compile group: fixed static values; a rectangle of model variants × points.

    Fields:
        index: group number.
        static: {axis name: value} of the static axes.
        flat: int64 [M, T] — global flat grid index of (model variant m, point t).
        model_axes, point_axes: names of the model / point axes (row-major within M and T).
        m_chunk, t_chunk: unit block shape (units are padded to it).
    """

    index: int
    static: dict
    flat: np.ndarray
    model_axes: tuple
    point_axes: tuple
    m_chunk: int
    t_chunk: int


class SweepPlan(NamedTuple):
    """Everything ``run_sweep`` needs: normalised config, axes, grid shape, groups, config hash."""

    config: dict
    axes: tuple
    shape: tuple
    groups: tuple
    cfg_hash: str


# ----------------------------------------------------------------------------------------------- plan
def _role(section: str, key: str, names: list) -> str:
    if section in ("model", "data"):
        if key != "name" and all(key in factories.traced_params(n) for n in names):
            return "model"
        return "static"
    return {("sweep", "seed"): "model", ("sweep", "beta"): "point", ("sampler", "step_size"): "point",
            ("estimator", "seed"): "point"}.get((section, key), "static")


def _axes(cfg: dict) -> tuple[Axis, ...]:
    names = values(cfg["model"]["name"])
    entries = [(sec, k, v) for sec in SECTIONS[:-1] for k, v in cfg[sec].items() if isinstance(v, list)]
    count = {}
    for _, k, _v in entries:
        count[k] = count.get(k, 0) + 1
    axes = []
    for sec, k, v in entries:
        name = k if count[k] == 1 else f"{sec}_{k}"
        vals = tuple(int(x) if isinstance(x, bool) else x for x in v)
        axes.append(Axis(name, sec, k, vals, _role(sec, k, names)))
    return tuple(axes)


def _public_config(cfg: dict) -> dict:
    """The config without the output path (which does not change the results)."""
    out = copy.deepcopy(cfg)
    out["output"].pop("path", None)
    return out


def plan_sweep(config: Any) -> SweepPlan:
    """Parse and validate a sweep config and lay out its grid, compile groups and units.

    Args:
        config: path of a TOML file, a TOML string, or a dict.
    Returns:
        ``SweepPlan``.
    Raises:
        ValueError: bad config (one message naming the bad key or value).
    """
    cfg = normalize_config(load_config(config))
    axes = _axes(cfg)
    shape = tuple(len(a.values) for a in axes)
    roles = {r: [i for i, a in enumerate(axes) if a.role == r] for r in ("static", "model", "point")}
    unit = cfg["output"]["unit_size"]
    groups = []
    for gi, s_idx in enumerate(itertools.product(*(range(shape[i]) for i in roles["static"]))):
        m_combos = list(itertools.product(*(range(shape[i]) for i in roles["model"])))
        t_combos = list(itertools.product(*(range(shape[i]) for i in roles["point"])))
        flat = np.empty((len(m_combos), len(t_combos)), np.int64)
        idx = [0] * len(axes)
        for i, v in zip(roles["static"], s_idx):
            idx[i] = v
        for m, mc in enumerate(m_combos):
            for i, v in zip(roles["model"], mc):
                idx[i] = v
            for t, tc in enumerate(t_combos):
                for i, v in zip(roles["point"], tc):
                    idx[i] = v
                flat[m, t] = np.ravel_multi_index(idx, shape) if axes else 0
        static = {axes[i].name: axes[i].values[v] for i, v in zip(roles["static"], s_idx)}
        method = _point(cfg, axes, shape, int(flat[0, 0]))["estimator"]["method"]
        T, M = flat.shape[1], flat.shape[0]
        t_chunk = T if method == "thermodynamics" else min(T, unit)
        m_chunk = min(M, max(1, unit // t_chunk))
        groups.append(Group(gi, static, flat, tuple(axes[i].name for i in roles["model"]),
                            tuple(axes[i].name for i in roles["point"]), m_chunk, t_chunk))
    return SweepPlan(cfg, axes, shape, tuple(groups), store.config_hash(_public_config(cfg)))


def _point(cfg: dict, axes, shape, flat: int) -> dict:
    """The scalar config of grid point ``flat``: {section: {key: value}}."""
    pt = {sec: {k: v for k, v in body.items() if not isinstance(v, list)} for sec, body in cfg.items()}
    if axes:
        for a, i in zip(axes, np.unravel_index(flat, shape)):
            pt[a.section][a.key] = a.values[int(i)]
    return pt


def point_config(plan: SweepPlan, flat: int) -> dict:
    """The scalar config {section: {key: value}} of the grid point with flat index ``flat``."""
    return _point(plan.config, plan.axes, plan.shape, flat)


def _model_of(pt: dict):
    params = {k: v for k, v in {**pt["model"], **pt["data"]}.items() if k != "name"}
    name = pt["model"]["name"]
    if "seed" in factories.model_params(name):
        params["seed"] = pt["sweep"]["seed"]
    return factories.build_model(name, params)


def units(group: Group) -> list[tuple[np.ndarray, np.ndarray]]:
    """The units of ``group``: (model-variant indices [≤ m_chunk], point indices [≤ t_chunk]) blocks."""
    M, T = group.flat.shape
    return [(np.arange(m0, min(m0 + group.m_chunk, M)), np.arange(t0, min(t0 + group.t_chunk, T)))
            for m0 in range(0, M, group.m_chunk) for t0 in range(0, T, group.t_chunk)]


# ----------------------------------------------------------------------------------------------- run
def _unit_points(plan: SweepPlan, group: Group, ms: np.ndarray, ts: np.ndarray) -> list[list[dict]]:
    return [[point_config(plan, int(group.flat[m, t])) for t in ts] for m in ms]


def _unit_dataset(res: dict[str, np.ndarray], flat: np.ndarray) -> xr.Dataset:
    from .sweep_programs import INT_VARS

    data = {"point_index": ("point", flat.ravel().astype(np.int64))}
    for k, v in res.items():
        v = np.asarray(v).ravel()
        data[k] = ("point", v.astype(np.int64) if k in INT_VARS and np.all(np.isfinite(v)) else v.astype(np.float64))
    return xr.Dataset(data)


def _assemble(plan: SweepPlan, parts: list[xr.Dataset]) -> xr.Dataset:
    """One dataset with a dimension per grid axis from the per-point unit datasets."""
    from .sweep_programs import INT_VARS

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
    versions = store.package_versions()
    attrs = {
        "title": "thermodl sweep",
        "config": store.canonical_json(_public_config(plan.config)),
        "config_hash": plan.cfg_hash,
        "axes": store.canonical_json({a.name: {"section": a.section, "key": a.key, "role": a.role} for a in plan.axes}),
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
    from . import sharding
    from .sweep_programs import run_ensemble_unit, run_looped_unit

    plan = plan_sweep(config)
    mesh = sharding.chain_mesh()
    first_models = [_model_of(point_config(plan, int(g.flat[0, 0]))) for g in plan.groups]  # validates early
    for g, model in zip(plan.groups, first_models):
        pt = point_config(plan, int(g.flat[0, 0]))
        if pt["estimator"]["method"] == "ensemble":
            from .samplers import make_sampler

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
    st = store.SweepStore(out, plan.cfg_hash, store.canonical_json(_public_config(plan.config)), resume=resume,
                          force=force)
    if resume:
        done = st.load_final()
        if done is not None:
            return done
    bar = _progress(progress)
    total = int(np.prod(plan.shape)) if plan.shape else 1
    keys = []
    with bar if bar is not None else _nullcontext():
        overall = bar.add_task("all groups", total=total) if bar else None
        for g in plan.groups:
            label = ", ".join(f"{k}={v}" for k, v in g.static.items()) or "group"
            task = bar.add_task(f"  {label}", total=g.flat.size) if bar else None
            for ms, ts in units(g):
                flat = g.flat[np.ix_(ms, ts)]
                key = store.unit_key(plan.cfg_hash, {"group": g.index, "points": flat.ravel().tolist()})
                keys.append(key)
                if not st.has_unit(key):
                    pts = _unit_points(plan, g, ms, ts)
                    if pts[0][0]["estimator"]["method"] == "ensemble":
                        res = run_ensemble_unit(pts, g.m_chunk, g.t_chunk, _model_of, mesh)
                    else:
                        res = run_looped_unit(pts, _model_of)
                    st.save_unit(key, _unit_dataset(res, flat), {"group": g.index, "points": flat.ravel().tolist()})
                if bar:
                    bar.advance(task, flat.size)
                    bar.advance(overall, flat.size)
    st.finalize(_assemble(plan, [st.load_unit(k) for k in keys]), keep_parts=plan.config["output"]["keep_parts"])
    return st.load_final()


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _console(stderr: bool = False):
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, highlight=False, width=None if stream.isatty() else 200)


def _print(text: str) -> None:
    _console().print(text, markup=False)


def _short(values: tuple) -> str:
    vals = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in values]
    return ", ".join(vals) if len(vals) <= 6 else ", ".join(vals[:3]) + f", …, {vals[-1]} ({len(vals)} values)"


def describe_plan(plan: SweepPlan, first_models: list | None = None, mesh=None) -> str:
    """The dry-run text: grid axes, compile groups with point/unit counts and device memory per unit."""
    from . import sharding
    from .sweep_programs import memory_estimate

    mesh = mesh if mesh is not None else sharding.chain_mesh()
    n_dev = mesh.devices.size
    total = int(np.prod(plan.shape)) if plan.shape else 1
    lines = [f"sweep {plan.cfg_hash}: {total} points, {len(plan.groups)} compile group(s), "
             f"devices: {sharding.describe_mesh(mesh)}", "grid axes:"]
    for a in plan.axes:
        lines.append(f"  {a.name:<16} [{a.section}] {a.role:<6} ({len(a.values)}): {_short(a.values)}")
    if not plan.axes:
        lines.append("  (none: a single point)")
    lines.append("compile groups (one compiled program each; model variants × points, cut into units):")
    for i, g in enumerate(plan.groups):
        pt = point_config(plan, int(g.flat[0, 0]))
        model = first_models[i] if first_models else _model_of(pt)
        nbytes, how = memory_estimate(pt, model, g.m_chunk, g.t_chunk, n_dev)
        static = ", ".join(f"{k}={v}" for k, v in g.static.items()) or "(no static axes)"
        lines.append(f"  #{i}: {static} — method {pt['estimator']['method']}, {g.flat.shape[0]} model variant(s) × "
                     f"{g.flat.shape[1]} point(s) = {g.flat.size} points in {len(units(g))} unit(s) of "
                     f"≤ {g.m_chunk}×{g.t_chunk}; ≈ {nbytes / 2**20:.3g} MiB/device (one unit at a time) [{how}]")
    return "\n".join(lines)
