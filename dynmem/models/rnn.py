"""Recurrent models as frozen dataclasses of float64 arrays.

Continuous time ([WLL] eq. 1, docs/theory.md section 1)::

    CTRNN        dh/dt = sigma(W h + U x(t) + b) - leak * h,   y = c^T h
    LinearRNN    dh/dt = W h + U x(t),                          y = c^T h

Discrete time::

    DiscreteRNN  h_{k+1} = sigma(W h_k + U x_k + b),                          y_k = c^T h_{k+1}
    EulerRNN     h_{k+1} = h_k + dt * (sigma(W h_k + U x_k + b) - leak * h_k)  (forward Euler of a CTRNN)

Step k reads ``x_k`` and emits ``y_k = c^T h_{k+1}`` (as ``torch.nn.RNN`` does).

Shapes: ``W`` (m, m), ``U`` (m, d), ``b`` (m,), ``c`` (m,) for hidden width m
and input dimension d; the output is scalar.  The arrays are copied on
construction and made read-only, so a model never changes after it is built;
derive new models with :meth:`replace` or :meth:`unflatten`.

Gradients computed by :mod:`dynmem.recurrences` and :mod:`dynmem.adjoint`
are returned as models of the same class whose arrays hold the derivatives,
so ``grad.flatten()`` lines up with ``model.flatten()``.

The model contract (the protocols these classes meet) is :mod:`dynmem.models.contract`.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import scipy.linalg
import scipy.optimize

from .._validation import as_float_array, as_square_matrix, check_choice, check_finite, check_int, check_nonnegative, check_positive, describe, check_rng
from ..activations import available_activations, get_activation
from ..recurrences import GradientResult, Trajectory, backward, forward, hidden_backward, outputs_many, value_and_grad
from ..spectra import spectral_abscissa
from .contract import LayerGradient, LayerPass, ParamArrays


__all__ = ["CTRNN", "LinearRNN", "DiscreteRNN", "EulerRNN", "recurrence_coefficients"]


class _ParamModel(ParamArrays):
    """The RNNs' arrays: ``W`` (m, m), ``U`` (m, d) and, where trainable, ``b`` and ``c`` (m,)."""

    def _check_params(self) -> None:
        W = as_square_matrix("W", self.W, copy=True, rows_hint=" (hidden width m >= 1)")
        m = W.shape[0]
        U = as_float_array("U", self.U, ndim=2, copy=True)
        if U.shape[0] != m:
            raise ValueError(f"`U` must have shape ({m}, d) to match `W` of shape {W.shape}; got shape {U.shape}.")
        if U.shape[1] < 1:
            raise ValueError(f"`U` must have at least one column (input dimension d >= 1); got shape {U.shape}.")
        arrays = {"W": W, "U": U}
        for name in ("b", "c"):
            if name in self._param_names:
                arrays[name] = as_float_array(name, getattr(self, name), shape=(m,), copy=True)
        for name, arr in arrays.items():
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)

    # -- sizes -----------------------------------------------------------
    @property
    def hidden(self) -> int:
        """Hidden width m."""
        return self.W.shape[0]

    @property
    def inputs(self) -> int:
        """Input dimension d."""
        return self.U.shape[1]

    @property
    def act(self):
        """The activation's registry record (:class:`dynmem.activations.Activation`), resolved once at construction."""
        return self._act

    def __repr__(self) -> str:
        extra = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.name not in self._param_names]
        return f"{type(self).__name__}(hidden={self.hidden}, inputs={self.inputs}{''.join(', ' + e for e in extra)})"


def _check_activation(obj) -> None:
    act = obj.activation
    if not isinstance(act, str):
        act = get_activation(act).name
    check_choice("activation", act, available_activations())
    object.__setattr__(obj, "activation", act)
    object.__setattr__(obj, "_act", get_activation(act))  # resolved once, here


