"""Annealed importance sampling estimates of log Z(β) with honest error bars.

Reference: R. M. Neal, "Annealed importance sampling", Statistics and Computing 11, 125 (2001); the sigmoid
schedule of R. Grosse, C. Maddison, R. Salakhutdinov, "Annealing between distributions by averaging moments",
NIPS 2013 (§5); effective sample size of importance weights: A. Kong, J. S. Liu, W. H. Wong, JASA 89, 278 (1994).

Every chain starts from an exact draw of the β = 0 ensemble (``model.sample_reference``) and is annealed along
0 = β_0 < β_1 < ... < β_K = β with ``kernels.ais.step`` (weight increment −(β_k − β_{k−1})·E, then
``n_sweeps`` transitions at β_k). Then

    log Z(β) = log Z(0) + log mean_c exp(log w_c),

and, the chains being independent, the delta-method standard error of the log of a mean of weights is
sd(w)/(√n · mean(w)) (computed on max-normalised weights). The weights' ESS = (Σw)²/Σw² tells whether that
error bar can be trusted: when ESS/n_chains < ``UNRELIABLE_ESS_FRACTION`` (1%) or ESS < ``UNRELIABLE_MIN_ESS``
(10) a few chains dominate, the estimate is biased low and the stderr too small (the spread of a handful of
weights says nothing about the ones never drawn); the estimate is then flagged ``diagnostics["unreliable"] = True`` and a
``RuntimeWarning`` is issued (use more temperatures or chains). Chains whose final log weight is NaN are
excluded and counted (``n_excluded``), never averaged.

Step sizes (continuous kernels with a target acceptance, e.g. HMC): unless given, a pilot anneal with independent
keys (``n_pilot`` chains) adapts log ε by Robbins–Monro on the chain-averaged acceptance, ``n_adapt`` updates per
temperature, carrying ε from one temperature to the next; the per-temperature ε_k it ends with are then *frozen*
for the production anneal (so the transitions of the production chains do not depend on those chains and the
estimator stays unbiased).
"""

from __future__ import annotations

import collections
import functools
import math
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from thermodl.kernels import ais as ais_kernel

from .keys import as_key as _as_key
from .estimate import LogZEstimate
from .samplers import make_sampler, resolve_kernel, split_options
from .validate import check_beta, check_betas, check_choice, check_positive_int

__all__ = [
    "AISResult",
    "ais_schedule",
    "run_ais",
    "ais_log_partition",
    "log_weights_estimate",
    "UNRELIABLE_ESS_FRACTION",
    "UNRELIABLE_MIN_ESS",
]

UNRELIABLE_ESS_FRACTION = 0.01
UNRELIABLE_MIN_ESS = 10.0
SCHEDULES = ("sigmoid", "geometric", "linear")


class AISResult(NamedTuple):
    """Raw output of ``run_ais``.

    Fields:
        log_weights: float64 [chains] — final log importance weights log w_c (log Z(β)/Z(0) estimators).
        schedule: float64 [K+1] — the β schedule, from 0 to β.
        step_size: float64 [K+1] — the step size used at each β (NaN for discrete kernels).
        acceptance: float64 [K] — chain-averaged acceptance probability of the transitions at β_1..β_K.
        n_divergent: int [chains] — divergent transitions per chain.
        kernel: the kernel used.
    """

    log_weights: np.ndarray
    schedule: np.ndarray
    step_size: np.ndarray
    acceptance: np.ndarray
    n_divergent: np.ndarray
    kernel: str


def ais_schedule(beta: float, n_temperatures: int, schedule: str = "sigmoid", delta: float = 4.0) -> np.ndarray:
    """An annealing schedule of ``n_temperatures`` points from 0 to ``beta`` (both included).

    ``linear``: β k/K. ``geometric``: 0 followed by a geometric sequence from β·10⁻⁴ to β. ``sigmoid`` (Grosse et
    al. 2013): β·(σ(δ(2k/K − 1)) − σ(−δ)) / (σ(δ) − σ(−δ)) — dense at both ends.

    Returns:
        float64 [n_temperatures].
    """
    beta = check_beta(beta, "beta")
    n = check_positive_int(n_temperatures, "n_temperatures")
    if n < 2:
        raise ValueError(f"n_temperatures must be at least 2 (0 and beta), got {n}")
    check_choice("schedule", schedule, SCHEDULES)
    t = np.linspace(0.0, 1.0, n)
    if schedule == "linear":
        s = t
    elif schedule == "geometric":
        s = np.concatenate([[0.0], np.geomspace(1e-4, 1.0, n - 1)]) if n > 2 else t
    else:
        sig = 1.0 / (1.0 + np.exp(-delta * (2.0 * t - 1.0)))
        s = (sig - sig[0]) / (sig[-1] - sig[0])
    s[0], s[-1] = 0.0, 1.0
    return beta * s


