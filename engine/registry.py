"""The experiment registry: named experiments, run into atomically written output folders, and their index page.

The engine never imports ``thermodl.experiments`` statically (imports point experiments → engine); it finds
experiment modules by *name* through ``EXPERIMENTS`` and imports them with ``importlib`` when asked.

Experiment module protocol
--------------------------
An experiment is one module in ``thermodl/experiments/`` with

``NAME: str``
    the registry name, e.g. ``"exact-checks"`` (also the name of its output folder).
``DESCRIPTION: str``
    one line for ``thermodl reproduce --list`` and the index page.
``run(out_dir: pathlib.Path, *, full: bool = False, seed: int = 0, **optional) -> dict``
    runs the experiment and writes into ``out_dir`` (which exists and is empty):

    * a PNG figure,
    * the data as netCDF (an ``xarray.Dataset``),
    * a table of *measured vs theory*, as Markdown and CSV, one row per check with the tolerance it must meet
      and whether it does (benchmarks: the measured numbers, with ``pass`` left empty).

    ``full=False`` is a small size that runs in a few CPU-minutes; ``full=True`` the paper-size run. ``seed``
    derives every PRNG key. Optional keyword arguments, passed only when ``run`` declares them:
    ``size: str`` (e.g. ``"tiny"`` for tests; overrides ``full``) and ``progress: Callable[[str, float], None]``
    (called with a description and the fraction done, for progress bars).

    It returns a dict with at least ``"rows"`` (list of dicts, the table) and ``"figure"`` (path of the PNG),
    and conventionally ``"table_md"``, ``"table_csv"``, ``"data"`` (netCDF path) — the helpers in
    ``thermodl.experiments.common`` write all of these and build this dict. Rows use the columns of
    ``common.ROW_COLUMNS`` (``quantity, method, measured, stderr, theory, z, tolerance, pass, wall_s``) and may
    add their own.

``run_experiment`` runs an experiment into a hidden temporary folder next to ``out_dir/NAME`` and renames it into
place only when ``run`` returned normally, so a failed or interrupted run never leaves half-written output
(and never destroys the previous result). Single files are written with ``engine.io`` (``atomic_output``:
temp file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .io import atomic_write_text

__all__ = [
    "EXPERIMENTS",
    "list_experiments",
    "load_experiment",
    "run_experiment",
    "write_index",
]

EXPERIMENTS: dict[str, str] = {
    "exact-checks": "thermodl.experiments.exact_checks",
    "bench-hmc": "thermodl.experiments.bench_hmc",
    "bench-ising": "thermodl.experiments.bench_ising",
    "gardner": "thermodl.experiments.gardner",
    "gibbs-learning": "thermodl.experiments.gibbs_learning",
    "sk": "thermodl.experiments.sk",
    "hopfield": "thermodl.experiments.hopfield",
    "edge-of-chaos": "thermodl.experiments.edge_of_chaos",
    "no-flattening": "thermodl.experiments.no_flattening",
    "deep-linear": "thermodl.experiments.deep_linear",
    "rbm-rg": "thermodl.experiments.rbm_rg",
    "llc": "thermodl.experiments.llc",
    "rbm-digits": "thermodl.experiments.rbm_digits",
    "bench-logz": "thermodl.experiments.bench_logz",
    "efficiency": "thermodl.experiments.efficiency",
}
"""Experiment name -> module path. Add one line here per new experiment module."""


def load_experiment(name: str) -> ModuleType:
    """Import the experiment module registered under ``name``.

    Raises:
        ValueError: unknown name (listing the registered ones), or a module that does not follow the protocol.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of: {', '.join(EXPERIMENTS)}")
    module = importlib.import_module(EXPERIMENTS[name])
    missing = [a for a in ("NAME", "DESCRIPTION", "run") if not hasattr(module, a)]
    if missing:
        raise ValueError(f"experiment module {module.__name__} lacks {', '.join(missing)} (see engine/registry.py)")
    return module


def list_experiments() -> list[tuple[str, str]]:
    """``[(name, description)]`` of every registered experiment; a module that fails to import says why."""
    out = []
    for name in EXPERIMENTS:
        try:
            out.append((name, str(load_experiment(name).DESCRIPTION)))
        except Exception as err:  # noqa: BLE001 — listing must not die on one broken module
            out.append((name, f"(unavailable: {type(err).__name__}: {err})"))
    return out


