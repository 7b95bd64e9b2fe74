"""The ``thermodl`` command line (entry point ``thermodl.engine.cli:main``).

Modules: ``commands`` (the typer app: ``logz``, ``thermo``, ``reproduce``, ``sweep``; ``main``), ``options`` (the
options of ``logz`` / ``thermo`` and the parsing of their values), ``estimator_runs`` (budget options mapped onto
the estimators), ``display`` (progress bar, tables, JSON on stdout).
"""

from .commands import app, main

__all__ = ["app", "main"]
