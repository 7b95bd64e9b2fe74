"""engine.entropy: β(ε₀) and the canonical entropy at fixed training error against exact finite-N values."""

import math

import jax
import numpy as np
import pytest
from scipy import optimize

from thermodl.engine import entropy
from thermodl.engine.exact import to_float64
from thermodl.models import BinaryPerceptron, SphericalPerceptron

Z3 = 3.0


def _binary(N=15, P=9, seed=0):
    rng = np.random.default_rng(seed)
    return BinaryPerceptron(rng.choice([-1.0, 1.0], (P, N)), rng.choice([-1.0, 1.0], P))


def _exact_binary(m, eps0):
    """Exact canonical (β(ε₀), S/N) by enumeration: root of ⟨E⟩_β = ε₀P, S = log Z + β ε₀P."""
    with jax.enable_x64(True):
        m64 = to_float64(m)
        u0 = eps0 * m.n_data
        beta = optimize.brentq(lambda b: float(m64.exact_mean_energy(b)) - u0, 1e-8, 100.0)
        return beta, (float(m64.exact_log_partition(beta)) + beta * u0) / m.dim


def test_binary_perceptron_against_enumeration():
    m = _binary()
    eps0 = 0.05
    beta_ex, s_ex = _exact_binary(m, eps0)
    r = entropy.entropy_at_training_error(m, eps0, key=0, n_chains=64, n_steps=400, n_grid=8, beta_max=8.0,
                                          logz_options=dict(n_particles=128, n_runs=8))
    assert r.reliable, r.reasons
    assert abs(r.beta - beta_ex) < Z3 * r.beta_stderr + 0.01 * beta_ex
    assert abs(r.entropy - s_ex) < Z3 * r.entropy_stderr
    assert 0 < r.entropy < math.log(2)  # counting measure
    # canonical ≠ microcanonical: the count with exactly ε₀P errors is another number (not compared)
    assert r.root.history[0][0] == 0.0 and abs(r.root.history[0][1] - 0.5) < 0.05


def _two_pattern_sphere(N=10, seed=3):
    """Spherical perceptron with P = 2: exact Z(β) at finite N from the angle θ between y₁x₁ and y₂x₂:
    Z = (π − θ)/(2π)·(1 + e^{−2β}) + (θ/π)·e^{−β}  (both right / both wrong / one wrong)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((2, N))
    y = np.array([1.0, -1.0])
    a, b = y[0] * X[0], y[1] * X[1]
    theta = math.acos(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return SphericalPerceptron(X, y), theta


def _log_z_two(beta, theta):
    return math.log((math.pi - theta) / (2 * math.pi) * (1 + math.exp(-2 * beta)) + theta / math.pi * math.exp(-beta))


def test_spherical_two_patterns_exact_volume():
    m, theta = _two_pattern_sphere()
    eps0 = 0.1  # ⟨E⟩ = 0.2 errors
    u = lambda b: -(_log_z_two(b + 1e-6, theta) - _log_z_two(b - 1e-6, theta)) / 2e-6  # noqa: E731
    beta_ex = optimize.brentq(lambda b: u(b) - eps0 * 2, 1e-3, 50.0)
    s_ex = (_log_z_two(beta_ex, theta) + beta_ex * eps0 * 2) / m.dim
    r = entropy.entropy_at_training_error(m, eps0, key=1, kernel="sphere", n_chains=64, n_steps=400, n_grid=8,
                                          beta_max=16.0, logz_options=dict(n_particles=128, n_runs=8))
    assert r.reliable, r.reasons
    assert abs(r.beta - beta_ex) < Z3 * r.beta_stderr + 0.02 * beta_ex
    assert abs(r.entropy - s_ex) < Z3 * r.entropy_stderr + 1e-3
    assert r.entropy < 0  # normalised prior: a log volume fraction


def test_bad_targets():
    m = _binary(N=9, P=5)
    with pytest.raises(ValueError):
        entropy.beta_at_training_error(m, 0.0, key=0)
    with pytest.raises(ValueError):
        entropy.beta_at_training_error(m, 0.9, key=0, n_chains=8, n_steps=20, n_grid=3, n_newton=0)