def _random_matrix(m: int, rng: np.random.Generator, normal: bool) -> np.ndarray:
    A = rng.standard_normal((m, m)) / np.sqrt(m)
    if normal:
        A = 0.5 * (A + A.T)
    return A


def _random_io(m: int, d: int, rng: np.random.Generator, input_scale: float, bias_scale: float):
    """``U`` ~ N(0, input_scale^2 / d), ``b`` ~ N(0, bias_scale^2), ``c`` ~ N(0, 1/m)."""
    U = rng.standard_normal((m, d)) * (check_nonnegative("input_scale", input_scale) / np.sqrt(d))
    b = rng.standard_normal(m) * check_nonnegative("bias_scale", bias_scale)
    c = rng.standard_normal(m) / np.sqrt(m)
    return U, b, c


# Above this |alpha|, the shift A - s I rounds away the random part of W (entries of order 1)
# beyond 8 significant digits: refuse rather than build a model that is s I to rounding.
_MAX_ABSCISSA = 1e8


def _check_abscissa(value) -> float:
    target = check_finite("spectral_abscissa", value)
    if abs(target) > _MAX_ABSCISSA:
        raise ValueError(
            f"`spectral_abscissa` must satisfy |spectral_abscissa| <= {_MAX_ABSCISSA:g} (a larger shift of the "
            f"order-1 random matrix would round its entries away); got {target!r}. Scale time instead: "
            f"W / s has abscissa alpha / s."
        )
    return target


def _shift_to_abscissa(A: np.ndarray, target: float) -> np.ndarray:
    # alpha(A - s I) = alpha(A) - s, so the shift puts the abscissa exactly at `target`.
    W = A - (spectral_abscissa(A) - target) * np.eye(A.shape[0])
    got = spectral_abscissa(W)
    if not abs(got - target) <= 1e-9 * max(1.0, abs(target)):  # pragma: no cover - a safety net
        raise FloatingPointError(f"could not place the spectral abscissa at {target!r}: got {got!r}.")
    return W


