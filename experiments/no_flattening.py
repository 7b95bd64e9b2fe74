"""No-flattening: multiplying n numbers takes 2ⁿ neurons in one hidden layer but O(n) in a deep net (``no-flattening``).

H. W. Lin, M. Tegmark & D. Rolnick, "Why does deep and cheap learning work so well?", J. Stat. Phys. 168, 1223
(2017), §III.A and Fig. 2 (the multiplication gate) and App. (no-flattening theorem); D. Rolnick & M. Tegmark,
"The power of deeper networks for expressing natural functions", ICLR 2018, Thm 4.1 (a shallow net needs 2ⁿ
neurons to approximate x₁⋯xₙ to arbitrary accuracy) and §4 (a binary tree of gates needs O(n)).

(a) The four-neuron gate g_λ(x, y) = [σ(λ(x+y)) + σ(−λ(x+y)) − σ(λ(x−y)) − σ(−λ(x−y))]/(4λ²σ''(0)) built as a
    flax ``ProductNet`` 2-4-1 with σ = softplus (σ''(0) = 1/4 ≠ 0; tanh, with σ''(0) = 0, cannot be used).
    Expanding σ(u) + σ(−u) = 2 Σ_k σ^(2k)(0) u^{2k}/(2k)! and using (x+y)⁴ − (x−y)⁴ = 8xy(x² + y²),
    (x+y)⁶ − (x−y)⁶ = 12x⁵y + 40x³y³ + 12xy⁵:

        g_λ − xy = [σ⁗(0)/(6σ''(0))] λ² xy(x² + y²) + [σ⁽⁶⁾(0)/(1440σ''(0))] λ⁴ [(x+y)⁶ − (x−y)⁶] + O(λ⁶),

    so the maximum error on [−1, 1]² (at the corners, |xy(x²+y²)| = 2) is λ²|σ⁗/σ''|/3 + O(λ⁴); for softplus
    σ''(0) = 1/4, σ⁗(0) = −1/8, σ⁽⁶⁾(0) = 1/4: max error = λ²/6 − (2/45)λ⁴ + O(λ⁶). Rows compare the measured
    maximum (float64, 41×41 grid including the corners) with λ²|σ⁗/σ''|/3 (rule of ``common.check_row``):
    allowance = twice the λ⁴ term (the term itself plus an unknown remainder taken no larger than it), stderr =
    float64 rounding amplified by 1/λ² (10⁻¹⁵/λ²).
(b) The product of n inputs x ~ U[−1, 1]ⁿ, targets scaled by the exact population std 3^{−n/2} (variance 1):
    one-hidden-layer softplus nets of width m (all widths trained at once through a hidden-unit mask) and deep
    nets with ``DEEP_FACTOR`` = 2 × the widths of the binary tree of gates (4 per pair, 2 per pass-through:
    softplus(u) − softplus(−u) = u; O(n) neurons), trained with optax Adam (cosine decay) from a draw of the
    weight ensemble's prior, several seeds (from a random init the exact tree widths train poorly for n ≥ 4;
    the hand-built tree shows that they suffice). "Learns"
    = normalised test MSE (mean (f − y)², y of variance 1) below ``THRESHOLD`` = 1e-2 (99 % of the variance
    explained), best of the seeds. The minimal shallow width is reported beside 2ⁿ: the theorem bounds the
    ε → 0 limit, so a finite threshold can be met by fewer neurons and optimisation can need more — those rows
    are measurements, not pass/fail checks. Checked: the hand-built tree of gates (λ = ``TREE_LAMBDA``) and the
    trained deep tree-width nets reach the threshold.
(c) The ensemble view: log Z(β) = log ∫ prior(w) e^{−β E(w)} dw (E = ½ Σ_μ (f_w(x_μ) − y_μ)², normalised
    Gaussian prior σ = 1 with fan-in scaling) of a shallow and a deep topology with the same number of
    parameters, by AIS through ``engine.api.log_partition``, two independent runs each (their agreement within
    3σ is checked: it tests the AIS error bars); the difference Δ log Z = log Z_deep − log Z_shallow is reported
    with its error bar. At large β, log Z is the log prior-volume of the low-loss weights (minus a Laplace term
    ~ (d_eff/2) ln β).

Sizes: ``tiny`` (tests), ``small`` (default, n = 2..5, a few CPU-minutes), ``full`` (``--full``).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr
from flax import nnx

from thermodl.experiments import common

NAME = "no-flattening"
DESCRIPTION = "Multiplication gate error vs lambda, minimal shallow width vs 2^n, log Z of shallow vs deep product nets"

THRESHOLD = 1e-2
TREE_LAMBDA = 0.05

# Training budgets: shallow (all widths × seeds at once) and deep (trained deep nets have DEEP_FACTOR × the tree
# widths: from a random init the exact tree widths train poorly for n ≥ 4, the hand-built tree shows they suffice).
_SIZES = {
    "tiny": dict(lambdas=(0.05, 0.1, 0.2, 0.4), ns=(2, 3), widths={2: (2, 4), 3: (4, 8)},
                 shallow=dict(seeds=2, steps=100, n_train=128), deep=dict(seeds=2, steps=100, n_train=128),
                 lr=3e-2, n_test=512,
                 ensembles=((3, (8,), (4, 4)),), n_data=8, beta=3.0, n_chains=16, n_temperatures=40),
    "small": dict(lambdas=tuple(np.geomspace(0.01, 1.0, 9)), ns=(2, 3, 4, 5),
                  widths={2: (1, 2, 3, 4, 6), 3: (4, 6, 8, 10, 12, 16), 4: (8, 12, 16, 24, 32),
                          5: (16, 24, 32, 48, 64)},
                  shallow=dict(seeds=2, steps=6000, n_train=1024), deep=dict(seeds=6, steps=10000, n_train=2048),
                  lr=3e-2, n_test=4096,
                  ensembles=((3, (8,), (4, 4)),), n_data=16, beta=10.0, n_chains=128, n_temperatures=1000),
    "full": dict(lambdas=tuple(np.geomspace(0.005, 1.0, 17)), ns=(2, 3, 4, 5, 6),
                 widths={2: (1, 2, 3, 4, 5, 6), 3: (4, 5, 6, 7, 8, 10, 12, 16), 4: (8, 10, 12, 14, 16, 20, 24, 32, 48),
                         5: (16, 20, 24, 28, 32, 40, 48, 64, 96), 6: (32, 48, 64, 96, 128)},
                 shallow=dict(seeds=4, steps=20000, n_train=4096), deep=dict(seeds=8, steps=20000, n_train=4096),
                 lr=3e-2, n_test=16384,
                 ensembles=((3, (8,), (4, 4)), (4, (13,), (6, 6))), n_data=16, beta=10.0, n_chains=1024,
                 n_temperatures=4000),
}
DEEP_FACTOR = 2
SIZES = tuple(_SIZES)


class ProductNet(nnx.Module):
    """Softplus network n_in → widths[0] → … → 1 (linear output), optionally with a 0/1 mask on the units of the
    first hidden layer (a non-parameter ``nnx.Variable``: a masked width-M net is exactly a width-m net).

    Args:
      n_in: number of inputs.
      widths: hidden widths (≥ 1 layer).
      mask: add the hidden-unit mask (all ones).
      rngs: ``nnx.Rngs``.
      param_dtype: parameter dtype.
    """

    def __init__(self, n_in: int, widths: Sequence[int], *, mask: bool = False, rngs: nnx.Rngs,
                 param_dtype=jnp.float32):
        widths = [int(w) for w in widths]
        if n_in < 1 or not widths or min(widths) < 1:
            raise ValueError(f"ProductNet needs n_in >= 1 and positive hidden widths, got {n_in!r}, {widths!r}")
        sizes = [n_in, *widths, 1]
        self.layers = nnx.List([nnx.Linear(a, b, param_dtype=param_dtype, rngs=rngs)
                                for a, b in zip(sizes[:-1], sizes[1:])])
        self.mask = nnx.Variable(jnp.ones(widths[0], param_dtype)) if mask else None

    def __call__(self, x: jax.Array) -> jax.Array:
        for i, layer in enumerate(self.layers[:-1]):
            x = jax.nn.softplus(layer(x))
            if i == 0 and self.mask is not None:
                x = x * self.mask[...]
        return self.layers[-1](x)


# ------------------------------------------------------------------------------------------ (a) the gate
def softplus_derivatives(order: int = 6) -> np.ndarray:
    """σ^(k)(0) of softplus for k = 0..order by nested automatic differentiation in float64 (exact values:
    ln 2, 1/2, 1/4, 0, −1/8, 0, 1/4)."""
    with jax.enable_x64(True):
        f, out = jax.nn.softplus, []
        for _ in range(order + 1):
            out.append(float(f(jnp.float64(0.0))))
            f = jax.grad(f)
    return np.asarray(out)


def gate_error_coefficients(derivs: np.ndarray) -> tuple[float, float]:
    """(c₂, c₄) of g_λ − xy = c₂ λ² xy(x²+y²) + c₄ λ⁴ [(x+y)⁶ − (x−y)⁶] + O(λ⁶): c₂ = σ⁗/(6σ''),
    c₄ = σ⁽⁶⁾/(1440σ'') (module docstring)."""
    if derivs[2] == 0:
        raise ValueError("the multiplication gate needs sigma''(0) != 0 (e.g. softplus, not tanh)")
    return float(derivs[4] / (6 * derivs[2])), float(derivs[6] / (1440 * derivs[2]))


def gate_max_error_theory(lam, derivs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(leading, next) terms of the maximum gate error on [−1, 1]² at the corner x = y = ±1:
    leading = 2|c₂|λ², next = 64 c₄ λ⁴ (signed, same sign convention as the error there)."""
    c2, c4 = gate_error_coefficients(derivs)
    lam = np.asarray(lam, np.float64)
    return 2 * abs(c2) * lam**2, 64 * c4 * lam**4 * np.sign(c2 if c2 else 1.0)


