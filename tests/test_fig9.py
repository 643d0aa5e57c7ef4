"""[WLL] Fig. 9 / Table 1 surrogate (digits, not MNIST): BPTT against differences, the pipeline on 32 images, the
verdict on planted accuracies, and the optional extra's message.  Skipped without scikit-learn."""

import builtins
import copy
import math

import numpy as np
import pytest

from dynmem.experiments import fig9


@pytest.mark.parametrize("par", fig9.PARAMETERISATIONS)
def test_bptt_matches_central_differences(par):
    rng = np.random.default_rng(1)
    p = fig9.init(5, par, rng)
    X = rng.uniform(0, 1, (6, 9, 1))
    y = rng.integers(0, 10, 6)
    _, g = fig9.loss_and_grad(p, par, X, y)
    for name in p:
        d = rng.standard_normal(p[name].shape)
        f = lambda s: fig9.loss_and_grad({**p, name: p[name] + s * d}, par, X, y)[0]
        fd = (f(1e-6) - f(-1e-6)) / 2e-6
        assert abs(np.sum(g[name] * d) - fd) <= 1e-7 * max(1.0, abs(fd)), (par, name)


def test_same_initial_recurrence_for_every_parameterisation():
    from dynmem.reparam import get_reparam

    lams = [get_reparam(p).f(fig9.init(8, p, np.random.default_rng(0))["w"]) for p in fig9.PARAMETERISATIONS]
    for lam in lams[1:]:
        np.testing.assert_allclose(lam, lams[0], rtol=1e-12)


def test_digits_pipeline_on_32_images(tmp_path):
    pytest.importorskip("sklearn", reason="the `data` extra (scikit-learn) is not installed")
    X, y = fig9.load_digits_sequences(32)
    assert X.shape == (32, 64, 1) and 0 <= X.min() and X.max() <= 1 and y.shape == (32,)
    cfg = fig9.config("quick", epochs=1, hidden=4)
    res = {par: fig9.train_one(X[:24], y[:24], X[24:], y[24:], par, cfg, 0) for par in fig9.PARAMETERISATIONS}
    for r in res.values():
        assert math.isfinite(r["test_loss"]) and 0 <= r["test_accuracy"] <= 100
    result = {"results": {p: {"accuracy_mean": r["test_accuracy"], "accuracy_std": 0.0, "runs": [r]}
                          for p, r in res.items()}}
    assert "digits, not MNIST" in fig9.verdict(result)["why"]
    fig9.plot(result, str(tmp_path / "f.png"))


def test_missing_extra_names_it(monkeypatch):
    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("sklearn"):
            raise ImportError("no sklearn")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"dynmem\[data\]"):
        fig9.load_digits_sequences()


def _res(acc, std=0.5):
    return {"results": {p: {"accuracy_mean": a, "accuracy_std": std} for p, a in acc.items()}}


def test_verdict_on_planted_accuracies():
    assert fig9.verdict(_res(fig9.PUBLISHED))["verdict"] == "reproduced"
    flipped = dict(fig9.PUBLISHED, direct=75.0)  # direct best: D1 fails, the ordering too
    assert fig9.verdict(_res(flipped))["verdict"] == "not reproduced"
    noisy = fig9.PUBLISHED
    c = fig9.criteria(_res(noisy, std=5.0))  # within the seed spread: D1 fails, ordering holds
    assert not c["D1"] and c["D2"] and fig9.verdict(_res(noisy, std=5.0))["verdict"] == "partly"
    weak = {p: a - 40.0 for p, a in fig9.PUBLISHED.items()}  # the paper's ordering at ~30 %: nothing learned
    assert fig9.verdict(_res(weak))["verdict"] == "not informative"
