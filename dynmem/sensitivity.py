"""Sensitivity of a diagonal recurrence's state to its eigenvalues ([ZO]; docs/theory.md section 9).

For ``h_t = lambda h_{t-1} + b x_t`` with i.i.d. zero-mean unit-variance real input,
``dh_t/dlambda = sum_{k>=1} k lambda^{k-1} b x_{t-k}``, so in the stationary regime

.. math::

    E|h|^2 = \\frac{|b|^2}{1 - |\\lambda|^2}, \\qquad
    E\\left|\\frac{\\partial h}{\\partial \\lambda}\\right|^2 = |b|^2 \\sum_{k\\ge1} k^2 |\\lambda|^{2(k-1)}
    = |b|^2\\,\\frac{1 + |\\lambda|^2}{(1 - |\\lambda|^2)^3}

(the curse of memory on the gradient side: the sensitivity blows up as
``|lambda| -> 1`` one power faster than the state).  :func:`lambda_sensitivity`
measures it on a model by running the recurrence with its tangent
``g_t = lambda g_{t-1} + h_{t-1}`` on simulated input.

References
----------
.. [ZO] N. Zucchet, A. Orvieto, *Recurrent neural networks: vanishing and exploding
   gradients are not the end of the story*, NeurIPS 2024, arXiv:2405.21064.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import as_float_array, check_int, check_rng, describe

__all__ = ["sensitivity_law", "LambdaSensitivity", "lambda_sensitivity"]


def sensitivity_law(lam) -> np.ndarray:
    """``(1 + |lambda|^2) / (1 - |lambda|^2)^3``: stationary ``E|dh/dlambda|^2`` per unit ``|b|^2``; shape of ``lam``."""
    arr = np.asarray(lam)
    if not np.issubdtype(arr.dtype, np.number) or arr.dtype == bool:
        raise TypeError(f"`lam` must be real or complex numbers; got {describe(lam)}.")
    arr = arr.astype(complex)
    bad = ~np.isfinite(arr)
    if np.any(bad):
        raise ValueError(f"`lam` must be finite; got {arr[bad].ravel()[0]} at index {tuple(int(i) for i in np.argwhere(bad)[0])}.")
    r2 = np.abs(arr) ** 2
    if np.any(r2 >= 1):
        raise ValueError(f"`lam` must lie inside the unit disc; got max |lam| = {np.sqrt(r2.max()):.6g}.")
    return (1 + r2) / (1 - r2) ** 3


@dataclass(frozen=True, eq=False)
class LambdaSensitivity:
    """Result of :func:`lambda_sensitivity`.

    Attributes
    ----------
    lam : ndarray of complex, shape (m,)
    mean_square : ndarray, shape (m,)
        Monte Carlo ``E|dh/dlambda|^2`` per unit ``|b|^2``.
    stderr : ndarray, shape (m,)
        Its standard error over the independent sequences.
    law : ndarray, shape (m,)
        :func:`sensitivity_law`.
    state_mean_square : ndarray, shape (m,)
        ``E|h|^2`` per unit ``|b|^2`` (law ``1 / (1 - |lambda|^2)``).
    n_sequences, n_steps : int
    """

    lam: np.ndarray
    mean_square: np.ndarray
    stderr: np.ndarray
    law: np.ndarray
    state_mean_square: np.ndarray
    n_sequences: int
    n_steps: int


def lambda_sensitivity(model, *, n_sequences: int = 2000, n_steps: int | None = None, rng=None) -> LambdaSensitivity:
    """Measure ``E|dh_T/dlambda|^2`` of a diagonal recurrence on i.i.d. N(0, 1) input.

    Parameters
    ----------
    model : object with ``Lambda_bar`` or array_like of complex
        A :class:`~dynmem.ssm.DiscreteDiagonalSSM` (its eigenvalues; ``b = 1``
        per state, the law scales with ``|b|^2``) or the eigenvalues themselves, shape (m,).
    n_sequences : int
        Independent sequences (one sample of ``dh_T/dlambda`` each).
    n_steps : int, optional
        Sequence length T; default enough for ``|lambda|^{2T} < 1e-12`` (stationarity).
    rng : None, int or Generator

    Returns
    -------
    LambdaSensitivity
    """
    lam = getattr(model, "Lambda_bar", model)
    lam = np.asarray(lam)
    if lam.ndim != 1 or not np.issubdtype(lam.dtype, np.number):
        raise TypeError(f"`model` must be a DiscreteDiagonalSSM or a 1-d array of eigenvalues; got {describe(model)}.")
    lam = lam.astype(complex)
    law = sensitivity_law(lam)
    ns = check_int("n_sequences", n_sequences, minimum=2)
    r = float(np.abs(lam).max())
    T = check_int("n_steps", n_steps, minimum=1) if n_steps is not None else \
        int(np.ceil(np.log(1e-12) / (2 * np.log(max(r, 1e-300))))) + 10 if r > 0 else 10
    rng = check_rng("rng", rng)
    h = np.zeros((ns, lam.size), complex)
    g = np.zeros_like(h)
    for _ in range(T):
        x = rng.standard_normal((ns, 1))
        g = lam * g + h
        h = lam * h + x
    gs = np.abs(g) ** 2
    return LambdaSensitivity(lam, gs.mean(axis=0), gs.std(axis=0, ddof=1) / np.sqrt(ns), law,
                             (np.abs(h) ** 2).mean(axis=0), ns, T)
