"""Local learning coefficients and the Bayes generalisation error of linear networks (``thermodl reproduce llc``).

Singular learning theory (Watanabe 2009) predicts that the Bayes free energy grows as λ log n and the Bayes
generalisation error as E[G_n] = λ/n, with λ the learning coefficient (RLCT) — d/2 only for regular models.

Panel 1 — λ̂ vs exact λ. ``engine.llc.estimate_llc`` (Lau, Furman, Wang, Murfet & Wei, arXiv:2308.12108) on
reduced-rank regression (two bias-free linear layers) and deep linear networks (flax ``LinearChain``), each at
a *planted* most-singular true parameter w*: every layer W_i = U_i V_iᵀ with orthonormal U_i, V_i of inner size r
(so the product has rank r and every singular value 1), noise-free targets y = W_L⋯W_1 x on n Gaussian inputs, so
L_n(w*) = 0 is the minimum. Exact λ: Aoyagi & Watanabe (2005) for two layers, Aoyagi (2024) for deeper ones
(``theory_slt``); only multiplicity-1 settings, where finite-nβ corrections are power laws (not 1/log nβ). All
ranks of one architecture share one compiled program (a disorder axis of stacked models). Check per setting:
|λ̂ − λ| < 3·stderr + 0.1·λ (``common.check_row``, allowance 10 % of λ stated in advance).

Panel 2 — Bayes generalisation error vs n on reduced-rank regression: posterior at β = 1 (Gaussian noise σ = 1,
Gaussian prior σ²/fan_in) sampled by HMC on many data sets y = W₀x + ε; for a Gaussian predictive mixture
G_n = E_x KL(q(y|x) ‖ p(y|x, D)) = ½|W̄ − W₀|²_F + O(n⁻²), W̄ the posterior mean of the end-to-end matrix (streamed as
an observable). Theory: λ/n. Check per n: |n·Ḡ − λ| < 3·stderr (over data sets) + 0.25·λ (allowance for the
o(1/n) terms at these small n, stated in advance).

Observed at the quick size (24 data sets per n): n·Ḡ = 2.9, 3.4, 3.6, 3.1 (± 0.3) at n = 50 … 400 against λ = 4
(d/2 = 7): the singular value, not the parameter count, but systematically a little low — within the stated
allowance; more data sets and longer HMC runs (``--full``) are needed to tell finite-n terms from sampling bias.

Outputs: ``results.png``, ``results.nc``, ``results.md`` / ``results.csv``.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from flax import nnx
from jax.flatten_util import ravel_pytree

from thermodl.engine.ensemble import run_ensemble
from thermodl.engine.llc import estimate_llc
from thermodl.experiments import common
from thermodl.experiments import theory_slt
from thermodl.models import stack_models, weight_ensemble

NAME = "llc"
DESCRIPTION = ("Local learning coefficient λ̂ (SGLD/MALA on the equilibrium runner) vs exact λ of reduced-rank "
               "regression (Aoyagi–Watanabe 2005) and deep linear networks (Aoyagi 2024); Bayes generalisation "
               "error vs n against Watanabe's λ/n")

LLC_ALLOWANCE = 0.10  # |λ̂ − λ| allowance as a fraction of λ (finite nβ, γ > 0), stated in advance
GEN_ALLOWANCE = 0.25  # allowance on n·G_n as a fraction of λ (higher orders in 1/n at small n)

_QUICK_SETTINGS = (((5, 2, 3), (0, 1, 2)), ((6, 3, 2), (0, 1, 2)), ((4, 4, 4), (0, 2, 4)),
                   ((3, 2, 3, 2), (1, 2)), ((5, 3, 3, 3), (1, 3)), ((4, 3, 3, 4), (2, 3)))
_SIZES = {
    "tiny": dict(settings=(((5, 2, 3), (1, 2)),), n_data=100, n_beta=1e4, gamma=1.0, n_chains=4, n_steps=1500,
                 gen=dict(shape=(4, 2, 3), rank=1, ns=(60,), n_datasets=4, n_chains=4, n_steps=300)),
    "quick": dict(settings=_QUICK_SETTINGS, n_data=200, n_beta=1e4, gamma=1.0, n_chains=8, n_steps=6000,
                  gen=dict(shape=(4, 2, 3), rank=1, ns=(50, 100, 200, 400), n_datasets=24, n_chains=8,
                           n_steps=1000)),
    "full": dict(settings=_QUICK_SETTINGS + (((3, 4, 5), (0, 2, 3)), ((8, 4, 6), (0, 2, 4)), ((3, 3, 3, 3), (3,)),
                                             ((4, 4, 4, 4, 4), (4,)), ((5, 4, 3, 2, 3), (2,))),
                 n_data=1000, n_beta=1e4, gamma=1.0, n_chains=16, n_steps=20000,
                 gen=dict(shape=(4, 2, 3), rank=1, ns=(50, 100, 200, 400, 800, 1600), n_datasets=128,
                          n_chains=16, n_steps=4000)),
}
SIZES = tuple(_SIZES)


class LinearChain(nnx.Module):
    """Bias-free linear maps widths[0] → widths[1] → … → widths[-1] (two matrices: reduced-rank regression)."""

    def __init__(self, widths: Sequence[int], *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        self.layers = nnx.List([nnx.Linear(a, b, use_bias=False, param_dtype=param_dtype, rngs=rngs)
                                for a, b in zip(widths[:-1], widths[1:])])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = layer(x)
        return x


def _flat(net: LinearChain) -> np.ndarray:
    return np.asarray(ravel_pytree(nnx.split(net, nnx.Param, ...)[1])[0])


def planted_factors(widths: Sequence[int], r: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Layer kernels (fan_in × fan_out, x ↦ x @ K) U_i V_iᵀ with orthonormal U_i, V_i of inner size r."""
    out = []
    for a, b in zip(widths[:-1], widths[1:]):
        if r == 0:
            out.append(np.zeros((a, b)))
        else:
            u = np.linalg.qr(rng.standard_normal((a, r)))[0]
            v = np.linalg.qr(rng.standard_normal((b, r)))[0]
            out.append(u @ v.T)
    return out


