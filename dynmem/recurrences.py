"""Discrete recurrences: numba forward pass and hand-written BPTT, array kernels below the models.

Both :class:`~dynmem.models.DiscreteRNN` and the forward-Euler
:class:`~dynmem.models.EulerRNN` are instances of one recurrence::

    z_k     = W h_k + U x_k + b
    h_{k+1} = gamma * h_k + eta * sigma(z_k)          k = 0 .. T-1
    y_k     = c^T h_{k+1}                              (output after reading x_k)

with ``(gamma, eta) = (0, 1)`` for ``DiscreteRNN`` and
``(1 - dt * leak, dt)`` for ``EulerRNN``.  Note the output convention: step
k reads ``x_k`` and emits ``y_k = c^T h_{k+1}`` (as ``torch.nn.RNN`` does), so
``T`` inputs give ``T`` outputs and the initial state is not read out.

BPTT (docs/theory.md section 8), with ``a_k = dL/dh_k`` and ``s_k = sigma'(z_k)``::

    delta_k = eta * s_k * a_{k+1}                 (= dL/dz_k)
    a_k     = gamma * a_{k+1} + W^T delta_k + g_{k-1} c      (g_k = dL/dy_k)
    dL/dW = sum_k delta_k h_k^T,   dL/dU = sum_k delta_k x_k^T,
    dL/db = sum_k delta_k,         dL/dc = sum_k g_k h_{k+1},   dL/dh_0 = a_0.

Only the products with ``W`` and ``W^T`` are sequential and live in the numba
kernels; the input projection ``U x_k + b`` and the weight-gradient sums are
single matrix products over all steps and the whole batch.  The forward
kernel evaluates tanh with the vectorised
:func:`~dynmem.activations.tanh_block` (libm's scalar ``tanh`` would cost
most of the step) and forms the read-out ``y_k`` while ``h_{k+1}`` is in cache.
Arrays are stored time-major internally, ``(T, batch, m)``, so each step
touches one contiguous block.

This module knows no model class: it reads what :class:`Recurrence` names
(the arrays, the activation's name and ``recurrence_coefficients()``), so it
sits below :mod:`dynmem.models`, whose RNN classes call it for their outputs
and gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numba
import numpy as np

from ._validation import as_float_array, check_choice, describe
from .activations import TANH, act_and_deriv_scalar, tanh_block
from .compiling import announce_compilation, kernel_array
from .errors import FloatOverflowError

__all__ = ["Recurrence", "Trajectory", "GradientResult", "forward", "backward", "value_and_grad", "outputs_many"]


@runtime_checkable
class Recurrence(Protocol):
    """What the kernels of this module read: ``h_{k+1} = gamma h_k + eta sigma(W h_k + U x_k + b)``, ``y_k = c^T h_{k+1}``.

    Attributes
    ----------
    W, U, b, c : ndarray, shapes (m, m), (m, d), (m,), (m,)
    activation : str
        A registered activation name.
    act : dynmem.activations.Activation
        Its registry record, resolved once by the model (its numba ``code`` selects the kernel's branch).
    hidden, inputs : int

    Methods
    -------
    recurrence_coefficients() -> (gamma, eta)
        ``(0, 1)`` for a plain recurrence, ``(1 - dt leak, dt)`` for a forward-Euler step.
    replace(**arrays)
        The model of the same class with other arrays (its gradient is returned that way).

    :class:`~dynmem.models.DiscreteRNN` and :class:`~dynmem.models.EulerRNN` have it.
    """

    W: np.ndarray
    U: np.ndarray
    b: np.ndarray
    c: np.ndarray
    activation: str
    act: object
    hidden: int
    inputs: int

    def recurrence_coefficients(self) -> tuple[float, float]: ...

    def replace(self, **changes): ...

_EMPTY2 = np.empty((0, 0))
_EMPTY3 = np.empty((0, 0, 0))

# Below this width a hand-written matrix-vector loop beats a BLAS call per step.
_SMALL_WIDTH = 24


@numba.njit(cache=True, inline="always")
def _rowmat(A, M, out):
    """``out = A @ M`` for a (B, m) block: a BLAS call, or plain loops below ``_SMALL_WIDTH``."""
    B, m = A.shape
    if m >= _SMALL_WIDTH:
        np.dot(A, M, out)
        return
    for bi in range(B):
        for i in range(m):
            out[bi, i] = 0.0
        for j in range(m):
            aj = A[bi, j]
            for i in range(m):
                out[bi, i] += M[j, i] * aj


@numba.njit(cache=True, inline="always")
def _activate(code, z, a, s):
    """``a = sigma(z)``, ``s = sigma'(z)`` on flat blocks: the vectorised tanh, or the scalar forms."""
    if code == TANH:
        tanh_block(z, a, s)
    else:
        for idx in range(z.size):
            a[idx], s[idx] = act_and_deriv_scalar(code, z[idx])


@numba.njit(cache=True, error_model="numpy")
def _forward_kernel(WT, b, c, gamma, eta, code, H, S, Y):
    """Sequential part of the forward pass, with the read-out.

    WT (m, m) = W^T, C-contiguous; b, c (m,); H (T+1, B, m) holds ``h_0`` in
    ``H[0]`` and ``U x_k`` in ``H[k+1]`` on entry (one GEMM for all steps,
    made by the caller; each is read once, just before ``h_{k+1}`` overwrites
    it; ``b`` is added here, in the same pass).  Writes the states into
    H, S (T, B, m) = sigma'(z) and Y (T, B) = c^T h_{k+1}; returns the first
    step k >= 1 whose state ``h_k`` is not finite (-1 if every state is).  Per step: one
    ``h_k W^T`` product (BLAS from ``_SMALL_WIDTH``), the activation by the
    vectorised :func:`~dynmem.activations.tanh_block` (or the scalar forms of
    the cheap activations) and the read-out while the state is in cache.
    The caller transposes W and sets ``H[0]``: an array copy or an assignment
    of an array into a slice here would compile numba's shape-mismatch
    message machinery (string formatting, seconds of compilation) into the kernel.
    """
    T, B, m = S.shape
    n = B * m
    Z = np.empty((B, m))
    zf = Z.reshape(n)
    A = np.empty(n)
    first_bad = -1
    for k in range(T):
        hk = H[k]
        _rowmat(hk, WT, Z)
        Pk = H[k + 1]  # U x_k, read once before h_{k+1} overwrites it
        for bi in range(B):
            for i in range(m):
                Z[bi, i] += Pk[bi, i] + b[i]
        Sk = S[k].reshape(n)
        Hn = H[k + 1]
        Hnf = Hn.reshape(n)
        # DiscreteRNN (gamma, eta) = (0, 1): sigma(z) is the new state, written in place.
        out = Hnf if (gamma == 0.0 and eta == 1.0) else A
        _activate(code, zf, out, Sk)
        if not (gamma == 0.0 and eta == 1.0):
            hkf = hk.reshape(n)
            for idx in range(n):
                Hnf[idx] = gamma * hkf[idx] + eta * A[idx]
        for bi in range(B):
            acc = 0.0
            for i in range(m):
                hv = Hn[bi, i]
                acc += c[i] * hv
                if not (hv - hv == 0.0):  # inf or nan: every state is checked, not only the last
                    if first_bad < 0:
                        first_bad = k + 1
            Y[k, bi] = acc
    return first_bad


@numba.njit(cache=True, error_model="numpy")
def _outputs_many_kernel(Ws, Us, bs, cs, Xt, gamma, eta, code, Y):
    """Outputs of K models of one recurrence on the same inputs, no states kept.

    Ws (K, m, m), Us (K, m, d), bs, cs (K, m); Xt (T, B, d) time-major
    inputs, h_0 = 0.  Writes Y (K, T, B) = c_k^T h_{t+1} and returns a (K,)
    flag: every state stayed finite (a variant whose state became non-finite
    at step k gets ``Y[q, k:] = inf``).  Each model is run in turn through the
    same step as :func:`_forward_kernel` (its input projection one GEMM over
    all steps, into a reused buffer), keeping only the current state, so K
    models cost K forward passes without K trajectories in memory.
    """
    K, m, _ = Ws.shape
    T, B, d = Xt.shape
    n = B * m
    finite = np.ones(K, dtype=np.bool_)
    P = np.empty((T * B, m))
    X2 = Xt.reshape(T * B, d)
    h = np.empty((B, m))
    hf = h.reshape(n)
    Z = np.empty((B, m))
    zf = Z.reshape(n)
    A = np.empty(n)
    S = np.empty(n)
    for q in range(K):
        WT = np.ascontiguousarray(Ws[q].T)
        UT = np.ascontiguousarray(Us[q].T)
        np.dot(X2, UT, P)
        b = bs[q]
        c = cs[q]
        hf[:] = 0.0
        for k in range(T):
            _rowmat(h, WT, Z)
            base = k * B
            for bi in range(B):
                for i in range(m):
                    Z[bi, i] += P[base + bi, i] + b[i]
            _activate(code, zf, A, S)
            for idx in range(n):
                hf[idx] = gamma * hf[idx] + eta * A[idx]
            for bi in range(B):
                acc = 0.0
                for i in range(m):
                    hv = h[bi, i]
                    acc += c[i] * hv
                    if not (hv - hv == 0.0):
                        finite[q] = False
                Y[q, k, bi] = acc
            if not finite[q]:
                # Diverged (a state overflowed, even if a later one came back): the outputs
                # from this step on mean nothing; report them as inf, never nan.
                for kk in range(k, T):
                    for bi in range(B):
                        Y[q, kk, bi] = np.inf
                break
    return finite


def outputs_many(model, params: dict, X) -> tuple[np.ndarray, np.ndarray]:
    """Outputs of K variants of ``model`` (stacked parameters) on the same inputs.

    Parameters
    ----------
    model : DiscreteRNN or EulerRNN
        Supplies the recurrence (activation, ``dt``, leak).
    params : dict
        ``"W"`` (K, m, m), ``"U"`` (K, m, d), ``"b"`` (K, m), ``"c"`` (K, m):
        one parameter set per variant (for perturbation studies).
    X : array_like, shape (batch, T, d)

    Returns
    -------
    y : ndarray, shape (K, batch, T)
        ``y_k = c^T h_{k+1}`` of each variant, from ``h_0 = 0``.
    finite : ndarray of bool, shape (K,)
        False where one of the variant's states became non-finite (diverged;
        every state is checked, so a state that overflows and comes back
        counts); its outputs from the step of divergence on are ``inf``
        (never NaN).

    Raises
    ------
    ValueError
        If a parameter array holds NaN or inf (``params['W']`` and so on are
        named in the message).
    """
    check_recurrence(model)
    X = _check_inputs(model, X)
    B, T, d = X.shape
    m = model.hidden
    if not isinstance(params, dict) or set(params) != {"W", "U", "b", "c"}:
        got = sorted(params) if isinstance(params, dict) else describe(params)
        raise ValueError(f"`params` must be a dict with exactly the keys 'W', 'U', 'b', 'c' (stacked); got {got}.")
    W = as_float_array("params['W']", params["W"], ndim=3)
    K = W.shape[0]
    shapes = {"W": (K, m, m), "U": (K, m, d), "b": (K, m), "c": (K, m)}
    arrs = {k: kernel_array(as_float_array(f"params[{k!r}]", params[k], shape=v))
            for k, v in shapes.items()}
    gamma, eta = model.recurrence_coefficients()
    Xt = kernel_array(X.transpose(1, 0, 2))
    Y = np.empty((K, T, B))
    finite = _outputs_many_kernel(arrs["W"], arrs["U"], arrs["b"], arrs["c"], Xt, float(gamma), float(eta),
                                  model.act.code, Y)
    return Y.transpose(0, 2, 1), finite


@numba.njit(cache=True, error_model="numpy")
def _backward_kernel(W, S, G, c, A, a_T, gamma, eta, Delta):
    """Sequential part of BPTT: the one backward sweep of the BPTT door and of the stack layer.

    S (T, B, m) = sigma'(z); a_T (B, m) extra dL/dh_T.  The cotangent of
    ``h_{k+1}`` from outside the recurrence is ``g v`` with ``(g, v) = (G[k, b], c)``
    (through the read-out, G (T, B) = dL/dy; A empty) or ``(1, A[k, b])`` (A (T, B, m),
    a cotangent on every state, G not read; ``1 * A`` is ``A`` exactly)::

        a_T = a_T + A_{T-1},   delta_k = eta s_k a_{k+1},   a_k = gamma a_{k+1} + W^T delta_k + A_{k-1}

    (no outside term at k = 0).  Writes Delta (T, B, m) = dL/dz and returns
    dL/dh_0, shape (B, m).  ``Delta`` may be ``S`` itself (each ``S[k]`` is
    read once, just before ``Delta[k]`` overwrites it).  The pair (g, v) is
    chosen per row in the kernel itself: an inline helper returning it, or
    taking the arrays, measured 25-40% slower at small widths.
    """
    T, B, m = S.shape
    per_state = A.shape[0] > 0
    a = a_T.copy()
    for bi in range(B):
        g, v = (1.0, A[T - 1, bi]) if per_state else (G[T - 1, bi], c)
        for i in range(m):
            a[bi, i] += g * v[i]
    tmp = np.empty((B, m))
    for k in range(T - 1, -1, -1):
        Sk = S[k]
        Dk = Delta[k]
        for bi in range(B):
            for i in range(m):
                Dk[bi, i] = eta * Sk[bi, i] * a[bi, i]
        # a <- gamma a + delta @ W  (row form of W^T delta)
        if gamma == 0.0:  # DiscreteRNN: the product is the new a
            _rowmat(Dk, W, a)
            if k > 0:
                for bi in range(B):
                    g, v = (1.0, A[k - 1, bi]) if per_state else (G[k - 1, bi], c)
                    for i in range(m):
                        a[bi, i] += g * v[i]
            continue
        _rowmat(Dk, W, tmp)
        if k > 0:
            for bi in range(B):
                g, v = (1.0, A[k - 1, bi]) if per_state else (G[k - 1, bi], c)
                for i in range(m):
                    a[bi, i] = gamma * a[bi, i] + tmp[bi, i] + g * v[i]
        else:
            for bi in range(B):
                for i in range(m):
                    a[bi, i] = gamma * a[bi, i] + tmp[bi, i]
    return a


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Result of :func:`forward`.

    Attributes
    ----------
    y : ndarray, shape (batch, T)
        Outputs ``y_k = c^T h_{k+1}``.
    h : ndarray, shape (batch, T + 1, m)
        Hidden states ``h_0 .. h_T`` (a view on time-major storage).
    model : DiscreteRNN or EulerRNN
        The model that produced them (any discrete model through the door
        :func:`dynmem.forward`).
    detail : object or None
        The family's own record when another family ran through :func:`dynmem.forward`
        (``GatedTrajectory``, ``StackTrajectory``); None for a recurrence of this module.
        ``h`` is then that record's states (None for a Stack).
    """

    y: np.ndarray
    h: np.ndarray | None
    model: object
    _X: np.ndarray | None  # (T, B, d) time-major inputs
    _H: np.ndarray | None  # (T+1, B, m)
    _S: np.ndarray | None  # (T, B, m) sigma'(z_k)
    _h0_shape: tuple | None
    detail: object = None

    @property
    def h_final(self) -> np.ndarray:
        """``h_T``, shape (batch, m)."""
        return self._H[-1]


@dataclass(frozen=True, eq=False)
class GradientResult:
    """A loss (if one was given) and its gradient.

    Attributes
    ----------
    loss : float or None
        The loss value; ``None`` for :func:`backward`, which only receives cotangents.
    grad : model
        Same class and settings as the model; its arrays hold ``dL/dW``,
        ``dL/dU``, ``dL/db``, ``dL/dc``.  ``grad.flatten()`` matches
        ``model.flatten()`` entry for entry.
    dh0 : ndarray
        ``dL/dh_0``, with the shape of the ``h0`` that was passed ((m,) when
        ``h0`` was None or shared across the batch).
    detail : object or None
        The family's own record when another family's gradient came through
        :func:`dynmem.value_and_grad` (``GatedGradient``, ``SSMGradient``,
        ``StackGradient``, ``ResidualGradient``); ``grad`` is then that
        family's form of the gradient (a model, a dict, or None for a Stack)
        and ``flat`` its flat vector.  None for a recurrence of this module.
    """

    loss: float | None
    grad: object
    dh0: np.ndarray | None
    detail: object = None

    @property
    def flat(self) -> np.ndarray:
        """The parameter gradient as one vector (order of ``model.flatten()``)."""
        if self.detail is not None:
            return self.detail.flat
        return self.grad.flatten()

    def __getattr__(self, name):
        # dW, dU, db, dc as shortcuts for grad.W, ...
        if name in ("dW", "dU", "db", "dc"):
            return getattr(self.grad, name[1:])
        raise AttributeError(name)


def check_recurrence(model):
    """``model`` if it has the :class:`Recurrence` capability, else the explanatory TypeError."""
    if not isinstance(model, Recurrence):
        raise TypeError(
            f"`model` must be a DiscreteRNN or an EulerRNN (use CTRNN.discretize(dt)); got {describe(model)}."
        )
    return model


def _check_inputs(model, X) -> np.ndarray:
    X = as_float_array("X", X)
    if X.ndim != 3:
        hint = " (add a batch axis with X[None])" if X.ndim == 2 else ""
        raise ValueError(f"`X` must have shape (batch, T, d) with d = {model.inputs}; got shape {X.shape}{hint}.")
    if X.shape[2] != model.inputs:
        raise ValueError(f"`X` must have shape (batch, T, {model.inputs}) to match the model's inputs; got shape {X.shape}.")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"`X` must hold at least one sequence of at least one step; got shape {X.shape}.")
    return X


def _check_h0(model, h0, batch: int) -> tuple[np.ndarray, tuple]:
    m = model.hidden
    if h0 is None:
        return np.zeros((batch, m)), (m,)
    h0 = as_float_array("h0", h0, ndim=(1, 2))
    if h0.shape == (m,):
        return np.ascontiguousarray(np.broadcast_to(h0, (batch, m))), (m,)
    if h0.shape == (batch, m):
        return h0, (batch, m)
    raise ValueError(f"`h0` must have shape ({m},) or ({batch}, {m}); got shape {h0.shape}.")


@announce_compilation("forward")
def forward(model, X, *, h0=None) -> Trajectory:
    """Run a discrete recurrence over a batch of input sequences.

    Parameters
    ----------
    model : DiscreteRNN or EulerRNN
    X : array_like, shape (batch, T, d)
        Inputs ``x_0 .. x_{T-1}`` for each sequence.
    h0 : array_like, shape (m,) or (batch, m), optional
        Initial state (zeros by default; a (m,) vector is shared by the batch).

    Returns
    -------
    Trajectory
        Outputs ``y`` (batch, T) and states ``h`` (batch, T+1, m).

    Raises
    ------
    FloatingPointError
        If any state ``h_1 .. h_T`` becomes non-finite (the recurrence
        diverged), even if later states are finite again.
    """
    check_recurrence(model)
    X = _check_inputs(model, X)
    B, T, d = X.shape
    h0_arr, h0_shape = _check_h0(model, h0, B)
    gamma, eta = model.recurrence_coefficients()
    code = model.act.code
    m = model.hidden
    Xt = np.ascontiguousarray(X.transpose(1, 0, 2))  # (T, B, d)
    H = np.empty((T + 1, B, m))
    S = np.empty((T, B, m))
    # Off the sequential path: one GEMM for every input projection, written
    # straight into the state array (H[k+1] holds U x_k until step k; the
    # kernel adds b in the pass that adds h_k W^T, saving a pass over H).
    P = H[1:].reshape(T * B, m)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow here surfaces as a non-finite state below
        np.dot(Xt.reshape(T * B, d), np.ascontiguousarray(model.U.T), out=P)
    H[0] = h0_arr
    Yt = np.empty((T, B))
    bad = _forward_kernel(kernel_array(model.W.T), kernel_array(model.b), kernel_array(model.c), float(gamma),
                          float(eta), code, H, S, Yt)
    if bad >= 0:
        raise FloatingPointError(
            f"the recurrence diverged: the hidden state h_{bad} became non-finite (step {bad} of {T}); "
            f"every state is checked, so a state that overflows and comes back is caught too."
        )
    if not np.all(np.isfinite(Yt)):  # finite states whose read-out c^T h overflows
        k = int(np.flatnonzero(~np.all(np.isfinite(Yt), axis=1))[0])
        raise FloatingPointError(f"the output y_{k} = c^T h_{k + 1} overflowed float64 (the states are finite but "
                                 f"too large for the read-out).")
    y = Yt.T
    return Trajectory(y=y, h=H.transpose(1, 0, 2), model=model, _X=Xt, _H=H, _S=S, _h0_shape=h0_shape)


def backward(model, trajectory: Trajectory, dy, *, dh_final=None) -> GradientResult:
    """Vector-Jacobian product of a forward pass (BPTT).

    Parameters
    ----------
    model : DiscreteRNN or EulerRNN
        The model used in :func:`forward`.
    trajectory : Trajectory
        From :func:`forward`.
    dy : array_like, shape (batch, T)
        Cotangents ``dL/dy_k``.
    dh_final : array_like, shape (batch, m), optional
        Cotangent of the final state ``h_T`` (for losses on the last state).

    Returns
    -------
    GradientResult
        With ``loss=None``.
    """
    return _backward(model, trajectory, dy, dh_final, reuse_s=False)


def _backward(model, trajectory, dy, dh_final, reuse_s):
    # reuse_s: write dL/dz over the trajectory's sigma'(z) (value_and_grad owns its
    # trajectory; a user's Trajectory must stay valid for further backward calls).
    check_recurrence(model)
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"`trajectory` must be the Trajectory returned by forward(model, ...); got {describe(trajectory)}.")
    if trajectory.model is not model:
        raise ValueError(
            f"`trajectory` must come from forward() with this same `model`; it was computed for {trajectory.model!r}."
        )
    Xt, H, S = trajectory._X, trajectory._H, trajectory._S
    T, B, m = S.shape
    d = Xt.shape[2]
    dy = as_float_array("dy", dy, shape=(B, T))
    aT = np.zeros((B, m)) if dh_final is None else as_float_array("dh_final", dh_final, shape=(B, m)).copy()
    G = kernel_array(dy.T)
    gamma, eta = model.recurrence_coefficients()
    Delta = S if reuse_s else np.empty((T, B, m))
    a0 = _backward_kernel(kernel_array(model.W), S, G, kernel_array(model.c), _EMPTY3, aT, float(gamma), float(eta),
                          Delta)
    # Off the sequential path: each weight gradient is one matrix product.
    D2 = Delta.reshape(T * B, m)
    dW = D2.T @ H[:-1].reshape(T * B, m)
    dU = D2.T @ Xt.reshape(T * B, d)
    db = D2.sum(axis=0)
    dc = G.reshape(T * B) @ H[1:].reshape(T * B, m)
    dh0 = a0.sum(axis=0) if trajectory._h0_shape == (m,) else a0
    for name, g in (("dL/dW", dW), ("dL/dU", dU), ("dL/db", db), ("dL/dc", dc), ("dL/dh0", a0)):
        if not np.all(np.isfinite(g)):
            raise FloatingPointError(
                f"BPTT produced a non-finite gradient {name} (exploding gradients through the recurrence, "
                f"or cotangents too large: max |dy| = {float(np.max(np.abs(G))):.3g})."
            )
    grad = model.replace(W=dW, U=dU, b=db, c=dc)
    return GradientResult(loss=None, grad=grad, dh0=dh0)


_LOSSES = ("mse", "sse")


def sequence_loss(y: np.ndarray, Y: np.ndarray, loss: str, weights=None) -> tuple[float, np.ndarray]:
    r"""The loss of outputs ``y`` against targets ``Y`` (both (B, T)) and its derivative ``dL/dy``.

    ``"mse"``: :math:`L = \operatorname{mean}(\omega r^2)`, ``dy = 2 \omega r / r.size``;
    ``"sse"``: :math:`L = \tfrac12 \sum \omega r^2`, ``dy = \omega r`` (``r = y - Y``; the
    time weights ``omega`` (T,) are ``weights``, ones when None).  Shared by
    every BPTT entry point (discrete RNNs, gated cells, SSMs, stacks, the residual net).

    Raises
    ------
    FloatOverflowError
        If the loss overflows float64 (the message names `Y`).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        r = y - Y
        lw = r if weights is None else weights[None, :] * r
        if loss == "mse":
            value = float(np.mean(lw * r))
            dy = (2.0 / r.size) * lw
        else:
            value = 0.5 * float(np.sum(lw * r))
            dy = lw
    if not np.isfinite(value):
        raise FloatOverflowError(
            f"the {loss} loss overflowed float64 (max |y - Y| = {float(np.max(np.abs(r))):.3g}, max |Y| = "
            f"{float(np.max(np.abs(Y))):.3g}); rescale the targets `Y` (and the model's output weights)."
        )
    return value, dy


@announce_compilation("value_and_grad")
def value_and_grad(model, X, Y, *, h0=None, loss: str = "mse") -> GradientResult:
    """Loss on the outputs and its gradient with respect to every parameter and ``h0``.

    Parameters
    ----------
    model : DiscreteRNN or EulerRNN
    X : array_like, shape (batch, T, d)
    Y : array_like, shape (batch, T)
        Targets for ``y_k``.
    h0 : array_like, shape (m,) or (batch, m), optional
    loss : {"mse", "sse"}
        ``"mse"``: ``mean_{b,k} (y - Y)^2`` (``torch.nn.MSELoss``);
        ``"sse"``: ``0.5 * sum_{b,k} (y - Y)^2``.

    Returns
    -------
    GradientResult

    Raises
    ------
    FloatingPointError
        If a state diverges (see :func:`forward`), the loss overflows float64
        (e.g. targets of order 1e300) or a gradient entry is not finite.
    """
    check_choice("loss", loss, _LOSSES)
    traj = forward(model, X, h0=h0)
    B, T = traj.y.shape
    Y = as_float_array("Y", Y, shape=(B, T))
    value, dy = sequence_loss(traj.y, Y, loss)
    res = _backward(model, traj, dy, None, reuse_s=True)
    return GradientResult(loss=value, grad=res.grad, dh0=res.dh0)


# ---------------------------------------------------------------------------
# a recurrence as a layer of a stack (dynmem.stack): cotangents on every state, dL/dx


def hidden_cotangent(name_dF, dF, dy, c, B: int, T: int, p: int) -> np.ndarray:
    """Time-major ``A_k = dF_k + dy_k c`` (T, B, p) from the cotangents of a layer's features and outputs.

    ``dF`` (B, T, p) and ``dy`` (B, T) may each be None (zero); shared by the
    layer backward passes of every family (recurrences, gated cells, SSMs).
    """
    A = np.zeros((T, B, p))
    if dF is not None:
        A += as_float_array(name_dF, dF, shape=(B, T, p)).transpose(1, 0, 2)
    if dy is not None:
        A += as_float_array("dy", dy, shape=(B, T)).T[:, :, None] * np.asarray(c)[None, None, :]
    return A


def hidden_backward(model, trajectory, dF=None, dy=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BPTT of :func:`forward` with cotangents on every hidden state and on the outputs (a layer of a stack).

    .. math::

        a_T = A_{T-1},\\quad \\delta_k = \\eta\\, \\sigma'(z_k) \\odot a_{k+1},\\quad
        a_k = \\gamma a_{k+1} + W^T \\delta_k + A_{k-1},\\quad
        \\frac{\\partial L}{\\partial x_k} = U^T \\delta_k

    with ``A_k = dF_k + dy_k c`` (the cotangent of ``h_{k+1}`` from outside
    the recurrence).

    Parameters
    ----------
    model : DiscreteRNN or EulerRNN
    trajectory : Trajectory
        From :func:`forward` with this model.
    dF : array_like, shape (B, T, m), optional
        ``dL/dh_{k+1}`` (from the layer above).
    dy : array_like, shape (B, T), optional
        ``dL/dy_k``.

    Returns
    -------
    flat : ndarray, shape (n_params,)
        ``dL/dtheta`` in ``model.flatten()`` order (W, U, b, c).
    dX : ndarray, shape (B, T, d)
    dS0 : ndarray, shape (B, m)

    Raises
    ------
    FloatingPointError
        If a gradient entry is not finite.
    """
    check_recurrence(model)
    traj = trajectory
    Xt, H, S = traj._X, traj._H, traj._S
    T, B, m = S.shape
    d = Xt.shape[2]
    A = hidden_cotangent("dF", dF, dy, model.c, B, T, m)
    gamma, eta = model.recurrence_coefficients()
    Delta = np.empty((T, B, m))
    a0 = _backward_kernel(kernel_array(model.W), S, _EMPTY2, kernel_array(model.c), A, np.zeros((B, m)), float(gamma),
                          float(eta), Delta)
    D2 = Delta.reshape(T * B, m)
    dW = D2.T @ H[:-1].reshape(T * B, m)
    dU = D2.T @ Xt.reshape(T * B, d)
    db = D2.sum(axis=0)
    dc = np.zeros(m) if dy is None else np.asarray(dy, dtype=float).T.reshape(T * B) @ H[1:].reshape(T * B, m)
    dX = (D2 @ model.U).reshape(T, B, d).transpose(1, 0, 2)
    flat = np.concatenate([dW.ravel(), dU.ravel(), db, dc])
    if not (np.all(np.isfinite(flat)) and np.all(np.isfinite(dX)) and np.all(np.isfinite(a0))):
        raise FloatingPointError("BPTT produced a non-finite gradient (exploding gradients through the recurrence).")
    return flat, dX, a0
