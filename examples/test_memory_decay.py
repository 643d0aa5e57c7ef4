"""A user's property tests of memory decay, written with dynmem's public API.

This is what a test file in *your* project can look like: the models come
from :mod:`dynmem.strategies` (built, never filtered, so hypothesis never
rejects a draw) and the checks from :mod:`dynmem.testing` (their failure
messages carry the measured numbers).  Run it with::

    python -m pytest examples/test_memory_decay.py

The tests encode three facts of docs/theory.md section 2:

1. a linear RNN forgets exponentially, at a rate between its slowest and
   fastest modes' (its memory is ``|U^T e^{W^T t} c|_1``);
2. a tanh CTRNN whose ``W`` has a negative-definite symmetric part has
   decaying memory at every input amplitude (``V(z) = sum_i log cosh z_i`` is
   a Lyapunov function of ``dz/dt = W tanh(z)``: ``dV/dt = tanh(z)^T W tanh(z) < 0``);
3. Hurwitz alone is not enough: the multistable ``W = [[1, 1], [-4, -3]]``
   (double eigenvalue -1) does not forget large inputs.
"""

import numpy as np
import pytest
from hypothesis import given, settings

import dynmem as dm
from dynmem.strategies import linear_rnns, memory_targets
from dynmem.testing import assert_hurwitz, assert_memory_decays


@settings(max_examples=15, deadline=None)
@given(linear_rnns(max_hidden=4, max_inputs=2))
def test_every_hurwitz_linear_rnn_forgets_exponentially(model):
    assert_hurwitz(model.W, margin=0.0)
    assert_memory_decays(model, kind="exponential")


@settings(max_examples=15, deadline=None)
@given(linear_rnns(max_hidden=4, min_margin=0.2, max_margin=1.5, normal=True))
def test_linear_rnn_forgets_between_its_slowest_and_fastest_rates(model):
    alpha = assert_hurwitz(model.W, margin=0.1)
    fastest = -np.linalg.eigvalsh(model.W).min()
    # Symmetric W and U = c make rho(t) = sum_i (q_i^T c)^2 e^{lambda_i t} a
    # positive mixture of exponentials, whose local decay rate is a weighted
    # mean of the -lambda_i: on a finite window the fitted rate lies between
    # the slowest rate -alpha(W) (reached only asymptotically; close rates
    # with a small weight on the slowest never get there within the solver's
    # 11 decades) and the fastest.  2% for the fit itself.
    model = model.replace(U=model.c[:, None])
    fit = assert_memory_decays(model, kind="exponential")
    assert -alpha * (1 - 0.02) <= fit.rate <= fastest * (1 + 0.02), (fit.rate, -alpha, fastest)


@settings(max_examples=10, deadline=None)
@given(linear_rnns(max_hidden=3, min_margin=0.3, max_margin=1.5, normal=True))
def test_tanh_ctrnn_with_dissipative_w_forgets_every_amplitude(linear):
    W, c = linear.W, linear.c
    assert np.linalg.eigvalsh(0.5 * (W + W.T)).max() < 0  # symmetric Hurwitz W: dissipative
    model = dm.CTRNN(W, c[:, None], np.zeros(linear.hidden), c, activation="tanh")
    alpha, fastest = dm.spectral_abscissa(W), -np.linalg.eigvalsh(W).min()
    # Small inputs: near z = 0, tanh'(0) = 1, so the fitted rate is bracketed
    # by the linear modes' rates as in the test above.  The flow is solved at
    # rtol = 1e-11 (with the defaults the solver's error floor, ~1e-10 of the
    # peak, cuts the tail short), and the fit ignores everything below 1e-9
    # of the peak, safely above that accuracy, where solver noise would flatten the tail.
    fit = assert_memory_decays(model, kind="exponential", amplitudes=(0.1, 0.5), rtol=1e-11, atol=1e-14,
                               fit_options={"relative_floor": 1e-9})
    assert -alpha * (1 - 0.02) <= fit.rate <= fastest * (1 + 0.02), (fit.rate, -alpha, fastest)
    # Large inputs saturate tanh first (a plateau, then the decay): the memory
    # still falls by more than 8 decades within 40 / |alpha| (the multistable
    # system below stays at ~0.2).
    t = np.linspace(0.0, 40.0 / -alpha, 300)
    M = dm.memory_function(model, t, amplitudes=(5.0,), rtol=1e-11, atol=1e-14).values
    assert M[-1] < 1e-8 * M.max(), (M[-1], M.max())


def test_hurwitz_is_not_enough_for_decaying_memory():
    W = np.array([[1.0, 1.0], [-4.0, -3.0]])
    assert_hurwitz(W, margin=0.9)  # alpha(W) = -1
    model = dm.CTRNN(W, np.eye(2), np.zeros(2), np.array([1.0, 0.0]), activation="tanh")
    t = np.linspace(0.0, 60.0, 600)
    assert_memory_decays(model, kind="non-decaying", t=t, amplitudes=(3.0,))
    assert_memory_decays(model, kind="exponential", t=t, amplitudes=(0.01,))  # small inputs are forgotten


@settings(max_examples=10, deadline=None)
@given(memory_targets("power_law", min_exponent=1.0, max_exponent=2.5))
def test_power_law_targets_are_never_called_exponential(target):
    with pytest.raises(AssertionError, match="polynomial"):
        assert_memory_decays(target, kind="exponential")
