"""PyTorch's conventions checked on every CI run, without torch: stored torch numbers for GRU, LSTM and RNN.

tests/fixtures/torch_rnns.npz is written once by tests/fixtures/make_torch_fixtures.py (torch 2.13.0,
float64, one layer, fixed seed): torch's state dicts, inputs, hidden states, outputs, loss and autograd
gradients.  dynmem builds its models from the state dicts alone (``from_state_dict``) and must reproduce
torch's forward pass and gradients.  This is an oracle from outside the project: a convention shared by
dynmem's GRU/LSTM code and its hand-written BPTT (the r/z/n or i/f/g/o gate order, ``b_hn`` inside
``r * (W_hn h + b_hn)``, the RNN's two biases) would pass a check against a transcription by the same
authors, but not this one.  The live torch tests (test_interop.py, test_gated.py) still run where torch is
installed.

Tolerances: the agreement measured with the stored file is at most 6.7e-16 on states and outputs, 2.2e-16
relative on the loss and 6.8e-16 relative (max-norm) on the gradients: float64 rounding in another order.
The asserts allow 1e-13 absolute on states and outputs (150x), 1e-12 relative on the loss and 1e-12
relative (1e-14 absolute, for entries near 0) on the gradients.
"""

import os

import numpy as np
import pytest

from dynmem.gated import GRUCell, LSTMCell, gated_forward, gated_value_and_grad
from dynmem.interop import from_state_dict
from dynmem.models import DiscreteRNN
from dynmem.recurrences import forward, value_and_grad

PATH = os.path.join(os.path.dirname(__file__), "fixtures", "torch_rnns.npz")
NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _load(kind):
    with np.load(PATH) as f:
        return {k.split("/", 1)[1]: f[k] for k in f.files if k.startswith(kind + "/")}


def test_fixture_is_torch_2_13_float64():
    with np.load(PATH) as f:
        assert str(f["torch_version"]).startswith("2.13.0")
        assert all(f[k].dtype == np.float64 for k in f.files if k != "torch_version")


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_gated_cells_reproduce_torch_forward_and_gradients(kind):
    d = _load(kind)
    model = from_state_dict(kind, {n + "_l0": d[n + "_l0"] for n in NAMES}, readout=d["c"])
    assert isinstance(model, GRUCell if kind == "gru" else LSTMCell)
    kw = {"s0": d["s0"]} if kind == "lstm" else {}
    tr = gated_forward(model, d["X"], h0=d["h0"], **kw)
    np.testing.assert_allclose(tr.h[:, 1:], d["H"], rtol=0, atol=1e-13)
    np.testing.assert_allclose(tr.y, d["y"], rtol=0, atol=1e-13)
    res = gated_value_and_grad(model, d["X"], d["Y"], h0=d["h0"], **kw)
    assert res.loss == pytest.approx(float(d["loss"]), rel=1e-12)
    for n in NAMES:
        np.testing.assert_allclose(getattr(res.grad, n), d[f"grad_{n}_l0"], rtol=1e-12, atol=1e-14, err_msg=n)
    np.testing.assert_allclose(res.grad.c, d["grad_c"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.dh0, d["grad_h0"], rtol=1e-12, atol=1e-14)
    if kind == "lstm":
        np.testing.assert_allclose(res.ds0, d["grad_s0"], rtol=1e-12, atol=1e-14)


def test_rnn_reproduces_torch_forward_and_gradients():
    d = _load("rnn")
    model = from_state_dict("rnn", {n + "_l0": d[n + "_l0"] for n in NAMES}, readout=d["c"])
    assert isinstance(model, DiscreteRNN)
    tr = forward(model, d["X"], h0=d["h0"])
    np.testing.assert_allclose(tr.h[:, 1:], d["H"], rtol=0, atol=1e-13)
    np.testing.assert_allclose(tr.y, d["y"], rtol=0, atol=1e-13)
    res = value_and_grad(model, d["X"], d["Y"], h0=d["h0"])
    assert res.loss == pytest.approx(float(d["loss"]), rel=1e-12)
    # W = weight_hh, U = weight_ih, b = bias_ih + bias_hh: torch's two bias gradients are both dL/db
    np.testing.assert_allclose(res.grad.W, d["grad_weight_hh_l0"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.grad.U, d["grad_weight_ih_l0"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.grad.b, d["grad_bias_ih_l0"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.grad.b, d["grad_bias_hh_l0"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.grad.c, d["grad_c"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.dh0, d["grad_h0"], rtol=1e-12, atol=1e-14)
