"""Memory functions and decay fits ([WLL] Def. 3.1; THEORY.md section 2).

The memory function of a causal, time-homogeneous functional H is::

    M(H)(t) = sup_{x != 0} |d/dt H_t(u^x)| / |x|_inf,      u^x(t) = x 1[t >= 0],

with the variants [WLL] and [SSM] use: normalisation by ``|x|_inf + 1``, an
impulse input, and a reversed input.  The sup ranges over directions *and*
amplitudes: ``x = a v`` with ``|v|_inf = 1`` and ``a > 0``.

How each kind of H is handled (no finite differences except where said):

* :class:`~dynmem.models.LinearRNN` - closed form ``M(t) = |U^T e^{W^T t} c|_1``
  for every input variant, attained at the vertex ``x = sign(rho(t))``.
* :class:`~dynmem.models.CTRNN` - the exact vector field along the
  trajectory: from the zero-input equilibrium ``h*`` the probe is integrated
  with the input held at ``x``, and ``dy/dt = c^T (sigma(W h + U x + b) - leak h)``
  is evaluated on the solution.  With ``leak = 0`` this is the flow
  ``dz/dt = W sigma(z)``, ``z(0) = U x`` of THEORY.md section 2 written in
  ``h`` (``z = W h + U x + b``).  All probes (directions x amplitudes) are one
  batched ODE, solved once.
* :class:`~dynmem.models.DiscreteRNN` / ``EulerRNN`` - differences of the step
  response, ``(y_{k+1} - y_k) / dt`` (``dt = 1`` for a DiscreteRNN), all
  probes as one batch of the numba recurrence.
* targets from :mod:`dynmem.targets` - their exact memory or exact step
  derivative where they have one; a teacher RNN through its model; otherwise
  finite differences of the output.
* a user callable ``H(x_path, t) -> y`` - central differences of its step
  response (second order, step ``fd_step``), the one place differences are used.

Input variants (``input=``):

* ``"heaviside"`` - ``x`` switched on at ``t = 0`` from the zero-input equilibrium.
* ``"impulse"`` - the state is kicked to ``h* + U x`` at ``t = 0`` (the limit of
  a pulse of area ``x`` for a *linear* system) and evolves with zero input;
  ``M(t) = sup |y(t) - y*| / norm(x)``.  For a CTRNN this is the response to
  an impulse in the state: a pulse of bounded ``sigma`` cannot move the state
  in zero time, so this is dynmem's stated choice.
* ``"reversed"`` - the system rests at its equilibrium under the constant input
  ``x``; the input is switched off at ``t = 0``.  For a CTRNN without leak the
  equilibrium solves ``W h + U x + b = 0``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from itertools import product

import numba
import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.special
from scipy.integrate import solve_ivp

from ._validation import as_float_array, check_choice, check_increasing, check_int, check_positive, describe, check_rng
from .activations import get_activation
from .errors import warn_overflow
from .inputs import step
from .models import CTRNN, ClosedFormMemory, ContinuousModel, DiscreteModel, LinearRNN
from .solvers import AUTO, STIFF_METHODS, SimulationError, as_ctrnn, check_method, resolve_method

__all__ = ["MemoryResult", "memory_function", "linear_memory", "DecayFit", "fit_decay"]

_INPUTS = ("heaviside", "impulse", "reversed")
_NORMS = ("x", "x+1")


@dataclass(frozen=True, eq=False)
class MemoryResult:
    """A memory function and how it was obtained.

    Attributes
    ----------
    t : ndarray, shape (n,)
        Times (steps for discrete models).
    values : ndarray, shape (n,)
        ``M(t)``.
    argmax : ndarray, shape (n, d)
        The maximising input ``x`` at each time (direction times amplitude).
    directions : ndarray, shape (k, d)
        Directions searched (unit inf-norm).
    amplitudes : ndarray, shape (a,)
        Amplitudes searched.
    probe_values : ndarray, shape (k * a, n) or None
        ``|d/dt H_t(u^x)| / norm(x)`` for every probe (direction-major order).
    input, normalize, method : str
        The variant and how it was computed ("closed-form", "exact-flow",
        "step-differences", "target-exact", "finite-differences").
    success : bool
    message : str
    """

    t: np.ndarray
    values: np.ndarray
    argmax: np.ndarray
    directions: np.ndarray
    amplitudes: np.ndarray
    probe_values: np.ndarray | None
    input: str
    normalize: str
    method: str
    success: bool = True
    message: str = ""


# --------------------------------------------------------------------------
# linear closed form


@numba.njit(cache=True)
def _propagate(E, v, n, out, start):
    """``out[start + j] = E^j v`` for j = 0 .. n-1 (plain loops: no BLAS call per step)."""
    m = v.shape[0]
    cur = v.copy()
    nxt = np.empty(m)
    for j in range(n):
        out[start + j] = cur
        if j + 1 < n:
            for i in range(m):
                acc = 0.0
                for k in range(m):
                    acc += E[i, k] * cur[k]
                nxt[i] = acc
            cur, nxt = nxt, cur


def _expm_times_vector(A: np.ndarray, v: np.ndarray, t: np.ndarray, anchor_every: int) -> np.ndarray:
    """``e^{A t_i} v`` for increasing ``t_i >= 0``, shape (n, m).

    On uniform stretches of the grid one ``E = expm(A dt)`` is applied
    repeatedly (a compiled loop); every ``anchor_every`` points the product is
    restarted from ``expm(A t_i) v`` so that rounding cannot accumulate over
    long grids.  Non-uniform grids fall back to one ``expm`` per distinct step.
    """
    n, m = t.size, v.size
    out = np.empty((n, m))
    if n >= 2:
        d = np.diff(t)
        uniform = bool(np.all(d == d[0]))
    else:
        uniform = True
    if uniform:
        E = scipy.linalg.expm(A * (t[1] - t[0])) if n >= 2 else np.eye(m)
        for start in range(0, n, anchor_every):
            v0 = scipy.linalg.expm(A * t[start]) @ v
            _propagate(np.ascontiguousarray(E), np.ascontiguousarray(v0), min(anchor_every, n - start), out, start)
        return out
    cache: dict[float, np.ndarray] = {}
    cur, t_cur = None, None
    for i, ti in enumerate(t):
        if cur is None or i % anchor_every == 0:
            cur = scipy.linalg.expm(A * ti) @ v
        else:
            key = float(ti - t_cur)
            E = cache.get(key)
            if E is None:
                if len(cache) > 256:
                    cache.clear()
                E = cache[key] = scipy.linalg.expm(A * key)
            cur = E @ cur
        t_cur = ti
        out[i] = cur
    return out


def expm_action_scaled(A: np.ndarray, v: np.ndarray, t: np.ndarray, anchor_every: int = 1024):
    """``e^{A t_i} v = e^{s_i} w_i`` without overflow: returns ``(w, s)``, shapes (n, m) and (n,).

    ``s_i = 0`` wherever the direct product (:func:`_expm_times_vector`) is
    finite.  Where it overflows (a non-Hurwitz ``A`` at large ``t``) the
    growth is factored out exactly, ``e^{A t} = e^{alpha t} e^{(A - alpha I) t}``
    with ``alpha = alpha(A) > 0``, and ``e^{(A - alpha I) t} v`` (abscissa 0:
    at most polynomial growth) is computed instead, ``s_i = alpha t_i``.  Shared
    by :func:`linear_memory`, :func:`memory_function` and
    :meth:`dynmem.models.LinearRNN.kernel`.

    Raises
    ------
    FloatingPointError
        If even the shifted product is not finite (transient growth beyond
        float64 in a strongly non-normal ``A``).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        w = _expm_times_vector(A, v, t, anchor_every)
    s = np.zeros(t.size)
    bad = ~np.all(np.isfinite(w), axis=1)
    if not np.any(bad):
        return w, s
    from .spectra import spectral_abscissa

    alpha = spectral_abscissa(A)
    if alpha > 0:
        tb = t[bad]
        with np.errstate(over="ignore", invalid="ignore"):
            w[bad] = _expm_times_vector(A - alpha * np.eye(A.shape[0]), v, tb, anchor_every)
        s[bad] = alpha * tb
    if not np.all(np.isfinite(w)):
        i = int(np.flatnonzero(~np.all(np.isfinite(w), axis=1))[0])
        raise FloatingPointError(
            f"e^(W t) overflows float64 at t = {float(t[i])!r} even after factoring out e^(alpha t) "
            f"(alpha(W) = {alpha:.6g}): the transient growth of this non-normal W exceeds float64."
        )
    return w, s


