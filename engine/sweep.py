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
import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from . import factories, store
from .validate import check_beta, check_choice, check_nonnegative_int, check_positive_int

__all__ = [
    "METHODS",
    "Axis",
    "Group",
    "SweepPlan",
    "load_config",
    "normalize_config",
    "plan_sweep",
    "run_sweep",
    "describe_plan",
]

METHODS = ("ensemble", "ais", "pt", "ti", "exact", "thermodynamics")
SECTIONS = ("model", "data", "sampler", "estimator", "sweep", "output")
GRID_SPECS = ("linspace", "logspace", "geomspace", "range")
SAMPLER_KEYS = ("kernel", "step_size", "adapt", "num_integration_steps", "inverse_mass", "batch_size")
ESTIMATOR_KEYS = ("method", "n_chains", "n_steps", "n_warmup", "chain_block", "seed", "compare_exact")
SWEEP_KEYS = ("beta", "seed")
OUTPUT_KEYS = ("path", "unit_size", "keep_parts")
DEFAULTS = {
    "sampler": {"kernel": "auto", "adapt": True},
    "estimator": {"method": "ensemble", "seed": 0, "compare_exact": False},
    "sweep": {"seed": 0},
    "output": {"unit_size": 64, "keep_parts": False},
}
# Estimator options of the looped methods are checked against these functions' signatures.
_METHOD_FUNCS = {
    "ais": ("thermodl.engine.ais", "ais_log_partition"),
    "pt": ("thermodl.engine.tempering", "pt_log_partition"),
    "ti": ("thermodl.engine.ti", "ti_log_partition"),
    "thermodynamics": ("thermodl.engine.api", "thermodynamics"),
}


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


# ----------------------------------------------------------------------------------------------- config
def load_config(config: Any) -> dict:
    """A config dict from a TOML path, a TOML string or a mapping (deep-copied)."""
    if isinstance(config, Mapping):
        return copy.deepcopy(dict(config))
    if isinstance(config, (str, os.PathLike)):
        p = Path(config)
        if isinstance(config, os.PathLike) or (len(str(config)) < 4096 and "\n" not in str(config) and p.suffix):
            if not p.is_file():
                raise ValueError(f"sweep config file {str(p)!r} does not exist")
            text = p.read_text()
        else:
            text = str(config)
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"sweep config is not valid TOML: {err}") from None
    raise ValueError(f"sweep config must be a path, a TOML string or a dict, got {type(config).__name__}")


def _grid_values(where: str, spec: Mapping) -> list:
    if len(spec) != 1 or next(iter(spec)) not in GRID_SPECS:
        raise ValueError(f"{where}: a table value must be one of {{{', '.join(k + '=[...]' for k in GRID_SPECS)}}}"
                         f", got {dict(spec)!r}")
    kind, args = next(iter(spec.items()))
    if not isinstance(args, list) or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise ValueError(f"{where}: {kind} needs a list of numbers, got {args!r}")
    if kind == "range":
        if not 1 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
            raise ValueError(f"{where}: range needs 1 to 3 integers [start, stop, step], got {args!r}")
        vals = list(range(*args))
    else:
        if len(args) != 3:
            raise ValueError(f"{where}: {kind} needs [start, stop, n], got {args!r}")
        n = check_positive_int(args[2], f"{where}: {kind} n")
        if kind == "geomspace" and (args[0] <= 0 or args[1] <= 0):
            raise ValueError(f"{where}: geomspace needs positive endpoints, got {args!r}")
        vals = getattr(np, kind)(args[0], args[1], n).tolist()
    if not vals:
        raise ValueError(f"{where}: {kind}={args!r} gives no values")
    return vals


def normalize_config(raw: Mapping) -> dict:
    """Validate section and key names and expand grid specs into lists.

    Returns:
        {section: {key: scalar or list of values}} with defaults filled in; a disorder ``seed`` given in
        [model] or [data] is moved to [sweep].
    Raises:
        ValueError: unknown section/key/model/method, bad grid spec, negative β, non-positive sizes, ...
    """
    raw = dict(raw)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown config section(s) {', '.join(map(repr, unknown))}; valid: {', '.join(SECTIONS)}")
    cfg: dict[str, dict] = {}
    for sec in SECTIONS:
        body = raw.get(sec, {})
        if not isinstance(body, Mapping):
            raise ValueError(f"[{sec}] must be a table, got {body!r}")
        out = {}
        for key, val in body.items():
            where = f"{sec}.{key}"
            if isinstance(val, Mapping):
                val = _grid_values(where, val)
            elif isinstance(val, list):
                if not val:
                    raise ValueError(f"{where}: an axis needs at least one value, got []")
                if any(isinstance(v, (list, Mapping)) for v in val):
                    raise ValueError(f"{where}: axis values must be scalars, got {val!r}")
            if sec == "output" and isinstance(val, list):
                raise ValueError(f"{where}: output settings cannot be grid axes, got {val!r}")
            out[key] = val
        cfg[sec] = out
    seeds = [s for s in ("model", "data", "sweep") if "seed" in cfg[s]]
    if len(seeds) > 1:
        raise ValueError(f"the disorder seed is given in {' and '.join(f'[{s}]' for s in seeds)}; give it once")
    if seeds and seeds[0] != "sweep":
        cfg["sweep"]["seed"] = cfg[seeds[0]].pop("seed")
    for sec, defaults in DEFAULTS.items():
        cfg[sec].update({k: v for k, v in defaults.items() if k not in cfg[sec]})
    _check_keys(cfg)
    return cfg


def _values(v) -> list:
    return v if isinstance(v, list) else [v]


