"""Perturbation error curves and estimators of the stability boundary.

[WLL] (Defs 3.4-3.5, Thm 3.9; docs/theory.md section 3) call a target ``H``
*stably approximated* when the perturbed error

.. math::

    E_m(\\beta) = \\sup_{\\|\\theta - \\theta_m\\|_2 \\le \\beta}
                  \\| H - \\hat H(\\cdot; \\theta) \\|,
    \\qquad \\|\\theta\\|_2 = \\max(|W|_2, |U|_2, |b|_2, |c|_2),

has a continuous limit in ``m`` on ``[0, beta_0]``.  The paper reads the
boundary off plots; this module measures it:

:func:`perturbation_curve`
    ``E_m(beta)`` on a grid of ``beta`` for one model, by random perturbations
    in the block-norm ball plus adversarial ones (``+beta I`` on ``W``, and a
    random-restart hill climb inside the ball).
:func:`stability_boundary`
    Across widths: crossing points of consecutive curves, blow-up thresholds
    (smallest ``beta`` with ``E_m(beta) > K E_m(0)``), the spectral margin
    ``-alpha(W_m)`` and the complex stability radius, their log-log trends in
    ``m`` and a verdict.

Design choices (documented as choices, docs/theory.md preamble)
---------------------------------------------------------------
* **Common random numbers.**  One set of ``n_samples`` unit directions is drawn
  once and scaled by every ``beta``, so the curves at different ``beta`` (and
  their differences) are not blurred by resampling noise.
* **Ball sup.**  Every perturbation evaluated at ``beta' <= beta`` lies in the
  ball of radius ``beta``, so ``max_error[i]`` is the maximum over *all*
  perturbations evaluated at ``betas[:i+1]``: a lower bound of the true sup
  ``E_m(beta)``, non-decreasing by construction.  ``shell_max_error`` is the
  maximum over the perturbations evaluated at ``betas[i]`` alone.
* **Divergence.**  A perturbed model counts as diverged (error ``inf``, and
  counted in ``n_diverged``) when its output is non-finite or exceeds
  ``divergence`` in absolute value, and, for :class:`~dynmem.models.LinearRNN`,
  also when the perturbed ``W`` is not Hurwitz (``alpha(W) >= 0``): the error
  of [WLL] is a sup over all ``t >= 0``, where a non-decaying kernel has
  infinite error however short the evaluation grid.
* **Adversarial ascent** is a derivative-free hill climb: from the worst
  perturbations found so far at this ``beta``, propose random steps of size
  ``0.3 beta`` (in the chosen norm), project back into the ball (singular
  values clipped at ``beta`` for matrices, vectors rescaled, entries clipped
  for ``"entrywise-max"``) and keep improvements.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import scipy.signal

from ._validation import (
    as_float_array,
    check_choice,
    check_increasing,
    check_int,
    check_positive,
    describe,
)
from .decay import loglog_slope
from .models import CTRNNForm, DiscreteModel, EulerStep, LinearKernel, Parametrized
from .recurrences import Recurrence, outputs_many
from .spectra import spectral_abscissa, spectral_radius, stability_radius
from .targets import LinearTarget, Target

__all__ = [
    "PerturbationCurve",
    "StabilityBoundary",
    "Trend",
    "sample_perturbations",
    "perturbation_curve",
    "stability_boundary",
    # building blocks for experiments (dynmem.experiments)
    "PerturbationEvaluator",
    "unit_directions",
    "ball_sup",
    "crossings_of",
    "first_exceed",
]

_NORMS = ("block-spectral", "entrywise-max")
_ERRORS = ("sup", "test")
_RADII = ("sphere", "ball")
# Ascent step relative to beta, and the defaults of the hill climb.
_ASCENT_STEP = 0.3


# --------------------------------------------------------------------------
# perturbations


def _block_norms(arr: np.ndarray) -> np.ndarray:
    """Spectral norm of each block of a stack ``(K, ...)`` (Euclidean for vectors)."""
    if arr.ndim == 3:
        return np.linalg.norm(arr, ord=2, axis=(1, 2))
    return np.linalg.norm(arr, axis=1)


# The RNNs with a matrix W in the open (LinearRNN, CTRNN, DiscreteRNN, EulerRNN): a CTRNN form or a recurrence.
_RNNS = (CTRNNForm, Recurrence)


def perturbation_blocks(model) -> dict:
    """``name -> shape`` of the blocks a perturbation is drawn in, in ``model.flatten()`` order.

    The model's ``param_shapes`` when it has them (and they cover
    ``n_params``); otherwise the whole flat vector is one block ``"theta"``.
    Every model of the contract (:class:`~dynmem.models.Parametrized`) is
    perturbed as ``unflatten(flatten() + delta)``.
    """
    shapes = getattr(model, "param_shapes", None)
    if isinstance(shapes, dict) and sum(int(np.prod(v)) for v in shapes.values()) == model.n_params:
        return {k: tuple(v) for k, v in shapes.items()}
    return {"theta": (int(model.n_params),)}


def flat_blocks(model) -> dict:
    """``model.flatten()`` split into the blocks of :func:`perturbation_blocks` (``name -> array``)."""
    theta = np.asarray(model.flatten(), dtype=float)
    out, i = {}, 0
    for name, shape in perturbation_blocks(model).items():
        size = int(np.prod(shape))
        out[name] = theta[i:i + size].reshape(shape)
        i += size
    return out


def unit_directions(model, n: int, norm: str, rng: np.random.Generator) -> dict:
    """``n`` directions of block norm 1 (``"block-spectral"``) or entries in [-1, 1]."""
    out = {}
    for name, shape in perturbation_blocks(model).items():
        if norm == "entrywise-max":
            out[name] = rng.uniform(-1.0, 1.0, size=(n, *shape))
        else:
            G = rng.standard_normal((n, *shape))
            nrm = _block_norms(G)
            out[name] = G / nrm.reshape((n,) + (1,) * len(shape))
    return out


def sample_perturbations(model, beta: float, n: int, *, norm: str = "block-spectral", radius: str = "sphere", rng=None) -> dict:
    """Random parameter perturbations of size ``beta``.

    Parameters
    ----------
    model : LinearRNN, CTRNN, DiscreteRNN, EulerRNN or a Parametrized DiscreteModel
        Supplies the blocks (:func:`perturbation_blocks`) and their shapes.
    beta : float
        ``beta >= 0``.
    n : int
        Number of perturbations.
    norm : {"block-spectral", "entrywise-max"}
        ``"block-spectral"`` (docs/theory.md section 3): a Gaussian direction per
        block, rescaled to spectral norm ``beta`` (Euclidean norm for the
        vectors ``b`` and ``c``), so ``max_block |delta_block|_2 <= beta``.
        ``"entrywise-max"`` (the public [WLL] code): every entry uniform in
        ``[-beta, beta]``.
    radius : {"sphere", "ball"}
        Block-spectral only.  ``"sphere"``: every block has norm exactly
        ``beta`` (the sup of a growing error sits on the boundary).
        ``"ball"``: each perturbation is shrunk by ``u^(1/D)``, ``u`` uniform
        on (0, 1) and ``D = model.n_params`` (the radial law of a uniform
        Euclidean ball; not uniform in the block-norm ball, which is a product
        of spectral-norm balls).
    rng : None, int or numpy.random.Generator

    Returns
    -------
    dict
        ``name -> ndarray (n, *shape)`` for each block of :func:`perturbation_blocks`
        (``model.param_names`` for the RNNs).
    """
    _check_model(model)
    beta = _check_beta(beta)
    n = check_int("n", n, minimum=1)
    norm = check_choice("norm", norm, _NORMS)
    radius = check_choice("radius", radius, _RADII)
    rng = np.random.default_rng(rng)
    dirs = unit_directions(model, n, norm, rng)
    scale = np.full(n, beta)
    if norm == "block-spectral" and radius == "ball":
        scale = beta * rng.uniform(size=n) ** (1.0 / model.n_params)
    return {k: v * scale.reshape((n,) + (1,) * (v.ndim - 1)) for k, v in dirs.items()}


def _project(delta: dict, beta: float, norm: str) -> dict:
    """Project a stack of perturbations into the ball of radius ``beta``."""
    out = {}
    for name, arr in delta.items():
        if norm == "entrywise-max":
            out[name] = np.clip(arr, -beta, beta)
        elif arr.ndim == 3:
            # Frobenius-nearest matrix of spectral norm <= beta: clip the singular values.
            Us, s, Vt = np.linalg.svd(arr, full_matrices=False)
            out[name] = (Us * np.minimum(s, beta)[:, None, :]) @ Vt
        else:
            nrm = np.linalg.norm(arr, axis=1)
            f = np.where(nrm > beta, beta / np.where(nrm > 0, nrm, 1.0), 1.0)
            out[name] = arr * f[:, None]
    return out


# --------------------------------------------------------------------------
# evaluation of many perturbed models


def _expm_batch(A: np.ndarray) -> np.ndarray:
    """``e^{A_k}`` for a stack (K, m, m): scaling and squaring with a degree-18 Taylor polynomial.

    Each matrix is scaled by ``2^{-s_k}`` to 1-norm <= 1/2 (Taylor remainder
    below ``0.5^19 / 19! ~ 1e-23``), and squared ``s_k`` times.  Vectorised
    over the stack: :func:`scipy.linalg.expm` loops over a stack in Python-level
    calls (about 0.3 ms per 8 x 8 matrix), this takes a few microseconds per matrix.
    """
    K, m, _ = A.shape
    nrm = np.abs(A).sum(axis=1).max(axis=1)
    with np.errstate(divide="ignore"):
        s = np.where(nrm > 0.5, np.ceil(np.log2(np.where(nrm > 0, nrm, 1.0) / 0.5)), 0.0).astype(int)
    s = np.clip(s, 0, 1100)
    X = A * np.ldexp(1.0, -s)[:, None, None]
    eye = np.broadcast_to(np.eye(m), A.shape)
    E = eye + X / 18.0
    for j in range(17, 0, -1):  # Horner: I + X/1 (I + X/2 (... (I + X/18)))
        E = eye + (X @ E) / j
    for r in range(int(s.max(initial=0))):
        sq = E @ E
        E = np.where((s > r)[:, None, None], sq, E)
    return E


def _kernels_on_grid(W, U, c, t):
    """``rho_k(t_j)^T = c_k^T e^{W_k t_j} U_k`` for a stack of models: (K, n, d).

    Propagates ``X_j = e^{W (t_j - t_{j-1})} X_{j-1}`` from ``X_0 = e^{W t_0} U``
    with one batched matrix exponential per distinct increment (two for a
    uniform grid): exact up to rounding, and robust to defective ``W`` (no
    eigendecomposition).
    """
    K, m, d = U.shape
    n = t.size
    out = np.empty((K, n, d))
    X = _expm_batch(W * t[0]) @ U if t[0] != 0 else U.copy()
    out[:, 0] = np.einsum("km,kmd->kd", c, X)
    steps = np.diff(t)
    cache = {}
    for j in range(1, n):
        dlt = float(steps[j - 1])
        E = cache.get(dlt)
        if E is None:
            E = cache[dlt] = _expm_batch(W * dlt)
        X = E @ X
        out[:, j] = np.einsum("km,kmd->kd", c, X)
    return out


def ball_sup(shell_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ball-sup errors from per-shell maxima, and the index of the shell that attains each.

    Every perturbation evaluated at ``beta_j <= beta_i`` lies in the ball of
    radius ``beta_i``, so ``E(beta_i) >= max_{j <= i} shell_max[j]``.
    """
    max_error = np.maximum.accumulate(shell_max)
    arg = np.zeros(shell_max.size, dtype=int)
    for i in range(1, shell_max.size):
        arg[i] = i if shell_max[i] >= max_error[i - 1] else arg[i - 1]
    return max_error, arg


