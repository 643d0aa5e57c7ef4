"""GRU and LSTM cells: forward pass + gradient, dynmem vs torch.nn.GRU / torch.nn.LSTM (float64, CPU, one thread).

dynmem side::

    dynmem.gated_value_and_grad(GRUCell(weight_ih, weight_hh, bias_ih, bias_hh, c), X, Y, loss="mse")

torch side (the same network, built once outside the timed region)::

    gru = torch.nn.GRU(d, m, batch_first=True, dtype=torch.float64)   # same four arrays copied in
    out, _ = gru(X)                # out[:, k] = h_{k+1}, as dynmem's y_k = c^T h_{k+1}
    y = out @ c                    # c: a float64 tensor with requires_grad
    mse_loss(y, Y).backward()      # gradients of the four arrays and c

The LSTM cases do the same with ``LSTMCell`` and ``torch.nn.LSTM``.

Second peer, when jax is installed: ``jax.jit(jax.value_and_grad(loss))``
with the cell written as a ``jax.lax.scan`` in float64 (jax_enable_x64, XLA
on one thread).  It is timed in the same interleaved loop (``also_timed``
"jax.jit(grad(scan))"); its compile time (first call) is reported apart
in ``extras``, with the jax/dynmem ratio and its error against the reference.

Each timed call returns the gradient flattened in ``GRUCell.flatten()``
order (weight_ih, weight_hh, bias_ih, bias_hh, c).

Diagonal SSM cases (``ssm_*``, when jax is installed): ``dynmem.ssm_value_and_grad``
on a ZOH-discretised ``DiagonalSSM`` (m = 64, d = 4, with feed-through)
against ``jax.jit(jax.value_and_grad(loss))`` with the recurrence as a
``jax.lax.scan`` over complex128 states (parameters as real and imaginary
parts, so both gradients are in ``flatten()`` order).  torch has no
diagonal-SSM layer; jax is where S5/LRU models are usually written.  The
reference is a BPTT in ``np.clongdouble`` (below).

Reference: an independent BPTT written below in numpy ``np.longdouble``
(80-bit extended precision on x86-64), sharing no code with either side.
The error column is ``||g - g_ref|| / ||g_ref||`` over all parameters.
"""

from __future__ import annotations

import numpy as np

import dynmem
from _common import Case, import_torch, rel_err

D_INPUTS = 4
# (m, batch, T) and the wanted peer/dynmem time ratio (issue 14: >= 1.5x).
SIZES = [((64, 32, 1000), 1.5), ((64, 1, 10000), 1.5)]
QUICK_SIZES = [((64, 32, 200), 1.5), ((64, 1, 2000), 1.5)]


def make_problem(m: int, batch: int, T: int, d: int = D_INPUTS, seed: int = 0, cls=dynmem.GRUCell):
    """A GRUCell (or LSTMCell) with torch's default initialisation, inputs and targets."""
    rng = np.random.default_rng([seed, m, batch, T])
    model = cls.random(m, d, rng=rng)
    X = rng.standard_normal((batch, T, d))
    Y = 0.5 * rng.standard_normal((batch, T))
    return model, X, Y


def reference_gradient(model, X, Y) -> np.ndarray:
    """MSE loss gradient of the GRU by plain BPTT in np.longdouble; flat in GRUCell.flatten() order."""
    L = np.longdouble
    Wih, Whh, bih, bhh, c = (np.asarray(getattr(model, n), dtype=L)
                             for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "c"))
    X, Y = np.asarray(X, dtype=L), np.asarray(Y, dtype=L)
    B, T, d = X.shape
    m = c.size
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    Xt = X.transpose(1, 0, 2)
    H = np.zeros((T + 1, B, m), dtype=L)
    R, Z, N, Q = (np.zeros((T, B, m), dtype=L) for _ in range(4))
    for k in range(T):
        gi = Xt[k] @ Wih.T + bih
        gh = H[k] @ Whh.T + bhh
        R[k] = sig(gi[:, :m] + gh[:, :m])
        Z[k] = sig(gi[:, m:2 * m] + gh[:, m:2 * m])
        Q[k] = gh[:, 2 * m:]
        N[k] = np.tanh(gi[:, 2 * m:] + R[k] * Q[k])
        H[k + 1] = (1 - Z[k]) * N[k] + Z[k] * H[k]
    y = H[1:] @ c  # (T, B)
    g = (L(2) / L(B * T)) * (y - Y.T)
    dWih = np.zeros_like(Wih)
    dWhh = np.zeros_like(Whh)
    dbih = np.zeros_like(bih)
    dbhh = np.zeros_like(bhh)
    a = np.zeros((B, m), dtype=L)
    for k in range(T - 1, -1, -1):
        a = a + g[k][:, None] * c
        dn = a * (1 - Z[k]) * (1 - N[k] ** 2)
        dr = dn * Q[k] * R[k] * (1 - R[k])
        dz = a * (H[k] - N[k]) * Z[k] * (1 - Z[k])
        di = np.concatenate([dr, dz, dn], axis=1)
        dh = np.concatenate([dr, dz, dn * R[k]], axis=1)
        dWih += di.T @ Xt[k]
        dWhh += dh.T @ H[k]
        dbih += di.sum(axis=0)
        dbhh += dh.sum(axis=0)
        a = a * Z[k] + dh @ Whh
    dc = np.einsum("tb,tbi->i", g, H[1:])
    return np.concatenate([dWih.ravel(), dWhh.ravel(), dbih, dbhh, dc]).astype(np.float64)


