"""Discrete RNN: forward pass + gradient, dynmem vs torch.nn.RNN (float64, CPU, one thread).

dynmem side::

    dynmem.recurrences.value_and_grad(DiscreteRNN(W, U, b, c, "tanh"), X, Y, loss="mse")

torch side (the same network, built once outside the timed region)::

    rnn = torch.nn.RNN(d, m, nonlinearity="tanh", batch_first=True, bias=True, dtype=torch.float64)
    weight_hh = W, weight_ih = U, bias_ih = b, bias_hh = 0 (frozen: requires_grad=False)
    out, _ = rnn(X)                # out[:, k] = h_{k+1}, as dynmem's y_k = c^T h_{k+1}
    y = out @ c                    # c: a float64 tensor with requires_grad
    mse_loss(y, Y).backward()      # gradients of W, U, b, c

Each timed call returns the gradient flattened in ``model.flatten()`` order
(W, U, b, c); the torch call also zeroes the gradients it accumulates into.

Reference: an independent BPTT written below in numpy ``np.longdouble``
(80-bit extended precision on x86-64, eps ~ 1.1e-19), sharing no code with
either side.  The error column is ``||g - g_ref|| / ||g_ref||`` over all
parameters; the issue's bar is 1e-10.
"""

from __future__ import annotations

import numpy as np

import dynmem
from _common import Case, import_torch, rel_err

D_INPUTS = 4
# (m, batch, T) and the wanted peer/dynmem time ratio.
SIZES = [
    ((64, 32, 1000), 3.0),
    ((64, 1, 10000), 15.0),
    ((256, 32, 1000), 1.0),
    ((8, 32, 10000), None),
]
QUICK_SIZES = [
    ((64, 32, 200), 3.0),
    ((64, 1, 2000), 15.0),
    ((256, 32, 100), 1.0),
    ((8, 32, 2000), None),
]


def make_problem(m: int, batch: int, T: int, d: int = D_INPUTS, seed: int = 0):
    """A random DiscreteRNN (spectral radius 0.9, nonzero bias) with inputs and targets."""
    rng = np.random.default_rng([seed, m, batch, T])
    model = dynmem.DiscreteRNN.random(m, d, spectral_radius=0.9, bias_scale=0.1, rng=rng)
    X = rng.standard_normal((batch, T, d))
    Y = 0.5 * rng.standard_normal((batch, T))
    return model, X, Y


def reference_gradient(W, U, b, c, X, Y) -> np.ndarray:
    """MSE loss gradient by plain BPTT in np.longdouble; returns flat (W, U, b, c)."""
    L = np.longdouble
    W, U, b, c, X, Y = (np.asarray(a, dtype=L) for a in (W, U, b, c, X, Y))
    B, T, d = X.shape
    m = W.shape[0]
    Xt = np.ascontiguousarray(X.transpose(1, 0, 2))  # (T, B, d)
    H = np.zeros((T + 1, B, m), dtype=L)
    for k in range(T):
        H[k + 1] = np.tanh(H[k] @ W.T + Xt[k] @ U.T + b)
    y = H[1:] @ c  # (T, B)
    g = (L(2) / L(B * T)) * (y - Y.T)  # dL/dy for mean squared error
    dW = np.zeros((m, m), dtype=L)
    dU = np.zeros((m, d), dtype=L)
    db = np.zeros(m, dtype=L)
    a = np.zeros((B, m), dtype=L)  # dL/dh_{k+1} from the future
    for k in range(T - 1, -1, -1):
        a = a + g[k][:, None] * c
        delta = (1 - H[k + 1] ** 2) * a  # dL/dz_k
        dW += delta.T @ H[k]
        dU += delta.T @ Xt[k]
        db += delta.sum(axis=0)
        a = delta @ W
    dc = np.einsum("tb,tbi->i", g, H[1:])
    return np.concatenate([dW.ravel(), dU.ravel(), db, dc])


def _torch_side(model, X, Y):
    torch = import_torch()
    m, d = model.hidden, model.inputs
    rnn = torch.nn.RNN(d, m, nonlinearity="tanh", batch_first=True, bias=True, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(torch.from_numpy(np.array(model.W)))
        rnn.weight_ih_l0.copy_(torch.from_numpy(np.array(model.U)))
        rnn.bias_ih_l0.copy_(torch.from_numpy(np.array(model.b)))
        rnn.bias_hh_l0.zero_()
    rnn.bias_hh_l0.requires_grad_(False)  # b lives in bias_ih; do not make torch compute a duplicate
    c = torch.tensor(np.array(model.c), dtype=torch.float64, requires_grad=True)
    Xt = torch.from_numpy(np.ascontiguousarray(X))
    Yt = torch.from_numpy(np.ascontiguousarray(Y))
    params = (rnn.weight_hh_l0, rnn.weight_ih_l0, rnn.bias_ih_l0, c)
    mse_loss = torch.nn.functional.mse_loss

    def run():
        for p in params:
            p.grad = None
        out, _ = rnn(Xt)
        y = out @ c
        loss = mse_loss(y, Yt)
        loss.backward()
        return np.concatenate([p.grad.numpy().ravel() for p in params])

    return run


def cases(quick: bool = False) -> list[tuple[str, str, object]]:
    """``(name, group, build)`` for each size; ``build()`` makes the :class:`Case` (and its data)."""
    out = []
    for (m, batch, T), target in QUICK_SIZES if quick else SIZES:
        def build(m=m, batch=batch, T=T, target=target):
            model, X, Y = make_problem(m, batch, T)

            def run_dynmem():
                return dynmem.recurrences.value_and_grad(model, X, Y, loss="mse").flat

            def run_reference():
                return reference_gradient(model.W, model.U, model.b, model.c, X, Y)

            return Case(
                name=_name(m, batch, T),
                group="recurrences",
                description=f"DiscreteRNN tanh forward+BPTT, m={m} batch={batch} T={T} d={D_INPUTS}, MSE loss",
                params=dict(m=m, batch=batch, T=T, d=D_INPUTS, dtype="float64"),
                dynmem=run_dynmem,
                peer=_torch_side(model, X, Y),
                reference=run_reference,
                error=rel_err,
                peer_name="torch.nn.RNN",
                reference_name="numpy longdouble BPTT",
                speed_target=target,
            )

        out.append((_name(m, batch, T), "recurrences", build))
    return out


def _name(m, batch, T) -> str:
    return f"rnn_m{m}_b{batch}_T{T}"