def _relocate(value: Any, old: Path, new: Path) -> Any:
    """Rewrite paths under ``old`` to ``new`` anywhere in a (nested) result value."""
    if isinstance(value, dict):
        return {k: _relocate(v, old, new) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_relocate(v, old, new) for v in value)
    if isinstance(value, (str, Path)):
        s = str(value)
        if s == str(old) or s.startswith(str(old) + os.sep):
            moved = new / Path(s).relative_to(old)
            return moved if isinstance(value, Path) else str(moved)
    return value


def run_experiment(
    name: str,
    out_dir: str | os.PathLike,
    *,
    full: bool = False,
    seed: int = 0,
    size: str | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> dict:
    """Run experiment ``name`` into ``out_dir/NAME`` atomically and return its result dict.

    Args:
        name: a key of ``EXPERIMENTS``.
        out_dir: parent folder; the experiment's files land in ``out_dir/name/``.
        full: paper-size run instead of the quick one.
        seed: PRNG seed passed to the experiment.
        size: optional size name (e.g. ``"tiny"``), passed only if the module's ``run`` accepts ``size``.
        progress: optional ``progress(description, fraction)`` callback, passed only if ``run`` accepts it.
    Returns:
        the module's result dict with paths pointing into ``out_dir/name``, plus ``"name"``,
        ``"description"`` and ``"out_dir"``.
    """
    module = load_experiment(name)
    parent = Path(out_dir)
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / name
    params = inspect.signature(module.run).parameters
    kwargs: dict[str, Any] = {"full": full, "seed": seed}
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if size is not None:
        if "size" not in params and not accepts_any:
            raise ValueError(f"experiment {name!r} has no size option (got size={size!r})")
        kwargs["size"] = size
    if progress is not None and ("progress" in params or accepts_any):
        kwargs["progress"] = progress

    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=parent))
    try:
        result = module.run(tmp, **kwargs)
        if not isinstance(result, dict) or "rows" not in result or "figure" not in result:
            raise ValueError(f"experiment {name!r}: run() must return a dict with 'rows' and 'figure'")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=parent))
        os.replace(final, old / name)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    result = _relocate(result, tmp, final)
    result.update(name=name, description=str(module.DESCRIPTION), out_dir=str(final))
    return result


def _pass_summary(rows: list[dict]) -> str:
    verdicts = [r.get("pass") for r in rows if r.get("pass") is not None and r.get("pass") != ""]
    if not verdicts:
        return f"{len(rows)} rows (no pass/fail criteria)"
    n_pass = sum(1 for v in verdicts if v is True or str(v).lower() == "true")
    return f"{n_pass}/{len(verdicts)} checks pass"


def write_index(results: list[dict], out_dir: str | os.PathLike, *, title: str = "thermodl results") -> Path:
    """Write ``out_dir/index.md`` linking each experiment's figure and embedding its Markdown table.

    Args:
        results: result dicts from ``run_experiment`` (or ``{"name", "error"}`` for failed experiments).
        out_dir: the folder holding the experiment folders.
    Returns:
        the path of the index page.
    """
    out_dir = Path(out_dir)
    lines = [f"# {title}", ""]
    for res in results:
        name = res.get("name", "?")
        lines += [f"## {name}", ""]
        if res.get("description"):
            lines += [str(res["description"]), ""]
        if "error" in res:
            lines += [f"**failed:** {res['error']}", ""]
            continue
        lines += [f"Result: {_pass_summary(res.get('rows', []))}.", ""]
        fig = res.get("figure")
        if fig:
            rel = os.path.relpath(fig, out_dir)
            lines += [f"![{name}]({Path(rel).as_posix()})", ""]
        table = res.get("table_md")
        if table and Path(table).exists():
            lines += [Path(table).read_text(encoding="utf-8").strip(), ""]
        links = [f"[{k}]({Path(os.path.relpath(res[k], out_dir)).as_posix()})" for k in ("table_csv", "data")
                 if res.get(k)]
        if links:
            lines += ["Files: " + ", ".join(links), ""]
    return atomic_write_text(out_dir / "index.md", "\n".join(lines))
