"""What one unit of a sweep computes: the batched, sharded ensemble program and the looped estimators.

``method="ensemble"``: ONE jitted program per compile group computes every lane (disorder variant m, point t,
chain c) of a unit — ``vmap`` over chains ∘ models ∘ points of a one-chain run (warmup with per-chain
dual-averaging step-size adaptation, Hoffman & Gelman 2014 §3.2, then a production ``lax.scan`` streaming the
split moments of E (and |m|, m², m⁴ when the model has ``magnetization``)) — with the chain axis sharded over all
local devices (``engine.sharding``). Lanes are independent (the step size is adapted per chain, not averaged over
chains), so the numbers do not depend on the device count or on padding. Host-side reductions then give, per
point, mean ± standard error over chains (non-finite chains excluded and counted), split R-hat and a
batch-means ESS (``engine.diagnostics``; Gelman et al., BDA3 §11.4), and the Binder cumulant with a jackknife
error (K. Binder, Z. Phys. B 43, 119 (1981)).

``ais`` / ``pt`` / ``ti`` / ``exact`` / ``thermodynamics``: the unit's points are looped over, calling
``engine.ais.ais_log_partition``, ``engine.tempering.pt_log_partition``, ``engine.ti.ti_log_partition``,
``models.exact`` and ``engine.api.thermodynamics``; those compile once per shape and take the model and β as
traced arguments.
"""

from __future__ import annotations

import collections
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from thermodl.kernels import adaptation
from thermodl.models.base import stack_models

from .. import catalog as factories
from .. import observables as obs
from .. import sharding
from ..diagnostics import ess_from_moments, split_rhat_from_moments, summarise
from ..exact import exact_log_partition_value, exact_thermodynamics
from ..samplers import make_sampler, resolve_kernel
from .config import method_options, point_hash

__all__ = ["TRACE_COUNTS", "EnsembleSpec", "ensemble_program", "run_ensemble_unit", "run_looped_unit",
           "memory_estimate", "INT_VARS"]

TRACE_COUNTS: collections.Counter = collections.Counter()
"""How many times each sweep program was traced (= compiled); tests use it to prove one compile per group."""

INT_VARS = ("nan_chains", "n_divergent", "n_excluded", "unreliable")
"""Per-point counters stored as integers."""


class EnsembleSpec(NamedTuple):
    """Static configuration of the ensemble program (hashable; a new value compiles a new program)."""

    kernel: str
    options: tuple
    n_steps: int
    n_warmup: int
    adapt: bool
    has_magnetization: bool


class _LaneOut(NamedTuple):
    split: obs.SplitMoments  # values [k]: E (, |m|, m², m⁴)
    acceptance: jax.Array  # mean acceptance probability over production
    n_divergent: jax.Array
    nonfinite: jax.Array  # energy non-finite at some production step
    step_size: jax.Array  # the frozen step size


def _observe(model, spec: EnsembleSpec, state) -> jax.Array:
    e = state.energy
    if not spec.has_magnetization:
        return e[None]
    m = model.magnetization(state.position)
    m2 = m * m
    return jnp.stack([e, jnp.abs(m), m2, m2 * m2]).astype(e.dtype)