class PerturbationEvaluator:
    """Errors of perturbed models ``theta_m + delta`` against one target.

    ``errors(delta)`` takes ``name -> (K, *shape)`` stacks and returns (K,)
    errors with ``inf`` for diverged models.
    """

    def __init__(self, model, target, error, t_grid, X_test, dt, substeps, divergence):
        self.model, self.error, self.divergence = model, error, divergence
        if not isinstance(model, _RNNS):
            # any Parametrized DiscreteModel: unflatten(flatten() + delta), run from the zero state
            self.kind = "contract"
            self.base = flat_blocks(model)
            self.X = X_test
            self.ref = target.output_sequence(X_test, float(model.dt))
            return
        self.base = model.params()
        if isinstance(model, LinearKernel):
            self.kind = "linear"
            if error == "sup":
                self.t = t_grid
                self.ref = target.kernel(t_grid)  # (n, d)
            else:
                self.X, self.dt = X_test, dt
                self.t = dt * np.arange(X_test.shape[1])
                self.ref = target.output_sequence(X_test, dt)  # (B, T)
        else:
            self.kind = "recurrent"
            if isinstance(model, CTRNNForm):
                self.runner, self.sub, step = model.as_ctrnn().discretize(dt / substeps), substeps, dt
            else:
                self.runner, self.sub = model, 1
                step = model.dt if isinstance(model, EulerStep) else dt  # a plain recurrence takes the caller's dt
            self.X = X_test
            self.Xrun = np.ascontiguousarray(np.repeat(X_test, self.sub, axis=1)) if self.sub > 1 else X_test
            self.ref = target.output_sequence(X_test, step)

    def perturbed(self, delta: dict) -> dict:
        K = next(iter(delta.values())).shape[0]
        out = {}
        for name, arr in self.base.items():
            out[name] = np.ascontiguousarray(arr[None] + delta[name]) if name in delta else np.broadcast_to(arr, (K, *arr.shape)).copy()
        return out

    def errors(self, delta: dict) -> np.ndarray:
        p = self.perturbed(delta)
        with np.errstate(all="ignore"):
            if self.kind == "linear":
                return self._linear(p)
            if self.kind == "contract":
                return self._contract(p)
            return self._recurrent(p)

    def _contract(self, p):
        K = next(iter(p.values())).shape[0]
        S0 = np.zeros((self.X.shape[0], self.model.state_size))
        err = np.empty(K)
        for k in range(K):
            theta = np.concatenate([p[name][k].ravel() for name in self.base])
            try:
                y = self.model.unflatten(theta).outputs(self.X, S0)
            except (FloatingPointError, ValueError):  # diverged, or outside the model's valid set
                err[k] = np.inf
                continue
            if not np.all(np.abs(y) <= self.divergence):
                err[k] = np.inf
                continue
            diff = y - self.ref
            err[k] = np.mean(diff**2) if self.error == "test" else np.abs(diff).max()
        return np.where(np.isfinite(err), err, np.inf)

    def _linear(self, p):
        W, U, c = p["W"], p["U"], p["c"]
        unstable = np.linalg.eigvals(W).real.max(axis=1) >= 0.0
        rho = _kernels_on_grid(W, U, c, self.t)
        if self.error == "sup":
            bad = unstable | ~np.all(np.abs(rho) <= self.divergence, axis=(1, 2))
            err = np.abs(rho - self.ref[None]).sum(axis=2).max(axis=1)
        else:
            T = self.X.shape[1]
            conv = scipy.signal.fftconvolve(self.X[None], rho[:, None], axes=2)[:, :, :T, :]
            y = self.dt * conv.sum(axis=3)  # (K, B, T)
            bad = unstable | ~np.all(np.abs(y) <= self.divergence, axis=(1, 2))
            err = np.mean((y - self.ref[None]) ** 2, axis=(1, 2))
        return np.where(bad | ~np.isfinite(err), np.inf, err)

    def _recurrent(self, p):
        # All K perturbed models in one numba kernel (recurrences.outputs_many),
        # batched over the test sequences; only outputs are kept.
        y, finite = outputs_many(self.runner, {name: p[name] for name in ("W", "U", "b", "c")}, self.Xrun)
        if self.sub > 1:
            y = y[:, :, self.sub - 1 :: self.sub]
        bad = ~finite | ~np.all(np.abs(y) <= self.divergence, axis=(1, 2))
        diff = y - self.ref[None]
        err = np.mean(diff**2, axis=(1, 2)) if self.error == "test" else np.abs(diff).max(axis=(1, 2))
        return np.where(bad | ~np.isfinite(err), np.inf, err)


