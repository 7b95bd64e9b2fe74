"""Benchmark: wall time to reach a log Z accuracy, thermodl's estimators vs BlackJAX's adaptive tempered SMC.

For each (target, method) the budget grows on a geometric ladder (×2 per rung: more temperatures, particles or
steps); at each rung ``n_seeds`` independent estimates are made with fresh keys, each timed on its own (wall time
of one call to ``log_partition`` / one jitted BlackJAX run, ``block_until_ready`` included, compile excluded: one
warm-up call per shape first, its time minus the median reported as ``compile_s``). Per rung:

* RMSE = √mean (estimate − reference)² over the seeds (bias included);
* calibration = RMSE / mean reported stderr (1 for an honest error bar; a seed's stderr is what the estimator
  itself reports; BlackJAX's SMC reports none, so its calibration is NaN);
* the median wall time per estimate.

The time to reach RMSE ≤ 0.05 and ≤ 0.02 nats is interpolated log-linearly between the last rung above and the
first rung at or below the threshold (``≤`` when the first rung already meets it, NaN "not reached" when no rung
does). Ratio rows: time of the fastest BlackJAX variant / time of the fastest thermodl method, per continuous
target and threshold (the goal: ≥ 3).

Targets (reference log Z):

* ``blr<d>``: Bayesian linear regression, d inputs, 2d data points, prior N(0, 1), β = 1 (closed form,
  ``method="exact"``);
* ``mlp``: the weight ensemble of a flax NNX MLP (tanh), squared loss, Gaussian prior, β = 1 (no closed form:
  reference from a long AIS and a long SMC run that must agree within 3 combined standard errors; their
  inverse-variance mean is the reference);
* ``ising<L>``: 2D Ising L×L torus (Kaufman's exact finite-lattice log Z) at β_c (L = 4, 16) or β = 0.6 (L = 32);
* ``rbm20``: a spin RBM with 64 visible and 20 hidden units trained briefly by PCD on binarised sklearn digits
  (``experiments.rbm_digits``), exact by summing out the visible layer and enumerating the hidden one.

Methods: thermodl ``ais`` (budget: temperatures), ``smc`` (particles per run, 8 runs), ``ti`` and ``pt`` (steps
per chain), and ``auto`` (what ``engine.api.resolve_method`` picks: exact where a reference exists — then it is not
benchmarked — else AIS, whose numbers it shares); BlackJAX ``adaptive_tempered_smc`` (target ESS 0.5, systematic
resampling) with HMC (fixed step size a fraction of the narrowest posterior scale where it is known, L = 5) and
with Gaussian random-walk Metropolis inner kernels (budget: particles), continuous targets only; TFP's AIS when
``tensorflow_probability`` imports (it is not a dependency; skipped otherwise and said so in the table).

Run: ``python -m thermodl.experiments.bench_logz [--size tiny|quick|full] [--out DIR]`` or ``thermodl reproduce
bench-logz``. ``full`` is meant for a GPU.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from thermodl.experiments import common

NAME = "bench-logz"
DESCRIPTION = ("Time to reach log Z RMSE <= 0.05 and 0.02 nats (compile excluded) and error-bar calibration: thermodl "
               "AIS/SMC/TI/PT vs BlackJAX adaptive tempered SMC (HMC, RWM)")

THRESHOLDS = (0.05, 0.02)
BETA_C = 0.5 * math.log1p(math.sqrt(2.0))

CONFIGS = {
    "tiny": dict(targets=("blr5", "ising4"), methods=("auto", "ais", "smc", "blackjax_hmc"),
                 n_rungs=2, n_seeds=4),
    "quick": dict(targets=("blr30", "rbm20"),
                  methods=("auto", "ais", "smc", "ti", "pt", "blackjax_hmc", "blackjax_rwm", "tfp_ais"),
                  n_rungs=3, n_seeds=16),
    "full": dict(targets=("blr30", "blr100", "mlp", "ising16", "ising32", "rbm20"),
                 methods=("auto", "ais", "smc", "ti", "pt", "blackjax_hmc", "blackjax_rwm", "tfp_ais"),
                 n_rungs=7, n_seeds=32),
}

# budget of rung r (0-based) = base · 2^r, applied to the named option; the other options are fixed
BUDGETS = {
    "ais": ("n_temperatures", 50, dict(n_chains=64)),
    "smc": ("n_particles", 16, dict(n_runs=8)),
    "ti": ("n_steps", 100, dict(n_chains=16, n_betas=16)),
    "pt": ("n_steps", 100, dict(n_chains=8)),
    "blackjax_hmc": ("n_particles", 128, dict(num_mcmc_steps=4, num_integration_steps=5)),
    "blackjax_rwm": ("n_particles", 128, dict(num_mcmc_steps=10)),
    "tfp_ais": ("n_temperatures", 50, dict(n_chains=64, num_leapfrog_steps=5)),
}
BLACKJAX = ("blackjax_hmc", "blackjax_rwm")


# ----------------------------------------------------------------------------------------------------- targets
def _blr(d: int, seed: int):
    from thermodl.models.linear import BayesianLinear

    kx, kw, kn = jax.random.split(jax.random.fold_in(jax.random.key(seed), d), 3)
    n = 2 * d
    X = jax.random.normal(kx, (n, d)) / math.sqrt(d)
    y = X @ jax.random.normal(kw, (d,)) + 0.3 * jax.random.normal(kn, (n,))
    model = BayesianLinear(X, y, sigma_w=1.0)
    precision = np.asarray(X, np.float64).T @ np.asarray(X, np.float64) + np.eye(d)
    scale = float(1.0 / math.sqrt(np.linalg.eigvalsh(precision).max()))  # narrowest posterior direction
    return model, 1.0, scale


def _mlp(seed: int):
    from flax import nnx

    from thermodl.models.priors import gaussian
    from thermodl.models.topologies import MLP
    from thermodl.models.weights import weight_ensemble

    k_data, k_noise = jax.random.split(jax.random.key(seed + 17))
    student = MLP(4, [8], 1, activation="tanh", rngs=nnx.Rngs(seed))
    teacher = MLP(4, [8], 1, activation="tanh", rngs=nnx.Rngs(seed + 1))
    X = jax.random.normal(k_data, (32, 4))
    y = teacher(X)[:, 0] + 0.3 * jax.random.normal(k_noise, (32,))
    return weight_ensemble(student, X, y, loss="squared", prior=gaussian(1.0)), 1.0, 0.05


def _rbm20(seed: int):
    from thermodl.experiments import rbm_digits, rbm_rg

    cfg = dict(rbm_digits._SIZES["quick"], steps=(0, 300))
    train, test = rbm_digits.load_binary_digits(seed)
    params = rbm_digits.train_rbm(jax.random.key(seed + 5), train, test, 20, cfg, exact_curve=False)["params"]
    return rbm_rg._rbm(jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)), 1.0, None


def make_target(name: str, seed: int = 0) -> dict:
    """{"model", "beta", "reference", "reference_stderr", "source", "continuous", "scale"} of a target name."""
    from thermodl.engine.api import log_partition
    from thermodl.models import Ising2D

    if name.startswith("blr"):
        model, beta, scale = _blr(int(name[3:]), seed)
    elif name == "mlp":
        model, beta, scale = _mlp(seed)
    elif name.startswith("ising"):
        L = int(name[5:])
        model, beta, scale = Ising2D(L), (0.6 if L >= 32 else BETA_C), None
    elif name == "rbm20":
        model, beta, scale = _rbm20(seed)
    else:
        raise ValueError(f"unknown target {name!r}")
    out = dict(model=model, beta=beta, scale=scale, continuous=model.kind == "continuous")
    if name == "mlp":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            a = log_partition(model, beta, method="ais", key=jax.random.key(10_001), n_chains=1024,
                              n_temperatures=4000)
            s = log_partition(model, beta, method="smc", key=jax.random.key(10_002), n_particles=2048, n_runs=16)
        w = np.array([a.stderr, s.stderr], float) ** -2.0
        out.update(reference=float((w * [a.value, s.value]).sum() / w.sum()),
                   reference_stderr=float(w.sum() ** -0.5), source="long AIS and SMC (inverse-variance mean)",
                   reference_agreement_z=(a.value - s.value) / math.hypot(a.stderr, s.stderr))
    else:
        with jax.enable_x64(True):
            out.update(reference=float(log_partition(model, beta, method="exact").value), reference_stderr=0.0,
                       source="exact")
    return out


# ----------------------------------------------------------------------------------------------------- runners
def thermodl_runner(target: dict, method: str, budget: int):
    """``run(key) -> (value, stderr, reliable)``: one ``log_partition`` call."""
    from thermodl.engine.api import log_partition

    option, _, fixed = BUDGETS[method]
    opts = dict(fixed, **{option: budget})

    def run(key):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            est = log_partition(target["model"], target["beta"], method=method, key=key, **opts)
        return est.value, est.stderr, bool(est.reliable)

    return run


def blackjax_runner(target: dict, method: str, budget: int):
    """``run(key) -> (value, nan, True)``: one jitted ``blackjax.adaptive_tempered_smc`` run to λ = 1 (a
    ``while_loop`` over stages) on prior(w)·exp(−λ β E(w)); log Z = log Z(0) + Σ_stages log-likelihood increment."""
    import blackjax
    from blackjax.smc import extend_params, resampling
    from blackjax.mcmc import random_walk

    _, _, fixed = BUDGETS[method]
    model, beta, n = target["model"], target["beta"], budget
    dim = int(model.dim)
    scale = target["scale"] or 0.05
    if method == "blackjax_hmc":
        step_fn, init_fn = blackjax.hmc.build_kernel(), blackjax.hmc.init
        params = extend_params(dict(step_size=0.5 * scale, inverse_mass_matrix=jnp.ones(dim),
                                    num_integration_steps=fixed["num_integration_steps"]))
    else:
        additive = random_walk.build_additive_step()

        def step_fn(key, state, logdensity_fn, sigma):
            return additive(key, state, logdensity_fn, random_walk.normal(sigma))

        init_fn = random_walk.init
        params = extend_params(dict(sigma=(2.38 / math.sqrt(dim)) * scale * jnp.ones(dim)))
    smc = blackjax.adaptive_tempered_smc(model.log_prior, lambda w: -beta * model.energy(w), step_fn, init_fn,
                                         params, resampling.systematic, 0.5,
                                         num_mcmc_steps=fixed["num_mcmc_steps"])
    log_z0 = float(model.log_reference_partition())

    @jax.jit
    def one(key):
        k_init, k_run = jax.random.split(key)
        state = smc.init(jax.vmap(model.sample_reference)(jax.random.split(k_init, n)))

        def cond(c):
            return (c[0].tempering_param < 1.0) & (c[2] < 1000)

        def body(c):
            state, log_z, i = c
            state, info = smc.step(jax.random.fold_in(k_run, i), state)
            return state, log_z + info.log_likelihood_increment, i + 1

        _, log_z, _ = jax.lax.while_loop(cond, body, (state, jnp.zeros(()), 0))
        return log_z

    def run(key):
        return float(jax.block_until_ready(one(key))) + log_z0, math.nan, True

    return run


def tfp_runner(target: dict, method: str, budget: int):
    """TFP's ``mcmc.sample_annealed_importance_chain`` with HMC; ``None`` when TFP does not import."""
    try:
        from tensorflow_probability.substrates import jax as tfp
    except Exception:  # noqa: BLE001 — not a dependency; any import failure means "skip"
        return None
    _, _, fixed = BUDGETS[method]
    model, beta = target["model"], target["beta"]
    n, step = fixed["n_chains"], 0.5 * (target["scale"] or 0.05)

    @jax.jit
    def one(key):
        k0, k1 = jax.random.split(key)
        x0 = jax.vmap(model.sample_reference)(jax.random.split(k0, n))
        _, _, log_w, _ = tfp.mcmc.sample_annealed_importance_chain(
            num_steps=budget, proposal_log_prob_fn=jax.vmap(model.log_prior),
            target_log_prob_fn=jax.vmap(lambda w: model.log_prior(w) - beta * model.energy(w)), current_state=x0,
            make_kernel_fn=lambda fn: tfp.mcmc.HamiltonianMonteCarlo(fn, step_size=step,
                                                                   num_leapfrog_steps=fixed["num_leapfrog_steps"]),
            seed=k1)
        return log_w

    def run(key):
        from thermodl.engine.annealing import log_weights_estimate

        v, se, _, _ = log_weights_estimate(np.asarray(jax.block_until_ready(one(key)), np.float64))
        return v + float(model.log_reference_partition()), se, True

    return run


