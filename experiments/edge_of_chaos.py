"""The order-to-chaos phase diagram of deep random tanh networks vs mean-field theory (``edge-of-chaos``).

B. Poole, S. Lahiri, M. Raghu, J. Sohl-Dickstein & S. Ganguli, NeurIPS 2016 (χ₁, the critical line χ₁ = 1);
S. S. Schoenholz, J. Gilmer, S. Ganguli & J. Sohl-Dickstein, ICLR 2017 (the correlation depth ξ_c = −1/ln χ_c,
which diverges on the critical line). Theory: ``experiments.theory_meanfield``.

The random networks are thermodl's flax topology ``models.topologies.MLP(N, [N]*L, 1, "tanh")`` turned into a
weight ensemble (``models.weights.weight_ensemble``) whose β = 0 ensemble — the prior, drawn by
``sample_reference`` — is W_ij ~ N(0, σ_w²/N), b_i ~ N(0, σ_b²): the prior scales are a traced leaf, so every
(σ_w², σ_b²) reuses one compiled program. For each network sample (merged back into the flax module with
``nnx.merge``) the experiment measures

* χ̂₁ = ‖∂h^{l+1}/∂h^l‖_F²/N, the Jacobian (``jax.jacfwd`` through the flax layer) averaged over the layers
  after a burn-in, and q̂ = |h^l|²/N over the same layers; one number per network, stderr over networks;
* the critical σ_w² at σ_b² = 0.05: the root of a weighted linear fit of χ̂₁(σ_w²) on a fine scan, with a
  delta-method stderr;
* ξ_c from two input pairs (correlations c_A⁰ = 0, c_B⁰ = 0.6 with a shared anchor input): the difference
  Δ^l = c_B^l − c_A^l of their pre-activation correlations decays as χ_c^l for either phase without knowing c*;
  ξ̂_c = −1/slope of ln Δ̄^l over the layers from ``L_MIN`` until Δ̄ drops below ``SNR`` = 5 standard errors
  (a lower cut biases ξ̂ up: the last layers kept are selected for upward noise); stderr by bootstrap over
  networks.

Tolerances: the one rule of ``common.check_row``, |measured − theory| < 3·stderr + allowance (the allowance a bound
added linearly; until the redesign it entered in quadrature as a 1σ term, 3·√(stderr² + allowance²), which let a
deviation up to 3× the allowance pass). The allowance is computed, never tuned: for χ₁ and q* the leading
finite-width 1/N correction (``theory_meanfield.finite_width_correction``) plus the finite-depth offset of the
mean-field trajectory over the measured layers; for σ_w²,c the same shifts divided by the slope, plus the bias of
the linear fit applied to the exact χ₁ on the same scan; for ξ_c the bias of the identical fit applied to the
infinite-width mean-field Δ^l. Finite-width corrections to ξ_c are not modelled; in the chaotic phase the O(1/√N)
network-to-network fluctuations of c^l feed back through the curvature of the correlation map and, at N = 128, make
ξ̂_c come out ~10–20 % high (about one stderr).
ξ_c rows are made, by design, only where the theory ξ_c ≤ depth/6, so the fit window spans several ξ_c.

Sizes: ``tiny`` (tests, seconds), ``small`` (default: N = 128, ~2 CPU-minutes), ``full`` (``--full``: N = 512,
deeper, finer grids; meant for a GPU).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from flax import nnx

from thermodl.experiments import common
from thermodl.experiments import theory_meanfield as mf

NAME = "edge-of-chaos"
DESCRIPTION = "Random deep tanh MLPs: Jacobian chi_1 and correlation depth xi_c vs the mean-field edge of chaos"

SIGMA_B2_CRIT = 0.05
C_A, C_B = 0.0, 0.6
L_MIN = 3
SNR = 5.0

_SIZES = {
    "tiny": dict(width=24, depth=10, burn_in=4, jac_stride=2, n_networks=8, grid_w=(0.8, 2.0, 3.0),
                 grid_b=(0.0, 0.05), points=((1.2, 0.05), (3.0, 0.05)), table_networks=8,
                 crit_w=(1.5, 1.76, 2.0), crit_networks=8, xi_width=24, xi_depth=16, xi_networks=6, xi_pairs=2,
                 xi_w=(1.2, 3.0), n_boot=50),
    "small": dict(width=128, depth=30, burn_in=10, jac_stride=2, n_networks=12,
                  grid_w=tuple(np.round(np.linspace(0.5, 4.0, 15), 3)), grid_b=(0.0, 0.05, 0.1, 0.15, 0.2, 0.3),
                  points=((0.8, 0.0), (2.0, 0.0), (1.2, 0.05), (3.0, 0.05), (1.5, 0.2), (3.5, 0.3)),
                  table_networks=32, crit_w=tuple(np.round(np.linspace(1.55, 1.95, 9), 3)), crit_networks=32,
                  xi_width=128, xi_depth=60, xi_networks=32, xi_pairs=8,
                  xi_w=(1.1, 1.2, 1.35, 1.5, 1.65, 1.76, 1.9, 2.2, 2.6, 3.0, 3.5, 4.0), n_boot=200),
    "full": dict(width=512, depth=60, burn_in=20, jac_stride=2, n_networks=48,
                 grid_w=tuple(np.round(np.linspace(0.5, 4.0, 36), 3)),
                 grid_b=tuple(np.round(np.linspace(0, 0.3, 16), 3)),
                 points=((0.8, 0.0), (2.0, 0.0), (1.2, 0.05), (1.76, 0.05), (3.0, 0.05), (1.5, 0.2), (3.5, 0.3)),
                 table_networks=128, crit_w=tuple(np.round(np.linspace(1.6, 1.92, 17), 3)), crit_networks=128,
                 xi_width=512, xi_depth=120, xi_networks=128, xi_pairs=16,
                 xi_w=tuple(np.round(np.linspace(1.05, 4.5, 24), 3)), n_boot=400),
}
SIZES = tuple(_SIZES)


# ------------------------------------------------------------------------------------------ random networks
class RandomMLP:
    """A β = 0 weight ensemble of ``MLP(N, [N]*depth, 1, "tanh")`` whose prior scales give W ~ N(0, σ_w²/N),
    b ~ N(0, σ_b²). ``ensemble(σ_w², σ_b²)`` returns the weight ensemble (traced scales: no recompilation)."""

    def __init__(self, width: int, depth: int, n_inputs: int):
        from thermodl.models.priors import gaussian
        from thermodl.models.topologies import MLP
        from thermodl.models.weights import weight_ensemble

        self.width, self.depth = int(width), int(depth)
        net = MLP(width, [width] * depth, 1, activation="tanh", rngs=nnx.Rngs(0))
        X = np.zeros((n_inputs, width), np.float32)
        self._base = weight_ensemble(net, X, np.zeros(n_inputs, np.float32), prior=gaussian(1.0))
        unit = np.asarray(self._base.scales, np.float64)  # 1/√fan_in for kernels, 1 for biases
        self._unit, self._kernel = unit, unit < 1.0

    def ensemble(self, sigma_w2: float, sigma_b2: float):
        s = np.where(self._kernel, math.sqrt(sigma_w2) * self._unit, math.sqrt(sigma_b2))
        return self._base.replace(scales=jnp.asarray(s, jnp.float32))


def _preactivations(ens, key, X):
    """Sample one network from the ensemble's prior and return (flax module, [h¹, ..., h^L]) for inputs X."""
    net = nnx.merge(ens.net.definition, ens.unravel(ens.sample_reference(key)), ens.rest)
    hs, x = [], X
    for layer in net.layers[:-1]:
        h = layer(x)
        hs.append(h)
        x = jnp.tanh(h)
    return net, hs


