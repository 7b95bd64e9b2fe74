"""The ONE annealing loop: AIS (fixed schedule, no resampling) and adaptive tempered SMC / population annealing.

References: R. M. Neal, "Annealed importance sampling", Stat. Comput. 11, 125 (2001); P. Del Moral, A. Doucet,
A. Jasra, "Sequential Monte Carlo samplers", JRSS B 68, 411 (2006); K. Hukushima, Y. Iba, AIP Conf. Proc. 690, 200
(2003) and J. Machta, PRE 82, 026704 (2010) (population annealing); Y. Zhou, A. M. Johansen, J. A. D. Aston,
"Toward automatic model comparison: an adaptive SMC approach", JCGS 25, 701 (2016) (conditional ESS);
A. Lee, N. Whiteley, "Variance estimation in the particle filter", Biometrika 105, 609 (2018) and H. P. Chan,
T. L. Lai / Q. Du, A. Guyader (2021) for the adaptive-resampling form of the single-run variance estimator.

Layout: particles ``[lanes, particles, dim]``. A *lane* is one independent run (its own particle population), keyed
by its GLOBAL index through ``engine.keys.fold(key, disorder, run)``, so lanes can be blocked (``run_block``) or
sharded over devices (``engine.sharding``) without changing any number. Each lane runs, in ONE compiled
``lax.while_loop`` over stages k = 1, 2, ...:

1. next β: the fixed schedule's β_k, or (adaptive) the β_k whose incremental weights exp(−(β_k − β_{k−1})E) have
   conditional ESS  CESS = N (Σ_i W_i w_i)² / Σ_i W_i w_i²  equal to ``target_cess``·N (bisection; W the current
   normalised weights). The last stage is forced to β when the ``max_stages`` cap is reached (``hit_cap``).
2. log weights += −(β_k − β_{k−1})·E  (Kahan-compensated, so float32 does not drift over many stages).
3. if ESS/N < ``resample_threshold``: log Ẑ += log mean w, systematic (or multinomial) resampling, weights := 1.
4. ``n_sweeps`` steps of any ``engine.kernel_binding`` kernel at β_k. Continuous kernels with a target acceptance adapt
   log ε after every sweep from the POPULATION's mean acceptance (log ε += (ā − target), clipped): no pilot run.
   ε then depends on the other particles' past, which makes the estimator consistent with an O(1/N) bias (as in
   any adaptive SMC), not exactly unbiased; a given ``step_size`` switches adaptation off.

At the end log Ẑ_lane = log Ẑ + log mean w  (the standard unbiased SMC estimator of Z(β)/Z(0)). Memory is flat in the
number of stages for the particles: per stage only per-LANE scalars are kept (β, acceptance, ε, ESS, ⟨E⟩), in
buffers of ``max_stages`` entries.

Single-run relative variance (Lee & Whiteley 2018; adaptive resampling: Du & Guyader 2021):
    V̂ = 1 − (N/(N−1))^{m+1} · (1 − Σ_e W_e²),
with m the number of resampling events and W_e the final normalised weight carried by the descendants of initial
particle e ("Eve" e). Without resampling it is the usual delta-method relative variance of a mean of weights. It
is proven for multinomial resampling; with systematic resampling it is an approximation (used as a cross-check).
"""

from __future__ import annotations

import collections
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import sharding as _sharding
from .keys import fold
from .keys import as_key
from .importance_weights import (_ess_fraction, _finite, _increment, _log_mean_w,
                                 _next_beta_cess, _resample_indices, _unique_fraction, log_weights_estimate,
                                 min_reliable_ess)
from .kernel_binding import make_sampler, resolve_kernel, split_options

__all__ = [
    "AnnealSpec",
    "AnnealResult",
    "anneal",
    "prepare",
    "log_weights_estimate",
    "min_reliable_ess",
    "RESAMPLING",
]

RESAMPLING = ("systematic", "multinomial")
_TRACE_COUNTS: collections.Counter = collections.Counter()  # traces (= compilations) of the loop, for tests
_ADAPT_GAIN = 1.0  # log ε += gain·(ā − target) per sweep; ā is a mean over the population, so noise is small
_MAX_LOG_STEP_CHANGE = 0.5


