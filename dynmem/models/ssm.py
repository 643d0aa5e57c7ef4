"""Diagonal linear state-space models (S4D / LRU style) and their discretisations.

Continuous time, complex diagonal state of width m, real input x in R^d and
real scalar output::

    dh/dt = Lambda * h + B x(t),      y(t) = Re(C^T h(t)) + D^T x(t)

with ``Lambda`` (m,) complex, ``Re Lambda < 0`` (stable), ``B`` (m, d)
complex, ``C`` (m,) complex, ``D`` (d,) real.  Its response to an input
starting at t = 0 from h(0) = 0 is ``y(t) = int_0^t K(t - u) x(u) du + D^T x(t)``
with the impulse response (memory kernel), for t >= 0,

    K(t) = Re(C^T diag(exp(Lambda t)) B)            shape (d,)

and the step (Heaviside) response ``y(t) = (int_0^t K) x + D^T x`` with
``int_0^t K = Re(C^T diag((exp(Lambda t) - 1) / Lambda) B)``.

Memory ([WLL] Def. 3.1, docs/theory.md section 2).  The model is linear, so for
t > 0 both the Heaviside memory ``sup_x |dy/dt| / |x|_inf`` and the impulse
memory (state kicked to ``h(0+) = B x``, ``sup_x |y(t)| / |x|_inf``; the
feed-through ``D`` only acts at t = 0) equal ``|K(t)|_1``, the sup being
attained at the vertex ``x = sign(K(t))``.

Discretisations with step ``dt`` (h_{k+1} = Lambda_bar h_k + B_bar x_k,
y_k = Re(C^T h_{k+1}) + D^T x_k, step k reads x_k and emits the output of
the new state, as :mod:`dynmem.recurrences` does):

- ``"zoh"`` (zero-order hold): ``Lambda_bar = exp(Lambda dt)``,
  ``B_bar = (exp(Lambda dt) - 1) / Lambda * B``.  Exact at the grid points
  for inputs constant on each ``[k dt, (k+1) dt)``.
- ``"bilinear"`` (Tustin): ``Lambda_bar = (1 + Lambda dt/2) / (1 - Lambda dt/2)``,
  ``B_bar = dt / (1 - Lambda dt/2) * B``.  Second order in ``dt``; maps the
  open left half-plane onto the open unit disc.

Stable parameterisation: :meth:`DiagonalSSM.from_reparam` builds ``Lambda =
f(w) + i omega`` with a continuous-time :class:`dynmem.reparam.Reparam`
(``"exp"``, ``"softplus"``, ``"best"``), so every real ``w`` gives a stable
model ([SSM]; docs/theory.md section 5).

Contract (:mod:`dynmem.models`): a ``DiagonalSSM`` has a closed-form memory
(:class:`~dynmem.models.ClosedFormMemory`) and its real form
(:meth:`DiagonalSSM.as_linear`), so :func:`dynmem.memory.memory_function`
takes it in closed form or, with ``closed_form=False``, through the flow of
the real form; a ``DiscreteDiagonalSSM`` is a
:class:`~dynmem.models.DiscreteModel` on the flat state ``(Re h, Im h)``.
Both are :class:`~dynmem.models.Parametrized`: the flat parameter vector is
``(Re Lambda, Im Lambda, Re B, Im B, Re C, Im C, D)`` (``Lambda_bar``,
``B_bar`` for the discrete model), each raveled in C order.

Gradients (hand-written BPTT, :func:`ssm_value_and_grad`).  For a real loss
L of a complex parameter ``p = a + i b`` dynmem reports ``dL/dp := dL/da + i
dL/db``, so the flat gradient lines up with the flat parameters.  With
``g_k = dL/dy_k`` and ``e_k = dL/dh_{k+1}`` (same convention)::

    e_{T-1} = g_{T-1} conj(C),     e_k = conj(Lambda_bar) e_{k+1} + g_k conj(C)
    dL/dLambda_bar = sum_k conj(h_k) e_k,      dL/dB_bar = sum_k e_k x_k^T
    dL/dC = sum_k g_k conj(h_{k+1}),           dL/dD = sum_k g_k x_k,     dL/dh_0 = conj(Lambda_bar) e_0

and through a discretisation ``w = f(z)`` holomorphic in ``z`` the
cotangents pull back as ``dL/dz = conj(f'(z)) dL/dw``: for ZOH
``dLambda_bar/dLambda = dt e^{Lambda dt}``, ``s = (e^{Lambda dt} - 1)/Lambda``,
``ds/dLambda = (dt e^{Lambda dt} - s) / Lambda``; for the bilinear map
``dLambda_bar/dLambda = dt / (1 - Lambda dt/2)^2``, ``s = dt / (1 - Lambda dt/2)``,
``ds/dLambda = dt^2 / (2 (1 - Lambda dt/2)^2)``; with ``B_bar = s B``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numba
import numpy as np

from .._validation import as_float_array, check_choice, check_int, check_positive, check_rng, describe
from ..compiling import kernel_array
from ..errors import FloatOverflowError
from ..recurrences import Trajectory, sequence_loss
from .contract import LayerGradient, LayerPass

__all__ = ["DiagonalSSM", "DiscreteDiagonalSSM", "SSMGradient", "ssm_value_and_grad", "ssm_reparam_value_and_grad"]

_METHODS = ("zoh", "bilinear")


def _as_complex(name, value, shape) -> np.ndarray:
    if isinstance(value, (str, bytes)):
        raise TypeError(f"`{name}` must be an array of numbers; got the string {value!r}.")
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "biufc":
        raise TypeError(f"`{name}` must be an array of (complex) numbers; got dtype {arr.dtype} from {describe(value)}.")
    arr = np.array(arr, dtype=np.complex128, order="C", copy=True)
    if arr.shape != tuple(shape):
        raise ValueError(f"`{name}` must have shape {tuple(shape)}; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite; got {describe(arr)}.")
    arr.flags.writeable = False
    return arr


def _check_io(obj, Lambda_name):
    lam = np.asarray(getattr(obj, Lambda_name))
    if lam.ndim != 1 or lam.size < 1:
        raise ValueError(f"`{Lambda_name}` must be a non-empty 1-d array (the diagonal); got shape {lam.shape}.")
    m = lam.size
    object.__setattr__(obj, Lambda_name, _as_complex(Lambda_name, lam, (m,)))
    Bn = "B" if hasattr(obj, "B") else "B_bar"
    Bv = np.asarray(getattr(obj, Bn))
    if Bv.ndim != 2 or Bv.shape[0] != m or Bv.shape[1] < 1:
        raise ValueError(f"`{Bn}` must have shape ({m}, d) with d >= 1 to match `{Lambda_name}`; got shape {Bv.shape}.")
    d = Bv.shape[1]
    object.__setattr__(obj, Bn, _as_complex(Bn, Bv, (m, d)))
    object.__setattr__(obj, "C", _as_complex("C", obj.C, (m,)))
    D = as_float_array("D", obj.D, shape=(d,), copy=True)
    D.flags.writeable = False
    object.__setattr__(obj, "D", D)
    return m, d


class _ComplexFlatParams:
    """Flat real parameter vector of both SSM classes (``dynmem.models.Parametrized``).

    The layout is ``(Re Lambda, Im Lambda, Re B, Im B, Re C, Im C, D)``
    (``Lambda_bar``, ``B_bar`` for the discrete class); ``unflatten`` goes
    through the constructor, so its validation applies, and keeps the other
    fields (``dt``, ``method``).
    """

    @property
    def n_params(self) -> int:
        """``2 m + 2 m d + 2 m + d`` real scalars."""
        return _n_flat(self)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the real blocks of :meth:`flatten` (``"Lambda.real"``, ``"Lambda.imag"``, ... ``"D"``)."""
        return _flat_shapes(self)

    def flatten(self) -> np.ndarray:
        """The real and imaginary parts of the complex parameters and ``D``, as one real vector."""
        return _flatten(self)

    def unflatten(self, theta):
        """The model with the parameters ``theta`` (layout of :meth:`flatten`)."""
        return dataclasses.replace(self, **_unflatten(self, theta))


