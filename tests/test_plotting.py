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


# ---------------------------------------------------------------------------
# fixed points on principal components


def test_principal_components_are_the_covariance_eigenvectors():
    from dynmem.plotting import principal_components

    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 4)) @ np.diag([3.0, 2.0, 1.0, 0.5]) @ np.linalg.qr(rng.standard_normal((4, 4)))[0]
    mean, axes, explained = principal_components(X.reshape(5, 100, 4), 2)
    w, V = np.linalg.eigh(np.cov(X.T))  # independent: eigen-decomposition of the sample covariance
    order = np.argsort(w)[::-1]
    for i in range(2):
        assert abs(abs(axes[i] @ V[:, order[i]]) - 1) < 1e-10
    np.testing.assert_allclose(explained, w[order[:2]] / w.sum(), rtol=1e-10)
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-14)
    with pytest.raises(ValueError, match="`n_components`"):
        principal_components(X, 5)


def test_plot_fixed_points_places_each_kind_and_reads():
    import matplotlib.pyplot as plt

    import dynmem as dm
    from dynmem.plotting import layout_problems, plot_fixed_points, principal_components

    n = 8
    W = 1.5 * np.eye(n)  # dh/dt = tanh(1.5 h) - h: each coordinate at 0 or +-h*, stable points and saddles
    model = dm.CTRNN(W, np.zeros((n, 1)), np.zeros(n), np.ones(n), activation="tanh", leak=1.0)
    rng = np.random.default_rng(1)
    traj = np.cumsum(0.1 * rng.standard_normal((6, 50, n)), axis=1)
    fp = dm.find_fixed_points(model, starts=traj[:, -1], noise=0.0, rng=0)
    ax = plot_fixed_points(fp, traj)
    mean, axes, _ = principal_components(traj, 2)
    kinds = {line.get_label().split(" (")[0]: line for line in ax.get_lines()}
    for kind in set(fp.kinds):
        want = (fp.points[np.array(fp.kinds) == kind] - mean) @ axes.T
        got = np.column_stack(kinds[kind].get_data())
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert ax.get_xlabel().startswith("PC 1 (") and layout_problems(ax.figure) == []
    with pytest.raises(ValueError, match="`states` must have the fixed points' state size 8"):
        plot_fixed_points(fp, traj[..., :3])
    plt.close(ax.figure)


def test_fixed_points_example_writes_a_figure_that_reads(tmp_path, monkeypatch):
    import importlib.util
    import os

    from dynmem.plotting import layout_problems

    path = os.path.join(os.path.dirname(__file__), "..", "examples", "fixed_points_hopfield.py")
    spec = importlib.util.spec_from_file_location("fixed_points_hopfield", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    seen = {}
    real = plt.Figure.savefig

    def spy(fig, *a, **k):
        seen["problems"] = layout_problems(fig)
        return real(fig, *a, **k)

    monkeypatch.setattr(plt.Figure, "savefig", spy)
    fp = mod.main(str(tmp_path / "fp.png"))
    assert os.path.exists(tmp_path / "fp.png") and seen["problems"] == []
    assert sum(k == "stable" for k in fp.kinds) == 6  # +-xi for the three stored patterns