def n_params(n: int, widths: Sequence[int]) -> int:
    """Number of parameters (weights and biases) of ``ProductNet(n, widths)``: Σ (fan_in + 1)·fan_out."""
    sizes = [n, *widths, 1]
    return int(sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:])))


def tree_widths(n: int) -> tuple[int, ...]:
    """Hidden widths of the binary tree of multiplication gates for n inputs: each level pairs its values
    (4 neurons per pair) and passes an odd one through (2 neurons); e.g. 3 → (6, 4), 4 → (8, 4)."""
    if n < 2:
        raise ValueError(f"the product tree needs n >= 2 inputs, got {n}")
    widths, k = [], n
    while k > 1:
        widths.append(4 * (k // 2) + 2 * (k % 2))
        k = k // 2 + k % 2
    return tuple(widths)


def product_tree(n: int, lam: float, dtype=jnp.float64) -> ProductNet:
    """The hand-built deep ``ProductNet`` computing x₁⋯xₙ with gates of scale λ (Lin, Tegmark & Rolnick 2017).

    Level values v are linear read-outs of the previous hidden layer (the inputs at level 0); a pair (a, b)
    feeds four units ±λ(a+b), ±λ(a−b) read out with ±1/(4λ²σ''(0)); a pass-through value v feeds ±λv read out
    with ±1/(2λσ'(0)) (exact for softplus). Build and evaluate inside ``jax.enable_x64`` for float64.
    """
    d = softplus_derivatives(2)
    net = ProductNet(n, tree_widths(n), rngs=nnx.Rngs(0), param_dtype=dtype)
    readout = np.eye(n)  # [previous width, k values]
    for layer in net.layers[:-1]:
        k = readout.shape[1]
        cols, out = [], []
        for i in range(0, k - 1, 2):
            a, b = readout[:, i], readout[:, i + 1]
            cols += [lam * (a + b), -lam * (a + b), lam * (a - b), -lam * (a - b)]
            mu = 1.0 / (4 * lam**2 * d[2])
            out.append([mu, mu, -mu, -mu])
        if k % 2:
            cols += [lam * readout[:, -1], -lam * readout[:, -1]]
            nu = 1.0 / (2 * lam * d[1])
            out.append([nu, -nu])
        kernel = np.stack(cols, 1)
        layer.kernel[...] = jnp.asarray(kernel, dtype)
        layer.bias[...] = jnp.zeros(kernel.shape[1], dtype)
        new = np.zeros((kernel.shape[1], len(out)))
        row = 0
        for j, coef in enumerate(out):
            new[row:row + len(coef), j] = coef
            row += len(coef)
        readout = new
    net.layers[-1].kernel[...] = jnp.asarray(readout, dtype)
    net.layers[-1].bias[...] = jnp.zeros(1, dtype)
    return net


def gate_max_error(lam: float, grid: int = 41) -> float:
    """Maximum |g_λ(x, y) − xy| of the 2-4-1 gate network on a grid×grid lattice of [−1, 1]² (float64)."""
    with jax.enable_x64(True):
        net = product_tree(2, float(lam))
        u = np.linspace(-1.0, 1.0, grid)
        X = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
        f = np.asarray(net(jnp.asarray(X, jnp.float64)))[:, 0]
    return float(np.max(np.abs(f - X[:, 0] * X[:, 1])))


# ------------------------------------------------------------------------------------------ (b) training
def product_data(key, n: int, size: int) -> tuple[jax.Array, jax.Array]:
    """x ~ U[−1, 1]ⁿ ``[size, n]`` and y = 3^{n/2} x₁⋯xₙ ``[size]`` (population variance exactly 1)."""
    X = jax.random.uniform(key, (size, n), minval=-1.0, maxval=1.0)
    return X, jnp.prod(X, axis=1) * 3.0 ** (n / 2)


def _ensemble(n, widths, X, y, *, mask=False, X_test=None, y_test=None, sigma=1.0):
    from thermodl.models.priors import gaussian
    from thermodl.models.weights import weight_ensemble

    net = ProductNet(n, widths, mask=mask, rngs=nnx.Rngs(0))
    return weight_ensemble(net, X, y, loss="squared", prior=gaussian(sigma), X_test=X_test, y_test=y_test)


@functools.lru_cache(maxsize=32)
def _trainer(steps: int, lr: float, n_train: int, masked: bool):
    """jit(vmap over (mask, key)) of Adam training from the prior draw; returns the test MSE (variance-1 y)."""
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=1e-2))

    def train(ens, mask, key):
        e = ens.replace(rest=jax.tree.map(lambda _: mask, ens.rest)) if masked else ens
        w = e.sample_reference(key)

        def body(carry, _):
            w, st = carry
            g = jax.grad(lambda v: e.energy(v) / n_train)(w)
            upd, st = opt.update(g, st, w)
            return (optax.apply_updates(w, upd), st), None

        (w, _), _ = jax.lax.scan(body, (w, opt.init(w)), None, length=steps)
        return 2.0 * e.test_error(w)  # test_error is the mean of ½(f − y)²

    return jax.jit(jax.vmap(train, in_axes=(None, 0, 0)))