def _runner(target, method, budget):
    if method in BLACKJAX:
        return blackjax_runner(target, method, budget)
    if method == "tfp_ais":
        return tfp_runner(target, method, budget)
    return thermodl_runner(target, method, budget)


# ------------------------------------------------------------------------------------------------- measurement
def measure_rung(target: dict, method: str, budget: int, n_seeds: int, seed: int) -> dict | None:
    """``n_seeds`` timed estimates at one budget after one warm-up call; ``None`` when the method is unavailable."""
    run = _runner(target, method, budget)
    if run is None:
        return None
    base = jax.random.fold_in(jax.random.key(seed), budget)
    t0 = time.perf_counter()
    run(jax.random.fold_in(base, 1_000_000))  # warm-up: compile
    first = time.perf_counter() - t0
    vals, ses, rel, times = [], [], [], []
    for s in range(n_seeds):
        t0 = time.perf_counter()
        v, se, ok = run(jax.random.fold_in(base, s))
        times.append(time.perf_counter() - t0)
        vals.append(v), ses.append(se), rel.append(ok)
    vals, ses = np.asarray(vals, float), np.asarray(ses, float)
    err = vals - target["reference"]
    rmse = float(np.sqrt(np.mean(err**2)))
    return dict(budget=budget, rmse=rmse, bias=float(err.mean()), median_s=float(np.median(times)),
                compile_s=max(first - float(np.median(times)), 0.0), mean_stderr=float(np.mean(ses)),
                calibration=rmse / float(np.mean(ses)) if np.all(np.isfinite(ses)) and np.mean(ses) > 0 else math.nan,
                reliable_fraction=float(np.mean(rel)), errors=err, stderrs=ses, times=np.asarray(times))


