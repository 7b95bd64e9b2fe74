"""The plan of a sweep: grid axes and their roles, compile groups, units and the scalar config of each point.

``plan_sweep(config)`` validates a config (``engine.sweep.config``) and lays out its grid; ``describe_plan`` is
the ``--dry-run`` text. Axis roles (``_role``):

* **static** — sizes, model name, kernel, method, budgets: every combination of static values is a *compile
  group*, compiled once;
* **model** — values that only change the model's numbers (``[sweep] disorder_seed``, J, h, σ_w; see
  ``catalog.traced_params``): the models of a group are stacked along a disorder axis;
* **point** — β, the step size and the Monte Carlo seed (``[estimator] seed``): traced scalars per point.

The model of a point is built from its model parameters and ``[sweep] disorder_seed`` only (``model_of``): the
Monte Carlo seed never changes the model.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, NamedTuple

import numpy as np

from .. import catalog
from .config import METHODS, SECTIONS, load_config, normalize_config, values
from .store import config_hash

__all__ = [
    "METHODS",
    "Axis",
    "Group",
    "SweepPlan",
    "load_config",
    "normalize_config",
    "plan_sweep",
    "point_config",
    "model_of",
    "units",
    "describe_plan",
    "public_config",
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
        if key != "name" and all(key in catalog.traced_params(n) for n in names):
            return "model"
        return "static"
    return {("sweep", "disorder_seed"): "model", ("sweep", "beta"): "point", ("sampler", "step_size"): "point",
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


def public_config(cfg: dict) -> dict:
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
    return SweepPlan(cfg, axes, shape, tuple(groups), config_hash(public_config(cfg)))


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


def model_of(pt: dict):
    """The model of a point config: its [model] and [data] parameters and ``[sweep] disorder_seed`` (for models
    with random disorder); the Monte Carlo seed ``[estimator] seed`` is not used."""
    params = {k: v for k, v in {**pt["model"], **pt["data"]}.items() if k != "name"}
    name = pt["model"]["name"]
    if catalog.DISORDER_SEED in catalog.model_params(name):
        params[catalog.DISORDER_SEED] = pt["sweep"]["disorder_seed"]
    return catalog.build_model(name, params)


def units(group: Group) -> list[tuple[np.ndarray, np.ndarray]]:
    """The units of ``group``: (model-variant indices [≤ m_chunk], point indices [≤ t_chunk]) blocks."""
    M, T = group.flat.shape
    return [(np.arange(m0, min(m0 + group.m_chunk, M)), np.arange(t0, min(t0 + group.t_chunk, T)))
            for m0 in range(0, M, group.m_chunk) for t0 in range(0, T, group.t_chunk)]


def _short(values: tuple) -> str:
    vals = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in values]
    return ", ".join(vals) if len(vals) <= 6 else ", ".join(vals[:3]) + f", …, {vals[-1]} ({len(vals)} values)"


def describe_plan(plan: SweepPlan, first_models: list | None = None, mesh=None) -> str:
    """The dry-run text: grid axes, compile groups with point/unit counts and device memory per unit."""
    from .. import sharding
    from .unit_programs import memory_estimate

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
        model = first_models[i] if first_models else model_of(pt)
        nbytes, how = memory_estimate(pt, model, g.m_chunk, g.t_chunk, n_dev)
        static = ", ".join(f"{k}={v}" for k, v in g.static.items()) or "(no static axes)"
        lines.append(f"  #{i}: {static} — method {pt['estimator']['method']}, {g.flat.shape[0]} model variant(s) × "
                     f"{g.flat.shape[1]} point(s) = {g.flat.size} points in {len(units(g))} unit(s) of "
                     f"≤ {g.m_chunk}×{g.t_chunk}; ≈ {nbytes / 2**20:.3g} MiB/device (one unit at a time) [{how}]")
    return "\n".join(lines)
