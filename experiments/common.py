"""Shared output helpers for every experiment module: result rows, tables, netCDF, figures, JSON.

Every experiment (see the protocol in ``thermodl.engine.registry``) ends the same way: a table of measured vs
theory with the tolerance each number must meet, the data as netCDF, and a PNG figure, all written atomically
(temporary file in the same folder, then ``os.replace``). ``finish`` does all of it and returns the result
dict the registry expects:

    rows = [check_row("log Z, Ising 4x4, beta=0.44", "ais", est.value, est.stderr, exact, wall_s=t)]
    fig, ax = new_figure()
    ...
    return finish(out_dir, rows, figure=fig, data=dataset)

Every check in every figure passes or fails by one rule, ``check_row``: |measured − theory| < t·stderr +
allowance, t the two-sided 99.73 % Student-t quantile for the degrees of freedom of the stderr (``t_quantile``:
3.0 for a known or unknown number of degrees of freedom), allowance a systematic bound stated in advance.

Figures use matplotlib's object API (``matplotlib.figure.Figure`` + the Agg canvas), never pyplot's global
state, so experiments can run in threads and headless.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy import stats

from thermodl.engine.io import atomic_output, atomic_write_text, jsonable, write_netcdf

__all__ = [
    "ROW_COLUMNS",
    "FALSE_ALARM",
    "t_quantile",
    "check_row",
    "measurement_row",
    "stopwatch",
    "rows_to_markdown",
    "write_table",
    "rows_dataset",
    "write_dataset",
    "write_json",
    "new_figure",
    "save_figure",
    "z_panel",
    "finish",
    "resolve_size",
]

ROW_COLUMNS = ("quantity", "method", "measured", "stderr", "theory", "z", "tolerance", "pass", "wall_s")
"""The standard table columns. ``tolerance`` is the z bound each check must meet (z = (measured − theory) /
stderr; see ``check_row``), ``pass`` whether it does, ``wall_s`` the wall time of that measurement in seconds."""

FALSE_ALARM = 0.0027
"""Two-sided false-alarm probability of every check (confidence 99.73 %: "3σ" for a normal error)."""

SIDES = ("two-sided", "at-most", "exceeds")


def t_quantile(dof: float | None = None) -> float:
    """The two-sided ``1 − FALSE_ALARM`` quantile of Student's t with ``dof`` degrees of freedom.

    ``dof = inf`` (an error bar known exactly, e.g. a binomial error under the hypothesis) gives the normal
    quantile 2.99997 ("3σ"). The one fallback: ``dof`` unknown (``None``, NaN) or < 1 (no spread estimate) is
    treated as ``inf``, i.e. the error bar is taken at face value; such a row states ``dof = nan`` in its table.
    """
    if dof is None or not (dof >= 1):  # None, NaN, < 1
        dof = math.inf
    q = 1.0 - FALSE_ALARM / 2.0
    return float(stats.norm.ppf(q)) if math.isinf(dof) else float(stats.t.ppf(q, dof))


def _z_score(measured: float, stderr: float, theory: float) -> float:
    diff = measured - theory
    if not (math.isfinite(measured) and math.isfinite(theory)):
        return math.nan
    if stderr > 0 and math.isfinite(stderr):
        return diff / stderr
    if stderr == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return math.nan


def check_row(
    quantity: str,
    method: str,
    measured: float,
    stderr: float,
    theory: float,
    *,
    dof: float | None = None,
    allowance: float = 0.0,
    side: str = "two-sided",
    wall_s: float = math.nan,
    **extra: Any,
) -> dict[str, Any]:
    """One table row comparing a measurement with theory by THE pass/fail rule of every thermodl figure.

    With Δ = measured − theory, t = ``t_quantile(dof)`` and the bound B = t·stderr + allowance:

    * ``side="two-sided"`` (default; "measured agrees with theory"): pass iff |Δ| < B (or Δ = 0);
    * ``side="at-most"`` (a one-sided bound, "measured does not exceed theory"): pass iff Δ < B;
    * ``side="exceeds"`` ("measured is significantly above theory"): pass iff Δ > B.

    ``allowance`` ≥ 0 is a systematic bound stated before looking at the data (a finite-size term, the next
    order of an expansion, the rounding of a published number); it adds to the statistical bound linearly.
    The row reports z = Δ/stderr and ``tolerance`` = t + allowance/stderr, so |z| < tolerance (two-sided) is
    the same test (stderr = 0: tolerance = t when allowance = 0, else inf, and Δ is compared with B directly).
    A non-finite measurement, theory or standard error, or a negative one, never passes.

    Args:
        quantity, method: what was measured and how.
        measured, stderr, theory: the numbers.
        dof: degrees of freedom of ``stderr`` (``None``: unknown, see ``t_quantile``).
        allowance: the systematic bound (same units as ``measured``).
        side: one of ``SIDES``.
        wall_s: wall time of the measurement in seconds.
        extra: more columns (e.g. ``beta=0.44, L=16, ess=...``).
    Returns:
        the row dict: the ``ROW_COLUMNS`` plus ``allowance``, ``dof`` and ``extra``.
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    measured, stderr, theory, allowance = float(measured), float(stderr), float(theory), float(allowance)
    if not (allowance >= 0 and math.isfinite(allowance)):
        raise ValueError(f"allowance must be finite and >= 0, got {allowance!r}")
    t = t_quantile(dof)
    z = _z_score(measured, stderr, theory)
    ok = all(math.isfinite(v) for v in (measured, stderr, theory)) and stderr >= 0
    diff, bound = measured - theory, t * stderr + allowance
    if side == "two-sided":
        passed = ok and (abs(diff) < bound or diff == 0)  # diff == 0 passes even with a zero bound
    elif side == "at-most":
        passed = ok and (diff < bound or diff == 0)
    else:
        passed = ok and diff > bound
    if stderr > 0:
        tolerance = t + allowance / stderr
    else:
        tolerance = t if allowance == 0 else math.inf
    row = {
        "quantity": quantity,
        "method": method,
        "measured": measured,
        "stderr": stderr,
        "theory": theory,
        "z": z,
        "tolerance": float(tolerance),
        "pass": bool(passed),
        "wall_s": float(wall_s),
        "allowance": allowance,
        "dof": math.nan if dof is None else float(dof),
    }
    if side != "two-sided":
        row["side"] = side
    row.update(extra)
    return row