# --------------------------------------------------------------------------
# results


@dataclass(frozen=True, eq=False)
class PerturbationCurve:
    """Result of :func:`perturbation_curve`.

    Attributes
    ----------
    betas : ndarray, shape (n,)
        Perturbation sizes, strictly increasing, ``> 0``.
    max_error : ndarray, shape (n,)
        Ball-sup estimate of ``E_m(beta)``: the largest error among all
        perturbations evaluated at ``betas[:i+1]`` (all lie in the ball of
        radius ``betas[i]``); non-decreasing.  ``inf`` if any diverged.
    shell_max_error : ndarray, shape (n,)
        The largest error among the perturbations evaluated at ``betas[i]``.
    mean_error, median_error : ndarray, shape (n,)
        Over the random perturbations at ``betas[i]`` (the mean is ``inf``
        as soon as one of them diverged; the median is robust to that).
    sample_errors : ndarray, shape (n, n_samples)
        Error of every random perturbation (``inf`` = diverged).  Column ``j``
        is the same unit direction at every ``beta`` (common random numbers).
    n_diverged : ndarray of int, shape (n,)
        Diverged random perturbations per ``beta`` (out of ``n_samples``).
    shift_error, ascent_error : ndarray, shape (n,)
        Error of ``W + beta I`` and the best error found by the hill climb
        (NaN when ``adversarial=False``).
    directions : dict of ndarray
        The random directions actually used, block name -> (n_samples, ...)
        (``delta = beta * directions`` at every ``beta``; radial factors of
        ``radius="ball"`` included): pass them back as ``directions=`` to
        evaluate the same perturbations elsewhere.
    argmax_kind : tuple of str, length n
        What attained ``max_error[i]``: ``"random"``, ``"shift"`` (``+beta I``
        on ``W``) or ``"ascent"``.
    argmax_beta : ndarray, shape (n,)
        The ``beta`` at which ``max_error[i]`` was attained.
    error0 : float
        Unperturbed error ``E_m(0)`` (``inf`` if the model itself diverges).
    model : object
        The unperturbed model (read by :func:`stability_boundary`).
    settings : dict
        ``n_samples``, ``norm``, ``radius``, ``adversarial``, ``error``,
        ``divergence``, ``t_grid`` / ``dt`` / test-batch shape, timing.
    success : bool
        False when the unperturbed model already diverges.
    message : str
    """

    betas: np.ndarray
    max_error: np.ndarray
    shell_max_error: np.ndarray
    mean_error: np.ndarray
    median_error: np.ndarray
    sample_errors: np.ndarray
    n_diverged: np.ndarray
    shift_error: np.ndarray
    ascent_error: np.ndarray
    argmax_kind: tuple
    argmax_beta: np.ndarray
    error0: float
    model: object = None
    settings: dict = field(default_factory=dict)
    success: bool = True
    message: str = ""
    directions: dict = None

    def curve(self, which: str = "max") -> np.ndarray:
        """The error curve ``"max"``, ``"mean"``, ``"median"`` or ``"shell_max"``."""
        which = check_choice("which", which, ("max", "mean", "median", "shell_max"))
        return {"max": self.max_error, "mean": self.mean_error, "median": self.median_error,
                "shell_max": self.shell_max_error}[which]

    @classmethod
    def from_errors(cls, betas, errors, error0: float, *, model=None) -> "PerturbationCurve":
        """A curve from given error values (the same array for every statistic).

        For synthetic curves, tests and curves measured elsewhere; ``errors``
        may contain ``inf`` (counted as one divergence each).
        """
        betas = _check_betas(betas)
        errors = as_float_array("errors", errors, shape=(betas.size,), finite=False)
        if np.any(np.isnan(errors)) or np.any(errors < 0):
            raise ValueError(f"`errors` must be non-negative (inf allowed); got {describe(errors)}.")
        error0 = float(error0)
        if np.isnan(error0) or error0 < 0:
            raise ValueError(f"`error0` must be a non-negative number; got {error0}.")
        n = betas.size
        nan = np.full(n, np.nan)
        return cls(betas=betas, max_error=errors.copy(), shell_max_error=errors.copy(), mean_error=errors.copy(),
                   median_error=errors.copy(), sample_errors=errors[:, None].copy(),
                   n_diverged=np.isinf(errors).astype(int), shift_error=nan, ascent_error=nan.copy(),
                   argmax_kind=("random",) * n, argmax_beta=betas.copy(), error0=error0, model=model,
                   settings={"source": "from_errors"})


