"""Public hypothesis strategies for dynmem models, matrices, inputs and targets.

Use them in your own property tests::

    from hypothesis import given
    from dynmem.strategies import ctrnns

    @given(ctrnns(max_hidden=6))
    def test_something(model): ...

Every strategy *builds* valid objects (a stable matrix is shifted to its
target spectral abscissa, a prescribed spectrum is conjugated by a matrix of
bounded condition number, ...), never filters them, so hypothesis never
rejects draws and no health check fires.  Bounds are keyword-only and are
checked when the strategy is created (``ValueError`` naming the argument).

Strategies
----------
Matrices
    :func:`stable_matrices`, :func:`normal_stable_matrices`,
    :func:`nonnormal_stable_matrices`, :func:`matrices_with_eigenvalues`.
Models
    :func:`ctrnns`, :func:`linear_rnns`, :func:`discrete_rnns` (also
    ``EulerRNN`` with ``kinds=("discrete", "euler")``), :func:`euler_rnns`,
    :func:`gated_cells` (GRU / LSTM cells, continuous-time GRU),
    :func:`diagonal_ssms` (continuous or discretised diagonal SSMs),
    :func:`stacks` (:class:`~dynmem.stack.Stack` of discrete layers).
Inputs
    :func:`piecewise_inputs`, :func:`sequences`, :func:`input_sequences`.
Targets
    :func:`memory_targets` (targets of :mod:`dynmem.targets` whose
    ``.decay`` is known in closed form).
Reparameterisations
    :func:`reparameterisations` (:class:`dynmem.reparam.Reparam` objects).

Randomness that does not need to shrink (Gaussian matrices, orthogonal bases)
comes from a ``numpy`` generator seeded by a hypothesis-drawn integer, so a
failing example replays exactly; the quantities that matter (sizes, margins,
eigenvalues, rates, exponents) are drawn by hypothesis itself and shrink.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st

from ._validation import check_choice, check_int, check_nonnegative, check_positive, describe
from .activations import available_activations
from .inputs import PiecewiseConstant, PiecewiseLinear
from .models.gated import CTGRU, GRUCell, LSTMCell
from .models import CTRNN, DiscreteRNN, EulerRNN, LinearRNN
from .models.ssm import DiagonalSSM
from .models.stack import Stack
from .targets import ExponentialKernel, ExponentialSum, PowerLawKernel

__all__ = [
    "stable_matrices",
    "normal_stable_matrices",
    "nonnormal_stable_matrices",
    "MatrixWithEigenvalues",
    "matrices_with_eigenvalues",
    "ctrnns",
    "linear_rnns",
    "discrete_rnns",
    "euler_rnns",
    "gated_cells",
    "diagonal_ssms",
    "stacks",
    "piecewise_inputs",
    "sequences",
    "input_sequences",
    "memory_targets",
    "reparameterisations",
]

_SMOOTH = ("tanh", "identity")
_DISCRETE_ACTS = ("tanh", "identity", "relu", "hardtanh")


# --------------------------------------------------------------------------
# argument checks (run when the strategy is created, not at every draw)


def _check_range(lo_name: str, lo, hi_name: str, hi, *, positive: bool = False, integer: bool = False):
    if integer:
        lo, hi = check_int(lo_name, lo, minimum=1), check_int(hi_name, hi, minimum=1)
    elif positive:
        lo, hi = check_positive(lo_name, lo), check_positive(hi_name, hi)
    else:
        lo, hi = check_nonnegative(lo_name, lo), check_nonnegative(hi_name, hi)
    if lo > hi:
        raise ValueError(f"`{lo_name}` must be <= `{hi_name}`; got {lo_name} = {lo} > {hi_name} = {hi}.")
    return lo, hi


def _check_activations(activations) -> tuple:
    acts = tuple(activations)
    if not acts:
        raise ValueError("`activations` must name at least one activation; got an empty sequence.")
    for a in acts:
        check_choice("activations", a, available_activations())
    return acts


@st.composite
def _seeds(draw):
    return draw(st.integers(min_value=0, max_value=2**32 - 1))


def _orthogonal(m: int, rng: np.random.Generator) -> np.ndarray:
    """Haar-distributed orthogonal matrix (QR of a Gaussian with the sign fix)."""
    Q, R = np.linalg.qr(rng.standard_normal((m, m)))
    return Q * np.where(np.diag(R) < 0, -1.0, 1.0)


def _real_block_diagonal(real: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Real block-diagonal matrix with eigenvalues ``real`` and ``pairs +- conj``.

    A pair ``a + i b`` (``b > 0``) becomes the normal block ``[[a, b], [-b, a]]``.
    """
    m = real.size + 2 * pairs.size
    D = np.zeros((m, m))
    D[np.arange(real.size), np.arange(real.size)] = real
    for k, lam in enumerate(pairs):
        i = real.size + 2 * k
        D[i, i] = D[i + 1, i + 1] = lam.real
        D[i, i + 1], D[i + 1, i] = lam.imag, -lam.imag
    return D


