"""Bind a kernel to a model: the per-chain ``init`` / ``step`` pair every engine loop uses.

    class Sampler(NamedTuple):
        name: str                      # kernel name, e.g. "hmc", "block_gibbs"
        init: Callable                 # (x [dim]) -> kernel State   (one chain)
        step: Callable                 # (key, state, beta [], step_size []) -> (State, Info)
                                       #   one "step" = one kernel step (continuous) or one sweep over all
                                       #   sites (discrete kernels); step_size is ignored by discrete kernels
        default_step_size: float
        target_acceptance: float|None  # for step-size adaptation; None = nothing to adapt

    def make_sampler(model, kernel: str = "auto", **options) -> Sampler

``kernel="auto"`` picks: discrete model with ``block_masks`` -> "block_gibbs"; other discrete -> "heat_bath";
continuous on the sphere -> "sphere"; continuous, differentiable -> "hmc"; otherwise "rwm".
Unknown names raise ``ValueError`` listing the valid ones.

``make_sampler`` is cheap and pure: the engine calls it *inside* its jitted functions with the traced model, so the
model's arrays (couplings, data) are traced arguments and a new disorder sample never recompiles.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "Sampler",
    "make_sampler",
    "resolve_kernel",
    "DISCRETE_KERNELS",
    "CONTINUOUS_KERNELS",
    "KERNELS",
]

DISCRETE_KERNELS = ("flip_metropolis", "heat_bath", "block_gibbs")
CONTINUOUS_KERNELS = ("rwm", "mala", "hmc", "langevin", "sgld", "sphere")
KERNELS = ("auto",) + DISCRETE_KERNELS + CONTINUOUS_KERNELS

# Default (pre-adaptation) step sizes and the acceptance rates the adaptation aims at. Unadjusted kernels
# (langevin, sgld) have no acceptance to aim at: their step size is the user's bias/variance trade-off.
_DEFAULT_STEP = {
    "rwm": 0.1,
    "mala": 0.05,
    "hmc": 0.05,
    "langevin": 1e-3,
    "sgld": 1e-4,
    "sphere": 0.1,
}
_TARGET = {"rwm": 0.3, "sphere": 0.3, "mala": 0.57, "hmc": 0.8}

# Options each kernel accepts (anything else is a ValueError, so typos do not pass silently).
_OPTIONS = {
    "hmc": {"num_integration_steps", "inverse_mass", "step_size_jitter"},
    "sgld": {"batch_size"},
}


class Sampler(NamedTuple):
    """A kernel bound to a model, for one chain.

    Fields:
        name: kernel name, e.g. ``"hmc"`` or ``"block_gibbs"``.
        init: ``(x [dim]) -> State`` — the kernel state at position ``x``.
        step: ``(key, state, beta [], step_size []) -> (State, Info)`` — one kernel step (continuous kernels) or
            one sweep over all sites (discrete kernels); ``step_size`` is ignored by discrete kernels.
        default_step_size: the step size to start from (before adaptation).
        target_acceptance: the mean acceptance probability step-size adaptation aims at; ``None`` when there is
            nothing to adapt (discrete and unadjusted kernels).
    """

    name: str
    init: Callable
    step: Callable
    default_step_size: float
    target_acceptance: float | None


def _kernel_module(name: str):
    return importlib.import_module(f"thermodl.kernels.{name}")


def resolve_kernel(model: Any, kernel: str = "auto") -> str:
    """The concrete kernel name ``make_sampler(model, kernel)`` would use.

    Raises:
        ValueError: unknown kernel name, or a kernel that does not fit the model's kind.
    """
    if not isinstance(kernel, str) or kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of: {', '.join(KERNELS)}")
    kind = getattr(model, "kind", None)
    if kind not in ("discrete", "continuous"):
        raise ValueError(f"model kind must be 'discrete' or 'continuous', got {kind!r}")
    if kernel == "auto":
        if kind == "discrete":
            return "block_gibbs" if callable(getattr(model, "block_masks", None)) else "heat_bath"
        if getattr(model, "manifold", "euclidean") == "sphere":
            return "sphere"
        return "hmc" if getattr(model, "differentiable", True) else "rwm"
    if kind == "discrete" and kernel not in DISCRETE_KERNELS:
        raise ValueError(
            f"kernel {kernel!r} needs a continuous model; for discrete models choose one of: "
            f"{', '.join(DISCRETE_KERNELS)}"
        )
    if kind == "continuous" and kernel not in CONTINUOUS_KERNELS:
        raise ValueError(
            f"kernel {kernel!r} needs a discrete model; for continuous models choose one of: "
            f"{', '.join(CONTINUOUS_KERNELS)}"
        )
    if kernel == "block_gibbs" and not callable(getattr(model, "block_masks", None)):
        raise ValueError("kernel 'block_gibbs' needs a model with block_masks(); use 'heat_bath' instead")
    if kernel == "sgld" and not callable(getattr(model, "energy_minibatch", None)):
        raise ValueError("kernel 'sgld' needs a model with energy_minibatch(x, idx) and n_data")
    if kernel in ("mala", "hmc", "langevin", "sgld") and not getattr(model, "differentiable", True):
        raise ValueError(f"kernel {kernel!r} needs a differentiable energy; use 'rwm' (or 'sphere')")
    return kernel


def make_sampler(model: Any, kernel: str = "auto", **options) -> Sampler:
    """Bind ``kernel`` to ``model``: a one-chain ``init(x)`` / ``step(key, state, beta, step_size)`` pair.

    Args:
        model: a thermodl model (see ``models/base.py``).
        kernel: ``"auto"`` or one of ``flip_metropolis``, ``heat_bath``, ``block_gibbs`` (discrete) or ``rwm``,
            ``mala``, ``hmc``, ``langevin``, ``sgld``, ``sphere`` (continuous).
        **options: kernel options — hmc: ``num_integration_steps`` (static int, default 10), ``inverse_mass``
            (scalar or [dim], default 1.0), ``step_size_jitter`` (ε drawn uniformly in ε·[1 − j, 1 + j] each step,
            default 0.2; 0 switches it off); sgld: ``batch_size`` (static int, default min(32, n_data)).

    Returns:
        ``Sampler``.

    Raises:
        ValueError: unknown kernel or option, a kernel that does not fit the model, bad option values.
    """
    name = resolve_kernel(model, kernel)
    allowed = _OPTIONS.get(name, set())
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for kernel {name!r}; "
            f"valid: {', '.join(sorted(allowed)) or 'none'}"
        )
    energy_fn = model.energy

    if name in DISCRETE_KERNELS:
        mod = _kernel_module(name)
        values = tuple(model.values)
        if name == "block_gibbs":
            masks = model.block_masks()
            delta_all = model.delta_energy_all

            def step(key, state, beta, step_size=None):
                return mod.step(key, state, energy_fn, beta, delta_all, masks, values)
        else:
            delta = model.delta_energy

            def step(key, state, beta, step_size=None):
                return mod.step(key, state, energy_fn, beta, delta, values)

        def init(x):
            return mod.init(x, energy_fn)

        return Sampler(name, init, step, 1.0, None)

    mod = _kernel_module(name)
    log_prior_fn = model.log_prior
    if name == "hmc":
        n_int = options.get("num_integration_steps", 10)
        if isinstance(n_int, bool) or not isinstance(n_int, int) or n_int < 1:
            raise ValueError(f"num_integration_steps must be a positive int, got {n_int!r}")
        inverse_mass = options.get("inverse_mass", 1.0)
        jitter = options.get("step_size_jitter", 0.2)
        if isinstance(jitter, bool) or (isinstance(jitter, (int, float)) and not 0.0 <= jitter < 1.0):
            raise ValueError(f"step_size_jitter must be a number in [0, 1), got {jitter!r}")
        use_jitter = not (isinstance(jitter, (int, float)) and jitter == 0)  # arrays/tracers: always applied

        def step(key, state, beta, step_size):
            if use_jitter:
                # Random trajectory length breaks the resonances of fixed-length HMC (Neal 2011, §5.4.2.2); the
                # jitter is drawn from a key the kernel never sees, independent of the state, so detailed balance
                # holds for each drawn ε.
                u = jax.random.uniform(jax.random.fold_in(key, 0x6A17), (), jnp.result_type(step_size, float))
                step_size = step_size * (1.0 + jitter * (2.0 * u - 1.0))
            return mod.step(key, state, energy_fn, beta, log_prior_fn, step_size, n_int, inverse_mass)

        def init(x):
            return mod.init(x, energy_fn, log_prior_fn)

    elif name == "sgld":
        n_data = int(model.n_data)
        batch_size = options.get("batch_size", min(32, n_data))
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= n_data:
            raise ValueError(f"batch_size must be an int in [1, n_data={n_data}], got {batch_size!r}")
        mb_energy = model.energy_minibatch

        def step(key, state, beta, step_size):
            return mod.step(key, state, mb_energy, beta, log_prior_fn, step_size, n_data, batch_size)

        def init(x):
            return mod.init(x, mb_energy, log_prior_fn, n_data)

    else:  # rwm, mala, langevin, sphere share one signature

        def step(key, state, beta, step_size):
            return mod.step(key, state, energy_fn, beta, log_prior_fn, step_size)

        def init(x):
            return mod.init(x, energy_fn, log_prior_fn)

    return Sampler(name, init, step, _DEFAULT_STEP[name], _TARGET.get(name))


def split_options(kernel: str, options: dict) -> tuple[tuple, dict]:
    """The ONE static-vs-traced rule for kernel options: ``(static, traced)``.

    Python bools, ints and strings (trajectory lengths, batch sizes, switches) are static (a new value compiles a
    new program); floats and arrays are traced (converted to JAX arrays; a new value never recompiles).

    Returns:
        (tuple of sorted (name, value) static pairs — hashable, for jit static arguments; {name: jax.Array}).
    """
    static, traced = [], {}
    for k, v in sorted(options.items()):
        if isinstance(v, (bool, int, str)) or v is None:
            static.append((k, v))
        else:
            traced[k] = jnp.asarray(v)
    return tuple(static), traced