def reference_gradient_lstm(model, X, Y) -> np.ndarray:
    """MSE loss gradient of the LSTM by plain BPTT in np.longdouble; flat in LSTMCell.flatten() order."""
    L = np.longdouble
    Wih, Whh, bih, bhh, c = (np.asarray(getattr(model, n), dtype=L)
                             for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "c"))
    X, Y = np.asarray(X, dtype=L), np.asarray(Y, dtype=L)
    B, T, d = X.shape
    m = c.size
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    Xt = X.transpose(1, 0, 2)
    H = np.zeros((T + 1, B, m), dtype=L)
    S = np.zeros((T + 1, B, m), dtype=L)
    I, F, Gg, O = (np.zeros((T, B, m), dtype=L) for _ in range(4))
    for k in range(T):
        a = Xt[k] @ Wih.T + bih + H[k] @ Whh.T + bhh
        I[k], F[k], Gg[k], O[k] = sig(a[:, :m]), sig(a[:, m:2 * m]), np.tanh(a[:, 2 * m:3 * m]), sig(a[:, 3 * m:])
        S[k + 1] = F[k] * S[k] + I[k] * Gg[k]
        H[k + 1] = O[k] * np.tanh(S[k + 1])
    y = H[1:] @ c
    g = (L(2) / L(B * T)) * (y - Y.T)
    dWih = np.zeros_like(Wih)
    dWhh = np.zeros_like(Whh)
    db = np.zeros_like(bih)
    a = np.zeros((B, m), dtype=L)
    e = np.zeros((B, m), dtype=L)
    for k in range(T - 1, -1, -1):
        a = a + g[k][:, None] * c
        t = np.tanh(S[k + 1])
        ds = e + a * O[k] * (1 - t * t)
        D = np.concatenate([ds * Gg[k] * I[k] * (1 - I[k]), ds * S[k] * F[k] * (1 - F[k]),
                            ds * I[k] * (1 - Gg[k] ** 2), a * t * O[k] * (1 - O[k])], axis=1)
        dWih += D.T @ Xt[k]
        dWhh += D.T @ H[k]
        db += D.sum(axis=0)
        e = ds * F[k]
        a = D @ Whh
    dc = np.einsum("tb,tbi->i", g, H[1:])
    return np.concatenate([dWih.ravel(), dWhh.ravel(), db, db, dc]).astype(np.float64)


_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _torch_side(model, X, Y):
    torch = import_torch()
    m, d = model.hidden, model.inputs
    net = torch.nn.GRU if isinstance(model, dynmem.GRUCell) else torch.nn.LSTM
    gru = net(d, m, batch_first=True, bias=True, dtype=torch.float64)
    with torch.no_grad():
        for n in _NAMES:
            getattr(gru, n + "_l0").copy_(torch.from_numpy(np.array(getattr(model, n))))
    c = torch.tensor(np.array(model.c), dtype=torch.float64, requires_grad=True)
    Xt = torch.from_numpy(np.ascontiguousarray(X))
    Yt = torch.from_numpy(np.ascontiguousarray(Y))
    params = tuple(getattr(gru, n + "_l0") for n in _NAMES) + (c,)
    mse_loss = torch.nn.functional.mse_loss

    def run():
        for p in params:
            p.grad = None
        out, _ = gru(Xt)
        loss = mse_loss(out @ c, Yt)
        loss.backward()
        return np.concatenate([p.grad.numpy().ravel() for p in params])

    return run


def _import_jax():
    import os

    flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    if flags not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    return jax


