"""The result type every log-partition estimator returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LogZEstimate"]


@dataclass(frozen=True)
class LogZEstimate:
    """An estimate of log Z(β) with its standard error and diagnostics.

    Attributes:
        value: the estimate of log Z(β) (natural log; counting measure for discrete models, normalised prior for
            continuous ones — see models/base.py).
        stderr: its standard error (one sigma), as honest as the method allows: AIS from the spread of the
            independent runs' weights, TI from the Monte Carlo error of ⟨E⟩ plus a quadrature-error estimate,
            parallel tempering from independent chains. 0.0 for exact methods.
        method: "ais" | "smc" | "ti" | "pt" | "exact".
        beta: the inverse temperature.
        diagnostics: method-specific numbers (ESS of the log weights, acceptance, swap and round-trip rates,
            R-hat, number of NaN/excluded chains, ...), plain Python / NumPy values.
        reliable: False when the estimator's own checks say the value or its error bar cannot be trusted.
        reasons: why not (one string per failed check); empty when reliable.
    """

    value: float
    stderr: float
    method: str
    beta: float
    diagnostics: dict[str, Any] = field(default_factory=dict)
    reliable: bool = True
    reasons: tuple = ()

    @property
    def free_energy(self) -> float:
        """F = −log Z / β (undefined at β = 0)."""
        return -self.value / self.beta if self.beta != 0 else math.nan

    def z_score(self, exact: float) -> float:
        """(estimate − exact) / stderr; ±inf when stderr is 0 and the values differ."""
        diff = self.value - exact
        if self.stderr > 0:
            return diff / self.stderr
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)

    def __str__(self) -> str:
        return f"log Z(β={self.beta:g}) = {self.value:.6g} ± {self.stderr:.2g} [{self.method}]"