def _lane(spec: EnsembleSpec, model, beta, step0, pid, c) -> _LaneOut:
    """One chain at one point: warmup (+ per-chain step-size adaptation), then streamed production."""
    sampler = make_sampler(model, spec.kernel, **dict(spec.options))
    key = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(jax.random.key(0), pid[0]), pid[1]), c)
    k_init, k_warm, k_prod = jax.random.split(key, 3)
    state = sampler.init(model.sample_reference(k_init))
    dtype = state.energy.dtype
    beta = beta.astype(dtype)
    eps0 = jnp.where(jnp.isnan(step0), sampler.default_step_size, step0).astype(dtype)
    if spec.adapt and sampler.target_acceptance is not None:
        def warm(carry, t):
            st, ad = carry
            st, info = sampler.step(jax.random.fold_in(k_warm, t), st, beta, adaptation.step_size(ad))
            target = jnp.asarray(sampler.target_acceptance, dtype)  # an array: update's value check is for hosts
            return (st, adaptation.update(ad, info.acceptance_probability, target)), None

        (state, ad), _ = jax.lax.scan(warm, (state, adaptation.init(eps0)), jnp.arange(spec.n_warmup))
        eps = adaptation.final_step_size(ad).astype(dtype)
    else:
        def warm(st, t):
            return sampler.step(jax.random.fold_in(k_warm, t), st, beta, eps0)[0], None

        state, _ = jax.lax.scan(warm, state, jnp.arange(spec.n_warmup))
        eps = eps0
    k = 4 if spec.has_magnetization else 1

    def prod(carry, t):
        st, sm, acc, n_div, bad = carry
        st, info = sampler.step(jax.random.fold_in(k_prod, t), st, beta, eps)
        sm = obs.split_moments_update(sm, _observe(model, spec, st), t, spec.n_steps)
        return (st, sm, acc + info.acceptance_probability, n_div + info.is_divergent.astype(jnp.int32),
                bad | ~jnp.isfinite(st.energy)), None

    init = (state, obs.split_moments_init((k,), dtype), jnp.zeros((), dtype), jnp.zeros((), jnp.int32),
            jnp.zeros((), bool))
    (_, sm, acc, n_div, bad), _ = jax.lax.scan(prod, init, jnp.arange(spec.n_steps))
    return _LaneOut(sm, acc / spec.n_steps, n_div, bad, eps)


@functools.lru_cache(maxsize=64)
def ensemble_program(spec: EnsembleSpec, mesh, block: int):
    """The jitted, sharded program ``(models [M], betas [T], step0 [T], pids [M, T, 2], chain_ids [C]) ->
    _LaneOut`` with leaves ``[C, M, T, ...]`` (chains sharded along the mesh axis ``"chains"``). Each device runs
    its chains in blocks of ``block`` (``lax.map`` over blocks, ``vmap`` within), so the compiled block is the
    same whatever the number of devices (see ``engine.sharding``)."""

    def body(models, betas, steps, pids, chain_ids):
        TRACE_COUNTS["ensemble"] += 1  # runs only while tracing

        def per_chain(c):
            def per_model(model, pid_row):
                return jax.vmap(lambda b, s, p: _lane(spec, model, b, s, p, c))(betas, steps, pid_row)

            return jax.vmap(per_model)(models, pids)

        out = jax.lax.map(jax.vmap(per_chain), chain_ids.reshape(-1, block))
        return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), out)

    return sharding.shard_over_chains(body, mesh, 4)


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


def _reduce(out: _LaneOut, betas: np.ndarray, spec: EnsembleSpec, adapting: bool) -> dict[str, np.ndarray]:
    """Per-point results [M, T] from per-chain statistics [M, T, C, ...]."""
    f, s = out.split.first, out.split.second
    n1, n2 = f.count[..., None], s.count[..., None]
    n = n1 + n2
    mean = (n1 * f.mean + n2 * s.mean) / n
    var = (f.m2 + s.m2 + (s.mean - f.mean) ** 2 * n1 * n2 / n) / (n - 1)
    bad = out.nonfinite | ~np.all(np.isfinite(mean) & np.isfinite(var), axis=-1)
    res = {}

    def put(name, per_chain):
        sm = summarise(per_chain, -1, exclude=bad)
        res[name], res[f"{name}_stderr"] = sm.mean, sm.stderr

    put("energy", mean[..., 0])
    put("specific_heat", betas[:, :, None] ** 2 * var[..., 0])
    split_e = obs.SplitMoments(*(obs.Moments(h.count, h.mean[..., 0], h.m2[..., 0]) for h in (f, s)))
    res["energy_rhat"] = split_rhat_from_moments(split_e, -1)
    res["energy_ess"] = ess_from_moments(split_e, -1)
    if spec.has_magnetization:
        put("abs_magnetization", mean[..., 1])
        put("magnetization_sq", mean[..., 2])
        res["binder_cumulant"], res["binder_cumulant_stderr"] = _binder(mean[..., 2], mean[..., 3], ~bad)
        split_m = obs.SplitMoments(*(obs.Moments(h.count, h.mean[..., 1], h.m2[..., 1]) for h in (f, s)))
        res["abs_magnetization_rhat"] = split_rhat_from_moments(split_m, -1)
    res["acceptance"] = summarise(out.acceptance, -1, exclude=bad).mean
    if adapting:
        res["step_size"] = summarise(out.step_size, -1, exclude=bad).mean
    res["nan_chains"] = bad.sum(-1)
    res["n_divergent"] = out.n_divergent.sum(-1)
    return res


