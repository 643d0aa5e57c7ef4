"""Gated recurrent cells (GRU, LSTM) with PyTorch's conventions, numba forward and BPTT.

Both cells keep PyTorch's parameter layout, so the arrays of a trained
``torch.nn.GRU`` / ``torch.nn.LSTM`` layer (``weight_ih_l0`` ...) can be
passed in unchanged.  Hidden width m, input dimension d, scalar output.

GRU (gates stacked in the order r, z, n; ``weight_ih`` (3m, d),
``weight_hh`` (3m, m), ``bias_ih`` and ``bias_hh`` (3m,))::

    r_k     = sigmoid(W_ir x_k + b_ir + W_hr h_k + b_hr)
    z_k     = sigmoid(W_iz x_k + b_iz + W_hz h_k + b_hz)
    n_k     = tanh(W_in x_k + b_in + r_k * (W_hn h_k + b_hn))
    h_{k+1} = (1 - z_k) * n_k + z_k * h_k

LSTM (gates i, f, g, o; ``weight_ih`` (4m, d), ``weight_hh`` (4m, m),
biases (4m,); cell state s)::

    (i, f, g, o)_k = (sigmoid, sigmoid, tanh, sigmoid)(W_ih x_k + b_ih + W_hh h_k + b_hh)
    s_{k+1}        = f_k * s_k + i_k * g_k
    h_{k+1}        = o_k * tanh(s_{k+1})

Read-out ``y_k = c^T h_{k+1}`` (step k reads ``x_k`` and emits the output of
the new state, as :mod:`dynmem.recurrences` does).  The read-out vector is
the field ``c``; the LSTM's cell state is called ``s`` here to avoid the
clash with PyTorch's ``c_n``.

Both cells satisfy the :class:`~dynmem.models.DiscreteModel` contract, so
:func:`dynmem.memory.memory_function` takes their memory.  The GRU has a
continuous-time form, :class:`CTGRU` (``dh/dt = (1 - z) (n - h)``, whose
forward-Euler step with dt = 1 is exactly the GRU cell), on the
:class:`~dynmem.models.ContinuousModel` contract.  The LSTM is discrete only
here: its cell state has no decay term of its own (``s_{k+1} - s_k = (f - 1)
s_k + i g``), and a continuous-time LSTM is a modelling choice, not a
unique form, so none is offered.

BPTT is written by hand (the derivation is in the kernel docstrings).  For
input dimensions up to :data:`FUSE_INPUTS_MAX` the input projection
``W_ih x_k + b_ih`` and its gradient are fused into the sequential kernels
(no (T, B, g m) arrays); the recurrent weight gradient is formed after the
sweep as one matrix product from the stored pre-activation cotangents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numba
import numpy as np

from .._validation import as_float_array, check_choice, check_int, check_nonnegative, check_rng, describe
from ..activations import tanh_block
from ..compiling import announce_compilation, kernel_array
from ..recurrences import hidden_cotangent, sequence_loss
from .contract import LayerGradient, LayerPass, ParamArrays

__all__ = ["GRUCell", "LSTMCell", "CTGRU", "GatedTrajectory", "GatedGradient", "gated_forward", "gated_value_and_grad"]


# ---------------------------------------------------------------------------
# numba kernels (float64, C-contiguous; one signature each)


#: Input dimension up to which the input projection ``W_ih x_k + b_ih`` is fused
#: into the sequential kernels (a few multiply-adds per gate entry, no (T, B, g m)
#: array); above it the projection is one BLAS product before the sweep.
FUSE_INPUTS_MAX = 16

_EMPTY1 = np.empty(0)
_EMPTY2 = np.empty((0, 0))
_EMPTY3 = np.empty((0, 0, 0))


@numba.njit(cache=True, error_model="numpy")
def _input_part(Xk, WihT, bih, P, k, bi, A, lo, hi, mode):
    """``A[bi, lo:hi] (+)= (W_ih x_k + b_ih)[lo:hi]``: fused from X (``P`` empty) or read from P."""
    if P.shape[0] > 0:
        Pk = P[k]
        if mode == 0:
            for i in range(lo, hi):
                A[bi, i] = Pk[bi, i]
        else:
            for i in range(lo, hi):
                A[bi, i] += Pk[bi, i]
        return
    if mode == 0:
        for i in range(lo, hi):
            A[bi, i] = bih[i]
    else:
        for i in range(lo, hi):
            A[bi, i] += bih[i]
    for j in range(Xk.shape[1]):
        xj = Xk[bi, j]
        for i in range(lo, hi):
            A[bi, i] += xj * WihT[j, i]


@numba.njit(cache=True, error_model="numpy")
def _gru_forward_kernel(WhhT, bhh, WihT, bih, c, X, P, H, G, Y):
    """GRU forward.

    WhhT (m, 3m) = weight_hh^T; bhh (3m,); WihT (d, 3m) = weight_ih^T; bih (3m,);
    c (m,); X (T, B, d) inputs; P either empty (the input projection
    ``W_ih x_k + b_ih`` is formed here, for small d) or (T, B, 3m) holding it;
    H (T+1, B, m) with H[0] = h_0 set.  Writes H[1:], G (T, B, 4m) = (r, z, n,
    W_hn h_k + b_hn) and Y (T, B) = c^T h_{k+1}.  The sigmoids are
    ``(1 + tanh(v/2)) / 2``, so every transcendental goes through the
    vectorised :func:`~dynmem.activations.tanh_block` (libm's scalar tanh
    and exp would dominate the step).
    """
    T, B, _ = X.shape
    m3 = WhhT.shape[1]
    m = m3 // 3
    A = np.empty((B, m3))
    I = np.empty((B, m3))
    n2 = B * 2 * m
    n1 = B * m
    u2 = np.empty(n2)
    t2 = np.empty(n2)
    s2 = np.empty(n2)
    u1 = np.empty(n1)
    t1 = np.empty(n1)
    s1 = np.empty(n1)
    for k in range(T):
        hk = H[k]
        np.dot(hk, WhhT, A)
        Xk = X[k]
        Gk = G[k]
        hn = H[k + 1]
        for bi in range(B):
            _input_part(Xk, WihT, bih, P, k, bi, I, 0, m3, 0)
            o = bi * 2 * m
            for i in range(2 * m):
                u2[o + i] = 0.5 * (I[bi, i] + A[bi, i] + bhh[i])
        tanh_block(u2, t2, s2)
        for bi in range(B):
            o = bi * 2 * m
            for i in range(m):
                r = 0.5 + 0.5 * t2[o + i]
                q = A[bi, 2 * m + i] + bhh[2 * m + i]
                Gk[bi, i] = r
                Gk[bi, m + i] = 0.5 + 0.5 * t2[o + m + i]
                Gk[bi, 3 * m + i] = q
                u1[bi * m + i] = I[bi, 2 * m + i] + r * q
        tanh_block(u1, t1, s1)
        for bi in range(B):
            acc = 0.0
            for i in range(m):
                n = t1[bi * m + i]
                z = Gk[bi, m + i]
                h = (1.0 - z) * n + z * hk[bi, i]
                Gk[bi, 2 * m + i] = n
                hn[bi, i] = h
                acc += c[i] * h
            Y[k, bi] = acc


@numba.njit(cache=True, error_model="numpy")
def _gru_backward_kernel(Whh, c, X, H, G, dY, A, a, Dih, Dhh, gWihT, gbih, gbhh):
    """GRU BPTT, sequential part: the one backward sweep of the BPTT door and of the stack layer.

    The cotangent of ``h_{k+1}`` from outside the cell is ``g v`` with
    ``(g, v) = (dY[k, b], c)`` (the read-out; A empty) or ``(1, A[k, b])``
    (A (T, B, m), a cotangent on every state: a stack layer; dY is not
    read; ``1 * A`` is ``A`` exactly), as in the backward kernel of
    :mod:`dynmem.recurrences`.  With ``a = dL/dh_{k+1}`` (including it)::

        dn = a (1 - z),  dz = a (h_k - n),  dan = dn (1 - n^2)      (an = n's pre-activation)
        dr = dan q,      dar = dr r (1 - r),  daz = dz z (1 - z),   dq = dan r
        dL/dh_k = a z + [dar, daz, dq] @ weight_hh

    Writes Dhh[k] = [dar, daz, dq] (cotangent of W_hh h_k + b_hh) and
    accumulates its sum into gbhh (when non-empty).  The cotangent of W_ih x_k + b_ih,
    [dar, daz, dan], is either stored in Dih[k] (Dih non-empty, for a BLAS
    product afterwards, and ``dL/dx_k = Dih[k] @ weight_ih``) or contracted
    here with x_k into gWihT (d, 3m) and gbih.  ``a`` enters as the extra
    cotangent of h_T and leaves as dL/dh_0.
    """
    T, B, m4 = G.shape
    m = m4 // 4
    d = X.shape[2]
    store = Dih.shape[0] > 0
    per_state = A.shape[0] > 0
    sums = gbhh.shape[0] > 0
    tmp = np.empty((B, m))
    di = np.empty(3 * m)
    for k in range(T - 1, -1, -1):
        Gk = G[k]
        hk = H[k]
        Dh = Dhh[k]
        Xk = X[k]
        for bi in range(B):
            g, v = (1.0, A[k, bi]) if per_state else (dY[k, bi], c)
            for i in range(m):
                ai = a[bi, i] + g * v[i]
                r = Gk[bi, i]
                z = Gk[bi, m + i]
                n = Gk[bi, 2 * m + i]
                q = Gk[bi, 3 * m + i]
                dan = ai * (1.0 - z) * (1.0 - n * n)
                dar = dan * q * r * (1.0 - r)
                daz = ai * (hk[bi, i] - n) * z * (1.0 - z)
                di[i] = dar
                di[m + i] = daz
                di[2 * m + i] = dan
                Dh[bi, i] = dar
                Dh[bi, m + i] = daz
                Dh[bi, 2 * m + i] = dan * r
                a[bi, i] = ai * z
            if sums:
                for i in range(3 * m):
                    gbhh[i] += Dh[bi, i]
            if store:
                for i in range(3 * m):
                    Dih[k, bi, i] = di[i]
            else:
                for i in range(3 * m):
                    gbih[i] += di[i]
                for j in range(d):
                    xj = Xk[bi, j]
                    for i in range(3 * m):
                        gWihT[j, i] += xj * di[i]
        np.dot(Dh, Whh, tmp)
        for bi in range(B):
            for i in range(m):
                a[bi, i] += tmp[bi, i]


@numba.njit(cache=True, error_model="numpy")
def _lstm_forward_kernel(WhhT, bhh, WihT, bih, c, X, P, H, S, G, Y):
    """LSTM forward.

    WhhT (m, 4m); bhh (4m,); WihT (d, 4m); bih (4m,); X (T, B, d); P empty
    (input projection fused here) or (T, B, 4m) = W_ih x_k + b_ih; H, S
    (T+1, B, m) with H[0] = h_0, S[0] = s_0 set.  Writes H[1:], S[1:], G (T,
    B, 4m) = (i, f, g, o) after their activations, and Y (T, B) = c^T h_{k+1}.
    Sigmoids as ``(1 + tanh(v/2)) / 2`` through :func:`~dynmem.activations.tanh_block`.
    """
    T, B, _ = X.shape
    m4 = WhhT.shape[1]
    m = m4 // 4
    A = np.empty((B, m4))
    n4 = B * m4
    n1 = B * m
    u4 = np.empty(n4)
    t4 = np.empty(n4)
    s4 = np.empty(n4)
    u1 = np.empty(n1)
    t1 = np.empty(n1)
    s1 = np.empty(n1)
    for k in range(T):
        np.dot(H[k], WhhT, A)
        Xk = X[k]
        Gk = G[k]
        sk = S[k]
        sn = S[k + 1]
        hn = H[k + 1]
        for bi in range(B):
            _input_part(Xk, WihT, bih, P, k, bi, A, 0, m4, 1)
            o = bi * m4
            # g (third block) takes tanh(v); the sigmoid gates tanh(v/2).
            for i in range(2 * m):
                u4[o + i] = 0.5 * (A[bi, i] + bhh[i])
            for i in range(2 * m, 3 * m):
                u4[o + i] = A[bi, i] + bhh[i]
            for i in range(3 * m, m4):
                u4[o + i] = 0.5 * (A[bi, i] + bhh[i])
        tanh_block(u4, t4, s4)
        for bi in range(B):
            o = bi * m4
            for i in range(m):
                ig = 0.5 + 0.5 * t4[o + i]
                fg = 0.5 + 0.5 * t4[o + m + i]
                gg = t4[o + 2 * m + i]
                og = 0.5 + 0.5 * t4[o + 3 * m + i]
                s = fg * sk[bi, i] + ig * gg
                Gk[bi, i] = ig
                Gk[bi, m + i] = fg
                Gk[bi, 2 * m + i] = gg
                Gk[bi, 3 * m + i] = og
                sn[bi, i] = s
                u1[bi * m + i] = s
        tanh_block(u1, t1, s1)
        for bi in range(B):
            acc = 0.0
            for i in range(m):
                h = Gk[bi, 3 * m + i] * t1[bi * m + i]
                hn[bi, i] = h
                acc += c[i] * h
            Y[k, bi] = acc


@numba.njit(cache=True, error_model="numpy")
def _lstm_backward_kernel(Whh, c, X, H, S, G, dY, A, a, e, D, gWihT, gb):
    """LSTM BPTT, sequential part: the one backward sweep of the BPTT door and of the stack layer.

    The cotangent of ``h_{k+1}`` from outside the cell, ``dY_k c`` (A
    empty) or ``A[k]`` (T, B, m; dY not read), as in
    :func:`_gru_backward_kernel`.  With ``a = dL/dh_{k+1}`` (including it), ``e =
    dL/ds_{k+1}`` and ``t = tanh(s_{k+1})`` (recovered as ``h_{k+1} / o``:
    ``o > 0``, and ``h = o t`` was rounded once, so this is t to two
    roundings; libm's tanh is the fallback for ``o < 1e-100``)::

        do = a t,  ds = e + a o (1 - t^2),  di = ds g,  df = ds s_k,  dg = ds i
        D[k] = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]      (dL/d pre-activation)
        dL/ds_k = ds f,   dL/dh_k = D[k] @ weight_hh

    Accumulates the sum of D[k] into gb (when non-empty) and, when ``gWihT`` (d, 4m) is
    non-empty, ``x_k D[k]`` into it (the fused input projection; else
    ``dL/dx_k = D[k] @ weight_ih``).  ``a``, ``e`` enter as the extra
    cotangents of h_T, s_T and leave as dL/dh_0, dL/ds_0.
    """
    T, B, m4 = G.shape
    m = m4 // 4
    d = X.shape[2]
    fused = gWihT.shape[0] > 0
    per_state = A.shape[0] > 0
    sums = gb.shape[0] > 0
    for k in range(T - 1, -1, -1):
        Gk = G[k]
        sk = S[k]
        sn = S[k + 1]
        hn = H[k + 1]
        Dk = D[k]
        Xk = X[k]
        for bi in range(B):
            g, v = (1.0, A[k, bi]) if per_state else (dY[k, bi], c)
            for i in range(m):
                ai = a[bi, i] + g * v[i]
                ig = Gk[bi, i]
                fg = Gk[bi, m + i]
                gg = Gk[bi, 2 * m + i]
                og = Gk[bi, 3 * m + i]
                t = hn[bi, i] / og if og > 1e-100 else np.tanh(sn[bi, i])
                ds = e[bi, i] + ai * og * (1.0 - t * t)
                Dk[bi, i] = ds * gg * ig * (1.0 - ig)
                Dk[bi, m + i] = ds * sk[bi, i] * fg * (1.0 - fg)
                Dk[bi, 2 * m + i] = ds * ig * (1.0 - gg * gg)
                Dk[bi, 3 * m + i] = ai * t * og * (1.0 - og)
                e[bi, i] = ds * fg
            if sums:
                for i in range(m4):
                    gb[i] += Dk[bi, i]
            if fused:
                for j in range(d):
                    xj = Xk[bi, j]
                    for i in range(m4):
                        gWihT[j, i] += xj * Dk[bi, i]
        np.dot(Dk, Whh, a)


# ---------------------------------------------------------------------------
# models


class _GatedCell(ParamArrays):
    """The gated cells' arrays (gates stacked as in PyTorch); flattening and replacement from :class:`ParamArrays`."""

    _n_gates: ClassVar[int] = 0
    _param_names: ClassVar[tuple[str, ...]] = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "c")

    def _check_params(self) -> None:
        g = self._n_gates
        name = type(self).__name__
        Whh = as_float_array("weight_hh", self.weight_hh, ndim=2, copy=True)
        if Whh.shape[0] < g or Whh.shape[0] != g * Whh.shape[1]:
            raise ValueError(
                f"`weight_hh` of a {name} must have shape ({g}m, m) with m >= 1 (gates stacked); got shape {Whh.shape}."
            )
        m = Whh.shape[1]
        Wih = as_float_array("weight_ih", self.weight_ih, ndim=2, copy=True)
        if Wih.shape[0] != g * m or Wih.shape[1] < 1:
            raise ValueError(
                f"`weight_ih` of a {name} must have shape ({g * m}, d) with d >= 1 to match `weight_hh` of shape "
                f"{Whh.shape}; got shape {Wih.shape}."
            )
        arrays = {
            "weight_ih": Wih,
            "weight_hh": Whh,
            "bias_ih": as_float_array("bias_ih", self.bias_ih, shape=(g * m,), copy=True),
            "bias_hh": as_float_array("bias_hh", self.bias_hh, shape=(g * m,), copy=True),
            "c": as_float_array("c", self.c, shape=(m,), copy=True),
        }
        for n, arr in arrays.items():
            arr.flags.writeable = False
            object.__setattr__(self, n, arr)

    @property
    def hidden(self) -> int:
        """Hidden width m."""
        return self.weight_hh.shape[1]

    @property
    def inputs(self) -> int:
        """Input dimension d."""
        return self.weight_ih.shape[1]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(hidden={self.hidden}, inputs={self.inputs})"

    @classmethod
    def random(cls, hidden: int, inputs: int = 1, *, scale: float | None = None, rng=None):
        """A random cell with PyTorch's default initialisation.

        Every weight and bias is uniform on ``[-scale, scale]`` with
        ``scale = 1/sqrt(m)`` by default (``torch.nn.GRU``/``LSTM``'s
        ``reset_parameters``); the read-out ``c`` is N(0, 1/m).
        """
        m = check_int("hidden", hidden, minimum=1)
        d = check_int("inputs", inputs, minimum=1)
        k = 1.0 / np.sqrt(m) if scale is None else check_nonnegative("scale", scale)
        rng = check_rng("rng", rng)
        g = cls._n_gates
        return cls(
            weight_ih=rng.uniform(-k, k, (g * m, d)),
            weight_hh=rng.uniform(-k, k, (g * m, m)),
            bias_ih=rng.uniform(-k, k, g * m),
            bias_hh=rng.uniform(-k, k, g * m),
            c=rng.standard_normal(m) / np.sqrt(m),
        )

    # -- forward / gradient (dispatch to the module functions) -------------
    def forward(self, X, *, h0=None, s0=None) -> "GatedTrajectory":
        """Outputs and states on inputs ``X`` (batch, T, d); see :func:`gated_forward`."""
        return gated_forward(self, X, h0=h0, s0=s0)

    def value_and_grad(self, X, Y, *, h0=None, s0=None, loss: str = "mse") -> "GatedGradient":
        """Loss and its gradient; see :func:`gated_value_and_grad`."""
        return gated_value_and_grad(self, X, Y, h0=h0, s0=s0, loss=loss)