class _Spec(NamedTuple):
    kernel: str
    static_options: tuple
    n_sweeps: int
    target: float | None
    n_adapt: int


def _transition(sampler, key, inner, beta, eps, n_sweeps):
    """n_sweeps transitions at β; returns (inner, mean acceptance, any divergent)."""
    acc, div = 0.0, False
    for s in range(n_sweeps):
        inner, info = sampler.step(jax.random.fold_in(key, s), inner, beta, eps)
        acc = acc + info.acceptance_probability
        div = div | info.is_divergent
    return inner, acc / n_sweeps, div


def _anneal_impl(model, schedule, eps, key_init, key_steps, array_options, *, spec: _Spec, n_chains: int):
    """Production anneal: vmap over chains, scan over the schedule. eps [K+1] fixed."""
    _TRACE_COUNTS["anneal"] += 1
    sampler = make_sampler(model, spec.kernel, **dict(spec.static_options), **array_options)

    def chain(c):
        x0 = model.sample_reference(jax.random.fold_in(key_init, c))
        state = ais_kernel.init(sampler.init(x0))
        kc = jax.random.fold_in(key_steps, c)

        def body(carry, k):
            state, n_div = carry
            key = jax.random.fold_in(kc, k)

            def transition(tkey, inner, beta):
                inner, acc, div = _transition(sampler, tkey, inner, beta, eps[k], spec.n_sweeps)
                return inner, _Inner(acc, div)

            state, info = ais_kernel.step(key, state, schedule[k - 1], schedule[k], transition)
            return (state, n_div + info.is_divergent.astype(jnp.int32)), info.acceptance_probability

        ks = jnp.arange(1, schedule.shape[0])
        (state, n_div), acc = jax.lax.scan(body, (state, jnp.zeros((), jnp.int32)), ks)
        return state.log_weight, acc, n_div

    return jax.vmap(chain)(jnp.arange(n_chains))


class _Inner(NamedTuple):
    acceptance_probability: jax.Array
    is_divergent: jax.Array


def _pilot_impl(model, schedule, eps0, key_init, key_steps, array_options, *, spec: _Spec, n_chains: int):
    """Pilot anneal adapting log ε per temperature (Robbins–Monro, carried along the schedule). Returns eps [K+1]."""
    _TRACE_COUNTS["pilot"] += 1
    sampler = make_sampler(model, spec.kernel, **dict(spec.static_options), **array_options)
    x0 = jax.vmap(lambda c: model.sample_reference(jax.random.fold_in(key_init, c)))(jnp.arange(n_chains))
    inner = jax.vmap(sampler.init)(x0)
    vstep = jax.vmap(lambda k, s, b, e: sampler.step(k, s, b, e), in_axes=(0, 0, None, None))
    ckeys = jax.vmap(lambda c: jax.random.fold_in(key_steps, c))(jnp.arange(n_chains))

    def body(carry, k):
        inner, log_eps = carry

        def adapt(j, c):
            inner, log_eps = c
            keys = jax.vmap(lambda kk: jax.random.fold_in(jax.random.fold_in(kk, k), j))(ckeys)
            inner, info = vstep(keys, inner, schedule[k], jnp.exp(log_eps))
            acc = jnp.nanmean(info.acceptance_probability)
            acc = jnp.where(jnp.isnan(acc), 0.0, acc)
            # gain decays within a temperature so ε settles; scale 1 on log ε is a factor e per unit error.
            return inner, log_eps + (acc - spec.target) * 2.0 / (1.0 + j) ** 0.5

        inner, log_eps = jax.lax.fori_loop(0, spec.n_adapt, adapt, (inner, log_eps))
        return (inner, log_eps), log_eps

    ks = jnp.arange(1, schedule.shape[0])
    _, log_eps = jax.lax.scan(body, (inner, jnp.log(eps0)), ks)
    return jnp.exp(jnp.concatenate([log_eps[:1], log_eps]))


