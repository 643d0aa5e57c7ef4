"""The Fig. 10 experiment: Heaviside vs impulse memories of random models."""

import os

import numpy as np
import pytest

from dynmem.experiments import experiment_names, get_experiment
from dynmem.experiments import fig10
from dynmem.experiments.fig10 import heaviside_vs_impulse
from dynmem.io import read_json
from dynmem.memory import memory_function


def test_heaviside_vs_impulse_small_run():
    res = heaviside_vs_impulse(widths=(4,), depths=(1, 2), repeats=2, steps=16, rng=0)
    assert set(res.discrepancy) == {(k, 4, L) for k in ("rnn", "gru", "lstm", "ssm") for L in (1, 2)}
    for key, d in res.discrepancy.items():
        assert d.shape == (2,) and np.all(np.isfinite(d)) and np.all(d >= 0)
        H, I = res.heaviside[key], res.impulse[key]
        np.testing.assert_allclose(d, np.max(np.abs(H - I), axis=1) / np.max(H, axis=1))
    # The discretised SSM is linear: both memories are the same up to rounding.
    assert np.max(res.discrepancy[("ssm", 4, 1)]) < 1e-12 and np.max(res.discrepancy[("ssm", 4, 2)]) < 1e-12
    assert "median rel. diff" in res.summary()


def test_memories_are_those_of_memory_function_on_the_same_random_models():
    # Recompute one repeat independently: same seed stream, same model, memory_function directly.
    res = heaviside_vs_impulse(models=("gru",), widths=(5,), repeats=1, steps=12, rng=3)
    from dynmem.gated import GRUCell

    model = GRUCell.random(5, 1, rng=np.random.default_rng(3))
    k = np.arange(12)
    np.testing.assert_allclose(res.heaviside[("gru", 5, 1)][0], memory_function(model, k, input="heaviside").values,
                               rtol=1e-13)
    np.testing.assert_allclose(res.impulse[("gru", 5, 1)][0], memory_function(model, k, input="impulse").values,
                               rtol=1e-13)


def test_deeper_rows_are_memories_of_torch_style_stacks_drawn_bottom_up():
    from dynmem.gated import LSTMCell
    from dynmem.stack import Stack

    res = heaviside_vs_impulse(models=("lstm",), widths=(3,), depths=(2,), repeats=1, steps=10, rng=4)
    rng = np.random.default_rng(4)
    l1 = LSTMCell.random(3, 1, rng=rng)
    stack = Stack([l1, LSTMCell.random(3, 3, rng=rng)])
    k = np.arange(10)
    np.testing.assert_allclose(res.heaviside[("lstm", 3, 2)][0], memory_function(stack, k, input="heaviside").values,
                               rtol=1e-13)
    assert res.depths == (2,) and "layers" in res.summary()


def test_validation():
    with pytest.raises(ValueError, match="`models` must hold names"):
        heaviside_vs_impulse(models=("transformer",))
    with pytest.raises(ValueError, match="`steps`"):
        heaviside_vs_impulse(steps=1)
    with pytest.raises(ValueError, match="'dynmem' protocol only"):
        fig10.config("quick", "paper")
    with pytest.raises(ValueError, match="unknown fig10 setting 'depth'"):
        fig10.config("quick", depth=2)
    with pytest.raises(ValueError, match="`depths`"):
        heaviside_vs_impulse(depths=(0,))
    with pytest.raises(ValueError, match="`size`"):
        fig10.config("huge")


def test_registered_with_twenty_repeats_and_several_widths():
    assert "fig10" in experiment_names() and get_experiment("fig10") is fig10.EXPERIMENT
    for size in ("quick", "full"):
        cfg = fig10.config(size)
        assert cfg["repeats"] == 20 and len(cfg["widths"]) >= 2 and cfg["models"] == ["rnn", "gru", "lstm", "ssm"]
        assert cfg["depths"] == [1, 2, 4]  # the layer counts of [WLL] Fig. 10's legend


def test_quick_reproduce_writes_result_figure_and_a_computed_verdict(tmp_path):
    from dynmem.experiments.report import _decode
    from dynmem.reproduce import reproduce

    cfg = fig10.config("quick")
    written = reproduce(["fig10"], out=str(tmp_path), quick=True, report=True)
    path = written["fig10-dynmem"]
    assert os.path.exists(os.path.join(tmp_path, "fig10-dynmem.png"))
    d = _decode(read_json(path))
    assert set(d["rows"]) == {f"{k}-{w}" + (f"-L{L}" if L > 1 else "") for k in cfg["models"] for w in cfg["widths"]
                              for L in cfg["depths"]}
    for row in d["rows"].values():
        disc = np.asarray(row["discrepancy"])
        assert disc.shape == (cfg["repeats"],)
        assert row["median"] == pytest.approx(np.median(disc)) and row["max"] == pytest.approx(np.max(disc))
    v = fig10.verdict(d)
    # the verdict the thresholds give on the raw discrepancies (not a list of every possible verdict)
    med = [np.median(r["discrepancy"]) for r in d["rows"].values()]
    ssm_ok = all(np.max(r["discrepancy"]) <= fig10.ROUNDING for r in d["rows"].values() if r["model"] == "ssm")
    loose = all(np.median(r["discrepancy"]) <= fig10.LOOSE for r in d["rows"].values() if r["model"] != "ssm")
    expected = ("reproduced" if max(med) <= fig10.AGREE else "partly" if ssm_ok and loose else "not reproduced")
    assert v["verdict"] == expected
    assert v["numbers"]["median"] == {k: r["median"] for k, r in d["rows"].items()}
    # the SSM rows are a linear model's: equal to rounding
    assert all(d["rows"][f"ssm-{w}"]["max"] < 1e-12 for w in cfg["widths"])
    with open(os.path.join(tmp_path, "REPORT.md")) as fh:
        assert "fig10-dynmem" in fh.read()


def test_verdict_follows_the_thresholds():
    def result(med_nonlinear, ssm_max):
        rows = {"gru-8": {"model": "gru", "median": med_nonlinear, "max": 2 * med_nonlinear},
                "ssm-8": {"model": "ssm", "median": ssm_max / 2, "max": ssm_max}}
        return {"rows": rows}

    assert fig10.verdict(result(0.01, 1e-15))["verdict"] == "reproduced"
    assert fig10.verdict(result(0.1, 1e-15))["verdict"] == "partly"
    assert fig10.verdict(result(0.1, 1e-3))["verdict"] == "not reproduced"
    assert fig10.verdict(result(0.5, 1e-15))["verdict"] == "not reproduced"
