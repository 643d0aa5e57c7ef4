"""Memory functions ([WLL] Def. 3.1; docs/theory.md section 2); the decay fits are in :mod:`dynmem.decay`.

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
  ``dz/dt = W sigma(z)``, ``z(0) = U x`` of docs/theory.md section 2 written in
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

from dataclasses import dataclass
from itertools import product

import numba
import numpy as np
import scipy.linalg
from scipy.integrate import solve_ivp

from ._validation import as_float_array, check_choice, check_increasing, check_int, check_positive, describe, check_rng
from .compiling import announce_compilation
from .errors import warn_overflow
from .inputs import step
from .activations import get_activation
from .models import ClosedFormMemory, ContinuousModel, CTRNNForm, DiscreteModel, LinearRNN
from .errors import SimulationError
from .ode.registry import AUTO, check_method, method_info, resolve_method
from .solvers import as_ctrnn

# The decay fits moved to dynmem.decay; re-exported here, where they were.
from .decay import DecayFit, fit_decay  # noqa: E402,F401

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
    """``out[start + j] = E^j v`` for j = 0 .. n-1 (plain loops: no BLAS call per step).

    Each row is computed from the previous row of ``out`` in place, element
    by element: a row copied in as an array (``out[j] = cur``) would compile
    numba's shape-mismatch message (string formatting, seconds) into the kernel.
    """
    m = v.shape[0]
    for i in range(m):
        out[start, i] = v[i]
    for j in range(1, n):
        for i in range(m):
            acc = 0.0
            for k in range(m):
                acc += E[i, k] * out[start + j - 1, k]
            out[start + j, i] = acc


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
    if isinstance(model, CTRNNForm) and model.as_ctrnn().activation == "identity":
        # an identity CTRNN with a bias (as_linear() declined): the bias only shifts the rest state
        ctrnn = model.as_ctrnn()
        W = np.array(ctrnn.W) - ctrnn.leak * np.eye(ctrnn.hidden)
        return LinearRNN(W, ctrnn.U, ctrnn.c)
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

    For a CTRNN or LinearRNN with ``method`` "auto" or "dopri5" each probe is
    one call of the compiled DOPRI5 loop, the probes in a Python loop
    (:func:`dynmem.ode.solve_ctrnn_constant`, which returns c^T f(h) at the
    observation times); otherwise all probes are integrated at once through the
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

    method = resolve_method(method, model)  # "auto" -> "dopri5" or scipy's "RK45" (other ContinuousModels)
    if method_info(method).compiled:
        if not isinstance(model, CTRNNForm):
            raise ValueError(f"`method` = {method!r} is written for CTRNN and LinearRNN models; got a "
                             f"{type(model).__name__}: use a scipy method such as 'RK45'.")
        keep, rep, sign = _mirror_pairs(model, Xd, H0)
        if input != "impulse":
            # c^T f(h(t)) evaluated inside the compiled call at each interpolated state: the exact field,
            # no states kept (for kinked activations too: the field is evaluated, not differentiated)
            return np.abs(_compiled_probe_states(model, Xd[keep], H0[keep], t, rtol, atol, c, method))[rep]
        Hs = _compiled_probe_states(model, Xd[keep], H0[keep], t, rtol, atol, method=method)[:, rep] * sign[None, :, None]
    else:
        Hs = _scipy_probe_states(model, Xd, H0, t, method, rtol, atol)
    if not np.all(np.isfinite(Hs)):
        raise SimulationError("the memory probes diverged (non-finite states).")
    if input == "impulse":
        return np.abs((Hs - h_star) @ c).T
    n = Hs.shape[0]
    F = model.vector_field(Hs.reshape(n * k, m), np.tile(Xd, (n, 1))).reshape(n, k, m)
    return np.abs(F @ c).T  # (k, n)


def _mirror_pairs(model, Xd: np.ndarray, H0: np.ndarray):
    """``(keep, rep, sign)``: the probes to integrate, and for each probe its row among them and a sign.

    A CTRNN with an odd activation and ``b = 0`` has an odd field,
    ``f(-h, -x) = -f(h, x)``, so a probe whose input and initial state are
    exactly the negation of another's has exactly the negated solution.  The
    compiled kernel is sign-symmetric operation by operation (IEEE negation
    is exact, ``tanh_block`` is odd by ``copysign``, the error norm and the
    step sizes depend on ``|y|`` only), so the mirrored values equal a direct
    solve bit for bit (tested); probes are paired only on exact negation.
    The vertex directions of ``memory_function`` come in such pairs: half
    the solves.
    """
    k = Xd.shape[0]
    rep = np.arange(k)
    sign = np.ones(k)
    model = as_ctrnn(model)
    if not (get_activation(model.activation).odd and not np.any(np.asarray(model.b))):
        return rep, rep, sign
    seen: dict = {}
    keep = []
    for i in range(k):
        key = np.concatenate([Xd[i], H0[i]]) + 0.0  # + 0.0 maps -0.0 to 0.0
        j = seen.get(((-key) + 0.0).tobytes())
        if j is not None:
            rep[i], sign[i] = j, -1.0
            continue
        j = seen.setdefault(key.tobytes(), len(keep))
        if j == len(keep):
            keep.append(i)
        rep[i] = j
    return np.array(keep, dtype=np.int64), rep, sign


def _compiled_probe_states(model, Xd: np.ndarray, H0: np.ndarray, t: np.ndarray, rtol: float, atol: float,
                           c=None, method: str = "dopri5") -> np.ndarray:
    """The k probes through the compiled DOPRI5 loop (dynmem.ode, one call per probe): states (n, k, m), or with a readout ``c``
    the output derivatives ``c^T dh/dt = c^T f(h(t))`` (k, n), the exact field at the interpolated states."""
    from .ode.solve import solve_ctrnn_constant

    out = solve_ctrnn_constant(model, Xd, t, h0=H0, rtol=rtol, atol=atol, output_derivative=c, method=method)
    res, dy = out if c is not None else (out, None)
    if not res.success:
        raise SimulationError(f"the memory probes' solve ({method}) failed: {res.message}")
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
    if method_info(method).stiff:
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


@announce_compilation("memory_function")
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
        integrated together).  The default ``"auto"`` runs CTRNN/LinearRNN
        probes through the compiled DOPRI5 loop (``"dopri5"``, :mod:`dynmem.ode`)
        and other continuous models as one batched scipy ``"RK45"`` system;
        scipy's methods and the compiled ``"tsit5"`` / ``"dop853"`` are
        accepted by name.
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
