"""Stacked GRU / LSTM: forward pass + BPTT through every layer, dynmem's Stack vs torch multi-layer modules.

dynmem side::

    stack = dynmem.Stack([GRUCell(...), GRUCell(...), ...])     # layer l reads layer l-1's h sequence
    stack.value_and_grad(X, Y, loss="mse").flat                # each layer's compiled BPTT kernel in turn

torch side (the same network, built once outside the timed region)::

    net = torch.nn.GRU(d, m, num_layers=L, batch_first=True, dtype=torch.float64)   # arrays copied in
    out, _ = net(X)
    mse_loss(out @ c, Y).backward()

Both return the gradient in ``Stack.flatten()`` order (layer by layer: weight_ih, weight_hh, bias_ih,
bias_hh, c; the lower layers' read-outs are unused and their gradient is zero on both sides).

Reference: directional derivatives ``g . v`` along three fixed random directions by complex step (step
1e-300) through a numpy transcription of the stacked cells evaluated in ``np.clongdouble`` (80-bit
extended precision on x86-64), sharing no code with either side.  The error column is
``||V g - (V g)_ref|| / ||(V g)_ref||`` over the three directions.
"""

from __future__ import annotations

import numpy as np

import dynmem
from _common import Case, import_torch

D_INPUTS = 4
# (kind, L, m, batch, T)
SIZES = [("gru", 2, 64, 32, 500), ("lstm", 2, 64, 32, 500), ("gru", 4, 64, 32, 500), ("lstm", 4, 64, 32, 500)]
QUICK_SIZES = [("gru", 2, 64, 32, 100), ("lstm", 2, 64, 32, 100)]
N_DIRECTIONS = 3


def make_problem(kind: str, L: int, m: int, batch: int, T: int, d: int = D_INPUTS, seed: int = 0):
    """A stack of L cells with torch's default initialisation, inputs and targets."""
    rng = np.random.default_rng([seed, L, m, batch, T])
    cls = dynmem.GRUCell if kind == "gru" else dynmem.LSTMCell
    layers, width_in = [], d
    for _ in range(L):
        layers.append(cls.random(m, width_in, rng=rng))
        width_in = m
    stack = dynmem.Stack(layers)
    X = rng.standard_normal((batch, T, d))
    Y = 0.5 * rng.standard_normal((batch, T))
    return stack, X, Y


def _reference_loss(stack, theta, X, Y):
    """MSE loss of the stack at (complex) parameters theta, in np.clongdouble."""
    CL = np.clongdouble
    u = np.asarray(X, dtype=CL)
    i = 0
    B, T, _ = X.shape
    for layer in stack.layers:
        p = {}
        for name, shape in layer.param_shapes.items():
            size = int(np.prod(shape))
            p[name] = theta[i:i + size].reshape(shape)
            i += size
        m = layer.hidden
        lstm = layer.state_size == 2 * m
        h = np.zeros((B, m), dtype=CL)
        s = np.zeros((B, m), dtype=CL)
        gi_all = u @ p["weight_ih"].T + p["bias_ih"]
        out = np.empty((B, T, m), dtype=CL)
        for k in range(T):
            gi = gi_all[:, k]
            gh = h @ p["weight_hh"].T + p["bias_hh"]
            if lstm:
                a = gi + gh
                sig = 1 / (1 + np.exp(-a[:, np.r_[0:2 * m, 3 * m:4 * m]]))
                s = sig[:, m:2 * m] * s + sig[:, :m] * np.tanh(a[:, 2 * m:3 * m])
                h = sig[:, 2 * m:] * np.tanh(s)
            else:
                rz = 1 / (1 + np.exp(-(gi[:, :2 * m] + gh[:, :2 * m])))
                n = np.tanh(gi[:, 2 * m:] + rz[:, :m] * gh[:, 2 * m:])
                h = (1 - rz[:, m:]) * n + rz[:, m:] * h
            out[:, k] = h
        u = out
        c = p["c"]
    r = u @ c - Y
    return np.mean(r * r)


def reference_directional(stack, X, Y, V, h=1e-300) -> np.ndarray:
    """``V @ g`` by complex step in np.clongdouble (one forward pass per direction)."""
    theta = stack.flatten().astype(np.longdouble)
    out = []
    for v in V:
        out.append(float(np.imag(_reference_loss(stack, theta + 1j * np.longdouble(h) * v, X, Y)) / h))
    return np.array(out)


def _torch_side(stack, X, Y):
    torch = import_torch()
    first = stack.layers[0]
    m, d, L = first.hidden, first.inputs, stack.depth
    cls = torch.nn.GRU if isinstance(first, dynmem.GRUCell) else torch.nn.LSTM
    net = cls(d, m, num_layers=L, batch_first=True, bias=True, dtype=torch.float64)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    with torch.no_grad():
        for l, layer in enumerate(stack.layers):
            for n in names:
                getattr(net, f"{n}_l{l}").copy_(torch.from_numpy(np.array(getattr(layer, n))))
    c = torch.tensor(np.array(stack.layers[-1].c), dtype=torch.float64, requires_grad=True)
    Xt = torch.from_numpy(np.ascontiguousarray(X))
    Yt = torch.from_numpy(np.ascontiguousarray(Y))
    params = [[getattr(net, f"{n}_l{l}") for n in names] for l in range(L)]
    mse_loss = torch.nn.functional.mse_loss

    def run():
        for group in params:
            for p in group:
                p.grad = None
        c.grad = None
        out, _ = net(Xt)
        loss = mse_loss(out @ c, Yt)
        loss.backward()
        parts = []
        for l, group in enumerate(params):
            parts += [p.grad.numpy().ravel() for p in group]
            parts.append(c.grad.numpy() if l == L - 1 else np.zeros(m))
        return np.concatenate(parts)

    return run


def cases(quick: bool = False) -> list[tuple[str, str, object]]:
    """``(name, group, build)`` for each size; ``build()`` makes the :class:`Case` (and its data)."""
    out = []
    for kind, L, m, batch, T in QUICK_SIZES if quick else SIZES:
        name = f"stack_{kind}_L{L}_m{m}_b{batch}_T{T}"

        def build(kind=kind, L=L, m=m, batch=batch, T=T, name=name):
            stack, X, Y = make_problem(kind, L, m, batch, T)
            V = np.random.default_rng(1).standard_normal((N_DIRECTIONS, stack.n_params))
            memo = {}

            def reference():
                if "ref" not in memo:
                    memo["ref"] = reference_directional(stack, X, Y, V)
                return memo["ref"]

            def error(g, ref):
                got = V @ np.asarray(g, dtype=float)
                return float(np.linalg.norm(got - ref) / np.linalg.norm(ref))

            def run_dynmem():
                return stack.value_and_grad(X, Y, loss="mse").flat

            def run_forward():
                return stack.forward(X).y

            return Case(
                name=name,
                group="stack",
                description=f"{L}-layer {kind.upper()} stack forward+BPTT, m={m} batch={batch} T={T} d={D_INPUTS}, "
                            "MSE loss",
                params=dict(kind=kind, layers=L, m=m, batch=batch, T=T, d=D_INPUTS, dtype="float64"),
                dynmem=run_dynmem,
                peer=_torch_side(stack, X, Y),
                reference=reference,
                error=error,
                peer_name=f"torch.nn.{'GRU' if kind == 'gru' else 'LSTM'}(num_layers={L})",
                reference_name="complex step in np.clongdouble along 3 directions",
                also_time={"dynmem forward only": run_forward},
            )

        out.append((name, "stack", build))
    return out
