"""Assertion helpers for property tests of models, targets and gradients.

Use them in your own tests; every failure raises :class:`AssertionError`
with the measured numbers in its message (so a hypothesis report says what
was measured, not only that something failed)::

    from hypothesis import given
    from dynmem.strategies import memory_targets
    from dynmem.testing import assert_memory_decays

    @given(memory_targets("exponential"))
    def test_exponential_targets(target):
        assert_memory_decays(target, kind="exponential", rate=target.decay.value, rate_tol=0.05)

Contents
--------
:func:`assert_memory_decays`
    memory function + :func:`~dynmem.memory.fit_decay`, compared with the expected class and rate.
:func:`assert_hurwitz`
    ``alpha(W) < -margin``.
:func:`assert_fixed_point_stable`
    a state is a fixed point of a model (residual) and an attractor (eigenvalues of the Jacobian).
:func:`assert_gradients_match`
    an analytic gradient against finite differences (central, Richardson, complex step).
:func:`departure_from_normality`
    Henrici's departure from normality of a matrix.
:func:`default_memory_times`
    the time grid :func:`assert_memory_decays` uses when none is given.
:func:`load_profile`, :data:`DEV`, :data:`CI`
    hypothesis settings profiles.

Hypothesis profiles
-------------------
Importing this module registers two profiles and loads neither:

* ``"dynmem-dev"`` (:data:`DEV`): 10 examples, no deadline - for quick local runs;
* ``"dynmem-ci"`` (:data:`CI`): 100 examples, ``derandomize=True`` (the
  same examples on every run), no deadline (numba compiles on first use).

They are registered under ``dynmem-`` names so that importing this module
never replaces a project's own ``"dev"``/``"ci"`` profiles: hypothesis
applies a re-registered profile immediately when it is the active one.
:func:`load_profile` accepts ``"dev"`` and ``"ci"`` as short names.  Import
this module at module level (registering a profile from inside a test that
carries its own ``@settings`` is deprecated by hypothesis).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, settings

from ._validation import as_float_array, check_choice, check_nonnegative, check_positive, describe
from .memory import DecayFit, fit_decay, memory_function
from .models import ContinuousModel, CTRNNForm, DiscreteMap, DiscreteModel
from .recurrences import Recurrence
from .spectra import departure_from_normality, spectral_abscissa  # departure_from_normality: re-exported

__all__ = [
    "assert_memory_decays",
    "assert_hurwitz",
    "assert_gradients_match",
    "departure_from_normality",
    "default_memory_times",
    "step_map_radius",
    "assert_fixed_point_stable",
    "load_profile",
    "DEV",
    "CI",
]

# --------------------------------------------------------------------------
# hypothesis profiles

DEV = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""Quick local runs: 10 examples, no deadline."""

CI = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
"""Continuous integration: 100 examples, the same on every run, no deadline."""

_PROFILES = {"dev": "dynmem-dev", "ci": "dynmem-ci"}
settings.register_profile("dynmem-dev", DEV)
settings.register_profile("dynmem-ci", CI)


def load_profile(name: str) -> settings:
    """Load one of dynmem's hypothesis profiles and return its settings.

    Parameters
    ----------
    name : {"dev", "ci", "dynmem-dev", "dynmem-ci"}

    Returns
    -------
    hypothesis.settings
        The now active settings.

    Examples
    --------
    In a ``conftest.py``::

        import os
        from dynmem.testing import load_profile
        load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
    """
    full = _PROFILES.get(name, name)
    check_choice("name", full, tuple(_PROFILES.values()))
    settings.load_profile(full)
    return settings.get_profile(full)


# --------------------------------------------------------------------------
# matrices


