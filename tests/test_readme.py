"""README's two set-up commands stay true: CI runs exactly README's test command."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_readme_test_command_verbatim():
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    test_cmds = [c for c in _readme_commands() if "pytest" in c]
    assert test_cmds, "README has no pytest command"
    assert test_cmds[0] in ci_lines, f"CI does not run README's test command {test_cmds[0]!r}"


def test_readme_main_job_is_a_registered_experiment():
    from thermodl.engine.registry import EXPERIMENTS

    jobs = [c for c in _readme_commands() if "thermodl reproduce" in c]
    assert jobs, "README has no `thermodl reproduce` command"
    name = jobs[0].split("thermodl reproduce", 1)[1].split()[0]
    assert name in EXPERIMENTS
