"""The one pass/fail rule of every figure and exact check (``experiments.common.check_row``)."""

import math

import pytest
from scipy import stats

from thermodl.experiments import common


def test_t_quantile_and_its_one_fallback():
    normal = stats.norm.ppf(1 - common.FALSE_ALARM / 2)
    assert common.t_quantile(math.inf) == pytest.approx(normal) and normal == pytest.approx(3.0, abs=1e-3)
    assert common.t_quantile(4) == pytest.approx(stats.t.ppf(1 - common.FALSE_ALARM / 2, 4))
    assert common.t_quantile(4) > common.t_quantile(40) > common.t_quantile(math.inf)
    for unknown in (None, math.nan, 0, 0.5, -1):  # unknown or no spread estimate: the error bar at face value
        assert common.t_quantile(unknown) == common.t_quantile(math.inf)


def test_allowance_adds_linearly_to_t_standard_errors():
    t = common.t_quantile(9)
    row = common.check_row("q", "m", 1.0 + t * 0.1 + 0.05 - 1e-9, 0.1, 1.0, dof=9, allowance=0.05)
    assert row["pass"] and row["tolerance"] == pytest.approx(t + 0.5) and row["dof"] == 9 and row["allowance"] == 0.05
    assert not common.check_row("q", "m", 1.0 - t * 0.1 - 0.05 - 1e-9, 0.1, 1.0, dof=9, allowance=0.05)["pass"]
    assert math.isnan(common.check_row("q", "m", 1.0, 0.1, 1.0)["dof"])


def test_zero_stderr_compares_with_the_allowance():
    assert common.check_row("q", "m", 1.04, 0.0, 1.0, allowance=0.05)["pass"]
    assert not common.check_row("q", "m", 1.06, 0.0, 1.0, allowance=0.05)["pass"]
    assert not common.check_row("q", "m", 1.01, 0.0, 1.0)["pass"]
    assert common.check_row("q", "m", 1.0, 0.0, 1.0)["pass"]


def test_non_finite_inputs_never_pass():
    for args in ((math.nan, 0.1, 1.0), (1.0, math.nan, 1.0), (1.0, 0.1, math.inf), (1.0, -0.1, 1.0)):
        assert not common.check_row("q", "m", *args, allowance=1.0)["pass"]


def test_one_sided_checks():
    # at-most: a bound that must not be exceeded beyond the noise
    assert common.check_row("q", "m", -5.0, 0.1, 0.0, side="at-most")["pass"]
    assert common.check_row("q", "m", 0.25, 0.1, 0.0, side="at-most")["pass"]
    assert not common.check_row("q", "m", 0.35, 0.1, 0.0, side="at-most")["pass"]
    # exceeds: significantly above the reference
    assert common.check_row("q", "m", 0.35, 0.1, 0.0, side="exceeds")["pass"]
    assert not common.check_row("q", "m", 0.25, 0.1, 0.0, side="exceeds")["pass"]
    with pytest.raises(ValueError, match="side"):
        common.check_row("q", "m", 0.0, 0.1, 0.0, side="above")
    with pytest.raises(ValueError, match="allowance"):
        common.check_row("q", "m", 0.0, 0.1, 0.0, allowance=-1.0)
