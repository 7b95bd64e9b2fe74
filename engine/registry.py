"""The experiment registry and result store: named experiments, run into atomically written output folders.

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
(and never destroys the previous result). Single files are written with ``atomic_output`` (temp file in the
same folder, then ``os.replace``).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "EXPERIMENTS",
    "list_experiments",
    "load_experiment",
    "run_experiment",
    "write_index",
    "atomic_output",
    "atomic_write_text",
    "jsonable",
    "netcdf_engine",
    "write_netcdf",
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
}
"""Experiment name -> module path. Add one line here per new experiment module."""


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Write a file atomically: yields a temporary path in the same folder, renamed onto ``path`` on success.

    The temporary name is ``.<stem>.<random>.partial<suffix>`` (it keeps ``path``'s suffix, so writers that infer
    the format from it still work); it is fsynced before the rename. If the body raises, the temporary file is
    removed and ``path`` is left untouched (absent, or its old content).

        with atomic_output("table.csv") as tmp:
            tmp.write_text(text)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # the data reach the disk before the rename makes them visible
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> the mode a plain open() would give
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    """Flush a folder's entries (the rename) to disk; a no-op where folders cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``Path(path)``."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _netcdf_safe(ds):
    """A copy of ``ds`` whose attributes are numbers/strings (netCDF cannot store bools, dicts or None)."""
    import json

    ds = ds.copy()
    for k, v in list(ds.attrs.items()):
        if isinstance(v, (bool, np.bool_)):
            ds.attrs[k] = int(v)
        elif isinstance(v, (dict, list, tuple)) or v is None:
            ds.attrs[k] = json.dumps(jsonable(v))
        elif isinstance(v, os.PathLike):
            ds.attrs[k] = os.fspath(v)
    return ds


def netcdf_engine() -> str:
    """``"h5netcdf"`` (netCDF-4) when its backend ``h5py`` is installed, else ``"scipy"`` (netCDF-3)."""
    try:
        import h5py  # noqa: F401
    except ImportError:
        return "scipy"
    return "h5netcdf"


def write_netcdf(ds, path: str | os.PathLike) -> Path:
    """Write an ``xarray.Dataset`` to ``path`` atomically (``atomic_output``): netCDF-4 through h5netcdf (needs
    ``h5py``), else netCDF-3 through SciPy (booleans as int8, 64-bit integers as int32, which netCDF-3 cannot
    store). Attributes netCDF cannot hold become numbers or JSON strings (bool → int, dict/list/None → JSON).

    The one netCDF writer of the package (experiments, ``thermodl thermo``, the sweep store).

    Returns:
        ``Path(path)``.
    """
    ds = _netcdf_safe(ds)
    engine = netcdf_engine()
    if engine == "scipy":
        for name, var in list(ds.variables.items()):
            if var.dtype == np.bool_:
                ds[name] = var.astype(np.int8)
            elif var.dtype.kind in "iu" and var.dtype.itemsize > 4:
                ds[name] = var.astype(np.int32)
    with atomic_output(path) as tmp:
        ds.to_netcdf(tmp, engine=engine)
    return Path(path)


def jsonable(x: Any) -> Any:
    """``x`` with NumPy/JAX scalars and arrays turned into plain Python (NaN/inf -> None), for strict JSON."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, (str, type(None))):
        return x
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    if isinstance(x, np.ndarray) or hasattr(x, "__array__"):
        arr = np.asarray(x)
        return jsonable(arr.item() if arr.ndim == 0 else arr.tolist())
    return str(x)


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