class AnnealSpec(NamedTuple):
    """Static configuration of the loop (one compiled program per distinct spec).

    Fields:
        kernel: concrete kernel name; static_options: sorted (name, value) static kernel options.
        n_particles: N particles per lane; n_sweeps: kernel steps per stage; n_measure: the last sweeps of each
        stage over which ⟨E⟩ and observables are averaged; max_stages: stage cap (= K for a fixed schedule).
        adaptive: choose β_k by conditional ESS (else the fixed schedule); resample: allow resampling.
        resampling: "systematic" | "multinomial"; adapt_step: adapt ε from the population.
        n_warmup: ε-adaptation steps at β_0 = 0 before the first stage (moves that leave p_0 invariant).
        target_acceptance: what ε adaptation aims at (None: nothing to adapt); min/max_log_step: clip of log ε.
        continuous: the kernel uses a step size (reported; discrete kernels report NaN).
        observables: tuple of (name, fn(x [dim]) -> []) averaged at every stage (the last stage's is returned).
    """

    kernel: str
    static_options: tuple
    n_particles: int
    n_sweeps: int
    n_measure: int
    max_stages: int
    adaptive: bool
    resample: bool
    resampling: str
    adapt_step: bool
    n_warmup: int
    target_acceptance: float | None
    max_log_step: float
    min_log_step: float
    continuous: bool
    observables: tuple = ()


class AnnealResult(NamedTuple):
    """Per-lane output of ``anneal`` (leading axes [D, R] with a disorder axis, else [R]; NumPy arrays).

    Fields:
        log_z: log Ẑ(β)/Z(0) of each lane (NaN if no particle kept a finite weight).
        log_z_rel_var: Lee–Whiteley single-run relative variance V̂ ≈ Var(Ẑ)/Z² (≈ Var(log Ẑ) when small).
        n_stages: stages run; hit_cap: the stage cap forced the last jump to β.
        n_resample: resampling events; min_ess_fraction: smallest ESS/N before resampling over the stages.
        final_ess_fraction: ESS/N of the final weights.
        mean_acceptance: mean over stages of the population-mean acceptance; n_divergent: divergent transitions.
        n_nonfinite: particle-stages whose weight increment was NaN (those particles get weight 0 / NaN).
        unique_fraction: distinct final configurations / N (discrete models; 1.0 typical for continuous ones).
        betas [.., S+1], acceptance [.., S], step_size [.., S], ess_fraction [.., S]: per-stage lane scalars
            (NaN after n_stages); step_size NaN for kernels without one.
        mean_energy [.., S+1], energy_var [.., S+1]: weighted particle mean / variance of E at each stage (index
            0: the β = 0 draws), averaged over the last n_measure sweeps.
        observables: {name: [..]} weighted particle mean at the last stage (over its last n_measure sweeps).
        positions [.., N, dim]: final particles; log_weights [.., N]: final log weights (since the last
            resampling; NaN for non-finite particles). For AIS these are the AIS log weights.
        n_divergent_particle [.., N]: divergent transitions per final particle slot.
    """

    log_z: np.ndarray
    log_z_rel_var: np.ndarray
    n_stages: np.ndarray
    hit_cap: np.ndarray
    n_resample: np.ndarray
    min_ess_fraction: np.ndarray
    final_ess_fraction: np.ndarray
    mean_acceptance: np.ndarray
    n_divergent: np.ndarray
    n_nonfinite: np.ndarray
    unique_fraction: np.ndarray
    betas: np.ndarray
    acceptance: np.ndarray
    step_size: np.ndarray
    ess_fraction: np.ndarray
    mean_energy: np.ndarray
    energy_var: np.ndarray
    observables: dict
    positions: np.ndarray
    log_weights: np.ndarray
    n_divergent_particle: np.ndarray


# ------------------------------------------------------------------------------------------------ one lane
class _Carry(NamedTuple):
    k: jax.Array
    beta: jax.Array
    inner: Any
    lw: jax.Array
    comp: jax.Array
    log_z: jax.Array
    eve: jax.Array
    log_eps: jax.Array
    n_resample: jax.Array
    n_div: jax.Array
    n_nonfinite: jax.Array
    min_ess: jax.Array
    buf: dict
    obs: dict