def assert_hurwitz(W, margin: float = 0.0) -> float:
    """Assert ``alpha(W) = max Re lambda(W) < -margin``; return ``alpha(W)``.

    Parameters
    ----------
    W : array_like, shape (m, m)
    margin : float
        Non-negative stability margin.

    Raises
    ------
    AssertionError
        With ``alpha(W)``, the margin and the eigenvalue that breaks it.
    ValueError, TypeError
        If ``W`` is not a real square matrix.

    Examples
    --------
    >>> assert_hurwitz([[-1.0, 5.0], [0.0, -0.5]], margin=0.1)
    -0.5
    """
    margin = check_nonnegative("margin", margin)
    alpha = spectral_abscissa(W)
    if not alpha < -margin:
        lam = np.linalg.eigvals(np.asarray(W, dtype=float))
        worst = lam[np.argmax(lam.real)]
        raise AssertionError(
            f"W is not Hurwitz with margin {margin:g}: alpha(W) = max Re lambda(W) = {alpha:.6g} "
            f"(eigenvalue {worst:.6g}), but alpha(W) < {'0' if margin == 0 else f'{-margin:.6g}'} is required "
            f"(short by {alpha + margin:.3g})."
        )
    return alpha


# --------------------------------------------------------------------------
# memory decay

_KINDS = ("exponential", "polynomial", "decaying", "non-decaying")


def default_memory_times(H, *, n: int = 300, e_folds: float = 30.0) -> np.ndarray:
    """The time grid :func:`assert_memory_decays` uses when ``t`` is not given.

    * ``LinearRNN`` / ``CTRNN``: ``n`` points on ``[0, e_folds / |alpha(W)|]``
      (30 e-folds of the slowest linear mode, 13 decades: past ``fit_decay``'s
      default noise floor of 1e-11 of the peak); ``[0, 100]`` if ``alpha(W) >= 0``.
    * ``DiscreteRNN`` / ``EulerRNN``: whole steps ``0, 1, ..., K`` with
      ``K = ceil(e_folds / -log r)`` for the spectral radius ``r`` of the
      linearised step map at the origin (``W``, resp. ``(1 - dt leak) I + dt W``),
      capped at 20000; ``K = 200`` if ``r >= 1``.
    * other models of the contract (:mod:`dynmem.models`): a
      :class:`~dynmem.ssm.DiagonalSSM` as a LinearRNN with ``alpha = max Re
      Lambda``; any other :class:`~dynmem.models.ContinuousModel` through
      ``linearize()`` at its zero-input rest state; a
      :class:`~dynmem.models.DiscreteModel` as a DiscreteRNN with ``r`` the
      spectral radius of its step map's Jacobian at the zero-input rest state
      (``max |Lambda_bar|`` for a discrete SSM; central differences of
      ``final_state`` for the GRU / LSTM cells; ``K = 200`` for a model with
      neither).
    * targets with ``.decay``: ``("exponential", rate)`` with a finite rate:
      ``n`` points on ``[0, e_folds / rate]``; ``("polynomial", p)``:
      ``0`` and ``n - 1`` log-spaced points on ``[1e-2, T]`` with
      ``p log10 T = 8`` (8 decades of decay; ``T`` capped at ``1e12``);
      anything else: ``0`` and log-spaced points on ``[1e-2, 1e4]``.

    Raises
    ------
    TypeError
        For other ``H`` (a callable has no known time scale: pass ``t``).
    """
    if isinstance(H, CTRNNForm):
        alpha = spectral_abscissa(H.as_ctrnn().W)
        t_end = e_folds / -alpha if alpha < 0 else 100.0
        return np.linspace(0.0, t_end, n)
    if isinstance(H, Recurrence):
        W = np.asarray(H.W)
        gamma, eta = H.recurrence_coefficients()
        A = W if (gamma, eta) == (0.0, 1.0) else gamma * np.eye(H.hidden) + eta * W
        return _steps_for_radius(float(np.max(np.abs(np.linalg.eigvals(A)))), e_folds)
    if hasattr(H, "closed_form_memory") and hasattr(H, "Lambda"):  # DiagonalSSM
        alpha = float(np.max(np.asarray(H.Lambda).real))
        return np.linspace(0.0, e_folds / -alpha if alpha < 0 else 100.0, n)
    if isinstance(H, ContinuousModel) and not isinstance(H, CTRNNForm):
        alpha = spectral_abscissa(np.asarray(H.linearize().W))
        return np.linspace(0.0, e_folds / -alpha if alpha < 0 else 100.0, n)
    if isinstance(H, DiscreteModel):
        if hasattr(H, "Lambda_bar"):
            return _steps_for_radius(float(np.max(np.abs(H.Lambda_bar))), e_folds)
        if hasattr(H, "final_state"):
            return _steps_for_radius(step_map_radius(H), e_folds)
        return np.arange(201, dtype=float)
    decay = getattr(H, "decay", None)
    if decay is not None and hasattr(H, "step_derivative"):
        kind, value = decay
        if kind == "exponential" and value is not None and 0 < value < math.inf:
            return np.linspace(0.0, e_folds / value, n)
        if kind == "polynomial" and value is not None and value > 0:
            t_end = min(10.0 ** (8.0 / value), 1e12)
            return np.concatenate([[0.0], np.geomspace(1e-2, t_end, n - 1)])
        return np.concatenate([[0.0], np.geomspace(1e-2, 1e4, n - 1)])
    raise TypeError(
        f"no default time grid for {describe(H)}: pass `t` (a model, or a dynmem.targets target, has one)."
    )


