"""Shared test fixtures. Tests run on CPU in float32 by default; float64 via the ``x64`` fixture."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def x64():
    """Run the test body with 64-bit JAX types."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """Parametrise a test over both dtypes; float64 runs inside ``jax.enable_x64``."""
    import jax.numpy as jnp

    if request.param == "float64":
        with jax.enable_x64(True):
            yield jnp.float64
    else:
        yield jnp.float32
