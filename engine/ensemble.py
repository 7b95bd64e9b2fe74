"""Equilibrium sampling of many chains at many fixed inverse temperatures: ``run_ensemble``.

Layout: states ``[T, chains, ...]`` (``[D, T, chains, ...]`` with a disorder axis). One jitted *chunk* function
runs ``chunk_size`` steps of every chain at every temperature — ``lax.scan`` over steps of a ``vmap`` (β) of a
``vmap`` (chains) of the one-chain kernel step — and a host loop calls that SAME compiled function until the run is
done (a progress callback runs between chunks). Steps past the end of the run inside the last chunk are skipped
with ``lax.cond``, so any run length reuses the compiled chunk.

Traced (never recompile): β values, the PRNG key, the model's arrays (couplings, data), the step size, run lengths.
Static (compile once per value): array shapes (T, chains, dim, number of trace draws), kernel name and its integer
options, chunk size, the observable functions.

Randomness: the key of step t (global, warmup included) of chain c at temperature k (disorder sample d) is
``fold_in(fold_in(fold_in([fold_in(key_steps, d)], k), c), t)`` with ``key_steps = fold_in(key, 0)``; initial
positions use ``fold_in(key, 1)`` the same way. Results are therefore independent of the chunk size.

Observables are reduced inside the scan (``engine.observables``): per [temperature, chain] split-half moments of
the energy, of the magnetisation vector (m, |m|, m², m⁴) when the model has ``magnetization(x)``, and of any user
observable; acceptance moments; divergence counts; a non-finite-energy flag. Thinned traces ``[T, chains, draws]``
only on request (``trace_every``).

Step sizes (continuous kernels with a target acceptance): dual averaging per temperature during warmup on the
chain-averaged acceptance (``kernels.adaptation``; Hoffman & Gelman, JMLR 15, 1593 (2014) §3.2), frozen after.
"""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from thermodl.kernels import adaptation

from . import observables as obs
from .diagnostics import Summary, ess_from_moments, split_rhat_from_moments, summarise
from .samplers import Sampler, make_sampler, resolve_kernel
from .validate import check_betas, check_nonnegative_int, check_positive_int

__all__ = ["EnsembleResult", "run_ensemble", "pooled_variance"]

# Number of times each jitted function body was traced (= compiled); tests use it to prove no recompilation.
_TRACE_COUNTS: collections.Counter = collections.Counter()
_JIT_CACHE: dict = {}


class _Spec(NamedTuple):
    """Static configuration of the compiled functions (hashable)."""

    kernel: str
    static_options: tuple
    chunk_len: int
    phase: str  # "init" | "run"
    observables: tuple  # ((name, fn), ...)
    has_magnetization: bool
    trace_every: int
    n_draws: int
    target: float | None


class _ChainStats(NamedTuple):
    energy: obs.SplitMoments
    magnetization: Any  # SplitMoments over [4] or None
    user: dict
    acceptance: obs.Moments
    n_divergent: jax.Array
    nonfinite: jax.Array
    traces: dict


