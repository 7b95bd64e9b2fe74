"""What a sampling kernel declares about itself, so the engine can bind it to any model without knowing it.

Every sampling kernel module ``kernels/<name>.py`` defines ``SETTINGS = KernelSettings(...)``; the engine
(``engine/kernel_binding.py``) discovers the modules of this package that define ``SETTINGS`` and binds them generically:

    init(x)                           = kernel.init(x, model.<energy>, **{kw: model arg | kw taken by init})
    step(key, state, beta, step_size) = kernel.step(key, state, model.<energy>, beta, **model_args,
                                                    [step_size=step_size,] **options)

``step_size`` is passed only to kernels that have one (``default_step_size`` not ``None``). So adding a kernel is
one file (``init``, ``step``, ``SETTINGS``) plus its test; nothing in the engine names it. Like every kernel, this
module never imports ``engine/`` or ``models/``: a model is only ever named by its attribute names (see
``models/base.py`` for the protocol).

Validators below take one option value and return it normalised (e.g. a numpy int as a Python int), or raise
``ValueError("must be ..., got ...")``; the engine prefixes the kernel and option name.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, NamedTuple

import numpy as np

from .integrators import _concrete

__all__ = [
    "KernelSettings",
    "Option",
    "KINDS",
    "MANIFOLDS",
    "positive_int",
    "optional_positive_int",
    "positive",
    "fraction",
    "one_of",
]

KINDS = ("continuous", "discrete")
MANIFOLDS = ("euclidean", "sphere")


class Option(NamedTuple):
    """One keyword option of a kernel's ``step``.

    Fields:
        name: the keyword of ``step`` the value is passed as.
        default: the value passed when the option is not given. ``None`` passes ``None`` (the kernel then picks
            from the state or the sizes, e.g. sgld's ``batch_size``).
        static: ``True`` — a hashable Python value (int, str) that fixes the compiled program (trajectory lengths,
            batch sizes, switches): validated eagerly, a new value compiles a new program. ``False`` — a real
            number or array, converted to a JAX array and *traced*: a new value never recompiles.
        doc: one line for help texts and error messages.
        validator: ``value -> value`` returning the normalised value or raising ``ValueError`` (see the helpers
            of this module); ``None`` for no check. Run on static values always, on traced values when they are
            concrete (not tracers).
    """

    name: str
    default: Any
    static: bool
    doc: str
    validator: Callable[[Any], Any] | None = None


class KernelSettings(NamedTuple):
    """How the engine binds one kernel to a model.

    Fields:
        kind: ``"continuous"`` (positions in R^dim or on a manifold) or ``"discrete"`` (binary sites).
        default_step_size: the step size to start from (before adaptation); ``None`` for kernels whose ``step``
            takes no ``step_size`` (discrete sweeps, slice samplers).
        target_acceptance: the mean acceptance probability step-size adaptation aims at; ``None`` when there is
            nothing to adapt (no step size, or an unadjusted kernel whose step size is a bias/variance choice).
        needs_gradient: the kernel differentiates the energy (the model must have ``differentiable`` true or
            unset).
        manifold: where the positions live: ``"euclidean"`` (R^dim), ``"sphere"`` (|x|² = dim), or ``None`` (any;
            discrete kernels). The model's ``manifold`` (default ``"euclidean"``) must match.
        energy: the model attribute passed as the kernel's energy function (3rd argument of ``step``, 2nd of
            ``init``): ``"energy"``, or e.g. ``"energy_minibatch"`` for SGLD.
        model_args: ``((kernel_keyword, model_attribute), ...)`` — further model attributes passed to ``step`` by
            keyword, and to ``init`` when ``init`` takes that keyword; an attribute written ``"name()"`` is called
            once at bind time (e.g. ``("block_masks", "block_masks()")``). The model must have the energy and
            every one of these attributes (that is the kernel's requirement on the model).
        options: the keyword options of ``step`` a user may set (``Option``); any other name is an error.
        reference: the paper(s) the kernel implements.
    """

    kind: str
    default_step_size: float | None
    target_acceptance: float | None
    needs_gradient: bool
    manifold: str | None
    energy: str = "energy"
    model_args: tuple[tuple[str, str], ...] = ()
    options: tuple[Option, ...] = ()
    reference: str = ""


# ------------------------------------------------------------------------------------------------ validators
def positive_int(value):
    """A Python (or numpy) int ≥ 1, returned as a Python int; floats and bools are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"must be a positive int (a static option: its value fixes the compiled program), "
                         f"got {value!r}")
    return int(value)


def _optional(check: Callable) -> Callable:
    def optional(value):
        return None if value is None else check(value)

    optional.__doc__ = f"``None`` or {check.__doc__}"
    return optional


optional_positive_int = _optional(positive_int)


def positive(value):
    """A number or array whose entries are all > 0 (checked when concrete)."""
    concrete = _concrete(value)
    if concrete is not None and not (np.issubdtype(concrete.dtype, np.number) and np.all(concrete > 0)):
        raise ValueError(f"must be positive, got {value!r}")
    return value


def fraction(value):
    """A scalar in [0, 1) (checked when concrete)."""
    concrete = _concrete(value)
    if concrete is not None and not (concrete.shape == () and np.issubdtype(concrete.dtype, np.number)
                                     and not np.issubdtype(concrete.dtype, np.bool_) and 0.0 <= concrete < 1.0):
        raise ValueError(f"must be a number in [0, 1), got {value!r}")
    return value


def one_of(*choices: str) -> Callable:
    """A validator accepting exactly the given strings."""

    def check(value):
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value

    check.__doc__ = f"one of {choices}"
    return check
