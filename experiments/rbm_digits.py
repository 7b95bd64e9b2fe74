"""RBMs on binarised handwritten digits: test log-likelihood per digit with exact and estimated log Z
(``thermodl reproduce rbm-digits``).

R. Salakhutdinov and I. Murray, "On the quantitative analysis of deep belief networks", ICML (2008): the test
log-likelihood of an RBM needs its partition function; for a small hidden layer it is exact (sum the visible layer
out, enumerate the 2^{n_h} hidden states), for a large one it must be estimated (AIS), and the small RBM is where
the estimator is checked. Here on scikit-learn's bundled 8×8 digits (64 pixels, 1797 images, nothing downloaded)
instead of MNIST.

Steps, all through thermodl:

1. Data: ``models.data.digits`` (pixels in [0, 1]), thresholded at 0.5, random train/test split. The binary
   pixels are stored as spins s = 2v − 1: a bijection, so log p(v) is the same number for either coding, and a
   {0, 1} RBM and a ±1 RBM are the same family of distributions (an affine change of parameters).
2. Training: two RBMs with 64 visible units, one with ``n_small`` = 20 hidden units (exact log Z exists) and one
   with ``n_large`` hidden units (200 quick, 500 full: no exact value), each by persistent contrastive divergence
   (T. Tieleman, ICML 2008) with the update of ``experiments.rbm_rg`` (``_train_segment``: block-Gibbs fantasy
   chains through the engine's kernel, optax Adam with a cosine-decaying rate); visible biases start at the
   data's base rates (as Salakhutdinov & Murray). The small RBM's exact test log-likelihood is tracked at
   checkpoints (the training curve).
3. log Z of both final RBMs by the engine's AIS (``log_partition(method="ais")``, Neal 2001) and adaptive SMC
   (``method="smc"``, Del Moral et al. 2006), each from the uniform β = 0 ensemble of both layers, with their own
   standard errors and ``reliable`` flags. Small RBM: each checked against the exact log Z
   (``method="exact"``, float64) by ``common.check_row`` (|z| < 3). Large RBM: the two independent estimates
   must agree within their combined error (AIS − SMC vs 0, stderr added in quadrature).
4. Test log-likelihood per digit = mean over test digits of log p*(v) − log Z, with log p*(v) = −F(v) the hidden
   layer summed out (``RBM.log_marginal_visible``). Its error bar has two parts, reported separately: the spread
   over test digits (sampling of the test set) and the error of log Z (the estimator; the one that matters when
   comparing models on the same test set). Small RBM: the AIS- and SMC-based values are checked against the exact
   one.

Outputs: ``results.png`` (training curve of the test log-likelihood per digit; the log Z estimates against exact
and against each other), ``results.nc``, ``results.md`` / ``results.csv``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from thermodl.experiments import common, rbm_rg

NAME = "rbm-digits"
DESCRIPTION = ("RBMs on binarised sklearn digits (Salakhutdinov & Murray 2008): test log-likelihood per digit, exact "
               "log Z for 20 hidden units checks AIS and SMC, AIS vs SMC with error bars for 200-500 hidden units")

_SIZES = {
    "tiny": dict(n_small=8, n_large=24, n_train=400, steps=(0, 100, 300), batch=32, n_pcd=64, lr=0.01,
                 ais_chains=64, ais_temperatures=300, smc_particles=64, smc_runs=4, smc_sweeps=2),
    "quick": dict(n_small=20, n_large=200, n_train=None, steps=(0, 200, 500, 1000, 2000, 4000), batch=64,
                  n_pcd=256, lr=0.005, ais_chains=256, ais_temperatures=2000, smc_particles=256, smc_runs=8,
                  smc_sweeps=4),
    "full": dict(n_small=20, n_large=500, n_train=None, steps=(0, 500, 2000, 5000, 10000, 20000), batch=100,
                 n_pcd=1000, lr=0.005, ais_chains=2048, ais_temperatures=20000, smc_particles=1024, smc_runs=16,
                 smc_sweeps=8),
}
SIZES = tuple(_SIZES)
THRESHOLD = 0.5
N_VISIBLE = 64


def load_binary_digits(seed: int, n_train: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """sklearn digits thresholded at 0.5 as spins: (train [P, 64], test [P_test, 64]) in {−1, +1}, float32."""
    from thermodl.models.data import digits

    ds = digits(test_fraction=0.25, n_train=n_train, seed=seed)
    spins = lambda x: np.where(np.asarray(x) > THRESHOLD, 1.0, -1.0).astype(np.float32)  # noqa: E731
    return spins(ds.X), spins(ds.X_test)


def _init_params(key, train: np.ndarray, n_hidden: int) -> dict:
    """W ~ 0.01 N(0, 1), b = 0, a = atanh(mean spin) per pixel (base rates, clipped away from ±1)."""
    m = np.clip(train.mean(0), -0.95, 0.95)
    return {"W": 0.01 * jax.random.normal(key, (train.shape[1], n_hidden)), "a": jnp.asarray(np.arctanh(m),
                                                                                              jnp.float32),
            "b": jnp.zeros(n_hidden)}


def log_p_star(params, v: np.ndarray) -> np.ndarray:
    """Unnormalised log p*(v) = −F(v) [n] (hidden layer summed out), float64."""
    return rbm_rg.log_likelihood_per_sample(params, v, 0.0)


def train_rbm(key, train, test, n_hidden: int, cfg: dict, *, exact_curve: bool, progress=None,
              label: str = "") -> dict:
    """PCD training (``rbm_rg._train_segment``); at each checkpoint the exact test/train log-likelihood per digit
    when ``exact_curve`` (small RBM). Returns {"curve": {name: [checkpoints]}, "params" (NumPy), "train_s"}."""
    from thermodl.engine.exact import exact_log_partition_value

    k_init, k_chains, k_train = (jax.random.fold_in(key, i) for i in range(3))
    params = _init_params(k_init, train, n_hidden)
    optimizer = optax.adam(optax.cosine_decay_schedule(cfg["lr"], max(cfg["steps"][-1], 1)))
    opt_state = optimizer.init(params)
    chains = jnp.where(jax.random.bernoulli(k_chains, 0.5, (cfg["n_pcd"], N_VISIBLE + n_hidden)), 1.0, -1.0)
    data = jnp.asarray(train)
    curve = {k: [] for k in ("step", "log_z", "ll_train", "ll_test", "ll_test_stderr")}
    done = 0
    with common.stopwatch() as t:
        for c, step in enumerate(cfg["steps"]):
            if step > done:
                params, opt_state, chains = rbm_rg._train_segment(params, opt_state, chains, k_train, done, step,
                                                                  data, 0.0, batch=cfg["batch"],
                                                                  optimizer=optimizer)
                done = step
            if progress:
                progress(f"{label}: PCD update {step}", c / len(cfg["steps"]))
            if exact_curve:
                log_z = exact_log_partition_value(rbm_rg._rbm(params), 1.0)[0]
                lp_te = rbm_rg.log_likelihood_per_sample(params, test, log_z)
                lp_tr = rbm_rg.log_likelihood_per_sample(params, train, log_z)
                for k, v in (("step", step), ("log_z", log_z), ("ll_train", lp_tr.mean()), ("ll_test", lp_te.mean()),
                             ("ll_test_stderr", lp_te.std(ddof=1) / math.sqrt(lp_te.size))):
                    curve[k].append(float(v))
    out = {"curve": {k: np.asarray(v, np.float64) for k, v in curve.items()}}
    out["params"] = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    out["train_s"] = t["s"]
    return out


def estimate_log_z(params, cfg: dict, key) -> dict:
    """AIS and SMC estimates of log Z(β = 1) of the spin RBM ``params``: {method: (LogZEstimate, wall_s)}."""
    from thermodl.engine.api import log_partition

    rbm = rbm_rg._rbm(jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params))
    out = {}
    runs = (("ais", dict(n_chains=cfg["ais_chains"], n_temperatures=cfg["ais_temperatures"])),
            ("smc", dict(n_particles=cfg["smc_particles"], n_runs=cfg["smc_runs"], n_sweeps=cfg["smc_sweeps"])))
    for i, (method, opts) in enumerate(runs):
        with warnings.catch_warnings():  # the flag is reported in the table (reliable / reasons), not as a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            with common.stopwatch() as t:
                est = log_partition(rbm, 1.0, method=method, key=jax.random.fold_in(key, i), **opts)
        out[method] = (est, t["s"])
    return out


def _extra(est, wall) -> dict:
    d = est.diagnostics
    extra = dict(reliable=bool(est.reliable), reasons="; ".join(est.reasons))
    if est.method == "ais":
        extra.update(ess=float(d["ess"]), n_chains=int(d["n_chains"]), n_temperatures=int(d["n_temperatures"]))
    else:
        extra.update(n_runs=int(d["n_runs"]), n_particles=int(d["n_particles"]),
                     n_stages=float(np.mean(d["n_stages"])), sd_log_z_runs=float(d["sd_log_z_runs"]))
    return extra


def _rows(small: dict, large: dict, cfg: dict) -> list[dict]:
    rows = []
    ns, nl = cfg["n_small"], cfg["n_large"]
    exact = small["log_z_exact"]
    ll_exact = small["lp_star_test"].mean() - exact
    ll_sampling_se = small["lp_star_test"].std(ddof=1) / math.sqrt(small["lp_star_test"].size)
    rows.append(common.measurement_row(f"test log-likelihood per digit, RBM 64-{ns} (exact log Z)", "exact",
                                       ll_exact, stderr=ll_sampling_se, n_hidden=ns,
                                       log_z=exact, stderr_kind="test-set sampling"))
    for method, (est, wall) in small["estimates"].items():
        rows.append(common.check_row(f"log Z, RBM 64-{ns}", method, est.value, est.stderr, exact, wall_s=wall,
                                     n_hidden=ns, **_extra(est, wall)))
    for method, (est, wall) in small["estimates"].items():
        ll = small["lp_star_test"].mean() - est.value
        rows.append(common.check_row(f"test log-likelihood per digit, RBM 64-{ns} ({method} log Z)", method, ll,
                                     est.stderr, ll_exact, wall_s=wall, n_hidden=ns, reliable=bool(est.reliable)))
    (a, wa), (s, ws) = large["estimates"]["ais"], large["estimates"]["smc"]
    for est, wall in ((a, wa), (s, ws)):
        rows.append(common.measurement_row(f"log Z, RBM 64-{nl} (no exact value)", est.method, est.value,
                                           stderr=est.stderr, wall_s=wall, n_hidden=nl, **_extra(est, wall)))
    rows.append(common.check_row(f"log Z, RBM 64-{nl}: AIS − SMC agree within combined error", "ais − smc",
                                 a.value - s.value, math.hypot(a.stderr, s.stderr), 0.0, wall_s=wa + ws, n_hidden=nl,
                                 reliable=bool(a.reliable and s.reliable)))
    lp = large["lp_star_test"]
    for est, wall in ((a, wa), (s, ws)):
        rows.append(common.measurement_row(f"test log-likelihood per digit, RBM 64-{nl} ({est.method} log Z)",
                                           est.method, lp.mean() - est.value, stderr=est.stderr, wall_s=wall,
                                           n_hidden=nl, test_sampling_stderr=lp.std(ddof=1) / math.sqrt(lp.size),
                                           stderr_kind="from log Z", reliable=bool(est.reliable)))
    return rows


def _figure(small: dict, large: dict, rows: list[dict], cfg: dict):
    fig, (ax_ll, ax_z) = common.new_figure(1, 2, figsize=(12.0, 4.6))
    c = small["curve"]
    steps = np.maximum(c["step"], 0.5)
    ax_ll.errorbar(steps, c["ll_test"], yerr=c["ll_test_stderr"], fmt="o-", ms=3, capsize=2, color="tab:orange",
                   label=f"64-{cfg['n_small']}, test (exact log Z)")
    ax_ll.plot(steps, c["ll_train"], "s--", ms=3, color="tab:green", label=f"64-{cfg['n_small']}, train (exact)")
    last = steps[-1]
    for k, (method, color, dx) in enumerate((("ais", "tab:blue", 1.05), ("smc", "tab:purple", 1.12))):
        est = large["estimates"][method][0]
        ax_ll.errorbar([last * dx], [large["lp_star_test"].mean() - est.value], yerr=[est.stderr], fmt="D", ms=5,
                       capsize=3, color=color, label=f"64-{cfg['n_large']}, test ({method.upper()} log Z ± σ)")
    ax_ll.set_xscale("log")
    ax_ll.set_xlabel("PCD update (0 plotted at 0.5)")
    ax_ll.set_ylabel("log-likelihood per digit (nats)")
    ax_ll.set_title("binarised 8×8 digits: training curve")
    ax_ll.legend(fontsize=7)
    checks = [r for r in rows if r.get("pass") is not None]
    common.z_panel(ax_z, checks, [f"{r['quantity']} [{r['method']}]" for r in checks],
                   title="log Z: AIS/SMC vs exact (small), AIS vs SMC (large)")
    return fig


def run(out_dir: Path, *, full: bool = False, seed: int = 0, size: str | None = None,
        progress: Callable[[str, float], None] | None = None) -> dict:
    """Train both RBMs, estimate log Z, compare; write table, netCDF data and figure.

    Args:
        out_dir: output folder.
        full: paper size (20 and 500 hidden units, long training, many AIS temperatures; meant for a GPU).
        seed: base seed (data split ``seed``; small RBM ``fold_in(key(seed), 0)``, large ``fold_in(key, 1)``, log Z
            estimates ``fold_in(key, 2)`` and ``fold_in(key, 3)``).
        size: ``"tiny"`` | ``"quick"`` | ``"full"``; overrides ``full``.
        progress: optional ``progress(description, fraction_done)``.
    Returns:
        the protocol's result dict (see ``engine.registry``).
    """
    size, cfg = common.resolve_size(size, full, _SIZES, default="quick")
    from thermodl.engine.api import log_partition

    key = jax.random.key(seed)
    train, test = load_binary_digits(seed, cfg["n_train"])
    prog = (lambda lab, lo, hi: (lambda d, f: progress(d, lo + (hi - lo) * f))) if progress else \
        (lambda lab, lo, hi: None)
    small = train_rbm(jax.random.fold_in(key, 0), train, test, cfg["n_small"], cfg, exact_curve=True,
                      progress=prog("small", 0.0, 0.3), label=f"RBM 64-{cfg['n_small']}")
    large = train_rbm(jax.random.fold_in(key, 1), train, test, cfg["n_large"], cfg, exact_curve=False,
                      progress=prog("large", 0.3, 0.6), label=f"RBM 64-{cfg['n_large']}")
    with jax.enable_x64(True):
        small["log_z_exact"] = float(log_partition(rbm_rg._rbm(jax.tree.map(jnp.asarray, small["params"])), 1.0,
                                                   method="exact").value)
    if progress:
        progress("log Z estimates", 0.6)
    small["estimates"] = estimate_log_z(small["params"], cfg, jax.random.fold_in(key, 2))
    large["estimates"] = estimate_log_z(large["params"], cfg, jax.random.fold_in(key, 3))
    for m in (small, large):
        m["lp_star_test"] = log_p_star(m["params"], test)
        m["lp_star_train"] = log_p_star(m["params"], train)
    rows = _rows(small, large, cfg)
    if progress:
        progress("done", 1.0)

    est_names = ["ais", "smc"]
    data = xr.Dataset(
        {
            "ll_test_small": ("checkpoint", small["curve"]["ll_test"]),
            "ll_test_small_stderr": ("checkpoint", small["curve"]["ll_test_stderr"]),
            "ll_train_small": ("checkpoint", small["curve"]["ll_train"]),
            "log_z_small_exact_curve": ("checkpoint", small["curve"]["log_z"]),
            "log_z_small": ("estimator", [small["estimates"][m][0].value for m in est_names]),
            "log_z_small_stderr": ("estimator", [small["estimates"][m][0].stderr for m in est_names]),
            "log_z_large": ("estimator", [large["estimates"][m][0].value for m in est_names]),
            "log_z_large_stderr": ("estimator", [large["estimates"][m][0].stderr for m in est_names]),
            "log_p_star_test_small": ("test_digit", small["lp_star_test"]),
            "log_p_star_test_large": ("test_digit", large["lp_star_test"]),
            "W_small": (("visible", "hidden_small"), small["params"]["W"]),
            "W_large": (("visible", "hidden_large"), large["params"]["W"]),
        },
        coords={"checkpoint": np.asarray(small["curve"]["step"], np.int64), "estimator": est_names},
        attrs=dict(size=size, seed=seed, n_small=cfg["n_small"], n_large=cfg["n_large"], units="spin (v = 2 pixel - 1)",
                   threshold=THRESHOLD, n_train=int(train.shape[0]), n_test=int(test.shape[0]),
                   log_z_small_exact=small["log_z_exact"], lr=cfg["lr"], batch=cfg["batch"], n_pcd=cfg["n_pcd"],
                   pcd_updates=int(cfg["steps"][-1]), train_s_small=small["train_s"], train_s_large=large["train_s"],
                   jax=jax.__version__, device=str(jax.devices()[0].platform)),
    )
    return common.finish(out_dir, rows, figure=_figure(small, large, rows, cfg), data=data)