def _steps_for_radius(r: float, e_folds: float) -> np.ndarray:
    K = min(int(math.ceil(e_folds / -math.log(r))), 20000) if 0 < r < 1 else (200 if r >= 1 else 50)
    return np.arange(K + 1, dtype=float)


def step_map_radius(model, *, step: float = 1e-6) -> float:
    """Spectral radius of ``dF/ds`` at the zero-input rest state of a discrete model with ``final_state``.

    ``F(s) = model.final_state(zeros((1, 1, d)), s)`` (one step); the
    Jacobian is formed by central differences with ``step`` (error
    O(step^2), far below what the step count of
    :func:`default_memory_times` depends on).
    """
    d = model.inputs
    s_star = np.asarray(model.equilibrium(np.zeros((1, d))), dtype=float)[0]
    n = s_star.size
    X = np.zeros((2 * n, 1, d))
    E = step * np.eye(n)
    S = np.concatenate([s_star + E, s_star - E])
    F = np.asarray(model.final_state(X, S), dtype=float)
    J = (F[:n] - F[n:]).T / (2 * step)
    return float(np.max(np.abs(np.linalg.eigvals(J))))


def _fmt(x) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.6g}"


def _describe_fit(fit: DecayFit, t: np.ndarray, M: np.ndarray) -> str:
    return (
        f"fit_decay found kind={fit.kind!r}, rate={_fmt(fit.rate)}, exponent={_fmt(fit.exponent)}, "
        f"r2={_fmt(fit.r2)}, window=({_fmt(fit.window[0])}, {_fmt(fit.window[1])}), n_points={fit.n_points}, "
        f"decades={_fmt(fit.decades)}; M({_fmt(float(t[0]))}) = {_fmt(float(M[0]))}, "
        f"max M = {_fmt(float(np.max(M)))}, M({_fmt(float(t[-1]))}) = {_fmt(float(M[-1]))} "
        f"on {t.size} times; note: {fit.note}"
    )


