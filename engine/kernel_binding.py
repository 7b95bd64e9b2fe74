"""Bind a kernel to a model: the per-chain ``init`` / ``step`` pair every engine loop uses.

    class Sampler(NamedTuple):
        name: str                      # kernel name, e.g. "hmc", "block_gibbs"
        init: Callable                 # (x [dim]) -> kernel State   (one chain)
        step: Callable                 # (key, state, beta [], step_size [] = None) -> (State, Info)
                                       #   one "step" = one kernel step (continuous) or one sweep over all
                                       #   sites (discrete kernels); step_size is ignored by kernels without one
        default_step_size: float       # 1.0 (a placeholder) for kernels without a step size
        target_acceptance: float|None  # for step-size adaptation; None = nothing to adapt
        settings: KernelSettings       # the kernel's own declaration (kernels/settings.py)

    def make_sampler(model, kernel: str = "auto", **options) -> Sampler
    def split_options(kernel: str, options: dict) -> (static: tuple, traced: dict)

This module knows no kernel by name except in the ``"auto"`` rule. Each kernel module of ``thermodl.kernels``
declares ``SETTINGS`` (``kernels.settings.KernelSettings``: kind, step size, adaptation target, gradient, manifold,
which model attributes it takes, its options); the modules that define one are discovered here (``pkgutil``), so a
new kernel file is picked up with no edit to the engine.

``kernel="auto"`` picks: discrete model with ``block_masks`` -> "block_gibbs"; other discrete -> "heat_bath";
continuous on the sphere -> "sphere"; continuous, differentiable -> "hmc"; otherwise "rwm".
Unknown names raise ``ValueError`` listing the valid ones.

``make_sampler`` is cheap and pure: the engine calls it *inside* its jitted functions with the traced model, so the
model's arrays (couplings, data) are traced arguments and a new disorder sample never recompiles.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
from types import MappingProxyType
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from .. import kernels as _kernels_pkg
from ..kernels.settings import KernelSettings, Option

__all__ = [
    "Sampler",
    "make_sampler",
    "resolve_kernel",
    "split_options",
    "kernel_settings",
    "KERNEL_SETTINGS",
    "DISCRETE_KERNELS",
    "CONTINUOUS_KERNELS",
    "KERNELS",
]


def _discover() -> dict[str, KernelSettings]:
    """{name: SETTINGS} of every public module of ``thermodl.kernels`` that defines ``SETTINGS``, sorted by name."""
    found = {}
    for info in pkgutil.iter_modules(_kernels_pkg.__path__):
        if info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"{_kernels_pkg.__name__}.{info.name}")
        settings = getattr(module, "SETTINGS", None)
        if isinstance(settings, KernelSettings):
            found[info.name] = settings
    return dict(sorted(found.items()))


KERNEL_SETTINGS: MappingProxyType = MappingProxyType(_discover())
DISCRETE_KERNELS = tuple(n for n, s in KERNEL_SETTINGS.items() if s.kind == "discrete")
CONTINUOUS_KERNELS = tuple(n for n, s in KERNEL_SETTINGS.items() if s.kind == "continuous")
KERNELS = ("auto",) + DISCRETE_KERNELS + CONTINUOUS_KERNELS


class Sampler(NamedTuple):
    """A kernel bound to a model, for one chain.

    Fields:
        name: kernel name, e.g. ``"hmc"`` or ``"block_gibbs"``.
        init: ``(x [dim]) -> State`` — the kernel state at position ``x``.
        step: ``(key, state, beta [], step_size [] = None) -> (State, Info)`` — one kernel step (continuous
            kernels) or one sweep over all sites (discrete kernels); ``step_size`` is ignored by kernels without
            one (``settings.default_step_size is None``).
        default_step_size: the step size to start from (before adaptation); 1.0, unused, for kernels without one.
        target_acceptance: the mean acceptance probability step-size adaptation aims at; ``None`` when there is
            nothing to adapt (discrete, slice and unadjusted kernels).
        settings: the kernel's ``KernelSettings``.
    """

    name: str
    init: Callable
    step: Callable
    default_step_size: float
    target_acceptance: float | None
    settings: KernelSettings


def kernel_settings(kernel: str) -> KernelSettings:
    """The ``KernelSettings`` of a concrete kernel name (not ``"auto"``).

    Raises:
        ValueError: unknown kernel name.
    """
    if not isinstance(kernel, str) or kernel not in KERNEL_SETTINGS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of: {', '.join(KERNELS)}")
    return KERNEL_SETTINGS[kernel]


@functools.lru_cache(maxsize=None)
def _module(name: str):
    return importlib.import_module(f"{_kernels_pkg.__name__}.{name}")


@functools.lru_cache(maxsize=None)
def _init_keywords(name: str) -> frozenset:
    return frozenset(inspect.signature(_module(name).init).parameters)


def _attribute(spec: str) -> tuple[str, bool]:
    """``"block_masks()"`` -> ("block_masks", True); ``"values"`` -> ("values", False)."""
    return (spec[:-2], True) if spec.endswith("()") else (spec, False)


def _misfit(model: Any, name: str) -> str | None:
    """Why kernel ``name`` cannot sample ``model`` (``None`` if it can)."""
    s = KERNEL_SETTINGS[name]
    kind = getattr(model, "kind", None)
    if kind != s.kind:
        return f"kernel {name!r} needs a {s.kind} model"
    if s.needs_gradient and not getattr(model, "differentiable", True):
        return f"kernel {name!r} needs a differentiable energy"
    manifold = getattr(model, "manifold", "euclidean")
    if s.manifold is not None and manifold != s.manifold:
        return f"kernel {name!r} samples on the {s.manifold} manifold, the model lives on the {manifold} manifold"
    missing = []
    for spec in (s.energy,) + tuple(attr for _, attr in s.model_args):
        attr, call = _attribute(spec)
        value = getattr(model, attr, None)
        if value is None or ((call or spec == s.energy) and not callable(value)):
            missing.append(spec)
    if missing:
        return f"kernel {name!r} needs a model with {', '.join(missing)}"
    return None


def resolve_kernel(model: Any, kernel: str = "auto") -> str:
    """The concrete kernel name ``make_sampler(model, kernel)`` would use.

    Raises:
        ValueError: unknown kernel name, or a kernel that does not fit the model (kind, gradient, manifold, or a
            model attribute the kernel needs); the message lists the kernels that fit.
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
    why = _misfit(model, kernel)
    if why is not None:
        fit = [n for n in KERNEL_SETTINGS if _misfit(model, n) is None]
        raise ValueError(f"{why}; kernels that fit this model: {', '.join(fit) or 'none'}")
    return kernel