_JIT: dict = {}
_TRACE_COUNTS: collections.Counter = collections.Counter()  # traces (= compilations) per function, for tests


def _jitted(kind, spec, n_chains):
    k = (kind, spec, n_chains)
    if k not in _JIT:
        impl = _anneal_impl if kind == "anneal" else _pilot_impl
        _JIT[k] = jax.jit(functools.partial(impl, spec=spec, n_chains=n_chains))
    return _JIT[k]


def _resolve_schedule(beta, n_temperatures, schedule) -> np.ndarray:
    if isinstance(schedule, str):
        return ais_schedule(beta, n_temperatures, schedule)
    sched = check_betas(schedule, "schedule", increasing=True, start_at_zero=True)
    if sched.size < 2:
        raise ValueError(f"schedule must hold at least 2 points, got {sched.size}")
    if not math.isclose(sched[-1], beta, rel_tol=1e-9, abs_tol=1e-12):
        raise ValueError(f"schedule must end at beta={beta!r}, got schedule[-1] = {sched[-1]!r}")
    return sched


def run_ais(
    model: Any,
    schedule,
    *,
    key,
    n_chains: int = 256,
    n_sweeps: int = 1,
    kernel: str = "auto",
    step_size=None,
    n_pilot: int = 64,
    n_adapt: int = 8,
    **kernel_options,
) -> AISResult:
    """Anneal ``n_chains`` independent chains along ``schedule`` (float [K+1], 0 to β) and return log weights.

    Args:
        model: a thermodl model.
        schedule: float [K+1], strictly increasing, starting at 0.
        key: ``jax.random.key`` (or int seed); chain c uses fold_in(fold_in(key, ·), c) streams.
        n_chains: independent annealing chains.
        n_sweeps: transitions per temperature.
        kernel: see ``engine.samplers``.
        step_size: scalar or [K+1]; default: adapted by a pilot anneal (kernels with a target acceptance) or the
            kernel default.
        n_pilot, n_adapt: pilot chains and adaptation updates per temperature.
        **kernel_options: e.g. ``num_integration_steps`` for HMC.

    Returns:
        ``AISResult``.
    """
    sched = check_betas(schedule, "schedule", increasing=True, start_at_zero=True)
    n_chains = check_positive_int(n_chains, "n_chains")
    n_sweeps = check_positive_int(n_sweeps, "n_sweeps")
    n_pilot = check_positive_int(n_pilot, "n_pilot")
    n_adapt = check_positive_int(n_adapt, "n_adapt")
    key = _as_key(key)
    name = resolve_kernel(model, kernel)
    static_opts, array_opts = split_options(name, kernel_options)
    sampler = make_sampler(model, name, **kernel_options)
    dtype = jnp.result_type(float)
    sched_j = jnp.asarray(sched, dtype)
    spec = _Spec(name, static_opts, n_sweeps, sampler.target_acceptance, n_adapt)
    discrete = model.kind == "discrete"

    if step_size is None:
        eps = jnp.full(sched.shape, sampler.default_step_size, dtype)
        if sampler.target_acceptance is not None:
            eps = _jitted("pilot", spec, n_pilot)(
                model, sched_j, eps[0], jax.random.fold_in(key, 2), jax.random.fold_in(key, 3), array_opts
            )
    else:
        e = np.broadcast_to(np.asarray(step_size, np.float64), sched.shape)
        if not np.all(np.isfinite(e)) or np.any(e <= 0):
            raise ValueError(f"step_size must be finite and > 0, got {step_size!r}")
        eps = jnp.asarray(e, dtype)

    log_w, acc, n_div = _jitted("anneal", spec, n_chains)(
        model, sched_j, eps, jax.random.fold_in(key, 0), jax.random.fold_in(key, 1), array_opts
    )
    return AISResult(
        log_weights=np.asarray(log_w, np.float64),
        schedule=sched,
        step_size=np.full(sched.shape, np.nan) if discrete else np.asarray(eps, np.float64),
        acceptance=np.nanmean(np.asarray(acc, np.float64), axis=0),
        n_divergent=np.asarray(n_div),
        kernel=name,
    )