def planted_problems(widths: Sequence[int], ranks: Sequence[int], *, n_data: int, seed: int = 0,
                     noise: float = 0.0, prior="gaussian"):
    """One weight ensemble per true rank r of ``LinearChain(widths)``, stacked (disorder axis D = len(ranks)).

    Returns:
        (stacked ``WeightEnsemble``, w_star [D, dim] the planted most-singular parameters, W0 [D, in, out] the
        true end-to-end matrices).
    """
    widths = tuple(int(h) for h in widths)
    ens, w_star, w0 = [], [], []
    for k, r in enumerate(ranks):
        rng = np.random.default_rng([seed, k, r])
        net = LinearChain(widths, rngs=nnx.Rngs(0))
        ks = planted_factors(widths, r, rng)
        for layer, K in zip(net.layers, ks):
            layer.kernel[...] = jnp.asarray(K, jnp.float32)
        W = functools.reduce(np.matmul, ks)
        X = rng.standard_normal((n_data, widths[0]))
        y = X @ W + noise * rng.standard_normal((n_data, widths[-1]))
        ens.append(weight_ensemble(net, X.astype(np.float32), y.astype(np.float32), prior=prior))
        w_star.append(_flat(net))
        w0.append(W)
    return stack_models(ens), np.stack(w_star).astype(np.float32), np.stack(w0)


def exact_lambda(widths: Sequence[int], r: int) -> theory_slt.LearningCoefficient:
    """Aoyagi–Watanabe (2 layers) / Aoyagi 2024 (deeper) / d/2 (one layer)."""
    if len(widths) == 3:
        M, H, N = widths
        return theory_slt.reduced_rank_regression(M, N, H, r)
    return theory_slt.deep_linear(widths, r)


