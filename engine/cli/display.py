"""Terminal output of the ``thermodl`` command: consoles, the progress bar, number formats and result tables."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

from ..io import jsonable

__all__ = ["console", "Progress", "fmt", "print_json", "print_rows", "reliability_line", "print_reliability"]


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # A non-terminal stream (pipe, file, test capture) gets a wide console so tables are not wrapped.
    return Console(file=stream, width=None if stream.isatty() else 160, soft_wrap=not stream.isatty())


class Progress:
    """A rich progress bar on stderr (inert when disabled or stderr is not a terminal), fed in either convention:

    * ``bar(description, fraction)`` — experiments (``registry.run_experiment``);
    * ``bar.steps(description)`` — a ``progress(done, total)`` callback for the estimators (PT, TI, ensembles).
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self._bar = None
        self._task = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                                 console=console(stderr=True), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task("compiling and sampling", total=1.0)
        return self

    def __call__(self, description: str, fraction: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=str(description), completed=min(max(float(fraction), 0), 1))

    def fractions(self) -> Callable[[str, float], None] | None:
        """The ``progress(description, fraction)`` callback, or None when disabled."""
        return self if self.enabled else None

    def steps(self, description: str) -> Callable[[int, int], None] | None:
        """A ``progress(done, total)`` callback labelled ``description``, or None when disabled."""
        return (lambda done, total: self(description, done / max(total, 1))) if self.enabled else None

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False


def fmt(x: float | None, digits: int = 8) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}g}"


def print_json(obj: Any) -> None:
    import json

    sys.stdout.write(json.dumps(jsonable(obj), indent=2) + "\n")


def print_rows(console, name: str, res: dict) -> None:
    from rich.table import Table

    table = Table(title=f"{name}  →  {res.get('out_dir', '')}")
    for col in ("quantity", "method", "measured", "± stderr", "theory", "z", "pass", "wall s"):
        table.add_column(col, justify="left" if col in ("quantity", "method") else "right")
    for r in res["rows"]:
        passed = r.get("pass")
        verdict = "" if passed is None else ("[green]yes[/]" if passed else "[red]NO[/]")
        z = r.get("z")
        table.add_row(str(r.get("quantity", "")), str(r.get("method", "")), fmt(r.get("measured"), 7),
                      fmt(r.get("stderr"), 2), fmt(r.get("theory"), 7),
                      "" if z is None else f"{z:+.2f}", verdict, fmt(r.get("wall_s"), 3))
    console.print(table)


def reliability_line(what: str, reasons) -> str:
    """The one line the CLI prints for an unreliable result: "NOT RELIABLE: <what>: reason; reason"."""
    return f"NOT RELIABLE: {what}: " + "; ".join(reasons)


def print_reliability(what: str, reasons) -> None:
    """Print ``reliability_line`` on stderr (stdout stays a clean table or JSON document)."""
    print(reliability_line(what, reasons), file=sys.stderr)