def assert_memory_decays(H, *, kind: str = "exponential", rate: float | None = None, rate_tol: float = 0.05,
                         exponent: float | None = None, t=None, fit_options: dict | None = None,
                         **memory_kwargs) -> DecayFit:
    """Assert that the memory function of ``H`` decays as expected; return the fit.

    Computes ``M = memory_function(H, t, **memory_kwargs)`` and
    ``fit = fit_decay(t, M, **fit_options)``, then checks:

    * ``kind="exponential"``: ``fit.kind == "exponential"``, and when ``rate``
      is given, ``|fit.rate - rate| <= rate_tol * rate``;
    * ``kind="polynomial"``: ``fit.kind == "polynomial"``, and when
      ``exponent`` is given, ``|fit.exponent - exponent| <= rate_tol * exponent``;
    * ``kind="decaying"``: either of the two (``rate`` / ``exponent``, when
      given, are checked against whichever was found, and a requested rate
      fails a polynomial verdict and vice versa);
    * ``kind="non-decaying"``: ``fit.kind`` is "non-decaying" or "growing".

    Parameters
    ----------
    H : model, target or callable
        Anything :func:`~dynmem.memory.memory_function` accepts (the RNNs,
        the GRU / LSTM cells and CTGRU, the diagonal SSMs, any model of the
        contract, targets, callables).
    kind : {"exponential", "polynomial", "decaying", "non-decaying"}
    rate, exponent : float, optional
        Expected decay rate beta of ``e^{-beta t}`` / exponent p of ``t^{-p}``.
    rate_tol : float
        Relative tolerance for ``rate`` and ``exponent``.
    t : array_like, shape (n,), optional
        Times; default :func:`default_memory_times` (from the spectral
        abscissa of ``W`` for models, from ``H.decay`` for targets).
        Required for callables.  For an exponential rate check the window
        should cover many e-folds of the slowest mode.
    fit_options : dict, optional
        Keyword arguments for :func:`~dynmem.memory.fit_decay`.
    **memory_kwargs
        Passed to :func:`~dynmem.memory.memory_function` (``input``,
        ``normalize``, ``amplitudes``, ...).

    Returns
    -------
    DecayFit

    Raises
    ------
    AssertionError
        If the verdict or the rate/exponent does not match; the message
        gives the fit's kind, rate, exponent, window, decades and note, and
        ``M`` at the ends of the grid.

    Examples
    --------
    >>> from dynmem.targets import ExponentialKernel
    >>> fit = assert_memory_decays(ExponentialKernel(0.5), rate=0.5)
    >>> round(fit.rate, 6)
    0.5
    """
    check_choice("kind", kind, _KINDS)
    rate_tol = check_nonnegative("rate_tol", rate_tol)
    if rate is not None:
        rate = check_positive("rate", rate)
        if kind in ("polynomial", "non-decaying"):
            raise ValueError(f"`rate` applies to exponential decay; got rate={rate} with kind={kind!r}.")
    if exponent is not None:
        exponent = check_positive("exponent", exponent)
        if kind in ("exponential", "non-decaying"):
            raise ValueError(f"`exponent` applies to polynomial decay; got exponent={exponent} with kind={kind!r}.")
    if fit_options is not None and not isinstance(fit_options, dict):
        raise TypeError(f"`fit_options` must be a dict of fit_decay keyword arguments; got {describe(fit_options)}.")
    t = default_memory_times(H) if t is None else as_float_array("t", t, ndim=1)
    res = memory_function(H, t, **memory_kwargs)
    tt, M = np.asarray(res.t, dtype=float), np.asarray(res.values, dtype=float)
    fit = fit_decay(tt, M, **(fit_options or {}))

    want = {"exponential": ("exponential",), "polynomial": ("polynomial",),
            "decaying": ("exponential", "polynomial"), "non-decaying": ("non-decaying", "growing")}[kind]
    if rate is not None and kind == "decaying":
        want = ("exponential",)
    if exponent is not None and kind == "decaying":
        want = ("polynomial",)
    expected = f"{kind} memory decay"
    if rate is not None:
        expected += f" with rate {rate:.6g} (relative tolerance {rate_tol:g})"
    if exponent is not None:
        expected += f" with exponent {exponent:.6g} (relative tolerance {rate_tol:g})"
    if fit.kind not in want:
        raise AssertionError(f"expected {expected}, but {_describe_fit(fit, tt, M)}")
    if rate is not None and not abs(fit.rate - rate) <= rate_tol * rate:
        raise AssertionError(
            f"expected {expected}, but the fitted rate {fit.rate:.6g} is off by "
            f"{abs(fit.rate - rate) / rate:.3g} relative; {_describe_fit(fit, tt, M)}"
        )
    if exponent is not None and not abs(fit.exponent - exponent) <= rate_tol * exponent:
        raise AssertionError(
            f"expected {expected}, but the fitted exponent {fit.exponent:.6g} is off by "
            f"{abs(fit.exponent - exponent) / exponent:.3g} relative; {_describe_fit(fit, tt, M)}"
        )
    return fit


# --------------------------------------------------------------------------
# gradients

_METHODS = ("central", "richardson", "complex")
_DEFAULT_STEP = {"central": np.finfo(float).eps ** (1 / 3), "richardson": 1e-2, "complex": 1e-20}
_RICHARDSON_LEVELS = 4


def _scalar(f, x) -> complex | float:
    out = f(x)
    arr = np.asarray(out)
    if arr.ndim != 0 and arr.size != 1:
        raise TypeError(f"`f` must return a scalar; got {describe(out)}.")
    return arr.reshape(()).item()