def _jacobian_signals(ens, key, X, *, jac_layers: tuple[int, ...], window: tuple[int, int]):
    """(χ̂₁, q̂) of one network: mean ‖∂h^{l+1}/∂h^l‖_F²/N over ``jac_layers`` and mean |h^l|²/N over window."""
    net, hs = _preactivations(ens, key, X)
    n = X.shape[-1]
    chis = []
    for l in jac_layers:  # hs[l] is h^{l+1}; layers[l + 1] maps it to h^{l+2}
        nxt = net.layers[l + 1]
        J = jax.jacfwd(lambda h: nxt(jnp.tanh(h)))(hs[l][0])  # [N, N]
        chis.append(jnp.sum(J * J) / n)
    q = jnp.stack([jnp.mean(h[0] ** 2) for h in hs[window[0]:window[1]]])
    return jnp.mean(jnp.stack(chis)), jnp.mean(q)


def _correlation_signals(ens, key, X, *, n_pairs: int):
    """[L, 2] mean correlation of (anchor, A) and (anchor, B) pre-activations per layer (inputs in triplets)."""
    _, hs = _preactivations(ens, key, X)
    out = []
    for h in hs:
        u = (h / jnp.linalg.norm(h, axis=-1, keepdims=True)).reshape(n_pairs, 3, -1)
        out.append(jnp.stack([jnp.mean(jnp.sum(u[:, 0] * u[:, 1], -1)), jnp.mean(jnp.sum(u[:, 0] * u[:, 2], -1))]))
    return jnp.stack(out)


