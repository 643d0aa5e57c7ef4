"""Plot helpers draw what they are given and never show."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

import dynmem as dm
from dynmem.memory import fit_decay, memory_function
from dynmem.plotting import decay_curve, plot_memory, plot_memory_panels


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_plot_memory_draws_curve_and_fit(monkeypatch):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plot helpers must not call plt.show()"))
    t = np.linspace(0, 40, 200)
    ax = plot_memory((t, np.exp(-0.4 * t)), labels=["exp"])
    lines = ax.get_lines()
    assert len(lines) == 2  # the curve and its dashed fit
    np.testing.assert_allclose(lines[0].get_ydata(), np.exp(-0.4 * t))
    assert lines[1].get_linestyle() == "--"
    np.testing.assert_allclose(lines[1].get_ydata(), np.exp(-0.4 * lines[1].get_xdata()), rtol=1e-8)
    assert ax.get_yscale() == "log" and ax.get_xscale() == "linear"


def test_plot_memory_uses_given_axes_and_dict_labels():
    fig, ax = plt.subplots()
    model = dm.LinearRNN.random(3, 1, spectral_abscissa=-0.5, rng=0)
    t = np.linspace(0, 10, 50)
    out = plot_memory({"linear": memory_function(model, t), "power": (t, (1 + t) ** -1.5)}, ax=ax, scale="loglog",
                      fit=False)
    assert out is ax
    assert [line.get_label() for line in ax.get_lines()] == ["linear", "power"]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    # t = 0 cannot be drawn on a log axis and is dropped
    assert ax.get_lines()[1].get_xdata().min() > 0


def test_panels_and_decay_curve():
    t = np.geomspace(0.01, 1e4, 200)
    M = (1 + t) ** -1.2
    axes = plot_memory_panels((t, M))
    assert len(axes) == 2 and axes[1].get_xscale() == "log"
    fit = fit_decay(t, M)
    np.testing.assert_allclose(decay_curve(fit, t), M, rtol=1e-6)


def test_plot_validation():
    t = np.linspace(0, 1, 5)
    with pytest.raises(ValueError, match=r"`scale` must be one of 'semilogy', 'loglog', 'linear'; got 'log'"):
        plot_memory((t, t), scale="log")
    with pytest.raises(ValueError, match=r"`labels` must have one entry per curve \(1\); got 2"):
        plot_memory([(t, t)], labels=["a", "b"])