def _lane(model, key, p, spec: AnnealSpec):
    """One independent run. p: traced params (schedule [S+1], beta, target_cess, resample_threshold, eps [S+1],
    options)."""
    sampler = make_sampler(model, spec.kernel, **dict(spec.static_options), **p["options"])
    n, s_max = spec.n_particles, spec.max_stages
    dtype = jnp.result_type(float)
    ids = jnp.arange(n)
    if "initial_position" in p:  # given start (e.g. equilibrated at β_0 = schedule[0] > 0 by run_ensemble)
        x0 = jnp.asarray(p["initial_position"], dtype)
    else:
        x0 = jax.vmap(lambda i: model.sample_reference(fold(key, 0, i)))(ids)
    beta_start = jnp.asarray(p["schedule"][0], dtype)  # 0 except for a fixed schedule that starts elsewhere
    inner = jax.vmap(sampler.init)(x0)
    vstep = jax.vmap(sampler.step, in_axes=(0, 0, None, None))
    obs_fns = spec.observables
    adapt = spec.adapt_step and spec.target_acceptance is not None
    log_eps = jnp.log(jnp.asarray(p["eps"][0], dtype))

    def keys_of(k):
        return jax.vmap(lambda i: fold(k, i))(ids)

    def adapt_eps(log_eps, acc):
        if not adapt:
            return log_eps
        d = jnp.clip(_ADAPT_GAIN * (acc - spec.target_acceptance), -_MAX_LOG_STEP_CHANGE, _MAX_LOG_STEP_CHANGE)
        return jnp.clip(log_eps + jnp.where(jnp.isfinite(d), d, 0.0), spec.min_log_step, spec.max_log_step)

    def mean_acc(info):
        a = jnp.asarray(getattr(info, "acceptance_probability", jnp.ones(n)), dtype)
        return jnp.nanmean(a)

    if adapt and spec.n_warmup:  # ε adaptation at β_0 on the exact draws (every move leaves p_0 invariant)
        def warm(j, c):
            inner, log_eps = c
            inner, info = vstep(keys_of(fold(key, 2, j)), inner, beta_start, jnp.exp(log_eps))
            return inner, adapt_eps(log_eps, mean_acc(info))

        inner, log_eps = jax.lax.fori_loop(0, spec.n_warmup, warm, (inner, log_eps))

    def energy_of(inner):
        return jnp.asarray(inner.energy, dtype)

    def weighted_stats(lwf, inner):
        w = jax.nn.softmax(lwf)
        e = energy_of(inner)
        ok = w > 0
        m = jnp.sum(jnp.where(ok, w * e, 0.0))
        v = jnp.sum(jnp.where(ok, w * (e - m) ** 2, 0.0))
        obs = {name: jnp.sum(jnp.where(ok, w * jax.vmap(fn)(inner.position), 0.0)) for name, fn in obs_fns}
        return m, v, obs

    nan = jnp.full((), jnp.nan, dtype)
    zeros = jnp.zeros(n, dtype)
    m0, v0, obs0 = weighted_stats(zeros, inner)
    buf = {
        "betas": jnp.full((s_max + 1,), jnp.nan, dtype).at[0].set(beta_start),
        "acceptance": jnp.full((s_max,), jnp.nan, dtype),
        "step_size": jnp.full((s_max,), jnp.nan, dtype),
        "ess_fraction": jnp.full((s_max,), jnp.nan, dtype),
        "mean_energy": jnp.full((s_max + 1,), jnp.nan, dtype).at[0].set(m0),
        "energy_var": jnp.full((s_max + 1,), jnp.nan, dtype).at[0].set(v0),
    }
    carry = _Carry(jnp.zeros((), jnp.int32), beta_start, inner, zeros, zeros, jnp.zeros((), dtype),
                   ids, log_eps, jnp.zeros((), jnp.int32), jnp.zeros(n, jnp.int32), jnp.zeros((), jnp.int32),
                   jnp.ones((), dtype), buf, obs0)
    beta_final = jnp.asarray(p["beta"], dtype)

    def cond(c):
        if not spec.adaptive:  # a fixed schedule runs all its K stages (it may also decrease: heating)
            return c.k < s_max
        return (c.k < s_max) & (c.beta < beta_final)

    def body(c: _Carry):
        kstage = fold(key, 1, c.k)
        energy = energy_of(c.inner)
        lwf = _finite(c.lw)
        if spec.adaptive:
            nxt = _next_beta_cess(c.beta, beta_final, lwf, energy, p["target_cess"])
            nxt = jnp.where(c.k == s_max - 1, beta_final, nxt)
        else:
            nxt = jnp.asarray(p["schedule"][c.k + 1], dtype)
        inc = _increment(nxt - c.beta, energy)
        # Kahan-compensated running sum of the log weights (a non-finite sum resets the compensation)
        corrected = inc - c.comp
        lw = c.lw + corrected
        comp = jnp.where(jnp.isfinite(lw), (lw - c.lw) - corrected, 0.0)
        n_nonfinite = c.n_nonfinite + jnp.sum(jnp.isnan(inc) & ~jnp.isnan(c.lw)).astype(jnp.int32)
        lwf = _finite(lw)
        ess = _ess_fraction(lwf)
        inner, eve, log_z, n_res, n_div = c.inner, c.eve, c.log_z, c.n_resample, c.n_div
        if spec.resample:
            do = ess < p["resample_threshold"]
            idx = _resample_indices(fold(kstage, 0), lwf, spec.resampling)
            idx = jnp.where(do, idx, ids)
            inner = jax.tree.map(lambda a: a[idx], inner)
            eve, n_div = eve[idx], n_div[idx]
            log_z = jnp.where(do, log_z + _log_mean_w(lwf), log_z)
            lw = jnp.where(do, 0.0, lw)
            comp = jnp.where(do, 0.0, comp)
            n_res = n_res + do.astype(jnp.int32)
            lwf = _finite(lw)
        eps_fixed = jnp.asarray(p["eps"][jnp.minimum(c.k + 1, p["eps"].shape[0] - 1)], dtype)
        log_eps0 = c.log_eps if adapt else jnp.log(eps_fixed)

        def sweep(sc, s):
            inner, log_eps, acc, n_div, em, ev, obs = sc
            inner, info = vstep(keys_of(fold(kstage, 1, s)), inner, nxt, jnp.exp(log_eps))
            a = mean_acc(info)
            div = jnp.asarray(getattr(info, "is_divergent", jnp.zeros(n, bool)), bool)
            measuring = s >= spec.n_sweeps - spec.n_measure
            m, v, o = weighted_stats(lwf, inner)
            f = jnp.where(measuring, 1.0 / spec.n_measure, 0.0)
            obs = {name: obs[name] + f * o[name] for name in obs}
            return (inner, adapt_eps(log_eps, a), acc + a, n_div + div.astype(jnp.int32), em + f * m,
                    ev + f * v, obs), None

        obs_zero = {name: jnp.zeros((), dtype) for name, _ in obs_fns}
        sc0 = (inner, log_eps0, jnp.zeros((), dtype), n_div, jnp.zeros((), dtype), jnp.zeros((), dtype), obs_zero)
        (inner, log_eps, acc, n_div, em, ev, obs), _ = jax.lax.scan(sweep, sc0, jnp.arange(spec.n_sweeps))
        step_used = jnp.exp(log_eps0) if spec.continuous else nan
        buf = dict(c.buf)
        buf["betas"] = buf["betas"].at[c.k + 1].set(nxt)
        buf["acceptance"] = buf["acceptance"].at[c.k].set(acc / spec.n_sweeps)
        buf["step_size"] = buf["step_size"].at[c.k].set(step_used)
        buf["ess_fraction"] = buf["ess_fraction"].at[c.k].set(ess)
        buf["mean_energy"] = buf["mean_energy"].at[c.k + 1].set(em)
        buf["energy_var"] = buf["energy_var"].at[c.k + 1].set(ev)
        return _Carry(c.k + 1, nxt, inner, lw, comp, log_z, eve, log_eps if adapt else c.log_eps, n_res, n_div,
                      n_nonfinite, jnp.minimum(c.min_ess, ess), buf, obs)

    c = jax.lax.while_loop(cond, body, carry)
    lwf = _finite(c.lw)
    log_z = c.log_z + _log_mean_w(lwf)
    w = jax.nn.softmax(lwf)
    w = jnp.where(jnp.isnan(w), 0.0, w)
    eve_w = jax.ops.segment_sum(w, c.eve, num_segments=n)
    rel_var = 1.0 - (n / (n - 1.0)) ** (c.n_resample + 1.0) * (1.0 - jnp.sum(eve_w**2)) if n > 1 else nan
    acc_stages = c.buf["acceptance"]
    return {
        "log_z": jnp.where(jnp.isfinite(log_z) | (log_z == -jnp.inf), log_z, jnp.nan),
        "log_z_rel_var": rel_var,
        "n_stages": c.k,
        "hit_cap": jnp.asarray(spec.adaptive) & (c.k >= s_max),
        "n_resample": c.n_resample,
        "min_ess_fraction": c.min_ess,
        "final_ess_fraction": _ess_fraction(lwf),
        "mean_acceptance": jnp.nanmean(acc_stages),
        "n_divergent": jnp.sum(c.n_div),
        "n_nonfinite": c.n_nonfinite,
        "unique_fraction": _unique_fraction(jnp.asarray(c.inner.position, dtype)),
        **c.buf,
        "observables": c.obs,
        "positions": c.inner.position,
        "log_weights": c.lw,
        "n_divergent_particle": c.n_div,
    }