def log_weights_estimate(log_weights) -> tuple[float, float, float, int]:
    """(log mean exp(log w), delta-method stderr, ESS, n_excluded) over the chains whose log w is not NaN.

    Weights of +inf cannot be averaged either and are excluded too; −inf weights (w = 0) are kept.
    """
    lw = np.asarray(log_weights, np.float64)
    ok = ~np.isnan(lw) & (lw != np.inf)
    lw = lw[ok]
    n = lw.size
    if n == 0 or not np.any(np.isfinite(lw)):
        return math.nan, math.nan, 0.0, int((~ok).sum())
    w = np.exp(lw - lw.max())
    mean = w.mean()
    value = float(np.log(mean) + lw.max())
    stderr = float(w.std(ddof=1) / math.sqrt(n) / mean) if n > 1 else math.nan
    ess = float(w.sum() ** 2 / (w**2).sum())
    return value, stderr, ess, int((~ok).sum())


def ais_log_partition(
    model: Any,
    beta: float,
    *,
    key,
    n_chains: int = 256,
    n_temperatures: int = 200,
    schedule="sigmoid",
    n_sweeps: int = 1,
    kernel: str = "auto",
    step_size=None,
    **options,
) -> LogZEstimate:
    """log Z(β) by annealed importance sampling from the β = 0 reference (Neal 2001).

    Args:
        model: a thermodl model.
        beta: target inverse temperature (≥ 0).
        key: ``jax.random.key`` (or int seed).
        n_chains: independent annealing chains (the error bar comes from their spread).
        n_temperatures: points of the schedule including 0 and β (ignored for an explicit schedule).
        schedule: ``"sigmoid"`` | ``"geometric"`` | ``"linear"`` or an explicit float [K+1] array from 0 to β.
        n_sweeps: transitions per temperature.
        kernel, step_size, **options: see ``run_ais`` (``n_pilot``, ``n_adapt``, kernel options).

    Returns:
        ``LogZEstimate(method="ais")``; diagnostics: ``ess``, ``ess_fraction``, ``n_chains``, ``n_excluded``
        (NaN weights), ``unreliable``, ``n_temperatures``, ``mean_acceptance``, ``min_acceptance``,
        ``n_divergent``, ``kernel``, ``log_weight_std``, ``step_size_range``.
    """
    beta = check_beta(beta, "beta")
    sched = _resolve_schedule(beta, n_temperatures, schedule)
    log_z0 = float(model.log_reference_partition())
    if beta == 0.0:
        return LogZEstimate(log_z0, 0.0, "ais", 0.0, {"n_chains": 0, "note": "beta = 0: log Z(0) is exact"})
    res = run_ais(model, sched, key=key, n_chains=n_chains, n_sweeps=n_sweeps, kernel=kernel,
                  step_size=step_size, **options)
    value, stderr, ess, n_excl = log_weights_estimate(res.log_weights)
    n_used = res.log_weights.size - n_excl
    frac = ess / n_used if n_used else 0.0
    unreliable = bool(frac < UNRELIABLE_ESS_FRACTION or ess < UNRELIABLE_MIN_ESS or not np.isfinite(stderr))
    if unreliable:
        warnings.warn(
            f"AIS at beta={beta:g}: weight ESS {ess:.1f} of {n_used} chains ({frac:.2%}); the error bar is not "
            "trustworthy — use more temperatures or chains",
            RuntimeWarning,
            stacklevel=2,
        )
    finite_lw = res.log_weights[np.isfinite(res.log_weights)]
    diagnostics = {
        "ess": ess,
        "ess_fraction": frac,
        "n_chains": int(res.log_weights.size),
        "n_excluded": n_excl,
        "unreliable": unreliable,
        "n_temperatures": int(sched.size),
        "n_sweeps": n_sweeps,
        "kernel": res.kernel,
        "mean_acceptance": float(np.nanmean(res.acceptance)),
        "min_acceptance": float(np.nanmin(res.acceptance)),
        "n_divergent": int(res.n_divergent.sum()),
        "log_weight_std": float(finite_lw.std()) if finite_lw.size > 1 else math.nan,
        "step_size_range": (float(np.nanmin(res.step_size)), float(np.nanmax(res.step_size)))
        if np.any(np.isfinite(res.step_size)) else None,
    }
    return LogZEstimate(log_z0 + value, stderr, "ais", float(beta), diagnostics)