def _numerical_gradient(f, x: np.ndarray, method: str, step: float | None) -> tuple[np.ndarray, np.ndarray]:
    h0 = _DEFAULT_STEP[method] if step is None else step
    # Relative steps for large entries (absolute for complex step, whose error has no cancellation).
    hs = np.full(x.shape, h0) if method == "complex" else h0 * np.maximum(1.0, np.abs(x))
    g = np.empty(x.shape)
    for idx in np.ndindex(x.shape):
        h = float(hs[idx])
        if method == "complex":
            xc = x.astype(complex)
            xc[idx] += 1j * h
            val = _scalar(f, xc)
            g[idx] = np.imag(val) / h
            continue

        def central(hh):
            xp, xm = x.copy(), x.copy()
            xp[idx] += hh
            xm[idx] -= hh
            return (float(np.real(_scalar(f, xp))) - float(np.real(_scalar(f, xm)))) / (2.0 * hh)

        if method == "central":
            g[idx] = central(h)
            continue
        # Richardson table on h, h/2, h/4, ...: the central difference has an
        # even error expansion, so level j removes the h^{2j} term.
        T = [central(h / 2**k) for k in range(_RICHARDSON_LEVELS)]
        for j in range(1, _RICHARDSON_LEVELS):
            f4 = 4.0**j
            T = [(f4 * T[k + 1] - T[k]) / (f4 - 1.0) for k in range(len(T) - 1)]
        g[idx] = T[0]
    return g, hs


def assert_gradients_match(f, x, grad, *, method: str = "richardson", rtol: float = 1e-6, atol: float | None = None,
                           step: float | None = None) -> np.ndarray:
    """Assert that ``grad`` is the gradient of the scalar function ``f`` at ``x``.

    The numerical gradient is taken entry by entry:

    * ``"central"``: ``(f(x + h e_i) - f(x - h e_i)) / (2h)``, error ``O(h^2)``,
      default ``h = eps^{1/3} max(1, |x_i|)``;
    * ``"richardson"`` (default): central differences at ``h, h/2, h/4, h/8``
      combined by Richardson extrapolation (error ``O(h^8)``), default
      ``h = 1e-2 max(1, |x_i|)``;
    * ``"complex"``: complex step ``Im f(x + i h e_i) / h``, no cancellation,
      default ``h = 1e-20``; ``f`` must accept complex arrays and be analytic
      (no ``abs``, ``max``, or real-only numba kernels).

    Entry ``i`` passes when ``|num_i - grad_i| <= atol + rtol * max(|num_i|, |grad_i|)``.

    Parameters
    ----------
    f : callable
        ``f(x) -> float`` for an array ``x`` of the shape of ``x``.
    x : array_like
        The point (any shape; a float becomes a 0-d array).
    grad : array_like
        The analytic gradient, same shape as ``x``.
    method : {"central", "richardson", "complex"}
    rtol : float
    atol : float, optional
        Default ``rtol * max(max_i |num_i|, 1e-300)``: entries much smaller
        than the largest are compared at the gradient's overall scale.
    step : float, optional
        Base step ``h`` (see above).

    Returns
    -------
    ndarray
        The numerical gradient, shape of ``x``.

    Raises
    ------
    AssertionError
        Naming the worst entry (largest error relative to its tolerance),
        both values there, the absolute and relative error, and how many
        entries fail.

    Examples
    --------
    >>> import numpy as np
    >>> g = assert_gradients_match(lambda v: np.sum(np.sin(v)), [0.1, 0.2], np.cos([0.1, 0.2]))
    """
    check_choice("method", method, _METHODS)
    rtol = check_nonnegative("rtol", rtol)
    if step is not None:
        step = check_positive("step", step)
    if not callable(f):
        raise TypeError(f"`f` must be callable; got {describe(f)}.")
    x = np.array(as_float_array("x", x), dtype=float)
    grad = as_float_array("grad", grad, finite=False)
    if grad.shape != x.shape:
        raise ValueError(f"`grad` must have the shape of `x`, {x.shape}; got shape {grad.shape}.")
    num, hs = _numerical_gradient(f, x, method, step)
    if atol is None:
        atol = rtol * max(float(np.max(np.abs(num), initial=0.0)), 1e-300)
    else:
        atol = check_nonnegative("atol", atol)
    err = np.abs(num - grad)
    tol = atol + rtol * np.maximum(np.abs(num), np.abs(grad))
    bad = ~(err <= tol)  # NaN fails
    if np.any(bad):
        score = np.where(np.isnan(err), np.inf, err / np.maximum(tol, 1e-300))
        i = np.unravel_index(int(np.argmax(score)), x.shape) if x.ndim else ()
        denom = max(abs(float(num[i])), abs(float(grad[i])), 1e-300)
        where = f"index {tuple(int(k) for k in i)}" if x.ndim else "the scalar x"
        raise AssertionError(
            f"analytic and numerical gradients differ: {int(np.sum(bad))} of {x.size} entries fail; worst at "
            f"{where} (x = {float(x[i]):.10g}): analytic {float(grad[i]):.10g}, numerical {float(num[i]):.10g} "
            f"({method}, step {float(hs[i]):.3g}); |difference| = {float(err[i]):.3g}, relative error "
            f"{float(err[i]) / denom:.3g} > rtol {rtol:.3g} (atol {atol:.3g})."
        )
    return num


