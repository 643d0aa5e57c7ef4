"""Figures that read: every experiment figure keeps its text on the canvas, no two titles overlap, the heading
names experiment, protocol and size ("quick: not evidence" for quick runs), and short log axes get plain ticks."""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import dynmem.io  # noqa: E402
from dynmem.experiments import get_experiment  # noqa: E402
from dynmem.plotting import figure_heading, finish_figure, layout_problems, readable_log_ticks  # noqa: E402


def test_layout_problems_sees_a_clipped_and_an_overlapping_title():
    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    axes[0].set_title("a very long title that runs right across into the next panel and beyond")
    axes[1].set_title("the right-hand title, long enough to leave the canvas on the right side")
    problems = layout_problems(fig)
    assert any("overlap" in p for p in problems) and any("leaves the canvas" in p for p in problems), problems
    plt.close(fig)


def test_finish_figure_wraps_titles_and_keeps_text_on_the_canvas():
    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    for ax in axes:
        ax.loglog([4, 6, 8], [1, 2, 3], "o-")
        ax.set_title("a very long title that runs right across into the next panel and beyond")
    finish_figure(fig, {"experiment": "demo", "protocol_name": "paper", "size": "quick"})
    assert layout_problems(fig) == []
    assert "quick: not evidence" in fig.get_suptitle()
    labels = [t.get_text() for t in axes[0].get_xticklabels()]
    assert "x10" not in "".join(labels) and "times" not in "".join(labels), labels
    plt.close(fig)


def test_a_tick_outside_a_log_axis_over_many_decades_is_not_reported():
    fig, ax = plt.subplots(figsize=(5, 5.4))  # the tick's label would lie below the canvas
    ax.semilogy([0, 1], [3e-9, 500.0])
    ax.set_ylim(2.8e-9, 534.0)  # matplotlib keeps a 1e-10 tick below the view; it is not drawn
    assert layout_problems(fig) == []
    plt.close(fig)


def test_short_log_axis_gets_plain_ticks_without_minor_labels():
    fig, ax = plt.subplots()
    ax.loglog([4, 8], [0.082, 0.114])
    readable_log_ticks(ax)
    xt = [t for t in ax.get_xticks() if 4 <= t <= 8]
    yt = [t for t in ax.get_yticks() if 0.082 <= t <= 0.114]
    assert len(xt) >= 2 and len(yt) >= 2
    assert ax.xaxis.get_major_formatter()(5.0) == "5"
    plt.close(fig)


def test_figure_heading_names_experiment_protocol_and_size():
    r = {"reproduce": {"experiment": "fig2", "protocol": "code", "size": "full"}}
    assert figure_heading(r) == "fig2, protocol code, full size"
    assert "quick: not evidence" in figure_heading({"experiment": "fig1", "size": "quick"})


_FAST = ["fig2", "fig3", "fig4", "fig11", "fig10", "fig78", "ablation", "appc", "fig12", "fig9"]
_SLOW = ["fig1", "mechanism", "kernel-limit"]


@pytest.mark.parametrize("name", _FAST + [pytest.param(n, marks=pytest.mark.slow) for n in _SLOW])
def test_experiment_figure_reads(name, tmp_path, monkeypatch):
    if name == "fig9":
        pytest.importorskip("sklearn", reason="fig9 reads scikit-learn's digits (the data extra)")
    mod = get_experiment(name)
    seen = {}
    real = dynmem.io.atomic_savefig

    def spy(fig, path, **kw):
        seen["problems"] = layout_problems(fig)
        seen["heading"] = fig.get_suptitle()
        seen["size"] = fig.get_size_inches() * kw.get("dpi", fig.dpi)
        return real(fig, path, **kw)

    monkeypatch.setattr(dynmem.io, "atomic_savefig", spy)
    home = sys.modules[mod.plot.__module__]  # the module that draws it may hold its own reference
    if hasattr(home, "atomic_savefig"):
        monkeypatch.setattr(home, "atomic_savefig", spy)
    cfg = mod.config("quick")
    result = mod.run(cfg)
    mod.plot(result, str(tmp_path / f"{name}.png"))
    assert seen, "the figure was not saved through dynmem.io.atomic_savefig"
    assert seen["problems"] == [], seen["problems"]
    assert name in seen["heading"] and "quick: not evidence" in seen["heading"]
    w, h = seen["size"]
    assert w / h < 3.5, f"aspect {w:.0f} x {h:.0f} is a strip"


def test_plot_memory_labels_are_mathtext():
    from dynmem.plotting import plot_memory

    t = np.linspace(0, 30, 300)
    ax = plot_memory([(t, np.exp(-0.5 * t))], labels=["exp"])
    texts = [x.get_text() for x in ax.get_legend().get_texts()]
    assert texts[1].startswith("fit: $e^{") and ax.get_ylabel() == "memory $M(t)$"
    plt.close(ax.figure)