@dataclass(frozen=True, eq=False, repr=False)
class CTRNN(_ParamModel):
    """Continuous-time RNN ``dh/dt = sigma(W h + U x + b) - leak h``, ``y = c^T h``.

    Parameters
    ----------
    W : array_like, shape (m, m)
        Recurrent matrix.
    U : array_like, shape (m, d)
        Input matrix.
    b : array_like, shape (m,)
        Bias.
    c : array_like, shape (m,)
        Read-out vector.
    activation : str
        One of :func:`dynmem.activations.available_activations`.
    leak : float
        Optional leak ``alpha >= 0`` (docs/theory.md section 1; [WLL] has none, so the default is 0).

    Notes
    -----
    [WLL] eq. (1).  The zero-input equilibrium is ``h = 0`` when ``b = 0``.
    """

    W: np.ndarray
    U: np.ndarray
    b: np.ndarray
    c: np.ndarray
    activation: str = "tanh"
    leak: float = 0.0

    _param_names: ClassVar[tuple[str, ...]] = ("W", "U", "b", "c")

    def __post_init__(self):
        self._check_params()
        _check_activation(self)
        object.__setattr__(self, "leak", check_nonnegative("leak", self.leak))

    @classmethod
    def random(
        cls,
        hidden: int,
        inputs: int = 1,
        *,
        spectral_abscissa: float = -0.5,
        activation: str = "tanh",
        normal: bool = False,
        input_scale: float = 1.0,
        bias_scale: float = 0.0,
        rng=None,
    ) -> "CTRNN":
        """A random CTRNN whose ``W`` has the prescribed spectral abscissa.

        ``W = A - (alpha(A) - spectral_abscissa) I`` with ``A`` Gaussian of
        variance ``1/m`` (symmetrised when ``normal=True``), so
        ``max Re lambda(W) = spectral_abscissa`` exactly (up to rounding).
        ``U`` has entries N(0, input_scale^2 / d), ``c`` N(0, 1/m) and ``b``
        N(0, bias_scale^2) (zero by default, so ``h = 0`` is the rest state).
        """
        m = check_int("hidden", hidden, minimum=1)
        d = check_int("inputs", inputs, minimum=1)
        target = _check_abscissa(spectral_abscissa)
        rng = check_rng("rng", rng)
        W = _shift_to_abscissa(_random_matrix(m, rng, normal), target)
        U, b, c = _random_io(m, d, rng, input_scale, bias_scale)
        return cls(W, U, b, c, activation=activation)

    def as_ctrnn(self) -> "CTRNN":
        """The model itself (its CTRNN form, :class:`~dynmem.models.contract.CTRNNForm`)."""
        return self

    def discretize(self, dt: float) -> "EulerRNN":
        """The forward-Euler recurrence ``h_{k+1} = h_k + dt * (sigma(W h_k + U x_k + b) - leak h_k)``.

        This is the residual form that [WLL]'s code runs (docs/theory.md section 1);
        forward Euler adds a spurious instability when ``dt * |lambda(W)|`` is large.
        """
        dt = check_positive("dt", dt)
        return EulerRNN(self.W, self.U, self.b, self.c, dt=dt, activation=self.activation, leak=self.leak)

    # -- the continuous-model contract ------------------------------------
    def _drive(self, X) -> np.ndarray:
        return np.asarray(X, dtype=float) @ np.asarray(self.U).T + self.b

    def vector_field(self, H, X) -> np.ndarray:
        """``sigma(W h + U x + b) - leak h`` for states H (k, m) and inputs X (k, d); shape (k, m)."""
        H = np.asarray(H, dtype=float)
        Z = H @ np.asarray(self.W).T
        Z += self._drive(X)
        F = self.act.fn(Z)
        if self.leak:
            F = F - self.leak * H
        return F

    def jacobian(self, H, X) -> np.ndarray:
        """``diag(sigma'(W h + U x + b)) W - leak I`` at each pair; shape (k, m, m)."""
        H = np.asarray(H, dtype=float)
        S = self.act.deriv(H @ np.asarray(self.W).T + self._drive(X))
        J = S[:, :, None] * np.asarray(self.W)[None]
        if self.leak:
            J = J - self.leak * np.eye(self.hidden)
        return J

    def impulse_kick(self, X) -> np.ndarray:
        """``U x`` for each row of X (k, d): the state jump of an impulse of area x in the input term."""
        return np.asarray(X, dtype=float) @ np.asarray(self.U).T

    def equilibrium(self, X) -> np.ndarray:
        """Rest states ``sigma(W h + U x + b) = leak h`` for constant inputs X (k, d); shape (k, m).

        A zero drive ``U x + b = 0`` gives ``h = 0`` (every activation vanishes at
        0).  Without leak the rest state solves the linear system
        ``W h + U x + b = 0``; with leak it is found by ``scipy.optimize.root``.

        Raises
        ------
        ValueError
            If ``W`` is numerically singular (leak = 0).
        dynmem.SimulationError
            If the root finder fails (leak > 0).
        """
        drive = self._drive(np.atleast_2d(X))
        out = np.zeros_like(drive)
        rows = np.flatnonzero(np.any(drive != 0, axis=1))
        if rows.size == 0:
            return out
        W, m = np.array(self.W), self.hidden
        if self.leak == 0.0:
            cond = np.linalg.cond(W)
            if not np.isfinite(cond) or cond > 1e12:
                raise ValueError(
                    f"`model.W` must be invertible to find the equilibrium W h + U x + b = 0; its condition number is "
                    f"{cond:.3g}."
                )
            lu = scipy.linalg.lu_factor(W, check_finite=False)
            out[rows] = -scipy.linalg.lu_solve(lu, drive[rows].T).T
            return out
        from ..errors import SimulationError

        act, leak = self.act, self.leak
        for i in rows:
            p = drive[i]
            sol = scipy.optimize.root(lambda h: act.fn(W @ h + p) - leak * h, np.zeros(m),
                                      jac=lambda h: act.deriv(W @ h + p)[:, None] * W - leak * np.eye(m), method="hybr")
            if not sol.success:
                raise SimulationError(f"could not find the equilibrium of the leaky CTRNN: {sol.message}")
            out[i] = sol.x
        return out

    def linearize(self, h_star=None) -> "LinearRNN":
        """The linearisation at a zero-input rest state ``h*`` (default: :meth:`equilibrium` of x = 0).

        ``d(h - h*)/dt = (diag(s) W - leak I)(h - h*) + diag(s) U x`` with
        ``s = sigma'(W h* + b)``, as a :class:`LinearRNN` in the deviation ``h - h*``.
        """
        h = self.equilibrium(np.zeros((1, self.inputs)))[0] if h_star is None else as_float_array(
            "h_star", h_star, shape=(self.hidden,))
        s = self.act.deriv(np.asarray(self.W) @ h + self.b)
        J = s[:, None] * np.asarray(self.W) - self.leak * np.eye(self.hidden)
        return LinearRNN(J, s[:, None] * np.asarray(self.U), self.c)

    def as_linear(self) -> "LinearRNN | None":
        """The identical :class:`LinearRNN` when the model is linear (identity activation, b = 0), else None."""
        if self.activation != "identity" or np.any(self.b):
            return None
        if self.leak == 0:
            return LinearRNN(self.W, self.U, self.c)
        return LinearRNN(np.array(self.W) - self.leak * np.eye(self.hidden), self.U, self.c)