def measurement_row(quantity: str, method: str, measured: float, *, wall_s: float = math.nan, **extra: Any) -> dict:
    """A row with a measurement and no theory to compare with (benchmarks): pass is left empty (None)."""
    row = dict.fromkeys(ROW_COLUMNS, None)
    row.update(quantity=quantity, method=method, measured=float(measured), wall_s=float(wall_s))
    row.update(extra)
    return row


@contextmanager
def stopwatch() -> Iterator[dict]:
    """``with stopwatch() as t: ...`` then ``t["s"]`` holds the elapsed wall time in seconds."""
    out = {"s": math.nan}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["s"] = time.perf_counter() - start


def _columns(rows: Sequence[dict]) -> list[str]:
    cols = [c for c in ROW_COLUMNS if any(c in r for r in rows)]
    for r in rows:
        cols += [k for k in r if k not in cols]
    return cols


def _fmt(value: Any, col: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "NO"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "nan"
        if col in ("z", "tolerance"):
            return f"{v:.2f}"
        if col == "wall_s":
            return f"{v:.2f}"
        if col == "stderr":
            return f"{v:.2g}"
        return f"{v:.6g}"
    return str(value).replace("|", "\\|")


def rows_to_markdown(rows: Sequence[dict]) -> str:
    """A GitHub-flavoured Markdown table of the rows (standard columns first)."""
    cols = _columns(rows)
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(_fmt(r.get(c), c) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def write_table(rows: Sequence[dict], out_dir: str | os.PathLike, stem: str = "table") -> tuple[Path, Path]:
    """Write the rows as ``stem.md`` (Markdown) and ``stem.csv`` (full precision), atomically.

    Returns:
        ``(markdown_path, csv_path)``.
    """
    out_dir = Path(out_dir)
    cols = _columns(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in cols})
    csv_path = atomic_write_text(out_dir / f"{stem}.csv", buf.getvalue())
    md_path = atomic_write_text(out_dir / f"{stem}.md", rows_to_markdown(rows))
    return md_path, csv_path


def rows_dataset(rows: Sequence[dict], dim: str = "check") -> xr.Dataset:
    """The table as an ``xarray.Dataset`` along dimension ``dim``: numeric columns as float variables,
    booleans as int8 (1/0, −1 for empty), everything else as strings."""
    cols = _columns(rows)
    data = {}
    for c in cols:
        vals = [r.get(c) for r in rows]
        present = [v for v in vals if v is not None]
        if present and all(isinstance(v, (bool, np.bool_)) for v in present):
            data[c] = (dim, np.array([-1 if v is None else int(v) for v in vals], dtype=np.int8))
        elif present and all(isinstance(v, (int, float, np.integer, np.floating)) for v in present):
            data[c] = (dim, np.array([np.nan if v is None else float(v) for v in vals], dtype=np.float64))
        else:
            data[c] = (dim, np.array(["" if v is None else str(v) for v in vals], dtype=str))
    return xr.Dataset(data, coords={dim: np.arange(len(rows))})


def write_dataset(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write an ``xarray.Dataset`` as netCDF atomically (``engine.registry.write_netcdf``); returns the path."""
    return write_netcdf(ds, path)


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as strict JSON (NumPy values converted, NaN/inf as null) atomically; returns the path."""
    return atomic_write_text(path, json.dumps(jsonable(obj), indent=2) + "\n")


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] = (6.4, 4.4)):
    """A headless matplotlib figure (Agg canvas, no pyplot state). Returns ``(fig, axes)``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols)
    return fig, axes


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically; returns the path."""
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def z_panel(ax, rows: Sequence[dict], labels: Sequence[str], *, xlabel: str = "z = (measured − theory) / stderr",
            title: str = "every check", clip: float = 6.0) -> None:
    """The "every check" strip: each row's z (clipped to ±``clip``; green passes, red fails) over the grey
    interval ±``tolerance`` in which it passes (``check_row``), one line per row labelled by ``labels``."""
    y = np.arange(len(rows))
    zs = np.array([r["z"] for r in rows], float)
    tol = np.minimum(np.array([r["tolerance"] for r in rows], float), clip + 0.5)
    ax.hlines(y, -tol, tol, color="0.88", lw=5, zorder=1)
    ax.scatter(np.clip(zs, -clip, clip), y, c=["tab:green" if r["pass"] else "tab:red" for r in rows], s=16,
               zorder=3)
    ax.set_yticks(y, list(labels), fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(-clip - 0.5, clip + 0.5)
    ax.set_xlabel(f"{xlabel}  (pass: inside the grey ±tolerance)")
    ax.set_title(title)


def resolve_size(size: str | None, full: bool, presets: dict, default: str) -> tuple[str, Any]:
    """The size preset of a figure's ``run(out_dir, *, full, seed, size)``: ``size`` when given, else ``"full"``
    when ``full``, else ``default``.

    Returns:
        ``(name, presets[name])``.
    Raises:
        ValueError: ``unknown size 'x'; choose one of: ...``.
    """
    size = size if size is not None else ("full" if full else default)
    if size not in presets:
        raise ValueError(f"unknown size {size!r}; choose one of: {', '.join(presets)}")
    return size, presets[size]


def finish(
    out_dir: str | os.PathLike,
    rows: Sequence[dict],
    *,
    figure,
    data: xr.Dataset | None = None,
    stem: str = "results",
    **extra: Any,
) -> dict[str, Any]:
    """Write the table (Markdown + CSV), the netCDF data and the PNG figure; return the protocol's result dict.

    Args:
        out_dir: the experiment's output folder.
        rows: table rows (``check_row`` / ``measurement_row``).
        figure: a matplotlib figure (saved as ``<stem>.png``).
        data: the experiment's data; ``None`` stores the table itself (``rows_dataset``). The table is also
            merged in as variables prefixed ``table_`` along a ``check`` dimension when ``data`` is given.
        stem: base name of the files.
        extra: more entries for the result dict (e.g. ``json=path``).
    Returns:
        ``{"rows", "figure", "table_md", "table_csv", "data", "n_pass", "n_fail", **extra}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [dict(r) for r in rows]
    table_ds = rows_dataset(rows)
    if data is None:
        ds = table_ds
    else:
        ds = data.merge(table_ds.rename({k: f"table_{k}" for k in table_ds.data_vars}))
    md, csv_path = write_table(rows, out_dir, stem=stem)
    nc = write_dataset(ds, out_dir / f"{stem}.nc")
    png = save_figure(figure, out_dir / f"{stem}.png")
    verdicts = [r.get("pass") for r in rows if r.get("pass") is not None]
    return {
        "rows": rows,
        "figure": str(png),
        "table_md": str(md),
        "table_csv": str(csv_path),
        "data": str(nc),
        "n_pass": int(sum(bool(v) for v in verdicts)),
        "n_fail": int(sum(not bool(v) for v in verdicts)),
        **extra,
    }


def environment(*packages: str) -> dict[str, str]:
    """Where a benchmark ran: ``{"device", "jax", "python"}`` plus the version of each of ``packages``
    (``"not installed"`` when it cannot be imported)."""
    import jax

    dev = jax.devices()[0]
    env = {"device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}", "jax": jax.__version__,
           "python": platform.python_version()}
    for name in packages:
        try:
            env[name] = __import__(name).__version__
        except ImportError:
            env[name] = "not installed"
    return env


def bench_main(run, *, name: str, description: str, sizes: Sequence[str], argv=None,
               default_size: str = "small") -> None:
    """Command-line entry of a benchmark module: parse ``--size/--out/--seed``, call ``run(out, size=, seed=)``,
    print the table and the JSON path of its result dict.

    Args:
        run: the module's ``run(out_dir, *, size, seed) -> dict`` (the dict has ``rows`` and ``json``).
        name: the module's NAME (default output folder ``results/<name>``).
        description: the ``--help`` text.
        sizes: the allowed ``--size`` values.
        argv: arguments (``None``: ``sys.argv[1:]``).
        default_size: ``--size`` when not given.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--size", choices=list(sizes), default=default_size)
    parser.add_argument("--out", type=Path, default=Path("results") / name)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    res = run(args.out, size=args.size, seed=args.seed)
    print(rows_to_markdown(res["rows"]))
    print(f"wrote {res['json']}")
