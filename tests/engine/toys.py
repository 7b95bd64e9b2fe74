"""Tiny toy models shared by the tests in tests/engine (imported as ``toys``; tests/engine/conftest.py puts this
folder on ``sys.path``, since the suite runs with ``--import-mode=importlib``).

Each model follows the protocol of ``thermodl.models.base`` with the fewest methods a test needs, so that a test can
also check what the engine does when a method is missing (e.g. ``Gauss`` has no ``exact_log_partition``, so
``log_partition(..., method='auto')`` must fall back to AIS; ``GaussExact`` adds it).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class TinyIsing:
    """L×L periodic Ising, H = −J Σ_<ij> s_i s_j (each bond once), m = mean spin."""

    J: jax.Array
    L: int = struct.field(pytree_node=False, default=3)
    kind = "discrete"
    values = (-1.0, 1.0)

    @property
    def dim(self):
        return self.L * self.L

    def energy(self, x):
        s = x.reshape(self.L, self.L)
        return -self.J * jnp.sum(s * (jnp.roll(s, 1, 0) + jnp.roll(s, 1, 1)))

    def delta_energy_all(self, x):
        s = x.reshape(self.L, self.L)
        nb = jnp.roll(s, 1, 0) + jnp.roll(s, -1, 0) + jnp.roll(s, 1, 1) + jnp.roll(s, -1, 1)
        return (2 * self.J * s * nb).reshape(-1)

    def delta_energy(self, x, i):
        return self.delta_energy_all(x)[i]

    def magnetization(self, x):
        return jnp.mean(x)

    def sample_reference(self, key):
        return jax.random.choice(key, jnp.array([-1.0, 1.0]), (self.dim,))

    def log_reference_partition(self):
        return self.dim * math.log(2.0)


@struct.dataclass
class TinyIsingBlocks(TinyIsing):
    """TinyIsing with checkerboard blocks (even L), so the engine picks block Gibbs."""

    def block_masks(self):
        r, c = np.divmod(np.arange(self.dim), self.L)
        even = (r + c) % 2 == 0
        return jnp.asarray(np.stack([even, ~even]))


@struct.dataclass
class Gauss:
    """E = ½ Σ a_i x_i², prior N(0, I): under p_β, x_i ~ N(0, 1/(1 + β a_i)) and log Z(β) = −½ Σ log(1 + β a_i).

    ``nan_above``: E is NaN where x_0 > nan_above (default ∞: never). No ``exact_log_partition`` (see GaussExact).
    """

    a: jax.Array
    nan_above: float = struct.field(pytree_node=False, default=math.inf)
    kind = "continuous"
    manifold = "euclidean"
    differentiable = True

    @property
    def dim(self):
        return self.a.shape[0]

    def energy(self, x):
        e = 0.5 * jnp.sum(self.a * x * x)
        return jnp.where(x[0] > self.nan_above, jnp.nan, e)

    def log_prior(self, x):
        return -0.5 * jnp.sum(x * x) - 0.5 * self.dim * jnp.log(2 * jnp.pi)

    def sample_reference(self, key):
        return jax.random.normal(key, (self.dim,))

    def log_reference_partition(self):
        return 0.0


@struct.dataclass
class GaussExact(Gauss):
    """Gauss with its closed-form log Z(β) = −½ Σ log(1 + β a_i) as ``exact_log_partition``."""

    def exact_log_partition(self, beta):
        return -0.5 * jnp.sum(jnp.log1p(beta * self.a))


@struct.dataclass
class GaussData(Gauss):
    """E = Σ_μ ½ a·(x − y_μ)² over P data points, with a minibatch estimate for SGLD (pass ``y=`` by keyword)."""

    y: jax.Array = None

    @property
    def n_data(self):
        return self.y.shape[0]

    def energy(self, x):
        return 0.5 * jnp.sum(self.a * (x[None, :] - self.y) ** 2)

    def energy_minibatch(self, x, idx):
        return self.n_data / idx.shape[0] * 0.5 * jnp.sum(self.a * (x[None, :] - self.y[idx]) ** 2)


@struct.dataclass
class SphereField:
    """E = −h·x on the sphere |x|² = dim with uniform prior (von Mises–Fisher)."""

    h: jax.Array
    kind = "continuous"
    manifold = "sphere"
    differentiable = False

    @property
    def dim(self):
        return self.h.shape[0]

    def energy(self, x):
        return -jnp.dot(self.h, x)

    def log_prior(self, x):
        return jnp.zeros((), x.dtype)

    def sample_reference(self, key):
        z = jax.random.normal(key, (self.dim,))
        return z * jnp.sqrt(self.dim) / jnp.linalg.norm(z)

    def log_reference_partition(self):
        return 0.0