def _check_keys(cfg: dict) -> None:
    model, data = cfg["model"], cfg["data"]
    if "name" not in model:
        raise ValueError(f"[model] needs name; choose one of: {', '.join(factories.model_names())}")
    names = _values(model["name"])
    for name in names:
        check_choice("model", name, factories.model_names())
    both = sorted(set(model) & set(data))
    if both:
        raise ValueError(f"parameter(s) {', '.join(map(repr, both))} given in both [model] and [data]")
    params = {k: v for k, v in {**model, **data}.items() if k != "name"}
    for name in names:  # names and values of every model parameter (sizes > 0, finite numbers, ...)
        for combo in itertools.product(*(_values(v) for v in params.values())):
            factories.resolve_model_params(name, dict(zip(params, combo)))
    for sec, allowed in (("sampler", SAMPLER_KEYS), ("sweep", SWEEP_KEYS), ("output", OUTPUT_KEYS)):
        bad = sorted(set(cfg[sec]) - set(allowed))
        if bad:
            raise ValueError(f"unknown key(s) {', '.join(map(repr, bad))} in [{sec}]; valid: {', '.join(allowed)}")
    if "beta" not in cfg["sweep"]:
        raise ValueError("[sweep] needs beta (a value, a list or {linspace=[a, b, n]})")
    for b in _values(cfg["sweep"]["beta"]):
        check_beta(b, "sweep.beta")
    for where, s in [("sweep.seed", s) for s in _values(cfg["sweep"]["seed"])] + \
            [("estimator.seed", s) for s in _values(cfg["estimator"]["seed"])]:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ValueError(f"{where} must be a non-negative integer, got {s!r}")
    est = cfg["estimator"]
    for m in _values(est["method"]):
        check_choice("method", m, METHODS)
    for key in ("n_chains", "n_steps", "chain_block"):
        for v in _values(est.get(key, 1)):
            check_positive_int(v, f"estimator.{key}")
    for v in _values(est.get("n_warmup", 0)):
        check_nonnegative_int(v, "estimator.n_warmup")
    for v in _values(cfg["sampler"].get("step_size", 1.0)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
            raise ValueError(f"sampler.step_size must be finite and > 0, got {v!r}")
    for v in _values(cfg["sampler"]["adapt"]) + _values(est["compare_exact"]) + [cfg["output"]["keep_parts"]]:
        if not isinstance(v, bool):
            raise ValueError(f"sampler.adapt, estimator.compare_exact and output.keep_parts must be true/false, "
                             f"got {v!r}")
    check_positive_int(cfg["output"]["unit_size"], "output.unit_size")
    methods = _values(est["method"])
    for m in methods:
        _method_options(m, est, cfg["sampler"], several=len(methods) > 1)


def _method_options(method: str, est: Mapping, sampler: Mapping, *, several: bool = False, resolve: bool = False):
    """[estimator] + [sampler] options for ``method`` (validated; the common budget keys that do not apply
    to ``method`` are dropped when the method itself is a grid axis). With ``resolve``: (function, options)."""
    import importlib
    import inspect

    opts = {k: v for k, v in est.items() if k not in ("method", "seed", "compare_exact")}
    if method in ("ensemble", "exact"):
        allowed = {"n_chains", "n_steps", "n_warmup", "chain_block"} if method == "ensemble" else set()
        return _filter(method, opts, allowed, several)
    mod_name, fn_name = _METHOD_FUNCS[method]
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"method {method!r} is unavailable: cannot import {mod_name}.{fn_name} ({err})") from None
    allowed = {k for k in inspect.signature(fn).parameters if k not in ("model", "beta", "betas", "key", "progress")}
    if method == "thermodynamics":
        allowed = (allowed - {"method"}) | {"via"}
    opts = _filter(method, opts, allowed, several)
    if "via" in opts:
        opts["method"] = opts.pop("via")
    for k, v in sampler.items():  # kernel, step size and kernel options go to the estimator's sampler
        if k != "adapt" and v is not None:
            opts[k] = v
    return (fn, opts) if resolve else opts


def _filter(method: str, opts: dict, allowed: set, several: bool) -> dict:
    common = {"n_chains", "n_steps", "n_warmup"}
    bad = [k for k in opts if k not in allowed and not (several and k in common)]
    if bad:
        raise ValueError(f"unknown key(s) {', '.join(map(repr, bad))} in [estimator] for method {method!r}; "
                         f"valid: {', '.join(sorted(allowed | {'method', 'seed', 'compare_exact'}))}")
    return {k: v for k, v in opts.items() if k in allowed}


# ----------------------------------------------------------------------------------------------- plan
def _role(section: str, key: str, names: list) -> str:
    if section in ("model", "data"):
        if key != "name" and all(key in factories.traced_params(n) for n in names):
            return "model"
        return "static"
    return {("sweep", "seed"): "model", ("sweep", "beta"): "point", ("sampler", "step_size"): "point",
            ("estimator", "seed"): "point"}.get((section, key), "static")


def _axes(cfg: dict) -> tuple[Axis, ...]:
    names = _values(cfg["model"]["name"])
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


def _point_hash(pt: dict) -> tuple[int, int]:
    """Two 32-bit words of the SHA-256 of the point's parameters (output settings excluded)."""
    import hashlib

    digest = hashlib.sha256(store.canonical_json({k: v for k, v in pt.items() if k != "output"}).encode()).digest()
    return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little")


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
                     f"≤ {g.m_chunk}×{g.t_chunk}; ≈ {nbytes / 2**20:.3g} MiB/device per unit [{how}]")
    return "\n".join(lines)