def train_product_nets(n: int, widths: Sequence[int] | None, *, deep: Sequence[int] | None = None, seeds: int,
                       steps: int, lr: float, n_train: int, n_test: int, key, init_sigma: float = 1.0) -> np.ndarray:
    """Train softplus nets on the product of n inputs with Adam; normalised test MSE per net.

    Args:
        n: number of inputs.
        widths: shallow widths to train (one masked width-max(widths) net per (width, seed)); ignored if
            ``deep`` is given.
        deep: hidden widths of one deep topology (trained for every seed).
        seeds, steps, lr, n_train, n_test: training set-up; net (width, seed) starts from a prior draw with
            ``fold_in(key_init, seed)``, the same for every width.
        key: data and init key.
        init_sigma: σ of the Gaussian prior (fan-in scaled) the initial weights are drawn from.
    Returns:
        float64 [len(widths), seeds] (or [1, seeds] for ``deep``): mean (f − y)² on the test set (y has
        variance 1, so this is the fraction of variance unexplained).
    """
    if steps < 1 or seeds < 1:
        raise ValueError(f"steps and seeds must be >= 1, got steps={steps!r}, seeds={seeds!r}")
    kx, kt, kw = jax.random.split(key, 3)
    X, y = product_data(kx, n, n_train)
    Xt, yt = product_data(kt, n, n_test)
    if deep is not None:
        ens = _ensemble(n, tuple(deep), X, y, X_test=Xt, y_test=yt, sigma=init_sigma)
        configs = [(0, s) for s in range(seeds)]
        masks = jnp.zeros((seeds, 1), jnp.float32)
    else:
        M = max(widths)
        ens = _ensemble(n, (M,), X, y, mask=True, X_test=Xt, y_test=yt, sigma=init_sigma)
        configs = [(m, s) for m in widths for s in range(seeds)]
        masks = jnp.stack([(jnp.arange(M) < m).astype(jnp.float32) for m, _ in configs])
    keys = jax.vmap(lambda s: jax.random.fold_in(kw, s))(jnp.asarray([s for _, s in configs]))
    mse = _trainer(int(steps), float(lr), int(n_train), deep is None)(ens, masks, keys)
    return np.asarray(mse, np.float64).reshape(-1, seeds)