# --------------------------------------------------------------------------
# fixed points


def assert_fixed_point_stable(model, h, *, x=None, tol: float = 1e-10, margin: float = 0.0) -> float:
    """Assert that ``h`` is a fixed point of ``model`` at the constant input ``x`` and that it attracts.

    For a discrete model with ``step``/``step_jacobian`` (:class:`~dynmem.models.DiscreteMap`) the
    residual is ``F(h, x) - h`` and the point attracts when the spectral radius of ``dF/ds`` is below
    ``1 - margin``; for a flow (``vector_field``, ``jacobian``) the residual is ``f(h, x)`` and the
    spectral abscissa of ``df/dh`` must be below ``-margin``.

    Parameters
    ----------
    model : DiscreteMap or continuous model
    h : array_like, shape (n,)
    x : array_like, shape (d,), optional
        The constant input (zeros by default).
    tol : float
        Largest accepted residual ``|R(h)|_2``.
    margin : float
        Required distance of the spectrum from the stability boundary.

    Returns
    -------
    float
        The spectral radius (maps) or abscissa (flows) at ``h``.

    Raises
    ------
    AssertionError
        With the residual and the leading eigenvalue in the message.
    """
    tol = check_positive("tol", tol)
    margin = check_nonnegative("margin", margin)
    if isinstance(model, DiscreteMap):
        n, d = model.state_size, model.inputs
    elif hasattr(model, "vector_field") and hasattr(model, "jacobian") and hasattr(model, "hidden"):
        n, d = int(model.hidden), int(model.inputs)
    else:
        raise TypeError("`model` must be a discrete model with step/step_jacobian or a continuous model with "
                        f"vector_field, jacobian and hidden; got {describe(model)}.")
    h = as_float_array("h", h, shape=(n,))
    xv = np.zeros(d) if x is None else as_float_array("x", x, shape=(d,))
    if isinstance(model, DiscreteMap):
        r = np.asarray(model.step(h[None], xv[None]), dtype=float)[0] - h
        ev = np.linalg.eigvals(np.asarray(model.step_jacobian(h[None], xv[None]), dtype=float)[0])
        lead = float(np.max(np.abs(ev)))
        stable, what, bound = lead < 1.0 - margin, "spectral radius of dF/ds", 1.0 - margin
    else:
        r = np.asarray(model.vector_field(h[None], xv[None]), dtype=float)[0]
        ev = np.linalg.eigvals(np.asarray(model.jacobian(h[None], xv[None]), dtype=float)[0])
        lead = float(np.max(ev.real))
        stable, what, bound = lead < -margin, "spectral abscissa of df/dh", -margin
    res = float(np.linalg.norm(r))
    if not res <= tol:
        raise AssertionError(f"h is not a fixed point: |R(h)|_2 = {res:.3g} > tol = {tol:g} ({what} there: {lead:.6g}).")
    if not stable:
        raise AssertionError(f"the fixed point is not stable: {what} = {lead:.6g}, must be < {bound:g} "
                             f"(residual {res:.3g}).")
    return lead