def _ensemble_spec(pt: dict, model) -> tuple[EnsembleSpec, int, int | None]:
    est, smp = pt["estimator"], pt["sampler"]
    n_steps = int(est.get("n_steps", 1000))
    n_warmup = int(est.get("n_warmup", n_steps // 2))
    options = tuple(sorted((k, v) for k, v in smp.items() if k not in ("kernel", "step_size", "adapt")))
    kernel = resolve_kernel(model, smp["kernel"])
    spec = EnsembleSpec(kernel, options, n_steps, n_warmup, bool(smp["adapt"]),
                        callable(getattr(model, "magnetization", None)))
    block = est.get("chain_block")
    return spec, int(est.get("n_chains", 64)), None if block is None else int(block)


def run_ensemble_unit(pts: list[list[dict]], m_chunk: int, t_chunk: int, build, mesh) -> dict[str, np.ndarray]:
    """Run one unit of ``method="ensemble"``.

    Args:
        pts: [M_u][T_u] point configs (``sweep.point_config``) of the unit's real points.
        m_chunk, t_chunk: the group's unit shape (the unit is padded to it, so the group compiles once).
        build: point config -> model.
        mesh: device mesh from ``sharding.chain_mesh``.
    Returns:
        {variable: [M_u, T_u]} per-point results.
    """
    M, T = len(pts), len(pts[0])
    mi, ti = _pad(np.arange(M), m_chunk), _pad(np.arange(T), t_chunk)
    stacked, models = _models([pts[m][0] for m in mi], build)
    spec, n_chains, block = _ensemble_spec(pts[0][0], models[0])
    n_dev = mesh.devices.size
    block = block or -(-n_chains // n_dev)  # default: one block per device
    row = pts[0]
    betas = np.array([float(row[t]["sweep"]["beta"]) for t in ti], np.float32)
    steps = np.array([float(row[t]["sampler"].get("step_size", np.nan)) for t in ti], np.float32)
    pids = np.array([[point_hash(pts[m][t]) for t in ti] for m in mi], np.uint32)
    args = sharding.replicate((stacked, jnp.asarray(betas), jnp.asarray(steps), jnp.asarray(pids)), mesh)
    out = ensemble_program(spec, mesh, block)(*args, sharding.chain_indices(n_chains, mesh, block))
    out = jax.tree.map(lambda a: np.moveaxis(np.asarray(a)[:n_chains], 0, 2)[:M, :T].astype(
        np.float64 if np.issubdtype(np.asarray(a).dtype, np.floating) else np.asarray(a).dtype), out)
    adapting = spec.adapt and make_sampler(models[0], spec.kernel, **dict(spec.options)).target_acceptance is not None
    res = _reduce(out, np.broadcast_to(betas[None, :T].astype(np.float64), (M, T)), spec, adapting)
    if pts[0][0]["estimator"]["compare_exact"]:
        ex = np.array([[_exact(models[m], float(betas[t]), "thermo") for t in range(T)] for m in range(M)])
        res["energy_exact"], res["specific_heat_exact"] = ex[..., 0], ex[..., 1]
    return res


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
