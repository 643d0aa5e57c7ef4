"""The CTRNN field ``f(t, h) = sigma(W h + U x(t) + b) - leak h`` and its adjoint, compiled: one module for every path.

On a piece of an affine input ``U x(t) + b = p + tau q`` (``tau`` the time
from the piece's start).  The engine's loops (:mod:`dynmem.ode.loop`,
:mod:`dynmem.ode.adjoint`) form a 5(4) pair's stages in pre-activation space
(:func:`field_from_z`, with :func:`matvec`) or from the state (:func:`rhs`);
the continuous adjoint reads :func:`adjoint_rhs`, the discrete one
:func:`stage_transpose`.  scipy's integrators (:mod:`dynmem.simulate`,
:mod:`dynmem.adjoint`) call :func:`ctrnn_rhs`, :func:`ctrnn_jac` and
:func:`ctrnn_adjoint`, which share :func:`preactivation` (``z = p + tau q +
sum_j W_ij h_j`` summed in that order, libm's scalar activation): the two forms
round differently, and each path keeps the numbers it has always had.
tanh goes through :func:`dynmem.activations.tanh_block` on the engine's paths
(vectorised, <= 4 ulp; libm's scalar tanh was ~70% of the right-hand side at m = 32).
"""

from __future__ import annotations

import numba
import numpy as np

from .._validation import describe
from ..activations import act_scalar, dact_scalar, tanh_block
from ..models.contract import ContinuousModel, CTRNNForm

__all__ = ["matvec", "field_from_z", "rhs", "adjoint_rhs", "stage_transpose", "preactivation", "transpose_apply", "ctrnn_rhs", "ctrnn_jac",
           "ctrnn_adjoint", "as_ctrnn"]


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def matvec(W, v, out):
    # out = W v (rows contiguous; the row sums are reassociated into SIMD lanes)
    m = v.shape[0]
    for i in range(m):
        z = 0.0
        for j in range(m):
            z += W[i, j] * v[j]
        out[i] = z


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})
def field_from_z(code, leak, TS, z, y, out, dout, want_d):
    # out = sigma(z) - leak y for the pre-activation z; with want_d, dout = sigma'(z).  out may be z.
    m = y.shape[0]
    if code == 0:
        tanh_block(z, out, TS[0])  # TS[0] = 1 - tanh^2
        if want_d:
            for i in range(m):
                dout[i] = TS[0, i]
    else:
        for i in range(m):
            zi = z[i]
            if want_d:
                dout[i] = dact_scalar(code, zi)
            out[i] = act_scalar(code, zi)
    if leak != 0.0:  # y is not read for leak = 0 (it may be scratch)
        for i in range(m):
            out[i] -= leak * y[i]



@numba.njit(cache=True, error_model="numpy")
def rhs(W, code, leak, TS, p, q, tau, h, out):
    # out = sigma(W h + p + tau q) - leak h: the field at a state (DOP853's stages are formed in state
    # space; the 5(4) pairs form theirs from pre-activations, see dynmem.ode.loop)
    matvec(W, h, out)
    for i in range(h.shape[0]):
        out[i] += p[i] + tau * q[i]
    field_from_z(code, leak, TS, out, h, out, out, False)



@numba.njit(cache=True, inline="always")
def transpose_apply(W, leak, a, v, out):
    # out = leak a - W^T v, the rows of W read in order; inlined, so each caller keeps its own float flags
    m = a.shape[0]
    for i in range(m):
        out[i] = leak * a[i]
    for i in range(m):
        vi = v[i]
        for j in range(m):
            out[j] -= W[i, j] * vi


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def adjoint_rhs(W, code, leak, TS, p, q, tau, h, a, out, v):
    # v = sigma'(W h + p + tau q) * a ;  out = leak a - W^T v
    m = h.shape[0]
    for i in range(m):
        z = p[i] + tau * q[i]
        for j in range(m):
            z += W[i, j] * h[j]
        v[i] = z
    if code == 0:
        tanh_block(v, v, TS[0])  # TS[0] = 1 - tanh^2
        for i in range(m):
            v[i] = TS[0, i] * a[i]
    else:
        for i in range(m):
            v[i] = dact_scalar(code, v[i]) * a[i]
    transpose_apply(W, leak, a, v, out)



@numba.njit(cache=True, error_model="numpy", inline="always")
def stage_transpose(WT, leak, Dst, Kbst, v, g):
    # the transpose of one stage K = sigma(z) - leak Y, z = W Y + U x + b:  v = sigma'(z) * Kbar (the
    # adjoint of z) and g = Ybar = W^T v - leak Kbar
    m = v.shape[0]
    for i in range(m):
        v[i] = Dst[i] * Kbst[i]
    matvec(WT, v, g)
    if leak != 0.0:
        for i in range(m):
            g[i] -= leak * Kbst[i]



@numba.njit(cache=True, inline="always")
def preactivation(W, p, q, tau, h, i):
    # z_i = p_i + tau q_i + sum_j W_ij h_j, summed in that order (the scipy paths' field, Jacobian and adjoint)
    z = p[i] + tau * q[i]
    for j in range(h.shape[0]):
        z += W[i, j] * h[j]
    return z


@numba.njit(cache=True)
def ctrnn_rhs(t, h, W, p, q, a, code, leak):
    # dh/dt = sigma(W h + p + (t - a) q) - leak h
    m = h.shape[0]
    out = np.empty(m)
    tau = t - a
    for i in range(m):
        out[i] = act_scalar(code, preactivation(W, p, q, tau, h, i)) - leak * h[i]
    return out


@numba.njit(cache=True)
def ctrnn_jac(t, h, W, p, q, a, code, leak):
    # d/dh [sigma(W h + u) - leak h] = diag(sigma'(z)) W - leak I
    m = h.shape[0]
    J = np.empty((m, m))
    tau = t - a
    for i in range(m):
        s = dact_scalar(code, preactivation(W, p, q, tau, h, i))
        for j in range(m):
            J[i, j] = s * W[i, j]
        J[i, i] -= leak
    return J


@numba.njit(cache=True)
def ctrnn_adjoint(tau, h, a, W, p, q, code, leak):
    # da/dt = leak a - W^T (sigma'(z) * a), z the pre-activation at the forward state h (scipy's path)
    m = a.shape[0]
    g = np.empty(m)
    for i in range(m):
        g[i] = dact_scalar(code, preactivation(W, p, q, tau, h, i)) * a[i]
    out = np.empty(m)
    transpose_apply(W, leak, a, g, out)
    return out


def as_ctrnn(model):
    """A CTRNN for a LinearRNN, the model itself for a CTRNN or another ContinuousModel; TypeError otherwise."""
    if isinstance(model, CTRNNForm):  # a CTRNN (itself) or a LinearRNN (identity, b = 0, leak = 0)
        return model.as_ctrnn()
    if isinstance(model, ContinuousModel):
        return model  # any model of the contract: integrated through its vector_field / jacobian
    raise TypeError(
        f"`model` must be a CTRNN or a LinearRNN (discrete models run with dynmem.recurrences.forward); got "
        f"{describe(model)}. Any other dynmem.models.ContinuousModel (e.g. dynmem.CTGRU) is accepted too."
    )
