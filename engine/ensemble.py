"""Equilibrium ensembles: ``run_ensemble`` and the host driver of the ONE runner (``engine.equilibrium``).

``run_ensemble(model, betas, ...)`` samples independent chains at every inverse temperature; parallel tempering
(``engine.tempering.run_tempering``) is the same driver with ``exchange=True`` and ladder rounds. The driver
(``start`` → ``advance`` … → ``finish``) validates once, builds the lane keys, pads and shards the chain axis
over the devices, calls the compiled chunk program until the run is done (``progress(done, total)`` between
chunks) and brings the statistics back to the host as an ``EnsembleResult``.

Shapes in results: ``[(D,) T, (A,) C]`` — the disorder axis D only with ``disorder_axis=True`` (a stack of
models), the copy axis A only with ``n_copies=2``; C chains is always last.

Randomness: lane (d, k, a, c) uses ``fold(point_key[d, k], a, c)``, with ``point_key[d, k] = fold(key, d, k)``
(or the caller's own key array [(D,) T], e.g. one key per sweep point); results are independent of
``chunk_size`` and of the number of devices (bitwise when ``chain_block`` is fixed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import chainstats as cs
from . import observables as obs
from . import sharding
from .diagnostics import Summary, ess_from_moments, pooled_variance, split_rhat_from_moments, summarise
from .checkpoint import Checkpointer, fingerprint
from .equilibrium import ADAPT_MODES, RunSpec, program
from .keys import as_key, fold
from .progress import progress_callback
from .kernel_binding import make_sampler, resolve_kernel, split_options
from .validate import check_betas, check_choice, check_nonnegative_int, check_positive_int

__all__ = ["EnsembleResult", "run_ensemble", "pooled_variance", "Session", "start", "advance", "finish"]


@dataclass(frozen=True)
class EnsembleResult:
    """Streamed statistics of an equilibrium run; per-lane arrays have axes ``[(D,) T, (A,) C, ...]``.

    Attributes:
        betas: float [T] — the inverse temperatures (the final ladder for parallel tempering).
        kernel: the kernel used. n_steps, n_warmup: production and warmup steps. n_copies: A.
        energy: ``SplitMoments`` of E per lane. magnetization: ``SplitMoments`` of (m, |m|, m², m⁴) or None.
        observables: {name: ``SplitMoments``}. acceptance: ``Moments`` of the acceptance probability per lane.
        n_divergent: int per lane. nonfinite: bool per lane (energy non-finite at a production step: excluded).
        step_size: the frozen step sizes, [(D,) T] (``adapt="group"``/``"none"``) or per lane (``"chain"``).
        bridge_down, bridge_up: ``LogMeanExp`` per lane of ∓(Δβ/2)·E towards the neighbouring slots.
        exchange: None, or {"swap_acceptance" [(D,) T−1, (A,) C], "swap_rate" [(D,) T−1] pooled,
            "round_trips" [(D,) (A,) C], "labels" per lane} for replica-exchange runs.
        overlap_counts: int [(D,) T, C, bins] histogram of q between copies 0 and 1, or None.
        final_state: kernel State with leaves per lane (continue from ``final_state.position``).
        traces: {name: [..., C, draws(, ...)]} thinned traces, or None.
    """

    betas: np.ndarray
    kernel: str
    n_steps: int
    n_warmup: int
    n_copies: int
    energy: obs.SplitMoments
    magnetization: Any
    observables: dict
    acceptance: obs.Moments
    n_divergent: np.ndarray
    nonfinite: np.ndarray
    step_size: np.ndarray
    bridge_down: obs.LogMeanExp
    bridge_up: obs.LogMeanExp
    exchange: dict | None
    overlap_counts: np.ndarray | None
    final_state: Any
    traces: dict | None
    ladder_history: np.ndarray | None = None
    barrier: float | None = None

    @property
    def positions(self):
        """Final positions per lane [..., dim]."""
        return self.final_state.position

    @property
    def swap_rate(self) -> np.ndarray | None:
        """Pooled swap acceptance of each neighbouring pair [(D,) T−1] (replica exchange only)."""
        return None if self.exchange is None else self.exchange["swap_rate"]

    @property
    def round_trips(self) -> np.ndarray | None:
        """Completed round trips per system [(D,) (A,) C] (replica exchange only)."""
        return None if self.exchange is None else self.exchange["round_trips"]

    @property
    def round_trip_rate(self) -> float | None:
        """Round trips per swap round per system (replica exchange only)."""
        return None if self.exchange is None else self.exchange["round_trip_rate"]

    def _get(self, name: str) -> obs.SplitMoments:
        if name == "energy":
            return self.energy
        if name == "magnetization" and self.magnetization is not None:
            return self.magnetization
        if name in self.observables:
            return self.observables[name]
        have = ["energy"] + (["magnetization"] if self.magnetization is not None else []) + list(self.observables)
        raise ValueError(f"unknown observable {name!r}; have: {', '.join(have)}")

    def mean(self, name: str = "energy") -> Summary:
        """⟨name⟩ per slot: mean over chains of the per-chain means ± stderr (chains independent); non-finite
        chains excluded and counted. Shape [..., T(, *value)]."""
        per_chain = np.asarray(obs.split_moments_total(self._get(name)).mean, np.float64)
        extra = per_chain.ndim - self.nonfinite.ndim
        excl = np.expand_dims(self.nonfinite, tuple(range(-extra, 0))) if extra else self.nonfinite
        return summarise(per_chain, chain_axis=self.nonfinite.ndim - 1, exclude=excl)

    def mean_energy(self) -> Summary:
        """U(β) = ⟨E⟩ per slot ± stderr."""
        return self.mean("energy")

    def energy_variance(self) -> Summary:
        """Var(E) per slot from the pooled chains ± leave-one-chain-out jackknife stderr (the one estimator)."""
        return pooled_variance(obs.split_moments_total(self.energy), exclude=self.nonfinite)

    def specific_heat(self) -> Summary:
        """C(β) = β² Var(E) per slot (total, not per site) ± jackknife stderr."""
        v = self.energy_variance()
        b2 = np.asarray(self.betas, np.float64) ** 2
        if self.n_copies > 1:  # [..., T, A]
            b2 = b2[:, None]
        return Summary(v.mean * b2, v.stderr * b2, v.n_used, v.n_excluded)

    def acceptance_rate(self) -> Summary:
        """Mean acceptance probability per slot ± stderr over chains."""
        return summarise(np.asarray(self.acceptance.mean, np.float64), chain_axis=-1, exclude=self.nonfinite)

    def rhat(self, name: str = "energy") -> np.ndarray:
        """Split R-hat per slot from the streamed half-chain moments."""
        return split_rhat_from_moments(self._get(name), chain_axis=-1)

    def ess(self, name: str = "energy") -> np.ndarray:
        """Batch-means ESS per slot (chains as batches)."""
        return ess_from_moments(self._get(name), chain_axis=-1)


class Session(NamedTuple):
    """Everything the driver needs between chunks (static facts plus device arrays)."""

    prog: Any
    spec: RunSpec
    models: Any
    point_keys: Any
    chain_ids: Any
    array_options: dict
    n_disorder: int | None
    n_temps: int
    chunk_size: int
    fingerprint: str


def _point_keys(key, n_dis, n_temps):
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and key.ndim > 0:
        want = (n_dis or 1, n_temps)
        return jnp.broadcast_to(key.reshape((1,) * (2 - key.ndim) + key.shape), want)
    key = as_key(key)
    return jax.vmap(lambda d: jax.vmap(lambda k: fold(key, d, k))(jnp.arange(n_temps)))(jnp.arange(n_dis or 1))


def start(model, betas, *, key, n_chains: int, kernel: str = "auto", step_size=None, adapt: str = "group",
          n_copies: int = 1, exchange: bool = False, swap_every: int = 1, observables=None, overlap_bins: int = 0,
          n_draws: int = 0, trace_every: int = 0, chunk_size: int = 200, chain_block: int | None = None,
          devices=None, disorder_axis: bool = False, initial_position=None, kernel_options=None):
    """Validate, compile (cached) and initialise a run; returns ``(Session, carry)``. See ``run_ensemble``."""
    betas_np = check_betas(betas, "betas")
    n_chains = check_positive_int(n_chains, "n_chains")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    check_choice("adapt", adapt, ADAPT_MODES)
    if n_copies not in (1, 2) or isinstance(n_copies, bool):
        raise ValueError(f"n_copies must be 1 or 2, got {n_copies!r}")
    observables = dict(observables or {})
    for name, fn in observables.items():
        if name in ("energy", "magnetization") or not callable(fn):
            raise ValueError(f"bad observable {name!r}: names must not be 'energy'/'magnetization', values callable")
    kernel_options = dict(kernel_options or {})
    n_dis = None
    if disorder_axis:
        leaves = jax.tree.leaves(model)
        if not leaves or any(np.ndim(leaf) == 0 for leaf in leaves):
            raise ValueError("disorder_axis=True needs a stacked model (models.stack_models) with a leading axis")
        n_dis = int(np.shape(leaves[0])[0])
        probe_model = jax.tree.map(lambda a: a[0], model)
        models = model
    else:
        probe_model = model
        models = jax.tree.map(lambda a: jnp.asarray(a)[None], model)
    name = resolve_kernel(probe_model, kernel)
    probe = make_sampler(probe_model, name, **kernel_options)  # validates the options
    static_opts, array_opts = split_options(name, kernel_options)
    T, D, dim = betas_np.shape[0], n_dis or 1, int(probe_model.dim)
    dtype = jnp.result_type(float)
    try:
        eps = np.broadcast_to(np.asarray(probe.default_step_size if step_size is None else step_size, np.float64),
                              (D, T))
    except (TypeError, ValueError):
        raise ValueError(f"step_size must be a positive number or an array [T={T}], got {step_size!r}") from None
    eps = np.where(np.isnan(eps), probe.default_step_size, eps)
    if not np.all(np.isfinite(eps) & (eps > 0)):
        raise ValueError(f"step_size must be finite and > 0, got {step_size!r}")
    mesh = sharding.chain_mesh(devices)
    n_dev = mesh.devices.size
    block = check_positive_int(chain_block, "chain_block") if chain_block else -(-n_chains // n_dev)
    c_pad = sharding.padded_size(n_chains, mesh, block)
    positions = None
    if initial_position is not None:
        p = jnp.asarray(initial_position, dtype)
        if p.shape[-1] != dim or p.ndim < 1 or p.ndim > 5:
            raise ValueError(f"initial_position must end in dim={dim}, got shape {p.shape}")
        if n_copies == 1 and p.ndim >= 3:
            p = jnp.expand_dims(p, -3)  # [..., T, C, dim] -> [..., T, 1, C, dim]
        p = jnp.broadcast_to(p, (D, T, n_copies, n_chains, dim))
        p = jnp.concatenate([p, jnp.repeat(p[:, :, :, -1:], c_pad - n_chains, axis=3)], axis=3)
        positions = jax.device_put(p, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(
            None, None, None, sharding.CHAINS)))
    stats_spec = cs.StatsSpec(tuple(sorted(observables.items())), callable(getattr(probe_model, "magnetization", None)),
                              int(n_draws), int(trace_every or 0), int(overlap_bins) if n_copies == 2 else 0)
    target = probe.target_acceptance if adapt != "none" else None
    spec = RunSpec(name, static_opts, stats_spec, n_copies, n_chains, bool(exchange), int(swap_every),
                   adapt if target is not None else "none", target, chunk_size, block, positions is not None)
    prog = program(spec, mesh)
    point_keys = _point_keys(key, n_dis, T)
    chain_ids = sharding.chain_indices(n_chains, mesh, block)
    rep = lambda x: sharding.replicate(x, mesh)  # noqa: E731
    models, point_keys, array_opts = rep(models), rep(point_keys), rep(array_opts)
    carry = prog.init(models, point_keys, rep(jnp.asarray(eps, dtype)), positions, chain_ids, array_opts)
    fp = fingerprint(spec=repr(spec._replace(chunk_len=0)), models=models, point_keys=point_keys, betas=betas_np,
                     eps=eps, options=array_opts, positions=positions, n_devices=n_dev)
    return Session(prog, spec, models, point_keys, chain_ids, array_opts, n_dis, T, chunk_size, fp), carry


def advance(s: Session, carry, betas, t0: int, n: int, *, n_warmup: int, n_prod: int, adapt_on: bool = True,
            progress: Callable[[int, int], None] | None = None, total: int | None = None,
            on_chunk: Callable[[Any, int], None] | None = None):
    """Run global steps t0 .. t0 + n − 1 (chunk by chunk) and return the carry; ``on_chunk(carry, t)`` runs
    after every chunk (checkpoints)."""
    b = sharding.replicate(jnp.asarray(np.asarray(betas, np.float64), jnp.result_type(float)),
                           s.chain_ids.sharding.mesh)
    i32 = np.int32
    done = 0
    while done < n:
        nv = min(s.chunk_size, n - done)
        carry = s.prog.chunk(s.models, b, s.point_keys, carry, s.chain_ids, i32(t0 + done), i32(nv),
                             i32(n_warmup), i32(max(n_prod, 1)), np.bool_(adapt_on), s.array_options)
        done += nv
        if on_chunk is not None:
            on_chunk(carry, t0 + done)
        if progress is not None:
            progress(t0 + done, total if total is not None else t0 + n)
    return carry


def _host(s: Session, tree, lanes: bool = True):
    """Device tree -> NumPy with padding chains dropped and the D (no disorder) / A (one copy) axes squeezed."""
    def one(x):
        x = np.asarray(jax.device_get(x))
        if lanes and x.ndim >= 4:
            x = x[:, :, :, :s.spec.n_chains]
            if s.spec.n_copies == 1:
                x = x[:, :, 0]
        if s.n_disorder is None and x.ndim >= 1:
            x = x[0]
        return x

    return jax.tree.map(one, tree)


def finish(s: Session, carry, betas, *, n_steps: int, n_warmup: int) -> EnsembleResult:
    """The host-side ``EnsembleResult`` of a finished run."""
    st = _host(s, carry.stats)
    from thermodl.kernels import adaptation

    eps = _host(s, adaptation.final_step_size(carry.adapt))
    if s.spec.adapt != "chain":
        eps = eps[..., 0, 0] if s.spec.n_copies == 2 else eps[..., 0]
    exchange = None
    if s.spec.exchange:
        ex = _host(s, carry.exchange)
        n = np.maximum(ex.swap_n, 1)
        acc = np.where(ex.swap_n > 0, ex.swap_acc / n, np.nan)
        tax = 0 if s.n_disorder is None else 1  # slot axis
        pooled = ex.swap_acc.sum(axis=tuple(range(tax + 1, ex.swap_acc.ndim)))
        cnt = ex.swap_n.sum(axis=tuple(range(tax + 1, ex.swap_n.ndim)))
        sl = [slice(None)] * ex.swap_acc.ndim
        sl[tax] = slice(0, -1)
        rate = np.where(cnt > 0, pooled / np.maximum(cnt, 1), np.nan)
        trips = ex.round_trips.sum(axis=tax)
        exchange = {"swap_acceptance": acc[tuple(sl)], "swap_rate": np.take(rate, np.arange(s.n_temps - 1), -1),
                    "round_trips": trips, "labels": ex.labels,
                    "round_trip_rate": float(trips.sum()) / max(n_steps * trips.size, 1)}
    overlap = None
    if st.overlap is not None:
        c = st.overlap.counts  # [..., T, A, C, bins] (A kept: n_copies == 2)
        overlap = c[..., 0, :, :]
    return EnsembleResult(
        betas=np.asarray(betas, np.float64), kernel=s.spec.kernel, n_steps=n_steps, n_warmup=n_warmup,
        n_copies=s.spec.n_copies, energy=st.energy, magnetization=st.magnetization, observables=st.user,
        acceptance=st.acceptance, n_divergent=st.n_divergent, nonfinite=st.nonfinite, step_size=eps,
        bridge_down=st.bridge_down, bridge_up=st.bridge_up, exchange=exchange, overlap_counts=overlap,
        final_state=_host(s, carry.state), traces=st.traces if s.spec.stats.n_draws else None,
    )


def run_ensemble(model: Any, betas, *, key, n_chains: int, n_steps: int, n_warmup: int | None = None,
                 kernel: str = "auto", step_size=None, adapt: bool | str = True, chunk_size: int = 200,
                 observables: dict[str, Callable] | None = None, trace_every: int | None = None,
                 progress: Callable[[int, int], None] | None = None, initial_position=None,
                 disorder_axis: bool = False, n_copies: int = 1, chain_block: int | None = None, devices=None,
                 checkpoint=None, checkpoint_every: int = 10, **kernel_options) -> EnsembleResult:
    """Sample ``n_chains`` independent chains at each inverse temperature and stream their statistics.

    Args:
        model: a thermodl model (``models/base.py``); with ``disorder_axis=True`` a stack of models (leaves with
            a leading axis D, ``models.stack_models``) — every output then gains a leading D axis.
        betas: float [T] inverse temperatures, finite and ≥ 0.
        key: ``jax.random.key`` or int seed; or an array of keys [(D,) T], one per point (sweeps).
        n_chains: chains per temperature (C). n_steps: production steps per chain (one kernel step, or one sweep
            for discrete kernels). n_warmup: warmup steps (discarded; step sizes adapt here); default n_steps // 2.
        kernel: ``"auto"`` or a kernel name (``engine.kernel_binding.KERNELS``). step_size: initial/fixed step size,
            scalar, [T] or [D, T] (NaN entries: the kernel default).
        adapt: ``True``/``"group"`` (one step size per slot, adapted on the chain-averaged acceptance),
            ``"chain"`` (one per chain), ``False``/``"none"``.
        chunk_size: steps per compiled chunk (results do not depend on it).
        observables: {name: fn(x [dim]) -> array} extra observables streamed per chain.
        trace_every: record thinned traces of energy/magnetisation/observables every this many production steps.
        progress: ``progress(steps_done, steps_total)`` after each chunk, or True for a progress bar with ETA.
        initial_position: optional start [dim], [C, dim], [T, C, dim] (or with leading D / copy axes).
        n_copies: 1, or 2 independent copies per chain (replica overlaps; outputs gain an A axis before C).
        chain_block: chains per block on a device (fix it for bitwise identity across device counts; default
            chains per device). devices: devices to shard the chains over (default all local devices).
        checkpoint: a file path: the run's state is saved there every ``checkpoint_every`` chunks (and at the
            end), and a run started with the same path resumes from it — bit-identical to an uninterrupted run
            (``engine.checkpoint``); a checkpoint of another run is refused with a ValueError.
        **kernel_options: kernel options (``engine.kernel_binding``), e.g. ``num_integration_steps``, ``inverse_mass``.

    Returns:
        ``EnsembleResult``.
    """
    n_steps = check_positive_int(n_steps, "n_steps")
    n_warmup = n_steps // 2 if n_warmup is None else check_nonnegative_int(n_warmup, "n_warmup")
    mode = {True: "group", False: "none"}.get(adapt, adapt) if isinstance(adapt, bool) else adapt
    n_draws = 0
    if trace_every is not None:
        trace_every = check_positive_int(trace_every, "trace_every")
        n_draws = n_steps // trace_every
    s, carry = start(model, betas, key=key, n_chains=n_chains, kernel=kernel, step_size=step_size, adapt=mode,
                     n_copies=n_copies, observables=observables, n_draws=n_draws, trace_every=trace_every or 0,
                     chunk_size=chunk_size, chain_block=chain_block, devices=devices, disorder_axis=disorder_axis,
                     initial_position=initial_position, kernel_options=kernel_options)
    total = n_warmup + n_steps
    t0, on_chunk, ck = 0, None, None
    if checkpoint is not None:
        ck = Checkpointer(checkpoint, every=checkpoint_every,
                          fingerprint=fingerprint(run=s.fingerprint, n_steps=n_steps, n_warmup=n_warmup))
        loaded = ck.load(carry)
        if loaded is not None:
            carry, t0 = loaded[0], int(loaded[1]["t"])
        on_chunk = ck.on_chunk
    with progress_callback(progress, "equilibrium run") as cb:
        carry = advance(s, carry, betas, t0, total - t0, n_warmup=n_warmup, n_prod=n_steps, adapt_on=n_warmup > 0,
                        progress=cb, total=total, on_chunk=on_chunk)
    if ck is not None and t0 < total:
        ck.save(carry, total)
    return finish(s, carry, check_betas(betas, "betas"), n_steps=n_steps, n_warmup=n_warmup)
