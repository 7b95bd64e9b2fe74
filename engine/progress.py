"""``progress=`` for long library calls: a callback ``progress(done, total)``, or ``True`` for a rich progress bar
with elapsed time and ETA on stderr (the same bar the CLI shows)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["progress_callback"]


@contextlib.contextmanager
def progress_callback(progress: Any, description: str) -> Iterator[Callable[[int, int], None] | None]:
    """Yield a ``(done, total)`` callback for ``progress``: None/False → None; a callable → itself; True → a rich
    bar (description, bar, done/total, elapsed, ETA) on stderr, closed when the block ends."""
    if progress is None or progress is False:
        yield None
        return
    if callable(progress):
        yield progress
        return
    if progress is not True:
        raise ValueError(f"progress must be True, False, None or a callable(done, total), got {progress!r}")
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn(), console=Console(file=sys.stderr), transient=False)
    task = bar.add_task(description, total=None)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)
