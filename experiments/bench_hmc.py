"""Benchmark: HMC throughput (gradient evaluations per second), thermodl vs BlackJAX on the identical target.

Target: the weight-space Gibbs ensemble of a flax NNX MLP 16-32-1 (tanh), squared loss on 256 teacher-generated
examples, Gaussian prior (σ = 1, fan-in scaling), β = 1:  log p(w) = −β·½Σ_μ (f_w(x_μ) − y_μ)² + log prior(w).
Both samplers run fixed-length HMC (Duane et al. 1987; Neal 2011) with the same step size, number of leapfrog
steps and diagonal inverse mass, 512 chains vmapped, ``lax.scan`` over steps, jitted; compile time is excluded
(one warm-up call), every call ends with ``block_until_ready``, several repeats, the median is reported.
thermodl runs through the engine path (``engine.kernel_binding.make_sampler(model, "hmc")`` → ``kernels.hmc``);
BlackJAX runs ``blackjax.hmc`` on ``logdensity(w) = −β E(w) + log prior(w)`` built from the *same* model, and,
when installed, NumPyro's functional HMC (``numpyro.infer.hmc.hmc``, no adaptation) on the same potential.

A gradient evaluation is one leapfrog step of one chain (thermodl evaluates ∇E and ∇log prior there, BlackJAX
∇ log p: the same work). Throughput = chains × steps × leapfrog steps / median wall time.

Besides the timings the benchmark checks that the samplers sample the same thing: from the same initial
positions, the per-chain mean acceptance and the final energies must agree between implementations within
3 standard errors (chains are independent, so the chain-to-chain spread gives the error).

Run: ``python -m thermodl.experiments.bench_hmc [--size small|full|tiny] [--out DIR]`` or
``thermodl reproduce bench-hmc``. BlackJAX and NumPyro (extra ``bench``) are optional: missing ones are skipped.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from thermodl.engine.kernel_binding import make_sampler
from thermodl.experiments import common

NAME = "bench-hmc"
DESCRIPTION = "HMC gradient evaluations per second on a flax MLP weight ensemble: thermodl vs BlackJAX (and NumPyro)"

CONFIGS = {
    "tiny": dict(n_in=4, width=8, n_data=32, n_chains=8, n_steps=4, n_leapfrog=10, repeats=2, step_size=0.02),
    "small": dict(n_in=16, width=32, n_data=256, n_chains=512, n_steps=10, n_leapfrog=10, repeats=5,
                  step_size=0.01),
    "full": dict(n_in=16, width=32, n_data=256, n_chains=512, n_steps=50, n_leapfrog=10, repeats=7,
                 step_size=0.01),
}
BETA = 1.0


def make_target(cfg: dict, seed: int = 0):
    """The benchmark's weight ensemble: MLP n_in-width-1 tanh, squared loss, Gaussian prior, teacher data.

    Returns:
        ``(model, w0 [n_chains, dim])``: the thermodl model and the chains' initial weights (prior draws).
    """
    from flax import nnx

    from thermodl.models.priors import gaussian
    from thermodl.models.topologies import MLP
    from thermodl.models.weights import weight_ensemble

    k_data, k_noise, k_init = jax.random.split(jax.random.key(seed), 3)
    student = MLP(cfg["n_in"], [cfg["width"]], 1, activation="tanh", rngs=nnx.Rngs(seed))
    teacher = MLP(cfg["n_in"], [cfg["width"]], 1, activation="tanh", rngs=nnx.Rngs(seed + 1))
    X = jax.random.normal(k_data, (cfg["n_data"], cfg["n_in"]))
    y = teacher(X)[:, 0] + 0.1 * jax.random.normal(k_noise, (cfg["n_data"],))
    model = weight_ensemble(student, X, y, loss="squared", prior=gaussian(1.0))
    w0 = jax.vmap(model.sample_reference)(jax.random.split(k_init, cfg["n_chains"]))
    return model, w0


def _chain_keys(key, t, n_chains):
    # Same per-chain key derivation for every implementation: fold_in(fold_in(key, t), chain).
    key_t = jax.random.fold_in(key, t)
    return jax.vmap(lambda c: jax.random.fold_in(key_t, c))(jnp.arange(n_chains))


def thermodl_runner(model, cfg):
    """A jitted ``run(key, w0) -> (final energies [chains], mean acceptance per chain [chains])``."""
    # step_size_jitter=0: the engine's default random step-size jitter would make the settings differ from
    # BlackJAX's fixed step (the acceptance-agreement rows detect that: ~5σ at the "small" size).
    sampler = make_sampler(model, "hmc", num_integration_steps=cfg["n_leapfrog"],
                           inverse_mass=jnp.ones(model.dim), step_size_jitter=0.0)
    n_chains, step_size = cfg["n_chains"], jnp.float32(cfg["step_size"])

    @jax.jit
    def run(key, w0):
        states = jax.vmap(sampler.init)(w0)

        def body(carry, t):
            states, acc = carry
            keys = _chain_keys(key, t, n_chains)
            states, info = jax.vmap(sampler.step, in_axes=(0, 0, None, None))(keys, states, BETA, step_size)
            return (states, acc + info.acceptance_probability), None

        (states, acc), _ = jax.lax.scan(body, (states, jnp.zeros(n_chains)), jnp.arange(cfg["n_steps"]))
        return states.energy, acc / cfg["n_steps"]

    return run


def blackjax_runner(model, cfg):
    """The same run with ``blackjax.hmc``; ``None`` when BlackJAX is not installed."""
    try:
        import blackjax
    except ImportError:
        return None

    def logdensity(w):
        return -BETA * model.energy(w) + model.log_prior(w)

    hmc = blackjax.hmc(logdensity, cfg["step_size"], jnp.ones(model.dim), cfg["n_leapfrog"])
    n_chains = cfg["n_chains"]

    @jax.jit
    def run(key, w0):
        states = jax.vmap(hmc.init)(w0)

        def body(carry, t):
            states, acc = carry
            keys = _chain_keys(key, t, n_chains)
            states, info = jax.vmap(hmc.step)(keys, states)
            return (states, acc + info.acceptance_rate), None

        (states, acc), _ = jax.lax.scan(body, (states, jnp.zeros(n_chains)), jnp.arange(cfg["n_steps"]))
        return jax.vmap(model.energy)(states.position), acc / cfg["n_steps"]

    return run


def numpyro_runner(model, cfg):
    """The same run with NumPyro's functional HMC (``numpyro.infer.hmc.hmc``, fixed ``num_steps``, no
    adaptation); ``None`` when NumPyro is not installed. NumPyro draws its own keys from the state's key."""
    try:
        from numpyro.infer.hmc import hmc
    except ImportError:
        return None

    def potential(w):
        return BETA * model.energy(w) - model.log_prior(w)

    init_kernel, sample_kernel = hmc(potential_fn=potential, algo="HMC")
    n_chains = cfg["n_chains"]

    def init_one(w, key):
        return init_kernel(w, num_warmup=0, step_size=cfg["step_size"], inverse_mass_matrix=jnp.ones(model.dim),
                           adapt_step_size=False, adapt_mass_matrix=False, num_steps=cfg["n_leapfrog"],
                           trajectory_length=None, rng_key=key)  # else NumPyro rescales step_size to 2π/num_steps

    @jax.jit
    def run(key, w0):
        states = jax.vmap(init_one)(w0, jax.random.split(key, n_chains))

        def body(carry, _):
            states, acc = carry
            states = jax.vmap(sample_kernel)(states)
            return (states, acc + states.accept_prob), None

        (states, acc), _ = jax.lax.scan(body, (states, jnp.zeros(n_chains)), None, length=cfg["n_steps"])
        return jax.vmap(model.energy)(states.z), acc / cfg["n_steps"]

    return run


