"""Bayesian deep linear networks: Gibbs generalisation error vs width and depth (``thermodl reproduce deep-linear``).

Li & Sompolinsky, "Statistical mechanics of deep linear neural networks: the back-propagating kernel
renormalization", Phys. Rev. X 11, 031059 (2021): the Gibbs posterior of a deep linear network at finite width N is
a Gaussian process whose kernel is *renormalised* by a scalar u per hidden layer, fixed by a self-consistent
(saddle-point) equation in α = P/N, depth L, σ², T and the data (``theory_bpkr``). As N → ∞ at fixed P, u → 1 and
the NNGP (kernel ridge) result is recovered.

Measured by the engine: the weight-space Gibbs ensemble ``models.weight_ensemble`` over ``models.DeepLinear``
(L hidden layers of width N, N₀ inputs, one output, no biases), squared loss ½Σ(f − y)², Gaussian prior σ²/fan_in,
at β = 1/T, sampled by HMC (``engine.ensemble.run_ensemble``, step size adapted during warmup, diagonal inverse
mass = the prior variances), several chains on each of several data sets (a leading disorder axis). The streamed
observable is ‖w_eff − w*/√N₀‖², w_eff = W₁⋯W_{L+1} the end-to-end map: its Gibbs average is exactly the
generalisation error ε_g = ⟨(f(x) − y*(x))²⟩ over Gaussian test inputs x ~ N(0, I) (no test-set noise).

Data: a linear teacher y = w*·x/√N₀ with ‖w*‖² = ``TEACHER_SCALE``²·N₀ (a teacher larger than the prior's
typical function, so that the renormalisation is visible: u > 1, increasing as N shrinks), Gaussian inputs.

Checks, one pair per (N, L), each comparing the data-set average of the measured ε_g with the theory evaluated on
the *same* data sets (so the data-set spread cancels; the standard error is the Monte Carlo one, from the spread
of independent chains on each data set, combined over data sets):

* ``exact finite width``: the exact scale mixture of GPs (the BPKR integral without the saddle point; u_l ~
  Gamma(N/2, N/2) a priori): |z| < 3, no allowance — this is what the sampler must reproduce.
* ``BPKR saddle point``: Li & Sompolinsky's large-N theory. It omits the O(1/N) fluctuations of the
  renormalisation variables; the stated finite-size allowance is exactly that omitted correction, |ε_exact −
  ε_BPKR| on the same data sets (theory only, fixed before sampling), added to 3 Monte Carlo standard errors (the
  one rule of ``common.check_row``: |measured − theory| < 3·stderr + allowance; it used to enter in quadrature,
  3·√(stderr² + allowance²)). The column ``z_mc`` gives the deviation in Monte Carlo standard errors alone.

Outputs: ``results.png`` (ε_g vs N per depth: measurements, BPKR curves, exact finite-width curves, the N → ∞ GP
level; and every z-score), ``results.nc``, ``results.md`` / ``results.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from thermodl.experiments import common
from thermodl.experiments import theory_bpkr as tb

NAME = "deep-linear"
DESCRIPTION = ("Bayesian deep linear networks: Gibbs generalisation error vs width N and depth L (HMC) vs "
               "Li–Sompolinsky kernel renormalisation (PRX 2021) and the exact finite-width scale mixture")

SIGMA2 = 1.0  # prior variance σ² (per weight σ²/fan_in)
TEMPERATURE = 0.1  # T = 1/β
TEACHER_SCALE = 2.0  # ‖w*‖² = TEACHER_SCALE² · N₀

_SIZES = {
    "tiny": dict(n_in=8, n_data=6, widths=(3,), depths=(2,), n_datasets=2, n_chains=4, n_steps=120,
                 n_integration=6, curve_points=5),
    "small": dict(n_in=32, n_data=24, widths=(4, 8, 16, 32), depths=(1, 2, 3), n_datasets=4, n_chains=8,
                  n_steps=400, n_integration=8, curve_points=25),
    "full": dict(n_in=64, n_data=48, widths=(4, 8, 16, 32, 64, 128), depths=(1, 2, 3, 4), n_datasets=8,
                 n_chains=32, n_steps=4000, n_integration=10, curve_points=41),
}
SIZES = tuple(_SIZES)


def make_data(key, n_in: int, n_data: int, n_datasets: int, teacher_scale: float = TEACHER_SCALE):
    """Teacher w* [N₀] (‖w*‖² = scale²·N₀) and data sets X [D, P, N₀] ~ N(0, 1), y = X w*/√N₀ [D, P] (float64).

    Data set d uses ``fold_in(key, 1 + d)``; the teacher ``fold_in(key, 0)``.
    """
    w = np.asarray(jax.random.normal(jax.random.fold_in(key, 0), (n_in,)), np.float64)
    w *= teacher_scale * math.sqrt(n_in) / np.linalg.norm(w)
    X = np.stack([np.asarray(jax.random.normal(jax.random.fold_in(key, 1 + d), (n_data, n_in)), np.float64)
                  for d in range(n_datasets)])
    return w, X, X @ w / math.sqrt(n_in)


def _ensembles(X, y, n_in: int, width: int, n_hidden: int):
    """The stacked weight ensembles [D] of DeepLinear(n_in, width, L + 1 matrices, 1) on each data set."""
    from flax import nnx

    from thermodl.models import DeepLinear, gaussian, stack_models, weight_ensemble

    net = DeepLinear(n_in, width, n_hidden + 1, 1, rngs=nnx.Rngs(0))
    prior = gaussian(math.sqrt(SIGMA2))
    models = [weight_ensemble(net, Xd, yd[:, None], loss="squared", prior=prior) for Xd, yd in zip(X, y)]
    return models[0], stack_models(models)


def measure(key, X, y, w_teacher, *, width: int, n_hidden: int, n_chains: int, n_steps: int,
            n_integration: int) -> dict:
    """HMC estimate of ε_g on each data set for one (N, L).

    Returns:
        dict with ``mean`` [D], ``stderr`` [D] (over chains), ``rhat`` [D], ``ess`` [D], ``acceptance`` [D],
        ``n_excluded`` [D], ``n_divergent`` (total), ``wall_s``, ``dim``.
    """
    from thermodl.engine.ensemble import run_ensemble

    n_in = X.shape[-1]
    template, stacked = _ensembles(X, y, n_in, width, n_hidden)
    eye = jnp.eye(n_in, dtype=template.scales.dtype)
    target = jnp.asarray(w_teacher / math.sqrt(n_in), template.scales.dtype)

    def generalisation_error(w):  # ‖w_eff − w*/√N₀‖², w_eff = f(e_i) for the unit vectors e_i
        return jnp.sum((template.predict(w, eye)[:, 0] - target) ** 2)

    with common.stopwatch() as t:
        res = run_ensemble(stacked, [1.0 / TEMPERATURE], key=key, n_chains=n_chains, n_steps=n_steps,
                           n_warmup=n_steps // 2, kernel="hmc", disorder_axis=True,
                           observables={"eps_g": generalisation_error}, inverse_mass=template.scales**2,
                           num_integration_steps=n_integration)
        m = res.mean("eps_g")
    return dict(mean=m.mean[:, 0], stderr=m.stderr[:, 0], rhat=res.rhat("eps_g")[:, 0],
                ess=res.ess("eps_g")[:, 0], acceptance=res.acceptance_rate().mean[:, 0],
                n_excluded=np.asarray(m.n_excluded)[:, 0], n_divergent=int(np.sum(res.n_divergent)),
                wall_s=t["s"], dim=int(template.dim))


def theory(tasks, *, width: float, n_hidden: int) -> dict:
    """Per-data-set theory [D]: exact finite width, BPKR saddle point (and its u), NNGP."""
    kw = dict(n_hidden=n_hidden, sigma2=SIGMA2, temperature=TEMPERATURE)
    ex = [tb.exact_generalisation_error(t, width=width, **kw) for t in tasks]
    bp = [tb.bpkr_generalisation_error(t, width=width, **kw) for t in tasks]
    gp = [tb.gp_generalisation_error(t, **kw) for t in tasks]
    return dict(exact=np.array([e.total for e in ex]), bpkr=np.array([b.total for b in bp]),
                u=np.array([b.u for b in bp]), gp=np.array([g.total for g in gp]),
                bpkr_bias=np.array([b.bias for b in bp]), bpkr_variance=np.array([b.variance for b in bp]))


def _rows(width: int, n_hidden: int, n_data: int, meas: dict, th: dict) -> list[dict]:
    D = meas["mean"].size
    measured = float(np.mean(meas["mean"]))
    se = float(np.sqrt(np.sum(meas["stderr"] ** 2)) / D)  # paired with the theory on the same data sets
    exact, bpkr = float(np.mean(th["exact"])), float(np.mean(th["bpkr"]))
    allowance = abs(exact - bpkr)
    common_cols = dict(N=width, L=n_hidden, alpha=n_data / width, u_bpkr=float(np.mean(th["u"])),
                       eps_gp=float(np.mean(th["gp"])), data_seed_sd=float(np.std(meas["mean"], ddof=1)),
                       rhat_max=float(np.max(meas["rhat"])), ess_min=float(np.min(meas["ess"])),
                       acceptance=float(np.mean(meas["acceptance"])), n_excluded=int(np.sum(meas["n_excluded"])),
                       n_divergent=meas["n_divergent"], dim=meas["dim"])
    q = f"eps_g N={width} L={n_hidden}"
    row_exact = common.check_row(q, "HMC vs exact finite width", measured, se, exact, wall_s=meas["wall_s"],
                                 mc_stderr=se, z_mc=(measured - exact) / se, **common_cols)
    row_bpkr = common.check_row(q, "HMC vs BPKR saddle point", measured, se, bpkr, allowance=allowance,
                                wall_s=meas["wall_s"], mc_stderr=se, z_mc=(measured - bpkr) / se, **common_cols)
    return [row_exact, row_bpkr]


def _curves(tasks, depths, widths, n_points: int) -> xr.Dataset:
    grid = np.geomspace(min(widths) / 1.5, max(widths) * 16.0, n_points)
    ex = np.zeros((len(depths), n_points))
    bp = np.zeros_like(ex)
    gp = np.zeros(len(depths))
    for i, L in enumerate(depths):
        for j, N in enumerate(grid):
            th = theory(tasks, width=float(N), n_hidden=L)
            ex[i, j], bp[i, j] = th["exact"].mean(), th["bpkr"].mean()
        gp[i] = th["gp"].mean()
    return xr.Dataset({"eps_g_exact_curve": (("depth", "width_curve"), ex),
                       "eps_g_bpkr_curve": (("depth", "width_curve"), bp),
                       "eps_g_gp_level": ("depth", gp)},
                      coords={"depth": list(depths), "width_curve": grid})


def _figure(rows: list[dict], curves: xr.Dataset):
    fig, (ax, az) = common.new_figure(1, 2, figsize=(11.5, 4.6))
    colours = {}
    for i, L in enumerate(curves["depth"].values):
        c = f"C{i}"
        colours[int(L)] = c
        ax.plot(curves["width_curve"], curves["eps_g_bpkr_curve"][i], color=c, lw=1.4,
                label=f"L={int(L)}: BPKR (Li–Sompolinsky)")
        ax.plot(curves["width_curve"], curves["eps_g_exact_curve"][i], color=c, lw=1.0, ls=":")
        ax.axhline(float(curves["eps_g_gp_level"][i]), color=c, lw=0.8, ls="--", alpha=0.6)
    ax.plot([], [], "k:", lw=1.0, label="exact finite width (scale mixture)")
    ax.plot([], [], "k--", lw=0.8, alpha=0.6, label="N → ∞ (NNGP)")
    for r in rows:
        if r["method"].endswith("exact finite width"):
            ax.errorbar(r["N"], r["measured"], yerr=r["mc_stderr"], fmt="o", ms=4, capsize=2,
                        color=colours[r["L"]], mfc=None if r["pass"] else "none")
    ax.plot([], [], "ko", ms=4, label="HMC (engine) ± stderr")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("hidden width N")
    ax.set_ylabel("Gibbs generalisation error ε_g")
    ax.set_title(f"deep linear nets, T={TEMPERATURE:g}, σ²={SIGMA2:g}")
    ax.legend(fontsize=7)
    common.z_panel(az, rows, [f"N={r['N']} L={r['L']} [{r['method'].split(' vs ')[1]}]" for r in rows])
    zmc = np.array([r["z_mc"] for r in rows], float)
    az.scatter(np.clip(zmc, -6, 6), np.arange(len(rows)), marker="x", c="0.4", s=12, label="z (MC stderr only)")
    az.legend(fontsize=7)
    return fig


def run(out_dir: Path, *, full: bool = False, seed: int = 0, size: str | None = None,
        progress: Callable[[str, float], None] | None = None) -> dict:
    """Sample every (N, L), compare with theory, write the table, netCDF data and figure into ``out_dir``.

    Args:
        out_dir: output folder.
        full: paper size (``size="full"``, meant for a GPU).
        seed: base seed (data: ``fold_in(key(seed), 0)``; configuration k samples with ``fold_in(key, 1 + k)``).
        size: ``"tiny"`` | ``"small"`` | ``"full"``; overrides ``full``.
        progress: optional ``progress(description, fraction_done)``.
    Returns:
        the protocol's result dict (see ``engine.registry``).
    """
    size, cfg = common.resolve_size(size, full, _SIZES, default="small")
    key = jax.random.key(seed)
    w, X, y = make_data(jax.random.fold_in(key, 0), cfg["n_in"], cfg["n_data"], cfg["n_datasets"])
    tasks = [tb.linear_task(Xd, yd, w) for Xd, yd in zip(X, y)]
    configs = [(N, L) for L in cfg["depths"] for N in cfg["widths"]]
    rows, per_set = [], []
    for k, (N, L) in enumerate(configs):
        if progress:
            progress(f"HMC N={N} L={L}", k / len(configs))
        meas = measure(jax.random.fold_in(key, 1 + k), X, y, w, width=N, n_hidden=L, n_chains=cfg["n_chains"],
                       n_steps=cfg["n_steps"], n_integration=cfg["n_integration"])
        th = theory(tasks, width=N, n_hidden=L)
        rows += _rows(N, L, cfg["n_data"], meas, th)
        per_set.append((meas, th))
    if progress:
        progress("theory curves and output", 1.0)
    curves = _curves(tasks, cfg["depths"], cfg["widths"], cfg["curve_points"])
    shape = (len(cfg["depths"]), len(cfg["widths"]), cfg["n_datasets"])

    def grid(f):
        return (("depth", "width", "dataset"), np.array([f(m, t) for m, t in per_set], np.float64).reshape(shape))

    data = curves.assign({
        "eps_g_measured": grid(lambda m, t: m["mean"]), "eps_g_mc_stderr": grid(lambda m, t: m["stderr"]),
        "eps_g_exact": grid(lambda m, t: t["exact"]), "eps_g_bpkr": grid(lambda m, t: t["bpkr"]),
        "u_bpkr": grid(lambda m, t: t["u"]), "eps_g_bpkr_bias": grid(lambda m, t: t["bpkr_bias"]),
        "eps_g_bpkr_variance": grid(lambda m, t: t["bpkr_variance"]), "eps_g_gp": grid(lambda m, t: t["gp"]),
        "rhat": grid(lambda m, t: m["rhat"]),
        "ess": grid(lambda m, t: m["ess"]),
    }).assign_coords(width=list(cfg["widths"]), dataset=np.arange(cfg["n_datasets"]))
    data.attrs.update(size=size, seed=seed, n_in=cfg["n_in"], n_data=cfg["n_data"], sigma2=SIGMA2,
                      temperature=TEMPERATURE, teacher_scale=TEACHER_SCALE, n_chains=cfg["n_chains"],
                      n_steps=cfg["n_steps"], jax=jax.__version__, device=str(jax.devices()[0].platform))
    return common.finish(out_dir, rows, figure=_figure(rows, curves), data=data)