# ------------------------------------------------------------------------------------------------ options
def _check_names(kernel: str, settings: KernelSettings, options: dict) -> dict[str, Option]:
    declared = {o.name: o for o in settings.options}
    unknown = sorted(set(options) - set(declared))
    if unknown:
        valid = "; ".join(f"{o.name} ({'static' if o.static else 'traced'}, default {o.default!r}): {o.doc}"
                          for o in settings.options)
        raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))} for kernel {kernel!r}; "
                         f"valid options: {valid or 'none'}")
    return declared


def _validated(kernel: str, opt: Option, value):
    """``value`` checked by the option's validator (static: always; traced: when concrete)."""
    if opt.static and isinstance(value, jax.core.Tracer):
        raise ValueError(f"kernel {kernel!r}: option {opt.name} is static (it fixes the compiled program) and must "
                         f"be a Python value, got a traced array")
    if opt.validator is None or isinstance(value, jax.core.Tracer):
        return value
    try:
        return opt.validator(value)
    except ValueError as err:
        raise ValueError(f"kernel {kernel!r}: option {opt.name} {err}") from None


def _traced(value) -> jax.Array:
    """A real-valued JAX array of a fixed (non-weak) dtype, so the same option never compiles twice."""
    a = jnp.asarray(value)
    dtype = a.dtype if jnp.issubdtype(a.dtype, jnp.floating) else jnp.result_type(float)
    return jnp.array(a, dtype=dtype)


