"""The `thermodl` command line: help, one-line errors with exit code 2, exact values, atomic outputs, registry,
declarative sweeps."""

import itertools
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from thermodl.engine import cli, io, registry
from thermodl.engine.cli import display

SUBCOMMANDS = ("logz", "thermo", "reproduce", "sweep")
CONFIGS = os.path.join(os.path.dirname(registry.__file__), os.pardir, "experiments", "configs")


def run_cli(capsys, *args):
    """Run ``thermodl ARGS`` in-process through the real entry point; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def assert_usage_error(code, out, err, *fragments):
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err + out
    for f in fragments:
        assert f in lines[0], (f, lines[0])


# ------------------------------------------------------------------------------------------------ help


def test_main_help_lists_subcommands(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for sub in SUBCOMMANDS:
        assert sub in out


def test_no_arguments_prints_help(capsys):
    code, out, _ = run_cli(capsys)
    assert code == 0 and "logz" in out


@pytest.mark.parametrize("sub", SUBCOMMANDS[:3])
def test_subcommand_help(capsys, sub):
    code, out, err = run_cli(capsys, sub, "--help")
    assert code == 0, err
    assert "Usage" in out and "--seed" in out


def test_logz_help_documents_model_options(capsys):
    _, out, _ = run_cli(capsys, "logz", "--help")
    for flag in ("--beta", "--method", "--L", "--couplings", "--weights", "--patterns", "--alpha", "--data",
                 "--sigma-w", "--json", "[P, N]", "--kappa", "--widths", "--loss", "spherical_perceptron", "mlp"):
        assert flag in out, flag


def test_sweep_help_explains_the_config(capsys):
    code, out, err = run_cli(capsys, "sweep", "--help")
    assert code == 0, err
    for text in ("CONFIG", "[model]", "[sweep]", "[estimator]", "[output]", "linspace", "experiments/configs/",
                 "--out", "--no-resume", "--dry-run", "--force", "--quiet"):
        assert text in out, text


# ------------------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("logz", "ising2d", "--beta", "-0.5"), "--beta must be finite and >= 0, got -0.5"),
        (("logz", "ising2d", "--beta", "nan"), "--beta must be finite and >= 0, got nan"),
        (("logz", "ising2d", "--beta", "inf"), "--beta must be finite"),
        (("logz", "ising2d", "--beta", "abc"), "--beta"),
        (("logz", "ising2d"), "Missing option '--beta'"),
        (("logz", "ising2d", "--beta", "0.4", "--L", "0"), "--L must be a positive integer, got 0"),
        (("logz", "sk", "--beta", "0.4", "--n", "-3"), "--n must be a positive integer, got -3"),
        (("logz", "rbm", "--beta", "0.4", "--n-hidden", "0"), "--n-hidden must be a positive integer"),
        (("logz", "ising2d", "--beta", "0.4", "--chains", "0", "--method", "ais"), "--chains must be a positive"),
        (("logz", "potts", "--beta", "0.4"), "unknown model 'potts'; choose one of: ising2d, sk"),
        (("logz", "ising2d", "--beta", "0.4", "--method", "foo"), "unknown method 'foo'; choose one of: auto, ais"),
        (("logz", "sk", "--beta", "0.4", "--L", "4"), "option --L does not apply to model 'sk'"),
        (("logz", "ising2d", "--beta", "0.4", "--L", "4", "--chains", "8"), "--chains does not apply to method"),
        (("logz", "ising2d", "--beta", "0.4", "--J", "nan"), "--J must be finite"),
        (("logz", "perceptron", "--beta", "1", "--p", "3", "--alpha", "0.5"), "either --p or --alpha"),
        (("logz", "rbm", "--beta", "1", "--units", "ternary"), "unknown units 'ternary'"),
        (("logz", "ising2d", "--beta", "0.4", "--bogus"), "No such option: --bogus"),
        (("thermo", "ising2d", "--betas", "0.1,abc"), "--betas must be comma-separated numbers"),
        (("thermo", "ising2d", "--betas", "0.2,0.1"), "--betas must be strictly increasing"),
        (("thermo", "ising2d", "--betas", "0.1,-0.2"), "--betas must be finite and >= 0"),
        (("thermo", "ising2d"), "thermo needs --betas or --beta-max"),
        (("thermo", "ising2d", "--beta-max", "1", "--n-betas", "1"), "--n-betas must be at least 2"),
        (("thermo", "ising2d", "--betas", "0,0.1", "--method", "ais"), "unknown method 'ais'; choose one of: ti, pt"),
        (("thermo", "ising2d", "--betas", "0,0.1", "--out", "x.csv"), "--out must be a netCDF file"),
        (("reproduce", "no-such-experiment"), "unknown experiment 'no-such-experiment'; choose one of: exact-checks"),
        (("reproduce",), "reproduce needs an experiment NAME or --all"),
        (("reproduce", "exact-checks", "--all"), "reproduce needs an experiment NAME or --all"),
        (("logz", "sk", "--beta", "1", "--kappa", "0.1"), "option --kappa does not apply to model 'sk'"),
        (("logz", "perceptron", "--beta", "1", "--alpha", "-1"), "--alpha must be finite and > 0, got -1.0"),
        (("logz", "mlp", "--beta", "1", "--loss", "hinge"), "unknown loss 'hinge'; choose one of: squared, logistic"),
        (("logz", "mlp", "--beta", "1", "--widths", "8,x"), "--widths must be comma-separated positive integers"),
        (("logz", "mlp", "--beta", "1", "--widths", "0"), "--widths must be comma-separated positive integers, got '0"),
        (("logz", "mlp", "--beta", "1", "--classes", "3,8"), "--classes applies only to --data digits"),
        (("logz", "mlp", "--beta", "1", "--data", "teachr"), "unknown --data 'teachr'; choose one of: teacher"),
        (("logz", "mlp", "--beta", "1", "--data", "digits", "--n", "5"), "--n applies only to --data teacher"),
        (("sweep", "no-such-config.toml"), "sweep config file 'no-such-config.toml' does not exist"),
        (("sweep",), "Missing argument"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, args, fragment):
    assert_usage_error(*run_cli(capsys, *args), fragment)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_bad_data_files(capsys, tmp_path):
    rng = np.random.default_rng(0)
    X = np.sign(rng.standard_normal((10, 9)))
    y = np.sign(rng.standard_normal(10))
    mismatch = _npz(tmp_path / "mismatch.npz", X=X, y=y[:8])
    assert_usage_error(*run_cli(capsys, "logz", "perceptron", "--beta", "1", "--data", mismatch),
                       "shape mismatch: y has shape (8,) but axis 0 (P) must be 10 as in X")
    Xnan = X.copy()
    Xnan[3, 4] = np.nan
    nan = _npz(tmp_path / "nan.npz", X=Xnan, y=y)
    assert_usage_error(*run_cli(capsys, "logz", "linear", "--beta", "1", "--data", nan),
                       "nan.npz:X contains 1 non-finite value(s) (NaN or inf), first at nan.npz:X[3, 4]")
    assert_usage_error(*run_cli(capsys, "logz", "perceptron", "--beta", "1", "--data", tmp_path / "missing.npz"),
                       "--data: file not found:", "missing.npz")
    nokey = _npz(tmp_path / "nokey.npz", inputs=X, y=y)
    assert_usage_error(*run_cli(capsys, "logz", "linear", "--beta", "1", "--data", nokey),
                       "has no array 'X' (it has: inputs, y)")
    garbage = tmp_path / "garbage.npz"
    garbage.write_text("not a zip file")
    assert_usage_error(*run_cli(capsys, "logz", "linear", "--beta", "1", "--data", garbage), "cannot read")
    J = rng.standard_normal((6, 6))
    np.fill_diagonal(J, 0.0)  # zero diagonal but not symmetric: SK's own validation names the problem
    assert_usage_error(*run_cli(capsys, "logz", "sk", "--beta", "1", "--couplings", _npz(tmp_path / "J.npz", J=J)),
                       "symmetric")
    assert_usage_error(*run_cli(capsys, "logz", "sk", "--beta", "1", "--couplings", _npz(tmp_path / "J3.npz",
                                                                                         J=np.zeros((2, 3)))),
                       "J must be square [N, N], got shape (2, 3)")
    W = _npz(tmp_path / "W.npz", W=np.zeros((4, 3)), a=np.zeros(4), b=np.zeros(2))
    assert_usage_error(*run_cli(capsys, "logz", "rbm", "--beta", "1", "--weights", W),
                       "shape mismatch: b has shape (2,) but axis 0 (n_hidden) must be 3 as in W")
    assert_usage_error(*run_cli(capsys, "logz", "hopfield", "--beta", "1", "--patterns", tmp_path / "xi.npz"),
                       "--patterns: file not found")


def test_subprocess_entry_point_has_no_traceback(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    bad = subprocess.run([sys.executable, "-m", "thermodl.engine.cli", "logz", "ising2d", "--beta", "-1"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: --beta must be finite and >= 0, got -1.0"
    assert bad.stdout == ""


# ------------------------------------------------------------------------------------------ exact values


def _ising_log_z_enumerated(L: int, beta: float) -> float:
    """log Z of the L×L periodic Ising model (J=1, h=0) by brute force in float64, independent of the package."""
    n = L * L
    states = np.array(list(itertools.product((-1.0, 1.0), repeat=n))).reshape(-1, L, L)
    bonds = (states * np.roll(states, -1, axis=1) + states * np.roll(states, -1, axis=2)).sum(axis=(1, 2))
    a = beta * bonds
    return float(a.max() + np.log(np.exp(a - a.max()).sum()))


@pytest.mark.parametrize("beta", [0.3, 0.5 * math.log1p(math.sqrt(2.0))])
def test_logz_exact_json_is_kaufman(capsys, beta):
    code, out, err = run_cli(capsys, "logz", "ising2d", "--L", "4", "--beta", beta, "--method", "exact", "--json")
    assert code == 0, err
    res = json.loads(out)
    expected = _ising_log_z_enumerated(4, beta)
    assert res["method"] == "exact" and res["stderr"] == 0.0
    assert res["estimate"] == pytest.approx(expected, rel=1e-10)
    assert res["exact"] == pytest.approx(expected, rel=1e-10)
    assert res["dim"] == 16 and res["model_options"] == {"L": 4, "M": 4, "J": 1.0, "h": 0.0}
    assert res["log_Z0"] == pytest.approx(16 * math.log(2))


def test_logz_table_output(capsys):
    code, out, err = run_cli(capsys, "logz", "ising2d", "--L", "4", "--beta", "0.3", "--quiet")
    assert code == 0, err
    assert "log Z of Ising2D 4×4" in out and "exact" in out
    assert f"{_ising_log_z_enumerated(4, 0.3):.6f}"[:8] in out


def test_logz_ais_json_within_three_sigma(capsys):
    code, out, err = run_cli(capsys, "logz", "ising2d", "--L", "4", "--beta", "0.3", "--method", "ais",
                             "--chains", "128", "--steps", "64", "--seed", "3", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["method"] == "ais" and res["stderr"] > 0
    assert res["exact"] == pytest.approx(_ising_log_z_enumerated(4, 0.3), rel=1e-10)
    assert abs(res["z"]) < 3, res
    assert "ess" in res["diagnostics"]


def test_seed_is_monte_carlo_only_and_disorder_seed_draws_the_couplings(capsys, monkeypatch):
    """--seed never changes the model: same --disorder-seed, two --seed values -> identical couplings."""
    from thermodl.engine import catalog

    built, real = [], catalog.build
    monkeypatch.setattr(catalog, "build", lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    runs = {}
    for seed, disorder in ((0, None), (5, None), (5, 2)):
        extra = () if disorder is None else ("--disorder-seed", disorder)
        code, out, err = run_cli(capsys, "logz", "sk", "--n", "6", "--beta", "0.7", "--method", "ais", "--chains",
                                 "16", "--steps", "8", "--seed", seed, *extra, "--json")
        assert code == 0, err
        runs[seed, disorder] = json.loads(out)
    couplings = [np.asarray(b.model.J) for b in built]
    np.testing.assert_array_equal(couplings[0], couplings[1])  # --seed 0 and --seed 5: the same model
    assert not np.array_equal(couplings[1], couplings[2])  # --disorder-seed 2 draws other couplings
    assert runs[0, None]["exact"] == runs[5, None]["exact"] != runs[5, 2]["exact"]
    assert runs[0, None]["estimate"] != runs[5, None]["estimate"]  # ... while --seed does change the sampling
    assert runs[5, None]["disorder_seed"] == 0 and runs[5, None]["model_options"]["disorder_seed"] == 0
    assert runs[5, 2]["seed"] == 5 and runs[5, 2]["model_options"]["disorder_seed"] == 2
    thermo = [json.loads(run_cli(capsys, "thermo", "sk", "--n", "6", "--betas", "0.5,1", "--chains", "8",
                                 "--steps", "10", "--seed", seed, "--json")[1]) for seed in (0, 3)]
    assert thermo[0]["data"]["log_Z_exact"] == thermo[1]["data"]["log_Z_exact"]
    assert thermo[0]["attrs"]["disorder_seed"] == 0 and thermo[1]["attrs"]["seed"] == 3
    assert_usage_error(*run_cli(capsys, "logz", "sk", "--beta", "1", "--disorder-seed", "-1"),
                       "--disorder-seed must be a non-negative integer seed, got -1")


def _spherical_perceptron_one_pattern_log_z(N: int, kappa: float, beta: float) -> float:
    """Exact log Z(β) of the spherical perceptron with ONE ±1 pattern: w uniform on |w|² = N, |x|² = N, so
    t = y w·x/N is the cosine of a uniform direction, (1 + t)/2 ~ Beta((N−1)/2, (N−1)/2); error iff t ≤ κ/√N."""
    from scipy import stats

    p_error = stats.beta.cdf((1 + kappa / math.sqrt(N)) / 2, (N - 1) / 2, (N - 1) / 2)
    return math.log(1 - p_error * (1 - math.exp(-beta)))


def test_logz_spherical_perceptron_matches_one_pattern_theory(capsys):
    code, out, err = run_cli(capsys, "logz", "spherical_perceptron", "--n", "6", "--p", "1", "--kappa", "0.3",
                             "--beta", "2", "--method", "ti", "--chains", "32", "--steps", "300", "--json")
    assert code == 0, err
    res = json.loads(out)
    exact = _spherical_perceptron_one_pattern_log_z(6, 0.3, 2.0)
    assert res["exact"] is None and res["log_Z0"] == 0.0 and res["dim"] == 6
    assert res["model_options"] == {"n": 6, "p": 1, "kappa": 0.3, "disorder_seed": 0}
    assert 0 < res["stderr"] < 0.05 and abs((res["estimate"] - exact) / res["stderr"]) < 4, (res, exact)


@pytest.mark.slow
def test_logz_spherical_perceptron_ais_with_adapted_step_size(capsys):
    code, out, err = run_cli(capsys, "logz", "spherical_perceptron", "--n", "6", "--p", "1", "--kappa", "0.3",
                             "--beta", "2", "--method", "ais", "--chains", "64", "--steps", "100", "--json")
    res = json.loads(out)
    assert abs(res["estimate"] - _spherical_perceptron_one_pattern_log_z(6, 0.3, 2.0)) < 4 * res["stderr"], res


# --------------------------------------------------------------------------------- atomic output, registry


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    with pytest.raises(RuntimeError):
        with io.atomic_output(target) as tmp:
            tmp.write_text("half a tab")
            raise RuntimeError("crash while writing")
    assert not target.exists()
    assert list((tmp_path / "sub").iterdir()) == []
    io.atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with io.atomic_output(target) as tmp:
            tmp.write_text("new but incomplete")
            raise RuntimeError("crash")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.csv"]


FAKE_EXPERIMENT = textwrap.dedent(
    '''
    from thermodl.experiments import common
    NAME = "{name}"
    DESCRIPTION = "fake experiment {name}"

    def run(out_dir, *, full=False, seed=0):
        rows = [common.check_row("x", "exact", {measured}, 0.1, 1.0)]
        fig, ax = common.new_figure()
        ax.plot([0, 1], [0, 1])
        (out_dir / "partial.txt").write_text("written before the crash")
        if {crash}:
            raise ValueError("experiment crashed halfway")
        return common.finish(out_dir, rows, figure=fig)
    '''
)


@pytest.fixture
def fake_experiments(tmp_path, monkeypatch):
    pkg = tmp_path / "fakeexp"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    specs = {"fake-good": (1.05, False), "fake-bad": (2.0, False), "fake-crash": (1.0, True)}
    for name, (measured, crash) in specs.items():
        (pkg / f"{name.replace('-', '_')}.py").write_text(
            FAKE_EXPERIMENT.format(name=name, measured=measured, crash=crash))
        monkeypatch.setitem(registry.EXPERIMENTS, name, f"fakeexp.{name.replace('-', '_')}")
    monkeypatch.syspath_prepend(str(tmp_path))
    return specs


def test_reproduce_fake_experiment_writes_outputs(capsys, tmp_path, fake_experiments):
    out = tmp_path / "results"
    code, stdout, err = run_cli(capsys, "reproduce", "fake-good", "--out", out, "--quiet")
    assert code == 0, err
    folder = out / "fake-good"
    assert sorted(p.name for p in folder.iterdir()) == ["partial.txt", "results.csv", "results.md", "results.nc",
                                                       "results.png"]
    assert [p.name for p in out.iterdir()] == ["fake-good"]  # no temporary folders left
    assert "fake-good" in stdout


def test_reproduce_failed_check_exits_1(capsys, tmp_path, fake_experiments):
    code, _, err = run_cli(capsys, "reproduce", "fake-bad", "--out", tmp_path, "--quiet")
    assert code == 1
    assert err.strip().splitlines()[-1] == "error: 1 check(s) failed"


def test_reproduce_crash_leaves_previous_result_and_no_partial_output(capsys, tmp_path, fake_experiments,
                                                                      monkeypatch):
    out = tmp_path / "results"
    assert run_cli(capsys, "reproduce", "fake-good", "--out", out, "--quiet")[0] == 0
    before = (out / "fake-good" / "results.csv").read_text()
    # Same name, now crashing halfway: the previous folder must survive untouched, nothing partial appears.
    monkeypatch.setitem(registry.EXPERIMENTS, "fake-good", registry.EXPERIMENTS["fake-crash"])
    code, out_text, err = run_cli(capsys, "reproduce", "fake-good", "--out", out, "--quiet")
    assert_usage_error(code, out_text, err, "experiment crashed halfway")
    assert [p.name for p in out.iterdir()] == ["fake-good"]
    assert (out / "fake-good" / "results.csv").read_text() == before
    code, *_ = run_cli(capsys, "reproduce", "fake-crash", "--out", out, "--quiet")
    assert code == 2 and not (out / "fake-crash").exists()


def test_reproduce_all_writes_index(capsys, tmp_path, fake_experiments, monkeypatch):
    for name in list(registry.EXPERIMENTS):
        if not name.startswith("fake-"):
            monkeypatch.delitem(registry.EXPERIMENTS, name)
    out = tmp_path / "all"
    code, stdout, err = run_cli(capsys, "reproduce", "--all", "--out", out, "--quiet")
    assert code == 1  # fake-bad fails its check and fake-crash crashes; the others still run
    assert "error: fake-crash: experiment crashed halfway" in err
    index = (out / "index.md").read_text()
    assert "## fake-good" in index and "![fake-good](fake-good/results.png)" in index
    assert "1/1 checks pass" in index and "0/1 checks pass" in index
    assert "**failed:** experiment crashed halfway" in index
    assert "| quantity | method | measured |" in index
    assert not (out / "fake-crash").exists()


def test_reproduce_list(capsys, fake_experiments):
    code, out, _ = run_cli(capsys, "reproduce", "--list")
    assert code == 0
    assert "exact-checks" in out and "fake experiment fake-good" in out


def test_registry_relocates_paths_and_rejects_unknown_size(tmp_path, fake_experiments):
    res = registry.run_experiment("fake-good", tmp_path)
    assert res["figure"] == str(tmp_path / "fake-good" / "results.png")
    assert os.path.exists(res["figure"]) and os.path.exists(res["data"])
    assert res["name"] == "fake-good" and res["n_pass"] == 1 and res["n_fail"] == 0
    with pytest.raises(ValueError, match="has no size option"):
        registry.run_experiment("fake-good", tmp_path, size="tiny")


def test_logz_reliability_column_and_json_field(capsys):
    code, out, err = run_cli(capsys, "logz", "ising2d", "--L", "4", "--beta", "0.3", "--method", "ais",
                             "--chains", "128", "--steps", "64", "--seed", "3", "--quiet", "--strict")
    assert code == 0, err
    assert "reliable" in out and "yes" in out and "NOT RELIABLE" not in err
    code, out, err = run_cli(capsys, "logz", "ising2d", "--L", "4", "--beta", "0.3", "--method", "exact", "--json")
    res = json.loads(out)
    assert code == 0 and res["reliable"] is True and res["reasons"] == []


def test_logz_unreliable_prints_reasons_and_strict_exits_3(capsys):
    """TI on a binary perceptron near capacity at β = 20: chains freeze; a NOT RELIABLE line names the reasons,
    --json carries them, and --strict exits with code 3 (after printing the result)."""
    args = ("logz", "perceptron", "--n", "13", "--p", "10", "--beta", "20", "--method", "ti", "--steps", "100",
            "--n-betas", "8", "--json")
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    res = json.loads(out)
    assert res["reliable"] is False and res["reasons"] and res["diagnostics"]["unreliable"] is True
    lines = [ln for ln in err.splitlines() if ln.startswith("NOT RELIABLE")]
    assert len(lines) == 1 and res["reasons"][0] in lines[0], err
    assert "Warning" not in err  # one line, not the estimator's warning as well
    code, out, err = run_cli(capsys, *args, "--strict")
    assert code == 3 and json.loads(out)["reliable"] is False and "NOT RELIABLE" in err


def test_logz_tol_and_max_time_are_passed_through(capsys, monkeypatch):
    from thermodl.engine import api
    from thermodl.engine.logz_estimate import LogZEstimate

    seen = {}

    def fake(model, beta, *, method, key=None, **options):
        seen.update(options, method=method)
        return LogZEstimate(1.0, 0.1, method, beta, {}, reliable=False, reasons=("budget limit hit",))

    monkeypatch.setattr(api, "log_partition", fake)
    code, out, err = run_cli(capsys, "logz", "ising2d", "--L", "4", "--beta", "0.3", "--method", "ais",
                             "--tol", "0.01", "--max-time", "5", "--quiet", "--strict")
    assert code == 3 and seen["tol"] == 0.01 and seen["max_time"] == 5.0, (seen, err)
    assert "NOT RELIABLE" in err and "budget limit hit" in err and "NO" in out
    seen.clear()
    run_cli(capsys, "logz", "ising2d", "--L", "4", "--beta", "0.3", "--method", "ais", "--quiet")
    assert "tol" not in seen and "max_time" not in seen
    code, out, err = run_cli(capsys, "logz", "ising2d", "--L", "4", "--beta", "0.3", "--tol", "-1")
    assert_usage_error(code, out, err, "--tol")


def test_thermo_writes_netcdf_consistent_with_kaufman(capsys, tmp_path):
    import xarray as xr

    out = tmp_path / "deep" / "ising.nc"
    betas = (0.2, 0.35, 0.5)
    code, stdout, err = run_cli(capsys, "thermo", "ising2d", "--L", "4", "--betas", ",".join(map(str, betas)),
                                "--chains", "8", "--steps", "200", "--seed", "1", "--out", out, "--quiet")
    assert code == 0, err
    assert "thermodynamics of Ising2D 4×4" in stdout and f"wrote {out}" in stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["ising.nc"]  # no temporary file left
    with xr.open_dataset(out) as ds:
        np.testing.assert_allclose(ds["beta"].values, betas)
        for name in ("U", "F", "S", "C", "log_Z", "log_Z_stderr", "log_Z_exact"):
            assert name in ds, name
        exact = np.array([_ising_log_z_enumerated(4, b) for b in betas])
        np.testing.assert_allclose(ds["log_Z_exact"].values, exact, rtol=1e-10)
        z = (ds["log_Z"].values - exact) / ds["log_Z_stderr"].values
        assert np.all(ds["log_Z_stderr"].values > 0) and np.all(np.abs(z) < 3), z
        assert ds.attrs["model"] == "ising2d" and ds.attrs["method"] == "ti"


def test_thermo_json(capsys):
    code, out, err = run_cli(capsys, "thermo", "ising2d", "--L", "4", "--beta-min", "0", "--beta-max", "0.4",
                             "--n-betas", "5", "--chains", "4", "--steps", "50", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["method"] == "ti" and res["out"] is None
    np.testing.assert_allclose(res["data"]["beta"], np.linspace(0, 0.4, 5))
    assert len(res["data"]["log_Z"]) == 5 and len(res["data"]["log_Z_exact"]) == 5
    assert len(res["data"]["reliable"]) == 5 and isinstance(res["reliable"], bool) and "reasons" in res
    assert res["reliable"] == all(res["data"]["reliable"])


def test_thermo_strict_exits_3_when_a_beta_is_unreliable(capsys):
    code, out, err = run_cli(capsys, "thermo", "perceptron", "--n", "13", "--p", "10", "--betas", "1,10,20",
                             "--steps", "100", "--quiet", "--strict")
    assert code == 3, err
    assert "reliable" in out and "NO" in out and "NOT RELIABLE: thermodynamics" in err


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bench-ising", "bench-hmc"])
def test_reproduce_benchmarks_tiny(capsys, tmp_path, name):
    code, out, err = run_cli(capsys, "reproduce", name, "--size", "tiny", "--out", tmp_path, "--quiet")
    assert code == 0, err  # the benchmarks' correctness rows (energy vs exact, implementations agree) pass
    folder = tmp_path / name
    stem = name.replace("-", "_")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{stem}.json", "results.csv", "results.md", "results.nc", "results.png"])
    summary = json.loads((folder / f"{stem}.json").read_text())
    assert summary["size"] == "tiny" and summary["rows"]
    measured = [r["measured"] for r in summary["rows"] if r["pass"] is None and r["method"] != "ratio"]
    assert measured and all(m > 0 for m in measured)


@pytest.mark.parametrize("h5py_available", [True, False])
def test_write_netcdf_round_trip(tmp_path, monkeypatch, h5py_available):
    import xarray as xr

    if not h5py_available:
        monkeypatch.setitem(sys.modules, "h5py", None)  # `import h5py` now fails: netCDF-3 via SciPy
    ds = xr.Dataset(
        {"x": ("k", np.array([1.5, np.nan, 3.0])), "ok": ("k", np.array([True, False, True])),
         "n": ("k", np.arange(3, dtype=np.int64)), "label": ("k", np.array(["a", "bb", "ccc"]))},
        coords={"k": np.arange(3)},
        attrs={"flag": True, "config": {"L": 4}, "note": None, "name": "run"},
    )
    path = io.write_netcdf(ds, tmp_path / "d.nc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.nc"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    with xr.open_dataset(path) as back:
        np.testing.assert_array_equal(back["x"].values, ds["x"].values)
        np.testing.assert_array_equal(back["ok"].values.astype(bool), ds["ok"].values)
        np.testing.assert_array_equal(back["n"].values, [0, 1, 2])
        assert [str(v) for v in back["label"].values] == ["a", "bb", "ccc"]
        assert back.attrs["flag"] == 1 and json.loads(back.attrs["config"]) == {"L": 4}
        assert back.attrs["name"] == "run"


# ------------------------------------------------------------------------------------------------ sweep


def _ising_mean_energy_enumerated(L: int, beta: float) -> float:
    """<E> of the L×L periodic Ising model (J=1, h=0, E = total energy) by brute force in float64."""
    states = np.array(list(itertools.product((-1.0, 1.0), repeat=L * L))).reshape(-1, L, L)
    energy = -(states * np.roll(states, -1, axis=1) + states * np.roll(states, -1, axis=2)).sum(axis=(1, 2))
    w = np.exp(-beta * (energy - energy.min()))
    return float((w * energy).sum() / w.sum())


def test_sweep_dry_run_of_a_shipped_config_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the config's [output] path is relative: nothing may appear here
    code, out, err = run_cli(capsys, "sweep", os.path.join(CONFIGS, "ising.toml"), "--dry-run")
    assert code == 0, err
    assert "39 points, 3 compile group(s)" in out
    for fragment in ("L=8", "L=16", "L=32", "beta", "MiB/device"):
        assert fragment in out, fragment
    assert list(tmp_path.iterdir()) == []


TINY_SWEEP = """
[model]
name = "ising2d"
L = 4
[sweep]
beta = [0.2, 0.45]
[estimator]
n_chains = 16
n_steps = 400
n_warmup = 100
seed = {seed}
[output]
path = "{path}"
"""


def test_sweep_tiny_run_writes_netcdf_matching_enumeration(capsys, tmp_path):
    import xarray as xr

    cfg = tmp_path / "tiny.toml"
    out = tmp_path / "res" / "tiny.nc"
    cfg.write_text(TINY_SWEEP.format(seed=0, path=out))
    code, stdout, err = run_cli(capsys, "sweep", cfg, "--quiet")
    assert code == 0, err
    assert f"wrote {out}: beta 2" in stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.nc"]  # parts folder and temp files removed
    with xr.open_dataset(out) as ds:
        np.testing.assert_allclose(ds["beta"].values, [0.2, 0.45])
        exact = np.array([_ising_mean_energy_enumerated(4, b) for b in ds["beta"].values])
        z = (ds["energy"].values - exact) / ds["energy_stderr"].values
        assert np.all(ds["energy_stderr"].values > 0) and np.all(np.abs(z) < 4), z
        assert json.loads(ds.attrs["config"])["model"] == {"name": "ising2d", "L": 4}
    before = out.read_bytes()

    # the same config again: the finished result is reused; --no-resume recomputes it (same seeds, same numbers)
    assert run_cli(capsys, "sweep", cfg, "-q")[0] == 0 and out.read_bytes() == before
    assert run_cli(capsys, "sweep", cfg, "-q", "--no-resume", "--out", tmp_path / "again.nc")[0] == 0
    with xr.open_dataset(out) as a, xr.open_dataset(tmp_path / "again.nc") as b:
        np.testing.assert_array_equal(a["energy"].values, b["energy"].values)

    # a different config at the same path is refused (exit 2, one line) unless --force
    cfg.write_text(TINY_SWEEP.format(seed=1, path=out))
    assert_usage_error(*run_cli(capsys, "sweep", cfg, "-q"), "holds results of a different sweep config", "--force")
    assert out.read_bytes() == before
    assert run_cli(capsys, "sweep", cfg, "-q", "--force")[0] == 0
    assert out.read_bytes() != before


@pytest.mark.parametrize("text, fragment", [
    ("[model\nname = 'sk'", "sweep config is not valid TOML"),
    ("[model]\nname = 'sk'\nn = 0", "sk.n must be a positive integer, got 0"),
    ("[modle]\nname = 'sk'", "unknown config section(s) 'modle'"),
    ("[model]\nname = 'potts'", "unknown model 'potts'"),
    ("[model]\nname = 'sk'\n[sweep]\nbeta = {linspace = [0, 1]}", "linspace needs [start, stop, n]"),
    ("[model]\nname = 'sk'", "[sweep] needs beta"),
    ("[model]\nname = 'sk'\nn = 4\n[sweep]\nbeta = 0.5", "no output path: pass out=... (CLI: --out)"),
])
def test_sweep_bad_config_is_one_line_exit_2(capsys, tmp_path, text, fragment):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    assert_usage_error(*run_cli(capsys, "sweep", cfg, "-q"), fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_sweep_out_must_be_netcdf(capsys, tmp_path):
    assert_usage_error(*run_cli(capsys, "sweep", os.path.join(CONFIGS, "sk.toml"), "--out", tmp_path / "x.csv"),
                       "--out must be a netCDF file ending in .nc")


def test_one_progress_adapter_serves_both_conventions():
    calls = []
    bar = display.Progress(False)
    bar.enabled = True  # as on a terminal, with a recording stand-in for the rich bar
    bar._bar, bar._task = type("Bar", (), {"update": lambda self, task, **kw: calls.append(kw)})(), 0
    bar.fractions()("experiment", 0.5)  # experiments: progress(description, fraction)
    bar.steps("PT sampling")(30, 120)  # estimators: progress(done, total)
    bar.steps("TI sampling")(0, 0)
    assert calls == [{"description": "experiment", "completed": 0.5}, {"description": "PT sampling", "completed": 0.25},
                     {"description": "TI sampling", "completed": 0.0}]
    assert display.Progress(False).fractions() is None and display.Progress(False).steps("x") is None


def test_sweep_store_uses_the_one_writer_and_removes_its_partial_files(tmp_path):
    import xarray as xr

    from thermodl.engine.sweep import store

    ds = xr.Dataset({"point_index": ("point", np.arange(2)), "energy": ("point", np.array([1.0, 2.0]))})
    st = store.SweepStore(tmp_path / "r.nc", "abc", "{}")
    st.save_unit("k1", ds)
    # a kill inside io.atomic_output leaves a '.<stem>.<random>.partial<suffix>' file: removed on reopen
    (tmp_path / "r.nc.parts" / ".unit-k2.x1y2.partial.nc").write_bytes(b"half")
    (tmp_path / "r.nc.parts" / ".manifest.x1y2.partial.json").write_text("{")
    st = store.SweepStore(tmp_path / "r.nc", "abc", "{}")
    assert st.completed() == {"k1"}
    assert sorted(p.name for p in (tmp_path / "r.nc.parts").iterdir()) == ["manifest.json", "unit-k1.nc"]
    xr.testing.assert_identical(st.load_unit("k1"), ds)
