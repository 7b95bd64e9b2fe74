"""Sweep configs: TOML → validated, normalised dict with grid axes expanded (see ``engine.sweep``).

Sections ``[model]`` (name + model parameters, see ``engine.catalog``), ``[data]`` (more model parameters:
P, α, data files), ``[sampler]`` (kernel, step_size, adapt, kernel options), ``[estimator]`` (method, budgets,
the Monte Carlo ``seed``, ``compare_exact``; method-specific options are checked against the estimator's
signature), ``[sweep]`` (β, ``disorder_seed``) and ``[output]`` (path, unit_size, keep_parts).

Seeds: ``[sweep] disorder_seed`` draws the disorder (couplings, patterns, data; default 0), ``[estimator] seed``
the Monte Carlo random numbers (default 0); neither affects what the other one controls. The disorder seed may
also be written in ``[model]`` or ``[data]`` (it is moved to ``[sweep]``). The pre-0.2 spelling ``seed`` in
``[sweep]``, ``[model]`` or ``[data]`` meant the disorder seed: it is read as ``disorder_seed`` with a
``FutureWarning`` (never as the Monte Carlo seed, so old configs give the same models). Any value may be a grid axis: a
list, ``{linspace=[a, b, n]}``, ``{logspace=[a, b, n]}`` (10^a … 10^b), ``{geomspace=[a, b, n]}`` or
``{range=[start, stop(, step)]}``. Every mistake is a ``ValueError`` naming the bad key or value.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
import itertools
import math
import os
import tomllib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import catalog, kernel_binding
from ..io import canonical_json
from ..validate import check_beta, check_choice, check_nonnegative_int, check_positive_int

__all__ = ["METHODS", "SECTIONS", "load_config", "normalize_config", "method_options", "values", "point_hash"]

METHODS = ("ensemble", "ais", "smc", "pt", "ti", "exact", "thermodynamics")
SECTIONS = ("model", "data", "sampler", "estimator", "sweep", "output")
GRID_SPECS = ("linspace", "logspace", "geomspace", "range")
# kernel, step size, adaptation, and every option some kernel declares (kernels/<name>.py SETTINGS)
SAMPLER_KEYS = ("kernel", "step_size", "adapt") + tuple(
    sorted({o.name for s in kernel_binding.KERNEL_SETTINGS.values() for o in s.options}))
ESTIMATOR_KEYS = ("method", "n_chains", "n_steps", "n_warmup", "chain_block", "seed", "compare_exact")
SWEEP_KEYS = ("beta", "disorder_seed")
OUTPUT_KEYS = ("path", "unit_size", "keep_parts")
DEFAULTS = {
    "sampler": {"kernel": "auto", "adapt": True},
    "estimator": {"method": "ensemble", "seed": 0, "compare_exact": False},
    "sweep": {"disorder_seed": 0},
    "output": {"unit_size": 64, "keep_parts": False},
}
# Estimator options of the looped methods are checked against these functions' signatures.
_METHOD_FUNCS = {
    "ais": ("thermodl.engine.ais", "ais_log_partition"),
    "smc": ("thermodl.engine.smc", "smc_log_partition"),
    "pt": ("thermodl.engine.tempering", "pt_log_partition"),
    "ti": ("thermodl.engine.ti", "ti_log_partition"),
    "thermodynamics": ("thermodl.engine.api", "thermodynamics"),
}


def load_config(config: Any) -> dict:
    """A config dict from a TOML path, a TOML string or a mapping (deep-copied)."""
    if isinstance(config, Mapping):
        return copy.deepcopy(dict(config))
    if isinstance(config, (str, os.PathLike)):
        p = Path(config)
        if isinstance(config, os.PathLike) or (len(str(config)) < 4096 and "\n" not in str(config) and p.suffix):
            if not p.is_file():
                raise ValueError(f"sweep config file {str(p)!r} does not exist")
            text = p.read_text()
        else:
            text = str(config)
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"sweep config is not valid TOML: {err}") from None
    raise ValueError(f"sweep config must be a path, a TOML string or a dict, got {type(config).__name__}")


def _gridvalues(where: str, spec: Mapping) -> list:
    if len(spec) != 1 or next(iter(spec)) not in GRID_SPECS:
        raise ValueError(f"{where}: a table value must be one of {{{', '.join(k + '=[...]' for k in GRID_SPECS)}}}"
                         f", got {dict(spec)!r}")
    kind, args = next(iter(spec.items()))
    if not isinstance(args, list) or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise ValueError(f"{where}: {kind} needs a list of numbers, got {args!r}")
    if kind == "range":
        if not 1 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
            raise ValueError(f"{where}: range needs 1 to 3 integers [start, stop, step], got {args!r}")
        vals = list(range(*args))
    else:
        if len(args) != 3:
            raise ValueError(f"{where}: {kind} needs [start, stop, n], got {args!r}")
        n = check_positive_int(args[2], f"{where}: {kind} n")
        if kind == "geomspace" and (args[0] <= 0 or args[1] <= 0):
            raise ValueError(f"{where}: geomspace needs positive endpoints, got {args!r}")
        vals = getattr(np, kind)(args[0], args[1], n).tolist()
    if not vals:
        raise ValueError(f"{where}: {kind}={args!r} gives no values")
    return vals


def normalize_config(raw: Mapping) -> dict:
    """Validate section and key names and expand grid specs into lists.

    Returns:
        {section: {key: scalar or list of values}} with defaults filled in; a ``disorder_seed`` given in
        [model] or [data] is moved to [sweep]; the old spelling ``seed`` there is read as ``disorder_seed``
        (``FutureWarning``).
    Raises:
        ValueError: unknown section/key/model/method, bad grid spec, negative β, non-positive sizes, ...
    """
    raw = dict(raw)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown config section(s) {', '.join(map(repr, unknown))}; valid: {', '.join(SECTIONS)}")
    cfg: dict[str, dict] = {}
    for sec in SECTIONS:
        body = raw.get(sec, {})
        if not isinstance(body, Mapping):
            raise ValueError(f"[{sec}] must be a table, got {body!r}")
        out = {}
        for key, val in body.items():
            where = f"{sec}.{key}"
            if isinstance(val, Mapping):
                val = _gridvalues(where, val)
            elif isinstance(val, list):
                if not val:
                    raise ValueError(f"{where}: an axis needs at least one value, got []")
                if any(isinstance(v, (list, Mapping)) for v in val):
                    raise ValueError(f"{where}: axis values must be scalars, got {val!r}")
            if sec == "output" and isinstance(val, list):
                raise ValueError(f"{where}: output settings cannot be grid axes, got {val!r}")
            out[key] = val
        cfg[sec] = out
    _rename_old_disorder_seed(cfg)
    seeds = [s for s in ("model", "data", "sweep") if "disorder_seed" in cfg[s]]
    if len(seeds) > 1:
        raise ValueError(f"disorder_seed is given in {' and '.join(f'[{s}]' for s in seeds)}; give it once")
    if seeds and seeds[0] != "sweep":
        cfg["sweep"]["disorder_seed"] = cfg[seeds[0]].pop("disorder_seed")
    for sec, defaults in DEFAULTS.items():
        cfg[sec].update({k: v for k, v in defaults.items() if k not in cfg[sec]})
    _check_keys(cfg)
    return cfg


def _rename_old_disorder_seed(cfg: dict) -> None:
    """``seed`` in [sweep], [model] or [data] (the old name of the disorder seed) → ``disorder_seed``."""
    for sec in ("sweep", "model", "data"):
        if "seed" not in cfg[sec]:
            continue
        if "disorder_seed" in cfg[sec]:
            raise ValueError(f"[{sec}] gives both seed and disorder_seed; the disorder seed is disorder_seed "
                             "(the Monte Carlo seed is [estimator] seed)")
        warnings.warn(f"[{sec}] seed is the old name of the disorder seed: write [sweep] disorder_seed (the Monte "
                      "Carlo seed is [estimator] seed); read as disorder_seed", FutureWarning, stacklevel=4)
        cfg[sec]["disorder_seed"] = cfg[sec].pop("seed")


def values(v) -> list:
    """``v`` if it is a list (a grid axis), else ``[v]``."""
    return v if isinstance(v, list) else [v]


def _check_keys(cfg: dict) -> None:
    model, data = cfg["model"], cfg["data"]
    if "name" not in model:
        raise ValueError(f"[model] needs name; choose one of: {', '.join(catalog.model_names())}")
    names = values(model["name"])
    for name in names:
        check_choice("model", name, catalog.model_names())
    both = sorted(set(model) & set(data))
    if both:
        raise ValueError(f"parameter(s) {', '.join(map(repr, both))} given in both [model] and [data]")
    params = {k: v for k, v in {**model, **data}.items() if k != "name"}
    for name in names:  # names and values of every model parameter (sizes > 0, finite numbers, ...)
        for combo in itertools.product(*(values(v) for v in params.values())):
            catalog.resolve_model_params(name, dict(zip(params, combo)))
    for sec, allowed in (("sampler", SAMPLER_KEYS), ("sweep", SWEEP_KEYS), ("output", OUTPUT_KEYS)):
        bad = sorted(set(cfg[sec]) - set(allowed))
        if bad:
            raise ValueError(f"unknown key(s) {', '.join(map(repr, bad))} in [{sec}]; valid: {', '.join(allowed)}")
    if "beta" not in cfg["sweep"]:
        raise ValueError("[sweep] needs beta (a value, a list or {linspace=[a, b, n]})")
    for b in values(cfg["sweep"]["beta"]):
        check_beta(b, "sweep.beta")
    for where, s in [("sweep.disorder_seed", s) for s in values(cfg["sweep"]["disorder_seed"])] + \
            [("estimator.seed", s) for s in values(cfg["estimator"]["seed"])]:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ValueError(f"{where} must be a non-negative integer, got {s!r}")
    est = cfg["estimator"]
    for m in values(est["method"]):
        check_choice("method", m, METHODS)
    for key in ("n_chains", "n_steps", "chain_block"):
        for v in values(est.get(key, 1)):
            check_positive_int(v, f"estimator.{key}")
    for v in values(est.get("n_warmup", 0)):
        check_nonnegative_int(v, "estimator.n_warmup")
    for v in values(cfg["sampler"].get("step_size", 1.0)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
            raise ValueError(f"sampler.step_size must be finite and > 0, got {v!r}")
    for v in values(cfg["sampler"]["adapt"]) + values(est["compare_exact"]) + [cfg["output"]["keep_parts"]]:
        if not isinstance(v, bool):
            raise ValueError(f"sampler.adapt, estimator.compare_exact and output.keep_parts must be true/false, "
                             f"got {v!r}")
    check_positive_int(cfg["output"]["unit_size"], "output.unit_size")
    methods = values(est["method"])
    for m in methods:
        method_options(m, est, cfg["sampler"], several=len(methods) > 1)


def method_options(method: str, est: Mapping, sampler: Mapping, *, several: bool = False, resolve: bool = False):
    """[estimator] + [sampler] options for ``method`` (validated; the common budget keys that do not apply
    to ``method`` are dropped when the method itself is a grid axis). With ``resolve``: (function, options)."""
    opts = {k: v for k, v in est.items() if k not in ("method", "seed", "compare_exact")}
    if method in ("ensemble", "exact"):
        allowed = {"n_chains", "n_steps", "n_warmup", "chain_block"} if method == "ensemble" else set()
        return _filter(method, opts, allowed, several)
    mod_name, fn_name = _METHOD_FUNCS[method]
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"method {method!r} is unavailable: cannot import {mod_name}.{fn_name} ({err})") from None
    allowed = {k for k in inspect.signature(fn).parameters if k not in ("model", "beta", "betas", "key", "progress")}
    if method == "thermodynamics":
        allowed = (allowed - {"method"}) | {"via"}
    opts = _filter(method, opts, allowed, several)
    if "via" in opts:
        opts["method"] = opts.pop("via")
    for k, v in sampler.items():  # kernel, step size and kernel options go to the estimator's sampler
        if k != "adapt" and v is not None:
            opts[k] = v
    return (fn, opts) if resolve else opts


def _filter(method: str, opts: dict, allowed: set, several: bool) -> dict:
    common = {"n_chains", "n_steps", "n_warmup"}
    bad = [k for k in opts if k not in allowed and not (several and k in common)]
    if bad:
        raise ValueError(f"unknown key(s) {', '.join(map(repr, bad))} in [estimator] for method {method!r}; "
                         f"valid: {', '.join(sorted(allowed | {'method', 'seed', 'compare_exact'}))}")
    return {k: v for k, v in opts.items() if k in allowed}


_NOT_HASHED = {"output": None, "estimator": ("compare_exact", "chain_block")}


def point_hash(pt: dict) -> tuple[int, int]:
    """Two 32-bit words of the SHA-256 of the point's parameters: the point's random streams. Settings that do
    not change what is sampled (output, ``compare_exact``, ``chain_block``) are left out."""
    keep = {sec: {k: v for k, v in body.items() if k not in (_NOT_HASHED.get(sec) or ())}
            for sec, body in pt.items() if sec != "output"}
    digest = hashlib.sha256(canonical_json(keep).encode()).digest()
    return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little")
