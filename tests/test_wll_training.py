"""The earlier ("dynmem" protocol) training experiments of Figs. 2 and 8b (dynmem.experiments.wll_training) and the stability-study example."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dynmem.experiments import wll_training as rt
from dynmem.reparam import get_reparam

TINY = dict(widths=(2, 4), T=30, n_train=8, n_test=6, steps=15, n_samples=6, betas=(1e-2, 1.0, 5))
KEYS = {"experiment", "quick", "model", "target", "settings", "widths", "betas", "per_width", "per_seed", "slopes",
        "verdicts", "findings", "seconds"}
ROW_KEYS = {"error0", "max_error", "median_error", "margin", "radius", "first_unstable", "blowup", "blowup_common",
            "error0_median", "margin_median", "blowup_median"}


@pytest.fixture(scope="module")
def fig2():
    return rt.run_fig2(quick=True, seeds=(0, 1), cfg=TINY)


@pytest.fixture(scope="module")
def fig4():
    return rt.run_fig4(quick=True, seeds=(0, 1), cfg=TINY)


@pytest.mark.parametrize("name", ["fig2", "fig4"])
def test_documented_keys_and_json(name, request, tmp_path):
    res = request.getfixturevalue(name)
    assert KEYS <= set(res)
    assert res["widths"] == [2, 4]
    assert len(res["betas"]) == 5
    for m in res["widths"]:
        row = res["per_width"][str(m)]
        assert ROW_KEYS <= set(row)
        assert len(row["error0"]) == 2  # one per seed
        assert all(math.isfinite(e) and e >= 0 for e in row["error0"])
        assert np.asarray(row["max_error"]).shape == (2, 5)
    for k in ("margin", "blowup", "error0"):
        assert set(res["slopes"][k]) >= {"per_seed", "median", "min", "max", "std"}
    text = json.dumps(res, allow_nan=True)
    assert json.loads(text)["experiment"] == name
    png = tmp_path / f"{name}.png"
    (rt.plot_fig2 if name == "fig2" else rt.plot_fig4)(res, str(png))
    assert png.stat().st_size > 1000


def test_fig4_perturbations_never_unstable(fig4):
    assert fig4["n_perturbed_W_unstable"] == 0
    assert fig4["n_perturbed_W_checked"] == 2 * 2 * 5 * (6 + 2)  # seeds x widths x betas x (samples + shifts)
    assert fig4["findings"]["never_unstable"]
    for m in fig4["widths"]:
        assert all(math.isinf(x) for x in fig4["per_width"][str(m)]["first_unstable"])
        assert all(x > 0 for x in fig4["per_width"][str(m)]["margin"])


def test_reparam_curve_keeps_W_hurwitz_for_large_perturbations():
    rp = get_reparam("exp")
    model = rt._initial_model(3, 0)
    w = np.asarray(rp.inverse(np.diag(model.W)))
    X_test = np.random.default_rng(0).standard_normal((4, 20, 1))
    curve, n_uns, n_chk = rt._reparam_curve(model, w, rp, rt.PowerLawKernel(1.5), np.array([0.1, 3.0, 30.0]), 5,
                                            X_test, 0)
    assert n_uns == 0 and n_chk == 3 * 7
    assert np.all(np.diff(curve.max_error) >= 0)


def test_fig2_first_unstable_consistent_with_margin(fig2):
    for m in fig2["widths"]:
        row = fig2["per_width"][str(m)]
        for fu, margin, radius in zip(row["first_unstable"], row["margin"], row["radius"]):
            # +beta I makes W unstable at beta = margin, and nothing does below the complex radius.
            betas = np.asarray(fig2["betas"])
            if margin <= betas[-1]:
                assert fu <= betas[np.searchsorted(betas, margin)] + 1e-15
            if math.isfinite(fu):
                assert fu >= radius * (1 - 1e-9) or fu == betas[0]


def test_deterministic():
    a = rt.run_fig2(quick=True, seeds=(3,), cfg=dict(TINY, widths=(2, 3)))
    b = rt.run_fig2(quick=True, seeds=(3,), cfg=dict(TINY, widths=(2, 3)))
    for k in ("error0", "max_error", "margin", "blowup"):
        assert a["per_width"]["2"][k] == b["per_width"]["2"][k]
    c = rt.run_fig4(quick=True, seeds=(3,), cfg=dict(TINY, widths=(2, 3)), reparam="exp")
    d = rt.run_fig4(quick=True, seeds=(3,), cfg=dict(TINY, widths=(2, 3)), reparam="exp")
    assert c["per_width"]["3"]["max_error"] == d["per_width"]["3"]["max_error"]
    assert c["reparam"] == "exp"


def test_bad_arguments():
    with pytest.raises(ValueError, match="reparam"):
        rt.run_fig4(reparam="direct", cfg=TINY)
    with pytest.raises(ValueError, match="seeds"):
        rt.run_fig2(seeds=(), cfg=TINY)


def test_stability_study_example(tmp_path):
    path = Path(__file__).resolve().parents[1] / "examples" / "stability_study.py"
    spec = importlib.util.spec_from_file_location("stability_study_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "study.png"
    res = mod.main(out=str(out), widths=(2, 4), T=100.0, n_samples=10, n_starts=2, verbose=False)
    assert out.stat().st_size > 1000
    assert res["widths"] == [2, 4]
    # the verdict from the returned numbers, not a list of every verdict: with two widths the slopes are taken
    # at face value, and a margin or blow-up threshold falling faster than m^-0.3 (the default slope_tol) is
    # "unstable" (measured: margin 0.0545 -> 0.0306, slope -0.83; blow-up 0.042 -> 0.0051, slope -3.0)
    slopes = [np.log(res[k][1] / res[k][0]) / np.log(2.0) for k in ("margin", "blowup")]
    assert res["verdict"] == ("unstable (boundary shrinks with m)" if min(slopes) < -0.3 else "stable approximation")
    assert res["error0"][1] < res["error0"][0]
