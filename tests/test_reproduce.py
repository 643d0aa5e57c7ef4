"""`dynmem reproduce`: experiments write complete JSON and PNG files, atomically, and resume."""

import os

import numpy as np
import pytest

from dynmem import cli, reproduce as rp
from dynmem.io import read_json


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro")
    rp.reproduce(["fig1", "fig11"], out=str(out), quick=True, seeds=(0,))
    return out


def test_fig1_json_has_every_number_and_the_mechanism(out_dir):
    d = read_json(os.path.join(out_dir, "fig1-dynmem.json"))
    assert d["reproduce"]["complete"] and d["quick"] and d["seeds"] == [0]
    s = d["summary"]
    # Exponential target: fitted exactly by free exponents, margin -log(0.9) at every width.
    assert s["exp_max_fit_error"] < 1e-8
    # measured 1.6e-15 (free exponents fit e^{-t ln(1/0.9)} exactly); 1e-10 as for every exact fit
    assert s["exp_margin_max_rel_dev"] < 1e-10
    # Power-law target: error falls with m while the margin shrinks.
    assert s["pow_error0_strictly_decreasing"] and s["pow_error0_ratio_m1_over_m8"] > 1e3
    assert s["pow_margin_slope"] < -1.0
    rows = d["mechanism"]["pow_T1000"]["rows"]
    assert [r["m"] for r in rows] == [1, 2, 4, 6, 8]
    for r in rows:
        assert len(r["seeds"]) == 1 and len(r["seeds"][0]["max_error"]) == len(d["betas"])
        # the first unstable beta cannot come before the spectral margin (+beta I is in the ball)
        assert r["first_unstable_median"] >= r["margin"] * 0.999 or r["first_unstable_median"] == d["betas"][0]
    assert os.path.getsize(os.path.join(out_dir, "fig1-dynmem.png")) > 10_000


def test_fig11_shows_non_decaying_memory_at_large_amplitude(out_dir):
    d = read_json(os.path.join(out_dir, "fig11-dynmem.json"))
    assert d["alpha"] < 0
    assert d["curves"]["5.0"]["kind"] == "non-decaying"
    assert d["curves"]["0.01"]["kind"] != "non-decaying"
    assert d["starts_to_corners"] > 0 and d["starts_to_zero"] > 0


def test_resume_skips_finished_experiments(out_dir, monkeypatch, patch_experiment):
    path = os.path.join(out_dir, "fig11-dynmem.json")
    before = os.path.getmtime(path)

    def boom(*a, **kw):
        raise AssertionError("a finished experiment was recomputed")

    patch_experiment("fig11", run=boom)
    rp.reproduce(["fig11"], out=str(out_dir), quick=True, seeds=(0,))
    assert os.path.getmtime(path) == before


def test_interrupted_experiment_leaves_no_partial_file(tmp_path, monkeypatch, patch_experiment):
    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    patch_experiment("fig11", run=interrupted)
    with pytest.raises(KeyboardInterrupt):
        rp.reproduce(["fig11"], out=str(tmp_path), quick=True, seeds=(0,))
    assert os.listdir(tmp_path) == []


def test_cli_rejects_unknown_experiment(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "fig99"])
    assert exc.value.code == 2
    assert "unknown experiment(s) ['fig99']" in capsys.readouterr().err


def test_json_encodes_non_finite_numbers_as_strings(tmp_path):
    from dynmem.io import atomic_write_json

    p = tmp_path / "x.json"
    atomic_write_json(str(p), {"a": np.inf, "b": [np.nan, 1.0], "c": np.float64(2.5)})
    assert read_json(str(p)) == {"a": "inf", "b": ["nan", 1.0], "c": 2.5}


def test_an_experiment_whose_extra_is_missing_is_skipped_under_all_and_refused_by_name(tmp_path, monkeypatch, capsys):
    import importlib.util

    from dynmem import reproduce as rp
    from dynmem.experiments import fig9

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    assert rp.missing_extras(fig9.EXPERIMENT) == ["data"]
    with pytest.raises(ImportError, match=r"dynmem\[data\]"):
        rp.reproduce(["fig9"], out=str(tmp_path), report=False)
    # under "all" it is skipped with one line (the other experiments are not run here: the registry is cut to fig9)
    monkeypatch.setattr(rp, "EXPERIMENTS", ("fig9",))
    assert rp.reproduce(["all"], out=str(tmp_path), report=False) == {}
    assert "fig9: skipped (needs the optional extra data" in capsys.readouterr().err
