"""The Recurrent Neural Tangent Kernel ([RNTK]; docs/theory.md section 7, last bullet).

[RNTK] S. Alemohammad, Z. Wang, R. Balestriero, R. Baraniuk, *The Recurrent
Neural Tangent Kernel*, ICLR 2021, arXiv 2006.10246 (single-layer case,
scalar output).

The network
-----------
A dense Elman RNN in the NTK parameterisation of [RNTK], width ``n``, input
dimension ``d``, every weight drawn i.i.d. ``N(0, 1)`` and the scales kept
outside the weights:

.. math::

    g_t(x) = \\frac{\\sigma_w}{\\sqrt n} W h_{t-1}(x) + \\frac{\\sigma_u}{\\sqrt d} U x_t
             + \\sigma_b b, \\qquad h_t(x) = \\phi(g_t(x)), \\qquad t = 1, \\dots, T,

    h_0(x) = 0, \\qquad f(x) = \\frac{\\sigma_v}{\\sqrt n} v^\\top h_T(x),

with ``W (n, n)``, ``U (n, d)``, ``b (n,)``, ``v (n,)``.  The state is reset
(``h_0 = 0``) for every sequence.  The parameters are ``theta = (W, U, b, v)``
and the empirical NTK is ``Theta_n(x, x') = <df(x)/dtheta, df(x')/dtheta>``.

The kernel
----------
As ``n -> infinity`` (the gradient-independence argument of [RNTK], Theorem 1),
``f`` is a Gaussian process with covariance ``sigma_v^2 K^(T,T')`` (the NNGP
kernel) and ``Theta_n`` converges to the RNTK.  For sequences ``x`` (length
``T``) and ``x'`` (length ``T'``)

.. math::

    \\Sigma^{(t,t')} = \\sigma_w^2 K^{(t-1,t'-1)} + \\frac{\\sigma_u^2}{d}\\langle x_t, x'_{t'}\\rangle
                      + \\sigma_b^2, \\qquad K^{(0,\\cdot)} = K^{(\\cdot,0)} = 0,

    K^{(t,t')} = E[\\phi(z)\\phi(z')], \\quad \\dot K^{(t,t')} = E[\\phi'(z)\\phi'(z')], \\quad
    (z, z') \\sim N\\Big(0, \\begin{bmatrix} \\Sigma^{(t,t)}(x,x) & \\Sigma^{(t,t')}(x,x') \\\\
    \\Sigma^{(t,t')}(x,x') & \\Sigma^{(t',t')}(x',x') \\end{bmatrix}\\Big),

    \\Theta_g^{(t,t')} = \\Sigma^{(t,t')} + \\sigma_w^2 \\dot K^{(t-1,t'-1)} \\Theta_g^{(t-1,t'-1)},
    \\qquad \\Theta_g^{(0,\\cdot)} = 0,

    \\Theta(x, x') = \\sigma_v^2\\big[K^{(T,T')} + \\dot K^{(T,T')} \\Theta_g^{(T,T')}\\big],
    \\qquad \\mathrm{NNGP}(x, x') = \\sigma_v^2 K^{(T,T')}.

``Theta_g`` is the tangent kernel of one pre-activation unit.  Every cell
depends only on its predecessor ``(t-1, t'-1)``, so ``Theta(x, x')`` needs
only the cells of the chain ``(T-k, T'-k)``, ``k = 0 .. min(T, T') - 1``:
sequences of different lengths are compared *aligned at their ends*, which
is the [RNTK] result for inputs of different length.  Each step of the chain
is one vectorised evaluation over all pairs of sequences (the loop is over
time only).

Gaussian expectations: closed forms for ReLU (arc-cosine kernels of degree 1
and 0, Cho & Saul 2009) and erf (the arcsine kernel of Williams 1998 and its
derivative kernel) (:func:`closed_form_expectations`); otherwise 2-D
quadrature.  For a smooth activation (tanh) the default is the trapezoidal
rule for the normal weight, refined pair by pair until two levels agree to
``tol`` (:func:`adaptive_expectations`; geometric convergence, measured
below 1e-12 relative on the tanh NTK at the default ``tol = 1e-8``).  A fixed
Gauss-Hermite rule (:func:`gauss_hermite_expectations`, ``nodes=``) is
spectrally accurate only at small variances (tanh at variances up to ~6:
about 1e-2 at 64 nodes, 1e-5 at 256) and only algebraically accurate at a
kink (ReLU, hardtanh), which is why ReLU uses its closed form; hardtanh
keeps 64 Gauss-Hermite nodes by default.  Which activations have a closed
form is recorded in :mod:`dynmem.activations`.

The empirical NTK
-----------------
:func:`rnn_jacobian` runs the forward pass and BPTT for all sequences at once
(one row each, time-major, state reset per sequence; the recurrent products
are BLAS calls inside a numba kernel, and large batches use numpy's
vectorised activations for the forward half), then forms
``df/dW = (sigma_w/sqrt n) sum_t delta_t h_{t-1}^T`` and ``df/dU`` as batched
matrix products over all steps.  :func:`empirical_rntk` returns ``J1 @ J2.T``
or, for wide networks, the same number from Gram matrices of states and
sensitivities without forming ``J`` (see its ``method``).

Choices made here (not fixed by the paper): a scalar output; all four scales
``sigma_*`` must be positive (``sigma_b > 0`` keeps every variance
``Sigma^(t,t) >= sigma_b^2`` away from 0); ``relu'(0) = 0``.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numba
import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import erf as _sp_erf

from .._validation import as_float_array, as_square_matrix, check_choice, check_int, check_positive, describe, check_rng
from ..activations import ERF, act_and_deriv_scalar, get_kernel_activation, kernel_activations

__all__ = [
    "RNTKParams",
    "RNTKResult",
    "rntk",
    "empirical_rntk",
    "init_params",
    "rnn_output",
    "rnn_jacobian",
    "rntk_activations",
    "closed_form_expectations",
    "gauss_hermite_expectations",
    "trapezoid_expectations",
    "adaptive_expectations",
    "DEFAULT_TOL",
]

_SQRT_PI = math.sqrt(math.pi)
_DEFAULT_NODES = 64  # Gauss-Hermite default for activations with a kink (hardtanh; relu on request)
_MAX_NODES = 256
DEFAULT_TOL = 1e-8  # the adaptive rule's default tolerance (smooth activations: tanh, and erf on request)
# The adaptive rule: the trapezoidal rule for the standard normal weight on [-L, L] (normalised weights),
# L = 8.5 (the normal mass beyond is 1.9e-17), on levels of about sqrt(2) times more nodes each.
_TRAPEZOID_HALF_WIDTH = 8.5
_ADAPTIVE_LEVELS = (33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025)
# Quadrature evaluates phi on (pairs x nodes^2) points; blocks keep temporaries near 16 MB.
_QUAD_BLOCK = 1 << 21


def rntk_activations() -> tuple[str, ...]:
    """Names accepted by ``activation=`` here: :func:`dynmem.activations.kernel_activations` (the registry plus ``"erf"``)."""
    return kernel_activations()


def _check_activation(activation) -> str:
    if not isinstance(activation, str):
        raise TypeError(f"`activation` must be a name such as 'relu'; got {describe(activation)}.")
    return get_kernel_activation(activation).name


# --------------------------------------------------------------------------------------------
# Inputs


def _as_sequences(name: str, X, d: int | None = None):
    """Validate ``X`` and right-align it: ``(Xpad (N, T, d), start (N,), lengths (N,))``.

    ``X`` is one sequence ``(T, d)``, a set ``(n_seq, T, d)``, or a list of
    ``(T_i, d)`` arrays of different lengths.  Shorter sequences are placed at
    the end of the padded time axis (``start[i] = T - T_i``), so that step
    ``j`` of the padded axis is ``T - j`` steps before every sequence's end.
    """
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError(f"`{name}` must hold at least one sequence; got an empty {type(X).__name__}.")
        seqs = [as_float_array(f"{name}[{i}]", x, ndim=2) for i, x in enumerate(X)]
        dims = {s.shape[1] for s in seqs}
        if len(dims) != 1:
            raise ValueError(f"`{name}` must hold sequences of one input dimension d; got dimensions {sorted(dims)}.")
        lengths = np.array([s.shape[0] for s in seqs], dtype=np.int64)
        T = int(lengths.max())
        Xp = np.zeros((len(seqs), T, seqs[0].shape[1]))
        for i, s in enumerate(seqs):
            Xp[i, T - s.shape[0]:] = s
    else:
        Xp = as_float_array(name, X, ndim=(2, 3))
        if Xp.ndim == 2:
            Xp = Xp[None]
        lengths = np.full(Xp.shape[0], Xp.shape[1], dtype=np.int64)
    N, T, dd = Xp.shape
    if N == 0:
        raise ValueError(f"`{name}` must hold at least one sequence; got shape {Xp.shape}.")
    if T == 0 or lengths.min() == 0:
        raise ValueError(f"`{name}` must have sequences of length T >= 1; got length {int(lengths.min())}.")
    if dd == 0:
        raise ValueError(f"`{name}` must have input dimension d >= 1; got shape {Xp.shape}.")
    if d is not None and dd != d:
        raise ValueError(f"`{name}` must have input dimension d = {d} (the last axis); got d = {dd}.")
    return Xp, T - lengths, lengths


def _align(Xa, sa, Xb, sb):
    """Right-align two padded sets on a common time axis."""
    Ta, Tb = Xa.shape[1], Xb.shape[1]
    T = max(Ta, Tb)
    if Ta < T:
        Xa = np.concatenate([np.zeros((Xa.shape[0], T - Ta, Xa.shape[2])), Xa], axis=1)
        sa = sa + (T - Ta)
    if Tb < T:
        Xb = np.concatenate([np.zeros((Xb.shape[0], T - Tb, Xb.shape[2])), Xb], axis=1)
        sb = sb + (T - Tb)
    return Xa, sa, Xb, sb


def _check_sigmas(sigma_w, sigma_u, sigma_b, sigma_v):
    return (check_positive("sigma_w", sigma_w), check_positive("sigma_u", sigma_u),
            check_positive("sigma_b", sigma_b), check_positive("sigma_v", sigma_v))


# --------------------------------------------------------------------------------------------
# Bivariate Gaussian expectations


def closed_form_expectations(act: str, a, b, c):
    """``(E[phi(z) phi(z')], E[phi'(z) phi'(z')])`` for ``Var z = a, Var z' = b, Cov = c``.

    ReLU (arc-cosine kernels of degree 1 and 0), with ``rho = c / sqrt(ab) = cos(theta)``:

    .. math:: K = \\frac{\\sqrt{ab}}{2\\pi}\\big(\\sin\\theta + (\\pi - \\theta)\\cos\\theta\\big),
              \\qquad \\dot K = \\frac{\\pi - \\theta}{2\\pi}.

    erf, with ``phi' = 2 e^{-z^2} / sqrt(pi)``:

    .. math:: K = \\frac{2}{\\pi}\\arcsin\\frac{2c}{\\sqrt{(1+2a)(1+2b)}},
              \\qquad \\dot K = \\frac{4}{\\pi}\\big((1+2a)(1+2b) - 4c^2\\big)^{-1/2}.
    """
    if act == "relu":
        s = np.sqrt(a * b)
        rho = np.clip(c / s, -1.0, 1.0)
        theta = np.arccos(rho)
        K = s / (2.0 * np.pi) * (np.sqrt(1.0 - rho * rho) + (np.pi - theta) * rho)
        return K, (np.pi - theta) / (2.0 * np.pi)
    if act == "erf":
        pa, pb = 1.0 + 2.0 * a, 1.0 + 2.0 * b
        det = pa * pb - 4.0 * c * c
        K = (2.0 / np.pi) * np.arcsin(np.clip(2.0 * c / np.sqrt(pa * pb), -1.0, 1.0))
        return K, (4.0 / np.pi) / np.sqrt(det)
    if act == "identity":
        return np.array(c, dtype=float, copy=True), np.ones_like(c)
    raise ValueError(f"no closed form for activation {act!r}")  # pragma: no cover - guarded by callers


@functools.lru_cache(maxsize=16)
def _hermite_rule(nodes: int):
    x, w = hermegauss(nodes)
    x.setflags(write=False)
    w = w / w.sum()
    w.setflags(write=False)
    return x, w


def gauss_hermite_expectations(act: str, a, b, c, nodes: int):
    """``(K, Kdot)`` of :func:`closed_form_expectations` by ``nodes x nodes`` Gauss-Hermite quadrature.

    With ``z = sqrt(a) u``, ``z' = sqrt(b) (rho u + sqrt(1 - rho^2) w)`` and
    ``u, w`` independent standard normals,
    ``E[F(z) G(z')] ~= sum_ij w_i w_j F(z(u_i)) G(z'(u_i, w_j))`` on the
    probabilists' Hermite nodes (weights normalised to sum to 1).  Spectrally
    accurate for smooth activations at small variances, slower as the
    variances grow (tanh at variance ~6: ~1e-4 at 64 nodes); algebraic at a
    kink (``1/nodes``, ``nodes^-1/2`` for ``Kdot``).
    """
    x, wq = _hermite_rule(nodes)
    return _rule_expectations(act, a, b, c, x, wq)


@functools.lru_cache(maxsize=16)
def _trapezoid_rule(nodes: int):
    x = np.linspace(-_TRAPEZOID_HALF_WIDTH, _TRAPEZOID_HALF_WIDTH, nodes)
    w = np.exp(-0.5 * x * x)
    w /= w.sum()
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


def trapezoid_expectations(act: str, a, b, c, nodes: int):
    """``(K, Kdot)`` by the ``nodes x nodes`` trapezoidal rule for the normal weight on ``[-8.5, 8.5]^2``.

    For an integrand analytic in a strip ``|Im u| < delta`` the error falls
    like ``exp(-2 pi delta / h)`` in the step ``h = 17 / (nodes - 1)``
    (tanh: ``delta = pi / (2 sqrt(max(a, b)))``, the nearest pole), plus the
    truncated normal mass (< 2e-17): far faster than Gauss-Hermite, whose
    outer nodes sit where the weight underflows.  Not for kinks (error
    ``O(h^2)``).
    """
    x, wq = _trapezoid_rule(nodes)
    return _rule_expectations(act, a, b, c, x, wq)


def adaptive_expectations(act: str, a, b, c, *, tol: float = DEFAULT_TOL):
    """``(K, Kdot, nodes)``: the trapezoidal rule refined, pair by pair, until two levels agree to ``tol``.

    Levels of 33, 49, 65, 97, ..., 1025 nodes per dimension
    (:func:`trapezoid_expectations`).  A pair is accepted at the first level
    where, against the previous level, ``|K_n - K_prev| <= tol * sK`` and
    ``|Kdot_n - Kdot_prev| <= tol * sD`` with the Cauchy-Schwarz bounds
    ``sK = sqrt(E[phi(z)^2] E[phi(z')^2]) >= |K|`` and ``sD`` (the same with
    ``phi'``); the value returned is the accepted (finer) level's, whose error
    is far below the difference since the convergence is geometric.  Only
    the pairs not yet accepted are evaluated on the next level.  ``nodes`` is
    the largest level any pair needed.  Warns (:class:`RuntimeWarning`) for
    the pairs that 1025 nodes do not settle, and returns their last level.
    """
    spec = get_kernel_activation(act)
    a, b, c = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float), np.asarray(c, float))
    shape = a.shape
    a, b, c = a.ravel(), b.ravel(), c.ravel()
    K, Kd = np.empty(a.size), np.empty(a.size)
    active = np.arange(a.size)
    prevK, prevD = _rule_expectations(act, a, b, c, *_trapezoid_rule(_ADAPTIVE_LEVELS[0]))
    used = _ADAPTIVE_LEVELS[0]
    tiny = np.finfo(float).tiny
    worst = 0.0
    for nodes in _ADAPTIVE_LEVELS[1:]:
        if active.size == 0:
            break
        used = nodes
        x, w = _trapezoid_rule(nodes)
        aa, bb = a[active], b[active]
        Kn, Dn = _rule_expectations(act, aa, bb, c[active], x, w)
        za, zb = np.sqrt(aa)[:, None] * x, np.sqrt(bb)[:, None] * x
        sK = np.sqrt((spec.fn(za) ** 2 @ w) * (spec.fn(zb) ** 2 @ w))
        sD = np.sqrt((spec.deriv(za) ** 2 @ w) * (spec.deriv(zb) ** 2 @ w))
        rel = np.maximum(np.abs(Kn - prevK) / np.maximum(sK, tiny), np.abs(Dn - prevD) / np.maximum(sD, tiny))
        done = rel <= tol
        K[active[done]], Kd[active[done]] = Kn[done], Dn[done]
        worst = float(rel[~done].max(initial=0.0))
        active, prevK, prevD = active[~done], Kn[~done], Dn[~done]
    if active.size:
        K[active], Kd[active] = prevK, prevD
        warnings.warn(f"the Gaussian expectations of {act!r} did not reach tol = {tol:g} with {used} trapezoid nodes "
                      f"for {active.size} of {a.size} pairs (last two levels differ by {worst:.2g} relative); their "
                      f"pre-activation variances are too large (max {float(max(a[active].max(), b[active].max())):.3g})",
                      RuntimeWarning, stacklevel=3)
    return K.reshape(shape), Kd.reshape(shape), used


def _rule_expectations(act: str, a, b, c, x, wq):
    """``(K, Kdot)`` on the product rule ``(x_i, x_j)``, ``w_i w_j`` for two independent standard normals."""
    spec = get_kernel_activation(act)
    fn, deriv = spec.fn, spec.deriv
    nodes = x.size
    a, b, c = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float), np.asarray(c, float))
    shape = a.shape
    a, b, c = a.ravel(), b.ravel(), c.ravel()
    K = np.empty(a.size)
    Kd = np.empty(a.size)
    step = max(1, _QUAD_BLOCK // (nodes * nodes))
    for lo in range(0, a.size, step):  # blocks of pairs bound the memory, not a loop over pairs
        sl = slice(lo, lo + step)
        sa, sb = np.sqrt(a[sl]), np.sqrt(b[sl])
        rho = np.clip(c[sl] / (sa * sb), -1.0, 1.0)
        rc = np.sqrt(1.0 - rho * rho)
        z1 = sa[:, None] * x[None, :]
        z2 = sb[:, None, None] * (rho[:, None, None] * x[None, :, None] + rc[:, None, None] * x[None, None, :])
        if act == "tanh":  # phi' = 1 - phi^2: one tanh on the big (pairs, nodes, nodes) array
            f1, f2 = np.tanh(z1), np.tanh(z2)
            g1 = 1.0 - f1 * f1
            np.multiply(f2, f2, out=z2)
            np.subtract(1.0, z2, out=z2)
            g2 = z2
        else:
            f1, f2, g1, g2 = fn(z1), fn(z2), deriv(z1), deriv(z2)
        K[sl] = np.einsum("si,si->s", f1 * wq, f2 @ wq)
        Kd[sl] = np.einsum("si,si->s", g1 * wq, g2 @ wq)
    return K.reshape(shape), Kd.reshape(shape)


class _Adaptive:
    """The adaptive rule's tolerance, and the largest node count it used."""

    def __init__(self, tol):
        self.tol = tol
        self.nodes = 0


def _expectations(act, a, b, c, method, nodes):
    """``nodes`` is an int (Gauss-Hermite nodes) or an :class:`_Adaptive`."""
    if method == "closed-form":
        return closed_form_expectations(act, a, b, c)
    if isinstance(nodes, _Adaptive):
        K, Kd, used = adaptive_expectations(act, a, b, c, tol=nodes.tol)
        nodes.nodes = max(nodes.nodes, used)
        return K, Kd
    return gauss_hermite_expectations(act, a, b, c, nodes)


# --------------------------------------------------------------------------------------------
# The analytic kernel


@dataclass(frozen=True, eq=False)
class RNTKResult:
    """The analytic RNTK and NNGP kernel of :func:`rntk`.

    Attributes
    ----------
    ntk : ndarray, shape (n1, n2)
        ``Theta(x_i, x'_j)``, the infinite-width limit of the empirical NTK.
    nngp : ndarray, shape (n1, n2)
        ``sigma_v^2 K^(T,T')(x_i, x'_j)``, the covariance of the output ``f`` at
        initialisation in the same limit.
    activation : str
    method : {"closed-form", "quadrature"}
        How the Gaussian expectations were computed.
    nodes : int or None
        Nodes per dimension of the quadrature (the largest level the adaptive
        rule used; ``None`` for the closed form).
    sigma_w, sigma_u, sigma_b, sigma_v : float
    tol : float or None
        The adaptive rule's tolerance (``None`` for the closed form and for a
        fixed Gauss-Hermite ``nodes``).
    """

    ntk: np.ndarray
    nngp: np.ndarray
    activation: str
    method: str
    nodes: int | None
    sigma_w: float
    sigma_u: float
    sigma_b: float
    sigma_v: float
    tol: float | None = None


def rntk(X, X2=None, *, activation: str = "relu", sigma_w: float = 1.0, sigma_u: float = 1.0,
         sigma_b: float = 1.0, sigma_v: float = 1.0, method: str = "auto", nodes: int | None = None,
         tol: float | None = None) -> RNTKResult:
    """Analytic Recurrent Neural Tangent Kernel and NNGP kernel ([RNTK] Theorem 1; docs/theory.md section 7).

    Parameters
    ----------
    X : array_like, shape (n1, T, d) or (T, d), or list of (T_i, d) arrays
        Sequences (a 2-D array is one sequence).  Sequences of different
        lengths are compared aligned at their ends.
    X2 : same forms as ``X``, optional
        Second set (``n2`` sequences, same ``d``); ``X`` itself by default.
    activation : str
        ``"relu"``, ``"erf"``, ``"tanh"``, ``"hardtanh"`` or ``"identity"``.
    sigma_w, sigma_u, sigma_b, sigma_v : float
        Positive scales of the recurrent weights, input weights, bias and
        readout (see the module docstring for the parameterisation).
    method : {"auto", "closed-form", "quadrature"}
        ``"auto"`` uses the closed form where one exists (ReLU, erf,
        identity; :attr:`dynmem.activations.Activation.gaussian_closed_form`)
        and quadrature otherwise.
    nodes : int, optional
        A fixed Gauss-Hermite rule of ``nodes`` per dimension
        (2 <= nodes <= 256; :func:`gauss_hermite_expectations`).  By default
        the quadrature of a smooth activation (tanh; erf with
        ``method="quadrature"``) is the adaptive rule (``tol``), and that of an
        activation with a kink (hardtanh; relu with ``method="quadrature"``)
        is Gauss-Hermite with 64 nodes, accurate only like ``1/nodes``
        (``nodes^-1/2`` for ``Kdot``).  For tanh a fixed rule is much less
        accurate than the default (variances up to ~6: about 6e-3 at 64
        nodes, 1e-4 at 128, 4e-6 at 192).
    tol : float, optional
        Tolerance of the adaptive rule (default ``DEFAULT_TOL = 1e-8``;
        :func:`adaptive_expectations`): every Gaussian expectation agrees with
        the next-coarser level to ``tol`` relative to its Cauchy-Schwarz bound,
        and the value returned is the finer one.  Measured on the tanh NTK
        against 2-D ``scipy.integrate`` quadrature: relative error below 1e-9
        (tests/test_kernel_rntk.py).  Cannot be combined with ``nodes``.

    Returns
    -------
    RNTKResult
        ``ntk`` and ``nngp`` of shape (n1, n2); symmetric when ``X2`` is None.

    Notes
    -----
    .. math::

        \\Sigma^{(t,t')} = \\sigma_w^2 K^{(t-1,t'-1)} + \\tfrac{\\sigma_u^2}{d}\\langle x_t, x'_{t'}\\rangle
        + \\sigma_b^2,\\quad
        \\Theta_g^{(t,t')} = \\Sigma^{(t,t')} + \\sigma_w^2 \\dot K^{(t-1,t'-1)} \\Theta_g^{(t-1,t'-1)},

        \\Theta = \\sigma_v^2\\big[K^{(T,T')} + \\dot K^{(T,T')}\\Theta_g^{(T,T')}\\big].

    Only the cells ``(T-k, T'-k)`` enter ``Theta^(T,T')``, so the cost is
    ``max_i T_i`` steps, each one evaluation of the expectations over all
    ``n1 * n2`` pairs at once (times ``nodes^2`` for the quadrature).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((4, 10, 2))
    >>> res = rntk(X, activation="erf", sigma_w=1.0, sigma_u=1.0, sigma_b=0.5, sigma_v=1.0)
    >>> res.ntk.shape, bool(np.all(np.linalg.eigvalsh(res.ntk) > 0))
    ((4, 4), True)
    """
    act = _check_activation(activation)
    sw, su, sb, sv = _check_sigmas(sigma_w, sigma_u, sigma_b, sigma_v)
    check_choice("method", method, ("auto", "closed-form", "quadrature"))
    has_closed = get_kernel_activation(act).gaussian_closed_form
    if method == "auto":
        method = "closed-form" if has_closed else "quadrature"
    elif method == "closed-form" and not has_closed:
        raise ValueError(f"`method` 'closed-form' needs activation 'relu', 'erf' or 'identity'; got activation "
                         f"{act!r} (use method='quadrature').")
    if nodes is not None and tol is not None:
        raise ValueError(f"give `nodes` (a fixed Gauss-Hermite rule) or `tol` (the adaptive rule), not both; "
                         f"got nodes={nodes!r}, tol={tol!r}.")
    if tol is not None:
        tol = check_positive("tol", tol)
    if nodes is not None:
        nodes = check_int("nodes", nodes, minimum=2)
        if nodes > _MAX_NODES:
            raise ValueError(f"`nodes` must be <= {_MAX_NODES} (Gauss-Hermite weights underflow beyond); got {nodes}.")
    elif tol is not None or get_kernel_activation(act).smooth:
        tol = DEFAULT_TOL if tol is None else tol
        nodes = _Adaptive(tol)
    else:
        nodes = _DEFAULT_NODES
    X1, s1, _ = _as_sequences("X", X)
    same = X2 is None
    if same:
        X2p, s2 = X1, s1
    else:
        X2p, s2, _ = _as_sequences("X2", X2, d=X1.shape[2])
        X1, s1, X2p, s2 = _align(X1, s1, X2p, s2)
    ntk, nngp = _rntk_chain(act, X1, s1, X2p, s2, sw, su, sb, sv, method, nodes, same)
    if not (np.all(np.isfinite(ntk)) and np.all(np.isfinite(nngp))):
        raise FloatingPointError("the RNTK recursion produced non-finite values; reduce sigma_w or the input scale")
    if method != "quadrature":
        return RNTKResult(ntk, nngp, act, method, None, sw, su, sb, sv)
    if isinstance(nodes, _Adaptive):
        return RNTKResult(ntk, nngp, act, method, nodes.nodes, sw, su, sb, sv, tol=nodes.tol)
    return RNTKResult(ntk, nngp, act, method, nodes, sw, su, sb, sv)


def _self_variances(act, X, start, sw, su, sb, method, nodes):
    """``Sigma^(t,t)(x, x)`` on the padded axis, shape (N, T) (1.0 where the sequence has not started)."""
    N, T, d = X.shape
    q = np.ones((N, T))
    Kprev = np.zeros(N)
    sq = np.einsum("ntd,ntd->nt", X, X)
    for j in range(T):
        on = j >= start
        s = sw * sw * Kprev + (su * su / d) * sq[:, j] + sb * sb
        q[:, j] = np.where(on, s, 1.0)
        K, _ = _expectations(act, q[:, j], q[:, j], q[:, j], method, nodes)
        Kprev = np.where(on, K, 0.0)
    return q


def _rntk_chain(act, X1, s1, X2, s2, sw, su, sb, sv, method, nodes, same):
    N1, T, d = X1.shape
    q1 = _self_variances(act, X1, s1, sw, su, sb, method, nodes)
    q2 = q1 if same else _self_variances(act, X2, s2, sw, su, sb, method, nodes)
    K = np.zeros((N1, X2.shape[0]))
    KdTh = np.zeros_like(K)  # Kdot^(t-1,t'-1) Theta_g^(t-1,t'-1)
    for j in range(T):
        on = (j >= s1)[:, None] & (j >= s2)[None, :]
        Sig = sw * sw * K + (su * su / d) * (X1[:, j] @ X2[:, j].T) + sb * sb
        if same:
            # Mathematically diag(Sig) = q; make it so in floating point, because the ReLU
            # kernel's arccos(rho) turns a rounding error eps in rho = 1 into sqrt(2 eps) ~ 1e-8.
            np.fill_diagonal(Sig, np.where(j >= s1, q1[:, j], 0.0))
        Th = Sig + sw * sw * KdTh
        # Pairs not yet started get a harmless dummy covariance (masked below).
        Sig = np.where(on, Sig, 0.0)
        if same and method == "quadrature":
            # One evaluation per unordered pair (the quadrature dominates the cost).
            iu, ju = np.triu_indices(N1)
            Ku, Kdu = _expectations(act, q1[iu, j], q1[ju, j], Sig[iu, ju], method, nodes)
            K = np.empty_like(Sig)
            Kd = np.empty_like(Sig)
            K[iu, ju] = K[ju, iu] = Ku
            Kd[iu, ju] = Kd[ju, iu] = Kdu
        else:
            K, Kd = _expectations(act, q1[:, j, None], q2[None, :, j], Sig, method, nodes)
        K = np.where(on, K, 0.0)
        Th = np.where(on, Th, 0.0)
        KdTh = Kd * Th
    # Every sequence is active at the last padded step (right alignment).
    nngp = sv * sv * K
    ntk = sv * sv * (K + KdTh)
    if same:  # exact symmetry (rounding in X @ X.T aside, the closed forms are symmetric)
        ntk = 0.5 * (ntk + ntk.T)
        nngp = 0.5 * (nngp + nngp.T)
    return ntk, nngp


# --------------------------------------------------------------------------------------------
# The finite network


@dataclass(frozen=True, eq=False)
class RNTKParams:
    """Parameters of the dense NTK-parameterised RNN of [RNTK].

    Attributes
    ----------
    W : ndarray, shape (n, n)
    U : ndarray, shape (n, d)
    b, v : ndarray, shape (n,)
    activation : str
    sigma_w, sigma_u, sigma_b, sigma_v : float

    The flat parameter vector (the columns of :func:`rnn_jacobian`) is
    ``[W.ravel(), U.ravel(), b, v]`` (row-major), of length ``n^2 + n d + 2 n``.
    """

    W: np.ndarray
    U: np.ndarray
    b: np.ndarray
    v: np.ndarray
    activation: str = "relu"
    sigma_w: float = 1.0
    sigma_u: float = 1.0
    sigma_b: float = 1.0
    sigma_v: float = 1.0

    def __post_init__(self):
        W = as_square_matrix("W", self.W, copy=True)
        n = W.shape[0]
        U = as_float_array("U", self.U, ndim=2, copy=True)
        if U.shape[0] != n or U.shape[1] == 0:
            raise ValueError(f"`U` must have shape ({n}, d) with d >= 1 to match W; got shape {U.shape}.")
        b = as_float_array("b", self.b, shape=(n,), copy=True)
        v = as_float_array("v", self.v, shape=(n,), copy=True)
        for name, arr in (("W", W), ("U", U), ("b", b), ("v", v)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "activation", _check_activation(self.activation))
        for name, val in zip(("sigma_w", "sigma_u", "sigma_b", "sigma_v"),
                             _check_sigmas(self.sigma_w, self.sigma_u, self.sigma_b, self.sigma_v)):
            object.__setattr__(self, name, val)

    @property
    def width(self) -> int:
        return self.W.shape[0]

    @property
    def inputs(self) -> int:
        return self.U.shape[1]

    @property
    def size(self) -> int:
        """Number of parameters ``n^2 + n d + 2 n``."""
        n, d = self.U.shape
        return n * n + n * d + 2 * n

    def flatten(self) -> np.ndarray:
        """The parameters as one vector ``[W.ravel(), U.ravel(), b, v]``."""
        return np.concatenate([self.W.ravel(), self.U.ravel(), self.b, self.v])

    def flat(self) -> np.ndarray:
        """Deprecated spelling of :meth:`flatten` (warns; removed in the next release)."""
        warnings.warn("RNTKParams.flat() is deprecated; use flatten()", DeprecationWarning, stacklevel=2)
        return self.flatten()

    def with_flat(self, theta) -> "RNTKParams":
        """Deprecated spelling of :meth:`unflatten` (warns; removed in the next release)."""
        warnings.warn("RNTKParams.with_flat(theta) is deprecated; use unflatten(theta)", DeprecationWarning,
                      stacklevel=2)
        return self.unflatten(theta)

    def unflatten(self, theta) -> "RNTKParams":
        """The same network with the parameters replaced by the vector ``theta``."""
        theta = as_float_array("theta", theta, shape=(self.size,))
        n, d = self.U.shape
        i, j = n * n, n * n + n * d
        return RNTKParams(theta[:i].reshape(n, n), theta[i:j].reshape(n, d), theta[j:j + n], theta[j + n:],
                          self.activation, self.sigma_w, self.sigma_u, self.sigma_b, self.sigma_v)


def init_params(n: int, d: int, *, activation: str = "relu", sigma_w: float = 1.0, sigma_u: float = 1.0,
                sigma_b: float = 1.0, sigma_v: float = 1.0, rng=None) -> RNTKParams:
    """Draw the standard-normal weights of an NTK-parameterised RNN ([RNTK] Section 3).

    Parameters
    ----------
    n, d : int
        Width and input dimension.
    activation : str
        See :func:`rntk`.
    sigma_w, sigma_u, sigma_b, sigma_v : float
        Positive scales, kept outside the weights.
    rng : None, int or numpy.random.Generator
        Normalised with :func:`numpy.random.default_rng`; draws ``W``, ``U``,
        ``b``, ``v`` in that order.

    Returns
    -------
    RNTKParams
        ``W (n, n)``, ``U (n, d)``, ``b (n,)``, ``v (n,)`` i.i.d. ``N(0, 1)``.
    """
    n = check_int("n", n, minimum=1)
    d = check_int("d", d, minimum=1)
    rng = check_rng("rng", rng)
    act = _check_activation(activation)
    sigmas = _check_sigmas(sigma_w, sigma_u, sigma_b, sigma_v)
    arrays = (rng.standard_normal((n, n)), rng.standard_normal((n, d)), rng.standard_normal(n),
              rng.standard_normal(n))
    # Fresh, finite and owned: skip the validating copy (it doubles the cost of a wide W).
    out = object.__new__(RNTKParams)
    for name, arr in zip(("W", "U", "b", "v"), arrays):
        arr.setflags(write=False)
        object.__setattr__(out, name, arr)
    for name, val in zip(("activation", "sigma_w", "sigma_u", "sigma_b", "sigma_v"), (act,) + sigmas):
        object.__setattr__(out, name, val)
    return out


@numba.njit(cache=True, inline="always")
def _phi_dphi(code, z):
    if code == ERF:
        return math.erf(z), (2.0 / _SQRT_PI) * math.exp(-z * z)
    return act_and_deriv_scalar(code, z)


@numba.njit(cache=True)
def _backward_kernel(Ws, S, cv):
    """BPTT: ``D (T, B, n)`` with ``D[t-1] = df/dg_t``, from ``S (T, B, n) = phi'(g)``.

    ``delta_T = cv * phi'(g_T)`` and ``delta_{t-1} = phi'(g_{t-1}) * Ws^T delta_t``
    (``Ws = sigma_w W / sqrt(n)``, ``cv = sigma_v v / sqrt(n)``); rows that
    have not started have ``S = 0`` there, so their sensitivities vanish.
    """
    T, B, n = S.shape
    D = np.empty((T, B, n))
    A = np.empty((B, n))
    for i in range(B):
        for k in range(n):
            A[i, k] = cv[k]
    for t in range(T - 1, -1, -1):
        Dt = D[t]
        St = S[t]
        for i in range(B):
            for k in range(n):
                Dt[i, k] = St[i, k] * A[i, k]
        if t > 0:
            np.dot(Dt, Ws, A)  # row form of a_{t-1} = Ws^T delta_t
    return D


@numba.njit(cache=True)
def _bptt_kernel(Ws, P, start, code, cv):
    """Forward states and BPTT of ``f = cv . h_T`` for every sequence (rows), time-major.

    ``Ws (n, n)`` is the scaled ``sigma_w W / sqrt(n)``; ``P (T, B, n)`` holds
    the input drive ``sigma_u U x_t / sqrt(d) + sigma_b b``; ``cv (n,)`` is the
    scaled readout ``sigma_v v / sqrt(n)``; row ``i`` starts at step ``start[i]``
    (its state is 0 before).  Returns ``H (T+1, B, n)`` (``H[t] = h_t``) and
    ``D (T, B, n)`` with ``D[t-1] = df/dg_t``.
    """
    T, B, n = P.shape
    H = np.zeros((T + 1, B, n))
    S = np.empty((T, B, n))
    Z = np.empty((B, n))
    WsT = Ws.T
    for t in range(T):
        np.dot(H[t], WsT, Z)
        Pt = P[t]
        Hn = H[t + 1]
        St = S[t]
        for i in range(B):
            if t < start[i]:
                for k in range(n):
                    St[i, k] = 0.0  # H[t+1, i] stays 0: the sequence has not started
            else:
                for k in range(n):
                    a, s = _phi_dphi(code, Z[i, k] + Pt[i, k])
                    Hn[i, k] = a
                    St[i, k] = s
    return H, _backward_kernel(Ws, S, cv)


def _forward_blocked(Ws, P, start, act):
    """The forward pass with one numpy call per operation and step.

    Same contract as the forward half of :func:`_bptt_kernel`.  For large
    ``batch * n`` numpy's vectorised ``tanh`` / ``erf`` / ``exp`` beat the
    scalar libm calls inside a numba loop by more than the per-step Python
    overhead (a few microseconds).
    """
    T, B, n = P.shape
    H = np.empty((T + 1, B, n))
    H[0] = 0.0
    S = np.empty((T, B, n))
    WsT = Ws.T
    late = start > 0
    for t in range(T):
        Z = H[t + 1]
        np.dot(H[t], WsT, out=Z)
        Z += P[t]
        St = S[t]
        if act == "tanh":
            np.tanh(Z, out=Z)
            np.multiply(Z, Z, out=St)
            np.subtract(1.0, St, out=St)
        elif act == "erf":
            np.square(Z, out=St)
            np.negative(St, out=St)
            np.exp(St, out=St)
            St *= 2.0 / _SQRT_PI
            _sp_erf(Z, out=Z)
        elif act == "relu":
            np.greater(Z, 0.0, out=St, casting="unsafe")
            np.maximum(Z, 0.0, out=Z)
        else:
            spec = get_kernel_activation(act)
            St[...] = spec.deriv(Z)
            Z[...] = spec.fn(Z)
        if late.any():
            off = start > t
            Z[off] = 0.0
            St[off] = 0.0
    return H, S


# Batches with at least this many units in total take the numpy forward pass (measured with one
# BLAS thread: numba wins at batch * n <= 1024, numpy at 4096, for every activation).
_BLOCKED_MIN_SIZE = 2048


def _run(params: RNTKParams, X, start):
    """Time-major states and sensitivities for padded inputs ``X (B, T, d)``."""
    n, d = params.U.shape
    Xt = np.ascontiguousarray(X.transpose(1, 0, 2))  # (T, B, d)
    P = Xt @ ((params.sigma_u / math.sqrt(d)) * params.U.T)
    P += params.sigma_b * params.b
    Ws = (params.sigma_w / math.sqrt(n)) * params.W
    cv = (params.sigma_v / math.sqrt(n)) * params.v
    code = get_kernel_activation(params.activation).code
    start = np.ascontiguousarray(start, dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):
        if P.shape[1] * n >= _BLOCKED_MIN_SIZE:
            H, S = _forward_blocked(Ws, P, start, params.activation)
            D = _backward_kernel(Ws, S, cv)
        else:
            H, D = _bptt_kernel(Ws, P, start, code, cv)
    if not (np.all(np.isfinite(H[-1])) and np.all(np.isfinite(D[0]))):
        raise FloatingPointError("the RNN states or sensitivities became non-finite; reduce sigma_w or the inputs")
    return Xt, H, D, cv


def _check_params(params):
    if not isinstance(params, RNTKParams):
        raise TypeError(f"`params` must be an RNTKParams (see init_params); got {describe(params)}.")
    return params


def rnn_output(params: RNTKParams, X) -> np.ndarray:
    """The network output ``f(x) = sigma_v v^T h_T(x) / sqrt(n)`` for each sequence.

    Parameters
    ----------
    params : RNTKParams
    X : array_like, shape (n_seq, T, d) or (T, d), or list of (T_i, d) arrays

    Returns
    -------
    ndarray, shape (n_seq,)
    """
    params = _check_params(params)
    Xp, start, _ = _as_sequences("X", X, d=params.inputs)
    _, H, _, cv = _run(params, Xp, start)
    return H[-1] @ cv


def _jacobian_from(params, Xt, H, D):
    n, d = params.U.shape
    T, B, _ = D.shape
    sw, su, sb = params.sigma_w / math.sqrt(n), params.sigma_u / math.sqrt(d), params.sigma_b
    J = np.empty((B, params.size))
    Db = D.transpose(1, 2, 0)  # (B, n, T): BLAS reads the transposed blocks in place
    # df/dW = sw sum_t delta_t h_{t-1}^T; one batched matrix product over all steps.
    np.matmul(Db, H[:-1].transpose(1, 0, 2), out=J[:, :n * n].reshape(B, n, n))
    J[:, :n * n] *= sw
    np.matmul(Db, Xt.transpose(1, 0, 2), out=J[:, n * n:n * n + n * d].reshape(B, n, d))
    J[:, n * n:n * n + n * d] *= su
    J[:, n * n + n * d:n * n + n * d + n] = sb * D.sum(axis=0)
    J[:, n * n + n * d + n:] = (params.sigma_v / math.sqrt(n)) * H[-1]
    return J


def rnn_jacobian(params: RNTKParams, X) -> np.ndarray:
    """Hand-written Jacobian of the output with respect to all parameters (BPTT).

    Parameters
    ----------
    params : RNTKParams
    X : array_like, shape (n_seq, T, d) or (T, d), or list of (T_i, d) arrays

    Returns
    -------
    ndarray, shape (n_seq, n^2 + n d + 2 n)
        Row ``i`` is ``df(x_i)/dtheta`` in the order of :meth:`RNTKParams.flat`.

    Notes
    -----
    With ``delta_t = df/dg_t``, ``delta_T = (sigma_v/sqrt n) v * phi'(g_T)`` and
    ``delta_{t-1} = phi'(g_{t-1}) * (sigma_w/sqrt n) W^T delta_t``:

    .. math::

        \\frac{\\partial f}{\\partial W} = \\frac{\\sigma_w}{\\sqrt n}\\sum_t \\delta_t h_{t-1}^\\top,\\quad
        \\frac{\\partial f}{\\partial U} = \\frac{\\sigma_u}{\\sqrt d}\\sum_t \\delta_t x_t^\\top,\\quad
        \\frac{\\partial f}{\\partial b} = \\sigma_b \\sum_t \\delta_t,\\quad
        \\frac{\\partial f}{\\partial v} = \\frac{\\sigma_v}{\\sqrt n} h_T.
    """
    params = _check_params(params)
    Xp, start, _ = _as_sequences("X", X, d=params.inputs)
    Xt, H, D, _ = _run(params, Xp, start)
    return _jacobian_from(params, Xt, H, D)


# Above this many Jacobian entries the kernel is assembled from Gram matrices instead.
_MAX_JACOBIAN_ENTRIES = 1 << 24


def empirical_rntk(params: RNTKParams, X, X2=None, *, method: str = "auto") -> np.ndarray:
    """Empirical NTK ``J(X) J(X2)^T`` of a finite-width RNN ([RNTK]; docs/theory.md section 7).

    Parameters
    ----------
    params : RNTKParams
        The network (see :func:`init_params`).
    X : array_like, shape (n1, T, d) or (T, d), or list of (T_i, d) arrays
    X2 : same forms as ``X``, optional
        Second set (``X`` by default).
    method : {"auto", "jacobian", "gram"}
        ``"jacobian"`` forms the Jacobians (:func:`rnn_jacobian`) and returns
        one matrix product ``J1 @ J2.T``.  ``"gram"`` never forms them: it
        contracts the same sums through Gram matrices of the states and
        sensitivities over all steps,

        .. math::

            \\Theta_n(x, x') = \\sum_{t,t'} \\langle\\delta_t, \\delta'_{t'}\\rangle
            \\Big(\\frac{\\sigma_w^2}{n}\\langle h_{t-1}, h'_{t'-1}\\rangle
            + \\frac{\\sigma_u^2}{d}\\langle x_t, x'_{t'}\\rangle + \\sigma_b^2\\Big)
            + \\frac{\\sigma_v^2}{n}\\langle h_T, h'_{T'}\\rangle,

        which costs ``O((n_seq T)^2 n)`` instead of ``O(n_seq T n^2)`` time and
        ``O(n_seq n^2)`` memory (the choice for wide networks and short
        sequences).  ``"auto"`` picks the cheaper one.

    Returns
    -------
    ndarray, shape (n1, n2)
    """
    params = _check_params(params)
    check_choice("method", method, ("auto", "jacobian", "gram"))
    n, d = params.U.shape
    X1, s1, _ = _as_sequences("X", X, d=d)
    same = X2 is None
    if same:
        Xa, sa = X1, s1
        n1 = X1.shape[0]
    else:
        X2p, s2, _ = _as_sequences("X2", X2, d=d)
        X1, s1, X2p, s2 = _align(X1, s1, X2p, s2)
        n1 = X1.shape[0]
        Xa, sa = np.concatenate([X1, X2p]), np.concatenate([s1, s2])
    B, T, _ = Xa.shape
    if method == "auto":
        jac_cost = B * n * n * (T + (n1 if same else B))
        gram_cost = 3 * (B * T) ** 2 * n
        fits = B * params.size <= _MAX_JACOBIAN_ENTRIES
        method = "jacobian" if fits and jac_cost <= gram_cost else "gram"
    Xt, H, D, _ = _run(params, Xa, sa)
    if method == "jacobian":
        J = _jacobian_from(params, Xt, H, D)
        if same:
            K = J @ J.T
            return 0.5 * (K + K.T)
        return J[:n1] @ J[n1:].T
    return _gram_kernel(params, Xt, H, D, n1, same)


# Entries of one block of the (seq, t) x (seq', t') Gram matrices in the "gram" route.
_GRAM_BLOCK = 1 << 22


def _gram_kernel(params, Xt, H, D, n1, same):
    n, d = params.U.shape
    T, B, _ = D.shape
    rows = lambda A: np.ascontiguousarray(A.transpose(1, 0, 2)).reshape(B, T, -1)  # noqa: E731 (seq, t, .)
    Dr, Hr, Xr = rows(D), rows(H[:-1]), rows(Xt)
    o2 = 0 if same else n1
    n2 = B - o2
    cw, cu, cb = params.sigma_w ** 2 / n, params.sigma_u ** 2 / d, params.sigma_b ** 2
    K = np.empty((n1, n2))
    # Blocks of sequences bound the temporaries at _GRAM_BLOCK entries (a loop over blocks, not pairs).
    step = max(1, int(math.sqrt(_GRAM_BLOCK)) // T)
    for i in range(0, n1, step):
        si = slice(i, min(i + step, n1))
        bi = si.stop - si.start
        Di, Hi, Xi = (A[si].reshape(bi * T, -1) for A in (Dr, Hr, Xr))
        for j in range(0, n2, step):
            sj = slice(o2 + j, o2 + min(j + step, n2))
            bj = sj.stop - sj.start
            Dj, Hj, Xj = (A[sj].reshape(bj * T, -1) for A in (Dr, Hr, Xr))
            M = Di @ Dj.T
            M *= cw * (Hi @ Hj.T) + cu * (Xi @ Xj.T) + cb
            K[i:i + bi, j:j + bj] = M.reshape(bi, T, bj, T).sum(axis=(1, 3))
    HT = H[-1]
    K += (params.sigma_v ** 2 / n) * (HT[:n1] @ HT[o2:].T)
    if same:
        K = 0.5 * (K + K.T)
    return K