class _DiscreteCell(_GatedCell):
    """The discrete cells' side of the contract (:class:`~dynmem.models.DiscreteModel`)."""

    # -- the discrete-model contract (dynmem.models.DiscreteModel) ---------
    #: The time one step stands for.
    dt: ClassVar[float] = 1.0

    @property
    def state_size(self) -> int:
        """Length of the flat state: m for a GRU, 2m for an LSTM (``s = (h, cell)``)."""
        return self.hidden * (2 if self._n_gates == 4 else 1)

    def _split(self, S0):
        S0 = as_float_array("S0", S0, ndim=2)
        n = self.state_size
        if S0.shape[1] != n:
            raise ValueError(f"`S0` must have shape (k, {n}) (the flat state of this {type(self).__name__}); "
                             f"got shape {S0.shape}.")
        m = self.hidden
        return (S0[:, :m], S0[:, m:]) if self._n_gates == 4 else (S0, None)

    def outputs(self, X, S0) -> np.ndarray:
        """``y_0 .. y_{T-1}`` for inputs X (k, T, d) from flat states S0 (k, state_size); shape (k, T)."""
        h0, s0 = self._split(S0)
        return gated_forward(self, X, h0=h0, s0=s0).y

    def readout(self, S) -> np.ndarray:
        """``c^T h`` for flat states S (k, state_size); shape (k,)."""
        return np.asarray(S, dtype=float)[:, : self.hidden] @ self.c

    def final_state(self, X, S0) -> np.ndarray:
        """The flat state after running inputs X (k, T, d) from S0 (k, state_size); shape (k, state_size)."""
        h0, s0 = self._split(S0)
        tr = gated_forward(self, X, h0=h0, s0=s0)
        return tr._H[-1] if tr._S is None else np.concatenate([tr._H[-1], tr._S[-1]], axis=1)

    # -- the one-step map (dynmem.models.DiscreteMap) ------------------------
    def _step_parts(self, S, X):
        h, cell = self._split(S)
        X = as_float_array("X", X, ndim=2, shape=(h.shape[0], self.inputs))
        m = self.hidden
        gi = X @ self.weight_ih.T + self.bias_ih
        gh = h @ self.weight_hh.T + self.bias_hh
        return h, cell, gi, gh, m

    def step(self, S, X) -> np.ndarray:
        """One step of the cell on flat states S (k, state_size) and inputs X (k, d); shape (k, state_size).

        GRU: ``(1 - z) n + z h``; LSTM: ``(o tanh(s'), s')`` with ``s' = f s + i g``
        (equations in the module docstring).
        """
        h, cell, gi, gh, m = self._step_parts(S, X)
        if self._n_gates == 3:
            r = _sigmoid(gi[:, :m] + gh[:, :m])
            z = _sigmoid(gi[:, m:2 * m] + gh[:, m:2 * m])
            n = np.tanh(gi[:, 2 * m:] + r * gh[:, 2 * m:])
            return (1.0 - z) * n + z * h
        a = gi + gh
        i, f, o = _sigmoid(a[:, :m]), _sigmoid(a[:, m:2 * m]), _sigmoid(a[:, 3 * m:])
        s_new = f * cell + i * np.tanh(a[:, 2 * m:3 * m])
        return np.concatenate([o * np.tanh(s_new), s_new], axis=1)

    def step_jacobian(self, S, X) -> np.ndarray:
        """``dF/ds`` of :meth:`step` at each pair; shape (k, state_size, state_size).

        GRU (with ``q = W_hn h + b_hn``)::

            dF/dh = diag(z) + diag((h - n) z (1 - z)) W_hz
                    + diag((1 - z)(1 - n^2)) (diag(r) W_hn + diag(q r (1 - r)) W_hr)

        LSTM on ``(h, s)``, with ``s' = f s + i g`` and ``t = tanh(s')``::

            ds'/dh = diag(s f (1-f)) W_hf + diag(g i (1-i)) W_hi + diag(i (1-g^2)) W_hg,   ds'/ds = diag(f)
            dh'/dh = diag(t o (1-o)) W_ho + diag(o (1-t^2)) ds'/dh,                        dh'/ds = diag(o (1-t^2) f)
        """
        h, cell, gi, gh, m = self._step_parts(S, X)
        Whh = self.weight_hh
        if self._n_gates == 3:
            r = _sigmoid(gi[:, :m] + gh[:, :m])
            z = _sigmoid(gi[:, m:2 * m] + gh[:, m:2 * m])
            q = gh[:, 2 * m:]
            n = np.tanh(gi[:, 2 * m:] + r * q)
            J = ((h - n) * z * (1 - z))[:, :, None] * Whh[m:2 * m]
            dn = r[:, :, None] * Whh[2 * m:] + (q * r * (1 - r))[:, :, None] * Whh[:m]
            J += ((1 - z) * (1 - n * n))[:, :, None] * dn
            J[:, np.arange(m), np.arange(m)] += z
            return J
        a = gi + gh
        i, f, o = _sigmoid(a[:, :m]), _sigmoid(a[:, m:2 * m]), _sigmoid(a[:, 3 * m:])
        g = np.tanh(a[:, 2 * m:3 * m])
        s_new = f * cell + i * g
        t = np.tanh(s_new)
        ds_dh = ((cell * f * (1 - f))[:, :, None] * Whh[m:2 * m] + (g * i * (1 - i))[:, :, None] * Whh[:m]
                 + (i * (1 - g * g))[:, :, None] * Whh[2 * m:3 * m])
        k = h.shape[0]
        J = np.zeros((k, 2 * m, 2 * m))
        J[:, :m, :m] = (t * o * (1 - o))[:, :, None] * Whh[3 * m:] + (o * (1 - t * t))[:, :, None] * ds_dh
        J[:, :m, m:] = np.einsum("ki,ij->kij", o * (1 - t * t) * f, np.eye(m))
        J[:, m:, :m] = ds_dh
        J[:, m:, m:] = np.einsum("ki,ij->kij", f, np.eye(m))
        return J

    def step_input_jacobian(self, S, X) -> np.ndarray:
        """``dF/dx`` of :meth:`step` at each pair; shape (k, state_size, d) (a stack's step Jacobian needs it).

        The formulas of :meth:`step_jacobian` with the ``W_i*`` blocks in place of ``W_h*``
        (r enters the GRU's n through ``q = W_hn h + b_hn`` only, so ``W_in`` appears bare).
        """
        h, cell, gi, gh, m = self._step_parts(S, X)
        Wih = self.weight_ih
        if self._n_gates == 3:
            r = _sigmoid(gi[:, :m] + gh[:, :m])
            z = _sigmoid(gi[:, m:2 * m] + gh[:, m:2 * m])
            q = gh[:, 2 * m:]
            n = np.tanh(gi[:, 2 * m:] + r * q)
            dn = Wih[2 * m:][None] + (q * r * (1 - r))[:, :, None] * Wih[:m]
            return ((h - n) * z * (1 - z))[:, :, None] * Wih[m:2 * m] + ((1 - z) * (1 - n * n))[:, :, None] * dn
        a = gi + gh
        i, f, o = _sigmoid(a[:, :m]), _sigmoid(a[:, m:2 * m]), _sigmoid(a[:, 3 * m:])
        g = np.tanh(a[:, 2 * m:3 * m])
        t = np.tanh(f * cell + i * g)
        ds_dx = ((cell * f * (1 - f))[:, :, None] * Wih[m:2 * m] + (g * i * (1 - i))[:, :, None] * Wih[:m]
                 + (i * (1 - g * g))[:, :, None] * Wih[2 * m:3 * m])
        dh_dx = (t * o * (1 - o))[:, :, None] * Wih[3 * m:] + (o * (1 - t * t))[:, :, None] * ds_dx
        return np.concatenate([dh_dx, ds_dx], axis=1)

    # -- a layer of a stack (dynmem.models.SequenceLayer) -------------------
    @property
    def feature_size(self) -> int:
        """Width of the sequence passed up in a stack: the hidden width m (an LSTM passes h, not its cell state)."""
        return self.hidden

    def features(self, S) -> np.ndarray:
        """The hidden part ``h`` of flat states S (k, state_size); shape (k, m)."""
        h, _ = self._split(S)
        return h

    def sequence_forward(self, X, S0=None):
        """Features ``h_1 .. h_T``, outputs and tape (:func:`gated_hidden_forward`)."""
        return gated_hidden_forward(self, X, S0)

    def sequence_backward(self, passed, dF=None, dy=None):
        """BPTT with cotangents on every hidden state (:func:`gated_hidden_backward`)."""
        return gated_hidden_backward(self, passed, dF, dy)

    def equilibrium(self, X, *, max_steps: int = 200000, tol: float = 1e-14) -> np.ndarray:
        """Fixed points of the cell under constant inputs X (k, d), by iterating the cell from zero.

        The iteration runs in chunks of 256 steps and stops when one step moves
        the state by at most ``tol * max(1, |s|_inf)``.

        Raises
        ------
        dynmem.SimulationError
            If it has not settled within ``max_steps`` steps (no attracting rest state).
        """
        from ..errors import SimulationError

        X = as_float_array("X", X, ndim=2)
        if X.shape[1] != self.inputs:
            raise ValueError(f"`X` must have shape (k, {self.inputs}); got shape {X.shape}.")
        S = np.zeros((X.shape[0], self.state_size))
        chunk = np.repeat(X[:, None, :], 256, axis=1)
        one = X[:, None, :]
        for _ in range(max(1, max_steps // 257)):
            S = self.final_state(chunk, S)
            S1 = self.final_state(one, S)
            err = np.max(np.abs(S1 - S))
            S = S1
            if err <= tol * max(1.0, np.max(np.abs(S))):
                return S
        raise SimulationError(
            f"the {type(self).__name__} did not settle to a rest state under the constant input within {max_steps} "
            "steps; its memory needs a stable rest state."
        )


@dataclass(frozen=True, eq=False, repr=False)
class GRUCell(_DiscreteCell):
    """Discrete GRU cell with PyTorch's gate order (r, z, n) and layout, scalar read-out.

    ``h_{k+1} = (1 - z_k) * n_k + z_k * h_k``, ``y_k = c^T h_{k+1}`` (equations in
    the module docstring; identical to ``torch.nn.GRU`` with one layer).

    Parameters
    ----------
    weight_ih : array_like, shape (3m, d)
        ``[W_ir; W_iz; W_in]`` (``torch.nn.GRU.weight_ih_l0``).
    weight_hh : array_like, shape (3m, m)
        ``[W_hr; W_hz; W_hn]``.
    bias_ih, bias_hh : array_like, shape (3m,)
    c : array_like, shape (m,)
        Read-out vector.
    """

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray
    bias_hh: np.ndarray
    c: np.ndarray

    _n_gates: ClassVar[int] = 3

    def __post_init__(self):
        self._check_params()


@dataclass(frozen=True, eq=False, repr=False)
class LSTMCell(_DiscreteCell):
    """Discrete LSTM cell with PyTorch's gate order (i, f, g, o) and layout, scalar read-out.

    ``s_{k+1} = f_k s_k + i_k g_k``, ``h_{k+1} = o_k tanh(s_{k+1})``,
    ``y_k = c^T h_{k+1}`` (identical to ``torch.nn.LSTM`` with one layer and
    no projection; ``s`` is torch's cell state ``c``).

    Parameters
    ----------
    weight_ih : array_like, shape (4m, d)
        ``[W_ii; W_if; W_ig; W_io]`` (``torch.nn.LSTM.weight_ih_l0``).
    weight_hh : array_like, shape (4m, m)
    bias_ih, bias_hh : array_like, shape (4m,)
    c : array_like, shape (m,)
        Read-out vector.
    """

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray
    bias_hh: np.ndarray
    c: np.ndarray

    _n_gates: ClassVar[int] = 4

    def __post_init__(self):
        self._check_params()


def _sigmoid(v):
    return 0.5 + 0.5 * np.tanh(0.5 * v)


@dataclass(frozen=True, eq=False, repr=False)
class CTGRU(_GatedCell):
    """Continuous-time GRU ``dh/dt = (1 - z) * (n - h)``, ``y = c^T h`` (parameters as :class:`GRUCell`).

    With the gates of the GRU cell evaluated at ``(h, x)``::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        dh/dt = f(h, x) = (1 - z) * (n - h)

    The GRU update ``h_{k+1} = (1 - z) n + z h = h + f(h_k, x_k)`` is the
    forward-Euler step of this field with dt = 1, so :meth:`euler_cell`
    returns the :class:`GRUCell` with the same arrays.  This is the
    continuous-time GRU of [WLL] App. J as docs/theory.md records it ("writes a
    continuous-time GRU and linearises it at h* = 0"); the field is the
    standard GRU-ODE form.

    Rest states ``f(h, 0) = 0`` satisfy ``n(h, 0) = h`` (``1 - z > 0``); there
    the Jacobian is ``diag(1 - z) (dn/dh - I)`` with
    ``dn/dh = diag(1 - n^2) (diag(r) W_hn + diag(r (1 - r) (W_hn h + b_hn)) W_hr)``.
    ``h* = 0`` is a rest state exactly when ``tanh(b_in + r(0) b_hn) = 0``,
    e.g. when the n-gate biases vanish.

    Implements :class:`~dynmem.models.ContinuousModel`.
    """

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray
    bias_hh: np.ndarray
    c: np.ndarray

    _n_gates: ClassVar[int] = 3

    def __post_init__(self):
        self._check_params()

    def euler_cell(self) -> GRUCell:
        """The discrete GRU cell ``h_{k+1} = h_k + f(h_k, x_k)`` (forward Euler, dt = 1)."""
        return GRUCell(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.c)

    def _gates(self, H, X):
        m, d = self.hidden, self.inputs
        H = as_float_array("H", H, ndim=(1, 2))
        X = as_float_array("X", X, ndim=(1, 2))
        if H.shape[-1] != m:
            raise ValueError(f"`H` must hold states of width m = {m} (shape (k, {m})); got shape {H.shape}.")
        if X.shape[-1] != d:
            raise ValueError(f"`X` must hold inputs of width d = {d} (shape (k, {d})); got shape {X.shape}.")
        if H.ndim == 2 and X.ndim == 2 and H.shape[0] != X.shape[0] and 1 not in (H.shape[0], X.shape[0]):
            raise ValueError(f"`H` and `X` must have the same number of rows; got shapes {H.shape} and {X.shape}.")
        gi = X @ self.weight_ih.T + self.bias_ih
        gh = H @ self.weight_hh.T + self.bias_hh
        r = _sigmoid(gi[:, :m] + gh[:, :m])
        z = _sigmoid(gi[:, m:2 * m] + gh[:, m:2 * m])
        q = gh[:, 2 * m:]
        n = np.tanh(gi[:, 2 * m:] + r * q)
        return H, r, z, n, q

    def vector_field(self, H, X) -> np.ndarray:
        """``(1 - z) (n - h)`` for states H (k, m) and inputs X (k, d); shape (k, m)."""
        H, _, z, n, _ = self._gates(H, X)
        return (1.0 - z) * (n - H)

    def jacobian(self, H, X) -> np.ndarray:
        """``df/dh`` at each pair, shape (k, m, m).

        In the gates' notation::

            df/dh = diag(h - n) dz/dh + diag(1 - z) (dn/dh - I),
            dz/dh = diag(z (1 - z)) W_hz,
            dn/dh = diag(1 - n^2) (diag(r) W_hn + diag(q r (1 - r)) W_hr),   q = W_hn h + b_hn
        """
        H, r, z, n, q = self._gates(H, X)
        m = self.hidden
        Whr, Whz, Whn = self.weight_hh[:m], self.weight_hh[m:2 * m], self.weight_hh[2 * m:]
        dz = (z * (1 - z))[:, :, None] * Whz
        dn = (1 - n * n)[:, :, None] * (r[:, :, None] * Whn + (q * r * (1 - r))[:, :, None] * Whr)
        return (H - n)[:, :, None] * dz + (1 - z)[:, :, None] * (dn - np.eye(m))

    def input_jacobian(self, H, X) -> np.ndarray:
        """``df/dx`` at each pair (k, m, d) (same formulas with the ``W_i*`` blocks; r enters n through q only)."""
        H, r, z, n, q = self._gates(H, X)
        m = self.hidden
        Wir, Wiz, Win = self.weight_ih[:m], self.weight_ih[m:2 * m], self.weight_ih[2 * m:]
        dz = (z * (1 - z))[:, :, None] * Wiz
        dn = (1 - n * n)[:, :, None] * (Win[None] + (q * r * (1 - r))[:, :, None] * Wir)
        return (H - n)[:, :, None] * dz + (1 - z)[:, :, None] * dn

    def equilibrium(self, X) -> np.ndarray:
        """Rest states ``n(h, x) = h`` for constant inputs X (k, d) by ``scipy.optimize.root`` (shape (k, m)).

        Started from the zero state with the analytic Jacobian; raises
        :class:`dynmem.SimulationError` if the root finder fails.
        """
        import scipy.optimize

        from ..errors import SimulationError

        X = as_float_array("X", X, ndim=2)
        m = self.hidden
        if X.shape[1] != self.inputs:
            raise ValueError(f"`X` must have shape (k, {self.inputs}) (inputs of width d = {self.inputs}); "
                             f"got shape {X.shape}.")
        out = np.empty((X.shape[0], m))
        for i, x in enumerate(X):
            xi = x[None]
            sol = scipy.optimize.root(lambda h: self.vector_field(h[None], xi)[0], np.zeros(m),
                                      jac=lambda h: self.jacobian(h[None], xi)[0], method="hybr",
                                      options={"xtol": 1e-13})
            if not sol.success:
                raise SimulationError(f"could not find a rest state of the CTGRU: {sol.message}")
            out[i] = sol.x
        return out

    def impulse_kick(self, X) -> np.ndarray:
        """``(df/dx) x`` at the zero-input rest state: the kick of a short pulse of area x in the linear limit.

        The input enters the GRU through its gates, so a pulse of finite area
        in zero time has no unique nonlinear limit; dynmem uses the linearised
        input map ``B = df/dx (h*, 0)`` (exact for the linearisation).
        """
        X = as_float_array("X", X, ndim=2)
        h = self.equilibrium(np.zeros((1, self.inputs)))
        B = self.input_jacobian(h, np.zeros((1, self.inputs)))[0]
        return X @ B.T

    def linearize(self, h_star=None):
        """``d(h - h*)/dt = J (h - h*) + B x`` at a zero-input rest state, as a :class:`~dynmem.models.LinearRNN`.

        ``J = diag(1 - z)(dn/dh - I)`` and ``B = diag(1 - z) dn/dx`` at ``(h*, 0)``
        (the ``diag(h - n)`` terms vanish at a rest state).
        """
        from .rnn import LinearRNN

        zero = np.zeros((1, self.inputs))
        h = self.equilibrium(zero) if h_star is None else as_float_array("h_star", h_star, shape=(self.hidden,))[None]
        return LinearRNN(self.jacobian(h, zero)[0], self.input_jacobian(h, zero)[0], self.c)

    # The discrete forward/gradient of a CTGRU are those of its Euler cell.
    def forward(self, X, *, h0=None, s0=None):  # noqa: D401
        """:meth:`GRUCell.forward` of :meth:`euler_cell`."""
        return self.euler_cell().forward(X, h0=h0, s0=s0)

    def value_and_grad(self, X, Y, *, h0=None, s0=None, loss: str = "mse"):
        """:meth:`GRUCell.value_and_grad` of :meth:`euler_cell` (its ``grad`` is a GRUCell)."""
        return self.euler_cell().value_and_grad(X, Y, h0=h0, s0=s0, loss=loss)


# ---------------------------------------------------------------------------
# results


@dataclass(frozen=True, eq=False)
class GatedTrajectory:
    """Result of :func:`gated_forward`.

    Attributes
    ----------
    y : ndarray, shape (batch, T)
        Outputs ``y_k = c^T h_{k+1}``.
    h : ndarray, shape (batch, T + 1, m)
        Hidden states ``h_0 .. h_T``.
    s : ndarray, shape (batch, T + 1, m) or None
        LSTM cell states ``s_0 .. s_T`` (None for a GRU).
    model : GRUCell or LSTMCell
    """

    y: np.ndarray
    h: np.ndarray
    s: np.ndarray | None
    model: object
    _X: np.ndarray  # (T, B, d)
    _H: np.ndarray  # (T+1, B, m)
    _S: np.ndarray | None  # (T+1, B, m), LSTM only
    _G: np.ndarray  # (T, B, 4m) stored gates
    _shared: tuple  # (h0 was shared over the batch, s0 was shared)


@dataclass(frozen=True, eq=False)
class GatedGradient:
    """A loss and its gradient (:func:`gated_value_and_grad`).

    Attributes
    ----------
    loss : float
    grad : GRUCell or LSTMCell
        Same class as the model; its arrays hold the derivatives of the loss,
        so ``grad.flatten()`` lines up with ``model.flatten()``.
    dh0 : ndarray
        ``dL/dh_0``, shape (m,) when ``h0`` was None or shared, else (batch, m).
    ds0 : ndarray or None
        ``dL/ds_0`` for an LSTM (shaped like ``dh0``), None for a GRU.
    """

    loss: float
    grad: object
    dh0: np.ndarray
    ds0: np.ndarray | None

    @property
    def flat(self) -> np.ndarray:
        """The parameter gradient as one vector (order of ``model.flatten()``)."""
        return self.grad.flatten()


# ---------------------------------------------------------------------------
# public functions


def _check_cell(model):
    if not isinstance(model, (GRUCell, LSTMCell)):
        raise TypeError(f"`model` must be a GRUCell or an LSTMCell; got {describe(model)}.")
    return model


def _check_inputs(model, X) -> np.ndarray:
    X = as_float_array("X", X)
    if X.ndim != 3 or X.shape[2] != model.inputs:
        hint = " (add a batch axis with X[None])" if X.ndim == 2 else ""
        raise ValueError(f"`X` must have shape (batch, T, {model.inputs}); got shape {X.shape}{hint}.")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"`X` must hold at least one sequence of at least one step; got shape {X.shape}.")
    return X


def _check_state(name, v, m, batch):
    if v is None:
        return np.zeros((batch, m)), True
    v = as_float_array(name, v, ndim=(1, 2))
    if v.shape == (m,):
        return np.ascontiguousarray(np.broadcast_to(v, (batch, m))), True
    if v.shape == (batch, m):
        return v.copy(), False
    raise ValueError(f"`{name}` must have shape ({m},) or ({batch}, {m}); got shape {v.shape}.")


@announce_compilation("gated_forward")
def gated_forward(model, X, *, h0=None, s0=None) -> GatedTrajectory:
    """Run a GRU or LSTM cell over a batch of input sequences.

    Parameters
    ----------
    model : GRUCell or LSTMCell
    X : array_like, shape (batch, T, d)
        Inputs ``x_0 .. x_{T-1}``.
    h0 : array_like, shape (m,) or (batch, m), optional
        Initial hidden state (zeros by default).
    s0 : array_like, shape (m,) or (batch, m), optional
        Initial LSTM cell state (zeros by default); must be None for a GRU.

    Returns
    -------
    GatedTrajectory

    Raises
    ------
    FloatingPointError
        If a state becomes non-finite.
    """
    _check_cell(model)
    X = _check_inputs(model, X)
    B, T, d = X.shape
    m = model.hidden
    lstm = isinstance(model, LSTMCell)
    if not lstm and s0 is not None:
        raise ValueError(f"`s0` is the LSTM cell state and must be None for a GRUCell; got {describe(s0)}.")
    h0a, h_shared = _check_state("h0", h0, m, B)
    Xt = kernel_array(X.transpose(1, 0, 2))  # one kernel signature: a user's read-only X is copied
    g = model._n_gates
    WihT = kernel_array(model.weight_ih.T)
    bih = model.bias_ih.copy()
    if d <= FUSE_INPUTS_MAX:
        P = _EMPTY3  # the kernels form W_ih x_k + b_ih on the fly
    else:
        # Input projections for every step at once (one BLAS product, off the sequential path).
        P = (Xt.reshape(T * B, d) @ model.weight_ih.T + model.bias_ih).reshape(T, B, g * m)
    H = np.empty((T + 1, B, m))
    H[0] = h0a
    G = np.empty((T, B, 4 * m))
    Yt = np.empty((T, B))
    WhhT = kernel_array(model.weight_hh.T)
    bhh = model.bias_hh.copy()
    c = model.c.copy()
    if lstm:
        s0a, s_shared = _check_state("s0", s0, m, B)
        S = np.empty((T + 1, B, m))
        S[0] = s0a
        _lstm_forward_kernel(WhhT, bhh, WihT, bih, c, Xt, P, H, S, G, Yt)
    else:
        s_shared, S = True, None
        _gru_forward_kernel(WhhT, bhh, WihT, bih, c, Xt, P, H, G, Yt)
    if not np.all(np.isfinite(H[-1])) or (S is not None and not np.all(np.isfinite(S[-1]))):
        raise FloatingPointError(f"the {type(model).__name__} diverged: a state became non-finite within {T} steps.")
    return GatedTrajectory(
        y=Yt.T, h=H.transpose(1, 0, 2), s=None if S is None else S.transpose(1, 0, 2), model=model,
        _X=Xt, _H=H, _S=S, _G=G, _shared=(h_shared, s_shared),
    )


_LOSSES = ("mse", "sse")


def gated_value_and_grad(model, X, Y, *, h0=None, s0=None, loss: str = "mse") -> GatedGradient:
    """Loss on the outputs of a GRU/LSTM cell and its gradient (hand-written BPTT).

    Parameters
    ----------
    model : GRUCell or LSTMCell
    X : array_like, shape (batch, T, d)
    Y : array_like, shape (batch, T)
        Targets for ``y_k``.
    h0, s0 : array_like, shape (m,) or (batch, m), optional
        Initial states, as in :func:`gated_forward`.
    loss : {"mse", "sse"}
        ``"mse"``: ``mean_{b,k} (y - Y)^2`` (``torch.nn.MSELoss``);
        ``"sse"``: ``0.5 * sum_{b,k} (y - Y)^2``.

    Returns
    -------
    GatedGradient

    Raises
    ------
    FloatingPointError
        If the forward pass diverges or the gradient is non-finite.
    """
    check_choice("loss", loss, _LOSSES)
    traj = gated_forward(model, X, h0=h0, s0=s0)
    B, T = traj.y.shape
    Y = as_float_array("Y", Y, shape=(B, T))
    value, dy = sequence_loss(traj.y, Y, loss)
    dY = kernel_array(dy.T)
    m, d = model.hidden, model.inputs
    g = model._n_gates
    Xt, H = traj._X, traj._H
    a = np.zeros((B, m))
    Whh = model.weight_hh.copy()
    c = model.c.copy()
    fused = d <= FUSE_INPUTS_MAX
    gWihT = np.zeros((d, g * m)) if fused else np.empty((0, 0))
    if isinstance(model, LSTMCell):
        e = np.zeros((B, m))
        D = np.empty((T, B, 4 * m))
        gb = np.zeros(4 * m)
        _lstm_backward_kernel(Whh, c, Xt, H, traj._S, traj._G, dY, _EMPTY3, a, e, D, gWihT, gb)
        Dih = Dhh = D.reshape(T * B, 4 * m)
        gbih = gbhh = gb
    else:
        e = None
        Dih3 = _EMPTY3 if fused else np.empty((T, B, 3 * m))
        Dhh3 = np.empty((T, B, 3 * m))
        gbih, gbhh = np.zeros(3 * m), np.zeros(3 * m)
        _gru_backward_kernel(Whh, c, Xt, H, traj._G, dY, _EMPTY3, a, Dih3, Dhh3, gWihT, gbih, gbhh)
        Dih = None if fused else Dih3.reshape(T * B, 3 * m)
        Dhh = Dhh3.reshape(T * B, 3 * m)
        if not fused:
            gbih = Dih.sum(axis=0)
    grads = {
        "weight_ih": gWihT.T.copy() if fused else Dih.T @ Xt.reshape(T * B, d),
        "weight_hh": Dhh.T @ H[:-1].reshape(T * B, m),
        "bias_ih": gbih,
        "bias_hh": gbhh.copy(),
        "c": dY.reshape(T * B) @ H[1:].reshape(T * B, m),
    }
    if not (all(np.all(np.isfinite(v)) for v in grads.values()) and np.all(np.isfinite(a))):
        raise FloatingPointError("BPTT produced a non-finite gradient (exploding gradients through the recurrence).")
    h_shared, s_shared = traj._shared
    dh0 = a.sum(axis=0) if h_shared else a
    ds0 = None if e is None else (e.sum(axis=0) if s_shared else e)
    return GatedGradient(loss=value, grad=model.replace(**grads), dh0=dh0, ds0=ds0)


# ---------------------------------------------------------------------------
# the cells as layers of a stack (dynmem.stack): cotangents on every state, dL/dx


def gated_hidden_forward(model, X, S0=None):
    """A GRU/LSTM cell as a stack layer: :func:`gated_forward` with the hidden states as features.

    Parameters
    ----------
    model : GRUCell or LSTMCell
    X : array_like, shape (B, T, d)
    S0 : array_like, shape (B, n) or (n,), optional
        Flat initial state (``h`` for a GRU, ``(h, s)`` for an LSTM); zeros by default.

    Returns
    -------
    dynmem.models.LayerPass
        ``features = h_1 .. h_T`` (B, T, m), ``y`` (B, T), the :class:`GatedTrajectory` as tape.
    """
    _check_cell(model)
    if S0 is None:
        h0 = s0 = None
    else:
        S0 = as_float_array("S0", S0, ndim=(1, 2))
        h0, s0 = model._split(np.atleast_2d(S0))
        if S0.ndim == 1:
            h0, s0 = h0[0], (None if s0 is None else s0[0])
    traj = gated_forward(model, X, h0=h0, s0=s0)
    return LayerPass(features=traj.h[:, 1:], y=traj.y, tape=traj)


def gated_hidden_backward(model, passed, dF=None, dy=None):
    """BPTT of :func:`gated_hidden_forward` with cotangents on every hidden state and on the outputs.

    Parameters
    ----------
    model : GRUCell or LSTMCell
    passed : dynmem.models.LayerPass
        From :func:`gated_hidden_forward` with this model.
    dF : array_like, shape (B, T, m), optional
        ``dL/dh_{k+1}`` from the layer above.
    dy : array_like, shape (B, T), optional
        ``dL/dy_k`` (adds ``dy_k c`` to the cotangent of ``h_{k+1}``).

    Returns
    -------
    dynmem.models.LayerGradient
        ``flat`` in ``model.flatten()`` order, ``dX = D @ weight_ih`` (B, T, d)
        from the stored input-side cotangents D, ``dS0`` (B, state_size).
    """
    _check_cell(model)
    traj = getattr(passed, "tape", None)
    if not isinstance(traj, GatedTrajectory) or traj.model is not model:
        raise ValueError(f"`passed` must be the LayerPass of gated_hidden_forward() with this same `model`; "
                         f"got {describe(passed)}.")
    Xt, H = traj._X, traj._H
    T, B, d = Xt.shape
    m = model.hidden
    g = model._n_gates
    A = hidden_cotangent("dF", dF, dy, model.c, B, T, m)
    Whh, c = model.weight_hh.copy(), model.c.copy()
    a = np.zeros((B, m))
    if g == 4:
        e = np.zeros((B, m))
        D = np.empty((T, B, 4 * m))
        _lstm_backward_kernel(Whh, c, Xt, H, traj._S, traj._G, _EMPTY2, A, a, e, D, _EMPTY2, _EMPTY1)
        Dih = Dhh = D.reshape(T * B, 4 * m)
        dS0 = np.concatenate([a, e], axis=1)
    else:
        Dih3 = np.empty((T, B, 3 * m))
        Dhh3 = np.empty((T, B, 3 * m))
        _gru_backward_kernel(Whh, c, Xt, H, traj._G, _EMPTY2, A, a, Dih3, Dhh3, _EMPTY2, _EMPTY1, _EMPTY1)
        dS0 = a
        Dih, Dhh = Dih3.reshape(T * B, 3 * m), Dhh3.reshape(T * B, 3 * m)
    dc = np.zeros(m) if dy is None else np.asarray(dy, dtype=float).T.reshape(T * B) @ H[1:].reshape(T * B, m)
    parts = {
        "weight_ih": Dih.T @ Xt.reshape(T * B, d),
        "weight_hh": Dhh.T @ H[:-1].reshape(T * B, m),
        "bias_ih": Dih.sum(axis=0),
        "bias_hh": Dhh.sum(axis=0),
        "c": dc,
    }
    flat = np.concatenate([parts[n].ravel() for n in model.param_names])
    dX = (Dih @ model.weight_ih).reshape(T, B, d).transpose(1, 0, 2)
    if not (np.all(np.isfinite(flat)) and np.all(np.isfinite(dX)) and np.all(np.isfinite(dS0))):
        raise FloatingPointError("BPTT produced a non-finite gradient (exploding gradients through the recurrence).")
    return LayerGradient(flat=flat, dX=dX, dS0=dS0)