# --------------------------------------------------------------------------
# validation helpers


def _check_model(model):
    if not (isinstance(model, _RNNS) or (isinstance(model, Parametrized) and isinstance(model, DiscreteModel))):
        raise TypeError(f"`model` must be a LinearRNN, CTRNN, DiscreteRNN or EulerRNN, or a Parametrized "
                        f"DiscreteModel of the dynmem.models contract (GRUCell, LSTMCell, DiscreteDiagonalSSM); "
                        f"got {describe(model)}.")
    return model


def _check_beta(beta) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.integer, np.floating)):
        raise TypeError(f"`beta` must be a non-negative number; got {describe(beta)}.")
    beta = float(beta)
    if not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"`beta` must be a non-negative finite number; got {beta}.")
    return beta


def _check_betas(betas) -> np.ndarray:
    betas = as_float_array("betas", betas, ndim=1, copy=True)
    if betas.size < 1:
        raise ValueError("`betas` must hold at least one value; got an empty array.")
    if np.any(betas <= 0):
        raise ValueError(
            f"`betas` must be positive (E(0) is always computed and stored as error0); got min(betas) = {betas.min()}."
        )
    return check_increasing("betas", betas)


def _default_t_grid() -> np.ndarray:
    return np.arange(1.0, 101.0)  # [WLL] Fig. 1: t in {1, ..., 100}


# --------------------------------------------------------------------------
# perturbation_curve