def _jax_side(model, X, Y):
    """``run()`` -> flat gradient, and the measured compile+first-call time; None without jax."""
    jax = _import_jax()
    if jax is None:
        return None, None
    import time

    jnp = jax.numpy
    m = model.hidden
    lstm = isinstance(model, dynmem.LSTMCell)
    Xs = jnp.asarray(np.ascontiguousarray(np.asarray(X).transpose(1, 0, 2)))  # (T, B, d)
    Ys = jnp.asarray(np.asarray(Y))
    B = X.shape[0]

    def loss(params):
        Wih, Whh, bih, bhh, c = params
        P = Xs @ Wih.T + bih  # (T, B, g m)

        def gru_step(h, p):
            gh = h @ Whh.T + bhh
            r = jax.nn.sigmoid(p[:, :m] + gh[:, :m])
            z = jax.nn.sigmoid(p[:, m:2 * m] + gh[:, m:2 * m])
            n = jnp.tanh(p[:, 2 * m:] + r * gh[:, 2 * m:])
            h = (1 - z) * n + z * h
            return h, h @ c

        def lstm_step(carry, p):
            h, s = carry
            a = p + h @ Whh.T + bhh
            i, f = jax.nn.sigmoid(a[:, :m]), jax.nn.sigmoid(a[:, m:2 * m])
            g, o = jnp.tanh(a[:, 2 * m:3 * m]), jax.nn.sigmoid(a[:, 3 * m:])
            s = f * s + i * g
            h = o * jnp.tanh(s)
            return (h, s), h @ c

        h0 = jnp.zeros((B, m))
        _, y = jax.lax.scan(lstm_step, (h0, h0), P) if lstm else jax.lax.scan(gru_step, h0, P)
        return jnp.mean((y.T - Ys) ** 2)

    fn = jax.jit(jax.value_and_grad(loss))
    params = tuple(jnp.asarray(np.array(getattr(model, n))) for n in _NAMES + ("c",))

    def run():
        _, g = fn(params)
        return np.concatenate([np.asarray(x).ravel() for x in g])

    t = time.perf_counter()
    run()
    return run, time.perf_counter() - t


def reference_gradient_ssm(model, X, Y) -> np.ndarray:
    """MSE loss gradient of a DiscreteDiagonalSSM by BPTT in np.clongdouble; flat in ``flatten()`` order."""
    L, CL = np.longdouble, np.clongdouble
    lam, Bb, C = (np.asarray(a, dtype=CL) for a in (model.Lambda_bar, model.B_bar, model.C))
    D = np.asarray(model.D, dtype=L)
    X, Y = np.asarray(X, dtype=L), np.asarray(Y, dtype=L)
    B, T, d = X.shape
    m = lam.size
    H = np.zeros((T + 1, B, m), dtype=CL)
    for k in range(T):
        H[k + 1] = lam * H[k] + X[:, k] @ Bb.T
    y = (H[1:] @ C).real + np.einsum("btd,d->tb", X, D)
    g = (L(2) / L(B * T)) * (y - Y.T)  # (T, B)
    e = np.zeros((B, m), dtype=CL)
    glam = np.zeros(m, dtype=CL)
    gB = np.zeros((m, d), dtype=CL)
    for k in range(T - 1, -1, -1):
        e = np.conj(lam) * e + g[k][:, None] * np.conj(C)  # dL/dh_{k+1} as dL/dRe + i dL/dIm
        glam += np.sum(np.conj(H[k]) * e, axis=0)
        gB += e.T @ X[:, k]
    gC = np.einsum("tb,tbi->i", g, np.conj(H[1:]))
    gD = np.einsum("tb,btd->d", g, X)
    parts = [p for z in (glam, gB, gC) for p in (z.real.ravel(), z.imag.ravel())]
    return np.concatenate(parts + [gD]).astype(np.float64)


def _jax_ssm(model, X, Y):
    jax = _import_jax()
    if jax is None:
        return None, None
    import time

    jnp = jax.numpy
    B, T, d = X.shape
    m = model.hidden
    Xs = jnp.asarray(np.ascontiguousarray(np.asarray(X).transpose(1, 0, 2)))
    Ys = jnp.asarray(np.asarray(Y))

    def loss(p):
        lr, li, br, bi, cr, ci, D = p
        lam, Bb, C = lr + 1j * li, br + 1j * bi, cr + 1j * ci

        def step(h, u):
            h = lam * h + u
            return h, (h @ C).real

        _, y = jax.lax.scan(step, jnp.zeros((B, m), jnp.complex128), Xs @ Bb.T)
        return jnp.mean((y.T + (Xs @ D).T - Ys) ** 2)

    fn = jax.jit(jax.value_and_grad(loss))
    p = tuple(jnp.asarray(a) for a in (model.Lambda_bar.real, model.Lambda_bar.imag, model.B_bar.real,
                                       model.B_bar.imag, model.C.real, model.C.imag, model.D))

    def run():
        _, g = fn(p)
        return np.concatenate([np.asarray(x).ravel() for x in g])

    t = time.perf_counter()
    run()
    return run, time.perf_counter() - t


