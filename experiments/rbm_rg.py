"""An RBM trained on critical 2D Ising configurations: receptive fields and log Z during training
(``thermodl reproduce rbm-rg``).

P. Mehta and D. J. Schwab, "An exact mapping between the variational renormalization group and deep learning",
arXiv:1410.3831 (2014): RBMs trained on samples of the 2D Ising model near criticality learn *localised* receptive
fields — hidden units that look at a block of neighbouring spins, like Kadanoff block spins.

Steps, all through thermodl:

1. Data: configurations of the L×L Ising torus at β_c = ½ ln(1 + √2), sampled by the engine
   (``engine.ensemble.run_ensemble`` with the checkerboard ``block_gibbs`` kernel, many independent chains, thinned
   traces), split by chain into training and held-out sets; the training set is augmented with its global spin
   flip (an exact symmetry of the Ising measure). Check: the sampled energy per spin vs the exact value from
   Kaufman's partition function (−∂ log Z/∂β, ``models.Ising2D.exact_log_partition``), |z| < 3.
2. Training: an RBM with spin (±1) units, n_v = L² visible and n_h hidden, trained by persistent contrastive
   divergence (T. Tieleman, ICML 2008): gradient of the mean visible free energy on a minibatch minus that on
   persistent fantasy chains advanced by block Gibbs sweeps (``kernels.block_gibbs`` through
   ``engine.kernel_binding.make_sampler`` on ``models.RBM``), an L1 penalty on W (as Mehta & Schwab, to expose
   locality), optax Adam with a cosine-decaying learning rate.
3. log Z at checkpoints during training: annealed importance sampling by the engine
   (``engine.api.log_partition(method="ais")``, Neal 2001) on ``models.RBM`` with the current weights, vs the exact
   log Z (``RBM.exact_log_partition``: the visible layer summed out, the 2^{n_h} hidden states enumerated),
   |z| < 3 at every checkpoint.
4. The exact mean log-likelihood of the training and held-out data at each checkpoint; checks: the final one
   exceeds the initial one by more than 3 standard errors (pass: z > 3, z = gain / stderr over samples), and the
   held-out one does not exceed −S/N of the Ising model itself (Gibbs' inequality; pass: z < 3).

Receptive fields: the weights W[:, j] of each hidden unit reshaped to L×L. Their locality is reported as the
fraction of Σ_i W_ij² inside the best periodic b×b window, b = L/√n_h (the block of a block-spin transformation
with n_h blocks; 1/n_h for a field spread uniformly over the lattice); a measurement, not a pass/fail check.

Outputs: ``results.png`` (receptive fields; AIS vs exact log Z vs training step; log-likelihood per spin),
``results.nc``, ``results.md`` / ``results.csv``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from thermodl.experiments import common

NAME = "rbm-rg"
DESCRIPTION = ("RBM trained by PCD on critical 2D Ising samples (Mehta & Schwab 2014): receptive fields, and log Z "
               "during training by AIS vs exact")

BETA_C = 0.5 * math.log1p(math.sqrt(2.0))

_SIZES = {
    "tiny": dict(L=4, n_hidden=4, n_chains=64, n_sample_steps=60, trace_every=20, checkpoints=(0, 100), batch=32,
                 n_pcd=64, lr=0.003, l1=5e-3, ais_chains=64, ais_temperatures=100),
    "small": dict(L=8, n_hidden=16, n_chains=512, n_sample_steps=400, trace_every=50,
                  checkpoints=(0, 100, 300, 1000, 2000, 4000), batch=64, n_pcd=256, lr=0.003, l1=5e-3,
                  ais_chains=512, ais_temperatures=3000),
    "full": dict(L=16, n_hidden=16, n_chains=2048, n_sample_steps=4000, trace_every=200,
                 checkpoints=(0, 300, 1000, 3000, 10000, 30000), batch=256, n_pcd=1024, lr=0.003, l1=5e-3,
                 ais_chains=2048, ais_temperatures=10000),
}
SIZES = tuple(_SIZES)


# ------------------------------------------------------------------------------------------------------ data
def sample_ising(key, L: int, *, n_chains: int, n_steps: int, trace_every: int) -> dict:
    """Critical Ising configurations by the engine: ``n_chains`` block-Gibbs chains, warmup ``n_steps`` sweeps,
    then ``n_steps`` sweeps recorded every ``trace_every``.

    Returns:
        dict: ``spins`` float32 [chains, draws, L²]; ``energy``/``energy_stderr`` (per spin, from the chain means);
        ``energy_exact`` (Kaufman, per spin); ``neg_entropy`` = −S/L² = ⟨log p_Ising⟩/L², the largest mean
        log-likelihood per spin any model can reach on these data (Gibbs' inequality); ``rhat``; ``wall_s``.
    """
    from thermodl.engine.ensemble import run_ensemble
    from thermodl.models import Ising2D

    model = Ising2D(L)
    with common.stopwatch() as t:
        res = run_ensemble(model, [BETA_C], key=key, n_chains=n_chains, n_steps=n_steps, n_warmup=n_steps,
                           kernel="block_gibbs", observables={"spins": lambda x: x}, trace_every=trace_every)
        u = res.mean_energy()
        spins = np.asarray(res.traces["spins"][0], np.float32)
    with jax.enable_x64(True):
        log_z, grad = jax.value_and_grad(lambda b: Ising2D(L).exact_log_partition(b))(jnp.float64(BETA_C))
        exact_u, log_z = -float(grad), float(log_z)
    n = L * L
    return dict(spins=spins, energy=float(u.mean[0]) / n, energy_stderr=float(u.stderr[0]) / n,
                energy_exact=exact_u / n, neg_entropy=(-BETA_C * exact_u - log_z) / n,
                rhat=float(res.rhat("energy")[0]), wall_s=t["s"], n_excluded=int(u.n_excluded[0]))


# -------------------------------------------------------------------------------------------------- training
def _rbm(params):
    from thermodl.models import RBM

    return RBM(params["W"], params["a"], params["b"], units="spin")


def _pcd_loss(params, v_data, v_model, l1):
    """mean F(v_data) − mean F(v_model) + l1 Σ|W|: its gradient is −∇(mean log-likelihood) + L1 term (PCD)."""
    rbm = _rbm(params)
    f_data = jnp.mean(rbm.free_energy_visible(v_data, 1.0))
    f_model = jnp.mean(rbm.free_energy_visible(jax.lax.stop_gradient(v_model), 1.0))
    return f_data - f_model + l1 * jnp.sum(jnp.abs(params["W"]))


@functools.partial(jax.jit, static_argnames=("batch", "optimizer"))
def _train_segment(params, opt_state, chains, key, t0, t1, data, l1, *, batch: int, optimizer):
    """PCD updates t0 ≤ t < t1 (traced bounds: one compilation for every segment); chains [n_pcd, n_v + n_h]
    persistent. Update t uses ``fold_in(key, t)``, so where the checkpoints fall does not change the trajectory."""
    from thermodl.engine.kernel_binding import make_sampler

    def update(t, carry):
        params, opt_state, chains = carry
        kt = jax.random.fold_in(key, t)
        k_batch, k_gibbs = jax.random.split(kt)
        idx = jax.random.randint(k_batch, (batch,), 0, data.shape[0])
        sampler = make_sampler(_rbm(params), "block_gibbs")
        ckeys = jax.vmap(lambda c: jax.random.fold_in(k_gibbs, c))(jnp.arange(chains.shape[0]))
        states, _ = jax.vmap(lambda k, x: sampler.step(k, sampler.init(x), 1.0))(ckeys, chains)
        chains = states.position
        n_v = data.shape[1]
        grads = jax.grad(_pcd_loss)(params, data[idx], chains[:, :n_v], l1)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, chains

    return jax.lax.fori_loop(t0, t1, update, (params, opt_state, chains))


def log_likelihood_per_sample(params, v, log_z: float) -> np.ndarray:
    """Exact log p(v) [n] of each row of v [n, n_v] under the spin RBM ``params`` (W, a, b), float64."""
    from thermodl.engine.exact import to_float64

    with jax.enable_x64(True):
        rbm64 = to_float64(_rbm(params))
        return np.asarray(rbm64.log_marginal_visible(jnp.asarray(v, jnp.float64), 1.0, log_partition=log_z))


def log_likelihood(params, v, log_z: float) -> tuple[float, float]:
    """Exact mean log p(v) over the rows of v [n, n_v] and its standard error."""
    lp = log_likelihood_per_sample(params, v, log_z)
    return float(lp.mean()), float(lp.std(ddof=1) / math.sqrt(lp.size))


def block_locality(W, L: int) -> np.ndarray:
    """Per hidden unit, the fraction of Σ_i W_ij² inside the best periodic b×b window, b = max(1, L/√n_h)
    (1/n_h-ish for a delocalised field, 1 for a field confined to one block). W [L², n_h] -> [n_h]."""
    W = np.asarray(W, np.float64)
    n_h = W.shape[1]
    b = max(1, int(round(L / math.sqrt(n_h))))
    w2 = (W**2).T.reshape(n_h, L, L)
    box = np.zeros_like(w2)
    for dr in range(b):
        for dc in range(b):
            box += np.roll(np.roll(w2, -dr, 1), -dc, 2)
    return box.reshape(n_h, -1).max(1) / w2.reshape(n_h, -1).sum(1)


def train_and_track(key, train, test, cfg: dict, progress=None) -> dict:
    """Train by PCD and, at every checkpoint, compute exact log Z, AIS log Z and the exact log-likelihoods."""
    from thermodl.engine.api import log_partition
    from thermodl.engine.exact import exact_log_partition_value

    n_v, n_h = train.shape[1], cfg["n_hidden"]
    k_init, k_chains, k_train, k_ais = (jax.random.fold_in(key, i) for i in range(4))
    params = {"W": 0.01 * jax.random.normal(k_init, (n_v, n_h)), "a": jnp.zeros(n_v), "b": jnp.zeros(n_h)}
    # cosine decay to 0 at the last checkpoint: PCD with a constant rate oscillates once W is large (the fantasy
    # chains mix slowly near criticality)
    optimizer = optax.adam(optax.cosine_decay_schedule(cfg["lr"], max(cfg["checkpoints"][-1], 1)))
    opt_state = optimizer.init(params)
    chains = jnp.where(jax.random.bernoulli(k_chains, 0.5, (cfg["n_pcd"], n_v + n_h)), 1.0, -1.0)
    data = jnp.asarray(train)
    out = {k: [] for k in ("step", "log_z_exact", "log_z_ais", "log_z_ais_stderr", "ais_ess", "ais_wall_s",
                           "ll_train", "ll_train_stderr", "ll_test", "ll_test_stderr", "locality")}
    fields, done = [], 0
    checkpoints = cfg["checkpoints"]
    for c, step in enumerate(checkpoints):
        if step > done:
            params, opt_state, chains = _train_segment(params, opt_state, chains, k_train, done, step, data,
                                                       cfg["l1"], batch=cfg["batch"], optimizer=optimizer)
            done = step
        if progress:
            progress(f"checkpoint {step}: log Z", 0.2 + 0.8 * c / len(checkpoints))
        rbm = _rbm(params)
        exact = exact_log_partition_value(rbm, 1.0)[0]
        with common.stopwatch() as t:
            est = log_partition(rbm, 1.0, method="ais", key=jax.random.fold_in(k_ais, c),
                                n_chains=cfg["ais_chains"], n_temperatures=cfg["ais_temperatures"])
        ll_tr = log_likelihood(params, train, exact)
        ll_te = log_likelihood(params, test, exact)
        for k, v in (("step", step), ("log_z_exact", exact), ("log_z_ais", est.value),
                     ("log_z_ais_stderr", est.stderr), ("ais_ess", est.diagnostics["ess"]), ("ais_wall_s", t["s"]),
                     ("ll_train", ll_tr[0]), ("ll_train_stderr", ll_tr[1]), ("ll_test", ll_te[0]),
                     ("ll_test_stderr", ll_te[1]),
                     ("locality", float(np.mean(block_locality(params["W"], int(math.isqrt(n_v))))))):
            out[k].append(v)
        fields.append(np.asarray(params["W"], np.float64))
    out = {k: np.asarray(v) for k, v in out.items()}
    out["W"] = np.stack(fields)  # [checkpoints, n_v, n_h]
    out["params"] = jax.tree.map(np.asarray, params)
    return out


def _ll_gain_row(name: str, ll0: np.ndarray, ll1: np.ndarray, wall: float, n_v: int) -> dict:
    """Row for 'the log-likelihood increased': per-sample gains, pass when mean gain > 3 stderr."""
    gain = ll1 - ll0
    mean, se = float(gain.mean()), float(gain.std(ddof=1) / math.sqrt(gain.size))
    return common.check_row(f"{name} log-likelihood gain per spin (final - initial), pass: z > 3", "exact log p(v)",
                            mean / n_v, se / n_v, 0.0, dof=gain.size - 1, side="exceeds", wall_s=wall)


def _mosaic(W: np.ndarray, L: int) -> np.ndarray:
    """Tile the n_h receptive fields W [L², n_h] into one image, each scaled to max |W| = 1, NaN separators."""
    n_h = W.shape[1]
    cols = int(math.ceil(math.sqrt(n_h)))
    rows = int(math.ceil(n_h / cols))
    img = np.full((rows * (L + 1) - 1, cols * (L + 1) - 1), np.nan)
    for j in range(n_h):
        r, c = divmod(j, cols)
        f = W[:, j].reshape(L, L)
        img[r * (L + 1): r * (L + 1) + L, c * (L + 1): c * (L + 1) + L] = f / max(np.abs(f).max(), 1e-12)
    return img


def _figure(track: dict, L: int, rows: list[dict]):
    fig, (ax_rf, ax_z, ax_ll) = common.new_figure(1, 3, figsize=(14.0, 4.4))
    im = ax_rf.imshow(_mosaic(track["W"][-1], L), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(im, ax=ax_rf, shrink=0.8, label="W / max|W| per unit")
    ax_rf.set_xticks([])
    ax_rf.set_yticks([])
    ax_rf.set_title(f"receptive fields of {track['W'].shape[2]} hidden units ({L}×{L} Ising, β_c), "
                    f"locality {track['locality'][-1]:.2f}", fontsize=8)
    steps = np.maximum(track["step"], 0.5)  # log axis: plot step 0 at 0.5
    diff = track["log_z_ais"] - track["log_z_exact"]
    se = track["log_z_ais_stderr"]
    ax_z.axhline(0.0, color="k", lw=1.0, label="exact (hidden states enumerated)")
    ax_z.fill_between(steps, -3 * se, 3 * se, color="0.9", label="±3σ (AIS stderr)")
    ok = np.array([r["pass"] for r in rows if r["method"] == "ais"], bool)
    ax_z.errorbar(steps[ok], diff[ok], yerr=se[ok], fmt="o", ms=4, capsize=2, color="tab:blue",
                  label="AIS (engine) ± σ")
    if (~ok).any():
        ax_z.errorbar(steps[~ok], diff[~ok], yerr=se[~ok], fmt="x", ms=6, color="tab:red", label="AIS, |z| ≥ 3")
    for s_, d, lz in zip(steps, diff, track["log_z_exact"]):
        ax_z.annotate(f"{lz:.1f}", (s_, d), textcoords="offset points", xytext=(0, 8), fontsize=6, ha="center")
    ax_z.set_xscale("log")
    ax_z.set_xlabel("PCD update (0 plotted at 0.5)")
    ax_z.set_ylabel("log Z (AIS) − log Z (exact)")
    ax_z.set_title("log Z during training (labels: exact log Z)")
    ax_z.legend(fontsize=7)
    n_v = L * L
    for k, lab, c in (("ll_train", "train", "tab:green"), ("ll_test", "held-out", "tab:orange")):
        ax_ll.errorbar(steps, track[k] / n_v, yerr=track[k + "_stderr"] / n_v, fmt="o-", ms=3, capsize=2, color=c,
                       label=lab)
    ax_ll.axhline(track["neg_entropy"], color="k", ls="--", lw=1, label="−S/N of the Ising model (bound)")
    ax_ll.set_xscale("log")
    ax_ll.set_xlabel("PCD update (0 plotted at 0.5)")
    ax_ll.set_ylabel("mean log p(v) per spin (exact)")
    ax_ll.set_title("data log-likelihood")
    ax_ll.legend(fontsize=7)
    return fig


def run(out_dir: Path, *, full: bool = False, seed: int = 0, size: str | None = None,
        progress: Callable[[str, float], None] | None = None) -> dict:
    """Sample critical Ising data, train the RBM, track log Z; write table, netCDF data and figure.

    Args:
        out_dir: output folder.
        full: paper size (``size="full"``: 16×16 lattice, longer training, more AIS chains; meant for a GPU).
        seed: base seed (Ising sampling ``fold_in(key(seed), 0)``, training ``fold_in(key, 1)``).
        size: ``"tiny"`` | ``"small"`` | ``"full"``; overrides ``full``.
        progress: optional ``progress(description, fraction_done)``.
    Returns:
        the protocol's result dict (see ``engine.registry``).
    """
    size, cfg = common.resolve_size(size, full, _SIZES, default="small")
    L, key = cfg["L"], jax.random.key(seed)
    if progress:
        progress(f"sampling {L}x{L} Ising configurations at beta_c", 0.0)
    ising = sample_ising(jax.random.fold_in(key, 0), L, n_chains=cfg["n_chains"], n_steps=cfg["n_sample_steps"],
                         trace_every=cfg["trace_every"])
    spins = ising["spins"]
    half = spins.shape[0] // 2  # split by chain: held-out configurations are independent of the training ones
    train = spins[:half].reshape(-1, L * L)
    train = np.concatenate([train, -train])  # global spin flip: an exact symmetry of the Ising measure
    test = spins[half:].reshape(-1, L * L)
    with common.stopwatch() as t_train:
        track = train_and_track(jax.random.fold_in(key, 1), train, test, cfg, progress)
    track["neg_entropy"] = ising["neg_entropy"]

    rows = [common.check_row(f"Ising {L}x{L} energy per spin at beta_c (training data)", "block_gibbs",
                             ising["energy"], ising["energy_stderr"], ising["energy_exact"],
                             wall_s=ising["wall_s"], rhat=ising["rhat"], n_samples=int(spins.shape[0] *
                                                                                          spins.shape[1]))]
    for i, step in enumerate(track["step"]):
        rows.append(common.check_row(f"log Z at PCD update {int(step)}", "ais", track["log_z_ais"][i],
                                     track["log_z_ais_stderr"][i], track["log_z_exact"][i],
                                     wall_s=track["ais_wall_s"][i], step=int(step), ess=float(track["ais_ess"][i]),
                                     locality=float(track["locality"][i])))
    n_v = L * L
    first = {"W": track["W"][0], "a": np.zeros(n_v), "b": np.zeros(cfg["n_hidden"])}
    for name, v in (("train", train), ("held-out", test)):
        ll0 = log_likelihood_per_sample(first, v, track["log_z_exact"][0])
        ll1 = log_likelihood_per_sample(track["params"], v, track["log_z_exact"][-1])
        rows.append(_ll_gain_row(name, ll0, ll1, t_train["s"], n_v))
    # Gibbs' inequality: no model's mean log-likelihood on Ising samples exceeds ⟨log p_Ising⟩ = −S (one-sided)
    bound = common.check_row("held-out log-likelihood per spin, final, <= -S/N of the Ising model (pass: z < 3)",
                             "exact log p(v)", track["ll_test"][-1] / n_v, track["ll_test_stderr"][-1] / n_v,
                             ising["neg_entropy"], side="at-most")
    rows.append(bound)
    rows.append(common.measurement_row("receptive-field locality (best block weight fraction), final", "W",
                                       float(track["locality"][-1]), uniform_value=1.0 / cfg["n_hidden"]))

    data = xr.Dataset(
        {k: ("checkpoint", np.asarray(track[k], np.float64)) for k in
         ("log_z_exact", "log_z_ais", "log_z_ais_stderr", "ais_ess", "ll_train", "ll_train_stderr", "ll_test",
          "ll_test_stderr", "locality")}
        | {"W": (("checkpoint", "visible", "hidden"), track["W"]),
           "a_final": ("visible", np.asarray(track["params"]["a"], np.float64)),
           "b_final": ("hidden", np.asarray(track["params"]["b"], np.float64))},
        coords={"checkpoint": np.asarray(track["step"], np.int64)},
        attrs=dict(size=size, seed=seed, L=L, n_hidden=cfg["n_hidden"], beta=BETA_C, units="spin",
                   ising_neg_entropy_per_spin=ising["neg_entropy"],
                   n_train=int(train.shape[0]), n_test=int(test.shape[0]), lr=cfg["lr"], l1=cfg["l1"],
                   batch=cfg["batch"], n_pcd=cfg["n_pcd"], ais_chains=cfg["ais_chains"],
                   ais_temperatures=cfg["ais_temperatures"], jax=jax.__version__,
                   device=str(jax.devices()[0].platform)),
    )
    return common.finish(out_dir, rows, figure=_figure(track, L, rows), data=data)
