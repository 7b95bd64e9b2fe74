"""Teacher–student Gibbs learning curves of the perceptron (``thermodl reproduce gibbs-learning``).

Zero-temperature Gibbs learning: the student is drawn uniformly from the version space (all weights that classify
the P training examples like the teacher); ε = arccos(R)/π is its generalisation error on Gaussian inputs, R the
normalised teacher–student overlap. Data from ``models.data.teacher_student`` (Gaussian inputs, sign labels).

(i) **Spherical** student and teacher (``models.SphericalPerceptron``): the engine samples the version space as the
    β = 20 Gibbs measure of the error-count energy by population annealing of sphere-kernel particles from β = 0
    (``engine.smc.population_anneal``: all samples × stages in one compiled program), with ε averaged over the
    particles at β = 20 as an observable. The data are first rotated by the Householder reflection that maps the
    teacher onto the first axis (an exact symmetry of Gaussian inputs and of the uniform measure), so R = w₁/√N for
    every sample and one compiled observable serves all. Theory: R/√(1−R) = (α/π) ∫Dt e^{−R t²/2}/H(−√R t) (G.
    Györgyi & N. Tishby 1990; A. Engel & C. Van den Broeck, *Statistical Mechanics of Learning*, ch. 2), ε ≈ 0.625/α
    at large α (``theory_perceptron.gibbs_error_spherical``).
(ii) **Binary** (±1) student and teacher: the RS theory (G. Györgyi, PRA 41, 7097 (1990); H. Sompolinsky,
    N. Tishby & H. S. Seung, PRL 65, 1683 (1990)) has a first-order transition to perfect generalisation at
    α_c ≈ 1.245 (``theory_perceptron.binary_gibbs_transition``; the R < 1 branch survives, metastable, up to
    α_sp ≈ 1.49). Finite N rounds it: exact enumeration of the version space (histogram of the solutions'
    overlaps with the teacher, after the gauge w_i → w_i T_i that makes the teacher all +1) gives the exact
    Gibbs ε of each sample at N = 11…19; the engine (heat-bath population annealing to β = 20, ``BinaryPerceptron``)
    is checked against that exact ε sample by sample.

Tolerances: ``common.check_row`` (|measured − theory| < t·stderr + allowance, t the 0.27 % two-sided
Student-t quantile): engine-vs-enumeration rows compare the same samples (paired differences, no allowance);
finite-N-vs-RS rows allow the leading c/N correction at N_max estimated from N_min. Binary rows within 0.3 of α_c
get no RS verdict (a first-order jump is rounded over a window ∝ 1/N, not corrected by a 1/N term); there the
transition is shown by the finite-N curves, and the theory rows check α_c and α_sp against the published values.

Sizes: ``tiny`` (tests), ``quick`` (default, a few CPU-minutes), ``full`` (``--full``, GPU).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from thermodl.experiments import common
from thermodl.experiments import theory_perceptron as theory
from thermodl.engine.smc import population_anneal
from thermodl.experiments.gardner import _finite_size_allowance, pad_patterns, zero_temperature_grid
from thermodl.models.base import enumerate_states, stack_models
from thermodl.models.data import teacher_student
from thermodl.models.perceptron import BinaryPerceptron, SphericalPerceptron

NAME = "gibbs-learning"
DESCRIPTION = ("Teacher-student Gibbs learning: spherical (engine PA sampling vs Gyorgyi-Tishby RS, 0.625/alpha) "
               "and binary perceptron (exact enumeration + engine vs the first-order RS transition at 1.245)")

ALPHA_WINDOW = 0.3  # binary rows with |α − α_c| < this get no RS verdict


class _Size(NamedTuple):
    sph_N: tuple
    sph_alphas: tuple
    sph_disorder: int
    sph_chains: int
    sph_stages: int
    sph_steps: int
    enum_N: tuple  # odd
    enum_alphas: tuple
    enum_disorder: int
    engine_N: int
    engine_alphas: tuple
    engine_disorder: int
    engine_chains: int
    engine_stages: int
    engine_steps: int


_SIZES = {
    "tiny": _Size((6, 8), (1.0, 2.0), 3, 8, 6, 40, (7, 9), (0.5, 2.0), 6, 7, (0.5, 2.0), 3, 8, 6, 20),
    "quick": _Size((10, 20), (0.5, 1.0, 2.0, 4.0), 24, 16, 20, 500,
                   (11, 15, 19), (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5), 32,
                   15, (0.5, 1.0, 1.5, 2.0), 8, 16, 20, 300),
    "full": _Size((20, 40, 80), (0.5, 1.0, 2.0, 4.0, 8.0), 64, 32, 32, 3000,
                  (11, 13, 15, 17, 19, 21), (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0), 256,
                  21, (0.5, 1.0, 1.25, 1.5, 2.0), 32, 32, 32, 2000),
}
SIZES = tuple(_SIZES)


# ------------------------------------------------------------------------------------- observables, data
def spherical_gen_error(x: jax.Array) -> jax.Array:
    """ε = arccos(R)/π with R = x₁/√N: the Gibbs error of a student x (|x|² = N) when the teacher is the first axis."""
    r = x[0] / jnp.sqrt(jnp.asarray(x.shape[0], x.dtype))
    return jnp.arccos(jnp.clip(r, -1.0, 1.0)) / jnp.pi


def binary_gen_error(x: jax.Array) -> jax.Array:
    """ε = arccos(R)/π with R = mean(x): the Gibbs error of a ±1 student when the teacher is all +1."""
    return jnp.arccos(jnp.clip(jnp.mean(x), -1.0, 1.0)) / jnp.pi


def householder_to_first_axis(t: np.ndarray) -> np.ndarray:
    """The symmetric orthogonal H [N, N] with H t̂ = e₁ (H = I − 2vvᵀ/vᵀv, v = t̂ − e₁)."""
    t = np.asarray(t, np.float64) / np.linalg.norm(t)
    v = t.copy()
    v[0] -= 1.0
    nv = v @ v
    return np.eye(t.size) if nv < 1e-24 else np.eye(t.size) - 2.0 * np.outer(v, v) / nv


def _teacher_data(seed: int, tags: tuple, N: int, P_max: int, teacher: str):
    """Training set of P_max examples (X [P_max, N], y [P_max]) and the teacher's weights [N], from the key
    fold_in(key(seed), tags...)."""
    key = jax.random.key(seed)
    for t in tags:
        key = jax.random.fold_in(key, t)
    ts = teacher_student(key, P_max, N, teacher=teacher, P_test=0)
    return np.asarray(ts.X, np.float64), np.asarray(ts.y, np.float32), np.asarray(ts.teacher_params, np.float64)


def _problems(seed: int, stream: int, kind: str, N: int, alphas, D: int):
    """For every (α, sample): the symmetry-transformed, padded training set. Returns (X [A·D, P_max, N],
    y [A·D, P_max], n_pad [A·D], P [A·D]); data for different α are independent draws."""
    P_all = [int(round(a * N)) for a in alphas]
    P_max = max(P_all)
    Xs, ys, pads, Ps = [], [], [], []
    for i, P in enumerate(P_all):
        for d in range(D):
            binary = kind == "binary"
            X, y, t = _teacher_data(seed, (stream, int(binary), N, i, d), N, P_max,
                                    "binary_perceptron" if binary else "perceptron")
            X = X * t[None, :] if kind == "binary" else X @ householder_to_first_axis(t)
            Xp, yp, npad = pad_patterns(X[:P].astype(np.float32), y[:P], P_max)
            Xs.append(Xp), ys.append(yp), pads.append(npad), Ps.append(P)
    return np.stack(Xs), np.stack(ys), np.asarray(pads), np.asarray(Ps)


# ----------------------------------------------------------------------------------------- (i) spherical
def _spherical_panel(cfg: _Size, seed: int, progress) -> tuple[dict, list]:
    nN, nA, D = len(cfg.sph_N), len(cfg.sph_alphas), cfg.sph_disorder
    eps = np.zeros((nN, nA, D))
    walls = np.zeros(nN)
    for j, N in enumerate(cfg.sph_N):
        X, y, n_pad, P = _problems(seed, 0, "spherical", N, cfg.sph_alphas, D)
        models = stack_models([SphericalPerceptron(X[s], y[s]) for s in range(len(X))])
        with common.stopwatch() as sw:
            res = population_anneal(models, zero_temperature_grid(cfg.sph_stages),
                                    key=jax.random.fold_in(jax.random.key(seed), N), n_particles=cfg.sph_chains,
                                    n_sweeps=cfg.sph_steps + max(cfg.sph_steps // 2, 1), n_measure=cfg.sph_steps,
                                    kernel="sphere", observables={"gen_error": spherical_gen_error},
                                    resampling="systematic")
        progress((j + 1) / nN)
        walls[j] = sw["s"]
        eps[j] = res.observables["gen_error"].reshape(nA, D)
    mean = eps.mean(-1)
    se = eps.std(-1, ddof=1) / math.sqrt(D)
    rs = np.array([[theory.gibbs_error_spherical(round(a * N) / N) for a in cfg.sph_alphas] for N in cfg.sph_N])
    allow = _finite_size_allowance(mean - rs, cfg.sph_N)
    N = cfg.sph_N[-1]
    rows = [common.check_row(f"spherical Gibbs error, N={N} alpha={alpha:g}", "engine PA beta=20", mean[-1, a],
                             se[-1, a], rs[-1, a], dof=D - 1, allowance=allow[a], wall_s=walls[-1], N_min=cfg.sph_N[0],
                             measured_N_min=mean[0, a]) for a, alpha in enumerate(cfg.sph_alphas)]
    rows.append(common.check_row("RS alpha*eps at alpha=1000 (large-alpha asymptote)", "RS solver",
                                 1000.0 * theory.gibbs_error_spherical(1000.0), 0.0005, 0.625, dof=math.inf,
                                 theory_source="Engel & Van den Broeck: eps ~ 0.625/alpha (3 digits)"))
    data = {"sph_gen_error": (("sph_N", "sph_alpha", "sph_disorder"), eps),
            "sph_mean": (("sph_N", "sph_alpha"), mean), "sph_stderr": (("sph_N", "sph_alpha"), se),
            "sph_rs": (("sph_N", "sph_alpha"), rs), "sph_wall_s": (("sph_N",), walls)}
    return data, rows


# ------------------------------------------------------------------------------------------- (ii) binary
@jax.jit
def _solution_overlaps(X: jax.Array, y: jax.Array, n_pad: jax.Array) -> jax.Array:
    """Histogram [N+1] of Σ_i w_i = 2j − N over the version space (the w ∈ {±1}^N with exactly n_pad errors,
    i.e. none on the real patterns), by enumerating (low 12 sites) × (high sites) as ``energy_counts`` does.
    Errors are counted as in ``BinaryPerceptron.energy``: y w·x ≤ 0."""
    N = X.shape[1]
    yX = y[:, None] * X
    c = min(N, 12)
    lo = enumerate_states(c, dtype=X.dtype)
    f_lo, m_lo = lo @ yX[:, :c].T, jnp.sum(lo, axis=1)
    hist = jnp.zeros(N + 1, jnp.int32)
    if N == c:
        ok = jnp.sum(f_lo <= 0, axis=1) == n_pad
        return hist.at[((m_lo + N) // 2).astype(jnp.int32)].add(ok.astype(jnp.int32))
    h = N - c

    def body(hist, j):
        w_hi = jnp.where((j >> jnp.arange(h)) & 1, 1.0, -1.0).astype(X.dtype)
        ok = jnp.sum(f_lo + (yX[:, c:] @ w_hi)[None, :] <= 0, axis=1) == n_pad
        idx = ((m_lo + jnp.sum(w_hi) + N) // 2).astype(jnp.int32)
        return hist.at[idx].add(ok.astype(jnp.int32)), None

    hist, _ = jax.lax.scan(body, hist, jnp.arange(2**h, dtype=jnp.int32))
    return hist


_solution_overlaps_batch = jax.jit(jax.vmap(_solution_overlaps))


def _exact_gibbs_error(hist: np.ndarray) -> np.ndarray:
    """⟨arccos(R)/π⟩ over the uniform measure on each version space, from overlap histograms [..., N+1]."""
    N = hist.shape[-1] - 1
    eps = np.arccos(np.clip((2.0 * np.arange(N + 1) - N) / N, -1, 1)) / np.pi
    return (hist * eps).sum(-1) / hist.sum(-1)


def _binary_panel(cfg: _Size, seed: int, progress) -> tuple[dict, list]:
    nN, nA, D = len(cfg.enum_N), len(cfg.enum_alphas), cfg.enum_disorder
    eps, unique = np.zeros((nN, nA, D)), np.zeros((nN, nA))
    for j, N in enumerate(cfg.enum_N):
        X, y, n_pad, _ = _problems(seed, 0, "binary", N, cfg.enum_alphas, D)
        hist = np.asarray(_solution_overlaps_batch(jnp.asarray(X), jnp.asarray(y), jnp.asarray(n_pad)), np.float64)
        eps[j] = _exact_gibbs_error(hist).reshape(nA, D)
        unique[j] = (hist.sum(-1) == 1).reshape(nA, D).mean(-1)  # version space = {teacher}
        progress(0.5 * (j + 1) / nN)
    mean, se = eps.mean(-1), eps.std(-1, ddof=1) / math.sqrt(D)
    alpha_c, alpha_sp = theory.binary_gibbs_transition(), theory.binary_spinodal()
    alpha_eff = np.array([[round(a * N) / N for a in cfg.enum_alphas] for N in cfg.enum_N])
    rs = np.vectorize(lambda a: theory.gibbs_binary_branch(a).error if a < alpha_c else 0.0)(alpha_eff)
    allow = _finite_size_allowance(mean - rs, cfg.enum_N)
    rows = []
    for a, alpha in enumerate(cfg.enum_alphas):
        if abs(alpha_eff[-1, a] - alpha_c) < ALPHA_WINDOW:
            continue
        rows.append(common.check_row(f"binary Gibbs error, N={cfg.enum_N[-1]} alpha={alpha_eff[-1, a]:.4g}",
                                     "enumeration", mean[-1, a], se[-1, a], rs[-1, a], dof=D - 1, allowance=allow[a],
                                     N_min=cfg.enum_N[0], measured_N_min=mean[0, a]))
    # the engine at N = engine_N vs exact enumeration of the same samples
    N, nE, DE = cfg.engine_N, len(cfg.engine_alphas), cfg.engine_disorder
    X, y, n_pad, P = _problems(seed, 1, "binary", N, cfg.engine_alphas, DE)  # samples independent of the above
    exact = _exact_gibbs_error(np.asarray(_solution_overlaps_batch(jnp.asarray(X), jnp.asarray(y),
                                                                   jnp.asarray(n_pad)), np.float64))
    models = stack_models([BinaryPerceptron(X[s], y[s]) for s in range(len(X))])
    with common.stopwatch() as sw:
        res = population_anneal(models, zero_temperature_grid(cfg.engine_stages),
                                key=jax.random.fold_in(jax.random.key(seed), 1), n_particles=cfg.engine_chains,
                                n_sweeps=cfg.engine_steps + max(cfg.engine_steps // 2, 1),
                                n_measure=cfg.engine_steps, kernel="heat_bath",
                                observables={"gen_error": binary_gen_error}, resampling="systematic")
    progress(1.0)
    engine = res.observables["gen_error"].reshape(nE, DE)
    exact = exact.reshape(nE, DE)
    for a in range(nE):
        diff = engine[a] - exact[a]
        rows.append(common.check_row(f"binary Gibbs error, N={N} alpha={round(cfg.engine_alphas[a] * N) / N:.4g}",
                                     "engine PA beta=20", engine[a].mean(), diff.std(ddof=1) / math.sqrt(DE),
                                     exact[a].mean(), dof=DE - 1, wall_s=sw["s"],
                                     theory_source="exact enumeration, same samples"))
    rows.append(common.check_row("binary RS first-order transition alpha_c", "RS solver", alpha_c, 0.0005, 1.245,
                                 dof=math.inf,
                                 theory_source="Gyorgyi 1990; Sompolinsky, Tishby & Seung 1990 (3 digits)"))
    rows.append(common.check_row("binary RS spinodal alpha_sp", "RS solver", alpha_sp, 0.0005, 1.493, dof=math.inf,
                                 theory_source="Zdeborova & Krzakala 2016, algorithmic threshold (3 digits)"))
    data = {"bin_gen_error": (("bin_N", "bin_alpha", "bin_disorder"), eps),
            "bin_mean": (("bin_N", "bin_alpha"), mean), "bin_stderr": (("bin_N", "bin_alpha"), se),
            "bin_alpha_eff": (("bin_N", "bin_alpha"), alpha_eff), "bin_rs": (("bin_N", "bin_alpha"), rs),
            "bin_unique_fraction": (("bin_N", "bin_alpha"), unique),
            "engine_gen_error": (("engine_alpha", "engine_disorder"), engine),
            "engine_exact_gen_error": (("engine_alpha", "engine_disorder"), exact)}
    return data, rows


# ----------------------------------------------------------------------------------------- figure, run
def _figure(cfg: _Size, ds: xr.Dataset):
    v = {k: np.asarray(ds[k]) for k in ds.data_vars}
    fig, (a0, a1) = common.new_figure(1, 2, figsize=(12.0, 4.6))
    ac = np.linspace(0.02, max(cfg.sph_alphas) * 1.1, 80)
    a0.plot(ac, [theory.gibbs_error_spherical(a) for a in ac], "k-", lw=1.2, label="RS (Györgyi–Tishby)")
    a0.plot(ac[ac > 1], 0.625 / ac[ac > 1], "k:", lw=0.8, label="0.625/α")
    for j, N in enumerate(cfg.sph_N):
        a0.errorbar([round(a * N) / N for a in cfg.sph_alphas], v["sph_mean"][j], yerr=3 * v["sph_stderr"][j],
                    fmt="o", ms=3, capsize=2, label=f"engine, N={N} (±3σ)")
    a0.set(xlabel="α = P/N", ylabel="ε = ⟨arccos R⟩/π", title="(i) spherical Gibbs learning", ylim=(0, 0.52))
    a0.legend(fontsize=7)
    alpha_c = theory.binary_gibbs_transition()
    ab = np.linspace(0.02, alpha_c, 50)
    a1.plot(ab, [theory.gibbs_binary_branch(a).error for a in ab], "k-", lw=1.2, label="RS (Györgyi; STS)")
    a1.plot([alpha_c, max(cfg.enum_alphas) * 1.05], [0, 0], "k-", lw=1.2)
    ameta = np.linspace(alpha_c, theory.binary_spinodal() - 1e-3, 15)
    a1.plot(ameta, [theory.gibbs_binary_branch(a).error for a in ameta], "k--", lw=0.8, label="metastable R < 1")
    a1.axvline(alpha_c, color="0.6", ls=":")
    for j, N in enumerate(cfg.enum_N):
        a1.errorbar(v["bin_alpha_eff"][j], v["bin_mean"][j], yerr=3 * v["bin_stderr"][j], fmt="o-", ms=3, lw=0.6,
                    capsize=2, label=f"exact enumeration, N={N}")
    N = cfg.engine_N
    a1.plot([round(a * N) / N for a in cfg.engine_alphas], v["engine_gen_error"].mean(1), "k*", ms=7,
            label=f"engine (heat bath PA), N={N}")
    a1.set(xlabel="α = P/N", ylabel="ε", title="(ii) binary Gibbs learning: first-order transition", ylim=(0, 0.52))
    a1.legend(fontsize=7)
    return fig


def run(out_dir: Path, *, full: bool = False, seed: int = 0, size: str | None = None,
        progress: Callable[[str, float], None] | None = None) -> dict:
    """Run both panels into ``out_dir`` (module docstring): ``engine.registry``'s protocol, sizes ``SIZES``."""
    size, cfg = common.resolve_size(size, full, _SIZES, default="quick")
    seed = int(seed)
    say = progress or (lambda *_: None)
    sph, rows_s = _spherical_panel(cfg, seed, lambda f: say("(i) spherical", 0.6 * f))
    binary, rows_b = _binary_panel(cfg, seed, lambda f: say("(ii) binary", 0.6 + 0.4 * f))
    ds = xr.Dataset({**sph, **binary},
                    coords={"sph_N": list(cfg.sph_N), "sph_alpha": list(cfg.sph_alphas), "bin_N": list(cfg.enum_N),
                            "bin_alpha": list(cfg.enum_alphas), "engine_alpha": list(cfg.engine_alphas)},
                    attrs={"size": size, "seed": seed, "engine_N": cfg.engine_N,
                           "alpha_c": theory.binary_gibbs_transition()})
    return common.finish(out_dir, rows_s + rows_b, figure=_figure(cfg, ds), data=ds, size=size)