def _ssm_cases(quick: bool):
    out = []
    for (m, batch, T), target in (QUICK_SIZES if quick else SIZES):
        def build(m=m, batch=batch, T=T, target=target):
            rng = np.random.default_rng([1, m, batch, T])
            model = dynmem.DiagonalSSM.random(m, D_INPUTS, feedthrough=True, rng=rng).discretize(1.0)
            X = rng.standard_normal((batch, T, D_INPUTS))
            Y = 0.5 * rng.standard_normal((batch, T))
            jax_run, jax_compile = _jax_ssm(model, X, Y)
            if jax_run is None:
                raise ImportError("the SSM cases compare against jax, which is not installed; install the extra with: "
                                  "pip install 'dynmem[bench]'")
            memo = {}

            def reference():
                if "ref" not in memo:
                    memo["ref"] = reference_gradient_ssm(model, X, Y)
                return memo["ref"]

            def extras(rec, jax_compile=jax_compile):
                return {"jax_compile_and_first_call_s": jax_compile}

            return Case(
                name=f"ssm_m{m}_b{batch}_T{T}",
                group="gated",
                description=f"diagonal SSM (ZOH) forward+BPTT, m={m} batch={batch} T={T} d={D_INPUTS}, MSE loss",
                params=dict(m=m, batch=batch, T=T, d=D_INPUTS, dtype="complex128 state, float64 in/out"),
                dynmem=lambda: dynmem.ssm.ssm_value_and_grad(model, X, Y, loss="mse").flat,
                peer=jax_run,
                reference=reference,
                error=rel_err,
                peer_name=JAX_NAME,
                reference_name="numpy clongdouble BPTT",
                speed_target=target,
                extras=extras,
            )

        out.append((f"ssm_m{m}_b{batch}_T{T}", "gated", build))
    return out


def cases(quick: bool = False) -> list[tuple[str, str, object]]:
    """``(name, group, build)`` for each size; ``build()`` makes the :class:`Case` (and its data)."""
    out = []
    for ((m, batch, T), target), kind in [(sz, kind) for kind in ("gru", "lstm") for sz in (QUICK_SIZES if quick else SIZES)]:
        def build(m=m, batch=batch, T=T, target=target, kind=kind):
            cls = dynmem.GRUCell if kind == "gru" else dynmem.LSTMCell
            ref = reference_gradient if kind == "gru" else reference_gradient_lstm
            model, X, Y = make_problem(m, batch, T, cls=cls)
            memo = {}

            def reference():
                if "ref" not in memo:
                    memo["ref"] = ref(model, X, Y)
                return memo["ref"]

            def run_forward():
                return dynmem.gated_forward(model, X).y

            jax_run, jax_compile = _jax_side(model, X, Y)
            also = {"dynmem forward only": run_forward}
            if jax_run is not None:
                also[JAX_NAME] = jax_run

            def extras(rec, jax_run=jax_run, jax_compile=jax_compile):
                if jax_run is None:
                    return {"jax": "not installed"}
                med = rec["also_timed"][JAX_NAME]["median_s"]
                return {"jax_compile_and_first_call_s": jax_compile, "jax_median_s": med,
                        "jax_over_dynmem": med / rec["dynmem_median_s"],
                        "jax_error": rel_err(jax_run(), reference())}

            def run_dynmem():
                return dynmem.gated_value_and_grad(model, X, Y, loss="mse").flat

            return Case(
                name=_name(kind, m, batch, T),
                group="gated",
                description=f"{kind.upper()} forward+BPTT, m={m} batch={batch} T={T} d={D_INPUTS}, MSE loss",
                params=dict(m=m, batch=batch, T=T, d=D_INPUTS, dtype="float64"),
                dynmem=run_dynmem,
                peer=_torch_side(model, X, Y),
                reference=reference,
                error=rel_err,
                peer_name="torch.nn.GRU" if kind == "gru" else "torch.nn.LSTM",
                reference_name="numpy longdouble BPTT",
                speed_target=target,
                also_time=also,
                extras=extras,
            )

        out.append((_name(kind, m, batch, T), "gated", build))
    return out + _ssm_cases(quick)


JAX_NAME = "jax.jit(grad(scan))"


def _name(kind, m, batch, T) -> str:
    return f"{kind}_m{m}_b{batch}_T{T}"
