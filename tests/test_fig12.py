"""[WLL] Fig. 12: the numpy transformer teacher against a direct per-token implementation, its memory through
memory_function against direct differences, and verdicts that follow planted numbers."""

import copy
import math

import numpy as np
import pytest

from dynmem.experiments import fig12


def _direct(tr, x):
    """Token by token, with explicit loops over the causal context (no masks, no batching)."""
    T, d = len(x), tr.d
    out = []
    for k in range(T):
        zs = []
        for j in range(k + 1):
            pe = np.array([math.sin(j / 10000 ** (2 * (i // 2) / d)) if i % 2 == 0 else
                           math.cos(j / 10000 ** (2 * (i // 2) / d)) for i in range(d)])
            zs.append(x[j] * tr.e + pe)
        zk = zs[-1]
        q = zk @ tr.Wq
        scores = np.array([q @ (z @ tr.Wk) / math.sqrt(d) for z in zs])
        w = np.exp(scores - scores.max())
        w /= w.sum()
        att = sum(wj * (z @ tr.Wv) for wj, z in zip(w, zs))
        h = zk + att @ tr.Wo
        h = h + np.maximum(h @ tr.W1 + tr.b1, 0) @ tr.W2 + tr.b2
        out.append(h @ tr.w)
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1])
def test_transformer_against_a_direct_implementation(seed):
    tr = fig12.Transformer(16, rng=seed)
    X = np.random.default_rng(seed + 10).standard_normal((3, 12))
    Y = tr(X)
    for b in range(3):
        np.testing.assert_allclose(Y[b], _direct(tr, X[b]), rtol=1e-12, atol=1e-12)
    # causal: changing a later token leaves earlier outputs untouched
    X2 = X.copy()
    X2[:, 7] += 1.0
    np.testing.assert_array_equal(tr(X2)[:, :7], Y[:, :7])


def test_memory_is_the_step_response_difference():
    tr = fig12.Transformer(16, rng=3)
    t, mem, _ = fig12.teacher_memory(tr, 20)
    amps = (0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0)
    direct = np.max([np.abs(np.diff(tr(np.full((1, 22), s * a))[0]))[:20] / a for a in amps for s in (1, -1)], axis=0)
    np.testing.assert_allclose(mem, direct, rtol=1e-9, atol=1e-12)


def _result(errors, memory, kind="non-decaying", thresholds=None):
    ms = [8, 16, 32, 64]
    th = thresholds or [0.5] * 4
    return {"config": {"tol": 1e-2}, "teacher": {"memory": memory, "decay_kind": kind},
            "students": [{"m": m, "relative_error": e, "shift_threshold": s} for m, e, s in zip(ms, errors, th)]}


def test_verdict_follows_planted_numbers():
    flat = [1.0] * 40
    assert fig12.verdict(_result([0.3, 0.2, 0.2, 0.2], flat))["verdict"] == "reproduced"
    # F1 fails: a decaying teacher memory
    decaying = list(np.exp(-0.5 * np.arange(40.0)))
    assert not fig12.criteria(_result([0.3, 0.2, 0.2, 0.2], decaying, "exponential"))["F1"]
    assert fig12.verdict(_result([0.3, 0.2, 0.2, 0.2], decaying, "exponential"))["verdict"] == "not reproduced"
    # F2 fails: width helps (m = 64 four times better than 16 and 32)
    c = fig12.criteria(_result([0.3, 0.2, 0.2, 0.05], flat))
    assert not c["F2"] and c["F3"]
    # F3 fails: approximated below tol with thresholds that do not shrink
    c = fig12.criteria(_result([0.01, 0.005, 0.004, 0.003], flat))
    assert c["F2"] and not c["F3"]
    # students that learned nothing: not informative
    assert fig12.verdict(_result([0.95, 0.9, 0.9, 0.9], flat))["verdict"] == "not informative"


def test_tiny_run(tmp_path):
    r = fig12.run(fig12.config("quick", widths=[2, 4, 8], n_train=16, n_test=8, T=12, epochs=2, n_memory=16))
    assert len(r["students"]) == 3 and len(r["teacher"]["memory"]) == 16
    assert fig12.verdict(r)["verdict"] in ("reproduced", "partly", "not reproduced", "not informative")
    fig12.plot(r, str(tmp_path / "f.png"))
