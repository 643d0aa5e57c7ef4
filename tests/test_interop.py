"""dynmem.interop: torch modules and state dicts as dynmem models, outputs equal to torch's."""

import sys

import numpy as np
import pytest

from dynmem.gated import GRUCell, LSTMCell
from dynmem.interop import from_state_dict, from_torch, to_state_dict
from dynmem.models import DiscreteRNN
from dynmem.recurrences import forward


def _outputs(model, X, h0):
    tr = forward(model, X, h0=h0) if isinstance(model, DiscreteRNN) else model.forward(X, h0=h0)
    return tr.y, tr.h[:, 1:]  # h holds h_0 .. h_T


@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_from_torch_reproduces_torch_outputs(kind, bias):
    torch = pytest.importorskip("torch")
    torch.manual_seed(3)
    m, d, B, T = 6, 2, 3, 40
    if kind == "gru":
        net = torch.nn.GRU(d, m, batch_first=True, bias=bias)
    elif kind == "lstm":
        net = torch.nn.LSTM(d, m, batch_first=True, bias=bias)
    else:
        net = torch.nn.RNN(d, m, batch_first=True, bias=bias, nonlinearity=kind[4:])
    net = net.double()
    lin = torch.nn.Linear(m, 1).double()
    model = from_torch(net, readout=lin)
    assert isinstance(model, {"gru": GRUCell, "lstm": LSTMCell}.get(kind, DiscreteRNN))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((B, T, d))
    h0 = rng.standard_normal((B, m))
    with torch.no_grad():
        Xt, h0t = torch.tensor(X), torch.tensor(h0[None])
        out, _ = net(Xt, (h0t, torch.zeros_like(h0t))) if kind == "lstm" else net(Xt, h0t)
        y_ref = (lin(out)[..., 0] - lin.bias).numpy()
    y, H = _outputs(model, X, h0)
    np.testing.assert_allclose(H, out.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-12)
    # the same model through a .npz state dict, without torch
    again = from_state_dict(kind.split("_")[0], {k: v for k, v in net.state_dict().items()}, readout=model.c,
                            nonlinearity=kind[4:] if kind.startswith("rnn") else "tanh")
    np.testing.assert_array_equal(again.flatten(), model.flatten())


def test_npz_roundtrip(tmp_path):
    for model, kind in ((GRUCell.random(3, 2, rng=0), "gru"), (LSTMCell.random(3, 2, rng=1), "lstm"),
                        (DiscreteRNN.random(3, 2, bias_scale=0.5, rng=2), "rnn")):
        path = tmp_path / f"{kind}.npz"
        np.savez(path, **to_state_dict(model))
        back = from_state_dict(kind, path)
        np.testing.assert_array_equal(back.flatten(), model.flatten())


def test_refusals_and_messages():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"unidirectional \(bidirectional=False\).*got bidirectional=True"):
        from_torch(torch.nn.LSTM(2, 3, bidirectional=True), readout=np.ones(3))
    with pytest.raises(ValueError, match="unidirectional"):
        from_torch(torch.nn.GRU(2, 3, num_layers=2, bidirectional=True), readout=np.ones(3))
    with pytest.raises(ValueError, match="proj_size = 0"):
        from_torch(torch.nn.LSTM(2, 3, proj_size=2), readout=np.ones(3))
    with pytest.raises(ValueError, match=r"`readout` must be given"):
        from_torch(torch.nn.GRU(2, 3), readout=None)
    with pytest.raises(TypeError, match="torch.nn.GRU, torch.nn.LSTM or torch.nn.RNN"):
        from_torch(torch.nn.Linear(2, 3), readout=np.ones(3))
    with pytest.raises(ValueError, match=r"unidirectional layers \(bidirectional=False\)"):
        from_state_dict("gru", torch.nn.GRU(2, 3, bidirectional=True).state_dict(), readout=np.ones(3))


def test_missing_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ImportError, match=r"`bench` extra.*torch==2\.13\.0"):
        from_torch(object(), readout=np.ones(1))


@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn"])
def test_multilayer_modules_become_stacks_live(kind):
    # the live twin of tests/test_stack.py's stored-torch test (runs where torch is installed)
    torch = pytest.importorskip("torch")
    from dynmem.stack import Stack

    torch.manual_seed(4)
    cls = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "rnn": torch.nn.RNN}[kind]
    net = cls(2, 3, num_layers=3, batch_first=True, dropout=0.25).double().eval()
    head = torch.nn.Linear(3, 1).double()
    model = from_torch(net, readout=head)
    assert isinstance(model, Stack) and model.depth == 3
    X = np.random.default_rng(0).standard_normal((2, 7, 2))
    with torch.no_grad():
        H, _ = net(torch.from_numpy(X))
        want = (H @ head.weight[0]).numpy()
    np.testing.assert_allclose(model.outputs(X, np.zeros((2, model.state_size))), want, rtol=0, atol=1e-13)