def measure_llc(widths, ranks, *, key, n_data, n_beta, gamma, n_chains, n_steps, kernel="mala", seed=0, **kw):
    """λ̂ for every rank of one architecture in one run; returns (LLCEstimate with a D axis, exact λs)."""
    model, w_star, _ = planted_problems(widths, ranks, n_data=n_data, seed=seed)
    est = estimate_llc(model, w_star, key=key, n_beta=n_beta, gamma=gamma, kernel=kernel, n_chains=n_chains,
                       n_steps=n_steps, n_warmup=n_steps // 2, disorder_axis=True, **kw)
    return est, [exact_lambda(widths, r) for r in ranks]


@functools.lru_cache(maxsize=None)
def _end_to_end(widths: tuple) -> Callable:
    """Observable w [dim] -> the end-to-end matrix, flattened (one function object per architecture)."""
    sizes = [a * b for a, b in zip(widths[:-1], widths[1:])]
    cuts = np.cumsum(sizes)[:-1].tolist()

    def fn(w):
        mats = [p.reshape(a, b) for p, a, b in zip(jnp.split(w, cuts), widths[:-1], widths[1:])]
        return functools.reduce(jnp.matmul, mats).reshape(-1)

    return fn


def measure_generalisation(shape, rank, n, *, key, n_datasets, n_chains, n_steps, seed=0):
    """n·G_n per data set at β = 1 (HMC): G = ½|W̄ − W₀|²_F. Returns n·G [n_datasets] and the chains' R-hat."""
    model, _, w0 = planted_problems(shape, [rank] * n_datasets, n_data=n, seed=seed + 7919 * n, noise=1.0)
    res = run_ensemble(model, np.array([1.0]), key=key, n_chains=n_chains, n_steps=n_steps, kernel="hmc",
                       observables={"W": _end_to_end(tuple(shape))}, disorder_axis=True,
                       num_integration_steps=8)
    w_chain = np.asarray(res.observables["W"].first.mean + res.observables["W"].second.mean, np.float64) / 2
    w_bar = w_chain[:, 0].mean(axis=1)  # [D, in·out]
    gap = 0.5 * np.sum((w_bar - w0.reshape(n_datasets, -1)) ** 2, axis=-1)
    return n * gap, float(np.nanmax(res.rhat("energy")))


def _figure(llc_rows, gen, lam_gen):
    fig, (ax, ag) = common.new_figure(1, 2, figsize=(11.0, 4.4))
    lam = np.array([r["theory"] for r in llc_rows])
    hat = np.array([r["measured"] for r in llc_rows])
    err = np.array([r["stderr"] for r in llc_rows])
    deep = np.array([r["depth"] > 2 for r in llc_rows])
    top = max(lam.max(), hat.max()) * 1.1
    ax.fill_between([0, top], [0, top * (1 - LLC_ALLOWANCE)], [0, top * (1 + LLC_ALLOWANCE)], color="0.9",
                    label="±10 %")
    ax.plot([0, top], [0, top], "k-", lw=0.8, label="λ̂ = λ")
    ax.errorbar(lam[~deep], hat[~deep], 3 * err[~deep], fmt="o", ms=4, label="reduced-rank regression")
    ax.errorbar(lam[deep], hat[deep], 3 * err[deep], fmt="s", ms=4, label="deep linear (≥ 3 layers)")
    ax.set_xlabel("exact λ (Aoyagi–Watanabe 2005, Aoyagi 2024)")
    ax.set_ylabel("λ̂ (MALA, ±3 stderr)")
    ax.set_title("local learning coefficient at a planted w*")
    ax.legend(fontsize=7)
    ns = np.array(gen["n"], float)
    ag.errorbar(ns, gen["nG"], 3 * np.array(gen["nG_stderr"]), fmt="o", label="n·G_n (HMC, β = 1)")
    ag.axhline(lam_gen, color="k", lw=0.8, label=f"λ = {lam_gen:g} (Watanabe: E G_n = λ/n)")
    ag.axhline(gen["d_half"], color="0.5", ls="--", lw=0.8, label=f"d/2 = {gen['d_half']:g} (regular count)")
    ag.set_xscale("log")
    ag.set_xlabel("n")
    ag.set_ylabel("n × Bayes generalisation error")
    ag.set_title(f"reduced-rank regression {gen['shape']}, rank {gen['rank']}")
    ag.legend(fontsize=7)
    return fig


def run(out_dir: Path, *, full: bool = False, seed: int = 0, size: str | None = None,
        progress: Callable[[str, float], None] | None = None) -> dict:
    """Measure λ̂ for every setting and n·G_n for every n; write table, netCDF and figure into ``out_dir``.

    Args:
        out_dir: output folder. full: paper size (``size="full"``, meant for a GPU). seed: base seed (setting k
            samples with ``fold_in(key(seed), k)``; generalisation point j with ``fold_in(key(seed), 1000 + j)``).
        size: ``"tiny"`` | ``"quick"`` | ``"full"``; overrides ``full``. progress: ``progress(what, fraction)``.
    """
    size, cfg = common.resolve_size(size, full, _SIZES, default="quick")
    key = jax.random.key(seed)
    gcfg = cfg["gen"]
    n_parts = len(cfg["settings"]) + len(gcfg["ns"])
    rows, recs = [], []
    for k, (widths, ranks) in enumerate(cfg["settings"]):
        if progress:
            progress(f"LLC widths={widths}", k / n_parts)
        t0 = time.perf_counter()
        est, lams = measure_llc(widths, ranks, key=jax.random.fold_in(key, k), n_data=cfg["n_data"],
                                n_beta=cfg["n_beta"], gamma=cfg["gamma"], n_chains=cfg["n_chains"],
                                n_steps=cfg["n_steps"], seed=seed)
        wall = (time.perf_counter() - t0) / len(ranks)
        for i, (r, lam) in enumerate(zip(ranks, lams)):
            name = "RRR" if len(widths) == 3 else f"DLN L={len(widths) - 1}"
            rows.append(common.check_row(
                f"λ, {name} widths={'-'.join(map(str, widths))} r={r}", "MALA", float(est.value[i]),
                float(est.stderr[i]), lam.value, dof=cfg["n_chains"] - 1, allowance=LLC_ALLOWANCE * lam.value,
                wall_s=wall, depth=len(widths) - 1, rank=r, ratio=float(est.value[i]) / lam.value,
                reliable=bool(est.reliable[i]), acceptance=float(est.acceptance[i]), ess=float(est.ess[i])))
            recs.append(dict(widths="-".join(map(str, widths)), rank=r, exact=lam.value, estimate=float(est.value[i]),
                             stderr=float(est.stderr[i]), reliable=bool(est.reliable[i])))
    shape, rank = tuple(gcfg["shape"]), gcfg["rank"]
    lam_gen = exact_lambda(shape, rank).value
    gen = dict(n=[], nG=[], nG_stderr=[], shape="-".join(map(str, shape)), rank=rank,
               d_half=sum(a * b for a, b in zip(shape[:-1], shape[1:])) / 2)
    for j, n in enumerate(gcfg["ns"]):
        if progress:
            progress(f"Bayes generalisation n={n}", (len(cfg["settings"]) + j) / n_parts)
        t0 = time.perf_counter()
        ng, rhat = measure_generalisation(shape, rank, n, key=jax.random.fold_in(key, 1000 + j),
                                          n_datasets=gcfg["n_datasets"], n_chains=gcfg["n_chains"],
                                          n_steps=gcfg["n_steps"], seed=seed)
        se = float(ng.std(ddof=1) / math.sqrt(len(ng)))
        gen["n"].append(n)
        gen["nG"].append(float(ng.mean()))
        gen["nG_stderr"].append(se)
        rows.append(common.check_row(f"n·G_n, RRR {gen['shape']} r={rank}, n={n}", "HMC β=1", float(ng.mean()), se,
                                     lam_gen, dof=len(ng) - 1, allowance=GEN_ALLOWANCE * lam_gen,
                                     wall_s=time.perf_counter() - t0, rhat=rhat))
    if progress:
        progress("output", 1.0)
    llc_rows = [r for r in rows if r["method"] == "MALA"]
    data = xr.Dataset(
        {"llc_estimate": ("setting", [r["estimate"] for r in recs]),
         "llc_stderr": ("setting", [r["stderr"] for r in recs]),
         "llc_exact": ("setting", [r["exact"] for r in recs]),
         "llc_reliable": ("setting", [r["reliable"] for r in recs]),
         "nG": ("n", gen["nG"]), "nG_stderr": ("n", gen["nG_stderr"])},
        coords={"widths": ("setting", [r["widths"] for r in recs]), "rank": ("setting", [r["rank"] for r in recs]),
                "n": gen["n"]})
    data.attrs.update(size=size, seed=seed, n_data=cfg["n_data"], n_beta=cfg["n_beta"], gamma=cfg["gamma"],
                      n_chains=cfg["n_chains"], n_steps=cfg["n_steps"], gen_lambda=lam_gen, gen_shape=gen["shape"],
                      gen_rank=rank, jax=jax.__version__, device=str(jax.devices()[0].platform))
    return common.finish(out_dir, rows, figure=_figure(llc_rows, gen, lam_gen), data=data)