@dataclass(frozen=True)
class EnsembleResult:
    """Streamed statistics of ``run_ensemble``; per-chain arrays have axes ``[(D,) T, chains, ...]``.

    Attributes:
        betas: float [T] — the inverse temperatures.
        kernel: the kernel used.
        n_steps, n_warmup: production and warmup steps per chain.
        energy: ``SplitMoments`` of E per chain (count [..., T, C], mean [..., T, C]).
        magnetization: ``SplitMoments`` of (m, |m|, m², m⁴) per chain (mean [..., T, C, 4]) or None.
        observables: {name: ``SplitMoments``} of the user observables.
        acceptance: ``Moments`` of the acceptance probability per chain.
        n_divergent: int [..., T, C] — divergent (NaN) steps per chain.
        nonfinite: bool [..., T, C] — the chain's energy was NaN/inf at some production step (chain excluded).
        step_size: float [..., T] — the (adapted, frozen) step size per temperature.
        final_state: kernel State with leaves [..., T, C, ...] (continue from ``final_state.position``).
        traces: {name: float [..., T, C, draws(, ...)]} thinned traces, or None.
    """

    betas: np.ndarray
    kernel: str
    n_steps: int
    n_warmup: int
    energy: obs.SplitMoments
    magnetization: Any
    observables: dict
    acceptance: obs.Moments
    n_divergent: np.ndarray
    nonfinite: np.ndarray
    step_size: np.ndarray
    final_state: Any
    traces: dict | None

    def _get(self, name: str) -> obs.SplitMoments:
        if name == "energy":
            return self.energy
        if name == "magnetization" and self.magnetization is not None:
            return self.magnetization
        if name in self.observables:
            return self.observables[name]
        raise ValueError(f"unknown observable {name!r}; have: energy, {', '.join(self._names())}")

    def _names(self):
        return (["magnetization"] if self.magnetization is not None else []) + list(self.observables)

    def _exclude(self, extra_dims: int):
        return np.expand_dims(self.nonfinite, tuple(range(-extra_dims, 0))) if extra_dims else self.nonfinite

    def mean(self, name: str = "energy") -> Summary:
        """⟨name⟩ per temperature: mean over chains of the per-chain means ± stderr (chains independent);
        chains with non-finite energy excluded and counted. Shapes [..., T(, *value)]."""
        tot = obs.split_moments_total(self._get(name))
        per_chain = np.asarray(tot.mean, np.float64)
        extra = per_chain.ndim - self.nonfinite.ndim
        ax = self.nonfinite.ndim - 1
        return summarise(per_chain, chain_axis=ax, exclude=self._exclude(extra))

    def mean_energy(self) -> Summary:
        """U(β) = ⟨E⟩ per temperature ± stderr, shape [..., T]."""
        return self.mean("energy")

    def energy_variance(self) -> Summary:
        """Var(E) per temperature from the pooled chains ± jackknife-over-chains stderr, shape [..., T]."""
        tot = obs.split_moments_total(self.energy)
        return pooled_variance(tot, exclude=self.nonfinite)

    def specific_heat(self) -> Summary:
        """C(β) = β² Var(E) per temperature (total, not per site) ± jackknife stderr, shape [..., T]."""
        v = self.energy_variance()
        b2 = np.asarray(self.betas, np.float64) ** 2
        return Summary(v.mean * b2, v.stderr * b2, v.n_used, v.n_excluded)

    def acceptance_rate(self) -> Summary:
        """Mean acceptance probability per temperature ± stderr over chains, shape [..., T]."""
        return summarise(np.asarray(self.acceptance.mean, np.float64), chain_axis=-1, exclude=self.nonfinite)

    def rhat(self, name: str = "energy") -> np.ndarray:
        """Split R-hat per temperature from the streamed half-chain moments, shape [..., T(, *value)]."""
        return split_rhat_from_moments(self._get(name), chain_axis=-1)

    def ess(self, name: str = "energy") -> np.ndarray:
        """Batch-means ESS per temperature (chains as batches), shape [..., T(, *value)]."""
        return ess_from_moments(self._get(name), chain_axis=-1)


def pooled_variance(m: obs.Moments, exclude=None) -> Summary:
    """Variance of the pooled draws of all chains (last axis of ``m.count``) with a leave-one-chain-out jackknife
    standard error (chains independent; B. Efron, *The Jackknife, the Bootstrap and Other Resampling Plans*,
    1982). Non-finite chains (or ``exclude``) are left out and counted."""
    mu = np.asarray(m.mean, np.float64)
    n = np.broadcast_to(np.asarray(m.count, np.float64), mu.shape)  # a shared scalar count is allowed
    m2 = np.asarray(m.m2, np.float64)
    ok = np.isfinite(mu) & np.isfinite(m2) & (n > 0)
    if exclude is not None:
        ok &= ~np.asarray(exclude, bool)
    nz = np.where(ok, n, 0.0)
    mz = np.where(ok, mu, 0.0)
    m2z = np.where(ok, m2, 0.0)
    k = ok.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = (nz * mz).sum(-1, keepdims=True) / nz.sum(-1, keepdims=True)  # centre for accuracy
        d = np.where(ok, mz - ref, 0.0)
        s0, s1, s2 = nz.sum(-1), (nz * d).sum(-1), (m2z + nz * d**2).sum(-1)
        var_all = (s2 - s1**2 / s0) / (s0 - 1)
        # leave chain c out
        l0 = s0[..., None] - nz
        l1 = s1[..., None] - nz * d
        l2 = s2[..., None] - (m2z + nz * d**2)
        loo = (l2 - l1**2 / l0) / (l0 - 1)
        loo_mean = np.where(ok, loo, 0.0).sum(-1) / k
        jk = np.sqrt((k - 1) / k * np.where(ok, (loo - loo_mean[..., None]) ** 2, 0.0).sum(-1))
    return Summary(var_all, np.where(k >= 2, jk, np.nan), k, n.shape[-1] - k)


