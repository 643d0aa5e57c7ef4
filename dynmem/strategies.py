"""Public hypothesis strategies for dynmem models and inputs.

Use them in your own property tests::

    from hypothesis import given
    from dynmem.strategies import ctrnns

    @given(ctrnns(max_hidden=6))
    def test_something(model): ...

Every strategy *builds* valid objects (a stable matrix is shifted to its
target spectral abscissa, never filtered), so hypothesis never rejects
draws.  Bounds are keyword-only.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .inputs import PiecewiseConstant, PiecewiseLinear
from .models import CTRNN, DiscreteRNN, LinearRNN

__all__ = ["stable_matrices", "ctrnns", "linear_rnns", "discrete_rnns", "piecewise_inputs", "sequences"]

_SMOOTH = ("tanh", "identity")


@st.composite
def _seeds(draw):
    return draw(st.integers(min_value=0, max_value=2**32 - 1))


@st.composite
def stable_matrices(draw, *, min_size: int = 1, max_size: int = 6, min_margin: float = 0.05, max_margin: float = 2.0,
                    normal: bool | None = None):
    """Square Hurwitz matrices with spectral abscissa in ``[-max_margin, -min_margin]``.

    Built as a Gaussian matrix shifted so that ``alpha(W) = -margin``
    exactly; ``normal=True`` symmetrises first, ``None`` lets hypothesis choose.
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


@st.composite
def ctrnns(draw, *, min_hidden: int = 1, max_hidden: int = 6, min_inputs: int = 1, max_inputs: int = 3,
           activations=_SMOOTH, min_margin: float = 0.05, max_margin: float = 2.0, bias_scale: float = 0.5):
    """CTRNNs with Hurwitz ``W`` and random ``U, b, c`` (smooth activations by default)."""
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
    """Linear RNNs with Hurwitz ``W``."""
    W = draw(stable_matrices(min_size=min_hidden, max_size=max_hidden, min_margin=min_margin, max_margin=max_margin,
                             normal=normal))
    m = W.shape[0]
    d = draw(st.integers(min_value=min_inputs, max_value=max_inputs))
    rng = np.random.default_rng(draw(_seeds()))
    return LinearRNN(W, rng.standard_normal((m, d)) / np.sqrt(d), rng.standard_normal(m) / np.sqrt(m))


@st.composite
def discrete_rnns(draw, *, min_hidden: int = 1, max_hidden: int = 8, min_inputs: int = 1, max_inputs: int = 3,
                  activations=("tanh", "identity", "relu", "hardtanh"), max_spectral_radius: float = 0.95,
                  bias_scale: float = 0.5):
    """Discrete RNNs with spectral radius of ``W`` at most ``max_spectral_radius``."""
    m = draw(st.integers(min_value=min_hidden, max_value=max_hidden))
    d = draw(st.integers(min_value=min_inputs, max_value=max_inputs))
    radius = draw(st.floats(min_value=0.05, max_value=max_spectral_radius))
    act = draw(st.sampled_from(tuple(activations)))
    rng = np.random.default_rng(draw(_seeds()))
    return DiscreteRNN.random(m, d, spectral_radius=radius, activation=act, bias_scale=bias_scale, rng=rng)


@st.composite
def piecewise_inputs(draw, dim: int, *, t_end: float = 5.0, min_pieces: int = 1, max_pieces: int = 8,
                     kind: str | None = None, scale: float = 1.0):
    """Piecewise-constant or piecewise-linear paths on ``[0, t_end]`` with random knots."""
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
    """Input batches of shape (batch, T, dim) with Gaussian entries."""
    B = draw(st.integers(min_value=min_batch, max_value=max_batch))
    T = draw(st.integers(min_value=min_length, max_value=max_length))
    rng = np.random.default_rng(draw(_seeds()))
    return scale * rng.standard_normal((B, T, dim))
