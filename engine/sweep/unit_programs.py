"""What one unit of a sweep computes: the batched, sharded ensemble program and the looped estimators.

``method="ensemble"``: the unit runs on the ONE equilibrium runner (``engine.ensemble.run_ensemble``): its model
variants stacked on the disorder axis, its points as the temperature slots, the chain axis sharded over all local
devices (``engine.equilibrium``), step sizes adapted per (variant, point) on the chain-averaged acceptance during
warmup. Per point: mean ± standard error over chains (non-finite chains excluded and counted), C from the pooled
variance with its jackknife error (the estimator ``thermodynamics`` uses), split R-hat and a batch-means ESS
(``engine.diagnostics``), and the Binder cumulant with a jackknife error (K. Binder, Z. Phys. B 43, 119 (1981)).

``ais`` / ``pt`` / ``ti`` / ``exact`` / ``thermodynamics``: the unit's points are looped over, calling
``engine.ais.ais_log_partition``, ``engine.tempering.pt_log_partition``, ``engine.ti.ti_log_partition``,
``models.exact`` and ``engine.api.thermodynamics``; those compile once per shape and take the model and β as
traced arguments.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from thermodl.models.base import stack_models

from .. import catalog as factories
from .. import equilibrium
from .. import observables as obs
from ..diagnostics import summarise
from ..exact import exact_log_partition_value, exact_thermodynamics
from ..keys import fold
from ..kernel_binding import make_sampler, resolve_kernel
from .config import method_options, point_hash

__all__ = ["TRACE_COUNTS", "run_ensemble_unit", "run_looped_unit", "memory_estimate", "INT_VARS"]

TRACE_COUNTS = equilibrium.TRACE_COUNTS
"""Traces (= compilations) of the runner's programs (``"chunk"``); tests use it to prove one compile per group."""

INT_VARS = ("nan_chains", "n_divergent", "n_excluded", "unreliable")
"""Per-point counters stored as integers."""


# ----------------------------------------------------------------------------------------------- helpers
def _models(pts: list[dict], build) -> tuple[Any, list]:
    """Build the models of a unit's variants, check they share one signature, stack them."""
    models = [build(p) for p in pts]
    sig = factories.model_signature(models[0])
    for p, m in zip(pts, models):
        if factories.model_signature(m) != sig:
            raise ValueError(f"model parameters {p['model']} change the model's shapes within one compile group; "
                             "declare them static in engine.factories.MODELS")
    return stack_models(models), models