def time_runner(run, w0, *, seed: int, repeats: int) -> tuple[list[float], float, tuple]:
    """Time ``run`` after one warm-up (compile) call; each repeat uses a fresh traced key (no recompilation).

    Returns:
        ``(times_s [repeats], compile_s, outputs of the warm-up call)``.
    """
    key = jax.random.key(seed)
    t0 = time.perf_counter()
    out = jax.block_until_ready(run(key, w0))
    compile_s = time.perf_counter() - t0
    times = []
    for r in range(repeats):
        k = jax.random.fold_in(key, r + 1)
        t0 = time.perf_counter()
        jax.block_until_ready(run(k, w0))
        times.append(time.perf_counter() - t0)
    return times, compile_s, tuple(np.asarray(o, np.float64) for o in out)


def _diff_row(quantity: str, a: np.ndarray, b: np.ndarray, wall: float, other: str) -> dict:
    """Two independent samples of per-chain values from the same distribution: z-test on their means."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size) if min(a.size, b.size) > 1 else math.nan
    return common.check_row(quantity, f"thermodl − {other}", float(a.mean() - b.mean()), se, 0.0, wall_s=wall)


def run(out_dir: Path, *, full: bool = False, seed: int = 0, size: str | None = None, progress=None) -> dict:
    """Run the benchmark; writes ``results.{md,csv,nc,png}`` and ``bench_hmc.json`` into ``out_dir``."""
    size, cfg = common.resolve_size(size, full, CONFIGS, default="small")
    model, w0 = make_target(cfg, seed)
    work = cfg["n_chains"] * cfg["n_steps"] * cfg["n_leapfrog"]
    impls = {"thermodl": thermodl_runner(model, cfg)}
    for name, make in (("blackjax", blackjax_runner), ("numpyro", numpyro_runner)):
        runner = make(model, cfg)
        if runner is not None:  # optional dependencies (extra "bench")
            impls[name] = runner
    timings, outputs, rows = {}, {}, []
    for i, (name, runner) in enumerate(impls.items()):
        if progress:
            progress(f"bench-hmc: {name}", i / len(impls))
        # Independent key streams per implementation, so the two samples of per-chain values are independent.
        times, compile_s, out = time_runner(runner, w0, seed=seed + 7919 * i, repeats=cfg["repeats"])
        timings[name], outputs[name] = (times, compile_s), out
        med = statistics.median(times)
        rows.append(common.measurement_row(f"HMC gradient evals/s ({size})", name, work / med, wall_s=med,
                                           compile_s=compile_s, mean_acceptance=float(np.nanmean(out[1]))))
    for other in [n for n in impls if n != "thermodl"]:
        ratio = statistics.median(timings[other][0]) / statistics.median(timings["thermodl"][0])
        rows.append(common.measurement_row(f"throughput ratio thermodl / {other}", "ratio", ratio))
        wall = statistics.median(timings["thermodl"][0]) + statistics.median(timings[other][0])
        for i, what in ((1, "mean acceptance (per chain)"), (0, "final energy E(w) (per chain)")):
            rows.append(_diff_row(what, outputs["thermodl"][i], outputs[other][i], wall, other))
    if progress:
        progress("bench-hmc: done", 1.0)

    names = list(impls)
    env = common.environment("blackjax", "numpyro")
    ds = xr.Dataset(
        {
            "time_s": (("impl", "repeat"), np.array([timings[n][0] for n in names])),
            "compile_s": ("impl", np.array([timings[n][1] for n in names])),
            "grad_evals_per_s": ("impl", np.array([work / statistics.median(timings[n][0]) for n in names])),
            "final_energy": (("impl", "chain"), np.array([outputs[n][0] for n in names])),
            "acceptance": (("impl", "chain"), np.array([outputs[n][1] for n in names])),
        },
        coords={"impl": names, "repeat": np.arange(cfg["repeats"]), "chain": np.arange(cfg["n_chains"])},
        attrs={**{k: v for k, v in cfg.items()}, "size": size, "seed": seed, "dim": int(model.dim), **env},
    )
    fig, ax = common.new_figure()
    rates = [work / np.array(timings[n][0]) for n in names]
    ax.bar(names, [np.median(r) for r in rates],
           yerr=[[np.median(r) - r.min() for r in rates], [r.max() - np.median(r) for r in rates]], capsize=6)
    ax.set_ylabel("gradient evaluations / s (median, min–max)")
    ax.set_title(f"HMC, MLP {cfg['n_in']}-{cfg['width']}-1 tanh, {cfg['n_chains']} chains, "
                 f"L={cfg['n_leapfrog']}\n{env['device']}")
    summary = {"config": cfg, "size": size, "environment": env, "rows": rows}
    json_path = common.write_json(summary, Path(out_dir) / "bench_hmc.json")
    return common.finish(out_dir, rows, figure=fig, data=ds, json=str(json_path))


def main(argv=None) -> None:
    """``python -m thermodl.experiments.bench_hmc``: run, print the table, write JSON and the usual outputs."""
    common.bench_main(run, name=NAME, description=DESCRIPTION, sizes=CONFIGS, argv=argv)


if __name__ == "__main__":
    main()