def perturbation_curve(
    model,
    target,
    betas,
    *,
    n_samples: int = 100,
    norm: str = "block-spectral",
    adversarial: bool = True,
    error: str = "sup",
    t_grid=None,
    rng=None,
    progress: bool = False,
    radius: str = "sphere",
    X_test=None,
    dt: float = 1.0,
    substeps: int = 10,
    divergence: float = 1e8,
    ascent_steps: int = 4,
    ascent_candidates: int = 8,
    ascent_starts: int = 2,
    directions: dict | None = None,
) -> PerturbationCurve:
    """The perturbed error ``E_m(beta)`` of one model ([WLL] Def. 3.4, Fig. 1).

    .. math::

        E_m(\\beta) = \\sup_{\\|\\delta\\|_2 \\le \\beta} \\| H - \\hat H(\\cdot; \\theta_m + \\delta) \\|,

    estimated from below by ``n_samples`` random perturbations per ``beta``
    (one set of unit directions scaled by every ``beta``: common random
    numbers) plus, with ``adversarial=True``, ``W + beta I`` (the direction
    that removes the spectral margin, Thm 3.9) and a hill climb inside the
    ball (see the module notes).

    Parameters
    ----------
    model : LinearRNN, CTRNN, DiscreteRNN, EulerRNN or a Parametrized DiscreteModel
        Models of the contract (GRUCell, LSTMCell, DiscreteDiagonalSSM, ...)
        are perturbed as ``unflatten(flatten() + delta)`` in the blocks of
        :func:`perturbation_blocks`, run from the zero state on ``X_test``
        and compared with ``target.output_sequence(X_test, model.dt)``; a
        perturbed model that raises (diverged, invalid) counts as diverged.
        They have no ``W``, so no ``W + beta I`` shift is tried (the hill
        climb still runs).
    target : dynmem.targets.Target
        A :class:`~dynmem.targets.LinearTarget` for ``error="sup"`` with a
        :class:`LinearRNN`.
    betas : array_like, shape (n,)
        Strictly increasing, positive.
    n_samples : int
        Random perturbations per ``beta`` (docs/theory.md: use >= 100).
    norm : {"block-spectral", "entrywise-max"}
        See :func:`sample_perturbations`.
    adversarial : bool
    error : {"sup", "test"}
        ``"sup"``: for a :class:`LinearRNN`, ``max_{t in t_grid} |rho_H(t) -
        rho_model(t)|_1`` (the [WLL] Fig. 1 setting, ``t_grid`` defaults to
        ``{1, ..., 100}``); for the other models, whose kernel is not defined,
        ``max |y - y_H|`` over the test batch and its time steps.
        ``"test"``: mean squared output error on the test batch ``X_test``
        against ``target.output_sequence(X_test, dt)``.
    t_grid : array_like, optional
        Increasing, non-negative times for ``error="sup"`` with a LinearRNN.
    rng : None, int or numpy.random.Generator
    progress : bool
        Print counts and an ETA to stderr after each ``beta``.
    radius : {"sphere", "ball"}
        See :func:`sample_perturbations`.
    X_test : array_like, shape (batch, T, d), optional
        Test inputs; default ``N(0, 1)`` of shape (32, 100, d) from ``rng``.
    dt : float
        Sampling step of the test inputs.  A LinearRNN's output is the same
        rectangle-rule convolution ``dt sum_j rho(j dt) x_{k-j}`` as the
        target's (so an exact kernel has zero error); a DiscreteRNN is
        compared with ``target.output_sequence(X, dt)``; an EulerRNN uses its
        own ``model.dt`` instead; a CTRNN is integrated by forward Euler with
        ``substeps`` steps per sample (inputs held constant), so its ``E(0)``
        contains that discretisation error.
    substeps : int
        Euler steps per sample for a CTRNN.
    divergence : float
        Outputs (or hidden states, for the recurrent models) beyond this
        magnitude count as diverged.
    ascent_steps, ascent_candidates, ascent_starts : int
        Hill-climb rounds, proposals per start and round, and starts.
    directions : dict of ndarray, optional
        Use these directions (block name -> shape ``(n_samples, *block)``,
        the blocks of :func:`perturbation_blocks`, every one finite) instead
        of drawing them; ``n_samples`` must then equal their leading size and
        ``radius`` is not applied again.  The result's ``directions`` holds
        the ones used either way.

    Returns
    -------
    PerturbationCurve
    """
    _check_model(model)
    if not isinstance(target, Target):
        raise TypeError(f"`target` must be a dynmem.targets.Target; got {describe(target)}.")
    if target.dim != model.inputs:
        raise ValueError(f"`target` must have input dimension {model.inputs} to match the model; got {target.dim}.")
    betas = _check_betas(betas)
    n_samples = check_int("n_samples", n_samples, minimum=1)
    norm = check_choice("norm", norm, _NORMS)
    radius = check_choice("radius", radius, _RADII)
    error = check_choice("error", error, _ERRORS)
    if not isinstance(adversarial, bool):
        raise TypeError(f"`adversarial` must be True or False; got {describe(adversarial)}.")
    dt = check_positive("dt", dt)
    substeps = check_int("substeps", substeps, minimum=1)
    divergence = check_positive("divergence", divergence)
    ascent_steps = check_int("ascent_steps", ascent_steps, minimum=0)
    ascent_candidates = check_int("ascent_candidates", ascent_candidates, minimum=1)
    ascent_starts = check_int("ascent_starts", ascent_starts, minimum=1)
    rng = np.random.default_rng(rng)
    linear = isinstance(model, LinearKernel)
    if linear and error == "sup":
        if not isinstance(target, LinearTarget):
            raise TypeError(
                f"`target` must be a LinearTarget (with a kernel) for error='sup' with a LinearRNN; got {describe(target)}."
            )
        t_grid = _default_t_grid() if t_grid is None else as_float_array("t_grid", t_grid, ndim=1, copy=True)
        if t_grid.size < 1 or t_grid[0] < 0:
            raise ValueError(f"`t_grid` must be non-empty and non-negative; got {describe(t_grid)}.")
        check_increasing("t_grid", t_grid)
        X_test = None
    else:
        if t_grid is not None:
            raise ValueError("`t_grid` is only used with error='sup' and a LinearRNN; pass X_test and dt instead.")
        if X_test is None:
            X_test = rng.standard_normal((32, 100, model.inputs))
        else:
            X_test = as_float_array("X_test", X_test, ndim=3, copy=True)
            if X_test.shape[2] != model.inputs or X_test.shape[0] < 1 or X_test.shape[1] < 1:
                raise ValueError(
                    f"`X_test` must have shape (batch, T, {model.inputs}) with batch, T >= 1; got shape {X_test.shape}."
                )
    ev = PerturbationEvaluator(model, target, error, t_grid, X_test, dt, substeps, divergence)
    zero = {k: np.zeros((1, *v.shape)) for k, v in ev.base.items()}
    error0 = float(ev.errors(zero)[0])

    if directions is None:
        dirs = unit_directions(model, n_samples, norm, rng)
        if norm == "block-spectral" and radius == "ball":
            radial = rng.uniform(size=n_samples) ** (1.0 / model.n_params)
            dirs = {k: v * radial.reshape((n_samples,) + (1,) * (v.ndim - 1)) for k, v in dirs.items()}
    else:
        dirs = _check_directions(model, directions, n_samples)
    eye = np.eye(model.hidden)[None]
    has_shift = isinstance(model, _RNNS)

    n = betas.size
    sample_errors = np.empty((n, n_samples))
    shell_max = np.empty(n)
    shell_kind = []
    shift_err = np.full(n, np.nan)
    ascent_err = np.full(n, np.nan)
    n_evaluated = 0
    start = time.perf_counter()
    for i, beta in enumerate(betas):
        delta = {k: beta * v for k, v in dirs.items()}
        errs = ev.errors(delta)
        n_evaluated += n_samples
        sample_errors[i] = errs
        best, kind = float(errs.max()), "random"
        if adversarial:
            if has_shift:
                shift = {k: np.zeros((1, *v.shape[1:])) for k, v in dirs.items()}
                shift["W"] = beta * eye
                shift_err[i] = float(ev.errors(shift)[0])
                n_evaluated += 1
                if shift_err[i] > best:
                    best, kind = shift_err[i], "shift"
            if np.isfinite(best) and ascent_steps > 0:
                if has_shift:
                    pool = {k: np.concatenate([delta[k], shift[k]]) for k in delta}
                    pool_err = np.concatenate([errs, [shift_err[i]]])
                else:
                    pool, pool_err = delta, errs
                a_err, evals = _hill_climb(ev, pool, pool_err, beta, norm, ascent_starts, ascent_steps,
                                           ascent_candidates, rng)
                n_evaluated += evals
                ascent_err[i] = a_err
                if a_err > best:
                    best, kind = a_err, "ascent"
        shell_max[i] = best
        shell_kind.append(kind)
        if progress:
            elapsed = time.perf_counter() - start
            eta = elapsed / (i + 1) * (n - i - 1)
            print(
                f"perturbation_curve: beta {i + 1}/{n} = {beta:.3g}: {n_evaluated} perturbed models evaluated, "
                f"{int(np.sum(~np.isfinite(errs)))} diverged at this beta; {elapsed:.1f}s elapsed, ETA {eta:.1f}s",
                file=sys.stderr,
            )

    max_error, arg = ball_sup(shell_max)
    with np.errstate(invalid="ignore"):
        mean_error = sample_errors.mean(axis=1)
    median_error = np.median(sample_errors, axis=1)
    elapsed = time.perf_counter() - start
    success = bool(np.isfinite(error0))
    message = "" if success else "the unperturbed model diverges (E(0) = inf): every perturbed error is meaningless."
    settings = {
        "n_samples": n_samples, "norm": norm, "radius": radius, "adversarial": adversarial, "error": error,
        "divergence": divergence, "t_grid": t_grid, "dt": dt, "substeps": substeps,
        "test_shape": None if X_test is None else X_test.shape, "ascent_steps": ascent_steps,
        "ascent_candidates": ascent_candidates, "ascent_starts": ascent_starts,
        "n_evaluated": n_evaluated, "seconds": elapsed,
    }
    return PerturbationCurve(
        betas=betas, max_error=max_error, shell_max_error=shell_max, mean_error=mean_error,
        median_error=median_error, sample_errors=sample_errors,
        n_diverged=np.sum(~np.isfinite(sample_errors), axis=1).astype(int), shift_error=shift_err,
        ascent_error=ascent_err, argmax_kind=tuple(shell_kind[j] for j in arg), argmax_beta=betas[arg].copy(),
        error0=error0, model=model, settings=settings, success=success, message=message,
        directions={k: v.copy() for k, v in dirs.items()},
    )