# ------------------------------------------------------------------------------------------- compiled pieces
def _fresh_stats(spec: _Spec, model, state) -> _ChainStats:
    dt = state.energy.dtype
    x = state.position
    mag = obs.split_moments_init((4,), dt) if spec.has_magnetization else None
    user, traces = {}, {}
    for name, fn in spec.observables:
        shape = jax.eval_shape(fn, x).shape
        user[name] = obs.split_moments_init(shape, dt)
        if spec.n_draws:
            traces[name] = jnp.zeros((spec.n_draws,) + shape, dt)
    if spec.n_draws:
        traces["energy"] = jnp.zeros((spec.n_draws,), dt)
        if spec.has_magnetization:
            traces["magnetization"] = jnp.zeros((spec.n_draws,), dt)
    return _ChainStats(
        obs.split_moments_init((), dt), mag, user, obs.moments_init((), dt),
        jnp.zeros((), jnp.int32), jnp.zeros((), bool), traces,
    )


def _update_stats(spec: _Spec, model, stats: _ChainStats, state, info, tp, n_prod) -> _ChainStats:
    """One production step of one chain; ``tp`` = production step index (traced)."""
    x, e = state.position, state.energy
    energy = obs.split_moments_update(stats.energy, e, tp, n_prod)
    mag = stats.magnetization
    vals = {}
    if spec.has_magnetization:
        m = model.magnetization(x)
        vals["magnetization"] = m
        mvec = jnp.stack([m, jnp.abs(m), m**2, m**4]).astype(e.dtype)
        mag = obs.split_moments_update(mag, mvec, tp, n_prod)
    user = {}
    for name, fn in spec.observables:
        v = fn(x)
        vals[name] = v
        user[name] = obs.split_moments_update(stats.user[name], v, tp, n_prod)
    traces = stats.traces
    if spec.n_draws:
        vals["energy"] = e
        record = (tp + 1) % spec.trace_every == 0
        idx = jnp.clip((tp + 1) // spec.trace_every - 1, 0, spec.n_draws - 1)
        traces = {
            k: buf.at[idx].set(jnp.where(record, jnp.asarray(vals[k], buf.dtype), buf[idx]))
            for k, buf in stats.traces.items()
        }
    return _ChainStats(
        energy, mag, user,
        obs.moments_update(stats.acceptance, info.acceptance_probability),
        stats.n_divergent + info.is_divergent.astype(jnp.int32),
        stats.nonfinite | ~jnp.isfinite(e),
        traces,
    )


def _sampler(spec: _Spec, model, array_options) -> Sampler:
    return make_sampler(model, spec.kernel, **dict(spec.static_options), **array_options)


def _init_impl(model, positions, init_keys, array_options, *, spec: _Spec):
    """Kernel states and empty statistics for all [T, C] chains; positions drawn from the reference ensemble
    (``model.sample_reference`` with ``init_keys`` [T, C]) when ``positions`` is None."""
    _TRACE_COUNTS["init"] += 1
    sampler = _sampler(spec, model, array_options)
    if positions is None:
        positions = jax.vmap(jax.vmap(model.sample_reference))(init_keys)
    states = jax.vmap(jax.vmap(sampler.init))(positions)
    stats = jax.vmap(jax.vmap(functools.partial(_fresh_stats, spec, model)))(states)
    return states, stats


def _chunk_impl(model, betas, base_keys, carry, t0, n_end, n_warmup, n_prod, step_size, array_options, *,
                spec: _Spec):
    """Run ``spec.chunk_len`` steps (those with global index t < n_end) of all [T, C] chains.

    Warmup (t < n_warmup) and production share this one compiled function: during warmup the step size adapts
    (when ``spec.target`` is set) and no statistics are taken; from t = n_warmup on the averaged step size is
    frozen and the statistics are updated (``lax.cond`` on the unbatched t, so warmup steps cost no stats work).
    """
    _TRACE_COUNTS[spec.phase] += 1
    sampler = _sampler(spec, model, array_options)
    vstep = jax.vmap(jax.vmap(sampler.step, in_axes=(0, 0, None, None)), in_axes=(0, 0, 0, 0))
    vkeys = jax.vmap(jax.vmap(jax.random.fold_in, in_axes=(0, None)), in_axes=(0, None))
    upd = functools.partial(_update_stats, spec, model)
    vupd = jax.vmap(jax.vmap(upd, in_axes=(0, 0, 0, None, None)), in_axes=(0, 0, 0, None, None))
    adaptive = spec.target is not None

    def do_step(carry, t):
        states, stats, astate = carry
        warm = t < n_warmup
        if adaptive:
            eps = jnp.where(warm, adaptation.step_size(astate), adaptation.final_step_size(astate))
        else:
            eps = step_size
        states, info = vstep(vkeys(base_keys, t), states, betas, eps)
        if adaptive:
            acc = jnp.nanmean(info.acceptance_probability, axis=-1)
            # target as an array: adaptation.update's range check is for concrete Python values only
            new = adaptation.update(astate, acc, jnp.asarray(spec.target, acc.dtype))
            astate = jax.tree.map(lambda n, o: jnp.where(warm, n, o), new, astate)
        stats = jax.lax.cond(warm, lambda s: s, lambda s: vupd(s, states, info, t - n_warmup, n_prod), stats)
        return states, stats, astate

    def body(carry, i):
        t = t0 + i
        return jax.lax.cond(t < n_end, do_step, lambda c, _: c, carry, t), None

    carry, _ = jax.lax.scan(body, carry, jnp.arange(spec.chunk_len, dtype=jnp.int32))
    return carry


def _compiled(kind: str, spec: _Spec, disorder: bool):
    """The jitted (and, with a disorder axis, vmapped over the model's leading axis) function, cached."""
    key = (kind, spec, disorder)
    if key not in _JIT_CACHE:
        if kind == "init":
            fn = functools.partial(_init_impl, spec=spec)
            if disorder:
                fn = jax.vmap(fn, in_axes=(0, 0, 0, None))
        else:
            fn = functools.partial(_chunk_impl, spec=spec)
            if disorder:
                fn = jax.vmap(fn, in_axes=(0, None, 0, 0, None, None, None, None, 0, None))
        _JIT_CACHE[key] = jax.jit(fn)
    return _JIT_CACHE[key]


def _split_options(options: dict) -> tuple[tuple, dict]:
    """Python scalars and strings are static (loop counts, switches); arrays (e.g. inverse_mass [dim]) are traced."""
    static, traced = [], {}
    for k, v in sorted(options.items()):
        if isinstance(v, (bool, int, float, str)) or v is None:
            static.append((k, v))
        else:
            traced[k] = jnp.asarray(v)
    return tuple(static), traced


def _as_key(key):
    if key is None:
        raise ValueError("key must be a jax.random.key (or an int seed), got None")
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    return key


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _derive_keys(key, n_disorder: int | None, n_temps: int, n_chains: int):
    """[(D,) T, C] keys fold_in(fold_in(fold_in(key, d), k), c)."""
    k_idx, c_idx = jnp.arange(n_temps), jnp.arange(n_chains)

    def per_disorder(kd):
        return jax.vmap(lambda k: jax.vmap(lambda c: jax.random.fold_in(jax.random.fold_in(kd, k), c))(c_idx))(k_idx)

    if n_disorder is None:
        return per_disorder(key)
    return jax.vmap(lambda d: per_disorder(jax.random.fold_in(key, d)))(jnp.arange(n_disorder))


# ------------------------------------------------------------------------------------------------ the runner
def run_ensemble(
    model: Any,
    betas,
    *,
    key,
    n_chains: int,
    n_steps: int,
    n_warmup: int | None = None,
    kernel: str = "auto",
    step_size=None,
    adapt: bool = True,
    chunk_size: int = 200,
    observables: dict[str, Callable] | None = None,
    trace_every: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    initial_position=None,
    disorder_axis: bool = False,
    **kernel_options,
) -> EnsembleResult:
    """Sample ``n_chains`` independent chains at each inverse temperature and stream their statistics.

    Args:
        model: a thermodl model (``models/base.py``); with ``disorder_axis=True`` a stack of models (leaves with
            a leading axis D, from ``models.stack_models``) — every output then gains a leading D axis.
        betas: float [T] (or scalar) inverse temperatures, finite and ≥ 0.
        key: ``jax.random.key`` (or an int seed).
        n_chains: chains per temperature (C).
        n_steps: production steps per chain (one kernel step, or one sweep for discrete kernels).
        n_warmup: warmup steps (discarded; step sizes adapt here); default ``n_steps // 2``.
        kernel: ``"auto"`` or a kernel name (see ``engine.samplers``).
        step_size: initial/fixed step size, scalar or [T]; default the kernel's default.
        adapt: adapt the step size per temperature during warmup (kernels with a target acceptance).
        chunk_size: steps per compiled chunk (static; results do not depend on it).
        observables: {name: fn(x [dim]) -> array} extra observables streamed per chain.
        trace_every: record thinned traces of energy/magnetisation/observables every this many production steps.
        progress: called as ``progress(steps_done, steps_total)`` after each chunk.
        initial_position: optional start, shape [dim], [C, dim] or [T, C, dim] (default: reference draws).
        disorder_axis: the model carries a leading disorder axis to vmap over.
        **kernel_options: passed to ``make_sampler`` (e.g. ``num_integration_steps``, ``inverse_mass``).

    Returns:
        ``EnsembleResult``.
    """
    betas_np = check_betas(betas, "betas")
    n_chains = check_positive_int(n_chains, "n_chains")
    n_steps = check_positive_int(n_steps, "n_steps")
    n_warmup = n_steps // 2 if n_warmup is None else check_nonnegative_int(n_warmup, "n_warmup")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    if trace_every is not None:
        trace_every = check_positive_int(trace_every, "trace_every")
    if observables is not None and not isinstance(observables, dict):
        raise ValueError(f"observables must be a dict of name -> fn(x), got {type(observables).__name__}")
    observables = dict(observables or {})
    for name, fn in observables.items():
        if name in ("energy", "magnetization") or not callable(fn):
            raise ValueError(f"bad observable {name!r}: names must not be 'energy'/'magnetization', values callable")
    key = _as_key(key)
    name = resolve_kernel(model, kernel)
    static_opts, array_opts = _split_options(kernel_options)
    probe = make_sampler(model if not disorder_axis else jax.tree.map(lambda a: a[0], model), name, **kernel_options)

    n_temps = betas_np.shape[0]
    n_dis = None
    if disorder_axis:
        leaves = jax.tree.leaves(model)
        if not leaves or any(np.ndim(leaf) == 0 for leaf in leaves):
            raise ValueError("disorder_axis=True needs a stacked model (models.stack_models) with a leading axis")
        n_dis = int(np.shape(leaves[0])[0])
    lead = () if n_dis is None else (n_dis,)
    dim = int(model.dim)
    dtype = jnp.result_type(float)
    betas_j = jnp.asarray(betas_np, dtype)

    # step sizes [(D,) T]
    eps0 = probe.default_step_size if step_size is None else step_size
    eps_np = np.broadcast_to(np.asarray(eps0, np.float64), (n_temps,))
    if not np.all(np.isfinite(eps_np)) or np.any(eps_np <= 0):
        raise ValueError(f"step_size must be finite and > 0, got {step_size!r}")
    eps = jnp.broadcast_to(jnp.asarray(eps_np, dtype), lead + (n_temps,))

    # initial positions [(D,) T, C, dim]
    k_steps, k_init = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    ikeys = _derive_keys(k_init, n_dis, n_temps, n_chains)
    positions = None
    if initial_position is not None:
        p = jnp.asarray(initial_position, dtype)
        if p.shape[-1] != dim or p.ndim > 3 + len(lead) or p.ndim < 1:
            raise ValueError(f"initial_position must have shape [dim], [C, dim] or [T, C, dim] with dim={dim}, "
                             f"got {p.shape}")
        positions = jnp.broadcast_to(p, lead + (n_temps, n_chains, dim))
    base_keys = _derive_keys(k_steps, n_dis, n_temps, n_chains)

    has_mag = callable(getattr(model, "magnetization", None))
    n_draws = n_steps // trace_every if trace_every else 0
    obs_items = tuple(sorted(observables.items()))

    def spec(phase):
        return _Spec(name, static_opts, chunk_size, phase, obs_items, has_mag, trace_every or 0, n_draws,
                     probe.target_acceptance)

    states, stats = _compiled("init", spec("init"), n_dis is not None)(model, positions, ikeys, array_opts)
    total, i32 = n_warmup + n_steps, np.int32
    do_adapt = bool(adapt) and probe.target_acceptance is not None and n_warmup > 0
    astate = None
    if do_adapt:
        astate = adaptation.init(eps)  # elementwise: works for [T] and [D, T]
    run_spec = spec("run")._replace(target=probe.target_acceptance if do_adapt else None)
    fn = _compiled("chunk", run_spec, n_dis is not None)
    carry = (states, stats, astate)
    for t in range(0, total, chunk_size):
        carry = fn(model, betas_j, base_keys, carry, i32(t), i32(total), i32(n_warmup), i32(n_steps), eps,
                   array_opts)
        if progress is not None:
            progress(min(t + chunk_size, total), total)
    states, stats, astate = carry
    if do_adapt:
        eps = adaptation.final_step_size(astate)

    host = jax.device_get(stats)
    return EnsembleResult(
        betas=betas_np,
        kernel=name,
        n_steps=n_steps,
        n_warmup=n_warmup,
        energy=host.energy,
        magnetization=host.magnetization,
        observables=host.user,
        acceptance=host.acceptance,
        n_divergent=np.asarray(host.n_divergent),
        nonfinite=np.asarray(host.nonfinite),
        step_size=np.asarray(eps),
        final_state=states,
        traces=host.traces if n_draws else None,
    )