@dataclass(frozen=True, eq=False)
class DiagonalSSM(_ComplexFlatParams):
    """Continuous-time diagonal linear SSM ``dh/dt = Lambda h + B x``, ``y = Re(C^T h) + D^T x``.

    Parameters
    ----------
    Lambda : array_like of complex, shape (m,)
        Diagonal state matrix; every ``Re Lambda_j < 0``.
    B : array_like of complex, shape (m, d)
    C : array_like of complex, shape (m,)
    D : array_like, shape (d,)
        Real feed-through.

    Notes
    -----
    Equations and memory identities in the module docstring.
    """

    Lambda: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray

    def __post_init__(self):
        _check_io(self, "Lambda")
        bad = self.Lambda.real >= 0
        if np.any(bad):
            j = int(np.argmax(bad))
            raise ValueError(f"`Lambda` must have Re(Lambda) < 0 (a stable diagonal); got Lambda[{j}] = {self.Lambda[j]}.")

    @property
    def hidden(self) -> int:
        """State width m."""
        return self.Lambda.size

    @property
    def inputs(self) -> int:
        """Input dimension d."""
        return self.B.shape[1]

    @classmethod
    def random(cls, hidden: int, inputs: int = 1, *, decay=(0.1, 1.0), max_frequency: float = np.pi,
               feedthrough: bool = False, rng=None) -> "DiagonalSSM":
        """A random stable diagonal SSM.

        ``Re Lambda`` is ``-exp(u)`` with u uniform on ``[log decay[0], log decay[1]]``,
        ``Im Lambda`` uniform on ``[-max_frequency, max_frequency]``; ``B`` and ``C``
        have i.i.d. complex normal entries of variance ``1/d`` and ``1/m``;
        ``D`` is N(0, 1) if ``feedthrough`` else zero.
        """
        m = check_int("hidden", hidden, minimum=1)
        d = check_int("inputs", inputs, minimum=1)
        lo, hi = (check_positive("decay[0]", decay[0]), check_positive("decay[1]", decay[1]))
        if lo > hi:
            raise ValueError(f"`decay` must be an interval (lo, hi) with 0 < lo <= hi; got {decay!r}.")
        rng = check_rng("rng", rng)
        re = -np.exp(rng.uniform(np.log(lo), np.log(hi), m))
        im = rng.uniform(-1.0, 1.0, m) * float(max_frequency)
        B = (rng.standard_normal((m, d)) + 1j * rng.standard_normal((m, d))) / np.sqrt(2 * d)
        C = (rng.standard_normal(m) + 1j * rng.standard_normal(m)) / np.sqrt(2 * m)
        D = rng.standard_normal(d) if feedthrough else np.zeros(d)
        return cls(re + 1j * im, B, C, D)

    def _times(self, t) -> np.ndarray:
        t = as_float_array("t", t, ndim=1)
        if np.any(t < 0):
            raise ValueError(f"`t` must be non-negative; got min(t) = {t.min()}.")
        return t

    def kernel(self, t) -> np.ndarray:
        """Impulse response ``K(t) = Re(C^T diag(exp(Lambda t)) B)`` at times ``t >= 0``, shape (n, d)."""
        t = self._times(t)
        E = np.exp(np.outer(t, self.Lambda))  # (n, m)
        return ((E * self.C) @ self.B).real

    def step_response(self, t) -> np.ndarray:
        """Response to the unit step in each input channel, ``int_0^t K + D``, shape (n, d).

        ``Re(C^T diag(expm1(Lambda t) / Lambda) B) + D`` (``expm1`` keeps small ``t`` accurate).
        """
        t = self._times(t)
        z = np.outer(t, self.Lambda)
        small = np.abs(z) < 1.0
        with np.errstate(invalid="ignore", divide="ignore", under="ignore"):
            # |z| < 1: t * expm1(z)/z, exact also when z = Lambda t underflows to 0 (the response is then t);
            # otherwise expm1(z)/Lambda, which keeps -1/Lambda when z overflows
            phi = np.where(z != 0, np.expm1(z) / np.where(z != 0, z, 1.0), 1.0)
            E = np.where(small, t[:, None] * phi, np.expm1(z) / self.Lambda)
        return ((E * self.C) @ self.B).real + self.D

    def memory(self, t, *, input: str = "heaviside") -> np.ndarray:
        """Memory function ``M(t) = |K(t)|_1`` (Heaviside or impulse input, equal for t > 0), shape (n,).

        Parameters
        ----------
        t : array_like, shape (n,)
            Times ``t > 0`` (at t = 0 the feed-through ``D`` adds a Dirac term to the
            Heaviside memory, which is not represented).
        input : {"heaviside", "impulse"}
        """
        check_choice("input", input, ("heaviside", "impulse"))
        t = self._times(t)
        if np.any(t == 0) and np.any(self.D != 0):
            raise ValueError("`t` must be positive when the feed-through `D` is non-zero (its memory is a Dirac term at t = 0).")
        return np.abs(self.kernel(t)).sum(axis=1)

    @classmethod
    def from_reparam(cls, w, frequency, B, C, D=None, *, reparam: str = "softplus", **params) -> "DiagonalSSM":
        """A model with ``Lambda = f(w) + i * frequency`` for a stable reparameterisation f.

        Parameters
        ----------
        w : array_like, shape (m,)
            Unconstrained parameters of the real parts.
        frequency : array_like, shape (m,)
            Imaginary parts of ``Lambda``.
        B, C, D
            As in the constructor (``D`` defaults to zeros).
        reparam : {"exp", "softplus", "best", "direct"}
            A continuous-time :func:`dynmem.reparam.get_reparam` name; ``params``
            are passed on (``a``, ``b`` for ``"best"``).  ``"direct"`` (f(w) = w)
            is accepted but is only stable for ``w < 0`` (validated).
        """
        from ..reparam import get_reparam

        rp = get_reparam(reparam, **params)
        if rp.discrete:
            raise ValueError(f"`reparam` must be a continuous-time reparameterisation; got {reparam!r}.")
        w = as_float_array("w", w, ndim=1)
        om = as_float_array("frequency", frequency, shape=w.shape)
        import warnings

        with np.errstate(over="ignore", under="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an overflow is refused below, naming `w`
            re = np.asarray(rp.f(w), dtype=float).reshape(w.shape)
        bad = np.flatnonzero(~(np.isfinite(re) & (re < 0))) if reparam != "direct" else np.array([], dtype=int)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"`w` must give a real part f(w) that float64 can hold as a negative number; w[{i}] = "
                             f"{float(w[i])!r} gives f(w) = {float(re[i])!r} under reparam={reparam!r} (|f(w)| "
                             f"{'underflows' if re[i] == 0 else 'overflows'}); choose w in a moderate range.")
        lam = re + 1j * om
        Bv = np.asarray(B)
        return cls(lam, B, C, np.zeros(Bv.shape[1] if Bv.ndim == 2 else 1) if D is None else D)

    # -- the contract ------------------------------------------------------
    #: Linear: one probe amplitude suffices in dynmem.memory.memory_function.
    is_linear = True

    def closed_form_memory(self, t, *, input: str = "heaviside"):
        """``(|K(t)|_1, sign(K(t)))``: memory and maximising input for every input variant (t > 0).

        The ``"reversed"`` input (at rest under x, switched off) gives ``-dy/dt``
        of the Heaviside response, so the same value.
        """
        check_choice("input", input, ("heaviside", "impulse", "reversed"))
        t = self._times(t)
        if np.any(t == 0) and np.any(self.D != 0):
            raise ValueError("`t` must be positive when the feed-through `D` is non-zero (its memory is a Dirac term at t = 0).")
        K = self.kernel(t)
        return np.abs(K).sum(axis=1), np.where(K >= 0, 1.0, -1.0)

    def as_linear(self):
        """The real form as a :class:`~dynmem.models.LinearRNN` (state ``(Re h, Im h)``, width 2m).

        The feed-through ``D`` is dropped: it does not change ``dy/dt`` of a
        Heaviside response, nor any response at t > 0.
        """
        from .rnn import LinearRNN

        A, Br, Cr, _ = self.as_real()
        return LinearRNN(A, Br, Cr)

    def linear_system(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The real form ``(A, Br, Cr^T, D^T)`` of :meth:`as_real` with C and D as rows, shapes (2m, 2m), (2m, d), (1, 2m), (1, d)."""
        A, Br, Cr, D = self.as_real()
        return A, Br, Cr[None, :], D[None, :]

    def as_real(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The same system in real coordinates ``(A, Br, Cr, D)`` with state ``(Re h, Im h)``.

        ``A = [[Re L, -Im L], [Im L, Re L]]`` (2m, 2m), ``Br = [Re B; Im B]`` (2m, d),
        ``Cr = [Re C, -Im C]`` (2m,), so ``y = Cr^T (Re h, Im h) + D^T x``.
        """
        Lr, Li = np.diag(self.Lambda.real), np.diag(self.Lambda.imag)
        A = np.block([[Lr, -Li], [Li, Lr]])
        Br = np.vstack([self.B.real, self.B.imag])
        Cr = np.concatenate([self.C.real, -self.C.imag])
        return A, Br, Cr, self.D.copy()

    # -- parameters (dynmem.models.Parametrized) ---------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        """``("Lambda", "B", "C", "D")``: the flat vector holds real and imaginary parts of the complex ones."""
        return ("Lambda", "B", "C", "D")

    def value_and_grad(self, X, Y, *, dt: float = 1.0, method: str = "zoh", h0=None, loss: str = "mse") -> "SSMGradient":
        """Loss of the discretised model on ``(X, Y)`` and its gradient with respect to ``Lambda, B, C, D``.

        The recurrence is :meth:`discretize` ``(dt, method=method)``; see
        :func:`ssm_value_and_grad` for the loss and the gradient convention.
        """
        return ssm_value_and_grad(self, X, Y, dt=dt, method=method, h0=h0, loss=loss)

    def discretize(self, dt: float, *, method: str = "zoh") -> "DiscreteDiagonalSSM":
        """The recurrence of the ZOH or bilinear discretisation with step ``dt`` (module docstring)."""
        dt = check_positive("dt", dt)
        check_choice("method", method, _METHODS)
        with np.errstate(over="ignore", invalid="ignore"):
            z = self.Lambda * dt
        if not np.all(np.isfinite(z)):
            i = int(np.flatnonzero(~np.isfinite(z))[0])
            raise ValueError(f"`dt` must keep Lambda * dt within float64; got dt = {dt!r}, for which Lambda[{i}] * dt "
                             f"overflows (|Lambda[{i}]| = {abs(self.Lambda[i]):.3g}); use a smaller dt.")
        if method == "zoh":
            lam_bar = np.exp(z)
            b_scale = np.where(z != 0, np.expm1(z) / self.Lambda, dt)
        else:
            lam_bar = (1 + z / 2) / (1 - z / 2)
            b_scale = dt / (1 - z / 2)
        return DiscreteDiagonalSSM(lam_bar, b_scale[:, None] * self.B, self.C, self.D, dt=dt, method=method)


@numba.njit(cache=True)
def _ssm_kernel(lam, Bbar, C, D, X, H):
    """h_{k+1} = lam h_k + Bbar x_k, y_k = Re(C h_{k+1}) + D x_k.

    lam (m,) c16, Bbar (m, d) c16, C (m,) c16, D (d,) f8, X (B, T, d) f8,
    H (B, m) c16 holding h_0 (overwritten with h_T).  Returns Y (B, T).
    """
    nb, T, d = X.shape
    m = lam.size
    Y = np.empty((nb, T))
    for bi in range(nb):
        for k in range(T):
            acc = 0.0
            for j in range(d):
                acc += D[j] * X[bi, k, j]
            for i in range(m):
                u = 0.0j
                for j in range(d):
                    u += Bbar[i, j] * X[bi, k, j]
                h = lam[i] * H[bi, i] + u
                H[bi, i] = h
                acc += C[i].real * h.real - C[i].imag * h.imag
            Y[bi, k] = acc
    return Y


@dataclass(frozen=True, eq=False)
class DiscreteDiagonalSSM(_ComplexFlatParams):
    """Discrete diagonal SSM ``h_{k+1} = Lambda_bar h_k + B_bar x_k``, ``y_k = Re(C^T h_{k+1}) + D^T x_k``.

    Built with :meth:`DiagonalSSM.discretize`; ``dt`` and ``method`` record where it came from.

    Parameters
    ----------
    Lambda_bar : array_like of complex, shape (m,)
        ``|Lambda_bar| < 1`` for a stable recurrence (not required).
    B_bar : array_like of complex, shape (m, d)
    C : array_like of complex, shape (m,)
    D : array_like, shape (d,)
    dt : float
    method : {"zoh", "bilinear"}
    """

    Lambda_bar: np.ndarray
    B_bar: np.ndarray
    C: np.ndarray
    D: np.ndarray
    dt: float = 1.0
    method: str = "zoh"

    def __post_init__(self):
        _check_io(self, "Lambda_bar")
        object.__setattr__(self, "dt", check_positive("dt", self.dt))
        check_choice("method", self.method, _METHODS)

    @property
    def hidden(self) -> int:
        """State width m."""
        return self.Lambda_bar.size

    @property
    def inputs(self) -> int:
        """Input dimension d."""
        return self.B_bar.shape[1]

    # -- the discrete-model contract (flat real state (Re h, Im h)) ---------
    is_linear = True

    @property
    def state_size(self) -> int:
        """2m: the flat state is ``(Re h, Im h)``."""
        return 2 * self.hidden

    def _complex_state(self, S):
        S = as_float_array("S0", S, ndim=2)
        m = self.hidden
        if S.shape[1] != 2 * m:
            raise ValueError(f"`S0` must have shape (k, {2 * m}) (the flat state (Re h, Im h)); got shape {S.shape}.")
        return S[:, :m] + 1j * S[:, m:]

    def outputs(self, X, S0) -> np.ndarray:
        """``y_0 .. y_{T-1}`` for inputs X (k, T, d) from flat states S0 (k, 2m); shape (k, T)."""
        return self.run(X, h0=self._complex_state(S0))[0]

    def readout(self, S) -> np.ndarray:
        """``Re(C^T h)`` of flat states S (k, 2m) (the feed-through needs an input; it is not included)."""
        return (self._complex_state(S) @ self.C).real

    def step(self, S, X) -> np.ndarray:
        """One step ``Lambda_bar h + B_bar x`` on flat states S (k, 2m) and inputs X (k, d); flat, shape (k, 2m)."""
        h = self._complex_state(S)
        X = as_float_array("X", X, ndim=2, shape=(h.shape[0], self.inputs))
        h = h * self.Lambda_bar + X @ self.B_bar.T
        return np.concatenate([h.real, h.imag], axis=1)

    def step_jacobian(self, S, X) -> np.ndarray:
        """The constant ``dF/ds`` of the flat state ``(Re h, Im h)`` at each pair; shape (k, 2m, 2m)."""
        k = self._complex_state(S).shape[0]
        return np.broadcast_to(self.linear_system()[0], (k, 2 * self.hidden, 2 * self.hidden)).copy()

    def step_input_jacobian(self, S, X) -> np.ndarray:
        """The constant ``dF/dx = [Re B_bar; Im B_bar]`` at each pair; shape (k, 2m, d)."""
        k = self._complex_state(S).shape[0]
        return np.broadcast_to(self.linear_system()[1], (k, 2 * self.hidden, self.inputs)).copy()

    def linear_system(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Real ``(A, B, C, D)`` on the flat state ``(Re h, Im h)`` (:class:`~dynmem.models.LinearSystem`).

        ``A = [[Re Lb, -Im Lb], [Im Lb, Re Lb]]``, ``B = [Re B_bar; Im B_bar]``
        and, since ``y_k = Re(C^T h_{k+1}) + D^T x_k``, ``C = c_r^T A`` and
        ``D = c_r^T B + D^T`` with ``c_r = (Re C, -Im C)``.
        """
        Lr, Li = np.diag(self.Lambda_bar.real), np.diag(self.Lambda_bar.imag)
        A = np.block([[Lr, -Li], [Li, Lr]])
        B = np.vstack([self.B_bar.real, self.B_bar.imag])
        c = np.concatenate([self.C.real, -self.C.imag])[None, :]
        return A, B, c @ A, c @ B + self.D[None, :]

    def equilibrium(self, X) -> np.ndarray:
        """Fixed points ``h = (1 - Lambda_bar)^{-1} B_bar x`` for constant inputs X (k, d), flat (k, 2m)."""
        X = as_float_array("X", X, ndim=2)
        if np.any(self.Lambda_bar == 1):
            raise ValueError("`Lambda_bar` must not contain 1 (no isolated fixed point).")
        h = (X @ self.B_bar.T) / (1.0 - self.Lambda_bar)
        return np.concatenate([h.real, h.imag], axis=1)

    # -- a layer of a stack (dynmem.models.SequenceLayer) -------------------
    @property
    def feature_size(self) -> int:
        """Width of the sequence passed up in a stack: 2m, the flat state ``(Re h, Im h)``."""
        return 2 * self.hidden

    def features(self, S) -> np.ndarray:
        """The flat state itself: S (k, 2m) -> (k, 2m)."""
        return as_float_array("S", S, ndim=2, shape=(None, 2 * self.hidden))

    def sequence_forward(self, X, S0=None):
        """Features ``(Re h_k, Im h_k)``, k = 1..T, outputs and tape (:func:`ssm_hidden_forward`)."""
        return ssm_hidden_forward(self, X, S0)

    def sequence_backward(self, passed, dF=None, dy=None):
        """BPTT with cotangents on every state (:func:`ssm_hidden_backward`)."""
        return ssm_hidden_backward(self, passed, dF, dy)

    # -- parameters (dynmem.models.Parametrized) ---------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        """``("Lambda_bar", "B_bar", "C", "D")`` (real and imaginary parts in the flat vector)."""
        return ("Lambda_bar", "B_bar", "C", "D")

    def value_and_grad(self, X, Y, *, h0=None, loss: str = "mse") -> "SSMGradient":
        """Loss on ``(X, Y)`` and its gradient with respect to ``Lambda_bar, B_bar, C, D`` (:func:`ssm_value_and_grad`)."""
        return ssm_value_and_grad(self, X, Y, h0=h0, loss=loss)

    def run(self, X, *, h0=None) -> tuple[np.ndarray, np.ndarray]:
        """Run the recurrence over a batch of sequences.

        Parameters
        ----------
        X : array_like, shape (batch, T, d)
        h0 : array_like of complex, shape (m,) or (batch, m), optional
            Initial state (zeros by default).

        Returns
        -------
        y : ndarray, shape (batch, T)
            ``y_k = Re(C^T h_{k+1}) + D^T x_k``.
        h_final : ndarray of complex, shape (batch, m)

        Raises
        ------
        FloatingPointError
            If the state becomes non-finite (``|Lambda_bar| > 1``).
        """
        X = as_float_array("X", X)
        if X.ndim != 3 or X.shape[2] != self.inputs or X.shape[0] < 1 or X.shape[1] < 1:
            raise ValueError(f"`X` must have shape (batch, T, {self.inputs}) with batch, T >= 1; got shape {X.shape}.")
        nb, m = X.shape[0], self.hidden
        if h0 is None:
            H = np.zeros((nb, m), dtype=np.complex128)
        else:
            h0 = np.asarray(h0)
            if h0.shape not in ((m,), (nb, m)):
                raise ValueError(f"`h0` must have shape ({m},) or ({nb}, {m}); got shape {h0.shape}.")
            H = np.array(np.broadcast_to(_as_complex("h0", h0, h0.shape), (nb, m)), dtype=np.complex128)
        Y = _ssm_kernel(self.Lambda_bar.copy(), self.B_bar.copy(), self.C.copy(), self.D.copy(),
                        kernel_array(X), H)
        if not (np.all(np.isfinite(H)) and np.all(np.isfinite(Y))):
            raise FloatingPointError("the SSM recurrence diverged: the state became non-finite (|Lambda_bar| > 1?).")
        return Y, H

    def forward(self, X, *, h0=None) -> Trajectory:
        """Outputs and every state on inputs X (batch, T, d): :meth:`run` keeping ``h_0 .. h_T``.

        Returns
        -------
        dynmem.recurrences.Trajectory
            ``y`` (batch, T) as :meth:`run` gives it, ``h`` complex (batch, T + 1, m).
        """
        X = as_float_array("X", X)
        if X.ndim != 3 or X.shape[2] != self.inputs or X.shape[0] < 1 or X.shape[1] < 1:
            raise ValueError(f"`X` must have shape (batch, T, {self.inputs}) with batch, T >= 1; got shape {X.shape}.")
        nb, T, m = X.shape[0], X.shape[1], self.hidden
        H = np.zeros((nb, T + 1, m), dtype=np.complex128)
        if h0 is not None:
            h0 = np.asarray(h0)
            if h0.shape not in ((m,), (nb, m)):
                raise ValueError(f"`h0` must have shape ({m},) or ({nb}, {m}); got shape {h0.shape}.")
            H[:, 0] = _as_complex("h0", h0, h0.shape)
        Y = _ssm_forward_store(self.Lambda_bar.copy(), self.B_bar.copy(), self.C.copy(), self.D.copy(),
                               kernel_array(X), H)
        if not (np.all(np.isfinite(H)) and np.all(np.isfinite(Y))):
            raise FloatingPointError("the SSM recurrence diverged: the state became non-finite (|Lambda_bar| > 1?).")
        return Trajectory(y=Y, h=H, model=self, _X=None, _H=None, _S=None, _h0_shape=None)


# ---------------------------------------------------------------------------
# flat parameters and BPTT


def _complex_names(obj):
    return ("Lambda", "B") if isinstance(obj, DiagonalSSM) else ("Lambda_bar", "B_bar")


def _n_flat(obj) -> int:
    m, d = obj.hidden, obj.inputs
    return 2 * m + 2 * m * d + 2 * m + d


def _flat_shapes(obj) -> dict:
    ln, bn = _complex_names(obj)
    m, d = obj.hidden, obj.inputs
    out = {}
    for name, shape in ((ln, (m,)), (bn, (m, d)), ("C", (m,))):
        out[f"{name}.real"] = shape
        out[f"{name}.imag"] = shape
    out["D"] = (d,)
    return out


def _flatten(obj) -> np.ndarray:
    ln, bn = _complex_names(obj)
    parts = []
    for arr in (getattr(obj, ln), getattr(obj, bn), obj.C):
        parts += [arr.real.ravel(), arr.imag.ravel()]
    return np.concatenate(parts + [obj.D.ravel()])


def _unflatten(obj, theta) -> dict:
    theta = as_float_array("theta", theta, ndim=1)
    n = _n_flat(obj)
    if theta.size != n:
        raise ValueError(f"`theta` must have length {n} (n_params of this model); got length {theta.size}.")
    ln, bn = _complex_names(obj)
    out, i = {}, 0
    for name, shape in ((ln, (obj.hidden,)), (bn, (obj.hidden, obj.inputs)), ("C", (obj.hidden,))):
        size = int(np.prod(shape))
        out[name] = (theta[i:i + size] + 1j * theta[i + size:i + 2 * size]).reshape(shape)
        i += 2 * size
    out["D"] = theta[i:].copy()
    return out


_EMPTY_E = np.empty((0, 0, 0), dtype=np.complex128)
_EMPTY_X = np.empty((0, 0, 0))


@numba.njit(cache=True)
def _ssm_forward_store(lam, Bbar, C, D, X, H):
    """Like :func:`_ssm_kernel`, keeping every state: H (B, T+1, m) c16 with H[:, 0] = h_0 set; returns Y (B, T)."""
    nb, T, d = X.shape
    m = lam.size
    Y = np.empty((nb, T))
    for bi in range(nb):
        for k in range(T):
            acc = 0.0
            for j in range(d):
                acc += D[j] * X[bi, k, j]
            for i in range(m):
                u = 0.0j
                for j in range(d):
                    u += Bbar[i, j] * X[bi, k, j]
                h = lam[i] * H[bi, k, i] + u
                H[bi, k + 1, i] = h
                acc += C[i].real * h.real - C[i].imag * h.imag
            Y[bi, k] = acc
    return Y


@numba.njit(cache=True)
def _ssm_backward(lam, C, D, Bbar, X, H, G, E, glam, gB, gC, gD, dh0, dX):
    """BPTT of the diagonal recurrence (formulas in the module docstring); accumulates into glam, gB, gC, gD.

    The one backward sweep of the BPTT door and of the stack layer.  G (B, T)
    holds dL/dy_k; E, empty or (B, T, m) c16, a cotangent ``dL/dh_{k+1}``
    from outside on every state (``dL/dRe + i dL/dIm``), so that
    ``e_k = conj(Lambda_bar) e_{k+1} + g_k conj(C) (+ E_k)``.  dX, empty or
    (B, T, d), receives ``dL/dx_k = Re(B_bar^H e_k) + g_k D`` (D and Bbar
    are read only then); dh0 (B, m) c16 receives dL/dh_0.
    """
    nb, T, d = X.shape
    m = lam.size
    per_state = E.shape[0] > 0
    to_x = dX.shape[0] > 0
    e = np.empty(m, dtype=np.complex128)
    lc = np.conj(lam)
    cc = np.conj(C)
    bc = np.conj(Bbar)
    for bi in range(nb):
        for i in range(m):
            e[i] = 0.0
        for k in range(T - 1, -1, -1):
            g = G[bi, k]
            for j in range(d):
                gD[j] += g * X[bi, k, j]
            for i in range(m):
                ei = lc[i] * e[i] + g * cc[i]
                if per_state:
                    ei += E[bi, k, i]
                e[i] = ei
                glam[i] += np.conj(H[bi, k, i]) * ei
                gC[i] += g * np.conj(H[bi, k + 1, i])
                for j in range(d):
                    gB[i, j] += ei * X[bi, k, j]
            if to_x:  # e holds e_k now
                for j in range(d):
                    dX[bi, k, j] = g * D[j]
                for i in range(m):
                    for j in range(d):
                        dX[bi, k, j] += (bc[i, j] * e[i]).real
        for i in range(m):
            dh0[bi, i] = lc[i] * e[i]


@dataclass(frozen=True, eq=False)
class SSMGradient:
    """A loss and its gradient (:func:`ssm_value_and_grad`).

    Attributes
    ----------
    loss : float
    grad : dict
        ``name -> dL/dname`` for the model's :attr:`param_names` (complex
        arrays hold ``dL/dRe + i dL/dIm``).
    flat : ndarray, shape (n_params,)
        The gradient in the order of ``model.flatten()``.
    dh0 : ndarray of complex
        ``dL/dh_0``, shape (m,) when ``h0`` was None or shared, else (batch, m).
    """

    loss: float
    grad: dict
    flat: np.ndarray
    dh0: np.ndarray


_LOSSES = ("mse", "sse")


def ssm_value_and_grad(model, X, Y, *, dt: float | None = None, method: str | None = None, h0=None,
                       loss: str = "mse") -> SSMGradient:
    """Loss on the outputs of a diagonal SSM and its gradient (hand-written BPTT in numba).

    Parameters
    ----------
    model : DiscreteDiagonalSSM or DiagonalSSM
        A continuous model is discretised with ``dt`` (default 1) and
        ``method`` (default ``"zoh"``) and the gradient is taken with respect
        to its continuous parameters ``Lambda, B, C, D`` through the
        discretisation (chain rule in the module docstring).
    X : array_like, shape (batch, T, d)
    Y : array_like, shape (batch, T)
        Targets for ``y_k = Re(C^T h_{k+1}) + D^T x_k``.
    h0 : array_like of complex, shape (m,) or (batch, m), optional
    loss : {"mse", "sse"}
        ``mean (y - Y)^2`` or ``0.5 sum (y - Y)^2``.

    Returns
    -------
    SSMGradient

    Raises
    ------
    FloatingPointError
        If the recurrence diverges or the gradient is non-finite.
    """
    check_choice("loss", loss, _LOSSES)
    if isinstance(model, DiagonalSSM):
        dt = 1.0 if dt is None else dt
        method = "zoh" if method is None else method
        disc = model.discretize(dt, method=method)
    elif isinstance(model, DiscreteDiagonalSSM):
        if dt is not None or method is not None:
            raise ValueError("`dt` and `method` apply to a DiagonalSSM only; a DiscreteDiagonalSSM is already discrete.")
        disc = model
    else:
        raise TypeError(f"`model` must be a DiagonalSSM or a DiscreteDiagonalSSM; got {describe(model)}.")
    X = as_float_array("X", X)
    if X.ndim != 3 or X.shape[2] != disc.inputs or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"`X` must have shape (batch, T, {disc.inputs}) with batch, T >= 1; got shape {X.shape}.")
    nb, T, _ = X.shape
    m = disc.hidden
    Y = as_float_array("Y", Y, shape=(nb, T))
    H = np.zeros((nb, T + 1, m), dtype=np.complex128)
    shared = True
    if h0 is not None:
        h0 = np.asarray(h0)
        if h0.shape not in ((m,), (nb, m)):
            raise ValueError(f"`h0` must have shape ({m},) or ({nb}, {m}); got shape {h0.shape}.")
        shared = h0.shape == (m,)
        H[:, 0] = _as_complex("h0", h0, h0.shape)
    X = kernel_array(X)  # one kernel signature: a user's read-only X is copied
    lam, Bbar, C, D = disc.Lambda_bar.copy(), disc.B_bar.copy(), disc.C.copy(), disc.D.copy()
    yk = _ssm_forward_store(lam, Bbar, C, D, X, H)
    if not (np.all(np.isfinite(H[:, -1])) and np.all(np.isfinite(yk))):
        if h0 is not None and np.max(np.abs(H[:, 0])) > 1e150:
            raise FloatingPointError(f"the SSM state became non-finite from `h0` (max|h0| = "
                                     f"{float(np.max(np.abs(H[:, 0]))):.3g}): rescale `h0`.")
        raise FloatingPointError("the SSM recurrence diverged: the state became non-finite (|Lambda_bar| > 1?).")
    try:
        value, G = sequence_loss(yk, Y, loss)
    except FloatOverflowError:
        big_y, big_out = float(np.max(np.abs(Y))), float(np.max(np.abs(yk)))
        if big_out > big_y:  # the model's outputs, not the targets, are out of range
            cause = ("`h0` (max|h0| = %.3g)" % float(np.max(np.abs(H[:, 0])))
                     if h0 is not None and np.max(np.abs(H[:, 0])) > 1e150 else "the outputs (`X` or the parameters)")
            fix = f"rescale {cause.split(' (')[0]}"
        else:
            cause, fix = "`Y`", "rescale `Y`"
        # y and Y are finite here, so the loss overflowed to inf (never nan)
        raise FloatOverflowError(f"the loss overflowed float64 ({loss} = inf): max|Y| = {big_y:.3g}, "
                                 f"max|y| = {big_out:.3g}; the cause is {cause}: {fix}.") from None
    glam = np.zeros(m, dtype=np.complex128)
    gB = np.zeros((m, disc.inputs), dtype=np.complex128)
    gC = np.zeros(m, dtype=np.complex128)
    gD = np.zeros(disc.inputs)
    dh0 = np.empty((nb, m), dtype=np.complex128)
    _ssm_backward(lam, C, D, Bbar, X, H, np.ascontiguousarray(G), _EMPTY_E, glam, gB, gC, gD, dh0, _EMPTY_X)
    if isinstance(model, DiagonalSSM):
        z = model.Lambda * dt
        if method == "zoh":
            ez = np.exp(z)
            s = np.expm1(z) / model.Lambda
            dlam = dt * ez
            ds = (dt * ez - s) / model.Lambda
        else:
            q = 1.0 - z / 2
            s = dt / q
            dlam = dt / (q * q)
            ds = dt * dt / (2.0 * q * q)
        gL = np.conj(dlam) * glam + np.sum(np.conj(ds[:, None] * model.B) * gB, axis=1)
        grad = {"Lambda": gL, "B": np.conj(s)[:, None] * gB, "C": gC, "D": gD}
    else:
        grad = {"Lambda_bar": glam, "B_bar": gB, "C": gC, "D": gD}
    parts = []
    for name in list(grad)[:3]:
        parts += [grad[name].real.ravel(), grad[name].imag.ravel()]
    flat = np.concatenate(parts + [gD])
    if not (np.all(np.isfinite(flat)) and np.all(np.isfinite(dh0))):
        raise FloatingPointError("BPTT produced a non-finite gradient (exploding gradients through the recurrence).")
    return SSMGradient(loss=value, grad=grad, flat=flat, dh0=dh0.sum(axis=0) if shared else dh0)


def ssm_reparam_value_and_grad(w, frequency, B, C, X, Y, D=None, *, reparam: str = "softplus", dt: float = 1.0,
                               method: str = "zoh", h0=None, loss: str = "mse", **params) -> SSMGradient:
    """Loss and gradient of the SSM ``Lambda = f(w) + i frequency`` (:meth:`DiagonalSSM.from_reparam`).

    The model is ``DiagonalSSM.from_reparam(w, frequency, B, C, D, reparam=reparam, **params)``,
    discretised with ``dt`` and ``method``; the gradient is
    :func:`ssm_value_and_grad`'s with respect to ``Lambda`` pulled back by
    ``dL/dw = f'(w) Re(dL/dLambda)``, ``dL/dfrequency = Im(dL/dLambda)``, so
    every real ``w`` is a stable model and gradient descent on ``w`` needs
    no projection ([SSM]).

    Returns
    -------
    SSMGradient
        ``grad`` holds ``"w"``, ``"frequency"``, ``"B"``, ``"C"``, ``"D"``; ``flat`` is
        ``(w, frequency, Re B, Im B, Re C, Im C, D)``.
    """
    from ..reparam import get_reparam

    model = DiagonalSSM.from_reparam(w, frequency, B, C, D, reparam=reparam, **params)
    res = ssm_value_and_grad(model, X, Y, dt=dt, method=method, h0=h0, loss=loss)
    w = as_float_array("w", w, ndim=1)
    gL = res.grad["Lambda"]
    gw = np.asarray(get_reparam(reparam, **params).fprime(w), dtype=float).reshape(w.shape) * gL.real
    grad = {"w": gw, "frequency": gL.imag.copy(), "B": res.grad["B"], "C": res.grad["C"], "D": res.grad["D"]}
    flat = np.concatenate([gw, gL.imag, res.flat[2 * model.hidden:]])
    return SSMGradient(loss=res.loss, grad=grad, flat=flat, dh0=res.dh0)


# ---------------------------------------------------------------------------
# the discrete SSM as a layer of a stack (dynmem.stack)


def ssm_hidden_forward(model, X, S0=None):
    """A :class:`DiscreteDiagonalSSM` as a stack layer: the run with the flat states as features.

    Parameters
    ----------
    model : DiscreteDiagonalSSM
    X : array_like, shape (B, T, d)
    S0 : array_like, shape (B, 2m) or (2m,), optional
        Flat initial state ``(Re h_0, Im h_0)`` (zeros by default).

    Returns
    -------
    dynmem.models.LayerPass
        ``features = (Re h_k, Im h_k)``, k = 1..T (B, T, 2m), ``y`` (B, T).
    """
    if not isinstance(model, DiscreteDiagonalSSM):
        raise TypeError(f"`model` must be a DiscreteDiagonalSSM (discretise a DiagonalSSM first); got {describe(model)}.")
    X = as_float_array("X", X)
    if X.ndim != 3 or X.shape[2] != model.inputs or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"`X` must have shape (batch, T, {model.inputs}) with batch, T >= 1; got shape {X.shape}.")
    nb, T, _ = X.shape
    m = model.hidden
    H = np.zeros((nb, T + 1, m), dtype=np.complex128)
    if S0 is not None:
        S0 = as_float_array("S0", S0, ndim=(1, 2))
        if S0.shape not in ((2 * m,), (nb, 2 * m)):
            raise ValueError(f"`S0` must have shape ({2 * m},) or ({nb}, {2 * m}) (the flat state (Re h, Im h)); "
                             f"got shape {S0.shape}.")
        H[:, 0] = S0[..., :m] + 1j * S0[..., m:]
    X = kernel_array(X)  # the one signature of the kernels (a read-only X is copied)
    y = _ssm_forward_store(model.Lambda_bar.copy(), model.B_bar.copy(), model.C.copy(), model.D.copy(), X, H)
    if not (np.all(np.isfinite(H)) and np.all(np.isfinite(y))):
        raise FloatingPointError("the SSM recurrence diverged: the state became non-finite (|Lambda_bar| > 1?).")
    F = np.concatenate([H[:, 1:].real, H[:, 1:].imag], axis=2)
    return LayerPass(features=F, y=y, tape=(model, X, H))


def ssm_hidden_backward(model, passed, dF=None, dy=None):
    """BPTT of :func:`ssm_hidden_forward` with cotangents on every flat state and on the outputs.

    Parameters
    ----------
    model : DiscreteDiagonalSSM
    passed : dynmem.models.LayerPass
        From :func:`ssm_hidden_forward` with this model.
    dF : array_like, shape (B, T, 2m), optional
        ``dL/d(Re h_{k+1}, Im h_{k+1})``.
    dy : array_like, shape (B, T), optional
        ``dL/dy_k``.

    Returns
    -------
    dynmem.models.LayerGradient
        ``flat`` in ``model.flatten()`` order ``(Re Lb, Im Lb, Re B_bar, Im B_bar, Re C, Im C, D)``,
        ``dX`` (B, T, d), ``dS0`` (B, 2m).
    """
    tape = getattr(passed, "tape", None)
    if not (isinstance(tape, tuple) and len(tape) == 3 and tape[0] is model):
        raise ValueError(f"`passed` must be the LayerPass of ssm_hidden_forward() with this same `model`; "
                         f"got {describe(passed)}.")
    _, X, H = tape
    nb, T, d = X.shape
    m = model.hidden
    E = np.zeros((nb, T, m), dtype=np.complex128)
    if dF is not None:
        dF = as_float_array("dF", dF, shape=(nb, T, 2 * m))
        E += dF[..., :m] + 1j * dF[..., m:]
    G = np.zeros((nb, T)) if dy is None else np.ascontiguousarray(as_float_array("dy", dy, shape=(nb, T)))
    glam = np.zeros(m, dtype=np.complex128)
    gB = np.zeros((m, d), dtype=np.complex128)
    gC = np.zeros(m, dtype=np.complex128)
    gD = np.zeros(d)
    dh0 = np.empty((nb, m), dtype=np.complex128)
    dX = np.empty((nb, T, d))
    _ssm_backward(model.Lambda_bar.copy(), model.C.copy(), model.D.copy(), model.B_bar.copy(), X, H, G, E,
                  glam, gB, gC, gD, dh0, dX)
    flat = np.concatenate([glam.real, glam.imag, gB.real.ravel(), gB.imag.ravel(), gC.real, gC.imag, gD])
    dS0 = np.concatenate([dh0.real, dh0.imag], axis=1)
    if not (np.all(np.isfinite(flat)) and np.all(np.isfinite(dX)) and np.all(np.isfinite(dS0))):
        raise FloatingPointError("BPTT produced a non-finite gradient (exploding gradients through the recurrence).")
    return LayerGradient(flat=flat, dX=dX, dS0=dS0)
