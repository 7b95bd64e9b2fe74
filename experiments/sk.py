"""Sherrington–Kirkpatrick spin glass by parallel tempering: energy, specific heat, P(q) and ⟨q²⟩ vs T and N.

``thermodl reproduce sk``. For each size N and each of D disorder samples J_ij ~ N(0, 1/N) (``models.sk.SK``),
``engine.tempering.run_tempering`` runs parallel tempering (heat-bath sweeps, DEO swaps; Hukushima & Nemoto,
J. Phys. Soc. Jpn. 65, 1604 (1996)) on a fixed β ladder with two independent copies, all D samples of one N in ONE
compiled program (the runner's disorder axis), whose overlap
q = s¹·s²/N is histogrammed in every slot. Per sample: u = ⟨E⟩/N, c = β² Var(E)/N, ⟨q²⟩ and P(q); then
disorder averages [·] with the sample-to-sample standard error.

Theory (``theory_spin``): the paramagnet above T = 1, u = −β/2, c = β²/2 with the O(1/N) correction of
Aizenman–Lebowitz–Ruelle (1987), and χ_SG = N[⟨q²⟩] = 1/(1 − β²); below T = 1 the replica-symmetric curves and
the Parisi ground-state energy −0.7632 are drawn for context (RS is not the low-temperature phase).

Table rows and their tolerances (z = (measured − theory)/stderr must satisfy |z| < t + allowance/stderr, t the
two-sided 0.27 % Student-t quantile for the degrees of freedom of the stderr, i.e. "3σ" for small samples;
the one rule of ``common.check_row``):

* u and c at T = 2 and 1.6, every N, vs the paramagnet with its 1/N term; allowance = the size of that 1/N term
  (the unknown o(1/N) remainder is taken no larger than the last included term of the asymptotic series).
* N[⟨q²⟩] at the same T vs 1/(1 − β²); allowance = twice the O(1/N) deviation of the annealed finite-N value
  (the quenched and annealed corrections are of the same order; exact enumeration at N ≤ 12 finds the quenched
  one within 1.6 times the annealed one at T ≥ 1.6).
* Equilibrium identity for Gaussian couplings (integration by parts; H. G. Katzgraber, M. Palassini & A. P. Young,
  PRB 63, 184422 (2001)): [u] = −(β/2)(1 − [⟨q²⟩]) exactly at every N; tested at the lowest T, where a
  non-equilibrated run (energy too high, overlap too small) breaks it. No allowance.
* N ≤ 16: u, ⟨q²⟩ at the lowest T and c at T = 1 vs exact enumeration of the same coupling matrices.
* Spin-glass order below T = 1: the log-slope d ln[⟨q²⟩]/d ln N at the lowest T between the smallest and largest
  N; paramagnetic 1/N scaling would give −1, a non-trivial P(q) gives → 0; allowance 1/3 (finite-size
  corrections of the overlap in the SK spin-glass phase decay like N^{−1/3} or faster: T. Aspelmeier,
  A. Billoire, E. Marinari & M. A. Moore, J. Phys. A 41, 324008 (2008); a monotone approach with exponent ω
  gives a slope in (−ω, 0]).
* Diagnostics: every PT system completes ≥ 1 round trip in production; smallest swap acceptance (reported).

Sizes: ``tiny`` (tests), ``quick`` (default: N = 16, 32, 64, a few CPU-minutes), ``full`` (``--full``, GPU).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import numpy as np
import xarray as xr

from thermodl.engine import observables as obs
from thermodl.engine.diagnostics import pooled_variance
from thermodl.engine.tempering import run_tempering
from thermodl.experiments import common
from thermodl.experiments import theory_spin as theory
from thermodl.models.base import stack_models
from thermodl.models.sk import SK

NAME = "sk"
DESCRIPTION = ("SK spin glass by parallel tempering: energy, specific heat, P(q) and <q^2> vs T and N against the "
               "paramagnetic (ALR 1/N), Gaussian-identity, exact and replica-symmetric theory")


class _Size(NamedTuple):
    sizes: tuple  # N values
    n_disorder: tuple  # disorder samples per N
    n_chains: int  # independent PT systems per copy
    n_warmup: tuple  # PT steps per N
    n_steps: tuple
    n_replicas: int  # ladder size: β = linspace(BETA_MIN, BETA_MAX, n_replicas)


_SIZES = {
    "tiny": _Size((8, 12), (3, 3), 4, (100, 100), (100, 100), 19),
    "quick": _Size((16, 32, 64), (16, 12, 8), 8, (1000, 1000, 1000), (2000, 2000, 2000), 19),
    "full": _Size((32, 64, 128, 256), (64, 48, 32, 16), 8, (2000, 4000, 5000, 10000),
                  (4000, 8000, 10000, 20000), 37),
}
SIZES = tuple(_SIZES)
BETA_MIN, BETA_MAX = 0.25, 2.5  # the ladder always holds β = 0.5, 0.625, 1, 1.5, 2.5 (R ≡ 1 mod 18)
T_PARAMAGNET = (2.0, 1.6)  # paramagnetic comparison temperatures
T_OVERLAP = (2.0, 1.0, 2.0 / 3.0, 0.4)  # P(q) panel
EXACT_MAX_N = 16


# ------------------------------------------------------------------------------------------------ rows
def _satterthwaite(se: np.ndarray, dof: np.ndarray) -> float:
    """Welch–Satterthwaite degrees of freedom of sqrt(Σ se²)."""
    se, dof = np.asarray(se, np.float64), np.asarray(dof, np.float64)
    return float(np.sum(se**2) ** 2 / np.sum(se**4 / dof))


# ------------------------------------------------------------------------------------------------ one sample
class _SampleStats(NamedTuple):
    u: np.ndarray  # [R] ⟨E⟩/N
    u_se: np.ndarray  # [R] chain-to-chain stderr (2·chains systems)
    c: np.ndarray  # [R] β² Var(E)/N, pooled over systems
    c_se: np.ndarray  # [R] jackknife stderr
    q2: np.ndarray  # [R] ⟨q²⟩
    q2_se: np.ndarray  # [R] stderr over the chains (copy pairs)
    pq: np.ndarray  # [R, N+1] P(q) on q_j = −1 + 2j/N, symmetrised, normalised to Σ = 1
    round_trips: np.ndarray  # int [2, chains]
    swap_rate: np.ndarray  # [R−1]
    nonfinite: bool


def _sample_stats(res, d: int, n: int) -> _SampleStats:
    """Reduce disorder sample ``d`` of a two-copy, disorder-axis PT result to per-slot physics per spin."""
    betas = np.asarray(res.betas, np.float64)
    R = len(betas)
    tot = obs.split_moments_total(res.energy)  # lanes [D, R, 2, chains]
    mean = np.asarray(tot.mean, np.float64)[d].reshape(R, -1)  # [R, systems = 2·chains]
    m2 = np.asarray(tot.m2, np.float64)[d].reshape(R, -1)
    count = np.asarray(tot.count, np.float64)[d].reshape(R, -1)
    n_sys = mean.shape[1]
    var = pooled_variance(obs.Moments(count, mean, m2))
    counts = np.asarray(res.overlap_counts, np.float64)[d]  # [R, chains, N+1]; bin j holds q_j = −1 + 2j/N
    q = -1.0 + 2.0 * np.arange(n + 1) / n
    per_chain_q2 = (counts * q**2).sum(-1) / counts.sum(-1)
    pooled = counts.sum(1)
    pq = 0.5 * (pooled + pooled[:, ::-1])  # spin-flip symmetry
    n_chains = counts.shape[1]
    return _SampleStats(
        u=mean.mean(1) / n, u_se=mean.std(1, ddof=1) / math.sqrt(n_sys) / n,
        c=betas**2 * var.mean / n, c_se=betas**2 * var.stderr / n,
        q2=(pooled * q**2).sum(-1) / pooled.sum(-1), q2_se=per_chain_q2.std(1, ddof=1) / math.sqrt(n_chains),
        pq=pq / pq.sum(-1, keepdims=True), round_trips=np.asarray(res.round_trips)[d],
        swap_rate=np.asarray(res.swap_rate, np.float64)[d], nonfinite=bool(np.any(np.asarray(res.nonfinite)[d])),
    )


def _run_size(n: int, n_disorder: int, cfg: _Size, ladder: np.ndarray, key, progress) -> dict:
    """PT on every disorder sample of size N in ONE compiled program (disorder axis); per-sample stats [D, ...]."""
    models = [SK.random(jax.random.fold_in(jax.random.fold_in(key, 0), d), n) for d in range(n_disorder)]
    total = cfg.n_warmup[cfg.sizes.index(n)] + cfg.n_steps[cfg.sizes.index(n)]
    res = run_tempering(stack_models(models), ladder, key=jax.random.fold_in(key, 1), n_chains=cfg.n_chains,
                        n_steps=cfg.n_steps[cfg.sizes.index(n)], n_warmup=cfg.n_warmup[cfg.sizes.index(n)],
                        kernel="heat_bath", adapt_ladder=False, n_copies=2, chunk_size=250, disorder_axis=True,
                        progress=None if progress is None else (lambda done, _t: progress(done / total)))
    samples = [_sample_stats(res, d, n) for d in range(n_disorder)]
    exact = [theory.sk_exact_thermodynamics(np.asarray(m.J), ladder) for m in models] if n <= EXACT_MAX_N else []
    out = {f: np.stack([getattr(s, f) for s in samples]) for f in _SampleStats._fields}
    out["exact"] = {k: np.stack([e[k] for e in exact]) for k in ("u", "c", "q2")} if exact else None
    out["n_chains"] = cfg.n_chains
    return out


# ------------------------------------------------------------------------------------------------ checks
def _disorder_mean(x: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    x = x[ok]
    k = x.shape[0]
    return x.mean(0), (x.std(0, ddof=1) / math.sqrt(k) if k >= 2 else np.full(x.shape[1:], np.nan)), k


def _rows_for_size(n: int, data: dict, ladder: np.ndarray, wall: float) -> list[dict]:
    rows = []
    ok = ~data["nonfinite"]
    method = "PT, disorder average"
    idx = {t: int(np.argmin(np.abs(ladder - 1.0 / t))) for t in T_PARAMAGNET + T_OVERLAP}
    u, u_se, k = _disorder_mean(data["u"], ok)
    c, c_se, _ = _disorder_mean(data["c"], ok)
    nq2, nq2_se, _ = _disorder_mean(n * data["q2"], ok)
    for t in T_PARAMAGNET:
        i, b = idx[t], ladder[idx[t]]
        u_inf, u_n = float(theory.sk_paramagnetic_energy(b)), float(theory.sk_paramagnetic_energy(b, n))
        c_inf, c_n = float(theory.sk_paramagnetic_specific_heat(b)), float(theory.sk_paramagnetic_specific_heat(b, n))
        chi, chi_ann = float(theory.sk_spin_glass_susceptibility(b)), float(theory.sk_annealed_susceptibility(b, n))
        extra = dict(N=n, T=1.0 / b, wall_s=wall, n_disorder=k)
        rows.append(common.check_row(f"u, T={1 / b:.3g}, N={n}", method, u[i], u_se[i], u_n, dof=k - 1,
                                     allowance=abs(u_n - u_inf), **extra))
        rows.append(common.check_row(f"c, T={1 / b:.3g}, N={n}", method, c[i], c_se[i], c_n, dof=k - 1,
                                     allowance=abs(c_n - c_inf), **extra))
        rows.append(common.check_row(f"N<q^2>, T={1 / b:.3g}, N={n}", method, nq2[i], nq2_se[i], chi, dof=k - 1,
                                     allowance=2.0 * abs(chi_ann - chi), **extra))
    i = len(ladder) - 1
    b = ladder[i]
    ident = data["u"][ok][:, i] + 0.5 * b * (1.0 - data["q2"][ok][:, i])
    rows.append(common.check_row(f"u + (beta/2)(1 - <q^2>), T={1 / b:.3g}, N={n}", "PT, Gaussian identity",
                                 ident.mean(), ident.std(ddof=1) / math.sqrt(k) if k >= 2 else math.nan, 0.0, dof=k - 1,
                                 N=n, T=1.0 / b, wall_s=wall, n_disorder=k))
    ex = data["exact"]
    if ex is not None:
        n_sys = 2 * data["n_chains"]
        for name, key, j, dof_each in (("u", "u", i, n_sys - 1), ("<q^2>", "q2", i, data["n_chains"] - 1),
                                       ("c", "c", idx[1.0], n_sys - 1)):
            diff = data[key][ok][:, j] - ex[key][ok][:, j]
            se_d = data[f"{key}_se"][ok][:, j]
            se = float(np.sqrt(np.sum(se_d**2)) / len(se_d))
            rows.append(common.check_row(f"{name}, T={1 / ladder[j]:.3g}, N={n} (same J)", "PT - exact enumeration",
                                         diff.mean(), se, 0.0, dof=_satterthwaite(se_d, np.full(se_d.shape, dof_each)),
                                         N=n, T=1.0 / ladder[j], wall_s=wall, n_disorder=k))
    trips = data["round_trips"]
    row = common.measurement_row(f"min round trips per PT system, N={n}", "PT diagnostics", float(trips.min()),
                                 wall_s=wall, N=n, criterion=">= 1", mean_round_trips=float(trips.mean()),
                                 min_swap_acceptance=float(np.nanmin(data["swap_rate"])),
                                 n_nonfinite_samples=int(data["nonfinite"].sum()))
    row["pass"] = bool(trips.min() >= 1 and not data["nonfinite"].any())
    rows.append(row)
    return rows


def _slope_row(sizes, q2, q2_se, ks, ladder) -> dict:
    """d ln[⟨q²⟩]/d ln N at the lowest T between the smallest and largest N (delta-method stderr)."""
    n0, n1 = sizes[0], sizes[-1]
    a, b = q2[n0][-1], q2[n1][-1]
    den = math.log(n1 / n0)
    slope = math.log(b / a) / den
    se = math.hypot(q2_se[n0][-1] / a, q2_se[n1][-1] / b) / den
    return common.check_row(f"d ln<q^2>/d ln N, T={1 / ladder[-1]:.3g}, N={n0}..{n1}", "PT, spin-glass order",
                            slope, se, 0.0, dof=min(ks[n0], ks[n1]) - 1, allowance=1.0 / 3.0, T=1.0 / ladder[-1],
                            paramagnet_value=-1.0)


# ------------------------------------------------------------------------------------------------ figure, data
def _figure(sizes, res, ladder):
    fig, ax = common.new_figure(2, 2, figsize=(11.0, 8.0))
    temps = 1.0 / ladder
    t_hi = np.linspace(1.0, temps.max() * 1.05, 100)
    t_lo = np.linspace(0.08, 1.0, 40)
    for n in sizes:
        r = res[n]
        kw = dict(fmt="o", ms=3, capsize=2, label=f"N={n}")
        ax[0, 0].errorbar(temps, r["u"], r["u_se"], **kw)
        ax[0, 1].errorbar(temps, r["c"], r["c_se"], **kw)
        ax[1, 1].errorbar(temps, n * r["q2"], n * r["q2_se"], **kw)
    ax[0, 0].plot(t_hi, -0.5 / t_hi, "k-", label="paramagnet -beta/2")
    ax[0, 0].plot(t_lo, theory.sk_rs_energy(1.0 / t_lo), "k--", label="RS (context)")
    ax[0, 0].plot([0.0], [theory.SK_GROUND_STATE_ENERGY], "k*", ms=10, label="Parisi e0 = -0.7632")
    ax[0, 0].set(xlabel="T", ylabel="u = [<E>]/N", title="energy per spin")
    ax[0, 1].plot(t_hi, 0.5 / t_hi**2, "k-", label="paramagnet beta^2/2")
    ax[0, 1].plot(t_lo[2:], theory.sk_rs_specific_heat(1.0 / t_lo[2:]), "k--", label="RS (context)")
    ax[0, 1].set(xlabel="T", ylabel="c = beta^2 [Var E]/N", title="specific heat per spin")
    n_max = sizes[-1]
    q = -1.0 + 2.0 * np.arange(n_max + 1) / n_max
    for t in T_OVERLAP:
        i = int(np.argmin(np.abs(ladder - 1.0 / t)))
        ax[1, 0].plot(q, res[n_max]["pq"][i] * n_max / 2.0, "-", drawstyle="steps-mid", label=f"T={1 / ladder[i]:.2f}")
    ax[1, 0].set(xlabel="q", ylabel="P(q)", title=f"overlap distribution, N={n_max}, disorder average")
    ax[1, 1].plot(t_hi[t_hi > 1.05], theory.sk_spin_glass_susceptibility(1.0 / t_hi[t_hi > 1.05]), "k-",
                  label="1/(1-beta^2)")
    ax[1, 1].set(xlabel="T", ylabel="N [<q^2>]", title="spin-glass susceptibility", yscale="log")
    for a in ax.ravel():
        a.axvline(1.0, color="0.7", lw=0.8, zorder=0)
        a.legend(fontsize=7)
    return fig


def _dataset(sizes, res, ladder, walls) -> xr.Dataset:
    d_max = max(res[n]["u"].shape[0] for n in sizes)

    def pad(x):
        out = np.full((d_max,) + x.shape[1:], np.nan)
        out[: x.shape[0]] = x
        return out

    data = {}
    for f in ("u", "u_se", "c", "c_se", "q2", "q2_se"):
        data[f"{f}_sample"] = (("N", "disorder", "beta"), np.stack([pad(res[n][f]) for n in sizes]))
    for f in ("u", "c", "q2"):
        data[f] = (("N", "beta"), np.stack([np.nanmean(pad(res[n][f]), 0) for n in sizes]))
    for n in sizes:
        data[f"pq_N{n}"] = (("beta", f"q_N{n}"), res[n]["pq"].mean(0))
    ds = xr.Dataset(data, coords={"N": list(sizes), "beta": ladder, "T": ("beta", 1.0 / ladder),
                                  "disorder": np.arange(d_max),
                                  **{f"q_N{n}": -1.0 + 2.0 * np.arange(n + 1) / n for n in sizes}})
    para = ladder < 1.0
    ds["u_paramagnet"] = ("beta", np.where(para, -0.5 * ladder, np.nan))
    ds["c_paramagnet"] = ("beta", np.where(para, 0.5 * ladder**2, np.nan))
    ds["u_rs"] = ("beta", theory.sk_rs_energy(ladder))
    ds["wall_s"] = ("N", np.asarray([walls[n] for n in sizes]))
    ds.attrs.update(model="SK, J_ij ~ N(0, 1/N)", sampler="parallel tempering, heat bath, 2 copies",
                    ground_state_energy_parisi=theory.SK_GROUND_STATE_ENERGY)
    return ds


# ------------------------------------------------------------------------------------------------ entry point
def run(out_dir: Path, *, full: bool = False, seed: int = 0, size: str | None = None,
        progress: Callable[[str, float], None] | None = None) -> dict:
    """Run the SK figure into ``out_dir`` (module docstring): ``engine.registry``'s protocol, sizes ``SIZES``."""
    size, cfg = common.resolve_size(size, full, _SIZES, default="quick")
    ladder = np.linspace(BETA_MIN, BETA_MAX, cfg.n_replicas)
    for t in T_PARAMAGNET + T_OVERLAP:
        if not np.any(np.isclose(ladder, 1.0 / t)):
            raise ValueError(f"ladder of {cfg.n_replicas} replicas misses T={t}")
    key = jax.random.key(seed)
    res, walls, rows = {}, {}, []
    total = sum(n * n * d for n, d in zip(cfg.sizes, cfg.n_disorder))
    done = 0
    for n, n_dis in zip(cfg.sizes, cfg.n_disorder):
        def step(frac, n=n, n_dis=n_dis):
            if progress is not None:
                progress(f"sk N={n}: {n_dis} disorder samples", (done + n * n * n_dis * frac) / total)

        with common.stopwatch() as sw:
            res[n] = _run_size(n, n_dis, cfg, ladder, jax.random.fold_in(key, n), step)
        walls[n] = sw["s"]
        done += n * n * n_dis
        rows += _rows_for_size(n, res[n], ladder, walls[n])
    q2 = {n: _disorder_mean(res[n]["q2"], ~res[n]["nonfinite"])[0] for n in cfg.sizes}
    q2_se = {n: _disorder_mean(res[n]["q2"], ~res[n]["nonfinite"])[1] for n in cfg.sizes}
    ks = {n: int((~res[n]["nonfinite"]).sum()) for n in cfg.sizes}
    rows.append(_slope_row(cfg.sizes, q2, q2_se, ks, ladder))
    means = {n: {f: _disorder_mean(res[n][f], ~res[n]["nonfinite"]) for f in ("u", "c", "q2")} for n in cfg.sizes}
    summary = {n: {"u": means[n]["u"][0], "u_se": means[n]["u"][1], "c": means[n]["c"][0],
                   "c_se": means[n]["c"][1], "q2": means[n]["q2"][0], "q2_se": means[n]["q2"][1],
                   "pq": res[n]["pq"].mean(0)} for n in cfg.sizes}
    fig = _figure(cfg.sizes, summary, ladder)
    return common.finish(out_dir, rows, figure=fig, data=_dataset(cfg.sizes, res, ladder, walls), size=size)