def _pad(idx: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([idx, np.full(n - idx.size, idx[-1])]) if idx.size < n else idx


def _exact(model, beta: float, what: str) -> tuple[float, ...]:
    """Exact (log Z) or (U, C) in float64 when ``engine.exact`` has them (the one rule), else NaN."""
    if what == "logz":
        try:
            return (exact_log_partition_value(model, beta)[0],)
        except ValueError:
            return (math.nan,)
    return exact_thermodynamics(model, beta) or (math.nan, math.nan)


# ----------------------------------------------------------------------------------------------- ensemble
def _binder(m2: np.ndarray, m4: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """U₄ = 1 − ⟨m⁴⟩/(3⟨m²⟩²) over the good chains and its jackknife standard error (leave one chain out)."""
    n = ok.sum(-1)
    s2 = np.where(ok, m2, 0.0).sum(-1)
    s4 = np.where(ok, m4, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        full = 1.0 - (s4 / n) / (3.0 * (s2 / n) ** 2)
        loo2 = (s2[..., None] - m2) / (n - 1)[..., None]
        loo4 = (s4[..., None] - m4) / (n - 1)[..., None]
        u = 1.0 - loo4 / (3.0 * loo2**2)
        ubar = np.where(ok, u, 0.0).sum(-1) / n
        var = (n - 1) / n * np.where(ok, (u - ubar[..., None]) ** 2, 0.0).sum(-1)
    return full, np.where(n > 1, np.sqrt(var), np.nan)


def _reduce(res, spec_adapt: bool) -> dict[str, np.ndarray]:
    """Per-point results [M, T] from the runner's ``EnsembleResult`` (lanes [M, T, C]): the same estimators as
    ``thermodynamics`` (mean ± stderr over chains, pooled variance ± jackknife for C, split R-hat, ESS)."""
    out = {}
    u, c = res.mean_energy(), res.specific_heat()
    out["energy"], out["energy_stderr"] = u.mean, u.stderr
    out["specific_heat"], out["specific_heat_stderr"] = c.mean, c.stderr
    out["energy_rhat"], out["energy_ess"] = res.rhat("energy"), res.ess("energy")
    bad = np.asarray(res.nonfinite, bool)
    if res.magnetization is not None:
        per_chain = np.asarray(obs.split_moments_total(res.magnetization).mean, np.float64)  # [M, T, C, 4]
        for name, i in (("abs_magnetization", 1), ("magnetization_sq", 2)):
            sm = summarise(per_chain[..., i], -1, exclude=bad)
            out[name], out[f"{name}_stderr"] = sm.mean, sm.stderr
        out["binder_cumulant"], out["binder_cumulant_stderr"] = _binder(per_chain[..., 2], per_chain[..., 3], ~bad)
        out["abs_magnetization_rhat"] = res.rhat("magnetization")[..., 1]
    out["acceptance"] = res.acceptance_rate().mean
    if spec_adapt:
        out["step_size"] = np.asarray(res.step_size, np.float64)
    out["nan_chains"] = bad.sum(-1)
    out["n_divergent"] = np.asarray(res.n_divergent).sum(-1)
    return out


def run_ensemble_unit(pts: list[list[dict]], m_chunk: int, t_chunk: int, build, mesh) -> dict[str, np.ndarray]:
    """Run one unit of ``method="ensemble"`` with the one equilibrium runner (``engine.ensemble.run_ensemble``).

    The unit's model variants are stacked on the runner's disorder axis and its points are the temperature
    slots; each point (m, t) draws its chains from the key fold(fold(key(0), h0), h1) of its parameter hash, so
    results depend neither on the unit layout nor on the device count.

    Args:
        pts: [M_u][T_u] point configs (``sweep.point_config``) of the unit's real points.
        m_chunk, t_chunk: the group's unit shape (the unit is padded to it, so the group compiles once).
        build: point config -> model.
        mesh: device mesh from ``sharding.chain_mesh``.
    Returns:
        {variable: [M_u, T_u]} per-point results.
    """
    from ..ensemble import run_ensemble

    M, T = len(pts), len(pts[0])
    mi, ti = _pad(np.arange(M), m_chunk), _pad(np.arange(T), t_chunk)
    stacked, models = _models([pts[m][0] for m in mi], build)
    pt0 = pts[0][0]
    est, smp = pt0["estimator"], pt0["sampler"]
    row = pts[0]
    betas = np.array([float(row[t]["sweep"]["beta"]) for t in ti], np.float64)
    steps = np.array([float(row[t]["sampler"].get("step_size", np.nan)) for t in ti], np.float64)
    pids = np.array([[point_hash(pts[m][t]) for t in ti] for m in mi], np.uint32)
    keys = jax.vmap(jax.vmap(lambda h: fold(jax.random.key(0), h[0], h[1])))(jnp.asarray(pids))
    options = {k: v for k, v in smp.items() if k not in ("kernel", "step_size", "adapt")}
    n_steps = int(est.get("n_steps", 1000))
    block = est.get("chain_block")
    res = run_ensemble(stacked, betas, key=keys, n_chains=int(est.get("n_chains", 64)), n_steps=n_steps,
                       n_warmup=int(est.get("n_warmup", n_steps // 2)), kernel=smp["kernel"], step_size=steps,
                       adapt=bool(smp["adapt"]), disorder_axis=True, chain_block=None if block is None else int(block),
                       devices=list(mesh.devices.flat), **options)
    kernel = resolve_kernel(models[0], smp["kernel"])
    adapting = bool(smp["adapt"]) and make_sampler(models[0], kernel, **options).target_acceptance is not None
    out = {k: np.asarray(v)[:M, :T] for k, v in _reduce(res, adapting).items()}
    if pt0["estimator"]["compare_exact"]:
        ex = np.array([[_exact(models[m], float(betas[t]), "thermo") for t in range(T)] for m in range(M)])
        out["energy_exact"], out["specific_heat_exact"] = ex[..., 0], ex[..., 1]
    return out


# ----------------------------------------------------------------------------------------------- looped
def _scalars(d: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in d.items():
        if isinstance(v, (bool, np.bool_, int, float, np.integer, np.floating)) and not isinstance(v, str):
            out[prefix + k] = float(v)
    return out


def run_looped_unit(pts: list[list[dict]], build) -> dict[str, np.ndarray]:
    """Run one unit of a log-Z method or ``thermodynamics`` by looping over its points.

    Returns:
        {variable: [M_u, T_u]}: ``log_Z``, ``log_Z_stderr`` and the estimator's scalar diagnostics (AIS ESS,
        excluded chains, swap rates, ...); with ``compare_exact``: ``log_Z_exact`` and ``z_score``.
        ``thermodynamics``: its U, F, S, C, log_Z with ``*_stderr`` and diagnostics per β.
    """

    M, T = len(pts), len(pts[0])
    rows: list[list[dict]] = [[{} for _ in range(T)] for _ in range(M)]
    for m in range(M):
        model = build(pts[m][0])
        method = pts[m][0]["estimator"]["method"]
        if method == "thermodynamics":
            _thermo_rows(model, pts[m], rows[m])
            continue
        for t in range(T):
            pt = pts[m][t]
            beta = float(pt["sweep"]["beta"])
            if method == "exact":
                (value,) = _exact(model, beta, "logz")
                if math.isnan(value):
                    raise ValueError(f"method 'exact' is unavailable for {pt['model']} (no closed form, not "
                                     "enumerable)")
                rows[m][t] = {"log_Z": value, "log_Z_stderr": 0.0}
                continue
            fn, opts = method_options(method, pt["estimator"], pt["sampler"], several=True, resolve=True)
            h0, h1 = point_hash(pt)
            key = jax.random.fold_in(jax.random.fold_in(jax.random.key(0), h0), h1)
            est = fn(model, beta, key=key, **opts)
            r = {"log_Z": float(est.value), "log_Z_stderr": float(est.stderr)}
            r.update({k: v for k, v in _scalars(est.diagnostics).items() if k not in r})
            if pt["estimator"]["compare_exact"]:
                (ex,) = _exact(model, beta, "logz")
                r["log_Z_exact"] = ex
                r["z_score"] = (r["log_Z"] - ex) / r["log_Z_stderr"] if r["log_Z_stderr"] > 0 else math.nan
            rows[m][t] = r
    names = sorted({k for row in rows for r in row for k in r})
    return {k: np.array([[r.get(k, np.nan) for r in row] for row in rows], np.float64) for k in names}


def _thermo_rows(model, row: list[dict], out: list[dict]) -> None:
    """``engine.api.thermodynamics`` once per (model, non-β point values) with all of the row's βs."""

    by_rest: dict[str, list[int]] = {}
    for t, pt in enumerate(row):
        rest = {**pt, "sweep": {k: v for k, v in pt["sweep"].items() if k != "beta"}}
        by_rest.setdefault(repr(point_hash(rest)), []).append(t)
    for ts in by_rest.values():
        pt = row[ts[0]]
        fn, opts = method_options("thermodynamics", pt["estimator"], pt["sampler"], several=True, resolve=True)
        h0, h1 = point_hash({**pt, "sweep": {k: v for k, v in pt["sweep"].items() if k != "beta"}})
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(0), h0), h1)
        ds = fn(model, np.array([float(row[t]["sweep"]["beta"]) for t in ts]), key=key, **opts)
        for j, t in enumerate(ts):
            out[t] = {str(v): float(ds[v].values[j]) for v in ds.data_vars if ds[v].dims == ("beta",)}


# ----------------------------------------------------------------------------------------------- memory
def memory_estimate(pt: dict, model, m_chunk: int, t_chunk: int, n_devices: int) -> tuple[int, str]:
    """Rough device bytes of one unit and how they were estimated.

    ensemble: per lane (chain × point × disorder variant on one device) the kernel state (its exact size from
    ``jax.eval_shape`` of the sampler's ``init``), counted twice (scan carry in and out), plus the streamed
    accumulators and adaptation state; plus the stacked model arrays (replicated on every device). Looped
    methods: their own chain/replica layout, n_chains × (n_replicas or 1) × state.
    """
    method = pt["estimator"]["method"]
    kernel = pt["sampler"]["kernel"]
    sampler = make_sampler(model, kernel, **{k: v for k, v in pt["sampler"].items()
                                             if k not in ("kernel", "step_size", "adapt")})
    x = jax.ShapeDtypeStruct((model.dim,), jnp.float32)
    state = jax.eval_shape(sampler.init, x)
    state_b = sum(int(np.prod(leaf.shape)) * leaf.dtype.itemsize for leaf in jax.tree.leaves(state))
    model_b = sum(int(np.size(a)) * jnp.result_type(a).itemsize for a in jax.tree.leaves(model))
    n_chains = int(pt["estimator"].get("n_chains", 64))
    if method == "ensemble":
        k = 4 if callable(getattr(model, "magnetization", None)) else 1
        acc_b = 4 * (2 * (1 + 2 * k) + 8)
        lanes = m_chunk * t_chunk * -(-n_chains // n_devices)
        return lanes * (2 * state_b + acc_b) + m_chunk * model_b, (
            f"{lanes} lanes/device × (2 × {state_b} B state + {acc_b} B accumulators) + "
            f"{m_chunk} × {model_b} B model")
    if method == "exact":
        return 4096 * (model.dim * 4 + 16) + model_b, "enumeration in chunks of 4096 states"
    reps = int(pt["estimator"].get("n_replicas") or pt["estimator"].get("n_betas") or 1)
    return n_chains * reps * state_b + model_b, f"{n_chains} chains × {reps} replicas × {state_b} B state (rough)"