@st.composite
def _hurwitz_spectrum(draw, m: int, margin: float, spread: float, complex_pairs: bool, max_imag: float):
    """Real parts in ``[-(margin + spread), -margin]``, the largest exactly ``-margin``."""
    n_pairs = draw(st.integers(min_value=0, max_value=m // 2)) if complex_pairs else 0
    n_real = m - 2 * n_pairs
    k = n_real + n_pairs
    offsets = draw(st.lists(st.floats(min_value=0.0, max_value=spread), min_size=k, max_size=k))
    offsets = np.asarray(offsets, dtype=float)
    offsets[draw(st.integers(min_value=0, max_value=k - 1))] = 0.0  # pin the abscissa
    re = -(margin + offsets)
    im = np.asarray(draw(st.lists(st.floats(min_value=0.05 * max_imag, max_value=max_imag),
                                  min_size=n_pairs, max_size=n_pairs)), dtype=float)
    return re[:n_real], re[n_real:] + 1j * im


# --------------------------------------------------------------------------
# matrices


@st.composite
def stable_matrices(draw, *, min_size: int = 1, max_size: int = 6, min_margin: float = 0.05, max_margin: float = 2.0,
                    normal: bool | None = None):
    """Square Hurwitz matrices with spectral abscissa in ``[-max_margin, -min_margin]``.

    Built as a Gaussian matrix (variance ``1/m``) shifted so that
    ``alpha(W) = -margin`` exactly; ``normal=True`` symmetrises first, ``None``
    lets hypothesis choose.

    Examples
    --------
    >>> from hypothesis import given
    >>> from dynmem.spectra import is_hurwitz
    >>> @given(stable_matrices(max_size=4, min_margin=0.1))
    ... def test(W):
    ...     assert is_hurwitz(W, margin=0.09)
    >>> test()
    """
    m = draw(st.integers(min_value=min_size, max_value=max_size))
    margin = draw(st.floats(min_value=min_margin, max_value=max_margin))
    sym = draw(st.booleans()) if normal is None else normal
    rng = np.random.default_rng(draw(_seeds()))
    A = rng.standard_normal((m, m)) / np.sqrt(m)
    if sym:
        A = 0.5 * (A + A.T)
    alpha = float(np.max(np.linalg.eigvals(A).real))
    return A - (alpha + margin) * np.eye(m)


def normal_stable_matrices(*, min_size: int = 1, max_size: int = 6, min_margin: float = 0.05,
                           max_margin: float = 2.0, max_spread: float = 2.0, complex_pairs: bool = True,
                           max_imag: float = 2.0):
    """Normal Hurwitz matrices ``W = Q D Q^T`` with spectral abscissa ``-margin``.

    ``D`` is real block-diagonal: real eigenvalues on the diagonal and, when
    ``complex_pairs`` is true, ``2 x 2`` blocks ``[[a, b], [-b, a]]`` for pairs
    ``a +- i b``; ``Q`` is a Haar-random orthogonal matrix.  Real parts lie in
    ``[-(margin + max_spread), -margin]`` with one of them exactly ``-margin``
    (``margin`` drawn in ``[min_margin, max_margin]``); imaginary parts in
    ``[0.05 max_imag, max_imag]``.  Hence ``W W^T = W^T W`` to rounding, and
    ``|e^{Wt}|_2 = e^{-margin t}``.

    Examples
    --------
    >>> import numpy as np
    >>> from hypothesis import given
    >>> @given(normal_stable_matrices(max_size=4))
    ... def test(W):
    ...     assert np.allclose(W @ W.T, W.T @ W, atol=1e-12)
    >>> test()
    """
    min_size, max_size = _check_range("min_size", min_size, "max_size", max_size, integer=True)
    min_margin, max_margin = _check_range("min_margin", min_margin, "max_margin", max_margin, positive=True)
    max_spread = check_nonnegative("max_spread", max_spread)
    max_imag = check_positive("max_imag", max_imag)
    complex_pairs = bool(complex_pairs)

    @st.composite
    def build(draw):
        m = draw(st.integers(min_value=min_size, max_value=max_size))
        margin = draw(st.floats(min_value=min_margin, max_value=max_margin))
        real, pairs = draw(_hurwitz_spectrum(m, margin, max_spread, complex_pairs, max_imag))
        Q = _orthogonal(m, np.random.default_rng(draw(_seeds())))
        return Q @ _real_block_diagonal(real, pairs) @ Q.T

    return build()


def nonnormal_stable_matrices(*, min_size: int = 2, max_size: int = 6, min_margin: float = 0.05,
                              max_margin: float = 2.0, max_spread: float = 2.0, min_departure: float = 1.0,
                              max_departure: float = 5.0, min_gap: float = 0.0):
    """Non-normal Hurwitz matrices ``W = Q T Q^T`` with a prescribed departure from normality.

    ``T`` is upper triangular: its diagonal holds real eigenvalues in
    ``[-(margin + max_spread), -margin]`` (one exactly ``-margin``) and its
    strictly upper part ``N`` is Gaussian, rescaled so that
    ``|N|_F = departure``, drawn in ``[min_departure, max_departure]``;
    ``Q`` is Haar orthogonal.  ``Q T Q^T`` is then a real Schur form, so the
    spectrum is the diagonal of ``T`` and Henrici's departure from normality

    .. math::

        \\operatorname{dep}(W) = \\Big(\\|W\\|_F^2 - \\sum_i |\\lambda_i|^2\\Big)^{1/2} = \\|N\\|_F

    equals ``departure`` exactly (up to rounding);
    :func:`dynmem.testing.departure_from_normality` measures it.  Transient
    growth ``|e^{Wt}|_2 > 1`` is typical for departures large against the margin.

    Parameters
    ----------
    min_size, max_size : int
        ``min_size >= 2`` (a 1 x 1 matrix is always normal).
    min_margin, max_margin, max_spread : float
        As in :func:`normal_stable_matrices`.
    min_departure, max_departure : float
        ``0 < min_departure <= max_departure``.
    min_gap : float
        Minimum distance between the eigenvalues, ``(max_size - 1) * min_gap
        <= max_spread``.  With the default 0, repeated eigenvalues can be
        drawn and ``W`` is then defective (Jordan-like): a ``k``-fold
        eigenvalue is computed by ``np.linalg.eigvals`` only to about
        ``(eps |W|)^{1/k}``, so ``alpha(W)`` measured numerically may exceed
        ``-margin`` by that much.  A positive gap keeps ``W`` diagonalisable
        with eigenvalue condition numbers of order ``(departure / min_gap)^{m-1}``.

    Examples
    --------
    >>> from hypothesis import given
    >>> from dynmem.testing import departure_from_normality
    >>> @given(nonnormal_stable_matrices(min_departure=2.0, max_size=4))
    ... def test(W):
    ...     assert departure_from_normality(W) >= 2.0 * (1 - 1e-9)
    >>> test()
    """
    min_size, max_size = _check_range("min_size", min_size, "max_size", max_size, integer=True)
    if min_size < 2:
        raise ValueError(f"`min_size` must be >= 2 (every 1 x 1 matrix is normal); got {min_size}.")
    min_margin, max_margin = _check_range("min_margin", min_margin, "max_margin", max_margin, positive=True)
    max_spread = check_nonnegative("max_spread", max_spread)
    min_departure, max_departure = _check_range("min_departure", min_departure, "max_departure", max_departure,
                                                positive=True)
    min_gap = check_nonnegative("min_gap", min_gap)
    if (max_size - 1) * min_gap > max_spread:
        raise ValueError(
            f"`min_gap` must satisfy (max_size - 1) * min_gap <= max_spread so that the eigenvalues fit; got "
            f"min_gap = {min_gap}, max_size = {max_size}, max_spread = {max_spread}."
        )

    @st.composite
    def build(draw):
        m = draw(st.integers(min_value=min_size, max_value=max_size))
        margin = draw(st.floats(min_value=min_margin, max_value=max_margin))
        dep = draw(st.floats(min_value=min_departure, max_value=max_departure))
        if min_gap > 0:
            room = max_spread - (m - 1) * min_gap
            extra = np.sort(np.asarray(draw(st.lists(st.floats(min_value=0.0, max_value=room), min_size=m,
                                                     max_size=m)), dtype=float))
            real = -(margin + extra - extra[0] + min_gap * np.arange(m))
        else:
            real, _ = draw(_hurwitz_spectrum(m, margin, max_spread, False, 1.0))
        rng = np.random.default_rng(draw(_seeds()))
        N = np.triu(rng.standard_normal((m, m)), k=1)
        norm = np.linalg.norm(N)
        if norm == 0.0:  # probability zero, but never divide by it
            N[0, -1], norm = 1.0, 1.0
        T = np.diag(real) + N * (dep / norm)
        Q = _orthogonal(m, rng)
        return Q @ T @ Q.T

    return build()


class MatrixWithEigenvalues(NamedTuple):
    """A real matrix with a known spectrum, drawn by :func:`matrices_with_eigenvalues`.

    Attributes
    ----------
    matrix : ndarray, shape (m, m)
        Real ``W = S D S^{-1}``.
    eigenvalues : ndarray of complex, shape (m,)
        The exact spectrum of ``W`` (real ones first, then ``a + ib, a - ib`` pairs).
    condition : float
        ``kappa_2(S) = |S|_2 |S^{-1}|_2``, at most ``max_condition``.  By
        Bauer-Fike the computed eigenvalues of ``W`` are within about
        ``condition * eps * |W|_2`` (times a small factor) of ``eigenvalues``.
    """

    matrix: np.ndarray
    eigenvalues: np.ndarray
    condition: float


def _split_spectrum(eigenvalues) -> tuple[np.ndarray, np.ndarray]:
    lam = np.atleast_1d(np.asarray(eigenvalues))
    if lam.ndim != 1 or lam.size < 1 or lam.dtype.kind not in "biufc":
        raise ValueError(f"`eigenvalues` must be a non-empty 1-D array of real or complex numbers; got {describe(eigenvalues)}.")
    lam = lam.astype(complex)
    if not np.all(np.isfinite(lam)):
        raise ValueError(f"`eigenvalues` must be finite; got {describe(lam)}.")
    real = lam[lam.imag == 0].real
    upper = lam[lam.imag > 0]
    lower = list(lam[lam.imag < 0])
    for z in upper:
        match = [k for k, w in enumerate(lower) if w == np.conj(z)]
        if not match:
            raise ValueError(
                f"`eigenvalues` of a real matrix must come in conjugate pairs; {z} has no partner {np.conj(z)} "
                f"in {describe(lam)}."
            )
        lower.pop(match[0])
    if lower:
        raise ValueError(
            f"`eigenvalues` of a real matrix must come in conjugate pairs; {lower[0]} has no partner "
            f"{np.conj(lower[0])} in {describe(lam)}."
        )
    return np.sort(real), upper


def matrices_with_eigenvalues(eigenvalues=None, *, min_size: int = 1, max_size: int = 6,
                              max_condition: float = 10.0, min_real: float = -2.0, max_real: float = -0.05,
                              max_imag: float = 2.0, complex_pairs: bool = True):
    """Real matrices with a prescribed spectrum and a bounded eigenvector condition number.

    ``W = S D S^{-1}`` where ``D`` is the real block-diagonal form of the
    spectrum (a real eigenvalue on the diagonal, a pair ``a +- ib`` as the
    block ``[[a, b], [-b, a]]``) and ``S = Q_1 diag(s) Q_2^T`` with Haar
    orthogonal ``Q_1, Q_2`` and singular values ``s`` log-uniform in
    ``[1, kappa]``, ``kappa`` drawn in ``[1, max_condition]`` (so
    ``cond_2(S) <= max_condition``).  ``W`` is real and diagonalisable over
    ``C`` with eigenvector matrix ``S V_D`` (``V_D`` unitary), so
    ``np.linalg.eigvals(W)`` recovers the spectrum to roughly
    ``condition * eps * |W|``.

    Parameters
    ----------
    eigenvalues : array_like of complex, shape (m,), or a strategy of such arrays, optional
        The spectrum; complex entries must come in conjugate pairs (checked
        here, ``ValueError``).  ``None`` draws one: ``m`` in
        ``[min_size, max_size]``, real parts in ``[min_real, max_real]``,
        imaginary parts of pairs in ``(0, max_imag]`` (pairs only when
        ``complex_pairs``).  The default bounds give Hurwitz matrices.
    max_condition : float
        Upper bound on ``cond_2(S)``, ``>= 1``.

    Returns
    -------
    SearchStrategy of MatrixWithEigenvalues
        ``(matrix, eigenvalues, condition)``.

    Examples
    --------
    >>> import numpy as np
    >>> from hypothesis import given
    >>> @given(matrices_with_eigenvalues([-1.0, -0.5 + 2j, -0.5 - 2j], max_condition=5.0))
    ... def test(draw):
    ...     lam = np.sort_complex(np.linalg.eigvals(draw.matrix))
    ...     assert np.allclose(lam, np.sort_complex(draw.eigenvalues), atol=1e-10)
    >>> test()
    """
    max_condition = check_positive("max_condition", max_condition)
    if max_condition < 1.0:
        raise ValueError(f"`max_condition` must be >= 1 (every condition number is); got {max_condition}.")
    fixed = None
    if eigenvalues is not None and not isinstance(eigenvalues, st.SearchStrategy):
        fixed = _split_spectrum(eigenvalues)
    elif eigenvalues is None:
        min_size, max_size = _check_range("min_size", min_size, "max_size", max_size, integer=True)
        for name, v in (("min_real", min_real), ("max_real", max_real)):
            if not np.isfinite(v):
                raise ValueError(f"`{name}` must be finite; got {v}.")
        if min_real > max_real:
            raise ValueError(f"`min_real` must be <= `max_real`; got {min_real} > {max_real}.")
        max_imag = check_positive("max_imag", max_imag)

    @st.composite
    def build(draw):
        if fixed is not None:
            real, pairs = fixed
        elif eigenvalues is not None:
            real, pairs = _split_spectrum(draw(eigenvalues))
        else:
            m = draw(st.integers(min_value=min_size, max_value=max_size))
            n_pairs = draw(st.integers(min_value=0, max_value=m // 2)) if complex_pairs else 0
            n_real = m - 2 * n_pairs
            re = st.floats(min_value=float(min_real), max_value=float(max_real))
            real = np.sort(np.asarray(draw(st.lists(re, min_size=n_real, max_size=n_real)), dtype=float))
            a = np.asarray(draw(st.lists(re, min_size=n_pairs, max_size=n_pairs)), dtype=float)
            b = np.asarray(draw(st.lists(st.floats(min_value=0.05 * max_imag, max_value=max_imag),
                                         min_size=n_pairs, max_size=n_pairs)), dtype=float)
            pairs = a + 1j * b
        m = real.size + 2 * pairs.size
        kappa = draw(st.floats(min_value=1.0, max_value=max_condition))
        rng = np.random.default_rng(draw(_seeds()))
        s = np.exp(rng.uniform(0.0, np.log(kappa), size=m))
        if m >= 2:
            s[0], s[-1] = 1.0, kappa  # attain the drawn condition number
        else:
            s[:] = 1.0
        Q1, Q2 = _orthogonal(m, rng), _orthogonal(m, rng)
        S = (Q1 * s) @ Q2.T
        S_inv = (Q2 / s) @ Q1.T
        W = S @ _real_block_diagonal(real, pairs) @ S_inv
        lam = np.concatenate([real.astype(complex), np.ravel(np.column_stack([pairs, np.conj(pairs)]))])
        return MatrixWithEigenvalues(W, lam, float(s.max() / s.min()))

    return build()


# --------------------------------------------------------------------------
# models


@st.composite
def ctrnns(draw, *, min_hidden: int = 1, max_hidden: int = 6, min_inputs: int = 1, max_inputs: int = 3,
           activations=_SMOOTH, min_margin: float = 0.05, max_margin: float = 2.0, bias_scale: float = 0.5):
    """CTRNNs with Hurwitz ``W`` and random ``U, b, c`` (smooth activations by default).

    ``W`` comes from :func:`stable_matrices` (``alpha(W)`` in
    ``[-max_margin, -min_margin]``); ``U ~ N(0, 1/d)``, ``b ~ N(0, bias_scale^2)``,
    ``c ~ N(0, 1/m)``.

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(ctrnns(max_hidden=3, activations=("tanh",)))
    ... def test(model):
    ...     assert model.activation == "tanh"
    >>> test()
    """
    W = draw(stable_matrices(min_size=min_hidden, max_size=max_hidden, min_margin=min_margin, max_margin=max_margin))
    m = W.shape[0]
    d = draw(st.integers(min_value=min_inputs, max_value=max_inputs))
    act = draw(st.sampled_from(tuple(activations)))
    rng = np.random.default_rng(draw(_seeds()))
    return CTRNN(W, rng.standard_normal((m, d)) / np.sqrt(d), bias_scale * rng.standard_normal(m),
                 rng.standard_normal(m) / np.sqrt(m), activation=act)


@st.composite
def linear_rnns(draw, *, min_hidden: int = 1, max_hidden: int = 6, min_inputs: int = 1, max_inputs: int = 3,
                min_margin: float = 0.05, max_margin: float = 2.0, normal: bool | None = None):
    """Linear RNNs with Hurwitz ``W`` (from :func:`stable_matrices`).

    Examples
    --------
    >>> from hypothesis import given
    >>> from dynmem.spectra import spectral_abscissa
    >>> @given(linear_rnns(max_hidden=3, min_margin=0.2))
    ... def test(model):
    ...     assert spectral_abscissa(model.W) <= -0.2 + 1e-9
    >>> test()
    """
    W = draw(stable_matrices(min_size=min_hidden, max_size=max_hidden, min_margin=min_margin, max_margin=max_margin,
                             normal=normal))
    m = W.shape[0]
    d = draw(st.integers(min_value=min_inputs, max_value=max_inputs))
    rng = np.random.default_rng(draw(_seeds()))
    return LinearRNN(W, rng.standard_normal((m, d)) / np.sqrt(d), rng.standard_normal(m) / np.sqrt(m))


def _euler_dt(W: np.ndarray, leak: float, max_dt: float, frac: float) -> float:
    # Forward Euler of the linearisation at the origin (sigma'(0) = 1) is
    # h -> (1 - dt leak) h + dt W h, with eigenvalues 1 + dt (lambda - leak);
    # |1 + dt mu| < 1 iff dt < -2 Re mu / |mu|^2 for Re mu < 0.
    mu = np.linalg.eigvals(W) - leak
    bound = float(np.min(-2.0 * mu.real / np.abs(mu) ** 2))
    return frac * min(max_dt, 0.9 * bound)


@st.composite
def euler_rnns(draw, *, min_hidden: int = 1, max_hidden: int = 6, min_inputs: int = 1, max_inputs: int = 3,
               activations=_SMOOTH, min_margin: float = 0.05, max_margin: float = 2.0, bias_scale: float = 0.5,
               max_dt: float = 0.5):
    """Forward-Euler recurrences (:class:`~dynmem.models.EulerRNN`) of CTRNNs with Hurwitz ``W``.

    The CTRNN comes from :func:`ctrnns`; the step ``dt`` is drawn in
    ``(0.1, 1] * min(max_dt, 0.9 dt_stab)`` where
    ``dt_stab = min_i -2 Re(lambda_i) / |lambda_i|^2`` is the largest step for
    which the Euler map of the linearisation at the origin,
    ``I + dt W``, has spectral radius below one.  So the discrete model keeps
    the continuous model's (linearised) stability.

    Examples
    --------
    >>> import numpy as np
    >>> from hypothesis import given
    >>> @given(euler_rnns(max_hidden=3))
    ... def test(model):
    ...     A = np.eye(model.hidden) + model.dt * model.W
    ...     assert np.max(np.abs(np.linalg.eigvals(A))) < 1
    >>> test()
    """
    max_dt = check_positive("max_dt", max_dt)
    model = draw(ctrnns(min_hidden=min_hidden, max_hidden=max_hidden, min_inputs=min_inputs, max_inputs=max_inputs,
                        activations=activations, min_margin=min_margin, max_margin=max_margin, bias_scale=bias_scale))
    frac = draw(st.floats(min_value=0.1, max_value=1.0))
    return model.discretize(_euler_dt(np.asarray(model.W), model.leak, max_dt, frac))


def discrete_rnns(*, min_hidden: int = 1, max_hidden: int = 8, min_inputs: int = 1, max_inputs: int = 3,
                  activations=_DISCRETE_ACTS, max_spectral_radius: float = 0.95, bias_scale: float = 0.5,
                  kinds=("discrete",)):
    """Discrete-time recurrences for :mod:`dynmem.recurrences`.

    ``kinds`` selects the classes: ``"discrete"`` gives a
    :class:`~dynmem.models.DiscreteRNN` whose ``W`` has spectral radius in
    ``[0.05, max_spectral_radius]``; ``"euler"`` gives an
    :class:`~dynmem.models.EulerRNN` from :func:`euler_rnns` (its
    ``I + dt W`` has spectral radius below one; ``max_spectral_radius`` does
    not apply to it).  The default ``("discrete",)`` keeps the original behaviour.

    Examples
    --------
    >>> from hypothesis import given
    >>> from dynmem.models import DiscreteRNN, EulerRNN
    >>> @given(discrete_rnns(max_hidden=3, kinds=("discrete", "euler")))
    ... def test(model):
    ...     assert isinstance(model, (DiscreteRNN, EulerRNN))
    >>> test()
    """
    kinds = tuple(kinds)
    if not kinds:
        raise ValueError("`kinds` must hold at least one of 'discrete', 'euler'; got an empty sequence.")
    for k in kinds:
        check_choice("kinds", k, ("discrete", "euler"))
    return _discrete_rnns(min_hidden, max_hidden, min_inputs, max_inputs, tuple(activations), max_spectral_radius,
                          bias_scale, kinds)


@st.composite
def _discrete_rnns(draw, min_hidden, max_hidden, min_inputs, max_inputs, activations, max_spectral_radius,
                   bias_scale, kinds):
    kind = draw(st.sampled_from(kinds))
    if kind == "euler":
        smooth = tuple(a for a in activations if a in _SMOOTH) or tuple(activations)
        return draw(euler_rnns(min_hidden=min_hidden, max_hidden=max_hidden, min_inputs=min_inputs,
                               max_inputs=max_inputs, activations=smooth, bias_scale=bias_scale))
    m = draw(st.integers(min_value=min_hidden, max_value=max_hidden))
    d = draw(st.integers(min_value=min_inputs, max_value=max_inputs))
    radius = draw(st.floats(min_value=0.05, max_value=max_spectral_radius))
    act = draw(st.sampled_from(tuple(activations)))
    rng = np.random.default_rng(draw(_seeds()))
    return DiscreteRNN.random(m, d, spectral_radius=radius, activation=act, bias_scale=bias_scale, rng=rng)


# --------------------------------------------------------------------------
# gated cells and state-space models

_GATED = {"gru": GRUCell, "lstm": LSTMCell, "ctgru": CTGRU}


def gated_cells(*, kinds=("gru", "lstm"), min_hidden: int = 1, max_hidden: int = 8, min_inputs: int = 1,
                max_inputs: int = 3, min_scale: float = 0.1, max_scale: float = 1.0):
    """GRU / LSTM cells (:mod:`dynmem.gated`) with uniform weights of a drawn scale.

    ``kinds`` from ``"gru"`` (:class:`~dynmem.gated.GRUCell`), ``"lstm"``
    (:class:`~dynmem.gated.LSTMCell`) and ``"ctgru"`` (:class:`~dynmem.gated.CTGRU`).
    Every weight and bias is uniform on ``[-k, k]`` with ``k = s / sqrt(m)``
    and ``s`` drawn from ``[min_scale, max_scale]`` (``s = 1`` is PyTorch's
    default initialisation); the read-out is N(0, 1/m).  With ``s <= 1`` the
    cells' rest state at zero input is attracting for the widths drawn here
    in practice, but that is not guaranteed: a test that needs it should
    check ``equilibrium``.

    Examples
    --------
    >>> from hypothesis import given
    >>> from dynmem.gated import GRUCell, LSTMCell
    >>> @given(gated_cells(max_hidden=3))
    ... def test(cell):
    ...     assert isinstance(cell, (GRUCell, LSTMCell)) and cell.hidden <= 3
    >>> test()
    """
    kinds = tuple(kinds)
    if not kinds:
        raise ValueError("`kinds` must hold at least one of 'gru', 'lstm', 'ctgru'; got an empty sequence.")
    for k in kinds:
        check_choice("kinds", k, tuple(_GATED))
    min_hidden, max_hidden = _check_range("min_hidden", min_hidden, "max_hidden", max_hidden, integer=True)
    min_inputs, max_inputs = _check_range("min_inputs", min_inputs, "max_inputs", max_inputs, integer=True)
    min_scale, max_scale = _check_range("min_scale", min_scale, "max_scale", max_scale, positive=True)
    return _gated_cells(kinds, min_hidden, max_hidden, min_inputs, max_inputs, min_scale, max_scale)


@st.composite
def _gated_cells(draw, kinds, min_hidden, max_hidden, min_inputs, max_inputs, min_scale, max_scale):
    cls = _GATED[draw(st.sampled_from(kinds))]
    m = draw(st.integers(min_value=min_hidden, max_value=max_hidden))
    d = draw(st.integers(min_value=min_inputs, max_value=max_inputs))
    s = draw(st.floats(min_value=min_scale, max_value=max_scale))
    return cls.random(m, d, scale=s / np.sqrt(m), rng=np.random.default_rng(draw(_seeds())))


def diagonal_ssms(*, min_hidden: int = 1, max_hidden: int = 8, min_inputs: int = 1, max_inputs: int = 3,
                  min_decay: float = 0.05, max_decay: float = 2.0, max_frequency: float = np.pi,
                  feedthrough: bool = False, discretize=None, min_dt: float = 0.05, max_dt: float = 1.0):
    """Stable diagonal SSMs (:mod:`dynmem.ssm`).

    ``Re Lambda_j = -r_j`` with rates ``r_j`` drawn (and shrinking) in
    ``[min_decay, max_decay]``, ``Im Lambda_j`` in ``[-max_frequency,
    max_frequency]``; ``B``, ``C`` complex normal from a drawn seed, ``D``
    N(0, 1) when ``feedthrough`` else zero.  ``discretize``: ``None`` gives a
    :class:`~dynmem.ssm.DiagonalSSM`; ``"zoh"``, ``"bilinear"`` or a tuple of
    them gives its :class:`~dynmem.ssm.DiscreteDiagonalSSM` with a step
    ``dt`` drawn in ``[min_dt, max_dt]`` (always stable: both maps send the
    open left half-plane into the unit disc).
    """
    min_hidden, max_hidden = _check_range("min_hidden", min_hidden, "max_hidden", max_hidden, integer=True)
    min_inputs, max_inputs = _check_range("min_inputs", min_inputs, "max_inputs", max_inputs, integer=True)
    min_decay, max_decay = _check_range("min_decay", min_decay, "max_decay", max_decay, positive=True)
    max_frequency = check_nonnegative("max_frequency", max_frequency)
    if discretize is None:
        methods = None
    else:
        methods = (discretize,) if isinstance(discretize, str) else tuple(discretize)
        if not methods:
            raise ValueError("`discretize` must be None, 'zoh', 'bilinear' or a non-empty tuple of them; got ().")
        for mth in methods:
            check_choice("discretize", mth, ("zoh", "bilinear"))
    min_dt, max_dt = _check_range("min_dt", min_dt, "max_dt", max_dt, positive=True)
    return _diagonal_ssms(min_hidden, max_hidden, min_inputs, max_inputs, min_decay, max_decay, max_frequency,
                          bool(feedthrough), methods, min_dt, max_dt)


@st.composite
def _diagonal_ssms(draw, min_hidden, max_hidden, min_inputs, max_inputs, min_decay, max_decay, max_frequency,
                   feedthrough, methods, min_dt, max_dt):
    m = draw(st.integers(min_value=min_hidden, max_value=max_hidden))
    d = draw(st.integers(min_value=min_inputs, max_value=max_inputs))
    rates = np.array(draw(st.lists(st.floats(min_value=min_decay, max_value=max_decay), min_size=m, max_size=m)))
    freqs = np.array(draw(st.lists(st.floats(min_value=-max_frequency, max_value=max_frequency), min_size=m,
                                   max_size=m)))
    rng = np.random.default_rng(draw(_seeds()))
    B = (rng.standard_normal((m, d)) + 1j * rng.standard_normal((m, d))) / np.sqrt(2 * d)
    C = (rng.standard_normal(m) + 1j * rng.standard_normal(m)) / np.sqrt(2 * m)
    D = rng.standard_normal(d) if feedthrough else np.zeros(d)
    model = DiagonalSSM(-rates + 1j * freqs, B, C, D)
    if methods is None:
        return model
    method = draw(st.sampled_from(methods))
    return model.discretize(draw(st.floats(min_value=min_dt, max_value=max_dt)), method=method)


_STACK_KINDS = ("rnn", "gru", "lstm", "ssm")


def stacks(*, kinds=_STACK_KINDS, min_depth: int = 1, max_depth: int = 3, min_hidden: int = 1, max_hidden: int = 4,
           min_inputs: int = 1, max_inputs: int = 3, nonlinearities=("identity", "tanh")):
    """Stacks of discrete layers (:class:`~dynmem.stack.Stack`), each layer of a kind drawn from ``kinds``.

    ``"rnn"``: :meth:`DiscreteRNN.random <dynmem.models.DiscreteRNN.random>` (tanh, spectral radius in
    [0.3, 0.95]); ``"gru"``, ``"lstm"``: the cells with PyTorch's initialisation scaled by a drawn
    ``s`` in [0.3, 1]; ``"ssm"``: a stable :class:`~dynmem.ssm.DiagonalSSM` discretised by ZOH with
    dt = 1 (it passes its flat state ``(Re h, Im h)``, width 2m, up).  Layer l reads the feature
    width of layer l - 1; the layer-wise nonlinearity is drawn from ``nonlinearities``.  Every layer
    has dt = 1, so every drawn stack is valid.

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(stacks(max_depth=2, max_hidden=3))
    ... def test(stack):
    ...     assert 1 <= stack.depth <= 2 and stack.outputs(np.zeros((1, 4, stack.inputs)), None).shape == (1, 4)
    >>> test()
    """
    kinds = tuple(kinds)
    if not kinds:
        raise ValueError(f"`kinds` must hold at least one of {_STACK_KINDS}; got an empty sequence.")
    for k in kinds:
        check_choice("kinds", k, _STACK_KINDS)
    nonlinearities = _check_activations(nonlinearities)
    min_depth, max_depth = _check_range("min_depth", min_depth, "max_depth", max_depth, integer=True)
    min_hidden, max_hidden = _check_range("min_hidden", min_hidden, "max_hidden", max_hidden, integer=True)
    min_inputs, max_inputs = _check_range("min_inputs", min_inputs, "max_inputs", max_inputs, integer=True)
    return _stacks(kinds, min_depth, max_depth, min_hidden, max_hidden, min_inputs, max_inputs, nonlinearities)


@st.composite
def _stacks(draw, kinds, min_depth, max_depth, min_hidden, max_hidden, min_inputs, max_inputs, nonlinearities):
    L = draw(st.integers(min_value=min_depth, max_value=max_depth))
    width_in = draw(st.integers(min_value=min_inputs, max_value=max_inputs))
    layers = []
    for _ in range(L):
        kind = draw(st.sampled_from(kinds))
        m = draw(st.integers(min_value=min_hidden, max_value=max_hidden))
        rng = np.random.default_rng(draw(_seeds()))
        if kind == "rnn":
            layer = DiscreteRNN.random(m, width_in, spectral_radius=draw(st.floats(0.3, 0.95)), rng=rng)
        elif kind == "ssm":
            rates = np.array(draw(st.lists(st.floats(0.05, 2.0), min_size=m, max_size=m)))
            lam = -rates + 1j * rng.uniform(-np.pi, np.pi, m)
            B = (rng.standard_normal((m, width_in)) + 1j * rng.standard_normal((m, width_in))) / np.sqrt(2 * width_in)
            C = (rng.standard_normal(m) + 1j * rng.standard_normal(m)) / np.sqrt(2 * m)
            layer = DiagonalSSM(lam, B, C, np.zeros(width_in)).discretize(1.0)
        else:
            s = draw(st.floats(0.3, 1.0))
            layer = _GATED[kind].random(m, width_in, scale=s / np.sqrt(m), rng=rng)
        layers.append(layer)
        width_in = layer.feature_size
    return Stack(tuple(layers), nonlinearity=draw(st.sampled_from(nonlinearities)))


# --------------------------------------------------------------------------
# inputs


@st.composite
def piecewise_inputs(draw, dim: int, *, t_end: float = 5.0, min_pieces: int = 1, max_pieces: int = 8,
                     kind: str | None = None, scale: float = 1.0):
    """Piecewise-constant or piecewise-linear paths on ``[0, t_end]`` with random knots.

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(piecewise_inputs(2, t_end=3.0))
    ... def test(x):
    ...     assert x.dim == 2 and x.t_end == 3.0
    >>> test()
    """
    n = draw(st.integers(min_value=min_pieces, max_value=max_pieces))
    rng = np.random.default_rng(draw(_seeds()))
    inner = np.sort(rng.uniform(0.05, 0.95, size=n - 1)) * t_end
    knots = np.unique(np.concatenate([[0.0], inner, [t_end]]))
    n = knots.size - 1
    k = draw(st.sampled_from(("constant", "linear"))) if kind is None else kind
    if k == "constant":
        return PiecewiseConstant(knots, scale * rng.standard_normal((n, dim)))
    return PiecewiseLinear(knots, scale * rng.standard_normal((n + 1, dim)))


@st.composite
def sequences(draw, dim: int, *, min_batch: int = 1, max_batch: int = 4, min_length: int = 1, max_length: int = 30,
              scale: float = 1.0):
    """Input batches of shape (batch, T, dim) with Gaussian entries (see :func:`input_sequences`).

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(sequences(3, max_length=5))
    ... def test(X):
    ...     assert X.ndim == 3 and X.shape[2] == 3 and X.shape[1] <= 5
    >>> test()
    """
    B = draw(st.integers(min_value=min_batch, max_value=max_batch))
    T = draw(st.integers(min_value=min_length, max_value=max_length))
    rng = np.random.default_rng(draw(_seeds()))
    return scale * rng.standard_normal((B, T, dim))


_DISTRIBUTIONS = ("normal", "uniform", "sign")


def input_sequences(dim: int | None = None, *, min_dim: int = 1, max_dim: int = 3, min_batch: int = 1,
                    max_batch: int = 4, min_length: int = 1, max_length: int = 30, scale: float = 1.0,
                    distribution: str | None = "normal"):
    """Input batches ``X`` of shape ``(batch, T, d)`` for :func:`dynmem.recurrences.forward`.

    An extension of :func:`sequences`: ``dim=None`` draws ``d`` in
    ``[min_dim, max_dim]``, and the entries are ``scale`` times standard
    normal (``"normal"``), uniform on ``[-1, 1]`` (``"uniform"``) or random
    signs (``"sign"``, the vertices of the inf-ball the memory function
    probes); ``distribution=None`` lets hypothesis choose.

    Examples
    --------
    >>> import numpy as np
    >>> from hypothesis import given
    >>> @given(input_sequences(2, distribution="sign", max_length=4))
    ... def test(X):
    ...     assert X.shape[2] == 2 and set(np.unique(X)) <= {-1.0, 1.0}
    >>> test()
    """
    if dim is not None:
        dim = check_int("dim", dim, minimum=1)
    else:
        min_dim, max_dim = _check_range("min_dim", min_dim, "max_dim", max_dim, integer=True)
    min_batch, max_batch = _check_range("min_batch", min_batch, "max_batch", max_batch, integer=True)
    min_length, max_length = _check_range("min_length", min_length, "max_length", max_length, integer=True)
    scale = check_nonnegative("scale", scale)
    if distribution is not None:
        check_choice("distribution", distribution, _DISTRIBUTIONS)

    @st.composite
    def build(draw):
        d = dim if dim is not None else draw(st.integers(min_value=min_dim, max_value=max_dim))
        B = draw(st.integers(min_value=min_batch, max_value=max_batch))
        T = draw(st.integers(min_value=min_length, max_value=max_length))
        how = distribution if distribution is not None else draw(st.sampled_from(_DISTRIBUTIONS))
        rng = np.random.default_rng(draw(_seeds()))
        if how == "normal":
            X = rng.standard_normal((B, T, d))
        elif how == "uniform":
            X = rng.uniform(-1.0, 1.0, size=(B, T, d))
        else:
            X = rng.choice(np.array([-1.0, 1.0]), size=(B, T, d))
        return scale * X

    return build()


# --------------------------------------------------------------------------
# targets

_TARGET_KINDS = ("exponential", "power_law", "exponential_sum")


def memory_targets(kind: str | None = None, *, min_rate: float = 0.05, max_rate: float = 2.0,
                   min_exponent: float = 0.5, max_exponent: float = 3.0, max_terms: int = 3, min_dim: int = 1,
                   max_dim: int = 2):
    """Linear targets of :mod:`dynmem.targets` whose memory decay is known in closed form.

    =====================  ===========================================  ==================================
    ``kind``               target                                       ``target.decay``
    =====================  ===========================================  ==================================
    ``"exponential"``      ``ExponentialKernel(rate, a)``               ``("exponential", rate)``
    ``"power_law"``        ``PowerLawKernel(p, a)`` (``(1 + t)^{-p}``)  ``("polynomial", p)``
    ``"exponential_sum"``  ``ExponentialSum(rates, weights)``           ``("exponential", min(rates))``
    ``None``               any of the above
    =====================  ===========================================  ==================================

    ``"polynomial"`` is accepted as a synonym of ``"power_law"``.  Rates are
    drawn in ``[min_rate, max_rate]``, exponents in ``[min_exponent,
    max_exponent]``, sums have 2 to ``max_terms`` terms with positive weights
    in ``[0.1, 1]`` (so no term cancels and the slowest rate is the decay
    rate); the input dimension ``d`` is drawn in ``[min_dim, max_dim]`` and the
    single-kernel weights ``a`` have entries of modulus in ``[0.1, 1]`` with
    random signs.  ``target.decay.kind`` tells which class was drawn and
    ``target.decay.value`` the rate or exponent.  (The decay class is
    asymptotic: for a sum with close rates, a rate fitted on a finite window
    is biased towards the faster terms, by up to tens of percent.)

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(memory_targets("power_law", min_exponent=1.0))
    ... def test(target):
    ...     assert target.decay.kind == "polynomial" and target.decay.value >= 1.0
    >>> test()
    """
    if kind == "polynomial":
        kind = "power_law"
    if kind is not None:
        check_choice("kind", kind, _TARGET_KINDS + ("polynomial",))
    min_rate, max_rate = _check_range("min_rate", min_rate, "max_rate", max_rate, positive=True)
    min_exponent, max_exponent = _check_range("min_exponent", min_exponent, "max_exponent", max_exponent,
                                              positive=True)
    max_terms = check_int("max_terms", max_terms, minimum=2)
    min_dim, max_dim = _check_range("min_dim", min_dim, "max_dim", max_dim, integer=True)

    @st.composite
    def build(draw):
        k = kind if kind is not None else draw(st.sampled_from(_TARGET_KINDS))
        d = draw(st.integers(min_value=min_dim, max_value=max_dim))
        rate = st.floats(min_value=min_rate, max_value=max_rate)
        mag = st.floats(min_value=0.1, max_value=1.0)
        if k == "exponential_sum":
            n = draw(st.integers(min_value=2, max_value=max_terms))
            rates = np.asarray(draw(st.lists(rate, min_size=n, max_size=n)), dtype=float)
            weights = np.asarray(draw(st.lists(st.lists(mag, min_size=d, max_size=d), min_size=n, max_size=n)))
            return ExponentialSum(rates, weights)
        signs = np.asarray(draw(st.lists(st.sampled_from((-1.0, 1.0)), min_size=d, max_size=d)))
        a = signs * np.asarray(draw(st.lists(mag, min_size=d, max_size=d)), dtype=float)
        if k == "exponential":
            return ExponentialKernel(draw(rate), a)
        return PowerLawKernel(draw(st.floats(min_value=min_exponent, max_value=max_exponent)), a)

    return build()


# --------------------------------------------------------------------------
# reparameterisations

_STABLE_REPARAMS = ("exp", "softplus", "best", "best_discrete")


def reparameterisations(names=None, *, min_a: float = 0.1, max_a: float = 10.0, min_b: float = 0.1,
                        max_b: float = 10.0):
    """Stable reparameterisations ``lambda = f(w)`` from :func:`dynmem.reparam.get_reparam`.

    ``names`` restricts the choice (default: the stable ones, ``"exp"``,
    ``"softplus"``, ``"best"`` and ``"best_discrete"``; ``"direct"`` may be
    asked for explicitly).  For ``"best"`` / ``"best_discrete"`` the
    parameters are drawn log-uniformly, ``a`` in ``[min_a, max_a]`` and ``b``
    in ``[min_b, max_b]``.  Every stable one has ``r.rate(w) < 0`` for all
    real ``w`` (``rate = f`` in continuous time, ``f - 1`` in discrete time).

    Examples
    --------
    >>> from hypothesis import given
    >>> from hypothesis import strategies as st
    >>> @given(reparameterisations(), st.floats(-5, 5))
    ... def test(r, w):
    ...     assert r.rate(w) < 0
    >>> test()
    """
    from . import reparam  # imported here: dynmem.strategies does not need it otherwise

    chosen = _STABLE_REPARAMS if names is None else tuple([names] if isinstance(names, str) else names)
    if not chosen:
        raise ValueError("`names` must hold at least one reparameterisation name; got an empty sequence.")
    for n in chosen:
        check_choice("names", n, reparam.REPARAMS)
    min_a, max_a = _check_range("min_a", min_a, "max_a", max_a, positive=True)
    min_b, max_b = _check_range("min_b", min_b, "max_b", max_b, positive=True)

    @st.composite
    def build(draw):
        name = draw(st.sampled_from(chosen))
        if not name.startswith("best"):
            return reparam.get_reparam(name)
        log_a = draw(st.floats(min_value=np.log(min_a), max_value=np.log(max_a)))
        log_b = draw(st.floats(min_value=np.log(min_b), max_value=np.log(max_b)))
        a = float(np.clip(np.exp(log_a), min_a, max_a))
        b = float(np.clip(np.exp(log_b), min_b, max_b))
        return reparam.get_reparam(name, a=a, b=b)

    return build()