@functools.lru_cache(maxsize=16)
def _compiled(kind: str, n_networks: int, batch: int, **static):
    fn = functools.partial(_jacobian_signals if kind == "jacobian" else _correlation_signals, **dict(static))

    def run(ens, key, X):
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_networks))
        return jax.lax.map(lambda k: fn(ens, k, X), keys, batch_size=batch)

    return jax.jit(run)


def _batch(dim: int, n: int) -> int:
    return int(max(1, min(n, 2**25 // max(dim, 1))))  # ≲ 128 MB of float32 weights per batch


def measure_chi1(nets: RandomMLP, sigma_w2: float, sigma_b2: float, *, key, n_networks: int, burn_in: int,
                 jac_stride: int = 1) -> dict:
    """χ̂₁ and q̂ of ``n_networks`` random networks at (σ_w², σ_b²); input |x|²/N = 1.

    Returns:
        dict with ``chi1``, ``chi1_stderr``, ``q``, ``q_stderr`` (means over networks, stderr = sd/√n) and
        ``window`` (first, last+1) of the measured layers (0-based: h^{l+1}).
    """
    if not 0 <= burn_in < nets.depth - 1:
        raise ValueError(f"burn_in must lie in [0, depth - 1), got {burn_in!r} for depth {nets.depth}")
    jac = tuple(range(burn_in, nets.depth - 1, jac_stride))
    window = (burn_in, nets.depth)
    ens = nets.ensemble(sigma_w2, sigma_b2)
    fn = _compiled("jacobian", n_networks, _batch(ens.dim, n_networks), jac_layers=jac, window=window)
    x = np.random.default_rng(0).standard_normal((1, nets.width))
    x = x * math.sqrt(nets.width) / np.linalg.norm(x)
    chi, q = (np.asarray(a, np.float64) for a in fn(ens, key, jnp.asarray(x, jnp.float32)))
    ok = np.isfinite(chi) & np.isfinite(q)
    n = int(ok.sum())
    return dict(chi1=chi[ok].mean(), chi1_stderr=chi[ok].std(ddof=1) / math.sqrt(n), q=q[ok].mean(),
                q_stderr=q[ok].std(ddof=1) / math.sqrt(n), window=window, n_networks=n,
                n_excluded=int((~ok).sum()))


def correlation_inputs(width: int, n_pairs: int, seed: int = 0) -> np.ndarray:
    """``n_pairs`` triplets (anchor a, A, B), rows [3·n_pairs, N], |x|²/N = 1, corr(a, A) = C_A, corr(a, B) =
    C_B exactly (orthonormalised Gaussian directions)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_pairs):
        e = np.linalg.qr(rng.standard_normal((width, 3)))[0].T
        rows += [e[0], C_A * e[0] + math.sqrt(1 - C_A**2) * e[1], C_B * e[0] + math.sqrt(1 - C_B**2) * e[2]]
    return np.stack(rows) * math.sqrt(width)


def measure_correlation_decay(nets: RandomMLP, sigma_w2: float, sigma_b2: float, *, key, n_networks: int,
                              n_pairs: int) -> np.ndarray:
    """Δ^l = c_B^l − c_A^l per network, float64 [n_used, depth] (layers 1..depth); networks with a non-finite
    correlation are dropped (count: ``n_networks − n_used``)."""
    ens = nets.ensemble(sigma_w2, sigma_b2)
    fn = _compiled("correlation", n_networks, _batch(ens.dim, n_networks), n_pairs=n_pairs)
    X = jnp.asarray(correlation_inputs(nets.width, n_pairs), jnp.float32)
    c = np.asarray(fn(ens, key, X), np.float64)  # [M, L, 2]
    d = c[..., 1] - c[..., 0]
    return d[np.all(np.isfinite(d), axis=1)]


def _fit_slope(layers: np.ndarray, delta_mean: np.ndarray) -> float:
    return float(np.polyfit(layers, np.log(delta_mean), 1)[0])


def fit_correlation_depth(delta: np.ndarray, *, n_boot: int = 200, seed: int = 0) -> dict:
    """ξ̂_c from per-network Δ^l [M, L]: −1/slope of ln Δ̄^l over layers L_MIN.. (first layer where
    Δ̄ < SNR·stderr or Δ̄ < 1e-4, the float32 floor of a correlation), bootstrap stderr over networks.

    Returns:
        dict ``xi``, ``xi_stderr``, ``window`` (first, last+1; 0-based layer indices), NaNs when fewer than 3
        layers qualify.
    """
    delta = np.asarray(delta, np.float64)
    M, L = delta.shape
    m = delta.mean(0)
    se = delta.std(0, ddof=1) / math.sqrt(M)
    good = (m > SNR * se) & (m > 1e-4)
    end = L_MIN
    while end < L and good[end]:
        end += 1
    if end - L_MIN < 3:
        return dict(xi=math.nan, xi_stderr=math.nan, window=(L_MIN, end))
    layers = np.arange(L_MIN, end, dtype=np.float64)
    slope = _fit_slope(layers, m[L_MIN:end])
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        mb = delta[rng.integers(0, M, M), L_MIN:end].mean(0)
        if np.all(mb > 0):
            s = _fit_slope(layers, mb)
            if s < 0:
                boot.append(-1.0 / s)
    xi = -1.0 / slope if slope < 0 else math.inf
    return dict(xi=xi, xi_stderr=float(np.std(boot, ddof=1)) if len(boot) > 1 else math.nan, window=(L_MIN, end))


def mean_field_delta(sigma_w2: float, sigma_b2: float, depth: int) -> np.ndarray:
    """The infinite-width Δ^l = c_B^l − c_A^l, float64 [depth] (theory for ``measure_correlation_decay``)."""
    a = mf.mean_field_trajectory(1.0, C_A, sigma_w2, sigma_b2, depth).c
    b = mf.mean_field_trajectory(1.0, C_B, sigma_w2, sigma_b2, depth).c
    return b - a


def chi1_allowance(sigma_w2: float, sigma_b2: float, width: int, window: tuple[int, int]) -> tuple[float, float]:
    """(χ₁ allowance, q* allowance): |1/N correction| + |finite-depth offset of the mean-field trajectory|."""
    fw = mf.finite_width_correction(sigma_w2, sigma_b2, width)
    q_traj = mf.mean_field_trajectory(1.0, 1.0, sigma_w2, sigma_b2, window[1]).q[window[0]:window[1]]
    g = np.array([mf.gaussian_average(lambda u: np.cosh(u) ** -4, q) for q in q_traj])
    d_chi = float(np.mean(sigma_w2 * g)) - mf.chi_1(sigma_w2, sigma_b2)
    d_q = float(np.mean(q_traj)) - mf.q_star(sigma_w2, sigma_b2)
    return abs(fw.chi_1) + abs(d_chi), abs(fw.q) + abs(d_q)


def _row(quantity, method, measured, stderr, theory, allowance, **extra):
    return common.check_row(quantity, method, measured, stderr, theory, allowance=allowance, **extra)


def critical_fit(sw2: np.ndarray, chi: np.ndarray, se: np.ndarray) -> tuple[float, float, float]:
    """Root of the weighted linear fit χ = a + b σ_w² at χ = 1: (σ_w²,c, delta-method stderr, slope b)."""
    X = np.stack([np.ones_like(sw2), sw2], 1)
    W = 1.0 / se**2
    cov = np.linalg.inv(X.T @ (W[:, None] * X))
    a, b = cov @ (X.T @ (W * chi))
    root = (1.0 - a) / b
    grad = np.array([-1.0 / b, -(1.0 - a) / b**2])
    return float(root), float(math.sqrt(grad @ cov @ grad)), float(b)


# ----------------------------------------------------------------------------------------------------- run
def run(out_dir: Path, *, full: bool = False, seed: int = 0, size: str | None = None,
        progress: Callable[[str, float], None] | None = None) -> dict:
    """Measure the phase diagram, χ₁ and q* at table points, σ_w²,c at σ_b² = 0.05 and ξ_c; write the outputs.

    Arguments and result: ``engine.registry``'s protocol, sizes ``SIZES`` (default ``"small"``); every
    measurement uses ``fold_in(key(seed), ·)``.
    """
    size, cfg = common.resolve_size(size, full, _SIZES, default="small")
    base = jax.random.key(seed)
    say = progress or (lambda *_: None)
    N, depth, burn = cfg["width"], cfg["depth"], cfg["burn_in"]
    nets = RandomMLP(N, depth, 1)
    kw = dict(burn_in=burn, jac_stride=cfg["jac_stride"])
    rows = []

    # 1. χ₁ and q* at the table points
    for i, (sw2, sb2) in enumerate(cfg["points"]):
        say(f"chi_1 at sigma_w2={sw2}, sigma_b2={sb2}", 0.05 * i / len(cfg["points"]))
        with common.stopwatch() as t:
            r = measure_chi1(nets, sw2, sb2, key=jax.random.fold_in(base, 100 + i),
                             n_networks=cfg["table_networks"], **kw)
        a_chi, a_q = chi1_allowance(sw2, sb2, N, r["window"])
        tag = f"sigma_w2={sw2:g}, sigma_b2={sb2:g}"
        extra = dict(sigma_w2=sw2, sigma_b2=sb2, width=N, n_networks=r["n_networks"], n_excluded=r["n_excluded"])
        rows.append(_row(f"chi_1 ({tag})", "Jacobian", r["chi1"], r["chi1_stderr"], mf.chi_1(sw2, sb2), a_chi,
                         wall_s=t["s"], **extra))
        rows.append(_row(f"q* ({tag})", "|h|^2/N", r["q"], r["q_stderr"], mf.q_star(sw2, sb2), a_q,
                         wall_s=t["s"], **extra))

    # 2. the phase diagram
    gw, gb = np.asarray(cfg["grid_w"], float), np.asarray(cfg["grid_b"], float)
    chi_g = np.full((gb.size, gw.size), np.nan)
    chi_se, q_g = np.full_like(chi_g, np.nan), np.full_like(chi_g, np.nan)
    with common.stopwatch() as t_grid:
        for j, sb2 in enumerate(gb):
            for i, sw2 in enumerate(gw):
                say(f"phase diagram sigma_b2={sb2:g} sigma_w2={sw2:g}", 0.05 + 0.45 * (j * gw.size + i) / chi_g.size)
                r = measure_chi1(nets, sw2, sb2, key=jax.random.fold_in(base, 10_000 + j * gw.size + i),
                                 n_networks=cfg["n_networks"], **kw)
                chi_g[j, i], chi_se[j, i], q_g[j, i] = r["chi1"], r["chi1_stderr"], r["q"]
    chi_th = np.array([[mf.chi_1(w, b) for w in gw] for b in gb])

    # 3. the critical σ_w² at σ_b² = 0.05
    cw = np.asarray(cfg["crit_w"], float)
    with common.stopwatch() as t_crit:
        crit = [measure_chi1(nets, w, SIGMA_B2_CRIT, key=jax.random.fold_in(base, 20_000 + i),
                             n_networks=cfg["crit_networks"], **kw) for i, w in enumerate(cw)]
    say("critical point", 0.55)
    c_chi = np.array([r["chi1"] for r in crit])
    c_se = np.array([r["chi1_stderr"] for r in crit])
    root, root_se, slope = critical_fit(cw, c_chi, c_se)
    exact_root = mf.critical_sigma_w2(SIGMA_B2_CRIT)
    c_th = np.array([mf.chi_1(w, SIGMA_B2_CRIT) for w in cw])
    lin_bias = critical_fit(cw, c_th, c_se)[0] - exact_root
    a_chi_c = chi1_allowance(exact_root, SIGMA_B2_CRIT, N, crit[0]["window"])[0]
    rows.append(_row(f"critical sigma_w2 at sigma_b2={SIGMA_B2_CRIT:g} (chi_1 = 1)", "linear fit of Jacobian chi_1",
                     root, root_se, exact_root, abs(lin_bias) + a_chi_c / abs(slope), sigma_b2=SIGMA_B2_CRIT,
                     width=N, n_networks=cfg["crit_networks"], wall_s=t_crit["s"]))

    # 4. the correlation depth ξ_c at σ_b² = 0.05
    xnets = RandomMLP(cfg["xi_width"], cfg["xi_depth"], 3 * cfg["xi_pairs"])
    xw = np.asarray(cfg["xi_w"], float)
    L = cfg["xi_depth"]
    deltas, delta_mf, xi_m, xi_se, xi_th, xi_mf = [], [], [], [], [], []
    for i, sw2 in enumerate(xw):
        say(f"correlation depth sigma_w2={sw2:g}", 0.6 + 0.4 * i / xw.size)
        with common.stopwatch() as t:
            d = measure_correlation_decay(xnets, sw2, SIGMA_B2_CRIT, key=jax.random.fold_in(base, 30_000 + i),
                                          n_networks=cfg["xi_networks"], n_pairs=cfg["xi_pairs"])
            fit = fit_correlation_depth(d, n_boot=cfg["n_boot"], seed=seed + i)
        dmf = mean_field_delta(sw2, SIGMA_B2_CRIT, L)
        lo, hi = fit["window"]
        fit_mf = -1.0 / _fit_slope(np.arange(lo, hi, dtype=float), dmf[lo:hi]) if hi - lo >= 3 else math.nan
        theory = mf.xi_c(sw2, SIGMA_B2_CRIT)
        deltas.append(d.mean(0))
        delta_mf.append(dmf)
        xi_m.append(fit["xi"])
        xi_se.append(fit["xi_stderr"])
        xi_th.append(theory)
        xi_mf.append(fit_mf)
        if theory <= L / 6:
            rows.append(_row(f"xi_c (sigma_w2={sw2:g}, sigma_b2={SIGMA_B2_CRIT:g})", "fit of correlation decay",
                             fit["xi"], fit["xi_stderr"], theory, abs(fit_mf - theory), sigma_w2=sw2,
                             sigma_b2=SIGMA_B2_CRIT, width=cfg["xi_width"], n_networks=d.shape[0],
                             n_excluded=cfg["xi_networks"] - d.shape[0],
                             fit_layers=f"{lo + 1}-{hi}", wall_s=t["s"]))
    say("writing results", 1.0)

    sb_line = max(gb.max(), SIGMA_B2_CRIT) * np.linspace(0.0, 1.0, 61) ** 3  # σ_w²,c − 1 ∝ σ_b^(2/3) near 0
    ds = xr.Dataset(
        {
            "chi1_measured": (("sigma_b2", "sigma_w2"), chi_g),
            "chi1_stderr": (("sigma_b2", "sigma_w2"), chi_se),
            "chi1_theory": (("sigma_b2", "sigma_w2"), chi_th),
            "q_measured": (("sigma_b2", "sigma_w2"), q_g),
            "crit_chi1_measured": ("crit_sigma_w2", c_chi),
            "crit_chi1_stderr": ("crit_sigma_w2", c_se),
            "crit_chi1_theory": ("crit_sigma_w2", c_th),
            "xi_measured": ("xi_sigma_w2", np.asarray(xi_m, float)),
            "xi_stderr": ("xi_sigma_w2", np.asarray(xi_se, float)),
            "xi_theory": ("xi_sigma_w2", np.asarray(xi_th, float)),
            "xi_fit_mean_field": ("xi_sigma_w2", np.asarray(xi_mf, float)),
            "delta_measured": (("xi_sigma_w2", "layer"), np.asarray(deltas)),
            "delta_mean_field": (("xi_sigma_w2", "layer"), np.asarray(delta_mf)),
            "critical_sigma_w2_line": ("sigma_b2_line", [mf.critical_sigma_w2(b) for b in sb_line]),
        },
        coords={"sigma_w2": gw, "sigma_b2": gb, "crit_sigma_w2": cw, "xi_sigma_w2": xw,
                "layer": np.arange(1, L + 1), "sigma_b2_line": sb_line},
        attrs=dict(size=size, seed=seed, width=N, depth=depth, burn_in=burn, xi_width=cfg["xi_width"],
                   xi_depth=L, sigma_b2_crit=SIGMA_B2_CRIT, critical_sigma_w2_measured=root,
                   critical_sigma_w2_stderr=root_se, critical_sigma_w2_theory=exact_root, jax=jax.__version__,
                   device=str(jax.devices()[0].platform)),
    )
    return common.finish(out_dir, rows, figure=_figure(ds, cfg), data=ds)


def _figure(ds: xr.Dataset, cfg: dict):
    from matplotlib.colors import TwoSlopeNorm

    fig, (ax, ac, axi) = common.new_figure(1, 3, figsize=(16.0, 4.6))
    gw, gb = ds["sigma_w2"].values, ds["sigma_b2"].values
    lnchi = np.log(np.clip(ds["chi1_measured"].values, 1e-6, None))
    lim = max(float(np.nanmax(np.abs(lnchi))), 1e-3)
    if gw.size > 1 and gb.size > 1:
        mesh = ax.pcolormesh(gw, gb, lnchi, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -lim, lim), shading="nearest")
        fig.colorbar(mesh, ax=ax, label="measured ln χ₁")
        ax.contour(gw, gb, lnchi, levels=[0.0], colors="0.3", linestyles="--", linewidths=1)
    ax.plot(ds["critical_sigma_w2_line"], ds["sigma_b2_line"], "k-", lw=2, label="mean field χ₁ = 1")
    ax.plot([], [], "--", color="0.3", label="measured ln χ₁ = 0")
    ax.plot(*zip(*cfg["points"]), "k*", ms=8, label="table points")
    pad_w = (gw[1] - gw[0]) / 2 if gw.size > 1 else 0.1
    pad_b = (gb[1] - gb[0]) / 2 if gb.size > 1 else 0.01
    ax.set_xlim(gw.min() - pad_w, gw.max() + pad_w)
    ax.set_ylim(gb.min() - pad_b, gb.max() + pad_b)
    ax.set_xlabel("σ_w²")
    ax.set_ylabel("σ_b²")
    ax.set_title(f"order (blue) / chaos (red), N = {ds.attrs['width']}")
    ax.legend(fontsize=7, loc="upper left")

    fine = np.linspace(min(ds["crit_sigma_w2"].min(), 1.0), float(ds["crit_sigma_w2"].max()) + 0.3, 60)
    ac.plot(fine, [mf.chi_1(w, SIGMA_B2_CRIT) for w in fine], "k-", label="mean field χ₁")
    ac.errorbar(ds["crit_sigma_w2"], ds["crit_chi1_measured"], yerr=ds["crit_chi1_stderr"], fmt="o", ms=3,
                capsize=2, label="measured ‖J‖²/N")
    ac.axhline(1.0, color="0.6", lw=0.8)
    m, s = ds.attrs["critical_sigma_w2_measured"], ds.attrs["critical_sigma_w2_stderr"]
    ac.axvspan(m - s, m + s, color="tab:orange", alpha=0.3, label=f"measured σ_w²,c = {m:.3f} ± {s:.3f}")
    ac.axvline(ds.attrs["critical_sigma_w2_theory"], color="k", ls=":", label="mean field σ_w²,c")
    ac.set_xlabel("σ_w²")
    ac.set_ylabel("χ₁")
    ac.set_title(f"χ₁ near the critical point, σ_b² = {SIGMA_B2_CRIT}")
    ac.legend(fontsize=7)

    fine = np.linspace(float(ds["xi_sigma_w2"].min()) * 0.9, float(ds["xi_sigma_w2"].max()) * 1.05, 120)
    xi = np.array([mf.xi_c(w, SIGMA_B2_CRIT) for w in fine])
    axi.plot(fine, np.where(np.isfinite(xi), xi, np.nan), "k-", label="mean field ξ_c = −1/ln χ_c")
    ok = np.isfinite(ds["xi_measured"].values)
    rated = ds["xi_theory"].values <= ds.attrs["xi_depth"] / 6  # the table rows
    for sel, style, label in [(ok & rated, dict(fmt="o"), f"measured (N = {ds.attrs['xi_width']}, depth "
                                                          f"{ds.attrs['xi_depth']})"),
                              (ok & ~rated, dict(fmt="o", mfc="none"), "measured, depth-limited (ξ_c > depth/6)")]:
        if np.any(sel):
            axi.errorbar(ds["xi_sigma_w2"].values[sel], ds["xi_measured"].values[sel],
                         yerr=np.nan_to_num(ds["xi_stderr"].values[sel]), ms=4, capsize=2, color="tab:blue",
                         label=label, **style)
    axi.axvline(ds.attrs["critical_sigma_w2_theory"], color="k", ls=":")
    axi.set_yscale("log")
    axi.set_ylim(1.0, 10 * ds.attrs["xi_depth"])
    axi.set_xlabel("σ_w²")
    axi.set_ylabel("ξ_c (layers)")
    axi.set_title(f"correlation depth, σ_b² = {SIGMA_B2_CRIT}")
    axi.legend(fontsize=7)
    return fig