def scaled_to_float(mag: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``mag * e^s`` for ``mag >= 0`` (broadcast), evaluated as ``exp(log mag + s)``: ``inf`` on overflow, never NaN."""
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(mag > 0, np.exp(np.log(np.where(mag > 0, mag, 1.0)) + s), 0.0)


def _uniform_steps(t: np.ndarray) -> np.ndarray:
    # Snap steps that agree to rounding so a linspace grid reuses one expm.
    if t.size < 2:
        return t
    d = np.diff(t)
    if np.allclose(d, d[0], rtol=1e-12, atol=0.0):
        return t[0] + d[0] * np.arange(t.size)
    return t


def linear_memory(model: LinearRNN, t, *, anchor_every: int = 1024) -> MemoryResult:
    """Closed-form memory of a linear RNN, ``M(t) = |U^T e^{W^T t} c|_1``.

    Parameters
    ----------
    model : LinearRNN (or a CTRNN with identity activation)
    t : array_like, shape (n,)
        Non-negative, strictly increasing times.
    anchor_every : int
        Restart the propagation from a direct ``expm(W^T t_i) c`` every this
        many points.  Between anchors the rounding error grows about linearly
        with the number of steps (measured: 1e-13 relative after 1000 steps
        for a width-64 non-normal ``W``, see benchmarks/bench_memory.py), while
        an anchor far from 0 costs a full ``expm`` with many squarings.

    Returns
    -------
    MemoryResult
        ``argmax[i] = sign(rho(t_i))`` (the vertex attaining the sup).

    Notes
    -----
    [WLL] Section 3 / [LHEL]: for ``dh/dt = W h + U x``, ``y = c^T h``, the
    Heaviside response has ``dy/dt = rho(t)^T x`` with ``rho(t) = U^T e^{W^T t} c``,
    so ``sup_{|x|_inf <= 1} |rho^T x| = |rho|_1`` at ``x = sign(rho)``.
    """
    lin = _as_linear(model)
    t = _check_times(t)
    anchor_every = check_int("anchor_every", anchor_every, minimum=1)
    w, s = expm_action_scaled(np.array(lin.W.T), np.array(lin.c), _uniform_steps(t), anchor_every)  # (n, m)
    rho = w @ lin.U  # (n, d), times e^{s}
    values = scaled_to_float(np.abs(rho).sum(axis=1), s)
    argmax = np.where(rho >= 0, 1.0, -1.0)
    d = lin.inputs
    message = "closed form |U^T e^{W^T t} c|_1 (the same for every input variant and normalisation)"
    n_inf = int(np.sum(np.isinf(values)))
    if n_inf:
        message += f"; {n_inf} values exceed float64 and are inf (non-Hurwitz W)"
        warn_overflow("linear_memory", n_inf, values.size,
                      f"non-Hurwitz W, first at t = {float(t[np.argmax(np.isinf(values))])!r}")
    return MemoryResult(t=t, values=values, argmax=argmax, directions=argmax.copy() if d > 0 else argmax,
                        amplitudes=np.array([1.0]), probe_values=None, input="heaviside", normalize="x",
                        method="closed-form", success=True, message=message)


def _is_model(obj) -> bool:
    return isinstance(obj, (ContinuousModel, DiscreteModel, ClosedFormMemory))


def _linear_form(H):
    """The LinearRNN of an exactly linear continuous model (its ``as_linear()``), else None."""
    fn = getattr(H, "as_linear", None)
    return fn() if callable(fn) else None


def _linear_in_input(H) -> bool:
    """Whether the amplitude of the probe cannot matter (a linear model): one amplitude suffices."""
    return getattr(H, "activation", None) == "identity" or bool(getattr(H, "is_linear", False))


def _as_linear(model) -> LinearRNN:
    lin = _linear_form(model)
    if lin is not None:
        return lin
    if isinstance(model, LinearRNN):
        return model
    if isinstance(model, CTRNN) and model.activation == "identity" and not np.any(model.b) and model.leak == 0:
        return LinearRNN(model.W, model.U, model.c)
    if isinstance(model, CTRNN) and model.activation == "identity":
        W = np.array(model.W) - model.leak * np.eye(model.hidden)
        return LinearRNN(W, model.U, model.c)
    raise TypeError(f"`model` must be a LinearRNN or an identity-activation CTRNN; got {describe(model)}.")


def _check_times(t, *, integer: bool = False) -> np.ndarray:
    t = check_increasing("t", as_float_array("t", t, ndim=1))
    if t.size == 0:
        raise ValueError("`t` must hold at least one time; got an empty array.")
    if t[0] < 0:
        raise ValueError(f"`t` must be non-negative (time since the input was switched on); got t[0] = {float(t[0])}.")
    if integer and np.any(t != np.round(t)):
        bad = float(t[np.flatnonzero(t != np.round(t))[0]])
        raise ValueError(f"`t` must hold whole step numbers for a discrete model; got {bad}.")
    return t


# --------------------------------------------------------------------------
# probes


def _directions(d: int, directions, n_directions: int, max_vertex_dim: int, rng) -> np.ndarray:
    if directions is not None:
        D = as_float_array("directions", directions, ndim=(1, 2))
        if D.ndim == 1:
            D = D[None, :]
        if D.shape[1] != d:
            raise ValueError(f"`directions` must have shape (k, {d}); got shape {D.shape}.")
        norms = np.abs(D).max(axis=1)
        if np.any(norms == 0):
            raise ValueError("`directions` must be non-zero; got a zero row.")
        return D / norms[:, None]
    if d <= max_vertex_dim:
        return np.array(list(product((1.0, -1.0), repeat=d)))
    rng = check_rng("rng", rng)
    return rng.choice((-1.0, 1.0), size=(n_directions, d))


def _amplitudes(amplitudes, default) -> np.ndarray:
    if amplitudes is None:
        return np.asarray(default, dtype=float)
    a = as_float_array("amplitudes", np.atleast_1d(amplitudes), ndim=1)
    if a.size == 0 or np.any(a <= 0):
        raise ValueError(f"`amplitudes` must be positive numbers; got {describe(a)}.")
    return a


def _norm_factor(amps: np.ndarray, normalize: str) -> np.ndarray:
    return amps if normalize == "x" else amps + 1.0


def _reduce(t, probe_vals, probes, directions, amps, input, normalize, method, message="") -> MemoryResult:
    best = np.argmax(probe_vals, axis=0)
    values = probe_vals[best, np.arange(t.size)]
    # The closed form's inf is an exact value beyond float64 (warned about), not a failure.
    ok = bool(np.all(np.isfinite(values)) or (method == "closed-form" and not np.any(np.isnan(values))))
    return MemoryResult(t=t, values=values, argmax=probes[best], directions=directions, amplitudes=amps,
                        probe_values=probe_vals, input=input, normalize=normalize, method=method,
                        success=ok, message=message or ("" if ok else "non-finite memory values"))


# --------------------------------------------------------------------------
# continuous models (the ContinuousModel contract): exact vector field along batched probes


def _flow_probe_memory(model, probes: np.ndarray, t: np.ndarray, input: str, method: str, rtol: float,
                       atol: float) -> np.ndarray:
    """``|dy/dt|`` (heaviside, reversed) or ``|y - y*|`` (impulse) for each probe row x, shape (k, n).

    All probes are integrated at once: for a CTRNN or LinearRNN with
    ``method`` "auto" or "dopri5" in one compiled DOPRI5 call
    (:func:`dynmem.odeint.solve_ctrnn_constant`), otherwise through the
    :class:`~dynmem.models.ContinuousModel` contract as one batched scipy ODE
    ``dH/dt = f(H, X)``.
    """
    k, m, d = probes.shape[0], model.hidden, model.inputs
    c = np.array(model.c)
    h_star = np.asarray(model.equilibrium(np.zeros((1, d))), dtype=float)[0]
    zero = np.zeros((k, d))
    if input == "heaviside":
        H0 = np.tile(h_star, (k, 1))
        Xd = probes  # input held at x for t >= 0
    elif input == "impulse":
        H0 = h_star + model.impulse_kick(probes)
        Xd = zero
    else:  # reversed: at rest under x, switched off at t = 0
        if getattr(model, "leak", 0.0):
            raise ValueError(f"`input='reversed'` needs a CTRNN without leak; got leak = {model.leak}.")
        H0 = np.asarray(model.equilibrium(probes), dtype=float)
        Xd = zero

    if resolve_method(method, model) == "dopri5":
        if not isinstance(model, (CTRNN, LinearRNN)):
            raise ValueError(f"`method` = 'dopri5' is written for CTRNN and LinearRNN models; got a "
                             f"{type(model).__name__}: use a scipy method such as 'RK45'.")
        if input != "impulse" and get_activation(as_ctrnn(model).activation).smooth:
            # dy/dt straight from the compiled solve (derivative of each step's interpolant); with a
            # kinked sigma the interpolant's derivative is poor across switches: the exact field below
            return np.abs(_compiled_probe_states(model, Xd, H0, t, rtol, atol, c))
        Hs = _compiled_probe_states(model, Xd, H0, t, rtol, atol)
    else:
        Hs = _scipy_probe_states(model, Xd, H0, t, method, rtol, atol)
    if not np.all(np.isfinite(Hs)):
        raise SimulationError("the memory probes diverged (non-finite states).")
    if input == "impulse":
        return np.abs((Hs - h_star) @ c).T
    n = Hs.shape[0]
    F = model.vector_field(Hs.reshape(n * k, m), np.tile(Xd, (n, 1))).reshape(n, k, m)
    return np.abs(F @ c).T  # (k, n)


def _compiled_probe_states(model, Xd: np.ndarray, H0: np.ndarray, t: np.ndarray, rtol: float, atol: float,
                           c=None) -> np.ndarray:
    """All k probes in one compiled DOPRI5 call (dynmem.odeint): states (n, k, m), or with a readout ``c``
    the output derivatives ``c^T dh/dt`` (k, n) from the step interpolants (no states kept)."""
    from .odeint import solve_ctrnn_constant

    out = solve_ctrnn_constant(model, Xd, t, h0=H0, rtol=rtol, atol=atol, output_derivative=c)
    res, dy = out if c is not None else (out, None)
    if not res.success:
        raise SimulationError(f"the memory probes' solve (dopri5) failed: {res.message}")
    if dy is not None:
        if not np.all(np.isfinite(dy)):
            raise SimulationError("the memory probes diverged (non-finite states).")
        return dy
    return np.ascontiguousarray(res.h.transpose(1, 0, 2))


def _scipy_probe_states(model, Xd: np.ndarray, H0: np.ndarray, t: np.ndarray, method: str, rtol: float,
                        atol: float) -> np.ndarray:
    """States (n, k, m) of every probe as one batched scipy ``solve_ivp`` system of size k * m."""
    k, m = H0.shape

    def rhs(_t, y):
        return model.vector_field(y.reshape(k, m), Xd).ravel()

    kwargs = dict(method=method, rtol=rtol, atol=atol, t_eval=t)
    if method in STIFF_METHODS:
        import scipy.sparse

        def jac(_t, y):
            return scipy.sparse.block_diag(list(model.jacobian(y.reshape(k, m), Xd)), format="csc")

        kwargs["jac"] = jac
    if t[-1] > 0:
        sol = solve_ivp(rhs, (0.0, float(t[-1])), H0.ravel(), **kwargs)
        if not sol.success or sol.y.shape[1] != t.size:
            raise SimulationError(f"the memory probes' solve ({method}) failed: {sol.message}")
        return sol.y.T.reshape(t.size, k, m)  # (n, k, m)
    return np.broadcast_to(H0[None], (t.size, k, m)).copy()


# --------------------------------------------------------------------------
# discrete models (the DiscreteModel contract): differences of the step response


def _discrete_probe_memory(model, probes: np.ndarray, steps: np.ndarray, input: str) -> np.ndarray:
    k, d = probes.shape[0], model.inputs
    s_star = np.asarray(model.equilibrium(np.zeros((1, d))), dtype=float)[0]
    T = int(steps[-1]) + 1
    X = np.zeros((k, T, d))
    if input == "heaviside":
        X[:] = probes[:, None, :]
        S0 = np.tile(s_star, (k, 1))
    elif input == "impulse":
        X[:, 0, :] = probes
        S0 = np.tile(s_star, (k, 1))
    else:
        S0 = np.asarray(model.equilibrium(probes), dtype=float)
    y = model.outputs(X, S0)
    Y = np.concatenate([np.asarray(model.readout(S0))[:, None], y], axis=1)  # Y_j = g(s_j), j = 0..T
    idx = steps.astype(int)
    if input == "impulse":
        y_star = float(np.asarray(model.readout(s_star[None]))[0])
        return np.abs(Y[:, idx + 1] - y_star)  # response after the kick at step 0
    return np.abs(Y[:, idx + 1] - Y[:, idx]) / float(model.dt)


# --------------------------------------------------------------------------
# callables and targets


def _callable_probe_memory(fn, probes, t, input, fd_step) -> np.ndarray:
    """Central differences (second order) of a user functional's step response."""
    out = np.empty((probes.shape[0], t.size))
    h = fd_step
    for i, x in enumerate(probes):
        if input != "heaviside":
            raise ValueError(f"`input` must be 'heaviside' for a user callable or target; got {input!r}.")
        path = step(x)
        # t - h may be negative at t = 0: use one-sided second-order differences there.
        grid = np.unique(np.concatenate([t, t + h, t + 2 * h, np.clip(t - h, 0, None)]))
        y = np.asarray(fn(path, grid), dtype=float).reshape(-1)
        if y.shape != grid.shape:
            raise ValueError(f"`H(x, t)` must return an array of shape ({grid.size},); got shape {y.shape}.")
        pos = {float(g): j for j, g in enumerate(grid)}
        for j, tj in enumerate(t):
            if tj - h >= 0:
                out[i, j] = (y[pos[float(tj + h)]] - y[pos[float(tj - h)]]) / (2 * h)
            else:
                out[i, j] = (-3 * y[pos[float(tj)]] + 4 * y[pos[float(tj + h)]] - y[pos[float(tj + 2 * h)]]) / (2 * h)
    return np.abs(out)


def memory_function(
    H,
    t,
    *,
    input: str = "heaviside",
    normalize: str = "x",
    directions=None,
    amplitudes=None,
    n_directions: int = 64,
    max_vertex_dim: int = 8,
    method: str = AUTO,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    fd_step: float = 1e-4,
    closed_form: bool = True,
    rng=None,
) -> MemoryResult:
    """The memory function ``M(H)(t)`` of a model, target or functional.

    .. math::

        M(H)(t) = \\sup_{x \\ne 0} \\frac{|\\tfrac{d}{dt} H_t(u^x)|}{\\|x\\|_\\infty}
        \\quad\\text{or}\\quad \\frac{\\cdots}{\\|x\\|_\\infty + 1}

    Parameters
    ----------
    H : LinearRNN, CTRNN, DiscreteRNN, EulerRNN, dynmem.targets.Target or callable
        A callable is called as ``H(x_path, t_grid) -> y`` with an
        :class:`~dynmem.inputs.InputPath` and a 1-D time grid.
    t : array_like, shape (n,)
        Non-negative increasing times (whole step numbers for discrete models).
    input : {"heaviside", "impulse", "reversed"}
    normalize : {"x", "x+1"}
        Divide by ``|x|_inf`` or ``|x|_inf + 1``.
    directions : array_like, shape (k, d), optional
        Directions to search (scaled to unit inf-norm).  By default the
        ``2^d`` vertices of the inf-ball when ``d <= max_vertex_dim``, else
        ``n_directions`` random vertices (drawn with ``rng``).
    amplitudes : array_like, shape (a,), optional
        Amplitudes to search; default ``(0.01, 0.1, 0.5, 1, 2, 5, 10)`` for
        nonlinear H (and 1 for linear H, where the amplitude does not matter
        with ``normalize="x"``).
    method, rtol, atol
        Integrator for the probes of continuous models (all probes are
        integrated at once).  The default ``"auto"`` runs CTRNN/LinearRNN
        probes in one compiled DOPRI5 call (``"dopri5"``, :mod:`dynmem.odeint`)
        and other continuous models as one batched scipy ``"RK45"`` system;
        scipy's methods are accepted by name.
    fd_step : float
        Difference step for callables and targets without an exact step derivative.
    closed_form : bool
        Use the closed form for linear models (and the exact memory of
        targets that have one).  ``False`` sends them through the generic
        probe path (batched exact flow for a linear CTRNN), e.g. to cross-check.
    rng : seed or Generator
        For sampled directions.

    Returns
    -------
    MemoryResult
    """
    check_choice("input", input, _INPUTS)
    check_choice("normalize", normalize, _NORMS)
    check_method(method)
    rtol = check_positive("rtol", rtol)
    atol = check_positive("atol", atol)
    fd_step = check_positive("fd_step", fd_step)
    n_directions = check_int("n_directions", n_directions, minimum=1)
    max_vertex_dim = check_int("max_vertex_dim", max_vertex_dim, minimum=0)
    rng = check_rng("rng", rng)  # checked even where no random directions are drawn
    nonlinear_default = (0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0)

    # Teacher-style targets delegate to their model.
    inner = getattr(H, "model", None)
    if inner is not None and _is_model(inner) and not _is_model(H):
        H = inner

    # Dispatch on capabilities (the contract in dynmem.models), in this order.
    if closed_form and isinstance(H, ClosedFormMemory):
        t = _check_times(t)
        if directions is None and amplitudes is None and normalize == "x":
            vals, argmax = H.closed_form_memory(t, input=input)
            vals = np.asarray(vals, dtype=float)
            return MemoryResult(t=t, values=vals, argmax=np.asarray(argmax, dtype=float),
                                directions=np.asarray(argmax, dtype=float), amplitudes=np.array([1.0]),
                                probe_values=None, input=input, normalize=normalize, method="closed-form",
                                success=bool(np.all(np.isfinite(vals))),
                                message=f"the closed-form memory of the {type(H).__name__}")

    lin = _linear_form(H) if closed_form else None
    if lin is not None:
        t = _check_times(t)
        if directions is None and amplitudes is None:
            res = linear_memory(lin, t)
            return MemoryResult(t=res.t, values=res.values, argmax=res.argmax, directions=res.directions,
                                amplitudes=res.amplitudes, probe_values=None, input=input, normalize=normalize,
                                method="closed-form",
                                message=res.message + ("; with |x|_inf + 1 the sup is the limit of large amplitudes"
                                                       if normalize == "x+1" else ""))
        D = _directions(lin.inputs, directions, n_directions, max_vertex_dim, rng)
        amps = _amplitudes(amplitudes, (1.0,))
        w, s = expm_action_scaled(np.array(lin.W.T), np.array(lin.c), _uniform_steps(t), 1024)
        v = w @ lin.U  # (n, d), times e^{s}
        probes = (D[:, None, :] * amps[None, :, None]).reshape(-1, lin.inputs)
        vals = scaled_to_float(np.abs(probes @ v.T) / _norm_factor(np.tile(amps, D.shape[0]), normalize)[:, None],
                               s[None, :])
        n_inf = int(np.sum(np.isinf(vals.max(axis=0))))
        if n_inf:
            warn_overflow("memory_function", n_inf, t.size, "non-Hurwitz W")
        return _reduce(t, vals, probes, D, amps, input, normalize, "closed-form",
                       message=f"{n_inf} values exceed float64 and are inf (non-Hurwitz W)" if n_inf else "")

    if not isinstance(H, (ContinuousModel, DiscreteModel)) and _linear_form(H) is not None:
        H = _linear_form(H)  # e.g. a DiagonalSSM with closed_form=False: the flow of its real form

    if isinstance(H, ContinuousModel):
        t = _check_times(t)
        D = _directions(H.inputs, directions, n_directions, max_vertex_dim, rng)
        amps = _amplitudes(amplitudes, (1.0,) if _linear_in_input(H) else nonlinear_default)
        probes = (D[:, None, :] * amps[None, :, None]).reshape(-1, H.inputs)
        raw = _flow_probe_memory(H, probes, t, input, method, rtol, atol)
        vals = raw / _norm_factor(np.tile(amps, D.shape[0]), normalize)[:, None]
        return _reduce(t, vals, probes, D, amps, input, normalize, "exact-flow")

    if isinstance(H, DiscreteModel):
        t = _check_times(t, integer=True)
        D = _directions(H.inputs, directions, n_directions, max_vertex_dim, rng)
        amps = _amplitudes(amplitudes, (1.0,) if _linear_in_input(H) else nonlinear_default)
        probes = (D[:, None, :] * amps[None, :, None]).reshape(-1, H.inputs)
        raw = _discrete_probe_memory(H, probes, t, input)
        vals = raw / _norm_factor(np.tile(amps, D.shape[0]), normalize)[:, None]
        return _reduce(t, vals, probes, D, amps, input, normalize, "step-differences")

    if hasattr(H, "step_derivative") and hasattr(H, "dim"):
        t = _check_times(t)
        if input != "heaviside":
            raise ValueError(f"`input` must be 'heaviside' for a target functional; got {input!r}.")
        if directions is None and amplitudes is None and closed_form:
            try:
                vals = np.asarray(H.exact_memory(t, normalize=normalize), dtype=float)
                D = _directions(H.dim, None, n_directions, max_vertex_dim, rng)
                return MemoryResult(t=t, values=vals, argmax=np.full((t.size, H.dim), np.nan), directions=D,
                                    amplitudes=np.array([np.inf if normalize == "x+1" else 1.0]), probe_values=None,
                                    input=input, normalize=normalize, method="closed-form",
                                    message="the target's exact memory function")
            except NotImplementedError:
                pass
        D = _directions(H.dim, directions, n_directions, max_vertex_dim, rng)
        amps = _amplitudes(amplitudes, nonlinear_default)
        probes = (D[:, None, :] * amps[None, :, None]).reshape(-1, H.dim)
        try:
            raw = np.abs(np.asarray(H.step_derivative(probes, t), dtype=float))
            how = "target-exact"
        except NotImplementedError:
            raw = _callable_probe_memory(lambda path, grid: H.output(path, grid), probes, t, "heaviside", fd_step)
            how = "finite-differences"
        vals = raw / _norm_factor(np.tile(amps, D.shape[0]), normalize)[:, None]
        return _reduce(t, vals, probes, D, amps, input, normalize, how)

    if callable(H):
        t = _check_times(t)
        if directions is None:
            raise ValueError("`directions` must be given for a user callable (its input dimension is unknown).")
        D = _directions(np.asarray(directions).reshape(len(directions), -1).shape[1], directions, n_directions,
                        max_vertex_dim, rng)
        amps = _amplitudes(amplitudes, nonlinear_default)
        probes = (D[:, None, :] * amps[None, :, None]).reshape(-1, D.shape[1])
        raw = _callable_probe_memory(H, probes, t, input, fd_step)
        vals = raw / _norm_factor(np.tile(amps, D.shape[0]), normalize)[:, None]
        return _reduce(t, vals, probes, D, amps, input, normalize, "finite-differences",
                       message=f"central differences of the step response with step {fd_step:g} (error O(step^2))")

    raise TypeError(
        "`H` must be a LinearRNN, CTRNN, DiscreteRNN, EulerRNN or another model of the contract "
        "(dynmem.models.ContinuousModel / DiscreteModel / ClosedFormMemory), a dynmem.targets target or a "
        "callable H(x, t); "
        f"got {describe(H)}."
    )


# --------------------------------------------------------------------------
# decay fits


@dataclass(frozen=True, eq=False)
class DecayFit:
    """Classification of a memory curve's decay.

    Attributes
    ----------
    kind : str
        "exponential", "polynomial", "non-decaying" or "undetermined".
    rate : float
        beta of ``C e^{-beta t}`` (NaN unless exponential was fitted).
    exponent : float
        p of ``C (t + s)^{-p}`` (NaN unless the polynomial model was fitted).
    shift : float
        s of the polynomial model.
    constant : float
        C of the selected model.
    r2 : float
        Coefficient of determination of ``log M`` for the selected model.
    window : tuple of float
        ``(t_start, t_end)`` of the points used.
    n_points : int
    bic_exponential, bic_polynomial : float
        Bayesian information criteria in log space (lower is better).
    decades : float
        How many decades ``M`` falls across the window.
    note : str
        Why this verdict, and how confident.
    power : float
        q of the prefactor ``(1 + t)^q`` of the exponential model (0 for a pure
        exponential; NaN unless the verdict is exponential).
    fits : dict
        Both fitted models' parameters and residual sums of squares.
    """

    kind: str
    rate: float
    exponent: float
    shift: float
    constant: float
    r2: float
    window: tuple
    n_points: int
    bic_exponential: float
    bic_polynomial: float
    decades: float
    note: str
    power: float = float("nan")
    fits: dict = field(default_factory=dict)


def _bic(rss: float, n: int, k: int) -> float:
    # Residuals below ~1e-12 per point in log M are rounding, not misfit:
    # floor them, so that exact data never "prefers" a richer model.
    return n * np.log(max(rss, n * 1e-24) / n) + k * np.log(n)


def _fit_two_exponentials(tw, y, rate0):
    """Least-squares fit of ``log(C1 e^{-b1 t} + C2 e^{-b2 t})`` to ``y``, with ``b2 > b1 > 0``.

    Parametrised as ``(log C1, log b1, log C2, log(b2 - b1))``; started from
    the slopes of the last and first thirds of the window and from the
    single-exponential rate.  ``None`` when the window is too small or the fit
    fails.
    """
    n = y.size
    if n < 8 or tw[-1] <= tw[0]:
        return None
    k = max(3, n // 3)

    def slope(ts, ys):
        return -float(np.polyfit(ts, ys, 1)[0])

    b_tail, b_head = slope(tw[-k:], y[-k:]), slope(tw[:k], y[:k])
    if not (np.isfinite(b_tail) and np.isfinite(b_head)) or b_tail <= 0:
        return None
    b1 = min(b_tail, max(rate0, 1e-12))
    logc1 = float(np.median(y[-k:] + b1 * tw[-k:]))
    head_excess = np.exp(y[:k]) - np.exp(logc1 - b1 * tw[:k])

    def res(p):
        lc1, lb1, lc2, ld = p
        r1, r2 = np.exp(lb1), np.exp(lb1) + np.exp(ld)
        return np.logaddexp(lc1 - r1 * tw, lc2 - r2 * tw) - y

    def jac(p):
        lc1, lb1, lc2, ld = p
        r1, d = np.exp(lb1), np.exp(ld)
        w = scipy.special.expit((lc1 - r1 * tw) - (lc2 - (r1 + d) * tw))  # share of the slow term
        return np.column_stack([w, -r1 * tw, 1.0 - w, -(1.0 - w) * d * tw])

    sol = None
    # Several starts for the fast rate: a fast mode may only show in the
    # first few points, where the slope of the head third does not see it.
    for b2 in {max(b_head, 1.5 * b1), 3.0 * b1, 10.0 * b1}:
        logc2 = float(np.log(max(np.median(head_excess * np.exp(b2 * tw[:k])), 1e-300)))
        # Rates are bounded (log-rates in [-30, 12]) so e^{log b} never overflows.
        x0 = np.clip([logc1, np.log(b1), logc2, np.log(b2 - b1)], [-690, -29.9, -690, -29.9], [690, 11.9, 690, 11.9])
        try:
            cand = scipy.optimize.least_squares(res, x0, jac=jac, x_scale="jac", max_nfev=400,
                                                bounds=([-700, -30, -700, -30], [700, 12, 700, 12]))
        except (ValueError, FloatingPointError):
            continue
        if np.all(np.isfinite(cand.x)) and (sol is None or cand.cost < sol.cost):
            sol = cand
    if sol is None:
        return None
    lc1, lb1, lc2, ld = (float(v) for v in sol.x)
    r1, r2 = float(np.exp(lb1)), float(np.exp(lb1) + np.exp(ld))
    return dict(rate=r1, fast_rate=r2, log_c1=lc1, log_c2=lc2, rss=float(2 * sol.cost),
                slow_dominates_end=bool(lc1 - r1 * tw[-1] > lc2 - r2 * tw[-1]))


def _fit_decay_once(
    t,
    M,
    *,
    floor: float | None = None,
    relative_floor: float = 1e-11,
    min_decades: float = 1.0,
    min_time_decades: float = 1.0,
    bic_margin: float = 10.0,
    tail_fraction: float = 0.2,
    plateau_ratio: float = 1e-3,
    min_r2: float = 0.97,
    plateau_slope: float = 0.05,
    envelope: bool = True,
) -> DecayFit:
    """One fit of :func:`fit_decay` on the whole window (see its Notes)."""
    t = check_increasing("t", as_float_array("t", t, ndim=1))
    M = as_float_array("M", M, shape=(t.size,), finite=False)
    if np.any(np.isnan(M)) or np.any(M < 0):
        raise ValueError("`M` must be non-negative and not NaN.")
    if t.size < 4:
        raise ValueError(f"`t` must hold at least 4 points to fit a decay; got {t.size}.")
    nan = float("nan")

    def result(kind, note, **kw):
        base = dict(kind=kind, rate=nan, exponent=nan, shift=nan, constant=nan, r2=nan,
                    window=(float(tw[0]), float(tw[-1])) if tw.size else (nan, nan), n_points=int(tw.size),
                    bic_exponential=nan, bic_polynomial=nan, decades=decades, note=note, fits={})
        base.update(kw)
        return DecayFit(**base)

    peak = int(np.argmax(M))
    M_peak = float(M[peak])
    M_raw = M
    if envelope:
        # Running maximum from the right: removes the dips of oscillating
        # memories (zeros of rho) without changing monotone curves.  The peak
        # is taken first, so the transient before it is still skipped.
        M = np.maximum.accumulate(M[::-1])[::-1]
    if not np.isfinite(M_peak) or M_peak <= 0:
        tw = t[:0]
        decades = nan
        if M_peak == 0:
            return result("undetermined", "M is identically zero.")
        return result("non-decaying", "M is infinite.")
    fl = max(floor or 0.0, relative_floor * M_peak)
    tw, Mw = t[peak:], M[peak:]
    # A noise floor: the last points sit far below the peak and no longer decay
    # (their median is no larger than the median of the 10% before them, and
    # both are below plateau_ratio * peak); fit only what stands 10x above it.
    n10 = max(3, Mw.size // 10)
    if floor is None and Mw.size >= 3 * n10:
        last, before = np.median(Mw[-n10:]), np.median(Mw[-2 * n10 : -n10])
        if 0 < last < plateau_ratio * M_peak and before <= 3.0 * last:
            fl = max(fl, 10.0 * float(last))
    below = np.flatnonzero(Mw <= fl)
    if below.size:
        tw, Mw = tw[: below[0]], Mw[: below[0]]
    decades = float(np.log10(Mw[0] / Mw[-1])) if Mw.size else nan
    if envelope and tw.size >= 8:
        # An oscillating memory (several deep dips) decays along its peaks: fit
        # the local maxima of the raw curve, where the running maximum would
        # only offer a staircase.
        raw = M_raw[peak : peak + tw.size]
        inner = np.arange(1, raw.size - 1)
        maxima = inner[(raw[inner] >= raw[inner - 1]) & (raw[inner] > raw[inner + 1])]
        minima = inner[(raw[inner] <= raw[inner - 1]) & (raw[inner] < raw[inner + 1])]
        future_max = np.maximum.accumulate(raw[::-1])[::-1]
        deep = [i for i in minima if raw[i] < 0.5 * future_max[i]]  # below half of a later value
        if len(deep) >= 2 and maxima.size >= 4:
            keep = np.concatenate([[0], maxima])
            tw, Mw = tw[keep], raw[keep]
    if tw.size < 4:
        return result("undetermined", f"only {tw.size} points above the noise floor {fl:.3g} after the peak.")

    # 2. plateau: the tail is flat on log-log axes (|d log M / d log t| < plateau_slope),
    # which a power law with p >= plateau_slope or an exponential never is.
    n_tail = max(3, int(np.ceil(tail_fraction * tw.size)))
    tail_t, tail_M = tw[-n_tail:], Mw[-n_tail:]
    length = float(tw[-1] - tw[0])
    if tail_t[0] > 0 and tail_t[-1] > tail_t[0]:
        tail_slope = float(np.polyfit(np.log(tail_t), np.log(tail_M), 1)[0])
    else:
        tail_slope = -np.inf
    if tail_M.min() >= plateau_ratio * M_peak and abs(tail_slope) < plateau_slope:
        level = float(np.median(tail_M))
        return result("non-decaying",
                      f"the tail settles near {level:.3g} ({level / M_peak:.2g} of the peak): its log-log slope "
                      f"{tail_slope:.2g} is flatter than {plateau_slope} over t in [{tail_t[0]:.3g}, {tail_t[-1]:.3g}].",
                      constant=level)

    # 4. fits: exponential C e^{-beta t}, exponential with a polynomial prefactor
    # C (1 + t)^q e^{-beta t} (Jordan blocks), and a power law C (t + s)^{-p}.
    y = np.log(Mw)
    n = y.size
    tss = float(np.sum((y - y.mean()) ** 2)) or 1e-300
    A = np.column_stack([np.ones(n), -tw])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    rss_e = float(np.sum((A @ coef - y) ** 2))
    A3 = np.column_stack([np.ones(n), np.log1p(tw), -tw])
    coef3, *_ = np.linalg.lstsq(A3, y, rcond=None)
    rss_e3 = float(np.sum((A3 @ coef3 - y) ** 2))

    def poly_res(params):
        logC, p, logs = params
        return logC - p * np.log(tw + np.exp(logs)) - y

    def poly_jac(params):
        _, p, logs = params
        sh = np.exp(logs)
        return np.column_stack([np.ones(n), -np.log(tw + sh), -p * sh / (tw + sh)])

    # The shift is capped at the window's end: (t + s)^{-p} with s -> inf and
    # p / s fixed is e^{-beta t}, so an uncapped power law would swallow exponentials.
    best = None
    span = max(tw[-1], 1e-6)
    s_max = span
    for s0 in (1e-3 * span, 1e-2 * span, 0.1 * span, min(1.0, span), max(min(tw[0], span), 1e-6)):
        s0 = min(max(s0, 1e-9), s_max)
        lt = np.log(tw + s0)
        A2 = np.column_stack([np.ones(n), -lt])
        c2, *_ = np.linalg.lstsq(A2, y, rcond=None)
        sol = scipy.optimize.least_squares(poly_res, [c2[0], c2[1], np.log(s0)], jac=poly_jac,
                                           bounds=([-np.inf, -np.inf, np.log(1e-9)], [np.inf, np.inf, np.log(s_max) + 1e-12]),
                                           x_scale="jac", max_nfev=2000)
        if best is None or sol.cost < best.cost:
            best = sol
    logC_p, p_fit, logs_fit = best.x
    rss_p = float(2 * best.cost)
    s_fit = float(np.exp(logs_fit))
    bic_e2, bic_e3, bic_p = _bic(rss_e, n, 2), _bic(rss_e3, n, 3), _bic(rss_p, n, 3)
    mix = _fit_two_exponentials(tw, y, float(coef[1]))
    bic_e4 = _bic(mix["rss"], n, 4) if mix is not None else np.inf
    # The exponential family must owe at least one decade of decay to e^{-beta t} itself,
    # otherwise (1 + t)^q e^{-beta t} with beta ~ 0 is just a power law.
    e_ok2 = coef[1] * length >= np.log(10)
    # Jordan blocks give q > 0; a negative q only imitates a sum of exponentials
    # whose fast terms die early, and would understate the asymptotic rate.
    e_ok3 = coef3[2] * length >= np.log(10) and coef3[1] > 0
    # A mixture C1 e^{-b1 t} + C2 e^{-b2 t} (b2 > b1 > 0, both C > 0): a sum
    # of modes whose fast one dies inside the window.  Its rate is b1, which
    # must carry a decade of the decay and dominate the window's end (else b1
    # is not identified by the data).
    e_ok4 = mix is not None and mix["rate"] * length >= np.log(10) and mix["slow_dominates_end"]
    cands = [(bic_e2, "e2")] if e_ok2 else []
    if e_ok3:
        cands.append((bic_e3, "e3"))
    if e_ok4:
        cands.append((bic_e4, "e4"))
    bic_e, which = min(cands) if cands else (np.inf, "")
    # Prefer the simpler exponential families unless the mixture is decisively better.
    if which == "e4" and min([b for b, w in cands if w != "e4"], default=np.inf) <= bic_e4 + bic_margin:
        bic_e, which = min((b, w) for b, w in cands if w != "e4")
    if which == "e3":
        rate, q, logC_e, rss_sel = float(coef3[2]), float(coef3[1]), float(coef3[0]), rss_e3
    elif which == "e4":
        rate, q, logC_e, rss_sel = mix["rate"], 0.0, mix["log_c1"], mix["rss"]
    else:
        rate, q, logC_e, rss_sel = float(coef[1]), 0.0, float(coef[0]), rss_e
    fits = dict(exponential=dict(rate=float(coef[1]), constant=float(np.exp(min(coef[0], 700))), rss=rss_e),
                exponential_prefactor=dict(rate=float(coef3[2]), power=float(coef3[1]),
                                           constant=float(np.exp(min(coef3[0], 700))), rss=rss_e3),
                polynomial=dict(exponent=float(p_fit), shift=s_fit, constant=float(np.exp(min(logC_p, 700))), rss=rss_p))
    if mix is not None:
        fits["exponential_mixture"] = dict(rate=mix["rate"], fast_rate=mix["fast_rate"],
                                           constant=float(np.exp(min(mix["log_c1"], 700))),
                                           fast_constant=float(np.exp(min(mix["log_c2"], 700))), rss=mix["rss"])
    common = dict(bic_exponential=float(min(bic_e2, bic_e3, bic_e4)), bic_polynomial=float(bic_p), fits=fits)

    # 3. window too short
    if not decades >= min_decades:
        return result("undetermined",
                      f"M falls by only {decades:.2f} decades across t in [{tw[0]:.3g}, {tw[-1]:.3g}] "
                      f"(need {min_decades}); the window is too short to tell exponential from polynomial decay.",
                      **common)
    time_decades = float(np.log10((tw[-1] + s_fit) / (tw[0] + s_fit)))
    if bic_e + bic_margin < bic_p:
        r2 = 1 - rss_sel / tss
        if r2 < min_r2:
            return result("undetermined", f"the exponential model fits best but poorly (R^2 = {r2:.3f} < {min_r2}).",
                          **common)
        pref = f" with prefactor (1 + t)^{q:.3g}" if which == "e3" else ""
        if which == "e4":
            pref = f" (slowest of two modes; the other decays at {mix['fast_rate']:.3g})"
        return result("exponential",
                      f"exponential decay{pref} preferred (BIC {bic_e:.1f} vs power law {bic_p:.1f}); "
                      f"M falls {decades:.1f} decades.",
                      rate=rate, power=q, constant=float(np.exp(min(logC_e, 700))), r2=r2, **common)
    if bic_p + bic_margin < bic_e and p_fit > 0:
        r2 = 1 - rss_p / tss
        if r2 < min_r2:
            return result("undetermined", f"the power law fits best but poorly (R^2 = {r2:.3f} < {min_r2}).", **common)
        if time_decades < min_time_decades:
            return result("undetermined",
                          f"a power law fits best (p = {p_fit:.3g}) but t + s spans only {time_decades:.2f} decades "
                          f"(need {min_time_decades}).", **common)
        return result("polynomial",
                      f"power-law fit preferred (BIC {bic_p:.1f} vs {bic_e:.1f}) over {time_decades:.1f} decades of t + s.",
                      exponent=float(p_fit), shift=s_fit, constant=float(np.exp(min(logC_p, 700))), r2=r2, **common)
    return result("undetermined",
                  f"neither model is decisively better (BIC exponential {bic_e:.1f}, polynomial {bic_p:.1f}, "
                  f"margin {bic_margin}).", **common)


def fit_decay(t, M, **options) -> DecayFit:
    """Classify a memory curve as exponential, polynomial, non-decaying or undetermined.

    The decay class is an asymptotic property, so when the whole window gives
    no decisive verdict (a fast early transient, a sum of exponentials whose
    fast terms die first) the head of the curve is skipped: the fit is
    repeated from the points where ``M`` has fallen by 1/4, 1/2 and then 3/4
    of its decades, and the first decisive verdict is returned (its note says
    which part was skipped).  The last start matters for sums of modes
    whose slow mode takes over late, after a near-cancellation of the
    kernel.  A window that is too short is never rescued.  An exponential
    verdict's rate is then re-estimated on the last half of the window's
    decades, where the asymptotic rate shows (a plateau before the decay or a
    polynomial prefactor no longer trades against it); the note and
    ``fits["whole_window"]`` keep the whole-window numbers.

    Parameters
    ----------
    t : array_like, shape (n,)
        Increasing non-negative times.
    M : array_like, shape (n,)
        Non-negative memory values.
    **options
        ``floor``, ``relative_floor``, ``min_decades``, ``min_time_decades``,
        ``bic_margin``, ``tail_fraction``, ``plateau_ratio``, ``min_r2``,
        ``plateau_slope``, ``envelope``: see the steps below.

    Returns
    -------
    DecayFit

    Notes
    -----
    Steps of one fit:

    0. With ``envelope=True`` (default) ``M`` is replaced by its running
       maximum from the right, ``max_{s >= t} M(s)``, so that isolated dips
       (an oscillating kernel passing through zero) do not spoil the fits.
    1. Window: start at the peak of ``M`` (skipping the transient growth of
       non-normal ``W``); drop points below the noise floor
       ``max(floor, relative_floor * max M)`` (default ``relative_floor``
       1e-11) and everything after the first such point.  Without ``floor``,
       a flat tail far below the peak is taken as the floor and only points
       10x above it are kept.
    2. Non-decaying: the tail (last ``tail_fraction`` = 0.2 of the window)
       stays above ``plateau_ratio`` (1e-3) times the peak and is flat on
       log-log axes, ``|d log M / d log t| < plateau_slope`` (0.05).
    3. Too short: if ``M`` falls by fewer than ``min_decades`` (1) decades
       across the window, the verdict is "undetermined" whatever fits best,
       so a short window is never called exponential.
    4. Fit ``log M = log C - beta t`` and ``log M = log C + q log(1 + t) - beta t``
       with ``q > 0`` (Jordan blocks), by linear least squares, and
       ``log M = log C - p log(t + s)`` with ``0 < s <= t_end``
       (``scipy.optimize.least_squares``); compare BICs.  The winner must
       beat the other family by ``bic_margin`` (10) and reach
       ``R^2 >= min_r2`` (0.97) in log space; the exponential family must owe
       at least a decade of the decay to ``e^{-beta t}`` itself, and a
       polynomial verdict needs ``min_time_decades`` (1) decades of ``t + s``.
    """
    fit = _classify(t, M, options)
    if fit.kind != "exponential":
        return fit
    return _tail_rate(as_float_array("t", t, ndim=1), as_float_array("M", M, finite=False), fit, options)


def _tail_rate(t, M, fit, options):
    """Re-estimate an exponential verdict's rate on the last half of its decades.

    The rate is asymptotic; over a whole window a plateau before the decay
    (tanh saturation) or a polynomial prefactor trades against the rate.  If
    the tail alone is decisively exponential its fit is returned, with the
    whole-window numbers kept in ``fits["whole_window"]``.
    """
    lo, hi = fit.window
    sel = np.flatnonzero((t >= lo) & (t <= hi))
    if sel.size < 16:
        return fit
    env = np.maximum.accumulate(M[sel][::-1])[::-1]
    drop = np.log10(env[0] / np.maximum(env, 1e-300))
    later = np.flatnonzero(drop >= 0.5 * fit.decades)
    if later.size == 0 or sel.size - later[0] < 8:
        return fit
    start, stop = int(sel[later[0]]), int(sel[-1]) + 1
    # Only the window the whole fit kept (its noise floor was found there), and
    # the floor stays relative to the curve's peak, not to the tail's start.
    opts = dict(options)
    opts["floor"] = max(opts.get("floor") or 0.0, opts.get("relative_floor", 1e-11) * float(M[sel].max()))
    tail = _fit_decay_once(t[start:stop], M[start:stop], **opts)
    if tail.kind != "exponential":
        return fit
    whole = dict(rate=fit.rate, power=fit.power, window=fit.window, r2=fit.r2, note=fit.note)
    note = (f"{tail.note} Rate from the tail t >= {t[start]:.3g} (the last half of the decades); "
            f"on the window [{lo:.3g}, {hi:.3g}]: rate {fit.rate:.4g} ({fit.note})")
    return dataclasses.replace(tail, note=note, fits={**tail.fits, "whole_window": whole})


def _classify(t, M, options) -> DecayFit:
    first = _fit_decay_once(t, M, **options)
    if first.kind != "undetermined" or "too short" in first.note or not np.isfinite(first.decades):
        return first
    t_arr = as_float_array("t", t, ndim=1)
    M_arr = as_float_array("M", M, shape=(t_arr.size,), finite=False)
    peak = int(np.argmax(M_arr))
    logs = np.log10(M_arr[peak] / np.maximum(M_arr, 1e-300))
    for frac in (0.25, 0.5, 0.75):
        later = np.flatnonzero((np.arange(t_arr.size) > peak) & (logs >= frac * first.decades))
        if later.size == 0 or t_arr.size - later[0] < 4:
            continue
        start = int(later[0])
        fit = _fit_decay_once(t_arr[start:], M_arr[start:], **options)
        if fit.kind in ("exponential", "polynomial", "non-decaying"):
            note = f"{fit.note} (the head t < {t_arr[start]:.3g}, {frac:.0%} of the decades, was skipped: " \
                   f"on the whole window: {first.note})"
            return dataclasses.replace(fit, note=note)
    return first