def _check_directions(model, directions, n_samples: int) -> dict:
    if not isinstance(directions, Mapping):
        raise TypeError(f"`directions` must be a dict of arrays (block name -> (n_samples, ...)); got {describe(directions)}.")
    blocks = perturbation_blocks(model)
    if set(directions) != set(blocks):
        raise ValueError(f"`directions` must have exactly the blocks {sorted(blocks)}; got {sorted(directions)}.")
    out = {}
    for name, shape in blocks.items():
        d = as_float_array(f"directions[{name!r}]", directions[name], copy=True)
        if d.shape != (n_samples, *shape):
            raise ValueError(f"`directions[{name!r}]` must have shape {(n_samples, *shape)} (n_samples, block); "
                             f"got {d.shape}.")
        out[name] = d
    return out


def _hill_climb(ev, pool, pool_err, beta, norm, starts, steps, candidates, rng):
    """Random-restart hill climb on the error inside the ball of radius ``beta``.

    Returns the best error found by the climb and the number of evaluations.
    """
    order = np.argsort(-pool_err, kind="stable")[:starts]
    cur = {k: v[order] for k, v in pool.items()}
    cur_err = pool_err[order].copy()
    evals = 0
    S = cur_err.size
    for _ in range(steps):
        # Proposals: S * candidates random steps of size 0.3 beta in the chosen norm.
        step = unit_directions(ev.model, S * candidates, norm, rng)
        prop = {k: np.repeat(cur[k], candidates, axis=0) + _ASCENT_STEP * beta * step[k] for k in cur}
        prop = _project(prop, beta, norm)
        e = ev.errors(prop).reshape(S, candidates)
        evals += S * candidates
        j = np.argmax(e, axis=1)
        better = e[np.arange(S), j] > cur_err
        for s in np.flatnonzero(better):
            cur_err[s] = e[s, j[s]]
            for k in cur:
                cur[k][s] = prop[k][s * candidates + j[s]]
        if not np.all(np.isfinite(cur_err)):
            break
    return float(cur_err.max()), evals


