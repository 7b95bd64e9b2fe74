"""tests/engine: make the shared toy models in ``toys.py`` importable (``from toys import Gauss``).

The suite runs with ``--import-mode=importlib``, which does not put test folders on ``sys.path``; this conftest is
imported before any test module of this folder (also under pytest-xdist workers), so the import works everywhere.
"""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