def minimal_width(widths: Sequence[int], mse: np.ndarray, threshold: float = THRESHOLD) -> float:
    """The smallest width whose best-of-seeds test MSE is below ``threshold`` (NaN if none).

    Args:
        widths: [W] trained widths, increasing.
        mse: [W, seeds] test MSEs (non-finite entries count as failures).
    """
    best = np.where(np.isfinite(mse), mse, np.inf).min(axis=1)
    hit = np.flatnonzero(best < threshold)
    return float(widths[hit[0]]) if hit.size else math.nan


# ------------------------------------------------------------------------------------------ (c) log Z
def log_z_product(n: int, widths: Sequence[int], *, n_data: int, beta: float, data_key, key, **ais) -> dict:
    """log Z(β) of the squared-loss weight ensemble of ``ProductNet(n, widths)`` on ``n_data`` product examples
    drawn with ``data_key`` (pass the same one for every topology), by AIS through ``engine.api.log_partition``
    with ``key`` (``**ais``: n_chains, n_temperatures, ...).

    Returns:
        dict ``log_z``, ``stderr``, ``ess``, ``unreliable``, ``dim`` and the AIS diagnostics.
    """
    from thermodl.engine.api import log_partition

    X, y = product_data(data_key, n, n_data)
    ens = _ensemble(n, tuple(widths), X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the flag is kept in the diagnostics and the table
        est = log_partition(ens, beta, method="ais", key=key, **ais)
    d = est.diagnostics
    return dict(log_z=est.value, stderr=est.stderr, ess=d["ess"], unreliable=bool(d["unreliable"]), dim=ens.dim,
                acceptance=d["mean_acceptance"])


# ----------------------------------------------------------------------------------------------------- run
def _threshold_row(quantity: str, method: str, measured: float, *, wall_s: float = math.nan, **extra) -> dict:
    row = dict.fromkeys(common.ROW_COLUMNS, None)
    ok = bool(math.isfinite(measured) and measured < THRESHOLD)
    row.update(quantity=quantity, method=method, measured=float(measured), theory=THRESHOLD, tolerance=THRESHOLD,
               criterion="measured < threshold", wall_s=float(wall_s))
    row["pass"] = ok
    row.update(extra)
    return row


def run(out_dir: Path, *, full: bool = False, seed: int = 0, size: str | None = None,
        progress: Callable[[str, float], None] | None = None) -> dict:
    """Gate error vs λ, minimal shallow widths vs 2ⁿ with trained and hand-built deep trees, log Z of shallow vs
    deep; writes the table, netCDF and figure.

    Arguments and result: ``engine.registry``'s protocol, sizes ``SIZES`` (default ``"small"``); every part
    uses ``fold_in(key(seed), ·)``.
    """
    size, cfg = common.resolve_size(size, full, _SIZES, default="small")
    base = jax.random.key(seed)
    say = progress or (lambda *_: None)
    rows: list[dict] = []
    data: dict = {}

    # (a) the gate
    say("multiplication gate", 0.0)
    d = softplus_derivatives(6)
    lams = np.asarray(cfg["lambdas"], np.float64)
    with common.stopwatch() as t:
        err = np.array([gate_max_error(lam) for lam in lams])
    lead, nxt = gate_max_error_theory(lams, d)
    for lam, e, th, nx in zip(lams, err, lead, nxt):
        if lam <= 0.3:  # the λ expansion is only asymptotic
            # allowance: the O(λ⁴) term + a remainder no larger than it; stderr: float64 rounding amplified by 1/λ²
            rows.append(common.check_row(f"max |gate - xy| on [-1,1]^2, lambda={lam:.3g}", "softplus 2-4-1 net", e,
                                         1e-15 / lam**2, th, dof=math.inf, allowance=2.0 * abs(nx),
                                         wall_s=t["s"] / lams.size, lam=float(lam)))
    data.update(gate_max_error=("lambda", err), gate_theory_leading=("lambda", lead),
                gate_theory_two_terms=("lambda", lead + nxt))

    # (b) minimal widths
    ns, sh, dp = cfg["ns"], cfg["shallow"], cfg["deep"]
    m_min, deep_best, tree_mse, deep_all = [], [], [], []
    for i, n in enumerate(ns):
        say(f"training shallow nets, n={n}", 0.05 + 0.6 * i / len(ns))
        k = jax.random.fold_in(base, 100 + n)
        widths = tuple(cfg["widths"][n])
        with common.stopwatch() as t:
            mse = train_product_nets(n, widths, seeds=sh["seeds"], steps=sh["steps"], lr=cfg["lr"],
                                     n_train=sh["n_train"], n_test=cfg["n_test"], key=k)
        m = minimal_width(widths, mse)
        m_min.append(m)
        data[f"shallow_mse_n{n}"] = ((f"width_n{n}", "seed"), mse)
        data[f"width_n{n}"] = (f"width_n{n}", np.asarray(widths))
        rows.append(common.measurement_row(
            f"minimal shallow width with test MSE < {THRESHOLD:g}, n={n}", "Adam, best of seeds", m, wall_s=t["s"],
            theory=float(2**n), n=n, widths_tried=" ".join(map(str, widths)), seeds=sh["seeds"],
            note="theorem: 2^n for MSE -> 0" if math.isfinite(m) else f"none up to width {max(widths)}"))
        tw = tree_widths(n)
        dw = tuple(DEEP_FACTOR * w for w in tw)
        say(f"training deep nets {list(dw)}, n={n}", 0.05 + 0.6 * (i + 0.5) / len(ns))
        with common.stopwatch() as t:
            dm = train_product_nets(n, None, deep=dw, seeds=dp["seeds"], steps=dp["steps"], lr=cfg["lr"],
                                    n_train=dp["n_train"], n_test=cfg["n_test"], key=k)[0]
        best = float(np.min(np.where(np.isfinite(dm), dm, np.inf)))
        deep_best.append(best)
        deep_all.append(dm)
        rows.append(_threshold_row(f"trained deep net {list(dw)} ({DEEP_FACTOR}x tree widths) reaches MSE < "
                                   f"{THRESHOLD:g}, n={n}", "Adam, best of seeds", best, wall_s=t["s"], n=n,
                                   neurons=sum(dw), seeds=dp["seeds"]))
        with jax.enable_x64(True):
            Xt, yt = product_data(jax.random.fold_in(k, 7), n, cfg["n_test"])
            f = product_tree(n, TREE_LAMBDA)(jnp.asarray(Xt, jnp.float64))[:, 0] * 3.0 ** (n / 2)
            tmse = float(jnp.mean((f - jnp.asarray(yt, jnp.float64)) ** 2))
        tree_mse.append(tmse)
        rows.append(_threshold_row(f"hand-built gate tree {list(tw)} (lambda={TREE_LAMBDA}) MSE < {THRESHOLD:g}, "
                                   f"n={n}", "Lin-Tegmark-Rolnick construction", tmse, n=n, neurons=sum(tw)))
    data.update(m_min=("n", np.asarray(m_min)), deep_best_mse=("n", np.asarray(deep_best)),
                tree_mse=("n", np.asarray(tree_mse)),
                tree_neurons=("n", np.asarray([sum(tree_widths(n)) for n in ns])),
                deep_neurons=("n", np.asarray([DEEP_FACTOR * sum(tree_widths(n)) for n in ns])),
                deep_mse=(("n", "deep_seed"), np.stack(deep_all)))

    # (c) log Z of shallow vs deep at equal parameter count
    ens_rows = []
    ais = dict(n_chains=cfg["n_chains"], n_temperatures=cfg["n_temperatures"])
    for j, (n, shallow, deep) in enumerate(cfg["ensembles"]):
        if n_params(n, shallow) != n_params(n, deep):
            raise ValueError(f"ensembles must compare equal parameter counts, got {shallow} and {deep} for n={n}")
        kd = jax.random.fold_in(base, 1000 + j)  # the same data set for both topologies
        res = {}
        for name, widths in (("shallow", shallow), ("deep", deep)):
            say(f"AIS log Z, n={n}, {name} {list(widths)}", 0.7 + 0.3 * j / len(cfg["ensembles"]))
            runs = []
            for r in range(2):
                with common.stopwatch() as t:
                    runs.append(log_z_product(n, widths, n_data=cfg["n_data"], beta=cfg["beta"], data_key=kd,
                                              key=jax.random.fold_in(kd, 10 + 2 * r + (name == "deep")), **ais))
                runs[-1]["wall_s"] = t["s"]
            a, b = runs
            row = common.check_row(f"log Z repeatability, n={n}, {name} {list(widths)} (run 1 - run 2)", "AIS",
                                   a["log_z"] - b["log_z"], math.hypot(a["stderr"], b["stderr"]), 0.0,
                                   wall_s=a["wall_s"] + b["wall_s"], n=n, dim=a["dim"],
                                   beta=cfg["beta"], ess=min(a["ess"], b["ess"]),
                                   unreliable=a["unreliable"] or b["unreliable"])
            row["pass"] = bool(row["pass"] and not row["unreliable"])
            rows.append(row)
            w = np.array([1 / a["stderr"] ** 2, 1 / b["stderr"] ** 2])
            lz = float((w[0] * a["log_z"] + w[1] * b["log_z"]) / w.sum())
            res[name] = dict(log_z=lz, stderr=float(1 / math.sqrt(w.sum())), dim=a["dim"], widths=widths)
        diff = res["deep"]["log_z"] - res["shallow"]["log_z"]
        se = math.hypot(res["deep"]["stderr"], res["shallow"]["stderr"])
        rows.append(common.measurement_row(
            f"Delta log Z = log Z(deep {list(deep)}) - log Z(shallow {list(shallow)}), n={n}, beta={cfg['beta']:g}",
            "AIS", diff, stderr=se, n=n, dim=res["deep"]["dim"], beta=cfg["beta"], n_data=cfg["n_data"],
            log_z_shallow=res["shallow"]["log_z"], log_z_deep=res["deep"]["log_z"]))
        ens_rows.append((n, res, diff, se))
    say("writing results", 1.0)
    return _finish(out_dir, rows, data, cfg, lams, ns, ens_rows, size, seed)


def _finish(out_dir, rows, data, cfg, lams, ns, ens_rows, size, seed) -> dict:
    coords = {"lambda": lams, "n": np.asarray(ns), "deep_seed": np.arange(cfg["deep"]["seeds"]),
              "seed": np.arange(cfg["shallow"]["seeds"])}
    topo = [f"n={n} {name} {list(r[name]['widths'])}" for n, r, _, _ in ens_rows for name in ("shallow", "deep")]
    per_topology = [r[name] for _, r, _, _ in ens_rows for name in ("shallow", "deep")]
    data.update(log_z=("topology", [t["log_z"] for t in per_topology]),
                log_z_stderr=("topology", [t["stderr"] for t in per_topology]))
    coords["topology"] = np.asarray(topo)
    for k in [k for k in data if k.startswith("width_n")]:
        coords[k] = data.pop(k)[1]
    ds = xr.Dataset(data, coords=coords,
                    attrs=dict(size=size, seed=seed, threshold=THRESHOLD, tree_lambda=TREE_LAMBDA, beta=cfg["beta"],
                               n_data=cfg["n_data"], shallow_steps=cfg["shallow"]["steps"],
                               shallow_n_train=cfg["shallow"]["n_train"], deep_steps=cfg["deep"]["steps"],
                               deep_n_train=cfg["deep"]["n_train"], deep_factor=DEEP_FACTOR, lr=cfg["lr"],
                               n_test=cfg["n_test"], jax=jax.__version__,
                               device=str(jax.devices()[0].platform)))
    return common.finish(out_dir, rows, figure=_figure(ds, ens_rows), data=ds)


def _figure(ds: xr.Dataset, ens_rows):
    fig, axes = common.new_figure(2, 2, figsize=(12.0, 9.0))
    (ag, aw), (am, az) = axes
    lam = ds["lambda"].values
    fine = np.geomspace(lam.min(), lam.max(), 100)
    d = softplus_derivatives(6)
    lead, nxt = gate_max_error_theory(fine, d)
    ag.loglog(lam, ds["gate_max_error"], "o", label="measured (softplus gate net)")
    ag.loglog(fine, lead, "k-", label="theory λ²|σ⁗/σ''|/3 = λ²/6")
    ag.loglog(fine, lead + nxt, "k--", lw=0.8, label="with the λ⁴ term")
    ag.set_xlabel("λ")
    ag.set_ylabel("max |g_λ(x, y) − xy| on [−1, 1]²")
    ag.set_title("(a) four-neuron multiplication gate")
    ag.legend(fontsize=8)

    colors = {}
    for n in ds["n"].values:
        w = ds[f"width_n{n}"].values
        best = np.nanmin(ds[f"shallow_mse_n{n}"].values, axis=1)
        (line,) = aw.semilogy(w, best, "o-", ms=4, label=f"shallow, n={n}")
        colors[n] = line.get_color()
        aw.axvline(2**n, color=colors[n], ls=":", lw=1)
        k = list(ds["n"].values).index(n)
        aw.plot(ds["deep_neurons"].values[k], ds["deep_best_mse"].values[k], "*", ms=11, color=colors[n],
                mec="k", label=f"trained deep, n={n}")
    aw.axhline(THRESHOLD, color="k", lw=1, label=f"threshold {THRESHOLD:g}")
    aw.set_xlabel("hidden neurons")
    aw.set_ylabel("test MSE / Var(y), best of seeds")
    aw.set_title("(b) learning x₁⋯xₙ (dotted: 2ⁿ)")
    aw.legend(fontsize=6, ncol=2)

    n = ds["n"].values
    m = ds["m_min"].values
    ok = np.isfinite(m)
    am.semilogy(n, 2.0**n, "k-", label="shallow bound 2ⁿ (Rolnick & Tegmark)")
    am.semilogy(n[ok], m[ok], "o", ms=7, label="measured minimal shallow width")
    if np.any(~ok):
        top = [max(ds[f"width_n{k}"].values) for k in n[~ok]]
        am.semilogy(n[~ok], top, "^", ms=8, mfc="none", label="not reached up to this width")
    am.semilogy(n, ds["tree_neurons"].values, "s-", ms=5, label="hand-built gate tree (reaches it)")
    hit = ds["deep_best_mse"].values < THRESHOLD
    am.semilogy(n[hit], ds["deep_neurons"].values[hit], "D", ms=6, label=f"trained deep ({DEEP_FACTOR}× tree widths)")
    if np.any(~hit):
        am.semilogy(n[~hit], ds["deep_neurons"].values[~hit], "D", ms=6, mfc="none",
                    label="trained deep: threshold not reached")
    am.semilogy(n, 4.0 * (n - 1), "k--", lw=0.8, label="4(n−1)")
    am.set_xlabel("n (inputs multiplied)")
    am.set_ylabel("neurons")
    am.set_title(f"(b) neurons to reach test MSE < {THRESHOLD:g}")
    am.legend(fontsize=7)

    labels, vals, errs = [], [], []
    for n_, res, diff, se in ens_rows:
        for name in ("shallow", "deep"):
            labels.append(f"n={n_}\n{name}\n{list(res[name]['widths'])}")
            vals.append(res[name]["log_z"])
            errs.append(res[name]["stderr"])
    x = np.arange(len(vals))
    az.errorbar(x, vals, yerr=np.asarray(errs), fmt="o", capsize=4)
    az.set_xticks(x, labels, fontsize=7)
    az.set_xlim(-0.5, len(vals) - 0.5)
    az.set_ylabel(f"log Z(β = {ds.attrs['beta']:g})")
    txt = "; ".join(f"n={n_}: Δ = {diff:.2f} ± {se:.2f}" for n_, _, diff, se in ens_rows)
    az.set_title(f"(c) AIS log Z, equal parameter count\n{txt}", fontsize=9)
    return fig