@dataclass(frozen=True, eq=False, repr=False)
class LinearRNN(_ParamModel):
    """Linear RNN ``dh/dt = W h + U x``, ``y = c^T h`` (sigma = identity, b = 0).

    Its output is ``y(t) = int_0^inf rho(s)^T x(t - s) ds`` with
    ``rho(s)^T = c^T e^{W s} U`` ([LHEL]; docs/theory.md section 1).
    """

    W: np.ndarray
    U: np.ndarray
    c: np.ndarray

    _param_names: ClassVar[tuple[str, ...]] = ("W", "U", "c")
    activation: ClassVar[str] = "identity"
    leak: ClassVar[float] = 0.0
    _act: ClassVar = get_activation("identity")

    def __post_init__(self):
        self._check_params()

    @property
    def b(self) -> np.ndarray:
        """The (zero) bias, for code that treats every model alike."""
        return np.zeros(self.hidden)

    @classmethod
    def random(cls, hidden: int, inputs: int = 1, *, spectral_abscissa: float = -0.5, normal: bool = False,
               input_scale: float = 1.0, rng=None) -> "LinearRNN":
        """A random linear RNN with ``alpha(W) = spectral_abscissa`` (see :meth:`CTRNN.random`)."""
        m = check_int("hidden", hidden, minimum=1)
        d = check_int("inputs", inputs, minimum=1)
        target = _check_abscissa(spectral_abscissa)
        rng = check_rng("rng", rng)
        W = _shift_to_abscissa(_random_matrix(m, rng, normal), target)
        U, _, c = _random_io(m, d, rng, input_scale, 0.0)
        return cls(W, U, c)

    def as_ctrnn(self) -> CTRNN:
        """The same system as a :class:`CTRNN` with identity activation and zero bias."""
        return CTRNN(self.W, self.U, np.zeros(self.hidden), self.c, activation="identity")

    def discretize(self, dt: float) -> "EulerRNN":
        """Forward Euler ``h_{k+1} = h_k + dt (W h_k + U x_k)`` (see :meth:`CTRNN.discretize`)."""
        return self.as_ctrnn().discretize(dt)

    # -- the continuous-model contract (as a CTRNN with identity activation) --
    def vector_field(self, H, X) -> np.ndarray:
        """``W h + U x`` for states H (k, m) and inputs X (k, d); shape (k, m)."""
        return np.asarray(H, dtype=float) @ np.asarray(self.W).T + np.asarray(X, dtype=float) @ np.asarray(self.U).T

    def jacobian(self, H, X) -> np.ndarray:
        """``W`` for each pair; shape (k, m, m)."""
        return np.broadcast_to(np.asarray(self.W), (np.shape(H)[0], self.hidden, self.hidden)).copy()

    def impulse_kick(self, X) -> np.ndarray:
        """``U x`` for each row of X (k, d)."""
        return np.asarray(X, dtype=float) @ np.asarray(self.U).T

    def equilibrium(self, X) -> np.ndarray:
        """Rest states ``W h + U x = 0`` for constant inputs X (k, d); see :meth:`CTRNN.equilibrium`."""
        return self.as_ctrnn().equilibrium(X)

    def linearize(self, h_star=None) -> "LinearRNN":
        """The model itself (it is linear; ``h_star`` is ignored)."""
        return self

    def linear_system(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(W, U, c^T, 0)``: shapes (m, m), (m, d), (1, m), (1, d) (:class:`LinearSystem`)."""
        return np.array(self.W), np.array(self.U), np.array(self.c)[None, :], np.zeros((1, self.inputs))

    def as_linear(self) -> "LinearRNN":
        """The model itself."""
        return self

    def kernel(self, t) -> np.ndarray:
        """The memory kernel ``rho(t)^T = c^T e^{W t} U`` at times ``t >= 0``.

        Parameters
        ----------
        t : array_like, shape (n,)

        Returns
        -------
        ndarray, shape (n, d)
            Computed with :func:`scipy.linalg.expm` at each time.  Where
            ``e^{W t}`` overflows (non-Hurwitz ``W``, large ``t``) the growth
            ``e^{alpha t}`` is factored out and the entry is evaluated in log
            space: a value beyond float64 is ``+-inf`` with a
            :class:`~dynmem.errors.DynmemOverflowWarning`, never NaN.
        """
        t = as_float_array("t", t, ndim=1)
        if np.any(t < 0):
            raise ValueError(f"`t` must be non-negative; got min(t) = {t.min()}.")
        if not t.size:
            return np.zeros((0, self.inputs))
        W, c, U = np.array(self.W), np.array(self.c), np.array(self.U)
        out = np.empty((t.size, self.inputs))
        alpha = None
        n_inf = 0
        for i, ti in enumerate(t):
            with np.errstate(over="ignore", invalid="ignore"):
                k = c @ scipy.linalg.expm(W * ti) @ U
            if np.all(np.isfinite(k)):
                out[i] = k
                continue
            if alpha is None:
                alpha = spectral_abscissa(W)
            if alpha <= 0:
                raise FloatingPointError(f"e^(W t) overflows float64 at t = {float(ti)!r} although alpha(W) = "
                                         f"{alpha:.6g} <= 0 (transient growth of a non-normal W).")
            with np.errstate(over="ignore", invalid="ignore"):
                k = c @ scipy.linalg.expm((W - alpha * np.eye(self.hidden)) * ti) @ U
            if not np.all(np.isfinite(k)):
                raise FloatingPointError(f"e^(W t) overflows float64 at t = {float(ti)!r} even after factoring "
                                         f"out e^(alpha t), alpha(W) = {alpha:.6g}.")
            with np.errstate(divide="ignore", over="ignore"):
                mag = np.where(k != 0, np.exp(np.log(np.where(k != 0, np.abs(k), 1.0)) + alpha * ti), 0.0)
            out[i] = np.sign(k) * mag
            n_inf += int(np.sum(np.isinf(mag)))
        if n_inf:
            from ..errors import warn_overflow

            warn_overflow("LinearRNN.kernel", n_inf, out.size, "non-Hurwitz W at large t")
        return out


@dataclass(frozen=True, eq=False, repr=False)
class DiscreteRNN(_ParamModel):
    """Discrete-time RNN ``h_{k+1} = sigma(W h_k + U x_k + b)``, ``y_k = c^T h_{k+1}``.

    Parameters as in :class:`CTRNN`.
    """

    W: np.ndarray
    U: np.ndarray
    b: np.ndarray
    c: np.ndarray
    activation: str = "tanh"

    _param_names: ClassVar[tuple[str, ...]] = ("W", "U", "b", "c")

    def __post_init__(self):
        self._check_params()
        _check_activation(self)

    @classmethod
    def random(cls, hidden: int, inputs: int = 1, *, spectral_radius: float = 0.9, activation: str = "tanh",
               input_scale: float = 1.0, bias_scale: float = 0.0, rng=None) -> "DiscreteRNN":
        """A random discrete RNN whose ``W`` has the prescribed spectral radius."""
        m = check_int("hidden", hidden, minimum=1)
        d = check_int("inputs", inputs, minimum=1)
        radius = check_nonnegative("spectral_radius", spectral_radius)
        rng = check_rng("rng", rng)
        A = rng.standard_normal((m, m)) / np.sqrt(m)
        r = float(np.max(np.abs(np.linalg.eigvals(A))))
        W = A * (radius / r) if r > 0 else A
        U, b, c = _random_io(m, d, rng, input_scale, bias_scale)
        return cls(W, U, b, c, activation=activation)

    #: The time one step stands for (memory differences divide by it).
    dt: ClassVar[float] = 1.0

    # -- the discrete-model contract --------------------------------------
    @property
    def state_size(self) -> int:
        """Length of the flat state (the hidden width m)."""
        return self.W.shape[0]

    def outputs(self, X, S0) -> np.ndarray:
        """``y_0 .. y_{T-1}`` for inputs X (k, T, d) from states S0 (k, m); shape (k, T)."""
        return forward(self, X, h0=S0).y

    # -- the recurrence the kernels run (dynmem.recurrences.Recurrence) -----
    def recurrence_coefficients(self) -> tuple[float, float]:
        """``(gamma, eta) = (0, 1)``: ``h_{k+1} = gamma h_k + eta sigma(z_k)`` is the plain recurrence."""
        return 0.0, 1.0

    # -- outputs and gradients (the discrete door, dynmem.models.sequences) --
    def forward(self, X, *, h0=None) -> Trajectory:
        """Outputs and states on inputs ``X`` (batch, T, d) (:func:`dynmem.recurrences.forward`)."""
        return forward(self, X, h0=h0)

    def backward(self, trajectory, dy, *, dh_final=None) -> GradientResult:
        """BPTT of :meth:`forward` for cotangents ``dy`` (:func:`dynmem.recurrences.backward`)."""
        return backward(self, trajectory, dy, dh_final=dh_final)

    def value_and_grad(self, X, Y, *, h0=None, loss: str = "mse") -> GradientResult:
        """Loss on ``(X, Y)`` and its gradient (:func:`dynmem.recurrences.value_and_grad`)."""
        return value_and_grad(self, X, Y, h0=h0, loss=loss)

    def outputs_many(self, params: dict, X) -> tuple[np.ndarray, np.ndarray]:
        """Outputs of K variants (stacked ``W, U, b, c``) in one compiled kernel (:func:`dynmem.recurrences.outputs_many`)."""
        return outputs_many(self, params, X)

    def readout(self, S) -> np.ndarray:
        """``c^T s`` for states S (k, m); shape (k,)."""
        return np.asarray(S, dtype=float) @ np.asarray(self.c)

    def step(self, S, X) -> np.ndarray:
        """One step ``gamma s + eta sigma(W s + U x + b)`` for states S (k, m) and inputs X (k, d); shape (k, m)."""
        S = as_float_array("S", S, ndim=2, shape=(None, self.hidden))
        X = as_float_array("X", X, ndim=2, shape=(S.shape[0], self.inputs))
        gamma, eta = self.recurrence_coefficients()
        z = S @ np.asarray(self.W).T + X @ np.asarray(self.U).T + self.b
        return gamma * S + eta * self.act.fn(z)

    def step_jacobian(self, S, X) -> np.ndarray:
        """``dF/ds = gamma I + eta diag(sigma'(z)) W`` at each pair; shape (k, m, m)."""
        S = as_float_array("S", S, ndim=2, shape=(None, self.hidden))
        X = as_float_array("X", X, ndim=2, shape=(S.shape[0], self.inputs))
        gamma, eta = self.recurrence_coefficients()
        z = S @ np.asarray(self.W).T + X @ np.asarray(self.U).T + self.b
        J = eta * self.act.deriv(z)[:, :, None] * np.asarray(self.W)[None]
        J[:, np.arange(self.hidden), np.arange(self.hidden)] += gamma
        return J

    # -- a layer of a stack (SequenceLayer) --------------------------------
    @property
    def feature_size(self) -> int:
        """Width of the sequence passed up in a stack: the hidden width m."""
        return self.W.shape[0]

    def features(self, S) -> np.ndarray:
        """The hidden states themselves: S (k, m) -> (k, m)."""
        return as_float_array("S", S, ndim=2, shape=(None, self.hidden))

    def sequence_forward(self, X, S0=None) -> LayerPass:
        """Features ``h_1 .. h_T`` (B, T, m), outputs and the :class:`~dynmem.recurrences.Trajectory` as tape."""
        traj = forward(self, X, h0=S0)
        return LayerPass(features=traj.h[:, 1:], y=traj.y, tape=traj)

    def sequence_backward(self, passed, dF=None, dy=None) -> LayerGradient:
        """BPTT with cotangents on every state (:func:`dynmem.recurrences.hidden_backward`)."""
        traj = getattr(passed, "tape", None)
        if not isinstance(traj, Trajectory) or traj.model is not self:
            raise ValueError(f"`passed` must be the LayerPass of sequence_forward() with this same `model`; got "
                             f"{describe(passed)}.")
        flat, dX, dS0 = hidden_backward(self, traj, dF, dy)
        return LayerGradient(flat=flat, dX=dX, dS0=dS0)

    def step_input_jacobian(self, S, X) -> np.ndarray:
        """``dF/dx = eta diag(sigma'(z)) U`` at each pair; shape (k, m, d) (a stack's step Jacobian needs it)."""
        S = as_float_array("S", S, ndim=2, shape=(None, self.hidden))
        X = as_float_array("X", X, ndim=2, shape=(S.shape[0], self.inputs))
        _, eta = self.recurrence_coefficients()
        z = S @ np.asarray(self.W).T + X @ np.asarray(self.U).T + self.b
        return eta * self.act.deriv(z)[:, :, None] * np.asarray(self.U)[None]

    def linear_system(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(A, B, C, D)`` of the recurrence when the activation is the identity (:class:`LinearSystem`).

        ``A = gamma I + eta W``, ``B = eta U``, and since ``y_k = c^T s_{k+1}``:
        ``C = c^T A``, ``D = c^T B``.  The bias only shifts the state and is
        left out.  Raises ``ValueError`` for a nonlinear activation.
        """
        if self.activation != "identity":
            raise ValueError(f"`activation` must be 'identity' for a linear system; got {self.activation!r}.")
        gamma, eta = self.recurrence_coefficients()
        A = gamma * np.eye(self.hidden) + eta * np.asarray(self.W)
        B = eta * np.asarray(self.U)
        c = np.asarray(self.c)[None, :]
        return A, B, c @ A, c @ B

    def equilibrium(self, X, *, max_iter: int = 100000, tol: float = 1e-14) -> np.ndarray:
        """Fixed points ``h = gamma h + eta sigma(W h + U x + b)`` for constant inputs X (k, d), by iteration.

        A zero drive gives ``h = 0``.  Raises :class:`dynmem.SimulationError`
        when the iteration does not settle to ``tol`` (relative) in ``max_iter`` steps.
        """
        from ..errors import SimulationError

        drive = np.atleast_2d(np.asarray(X, dtype=float)) @ np.asarray(self.U).T + self.b
        out = np.zeros_like(drive)
        rows = np.flatnonzero(np.any(drive != 0, axis=1))
        if rows.size == 0:
            return out
        drive = drive[rows]
        gamma, eta = self.recurrence_coefficients()
        act = self.act
        W = np.array(self.W)
        H = np.zeros_like(drive)
        for _ in range(max_iter):
            Hn = gamma * H + eta * act.fn(H @ W.T + drive)
            err = np.max(np.abs(Hn - H)) if H.size else 0.0
            H = Hn
            if not np.all(np.isfinite(H)):
                break
            if err <= tol * max(1.0, np.max(np.abs(H))):
                out[rows] = H
                return out
        raise SimulationError(
            "the discrete model did not settle to an equilibrium under the probe input "
            f"(no convergence after {max_iter} iterations); reversed/heaviside memory needs a stable rest state."
        )


@dataclass(frozen=True, eq=False, repr=False)
class EulerRNN(_ParamModel):
    """Forward-Euler image of a CTRNN (residual recurrence).

    ``h_{k+1} = h_k + dt * (sigma(W h_k + U x_k + b) - leak * h_k)``, ``y_k = c^T h_{k+1}``.
    Build it with :meth:`CTRNN.discretize`.
    """

    W: np.ndarray
    U: np.ndarray
    b: np.ndarray
    c: np.ndarray
    dt: float = field(default=0.1)
    activation: str = "tanh"
    leak: float = 0.0

    _param_names: ClassVar[tuple[str, ...]] = ("W", "U", "b", "c")

    def __post_init__(self):
        self._check_params()
        _check_activation(self)
        object.__setattr__(self, "dt", check_positive("dt", self.dt))
        object.__setattr__(self, "leak", check_nonnegative("leak", self.leak))

    def as_ctrnn(self) -> CTRNN:
        """The continuous-time model this recurrence discretises."""
        return CTRNN(self.W, self.U, self.b, self.c, activation=self.activation, leak=self.leak)

    def to_ctrnn(self) -> CTRNN:
        """Deprecated spelling of :meth:`as_ctrnn` (warns; removed in the next release)."""
        warnings.warn("EulerRNN.to_ctrnn() is deprecated; use as_ctrnn()", DeprecationWarning, stacklevel=2)
        return self.as_ctrnn()

    def recurrence_coefficients(self) -> tuple[float, float]:
        """``(gamma, eta) = (1 - dt leak, dt)``: ``h_{k+1} = gamma h_k + eta sigma(z_k)`` is the Euler step."""
        return 1.0 - self.dt * self.leak, self.dt

    state_size = DiscreteRNN.state_size
    outputs = DiscreteRNN.outputs
    forward = DiscreteRNN.forward
    backward = DiscreteRNN.backward
    value_and_grad = DiscreteRNN.value_and_grad
    outputs_many = DiscreteRNN.outputs_many
    readout = DiscreteRNN.readout
    equilibrium = DiscreteRNN.equilibrium
    step = DiscreteRNN.step
    step_jacobian = DiscreteRNN.step_jacobian
    linear_system = DiscreteRNN.linear_system
    step_input_jacobian = DiscreteRNN.step_input_jacobian
    feature_size = DiscreteRNN.feature_size
    features = DiscreteRNN.features
    sequence_forward = DiscreteRNN.sequence_forward
    sequence_backward = DiscreteRNN.sequence_backward


def recurrence_coefficients(model) -> tuple[float, float]:
    """``(gamma, eta)`` with ``h_{k+1} = gamma h_k + eta sigma(z_k)`` for a discrete model (its own method)."""
    method = getattr(model, "recurrence_coefficients", None)
    if not callable(method):
        raise TypeError(
            f"`model` must be a DiscreteRNN or an EulerRNN (use CTRNN.discretize(dt)); got {describe(model)}."
        )
    return method()