# ------------------------------------------------------------------------------------------------ driver
def _lanes_fn(models, params, lane_ids, *, spec: AnnealSpec, n_runs: int, n_disorder: int | None, block: int,
              ):
    """All lanes of ``lane_ids`` [L] (a multiple of ``block``): lax.map over blocks, vmap within a block."""
    _TRACE_COUNTS["anneal"] += 1
    key = params["key"]

    def one(lane):
        if n_disorder is None:
            return _lane(models, fold(key, lane), params, spec)
        d = jnp.minimum(lane // n_runs, n_disorder - 1)  # padding lanes (>= D·R) reuse the last model, dropped
        m = jax.tree.map(lambda a: a[d], models)
        return _lane(m, fold(key, d, lane % n_runs), params, spec)

    blocks = lane_ids.reshape(-1, block)
    out = jax.lax.map(jax.vmap(one), blocks)
    return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), out)


_JIT: dict = {}


def _compiled(spec, n_runs, n_disorder, block, mesh):
    k = (spec, n_runs, n_disorder, block, None if mesh is None else (mesh.devices.shape, tuple(mesh.devices.flat)))
    if k not in _JIT:
        fn = functools.partial(_lanes_fn, spec=spec, n_runs=n_runs, n_disorder=n_disorder, block=block)
        _JIT[k] = jax.jit(fn) if mesh is None else _sharding.shard_over_chains(fn, mesh, 2)
    return _JIT[k]


