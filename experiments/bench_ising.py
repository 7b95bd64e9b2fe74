"""Benchmark: checkerboard heat-bath throughput of the 2D Ising model, in spin updates per nanosecond.

Many independent chains of ``models.Ising2D(L)`` (L = 64 … 256, periodic) are updated by the engine's
``block_gibbs`` sampler (``engine.kernel_binding.make_sampler(model, "block_gibbs")``: the two checkerboard colours,
each heat-bath updated at once; Geman & Geman 1984), vmapped over chains, ``lax.scan`` over sweeps, jitted.
Throughput = chains × L² × sweeps / median wall time (one update *attempt* per site and sweep, the usual unit
of GPU Ising benchmarks, e.g. Preis et al., J. Comput. Phys. 228, 4468 (2009)). Compile time is excluded (one
warm-up call), every call ends with ``block_until_ready``; several repeats, median.

The benchmark also checks that the fast path samples correctly: it runs at β = 0.3 (above T_c, short
correlation time) and compares the chain-averaged energy per spin after all sweeps with the exact value
u = −∂ log Z/∂β / L² of Kaufman's finite-torus solution; chains are independent, so their spread gives the
standard error.

Run: ``python -m thermodl.experiments.bench_ising [--size small|full|tiny] [--out DIR]`` or
``thermodl reproduce bench-ising``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from thermodl.engine.kernel_binding import make_sampler
from thermodl.experiments import common

NAME = "bench-ising"
DESCRIPTION = "2D Ising checkerboard heat-bath throughput (spin updates / ns) for L = 64..256, many chains"

BETA = 0.3
CONFIGS = {
    "tiny": dict(sides=(8, 16), spins=2**12, sweeps=5, repeats=2),
    "small": dict(sides=(64, 128, 256), spins=2**20, sweeps=20, repeats=3),
    "full": dict(sides=(64, 128, 256, 512), spins=2**24, sweeps=100, repeats=5),
}


def make_runner(model, n_chains: int, n_sweeps: int):
    """A jitted ``run(key, x [chains, L²]) -> (x, energies [chains])`` doing ``n_sweeps`` checkerboard sweeps."""
    sampler = make_sampler(model, "block_gibbs")

    @jax.jit
    def run(key, x):
        states = jax.vmap(sampler.init)(x)

        def body(states, t):
            key_t = jax.random.fold_in(key, t)
            keys = jax.vmap(lambda c: jax.random.fold_in(key_t, c))(jnp.arange(n_chains))
            states, _ = jax.vmap(sampler.step, in_axes=(0, 0, None, None))(keys, states, BETA, 1.0)
            return states, None

        states, _ = jax.lax.scan(body, states, jnp.arange(n_sweeps))
        return states.position, states.energy

    return run


def bench_side(L: int, cfg: dict, seed: int) -> dict:
    """Time one lattice size; returns times, throughput, final energies and the exact energy per spin."""
    from thermodl.engine.exact import exact_thermodynamics
    from thermodl.models.ising import Ising2D

    model = Ising2D(L)
    n_chains = max(1, cfg["spins"] // (L * L))
    key = jax.random.key(seed)
    x = jax.vmap(model.sample_reference)(jax.random.split(jax.random.fold_in(key, L), n_chains))
    x = x.astype(jnp.float32)
    run = make_runner(model, n_chains, cfg["sweeps"])
    t0 = time.perf_counter()
    x, energy = jax.block_until_ready(run(jax.random.fold_in(key, 0), x))  # compile + warm-up sweeps
    compile_s = time.perf_counter() - t0
    times = []
    for r in range(cfg["repeats"]):  # chains continue from repeat to repeat (equilibrating further)
        t0 = time.perf_counter()
        x, energy = jax.block_until_ready(run(jax.random.fold_in(key, r + 1), x))
        times.append(time.perf_counter() - t0)
    u_exact = exact_thermodynamics(Ising2D(L), BETA)[0] / (L * L)  # float64, Kaufman's closed form
    e = np.asarray(energy, np.float64) / (L * L)
    updates = n_chains * L * L * cfg["sweeps"]
    return dict(L=L, n_chains=n_chains, times=times, compile_s=compile_s,
                per_ns=updates / statistics.median(times) / 1e9, e=e, u_exact=u_exact)


def run(out_dir: Path, *, full: bool = False, seed: int = 0, size: str | None = None, progress=None) -> dict:
    """Run the benchmark; writes ``results.{md,csv,nc,png}`` and ``bench_ising.json`` into ``out_dir``."""
    size, cfg = common.resolve_size(size, full, CONFIGS, default="small")
    results, rows = [], []
    for i, L in enumerate(cfg["sides"]):
        if progress:
            progress(f"bench-ising: L={L}", i / len(cfg["sides"]))
        res = bench_side(L, cfg, seed)
        results.append(res)
        med = statistics.median(res["times"])
        rows.append(common.measurement_row(f"spin updates / ns, L={L}", "block_gibbs", res["per_ns"], wall_s=med,
                                           n_chains=res["n_chains"], sweeps=cfg["sweeps"],
                                           compile_s=res["compile_s"]))
        e = res["e"]
        rows.append(common.check_row(f"energy per spin, L={L}, beta={BETA}", "block_gibbs", e.mean(),
                                     e.std(ddof=1) / np.sqrt(e.size) if e.size > 1 else float("nan"),
                                     res["u_exact"], wall_s=med, n_chains=res["n_chains"]))
    if progress:
        progress("bench-ising: done", 1.0)
    env = common.environment()
    sides = [r["L"] for r in results]
    ds = xr.Dataset(
        {
            "time_s": (("L", "repeat"), np.array([r["times"] for r in results])),
            "compile_s": ("L", np.array([r["compile_s"] for r in results])),
            "updates_per_ns": ("L", np.array([r["per_ns"] for r in results])),
            "n_chains": ("L", np.array([r["n_chains"] for r in results], dtype=np.int32)),
            "energy_per_spin": ("L", np.array([r["e"].mean() for r in results])),
            "energy_per_spin_exact": ("L", np.array([r["u_exact"] for r in results])),
        },
        coords={"L": np.array(sides, dtype=np.int32), "repeat": np.arange(cfg["repeats"])},
        attrs={"size": size, "seed": seed, "beta": BETA, "sweeps": cfg["sweeps"], "spins": cfg["spins"], **env},
    )
    fig, ax = common.new_figure()
    rates = [r["n_chains"] * r["L"] ** 2 * cfg["sweeps"] / np.array(r["times"]) / 1e9 for r in results]
    ax.errorbar(sides, [np.median(q) for q in rates],
                yerr=[[np.median(q) - q.min() for q in rates], [q.max() - np.median(q) for q in rates]],
                fmt="o-", capsize=4)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sides, [str(s) for s in sides])
    ax.set_xlabel("L (L×L torus)")
    ax.set_ylabel("spin updates / ns (median, min–max)")
    ax.set_title(f"checkerboard heat bath, ~{cfg['spins']} spins in flight\n{env['device']}")
    json_path = common.write_json({"config": cfg, "size": size, "environment": env, "rows": rows},
                                  Path(out_dir) / "bench_ising.json")
    return common.finish(out_dir, rows, figure=fig, data=ds, json=str(json_path))


def main(argv=None) -> None:
    """``python -m thermodl.experiments.bench_ising``: run, print the table, write JSON and the usual outputs."""
    common.bench_main(run, name=NAME, description=DESCRIPTION, sizes=CONFIGS, argv=argv)


if __name__ == "__main__":
    main()
