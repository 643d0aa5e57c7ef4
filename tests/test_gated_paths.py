"""The gated kernels' two input paths (fused projection for small d, BLAS for large d) and the LSTM's tanh(s) recovery."""

import numpy as np
import pytest

from dynmem.models import gated
from dynmem.gated import GRUCell, LSTMCell, gated_forward, gated_value_and_grad

from test_gated import _case, _complex_step_grad, _ref_outputs


@pytest.mark.parametrize("cls", [GRUCell, LSTMCell])
def test_blas_input_path_for_wide_inputs_matches_complex_step(cls):
    d = gated.FUSE_INPUTS_MAX + 4
    model, X, Y, h0, s0 = _case(cls, 11, 3, d, 2, 4, 1.0)
    kw = {"s0": s0} if cls is LSTMCell else {}
    res = gated_value_and_grad(model, X, Y, h0=h0, **kw)
    ref = _complex_step_grad(model, X, Y, h0, s0 if cls is LSTMCell else np.zeros_like(h0))
    assert np.linalg.norm(res.flat - ref) / np.linalg.norm(ref) <= 1e-12


@pytest.mark.parametrize("cls", [GRUCell, LSTMCell])
def test_fused_and_blas_paths_agree(cls, monkeypatch):
    model, X, Y, h0, s0 = _case(cls, 5, 6, 3, 4, 30, 1.0)
    kw = {"s0": s0} if cls is LSTMCell else {}
    fused = gated_value_and_grad(model, X, Y, h0=h0, **kw)
    y_fused = gated_forward(model, X, h0=h0, **kw).y
    monkeypatch.setattr(gated, "FUSE_INPUTS_MAX", 0)
    blas = gated_value_and_grad(model, X, Y, h0=h0, **kw)
    np.testing.assert_allclose(gated_forward(model, X, h0=h0, **kw).y, y_fused, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(blas.flat, fused.flat, rtol=1e-12, atol=1e-15 * np.max(np.abs(fused.flat)))
    np.testing.assert_allclose(blas.dh0, fused.dh0, rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("o_bias", [-8.0, -400.0])
def test_lstm_gradient_with_a_nearly_closed_output_gate(o_bias):
    # o ~ e^-8 uses tanh(s) = h / o; at o_bias = -400 the sigmoid (1 + tanh(v/2)) / 2 rounds to exactly 0,
    # so h / o would be 0/0: the libm tanh fallback keeps the gradient finite (the true one is ~1e-170).
    # (Not tested here: that sigmoid has absolute, not relative, accuracy ~1e-17, so at o ~ e^-30 the
    # o-gate terms are off by ~1e-4 relative - the same before and after the kernels were fused.)
    model, X, Y, h0, s0 = _case(LSTMCell, 2, 3, 2, 2, 5, 1.0)
    m = model.hidden
    bih = model.bias_ih.copy()
    bih[3 * m:] = o_bias
    model = model.replace(bias_ih=bih)
    res = gated_value_and_grad(model, X, Y, h0=h0, s0=s0)
    ref = _complex_step_grad(model, X, Y, h0, s0)
    assert np.all(np.isfinite(res.flat))
    if o_bias > -100:
        assert np.linalg.norm(res.flat - ref) / np.linalg.norm(ref) <= 1e-8
    else:
        assert np.max(np.abs(res.flat - ref)) <= 1e-150
    p = {n: getattr(model, n) for n in model.param_names}
    np.testing.assert_allclose(gated_forward(model, X, h0=h0, s0=s0).y, _ref_outputs(LSTMCell, p, X, h0, s0),
                               rtol=1e-10, atol=1e-17)
