"""Every script in examples/ runs as a user would run it, and each one has a test that runs it.

The scripts not run by another test run here, as ``__main__`` in a temporary working directory (they write
their figures there); a figure they write must be a readable PNG.  The table ``ELSEWHERE`` names the test
that runs each of the others, and ``test_every_example_is_run_by_some_test`` fails when a new script is added
to examples/ without one.
"""

import os
import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

#: scripts run by another test, and which
ELSEWHERE = {
    "quickstart.py": "test_cli.py",
    "test_memory_decay.py": "test_example_property_tests.py",
    "memory_comparison.py": "test_memory.py::test_memory_comparison_example_runs",
    "stability_study.py": "test_wll_training.py::test_stability_study_example",
    "fixed_points_hopfield.py": "test_plotting.py::test_fixed_points_example_writes_a_figure_that_reads",
}
#: scripts run here; the ones that need an optional extra name it
HERE = {
    "fixed_points_flipflop.py": None,
    "lyapunov_lorenz.py": None,
    "memory_capacity.py": None,
    "ssm_initialisers.py": None,
    "stacked_memory.py": None,
    "system_norms.py": None,
    "torch_gru_memory.py": "torch",
}


def test_every_example_is_run_by_some_test():
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    covered = set(ELSEWHERE) | set(HERE)
    assert scripts - covered == set(), f"examples without a test: {sorted(scripts - covered)}"
    assert covered - scripts == set(), f"tests name examples that are gone: {sorted(covered - scripts)}"
    for name, where in ELSEWHERE.items():
        test_file = Path(__file__).with_name(where.split("::")[0])
        text = test_file.read_text()
        assert name in text, f"{where} does not mention {name}"
        if "::" in where:
            assert f"def {where.split('::')[1]}(" in text, f"{where} is not a test"


@pytest.mark.parametrize("name", sorted(HERE))
def test_example_runs_and_its_figures_read(name, tmp_path, monkeypatch, capsys):
    extra = HERE[name]
    if extra:
        pytest.importorskip(extra)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", [name])  # the command line of `python examples/<name>`
    before = set(os.listdir(tmp_path))
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    plt.close("all")
    out = capsys.readouterr().out
    assert out.strip(), f"{name} printed nothing"
    assert "nan" not in out.lower().split(), f"{name} printed a bare nan:\n{out}"
    for fname in set(os.listdir(tmp_path)) - before:
        if fname.endswith(".png"):
            img = plt.imread(tmp_path / fname)
            assert img.ndim == 3 and min(img.shape[:2]) >= 100, f"{name} wrote an unreadable figure {fname}"
            assert float(img[..., :3].std()) > 0.01, f"{name} wrote a blank figure {fname}"
