"""Storage capacity of the perceptron (``thermodl reproduce gardner``): Cover, Gardner's volume, binary entropy.

Three panels, κ = 0 throughout, α = P/N with P = round(αN) (theory is always evaluated at that P/N):

(i) **Cover's theorem.** The fraction of P random patterns with random ±1 labels that are linearly separable
    through the origin (LP feasibility of y_μ w·x_μ ≥ 1, ``scipy.optimize.linprog``/HiGHS) vs Cover's exact
    finite-N formula P_sep = 2^{1−P} Σ_{k<N} C(P−1, k) (T. M. Cover, IEEE Trans. EC-14, 326 (1965)), which crosses
    1/2 at α = 2 for every N. Gaussian patterns are in general position (Cover's hypothesis) with probability 1;
    ±1 patterns only with probability 1 − O(P² 2^{−N}) (two equal or opposite patterns already break it), so ±1
    rows get a verdict only where P² 2^{−N} < 0.01 and are otherwise reported without one.
(ii) **Gardner's volume.** (1/N) ln V, V the fraction of the sphere |w|² = N classifying Gaussian patterns
    correctly, measured by the engine as log Z(β_max = 20) of ``models.SphericalPerceptron`` (error-count energy,
    normalised uniform prior): population annealing of the sphere kernel's particles up a β grid (the engine's
    ``engine.smc.population_anneal``: all disorder samples × stages in one compiled program; each stage resamples,
    then n_steps/2 burn-in + n_steps measured sweeps) and thermodynamic integration of ⟨E⟩(β)
    (``engine.ti.ti_integrate``, ⟨E⟩(0) = P/2 exactly), disorder-averaged, vs the RS result of E. Gardner, J. Phys.
    A 21, 257 (1988) (``theory_perceptron.gardner_log_volume``; RS is exact for the spherical perceptron). α ≤ 1, so
    every sample is separable (P ≤ N points in general position) and E ln V is finite.
(iii) **Binary perceptron entropy.** (1/N) ln #solutions of ±1 weights on ±1 patterns (odd N: no ties), by exact
    enumeration (``BinaryPerceptron.count_solutions``) at several N, and measured by the engine as
    ``engine.api.log_partition(method="ais", β = 20)`` vs the exact log Z(20) of the same samples; against the
    RS entropy of E. Gardner & B. Derrida, J. Phys. A 21, 271 (1988), which vanishes at α = 0.833
    (W. Krauth & M. Mézard, J. Phys. France 50, 3057 (1989)). Where some samples have no solution, the finite-N
    entropy is averaged over the solvable ones and P(SAT) is shown; such α get no RS verdict.

Tolerances (``common.check_row``): |measured − theory| < t·stderr + allowance, t the two-sided 0.27 % Student-t
quantile of the stderr's degrees of freedom ("3σ"). Cover and AIS-vs-enumeration rows: no allowance (exact theory,
same samples). Finite-N vs RS rows (ii, iii) compare the largest N with the N → ∞ theory, with allowance = the
leading finite-size correction at N_max estimated from the smallest N, assuming δ(N) = c/N for the deviation δ =
measured − RS: allowance = |δ(N_max) − δ(N_min)| · N_min/(N_max − N_min) (= |c|/N_max; stated before looking at the
data; the noise of δ(N_min) inflates it, which is conservative).

Sizes: ``tiny`` (tests, seconds), ``quick`` (default, a few CPU-minutes), ``full`` (``--full``, larger N, GPU).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import numpy as np
import xarray as xr
from scipy import optimize

from thermodl.engine.smc import population_anneal
from thermodl.engine.ti import ti_integrate
from thermodl.experiments import common
from thermodl.experiments import theory_perceptron as theory
from thermodl.models.base import stack_models
from thermodl.models.perceptron import BinaryPerceptron, SphericalPerceptron

NAME = "gardner"
DESCRIPTION = ("Perceptron storage capacity: Cover's separability, Gardner's RS version-space volume (engine "
               "log Z at beta=20) and the binary perceptron's entropy (AIS, enumeration, Krauth-Mezard RS)")

BETA_MAX = 20.0  # "zero temperature": the weight of a one-error state is e^{-20} ≈ 2e-9


class _Size(NamedTuple):
    cover_N: tuple
    cover_alphas: tuple
    cover_trials: int
    volume_N: tuple  # ≥ 2 sizes, the largest last
    volume_alphas: tuple  # α ≤ 1 with αN integer
    volume_disorder: int
    volume_chains: int
    volume_stages: int  # β grid points (β = 0 included)
    volume_steps: int  # production steps per stage (plus half as many burn-in)
    enum_N: tuple  # odd
    enum_alphas: tuple
    enum_disorder: int
    ais_N: int
    ais_alphas: tuple
    ais_disorder: int
    ais_chains: int
    ais_temperatures: int


_SIZES = {
    "tiny": _Size((8, 12), (1.5, 2.0, 2.5), 24, (6, 10), (0.5, 1.0), 4, 8, 6, 40,
                  (9, 11), (0.2, 0.4), 8, 9, (0.4,), 2, 32, 32),
    "quick": _Size((10, 20, 40), (1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0), 160,
                   (10, 20), (0.3, 0.5, 0.7, 1.0), 24, 16, 20, 600,
                   (13, 17, 21), (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8), 48, 17, (0.3, 0.5, 0.7), 4, 128, 400),
    "full": _Size((10, 20, 40, 80), (1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0), 1000,
                  (20, 40, 80), (0.3, 0.5, 0.7, 1.0), 64, 32, 32, 3000,
                  (11, 13, 15, 17, 19, 21, 23), (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), 256,
                  21, (0.2, 0.4, 0.6, 0.8), 16, 256, 2000),
}
SIZES = tuple(_SIZES)


# ----------------------------------------------------------------------------------------------------- rows
def _mean_se(x) -> tuple[float, float, int]:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan, int(x.size)


def pad_patterns(X, y, n_rows: int):
    """Append all-zero patterns up to ``n_rows``: at κ = 0 each counts as one error for every w (stability 0 ≤ κ),
    so the energy gains the constant n_pad = n_rows − P, the Gibbs measure is unchanged and log Z(β) shifts by
    exactly −β·n_pad. Lets every α share one array shape, hence one compilation. Returns (X, y, n_pad)."""
    X, y = np.asarray(X), np.asarray(y)
    n_pad = n_rows - X.shape[0]
    if n_pad < 0:
        raise ValueError(f"cannot pad {X.shape[0]} patterns to {n_rows}")
    return (np.concatenate([X, np.zeros((n_pad, X.shape[1]), X.dtype)]),
            np.concatenate([y, np.ones(n_pad, y.dtype)]), n_pad)


# ------------------------------------------------------------------------------------- population annealing
def zero_temperature_grid(n: int, beta_max: float = BETA_MAX) -> np.ndarray:
    """β grid [n] from 0 to β_max, quadratic (dense where ⟨E⟩ falls off, sparse in its exponential tail)."""
    return beta_max * np.linspace(0.0, 1.0, n) ** 2


# --------------------------------------------------------------------------------------------- (i) Cover
def linearly_separable(X: np.ndarray, y: np.ndarray) -> bool:
    """Whether some w has y_μ w·x_μ > 0 for all μ: LP feasibility of y_μ w·x_μ ≥ 1 (HiGHS)."""
    A = -(np.asarray(y, np.float64)[:, None] * np.asarray(X, np.float64))
    res = optimize.linprog(np.zeros(A.shape[1]), A_ub=A, b_ub=-np.ones(A.shape[0]),
                           bounds=[(None, None)] * A.shape[1], method="highs")
    if res.status not in (0, 2):
        raise RuntimeError(f"linprog failed: {res.message}")
    return res.status == 0


def _rng(seed: int, *tags: int) -> np.random.Generator:
    """The NumPy generator of one data set: disorder is drawn on the host (one compilation per shape is what
    dominates small runs), reproducibly from (seed, *tags)."""
    return np.random.default_rng([seed, *tags])


def _signs(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.choice(np.array([-1.0, 1.0], np.float32), size=shape)


def _cover_panel(cfg: _Size, seed: int) -> tuple[dict, list]:
    shape = (2, len(cfg.cover_N), len(cfg.cover_alphas))
    frac, theo = np.zeros(shape), np.zeros(shape)
    rows = []
    for i, kind in enumerate(("gaussian", "binary")):
        for j, N in enumerate(cfg.cover_N):
            for a, alpha in enumerate(cfg.cover_alphas):
                P = int(round(alpha * N))
                rng, T = _rng(seed, 1, i, N, a), cfg.cover_trials
                X = rng.standard_normal((T, P, N)) if kind == "gaussian" else _signs(rng, (T, P, N))
                y = _signs(rng, (T, P))
                with common.stopwatch() as sw:
                    k = sum(linearly_separable(X[t], y[t]) for t in range(T))
                frac[i, j, a], theo[i, j, a] = k / T, theory.cover_separable_probability(P, N)
                if alpha not in (1.5, 2.0, 2.5):
                    continue
                p = theo[i, j, a]
                se = math.sqrt(p * (1 - p) / T)  # binomial error under the hypothesis
                degenerate = kind == "binary" and P * P * 2.0 ** (-N) >= 0.01
                q = f"P_sep {kind} patterns N={N} alpha={P / N:.4g}"
                if degenerate:
                    rows.append(common.measurement_row(q, "LP", frac[i, j, a], wall_s=sw["s"], theory=p,
                                                       note="±1 patterns not in general position: no verdict"))
                else:
                    rows.append(common.check_row(q, "LP", frac[i, j, a], se, p, dof=math.inf, wall_s=sw["s"]))
    data = {"cover_fraction": (("patterns", "cover_N", "cover_alpha"), frac),
            "cover_theory": (("patterns", "cover_N", "cover_alpha"), theo)}
    return data, rows


# ------------------------------------------------------------------------------------------ (ii) volume
def _volume_samples(cfg: _Size, N: int, seed: int, progress) -> tuple[np.ndarray, dict]:
    """(1/N) ln V per sample, [n_alpha, D], by annealing + TI; and diagnostics."""
    P_all = [int(round(a * N)) for a in cfg.volume_alphas]
    P_max, D = max(P_all), cfg.volume_disorder
    rng = _rng(seed, 2, N)
    X_all = rng.standard_normal((len(P_all), D, P_max, N)).astype(np.float32)
    y_all = _signs(rng, (len(P_all), D, P_max))
    models, n_pad, P_of = [], [], []
    for i, P in enumerate(P_all):
        for d in range(D):
            X, y, npad = pad_patterns(X_all[i, d, :P], y_all[i, d, :P], P_max)
            models.append(SphericalPerceptron(X, y))
            n_pad.append(npad)
            P_of.append(P)
    n_pad, P_of = np.asarray(n_pad, np.float64), np.asarray(P_of, np.float64)
    grid = zero_temperature_grid(cfg.volume_stages)
    res = population_anneal(stack_models(models), grid, key=jax.random.fold_in(jax.random.key(seed), N),
                            n_particles=cfg.volume_chains, n_sweeps=cfg.volume_steps + max(cfg.volume_steps // 2, 1),
                            n_measure=cfg.volume_steps, kernel="sphere", resampling="systematic")
    progress(1.0)
    u = res.mean_energy - n_pad[:, None]
    u[:, 0] = P_of / 2.0  # each pattern is misclassified by half the sphere
    log_v = np.array([ti_integrate(grid, u[s], res.mean_energy_stderr[s]).log_z[-1] for s in range(len(u))]) / N
    diag = {"u_at_beta_max": u[:, -1].reshape(len(P_all), D), "acceptance": res.acceptance,
            "step_size": res.step_size, "n_nonfinite": res.n_nonfinite}
    return log_v.reshape(len(P_all), D), diag


def _volume_panel(cfg: _Size, seed: int, progress) -> tuple[dict, list]:
    nN, nA = len(cfg.volume_N), len(cfg.volume_alphas)
    samples = np.zeros((nN, nA, cfg.volume_disorder))
    u_max, walls = np.zeros((nN, nA)), np.zeros(nN)
    for j, N in enumerate(cfg.volume_N):
        with common.stopwatch() as sw:
            samples[j], diag = _volume_samples(cfg, N, seed,
                                               lambda f, j=j: progress((j + f) / nN))
        walls[j] = sw["s"]
        u_max[j] = diag["u_at_beta_max"].mean(1)
    mean = np.nanmean(samples, -1)
    se = np.nanstd(samples, -1, ddof=1) / np.sqrt(np.isfinite(samples).sum(-1))
    rs = np.array([[theory.gardner_log_volume(round(a * N) / N).log_volume for a in cfg.volume_alphas]
                   for N in cfg.volume_N])
    allow = _finite_size_allowance(mean - rs, cfg.volume_N)
    rows = []
    for a, alpha in enumerate(cfg.volume_alphas):
        N = cfg.volume_N[-1]
        rows.append(common.check_row(f"(1/N) ln V, N={N} alpha={alpha:g}", "engine PA+TI beta=20", mean[-1, a],
                                     se[-1, a], rs[-1, a], dof=cfg.volume_disorder - 1, allowance=allow[a],
                                     wall_s=walls[-1], N_min=cfg.volume_N[0], measured_N_min=mean[0, a],
                                     mean_U_beta_max=u_max[-1, a]))
    data = {"volume_log_v": (("volume_N", "volume_alpha", "volume_disorder"), samples),
            "volume_mean": (("volume_N", "volume_alpha"), mean), "volume_stderr": (("volume_N", "volume_alpha"), se),
            "volume_rs": (("volume_N", "volume_alpha"), rs), "volume_wall_s": (("volume_N",), walls)}
    return data, rows


# ------------------------------------------------------------------------------------ (iii) binary entropy
_energy_counts = jax.jit(jax.vmap(lambda m: m.energy_counts()))


def _binary_problems(rng: np.random.Generator, N: int, P: int, D: int, P_max: int) -> list:
    """D problems of P random ±1 patterns with ±1 labels, padded to P_max: [(X, y, n_pad)]."""
    return [pad_patterns(_signs(rng, (P, N)), _signs(rng, (P,)), P_max) for _ in range(D)]


def _finite_size_allowance(dev: np.ndarray, sizes) -> np.ndarray:
    """|δ(N_max) − δ(N_min)|·N_min/(N_max − N_min): the c/N correction at N_max, from deviations dev [n_N, ...]."""
    n0, n1 = sizes[0], sizes[-1]
    return np.abs(dev[-1] - dev[0]) * n0 / (n1 - n0)


def _binary_panel(cfg: _Size, seed: int, progress) -> tuple[dict, list]:
    from thermodl.engine.api import log_partition
    from thermodl.engine.exact import exact_log_partition_value

    nN, nA, D = len(cfg.enum_N), len(cfg.enum_alphas), cfg.enum_disorder
    log_count = np.full((nN, nA, D), np.nan)
    for j, N in enumerate(cfg.enum_N):
        P_max = max(int(round(a * N)) for a in cfg.enum_alphas)
        for a, alpha in enumerate(cfg.enum_alphas):
            probs = _binary_problems(_rng(seed, 3, N, a), N, int(round(alpha * N)), D, P_max)
            counts = np.asarray(_energy_counts(stack_models([BinaryPerceptron(X, y) for X, y, _ in probs])))
            n_sol = counts[np.arange(D), [npad for _, _, npad in probs]].astype(np.float64)
            log_count[j, a] = np.where(n_sol > 0, np.log(np.maximum(n_sol, 1.0)), -np.inf)
        progress(0.6 * (j + 1) / nN)
    sat = np.isfinite(log_count)
    s_mean = np.where(sat, log_count, 0.0).sum(-1) / np.maximum(sat.sum(-1), 1) / np.asarray(cfg.enum_N)[:, None]
    s_se = np.array([[_mean_se(log_count[j, a][sat[j, a]] / N)[1] if sat[j, a].sum() > 1 else np.nan
                      for a in range(nA)] for j, N in enumerate(cfg.enum_N)])
    alpha_eff = np.array([[round(a * N) / N for a in cfg.enum_alphas] for N in cfg.enum_N])
    rs = np.vectorize(lambda a: theory.binary_entropy_rs(a).entropy)(alpha_eff)
    rows = []
    allow = _finite_size_allowance(s_mean - rs, cfg.enum_N)
    for a, alpha in enumerate(cfg.enum_alphas):
        if not (sat[0, a].all() and sat[-1, a].all()):
            continue  # some sample has no solution: E ln #solutions = −∞, no RS verdict
        rows.append(common.check_row(f"binary (1/N) ln #solutions, N={cfg.enum_N[-1]} alpha={alpha:g}", "enumeration",
                                     s_mean[-1, a], s_se[-1, a], rs[-1, a], dof=D - 1, allowance=allow[a],
                                     N_min=cfg.enum_N[0], measured_N_min=s_mean[0, a]))
    # the engine: AIS log Z(β = 20) vs the exact log Z(20) of the same samples
    N = cfg.ais_N
    P_max = max(int(round(a * N)) for a in cfg.ais_alphas)
    ais = np.full((len(cfg.ais_alphas), cfg.ais_disorder, 4), np.nan)  # AIS value, AIS stderr, exact, SAT
    for a, alpha in enumerate(cfg.ais_alphas):
        probs = _binary_problems(_rng(seed, 4, N, a), N, int(round(alpha * N)), cfg.ais_disorder, P_max)
        n_unreliable = 0
        with common.stopwatch() as sw:
            for d, (X, y, npad) in enumerate(probs):
                m = BinaryPerceptron(X, y)
                k = jax.random.fold_in(jax.random.key(seed), 1_000 + 100 * a + d)
                est = log_partition(m, BETA_MAX, method="ais", key=k, n_chains=cfg.ais_chains,
                                    n_temperatures=cfg.ais_temperatures)
                exact = exact_log_partition_value(m, BETA_MAX)[0]  # float64 enumeration
                solvable = int(m.energy_counts()[npad]) > 0  # E = n_pad: no error on the real patterns
                ais[a, d] = (est.value + BETA_MAX * npad, est.stderr, exact + BETA_MAX * npad, float(solvable))
                n_unreliable += bool(est.diagnostics.get("unreliable", False))
        progress(0.6 + 0.4 * (a + 1) / len(cfg.ais_alphas))
        rows.append(common.check_row(f"binary N={N} alpha={round(alpha * N) / N:.4g}: mean log Z(beta=20)/N",
                                     "engine AIS", ais[a, :, 0].mean() / N,
                                     math.sqrt(np.sum(ais[a, :, 1] ** 2)) / cfg.ais_disorder / N,
                                     ais[a, :, 2].mean() / N, dof=cfg.ais_chains - 1, wall_s=sw["s"],
                                     n_ais_unreliable=n_unreliable, theory_source="exact enumeration, same samples"))
    alpha_zero = theory.binary_zero_entropy_alpha()
    rows.append(common.check_row("alpha where the binary RS entropy vanishes", "RS solver", alpha_zero, 0.0005, 0.833,
                                 dof=math.inf, theory_source="Krauth & Mezard 1989 (3 digits: stderr = half a unit)"))
    data = {"enum_log_count": (("enum_N", "enum_alpha", "enum_disorder"), log_count),
            "enum_entropy": (("enum_N", "enum_alpha"), s_mean), "enum_entropy_stderr": (("enum_N", "enum_alpha"), s_se),
            "enum_sat_fraction": (("enum_N", "enum_alpha"), sat.mean(-1)),
            "enum_alpha_eff": (("enum_N", "enum_alpha"), alpha_eff), "enum_rs": (("enum_N", "enum_alpha"), rs),
            "ais_log_z": (("ais_alpha", "ais_disorder"), ais[..., 0]),
            "ais_log_z_stderr": (("ais_alpha", "ais_disorder"), ais[..., 1]),
            "ais_exact_log_z": (("ais_alpha", "ais_disorder"), ais[..., 2]),
            "ais_sat": (("ais_alpha", "ais_disorder"), ais[..., 3].astype(bool))}
    return data, rows


# ---------------------------------------------------------------------------------------- figure, run
def _curves() -> dict:
    av = np.linspace(0.0, 1.95, 60)
    ab = np.linspace(0.0, 1.0, 26)
    return {"alpha_volume": av, "rs_volume": np.array([theory.gardner_log_volume(a).log_volume for a in av]),
            "alpha_binary": ab, "rs_binary": np.array([theory.binary_entropy_rs(a).entropy for a in ab])}


def _figure(cfg: _Size, ds: xr.Dataset, curves: dict):
    v = {k: np.asarray(ds[k]) for k in ds.data_vars}
    fig, (a0, a1, a2) = common.new_figure(1, 3, figsize=(15.0, 4.6))
    af = np.linspace(min(cfg.cover_alphas), max(cfg.cover_alphas), 200)
    for j, N in enumerate(cfg.cover_N):
        th = [theory.cover_separable_probability(max(int(round(a * N)), 1), N) for a in af]
        (line,) = a0.plot(af, th, lw=1, label=f"Cover N={N}")
        err = 3 * np.sqrt(v["cover_theory"][0, j] * (1 - v["cover_theory"][0, j]) / cfg.cover_trials)
        a0.errorbar(cfg.cover_alphas, v["cover_fraction"][0, j], yerr=err, fmt="o", ms=3, color=line.get_color())
        a0.plot(cfg.cover_alphas, v["cover_fraction"][1, j], "s", ms=4, mfc="none", color=line.get_color())
    a0.plot([], [], "ko", ms=3, label="Gaussian patterns (±3σ)")
    a0.plot([], [], "ks", ms=4, mfc="none", label="±1 patterns")
    a0.axvline(2.0, color="0.6", ls=":")
    a0.set(xlabel="α = P/N", ylabel="P(separable)", title="(i) Cover: linear separability")
    a0.legend(fontsize=7)
    a1.plot(curves["alpha_volume"], curves["rs_volume"], "k-", lw=1.2, label="Gardner RS")
    a1.plot(curves["alpha_volume"], -curves["alpha_volume"] * math.log(2), "k--", lw=0.8, label="annealed −α ln 2")
    for j, N in enumerate(cfg.volume_N):
        x = [round(a * N) / N for a in cfg.volume_alphas]
        a1.errorbar(x, v["volume_mean"][j], yerr=3 * v["volume_stderr"][j], fmt="o", ms=3, capsize=2,
                    label=f"engine, N={N} (±3σ)")
    a1.set(xlabel="α", ylabel="(1/N) ln V", title="(ii) spherical: version-space volume", ylim=(-3.5, 0.1))
    a1.legend(fontsize=7)
    a2.plot(curves["alpha_binary"], curves["rs_binary"], "k-", lw=1.2, label="RS (Gardner–Derrida)")
    a2.plot(curves["alpha_binary"], (1 - curves["alpha_binary"]) * math.log(2), "k--", lw=0.8, label="annealed")
    for j, N in enumerate(cfg.enum_N):
        ok = v["enum_sat_fraction"][j] == 1.0
        x, y, e = v["enum_alpha_eff"][j], v["enum_entropy"][j], v["enum_entropy_stderr"][j]
        (line,) = a2.plot(x, y, "-", lw=0.6)
        a2.errorbar(x[ok], y[ok], yerr=3 * e[ok], fmt="o", ms=3, color=line.get_color(), label=f"enumeration N={N}")
        a2.plot(x[~ok], y[~ok], "o", ms=3, mfc="none", color=line.get_color())
    N = cfg.ais_N
    sat = v["ais_sat"]
    a2.plot([round(a * N) / N for a in cfg.ais_alphas],
            np.where(sat, v["ais_log_z"], 0).sum(1) / np.maximum(sat.sum(1), 1) / N, "k*", ms=7,
            label=f"engine AIS log Z(β=20), N={N} (SAT samples)")
    a2.axvline(0.833, color="0.6", ls=":")
    a2.axhline(0.0, color="0.8", lw=0.6)
    a2.set(xlabel="α", ylabel="(1/N) ln #solutions", title="(iii) binary: entropy (open: some samples UNSAT)")
    a2.legend(fontsize=7)
    return fig


def run(out_dir: Path, *, full: bool = False, seed: int = 0, size: str | None = None,
        progress: Callable[[str, float], None] | None = None) -> dict:
    """Run the three panels into ``out_dir`` (module docstring): ``engine.registry``'s protocol, sizes ``SIZES``."""
    size, cfg = common.resolve_size(size, full, _SIZES, default="quick")
    seed = int(seed)
    say = progress or (lambda *_: None)
    say("(i) Cover: LP separability", 0.0)
    cover, rows_c = _cover_panel(cfg, seed)
    volume, rows_v = _volume_panel(cfg, seed, lambda f: say("(ii) volume", 0.2 + 0.5 * f))
    binary, rows_b = _binary_panel(cfg, seed, lambda f: say("(iii) binary", 0.7 + 0.3 * f))
    curves = _curves()
    ds = xr.Dataset({**cover, **volume, **binary,
                     **{k: (("alpha_volume_curve",) if "volume" in k else ("alpha_binary_curve",), v)
                        for k, v in curves.items()}},
                    coords={"patterns": ["gaussian", "binary"], "cover_N": list(cfg.cover_N),
                            "cover_alpha": list(cfg.cover_alphas), "volume_N": list(cfg.volume_N),
                            "volume_alpha": list(cfg.volume_alphas), "enum_N": list(cfg.enum_N),
                            "enum_alpha": list(cfg.enum_alphas), "ais_alpha": list(cfg.ais_alphas)},
                    attrs={"size": size, "seed": seed, "beta_max": BETA_MAX, "ais_N": cfg.ais_N})
    return common.finish(out_dir, rows_c + rows_v + rows_b, figure=_figure(cfg, ds, curves), data=ds, size=size)