def anneal(models, params: dict, spec: AnnealSpec, *, n_runs: int, disorder_axis: bool = False,
           run_block: int | None = None, mesh=None) -> AnnealResult:
    """Run ``n_runs`` independent lanes (× D disorder samples) of the annealing loop in one compiled program.

    Args:
        models: one model, or (``disorder_axis=True``) a stack of D models (leaves [D, ...]).
        params: traced parameters: ``key`` (jax key), ``beta`` [], ``schedule`` [S+1] (fixed schedules; any
            [1+] array otherwise), ``eps`` [S+1] (initial / fixed step sizes), ``target_cess`` [],
            ``resample_threshold`` [], ``options`` {name: array}.
        spec: ``AnnealSpec`` (static).
        n_runs: independent runs per model (lanes keyed fold(key, run) or fold(key, d, run): global indices).
        run_block: lanes vmapped together (default: all lanes of a device); results are bitwise independent of
            the device count for a fixed ``run_block`` and, up to float reassociation, of ``run_block``.
        mesh: ``engine.sharding.chain_mesh()`` to shard the lanes over devices (None: one device).

    Returns:
        ``AnnealResult`` with leading axes [R] or [D, R].
    """
    n_dis = int(jax.tree.leaves(models)[0].shape[0]) if disorder_axis else None
    n_lanes = n_runs * (n_dis or 1)
    n_dev = 1 if mesh is None else mesh.devices.size
    per_dev = -(-n_lanes // n_dev)
    block = int(run_block) if run_block else per_dev
    padded = -(-n_lanes // (n_dev * block)) * n_dev * block
    fn = _compiled(spec, n_runs, n_dis, block, mesh)
    ids = np.arange(padded, dtype=np.int32)
    if mesh is None:
        out = fn(models, params, jnp.asarray(ids))
    else:
        out = fn(_sharding.replicate(models, mesh), _sharding.replicate(params, mesh),
                 _sharding.chain_indices(n_lanes, mesh, block))
    out = jax.tree.map(lambda a: np.asarray(a)[:n_lanes], out)
    shape = (n_dis, n_runs) if n_dis is not None else (n_runs,)
    out = jax.tree.map(lambda a: a.reshape(shape + a.shape[1:]), out)
    obs = out.pop("observables")
    return AnnealResult(observables=obs, **out)


def prepare(model, *, key, beta, kernel="auto", n_particles: int, n_sweeps: int, n_measure: int | None = None,
            schedule=None, max_stages: int = 0, resample: bool, resampling: str = "systematic",
            target_cess: float = 0.9, resample_threshold: float = 0.5, step_size=None, n_warmup: int = 10,
            observables: dict | None = None, options: dict | None = None,
            initial_position=None) -> tuple[AnnealSpec, dict]:
    """(spec, params) for ``anneal``: a fixed ``schedule`` (float [K+1] from 0 to β) or, if None, the adaptive one.

    ``step_size``: None (kernel default, adapted from the population for kernels with a target acceptance),
    a scalar or (fixed schedule) [K+1] (fixed, no adaptation). ``model``: one model (not a stack).
    ``initial_position``: None (exact β = 0 draws, ``model.sample_reference``) or [n_particles, dim] starting
    particles, shared by every lane, meant to be equilibrium draws at ``schedule[0]`` (``engine.work``: a fixed
    schedule from β_0 > 0, possibly decreasing). The weights are then relative to Z(schedule[0]).
    """
    options = dict(options or {})
    name = resolve_kernel(model, kernel)
    sampler = make_sampler(model, name, **options)  # validates the options
    static_opts, array_opts = split_options(name, options)
    dtype = jnp.result_type(float)
    continuous = model.kind == "continuous"
    if schedule is not None:
        sched = np.asarray(schedule, np.float64)
        n_stages = sched.size - 1
    else:
        sched = np.array([0.0, float(beta)])
        n_stages = int(max_stages)
    default = sampler.default_step_size
    if step_size is None:
        eps = np.full(n_stages + 1, default)
        adapt = continuous and sampler.target_acceptance is not None
    else:
        eps = np.broadcast_to(np.asarray(step_size, np.float64), (n_stages + 1,)).copy()
        if not np.all(np.isfinite(eps)) or np.any(eps <= 0):
            raise ValueError(f"step_size must be finite and > 0, got {step_size!r}")
        adapt = False
    upper = math.log(math.pi / 2) if name == "sphere" else math.log(default) + 6.0
    n_measure = n_sweeps - n_sweeps // 2 if n_measure is None else int(n_measure)
    if not 1 <= n_measure <= n_sweeps:
        raise ValueError(f"n_measure must be in [1, n_sweeps={n_sweeps}], got {n_measure!r}")
    if resampling not in RESAMPLING:
        raise ValueError(f"unknown resampling {resampling!r}; choose one of: {', '.join(RESAMPLING)}")
    spec = AnnealSpec(
        kernel=name, static_options=static_opts, n_particles=int(n_particles), n_sweeps=int(n_sweeps),
        n_measure=n_measure, max_stages=n_stages, adaptive=schedule is None, resample=bool(resample),
        resampling=resampling, adapt_step=adapt, n_warmup=int(n_warmup) if adapt else 0,
        target_acceptance=sampler.target_acceptance, max_log_step=upper, min_log_step=math.log(default) - 14.0,
        continuous=continuous, observables=tuple(sorted((observables or {}).items())),
    )
    params = {
        "key": as_key(key),
        "beta": jnp.asarray(beta, dtype),
        "schedule": jnp.asarray(sched, dtype),
        "eps": jnp.asarray(eps, dtype),
        "target_cess": jnp.asarray(target_cess, dtype),
        "resample_threshold": jnp.asarray(resample_threshold, dtype),
        "options": array_opts,
    }
    if initial_position is not None:
        x0 = jnp.asarray(initial_position, dtype)
        if x0.shape != (int(n_particles), int(model.dim)):
            raise ValueError(f"initial_position must have shape [n_particles={n_particles}, dim={model.dim}], "
                             f"got {x0.shape}")
        params["initial_position"] = x0
    return spec, params