def time_to_threshold(times, rmse, threshold: float) -> tuple[float, str]:
    """Wall time at which RMSE first reaches ``threshold`` along the ladder: log-log interpolation between the last
    rung above and the first at or below it. Returns ``(time, qualifier)``: ``""``, ``"<="`` (the cheapest rung
    already meets it: an upper bound) or ``"not reached"`` (time NaN)."""
    times, rmse = np.asarray(times, float), np.asarray(rmse, float)
    hit = np.flatnonzero(rmse <= threshold)
    if hit.size == 0:
        return math.nan, "not reached"
    i = int(hit[0])
    if i == 0:
        return float(times[0]), "<="
    lt, lr = np.log(times[i - 1:i + 1]), np.log(rmse[i - 1:i + 1])
    if lr[0] == lr[1]:
        return float(times[i]), ""
    f = (math.log(threshold) - lr[0]) / (lr[1] - lr[0])
    return float(math.exp(lt[0] + f * (lt[1] - lt[0]))), ""


def _figure(results: dict, targets: dict):
    names = list(targets)
    fig, axes = common.new_figure(1, len(names), figsize=(4.6 * len(names), 4.2))
    axes = np.atleast_1d(axes)
    for ax, tname in zip(axes, names):
        for method, rungs in results.get(tname, {}).items():
            t = [r["median_s"] for r in rungs]
            e = [max(r["rmse"], 1e-6) for r in rungs]
            ax.plot(t, e, "o-" if method not in BLACKJAX else "s--", ms=3, label=method)
        for thr in THRESHOLDS:
            ax.axhline(thr, color="0.6", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("median wall time per estimate (s, compile excluded)")
        ax.set_ylabel("RMSE of log Z (nats)")
        ax.set_title(f"{tname} ({targets[tname]['source']})", fontsize=8)
        ax.legend(fontsize=6)
    return fig


def run(out_dir: Path, *, full: bool = False, seed: int = 0, size: str | None = None, progress=None) -> dict:
    """Run the benchmark; writes ``results.{md,csv,nc,png}`` and ``bench_logz.json`` into ``out_dir``."""
    from thermodl.engine.api import resolve_method

    size, cfg = common.resolve_size(size, full, CONFIGS, default="quick")
    try:
        import blackjax  # noqa: F401
        have_blackjax = True
    except ImportError:
        have_blackjax = False
    targets = {name: make_target(name, seed) for name in cfg["targets"]}
    rows, results, work = [], {}, []
    for tname, target in targets.items():
        for method in cfg["methods"]:
            if method in BLACKJAX + ("tfp_ais",) and not target["continuous"]:
                continue
            if method in BLACKJAX and not have_blackjax:
                rows.append(common.measurement_row(f"{tname}: skipped", method, math.nan, note="blackjax not installed"))
                continue
            work.append((tname, method))
    for k, (tname, method) in enumerate(work):
        target = targets[tname]
        if progress:
            progress(f"bench-logz: {tname} {method}", k / len(work))
        if method == "auto":
            resolved = resolve_method(target["model"], "auto")
            rows.append(common.measurement_row(f"{tname}: auto resolves to", resolved, math.nan,
                                               note="exact: no estimate to benchmark" if resolved == "exact" else
                                               f"auto = {resolved}: same runs as {resolved}"))
            continue
        option, base, _ = BUDGETS[method]
        rungs = []
        for r in range(cfg["n_rungs"]):
            rung = measure_rung(target, method, base * 2**r, cfg["n_seeds"], seed)
            if rung is None:
                break
            rungs.append(rung)
        if not rungs:
            rows.append(common.measurement_row(f"{tname}: skipped", method, math.nan,
                                               note="tensorflow_probability not installed"))
            continue
        results.setdefault(tname, {})[method] = rungs
        t = [r["median_s"] for r in rungs]
        e = [r["rmse"] for r in rungs]
        for thr in THRESHOLDS:
            tt, q = time_to_threshold(t, e, thr)
            rows.append(common.measurement_row(f"{tname}: time to RMSE <= {thr} nats (s)", method, tt,
                                               qualifier=q, budget_option=option))
        last = rungs[-1]
        rows.append(common.measurement_row(f"{tname}: calibration RMSE / mean stderr, largest budget", method,
                                           last["calibration"], wall_s=last["median_s"], rmse=last["rmse"],
                                           bias=last["bias"], mean_stderr=last["mean_stderr"],
                                           budget=last["budget"], budget_option=option,
                                           compile_s=last["compile_s"], reliable_fraction=last["reliable_fraction"],
                                           calibrated=bool(0.7 <= last["calibration"] <= 1.4)
                                           if math.isfinite(last["calibration"]) else None))
    # ratios: fastest BlackJAX variant / fastest thermodl method, per continuous target and threshold
    for tname, by_method in results.items():
        if not targets[tname]["continuous"]:
            continue
        for thr in THRESHOLDS:
            tt = {m: time_to_threshold([r["median_s"] for r in v], [r["rmse"] for r in v], thr)[0]
                  for m, v in by_method.items()}
            ours = {m: x for m, x in tt.items() if m in BUDGETS and m not in BLACKJAX and m != "tfp_ais"}
            theirs = {m: x for m, x in tt.items() if m in BLACKJAX}
            if not theirs:
                continue
            best_ours = min(ours, key=lambda m: tt[m] if math.isfinite(tt[m]) else math.inf)
            best_theirs = min(theirs, key=lambda m: tt[m] if math.isfinite(tt[m]) else math.inf)
            ratio, qualifier = math.nan, "thermodl did not reach it"
            if math.isfinite(tt[best_ours]) and math.isfinite(tt[best_theirs]):
                ratio, qualifier = tt[best_theirs] / tt[best_ours], ""
            elif math.isfinite(tt[best_ours]):
                # BlackJAX never got there: its time exceeds its dearest rung, so the ratio exceeds this bound
                slowest = max(by_method[m][-1]["median_s"] for m in theirs)
                ratio, qualifier = slowest / tt[best_ours], ">= (blackjax did not reach it on its ladder)"
            rows.append(common.measurement_row(f"{tname}: speed-up to RMSE <= {thr} (blackjax / thermodl)", "ratio",
                                               ratio, qualifier=qualifier, thermodl=best_ours, blackjax=best_theirs,
                                               goal=">= 3"))
    if progress:
        progress("bench-logz: done", 1.0)

    # data: one record per (target, method, rung)
    recs = [(t, m, r) for t, bm in results.items() for m, rs in bm.items() for r in rs]
    seeds = np.arange(cfg["n_seeds"])
    ds = xr.Dataset(
        {
            "target": ("run", [t for t, _, _ in recs]),
            "method": ("run", [m for _, m, _ in recs]),
            **{k: ("run", np.array([r[k] for _, _, r in recs], float))
               for k in ("budget", "rmse", "bias", "median_s", "compile_s", "mean_stderr", "calibration",
                         "reliable_fraction")},
            "error": (("run", "seed"), np.array([r["errors"] for _, _, r in recs], float).reshape(len(recs), -1)),
            "stderr": (("run", "seed"), np.array([r["stderrs"] for _, _, r in recs], float).reshape(len(recs), -1)),
            "time_s": (("run", "seed"), np.array([r["times"] for _, _, r in recs], float).reshape(len(recs), -1)),
            "reference": ("target_name", [targets[t]["reference"] for t in targets]),
        },
        coords={"run": np.arange(len(recs)), "seed": seeds, "target_name": list(targets)},
        attrs={"size": size, "seed": seed, "n_seeds": cfg["n_seeds"], "n_rungs": cfg["n_rungs"],
               **common.environment("blackjax")},
    )
    summary = {"size": size, "config": cfg, "environment": common.environment("blackjax"),
               "references": {t: {k: v for k, v in d.items() if k not in ("model",)} for t, d in targets.items()},
               "rows": rows}
    json_path = common.write_json(summary, Path(out_dir) / "bench_logz.json")
    return common.finish(out_dir, rows, figure=_figure(results, targets), data=ds, json=str(json_path))


def main(argv=None) -> None:
    """``python -m thermodl.experiments.bench_logz``: run, print the table, write JSON and the usual outputs."""
    common.bench_main(run, name=NAME, description=DESCRIPTION, sizes=CONFIGS, argv=argv, default_size="quick")


if __name__ == "__main__":
    main()
