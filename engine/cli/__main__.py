"""``python -m thermodl.engine.cli``: the ``thermodl`` command."""

from .commands import main

main()
