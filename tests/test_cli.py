"""The `dynmem` command and the README quickstart."""

import os
import runpy
import subprocess
import sys

import numpy as np
import pytest

import dynmem
from dynmem import cli


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"dynmem {dynmem.__version__}"


def test_help_lists_quickstart(capsys):
    assert cli.main([]) == 0
    assert "quickstart" in capsys.readouterr().out


def test_quickstart_writes_figure_and_gradients_agree(tmp_path, capsys):
    out = tmp_path / "fig" / "q.png"
    summary = cli.quickstart(hidden=6, t_end=4.0, out=str(out), verbose=True)
    assert out.exists() and out.stat().st_size > 1000
    with open(out, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    # No temporary file is left next to the figure.
    assert [p.name for p in out.parent.iterdir()] == ["q.png"]
    # Euler-BPTT approaches the adjoint gradient with error O(dt); dt = 0.005
    # over a unit-scale problem gives about 1e-3, so 2e-2 leaves a margin
    # while still catching a wrong sign, index or factor.
    assert 0 < summary["rel_diff_euler_bptt"] < 2e-2
    assert np.isfinite(summary["loss"]) and summary["grad_norm"] > 0
    assert "figure written" in capsys.readouterr().out


def test_quickstart_rejects_bad_width(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["quickstart", "--hidden", "0"])
    assert exc.value.code == 2
    assert "--hidden must be >= 1; got 0" in capsys.readouterr().err


def test_console_script_module_entry(tmp_path):
    out = tmp_path / "q.png"
    proc = subprocess.run([sys.executable, "-m", "dynmem.cli", "quickstart", "--hidden", "4", "--t-end", "2",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert out.exists()
    assert "relative difference to adjoint" in proc.stdout


def test_readme_quickstart_example_runs(capsys):
    path = os.path.join(os.path.dirname(__file__), "..", "examples", "quickstart.py")
    runpy.run_path(path, run_name="__main__")
    printed = capsys.readouterr().out.split()
    assert len(printed) >= 4 and np.isfinite(float(printed[0]))


def test_readme_quickstart_matches_example_file():
    root = os.path.join(os.path.dirname(__file__), "..")
    with open(os.path.join(root, "README.md")) as fh:
        readme = fh.read()
    block = readme.split("## Quickstart", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    with open(os.path.join(root, "examples", "quickstart.py")) as fh:
        example = fh.read()
    assert block.strip() in example
