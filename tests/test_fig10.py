"""The Fig. 10 measurement: Heaviside vs impulse memories of random models."""

import numpy as np
import pytest

from dynmem.fig10 import heaviside_vs_impulse


def test_heaviside_vs_impulse_small_run():
    res = heaviside_vs_impulse(widths=(4,), repeats=2, steps=16, rng=0)
    assert set(res.discrepancy) == {(k, 4) for k in ("rnn", "gru", "lstm", "ssm")}
    for key, d in res.discrepancy.items():
        assert d.shape == (2,) and np.all(np.isfinite(d)) and np.all(d >= 0)
        H, I = res.heaviside[key], res.impulse[key]
        np.testing.assert_allclose(d, np.max(np.abs(H - I), axis=1) / np.max(H, axis=1))
    # The discretised SSM is linear: both memories are the same up to rounding.
    assert np.max(res.discrepancy[("ssm", 4)]) < 1e-12
    assert "median rel. diff" in res.summary()


def test_validation():
    with pytest.raises(ValueError, match="`models` must hold names"):
        heaviside_vs_impulse(models=("transformer",))
    with pytest.raises(ValueError, match="`steps`"):
        heaviside_vs_impulse(steps=1)