# --------------------------------------------------------------------------
# stability_boundary


@dataclass(frozen=True)
class Trend:
    """Log-log trend ``log value ~ slope * log m`` (:func:`scipy.stats.linregress`).

    ``stderr`` is NaN with fewer than three points; ``n`` counts the finite,
    positive values used.
    """

    slope: float
    stderr: float
    intercept: float
    n: int


@dataclass(frozen=True, eq=False)
class StabilityBoundary:
    """Result of :func:`stability_boundary`.

    Attributes
    ----------
    widths : ndarray of int, shape (w,)
        Sorted widths ``m``.
    error0 : ndarray, shape (w,)
        ``E_m(0)``.
    margin : ndarray, shape (w,)
        Spectral margin ``-alpha(W_m)`` (``1 - rho(W_m)`` for a DiscreteRNN);
        NaN where the curve carries no model.
    radius : ndarray, shape (w,)
        Complex stability radius of ``W_m`` (:func:`dynmem.spectra.stability_radius`);
        0 for a non-Hurwitz ``W_m``, NaN for a DiscreteRNN or no model.
    blowup : ndarray, shape (w,)
        Smallest ``beta`` with ``E_m(beta) > level_m`` (log-interpolated);
        ``inf`` if never exceeded on the grid; ``betas[0]`` (an upper bound)
        if already exceeded there.
    level : ndarray, shape (w,)
        ``max(K E_m(0), level)`` used for ``blowup``.
    crossing : ndarray, shape (w - 1,)
        First ``beta`` where ``E_{m'}`` (the wider model) catches up with
        ``E_m`` from below, for consecutive widths; NaN if it never does.
    crossings : tuple of ndarray
        All sign changes of ``E_{m'} - E_m`` for each consecutive pair.
    trends : dict
        ``"margin"``, ``"radius"``, ``"blowup"``, ``"crossing"`` (against
        ``sqrt(m m')``) and ``"error0"`` -> :class:`Trend`.
    verdict : str
        ``"stable approximation"``, ``"unstable (boundary shrinks with m)"``
        or ``"undetermined"``.
    note : str
        How the verdict was reached.
    settings : dict
    """

    widths: np.ndarray
    error0: np.ndarray
    margin: np.ndarray
    radius: np.ndarray
    blowup: np.ndarray
    level: np.ndarray
    crossing: np.ndarray
    crossings: tuple
    trends: dict
    verdict: str
    note: str
    settings: dict

    def table(self) -> str:
        """A plain-text per-width table."""
        lines = [f"{'m':>5} {'E(0)':>10} {'margin':>10} {'radius':>10} {'blow-up':>10} {'crossing->next':>15}"]
        for i, m in enumerate(self.widths):
            cx = self.crossing[i] if i < self.crossing.size else np.nan
            lines.append(f"{m:>5d} {self.error0[i]:>10.3g} {self.margin[i]:>10.3g} {self.radius[i]:>10.3g} "
                         f"{self.blowup[i]:>10.3g} {cx:>15.3g}")
        return "\n".join(lines)


def _log(x):
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(x, dtype=float))


def crossings_of(betas, e1, e2):
    """Sign changes of ``log e2 - log e1``, log-log interpolated; (first upward crossing, all)."""
    lb = np.log(betas)
    l1, l2 = _log(e1), _log(e2)
    with np.errstate(invalid="ignore"):
        g = l2 - l1
    g = np.where(np.isnan(g), 0.0, g)  # both inf (both diverged) or both zero: equal
    first, every = np.nan, []
    for i in range(g.size):
        if i == 0:
            if g[0] == 0.0:
                every.append(betas[0])
            continue
        a, b = g[i - 1], g[i]
        if b == 0.0 and a != 0.0:
            x = betas[i] if np.isfinite(l1[i]) else math.sqrt(betas[i - 1] * betas[i])
        elif a * b < 0:
            if np.isfinite(a) and np.isfinite(b):
                x = math.exp(lb[i - 1] + a / (a - b) * (lb[i] - lb[i - 1]))
            else:
                x = math.sqrt(betas[i - 1] * betas[i])  # an endpoint diverged: no slope to interpolate
        else:
            continue
        every.append(x)
        if np.isnan(first) and a < 0:
            first = x
    return first, np.array(every)


def first_exceed(betas, e, level):
    """Smallest beta with ``e(beta) > level`` on the piecewise log-log interpolant."""
    above = e > level
    if not np.any(above):
        return np.inf
    i = int(np.argmax(above))
    if i == 0:
        return float(betas[0])
    lo, hi = e[i - 1], e[i]
    if not (np.isfinite(hi) and lo > 0):
        return math.sqrt(betas[i - 1] * betas[i])  # no finite log slope: geometric midpoint
    f = (math.log(level) - math.log(lo)) / (math.log(hi) - math.log(lo)) if hi > lo else 1.0
    return math.exp(math.log(betas[i - 1]) + f * (math.log(betas[i]) - math.log(betas[i - 1])))


def _trend(x, v) -> Trend:
    fit = loglog_slope(np.asarray(x, float), np.asarray(v, float))
    return Trend(fit.slope, fit.stderr if fit.n_points >= 3 else np.nan, fit.intercept, fit.n_points)


def _spectra(model):
    if model is None or not isinstance(model, _RNNS):
        return np.nan, np.nan
    W = np.asarray(model.W)
    if isinstance(model, Recurrence) and not isinstance(model, EulerStep):  # a map: its margin is 1 - rho(W)
        return 1.0 - spectral_radius(W), np.nan
    margin = -spectral_abscissa(W)
    if margin <= 0:
        return margin, 0.0
    return margin, float(stability_radius(W).value)


