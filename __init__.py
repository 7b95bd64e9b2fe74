"""thermodl: a JAX simulation engine for the statistical physics of neural networks.

Top-level API: ``log_partition``, ``thermodynamics`` and the ``models`` constructors.
"""

from . import kernels, models

__version__ = "0.1.0"
__all__ = ["kernels", "models", "__version__"]