def split_options(kernel: str, options: dict) -> tuple[tuple, dict]:
    """The ONE static-vs-traced rule for kernel options: ``(static, traced)``, following the kernel's ``Option``s.

    Options the kernel declares static (trajectory lengths, batch sizes, switches) are validated and returned as
    hashable Python values — a new value compiles a new program; a float given for a static int option is an
    error. All other options are validated (when concrete) and converted to real JAX arrays of a fixed dtype
    (ints become the default float dtype) — a new value never recompiles. ``None`` means the option's default and
    is left out.

    Args:
        kernel: a concrete kernel name (``resolve_kernel(model, kernel)`` first); ``"auto"`` only with no options.
        options: {name: value}.

    Returns:
        (tuple of sorted (name, value) static pairs — hashable, for jit static arguments; {name: jax.Array}).

    Raises:
        ValueError: unknown kernel or option (the message lists the kernel's valid options), or a bad value.
    """
    if kernel == "auto":
        if options:
            raise ValueError("split_options needs a concrete kernel name to check options against; resolve "
                             "'auto' with resolve_kernel(model, kernel) first")
        return (), {}
    settings = kernel_settings(kernel)
    declared = _check_names(kernel, settings, options)
    static, traced = [], {}
    for name, value in sorted(options.items()):
        if value is None:  # the default
            continue
        opt = declared[name]
        value = _validated(kernel, opt, value)
        if opt.static:
            static.append((name, value))
        else:
            traced[name] = _traced(value)
    return tuple(static), traced


# ------------------------------------------------------------------------------------------------ binding
def make_sampler(model: Any, kernel: str = "auto", **options) -> Sampler:
    """Bind ``kernel`` to ``model``: a one-chain ``init(x)`` / ``step(key, state, beta, step_size)`` pair.

    Generic: the kernel's ``SETTINGS`` name the model attributes it takes (energy, log prior, flip energies, site
    values, block masks, data size) and its options; see ``kernels/settings.py``.

    Args:
        model: a thermodl model (see ``models/base.py``); may be traced (inside ``jit``).
        kernel: ``"auto"`` or one of ``KERNELS``.
        **options: the kernel's options (``KERNEL_SETTINGS[name].options``), e.g. hmc: ``num_integration_steps``
            (static int, default 10), ``inverse_mass`` (scalar or [dim], default 1.0), ``step_size_jitter``
            (default 0.2; 0 switches it off); sgld: ``batch_size`` (static int, default min(32, n_data));
            flip_metropolis: ``order``; slice_sphere: ``max_shrinkage_steps``. Static options must be Python
            values; traced ones may be tracers; ``None`` means the default.

    Returns:
        ``Sampler``.

    Raises:
        ValueError: unknown kernel or option, a kernel that does not fit the model, bad option values.
    """
    name = resolve_kernel(model, kernel)
    settings = KERNEL_SETTINGS[name]
    declared = _check_names(name, settings, options)
    values = {o.name: o.default for o in settings.options}
    for key, value in options.items():
        if value is not None:  # None: the default
            values[key] = _validated(name, declared[key], value)
    mod = _module(name)
    energy_fn = getattr(model, settings.energy)
    model_args = {}
    for keyword, spec in settings.model_args:
        attr, call = _attribute(spec)
        value = getattr(model, attr)
        model_args[keyword] = value() if call else value
    init_args = {k: v for k, v in model_args.items() if k in _init_keywords(name)}
    step_args = dict(model_args, **values)
    takes_step_size = settings.default_step_size is not None

    def init(x):
        return mod.init(x, energy_fn, **init_args)

    def step(key, state, beta, step_size=None):
        if takes_step_size:
            return mod.step(key, state, energy_fn, beta, step_size=step_size, **step_args)
        return mod.step(key, state, energy_fn, beta, **step_args)

    eps = 1.0 if settings.default_step_size is None else float(settings.default_step_size)
    return Sampler(name, init, step, eps, settings.target_acceptance, settings)