def stability_boundary(
    curves: dict,
    *,
    K: float = 10.0,
    which: str = "max",
    level: float | None = None,
    slope_tol: float = 0.3,
    error_floor: float = 1e-9,
) -> StabilityBoundary:
    """Estimate how the stability boundary moves with the width (docs/theory.md section 3).

    Per width ``m``: crossing points with the next width's curve, the blow-up
    threshold ``min{beta : E_m(beta) > max(K E_m(0), level)}``, the spectral
    margin ``-alpha(W_m)`` (``W + beta I`` loses stability exactly there) and
    the complex stability radius.  Between grid points curves are interpolated
    linearly in ``(log beta, log E)``, so crossings and thresholds are exact for
    piecewise log-linear curves; where an endpoint is infinite (diverged) the
    geometric midpoint of the bracketing ``betas`` is reported.

    Verdict (slopes of log-log fits against ``m``, :func:`scipy.stats.linregress`):

    * "unstable (boundary shrinks with m)": the margin or the blow-up trend has
      slope ``< -slope_tol`` and, with three or more widths, ``slope + 2 stderr < 0``;
    * "stable approximation": every available primary trend (margin, blow-up)
      has slope ``> -slope_tol`` and ``E_m(0)`` falls (negative slope) or sits
      below ``error_floor`` at every width;
    * otherwise "undetermined".

    Crossings are reported but are diagnostics only (docs/theory.md section 4: they
    move up to 10x between seeds with 10 perturbations).

    Parameters
    ----------
    curves : dict
        ``width -> PerturbationCurve``, at least two widths, all on the same
        ``betas``.  Each curve's ``model`` supplies ``W_m``.
    K : float
        Blow-up factor.
    which : {"max", "mean", "median", "shell_max"}
        The statistic compared.
    level : float, optional
        Absolute floor for the blow-up level (useful when ``E_m(0)`` is at
        rounding level, e.g. exact fits).
    slope_tol : float
    error_floor : float

    Returns
    -------
    StabilityBoundary
    """
    if not isinstance(curves, dict) or len(curves) < 2:
        raise ValueError(f"`curves` must be a dict width -> PerturbationCurve with at least two widths; got {describe(curves)}.")
    for m, c in curves.items():
        check_int("width", m, minimum=1)
        if not isinstance(c, PerturbationCurve):
            raise TypeError(f"`curves[{m}]` must be a PerturbationCurve; got {describe(c)}.")
    K = check_positive("K", K)
    which = check_choice("which", which, ("max", "mean", "median", "shell_max"))
    if level is not None:
        level = check_positive("level", level)
    slope_tol = check_positive("slope_tol", slope_tol)
    error_floor = check_positive("error_floor", error_floor)
    widths = np.array(sorted(int(m) for m in curves))
    cs = [curves[m] for m in widths]
    betas = cs[0].betas
    for m, c in zip(widths, cs):
        if c.betas.shape != betas.shape or not np.array_equal(c.betas, betas):
            raise ValueError(f"`curves` must share one beta grid; width {m} differs from width {widths[0]}.")

    error0 = np.array([c.error0 for c in cs])
    spec = [_spectra(c.model) for c in cs]
    margin = np.array([s[0] for s in spec])
    radius = np.array([s[1] for s in spec])
    levels = np.array([max(K * e0, level or 0.0) for e0 in error0])
    blowup = np.array([first_exceed(betas, c.curve(which), L) for c, L in zip(cs, levels)])
    crossing, crossings = [], []
    for a, b in zip(cs[:-1], cs[1:]):
        first, every = crossings_of(betas, a.curve(which), b.curve(which))
        crossing.append(first)
        crossings.append(every)
    crossing = np.array(crossing)
    mid = np.sqrt(widths[:-1] * widths[1:].astype(float))
    trends = {
        "margin": _trend(widths, margin),
        "radius": _trend(widths, radius),
        "blowup": _trend(widths, blowup),
        "crossing": _trend(mid, crossing),
        "error0": _trend(widths, error0),
    }

    def shrinking(t: Trend) -> bool:
        return np.isfinite(t.slope) and t.slope < -slope_tol and (not np.isfinite(t.stderr) or t.slope + 2 * t.stderr < 0)

    def steady(t: Trend) -> bool:
        return np.isfinite(t.slope) and t.slope > -slope_tol

    primary = {k: trends[k] for k in ("margin", "blowup") if np.isfinite(trends[k].slope)}
    e0_falls = (np.isfinite(trends["error0"].slope) and trends["error0"].slope < 0) or bool(
        np.all(error0 <= error_floor))
    parts = [f"{k} slope {t.slope:.3g} +- {t.stderr:.2g} (n={t.n})" for k, t in trends.items()]
    if any(shrinking(t) for t in primary.values()):
        verdict = "unstable (boundary shrinks with m)"
        why = "a primary measure (spectral margin or blow-up threshold) shrinks with m faster than m^-%g" % slope_tol
    elif primary and all(steady(t) for t in primary.values()) and e0_falls:
        verdict = "stable approximation"
        why = "margin and blow-up threshold do not shrink with m and E_m(0) falls (or sits at the floor)"
    else:
        verdict = "undetermined"
        if not primary:
            why = "no primary measure available (need >= 2 widths with finite margins or blow-up thresholds)"
        elif not e0_falls:
            why = "the boundary does not shrink but E_m(0) does not fall with m"
        else:
            why = "slopes are between the thresholds or not significant"
    if any(np.isfinite(t.slope) and not np.isfinite(t.stderr) for t in primary.values()):
        why += "; with two widths no standard error is available, so the slopes are taken at face value"
    note = f"{verdict}: {why}. Trends: " + "; ".join(parts) + ". Crossings are diagnostics only."
    settings = {"K": K, "which": which, "level": level, "slope_tol": slope_tol, "error_floor": error_floor,
                "betas": betas}
    return StabilityBoundary(widths=widths, error0=error0, margin=margin, radius=radius, blowup=blowup,
                             level=levels, crossing=crossing, crossings=tuple(crossings), trends=trends,
                             verdict=verdict, note=note, settings=settings)
