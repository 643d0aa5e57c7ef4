"""The record of an explicit Runge-Kutta pair, checked when it is built (at import).

A pair is data: the Butcher tableau ``(C, A, B)``, the error weights ``E``
(higher- minus lower-order solution, FSAL stage included), the dense-output
coefficients ``P``, the orders and the few facts the one step loop of
:mod:`dynmem.ode.loop` reads (diffrax's ``ButcherTableau``, scipy's
``RungeKutta`` class attributes).  :meth:`Pair.tables` packs it for the
compiled loop; the loop takes the number of stages from the array shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Pair", "DENSE_POLYNOMIAL", "DENSE_HAIRER"]

DENSE_POLYNOMIAL = 0
"""Dense output ``y + h sum_j K_j sum_k P[j, k] x^(k+1)`` (the 5(4) pairs)."""
DENSE_HAIRER = 1
"""Dense output of Hairer's DOP853 form: extra stages, then nested ``x`` / ``1 - x`` factors with ``P`` the
higher coefficients (scipy's ``Dop853DenseOutput``)."""


def _frozen(a) -> np.ndarray:
    out = np.ascontiguousarray(np.array(a, dtype=float))
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class Pair:
    """An explicit embedded Runge-Kutta pair with FSAL and a continuous extension.

    Attributes
    ----------
    name : str
        The ``method`` name of the compiled engine.
    C : ndarray, shape (s,)
        Stage nodes; ``C[0] = 0``; rows past the step's own stages belong to
        dense-output stages (DOP853).
    A : ndarray, shape (s, s - 1) or (s, s)
        Stage coefficients, strictly lower triangular; ``A[i].sum() == C[i]``.
    B : ndarray, shape (n,)
        Propagation weights of the ``n`` stages of a step (``sum B = 1``);
        stage ``n`` is the FSAL stage ``f(t + h, y_new)``.
    E : ndarray, shape (n + 1,)
        Error weights (``sum E = 0``), FSAL stage included.
    P : ndarray
        Dense-output coefficients, read as ``dense`` says.
    order, error_order : int
        Order of propagation and of the error estimate; the controller's
        exponent is ``1 / (error_order + 1)``.
    E2 : ndarray, shape (0,) or (n + 1,)
        A second error estimate (DOP853's third-order one, ``sum E2 = 0``):
        with it the error norm is Hairer's ``|h| ||e||^2 / sqrt(||e||^2 + 0.01 ||e2||^2)``
        instead of scipy's RMS norm of ``h e``.
    dense : int
        :data:`DENSE_POLYNOMIAL` or :data:`DENSE_HAIRER`.
    preactivation : bool
        The CTRNN stages are formed in pre-activation space (``W y`` and
        ``W K_j`` kept beside ``y`` and ``K_j``: one matrix product per stage),
        else from the state (one product per field evaluation).  Only a
        pre-activation pair keeps the step store the adjoints read.
    fsal : bool
        First same as last (the loop assumes it: checked).
    """

    name: str
    C: np.ndarray
    A: np.ndarray
    B: np.ndarray
    E: np.ndarray
    P: np.ndarray
    order: int
    error_order: int
    E2: np.ndarray = field(default_factory=lambda: np.zeros(0))
    dense: int = DENSE_POLYNOMIAL
    preactivation: bool = True
    fsal: bool = True

    def __post_init__(self):
        for name in ("C", "A", "B", "E", "P", "E2"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        C, A, B, E, E2 = self.C, self.A, self.B, self.E, self.E2
        n = B.size
        if not self.fsal:
            raise ValueError(f"pair {self.name!r}: the step loop needs an FSAL pair.")
        if C.ndim != 1 or A.shape[0] != C.size or A.ndim != 2 or A.shape[1] < C.size - 1:
            raise ValueError(f"pair {self.name!r}: C must be (s,) and A (s, >= s - 1); got {C.shape}, {A.shape}.")
        if C[0] != 0.0 or np.any(np.triu(A[:, :C.size]) != 0.0):
            raise ValueError(f"pair {self.name!r}: A must be strictly lower triangular with C[0] = 0.")
        if C.size < n or E.shape != (n + 1,) or E2.size not in (0, n + 1):
            raise ValueError(f"pair {self.name!r}: with {n} weights E must have shape ({n + 1},); got {E.shape}.")
        if not np.allclose(A.sum(axis=1), C, rtol=0, atol=1e-14):
            raise ValueError(f"pair {self.name!r}: the row sums of A must equal C.")
        if abs(B.sum() - 1.0) > 1e-14:
            raise ValueError(f"pair {self.name!r}: the weights B must sum to 1; got {B.sum()!r}.")
        for nm, e in (("E", E), ("E2", E2)):
            if e.size and abs(e.sum()) > 1e-14:
                raise ValueError(f"pair {self.name!r}: the error weights {nm} must sum to 0; got {e.sum()!r}.")
        if self.dense == DENSE_POLYNOMIAL:
            # b_j(x) = sum_k P[j, k] x^(k+1): b_j(1) = B_j (0 for the FSAL stage) and sum_j b_j(x) = x
            if self.P.shape[0] != n + 1 or not np.allclose(self.P.sum(axis=1), np.append(B, 0.0), rtol=0, atol=1e-13):
                raise ValueError(f"pair {self.name!r}: the dense output must give B at x = 1.")
            if not np.allclose(self.P.sum(axis=0), np.eye(self.P.shape[1])[0], rtol=0, atol=1e-13):
                raise ValueError(f"pair {self.name!r}: the dense output must satisfy sum_j b_j(x) = x.")
        elif self.dense == DENSE_HAIRER:
            if self.P.ndim != 2 or self.P.shape[1] != self.stages:
                raise ValueError(f"pair {self.name!r}: Hairer's dense output needs P of shape (r, {self.stages}).")
        else:
            raise ValueError(f"pair {self.name!r}: unknown dense-output form {self.dense!r}.")

    @property
    def stages(self) -> int:
        """Stage derivatives a step keeps: its own, the FSAL one and any dense-output stages."""
        return max(self.C.size, self.B.size + 1)

    @property
    def exponent(self) -> float:
        """The controller's exponent ``1 / (error_order + 1)``."""
        return 1.0 / (self.error_order + 1)

    def tables(self) -> tuple:
        """``(C, A, B, E, P, exponent)`` for the compiled loop (one type for every pair)."""
        return self.C, self.A, self.B, self.E, self.P, float(self.exponent)

    def hooks(self) -> tuple:
        """``(E2, hairer, state)`` for the compiled loop: ``E2`` (the second error estimate), ``hairer`` (True:
        Hairer's dense output) and ``state`` (True: stages formed from the state), each ``None`` when the pair
        does without it.

        They are arguments of their own, each ``None`` or not by its type: numba decides the loop's tests of
        an argument against ``None`` when it compiles it and drops the code of an absent hook, so the 5(4)
        pairs share one specialisation free of DOP853's code (and DOP853 compiles its own when it is used).
        """
        return (self.E2 if self.E2.size else None, True if self.dense == DENSE_HAIRER else None,
                None if self.preactivation else True)
