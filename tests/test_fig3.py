"""[WLL] Fig. 3: the filter (approximated, positive family stability radius) on planted numbers, the verdict from the
teachers' rows, and a tiny run whose figure key never claims a kept teacher when none was kept."""

import copy
import math

import numpy as np
import pytest

from dynmem.experiments import fig3

WIDTHS = [8, 16, 32, 64]


def test_filter_rejects_a_planted_power_law_teacher_and_keeps_an_exponential_one():
    # students of a power-law teacher: thresholds shrink like 1/m (Thm 3.9's mechanism); of an exponential: flat
    power = fig3.keep_rule([0.1, 0.02, 0.006, 0.002], [0.4, 0.2, 0.1, 0.05], WIDTHS, tol=1e-2, horizon=100.0)
    expo = fig3.keep_rule([0.1, 0.02, 0.006, 0.002], [0.95, 0.97, 1.0, 1.0], WIDTHS, tol=1e-2, horizon=100.0)
    assert power["approximated"] and not power["positive_radius"] and not power["kept"]
    assert math.isclose(power["radius_slope"], -1.0, rel_tol=1e-9)
    assert expo["kept"] and expo["family_radius"] == 0.95


def test_filter_rejects_for_each_reason():
    ok = dict(tol=1e-2, horizon=100.0)
    assert not fig3.keep_rule([0.5] * 4, [1.0] * 4, WIDTHS, **ok)["kept"]                   # not approximated
    assert not fig3.keep_rule([1e-3] * 4, [0.005] * 4, WIDTHS, **ok)["kept"]                 # radius below 1/H
    assert not fig3.keep_rule([1e-3] * 4, [1.0, 1.0, 1.0, -0.1], WIDTHS, **ok)["kept"]      # an unstable student
    assert not fig3.keep_rule([1e-3] * 4, [1.0, 1.0, 1.0, math.nan], WIDTHS, **ok)["kept"]  # unmeasured


def _row(i, kind, kept, decay, positive=True):
    return {"index": i, "kind": kind, "kept": kept, "decay_kind": decay, "positive_radius": positive}


def test_verdict_follows_the_rows():
    good = [_row(0, "exp", True, "exponential"), _row(1, "power", False, "polynomial", False),
            _row(2, "logrates", False, "polynomial", False), _row(3, "rnn", True, "exponential")]
    assert fig3.verdict({"teachers": good})["verdict"] == "reproduced"
    leaky = copy.deepcopy(good)
    leaky[3]["decay_kind"] = "polynomial"  # a kept teacher that is not exponential, long-memory ones still rejected
    assert fig3.verdict({"teachers": leaky})["verdict"] == "partly"
    bad = copy.deepcopy(leaky)
    bad[1].update(kept=True, positive_radius=True)  # and a power-law teacher passes the filter
    v = fig3.verdict({"teachers": bad})
    assert v["verdict"] == "not reproduced" and v["numbers"]["long_memory_kept"] == 1
    none = [dict(r, kept=False) for r in good]
    assert fig3.verdict({"teachers": none})["verdict"] == "not informative"
    no_long = [r for r in good if r["kind"] not in fig3.LONG_MEMORY]
    assert "no long-memory teacher" in fig3.verdict({"teachers": no_long})["why"]


@pytest.fixture(scope="module")
def tiny():
    cfg = fig3.config("quick", pool=[{"kind": "exp", "rate": 1.0}, {"kind": "power", "p": 1.5},
                                     {"kind": "logrates", "p": 1.5}],
                      teacher_width=16, widths=[2, 3], n_train=32, n_test=16, T=30, T_long=60, epochs=2,
                      t_memory=[0.0, 10.0, 51])
    return fig3.run(cfg)


def test_tiny_run_rows_and_the_figure_key(tiny, tmp_path, monkeypatch):
    rows = tiny["teachers"]
    assert [t["kind"] for t in rows] == ["exp", "power", "logrates"]
    for t in rows:  # every row's kept flag is the rule applied to its own numbers
        rule = fig3.keep_rule(t["relative_error"], t["shift_threshold"], tiny["config"]["widths"],
                              tol=tiny["config"]["tol"], horizon=tiny["config"]["T"] * 0.1)
        assert rule["kept"] == t["kept"]
    assert rows[0]["decay_kind"] == "exponential" and rows[1]["decay_kind"] == "polynomial"
    titles = []
    import matplotlib.axes

    orig = matplotlib.axes.Axes.set

    def spy(self, **kw):
        if "title" in kw:
            titles.append(kw["title"])
        return orig(self, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "set", spy)
    nobody = copy.deepcopy(tiny)
    for t in nobody["teachers"]:
        t["kept"] = False
    fig3.plot(nobody, str(tmp_path / "none.png"))
    assert not any("solid: kept" in s for s in titles) and any("no teacher kept" in s for s in titles)
    titles.clear()
    some = copy.deepcopy(tiny)
    some["teachers"][0]["kept"] = True
    fig3.plot(some, str(tmp_path / "some.png"))
    assert any("solid: kept" in s for s in titles)
