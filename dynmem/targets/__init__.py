"""Target functionals with known memory ([WLL] Def. 3.1; docs/theory.md sections 2, 4, 6).

A target is a causal, time-homogeneous functional ``H`` of an input path
``x`` that is zero before the path's ``t_start`` (the time origin of the
functional).  Linear targets are convolutions with a kernel ``rho``
([LHEL]; docs/theory.md section 1):

.. math::

    H_t(x) = \\int_0^{t - t_\\mathrm{start}} \\rho(s)^\\top x(t - s)\\, ds,
    \\qquad \\rho : [0, \\infty) \\to \\mathbb{R}^d .

The memory function ([WLL] Def. 3.1) is built from the Heaviside input
``u^x(t) = x 1[t >= 0]``:

.. math::

    M(H)(t) = \\sup_{x \\ne 0} \\frac{|\\tfrac{d}{dt} H_t(u^x)|}{\\|x\\|_\\infty}
    \\quad\\text{or}\\quad
    \\sup_{x \\ne 0} \\frac{|\\tfrac{d}{dt} H_t(u^x)|}{\\|x\\|_\\infty + 1} .

For a linear target ``d/dt H_t(u^x) = rho(t)^T x`` and ``M(t) = |rho(t)|_1``,
attained at the vertex ``x = sign(rho(t))``.  With the ``|x|_inf + 1``
normalisation the ratio ``|rho^T x| / (|x|_inf + 1)`` increases with the
amplitude, so the sup is the limit ``|x|_inf -> inf``: again ``|rho(t)|_1``
(approached, not attained).  Pass ``radius=r`` to
:meth:`Target.exact_memory` for the sup over ``0 < |x|_inf <= r``, which is
attained.

Every target has the interface of :class:`Target`: ``dim``, ``output``,
``output_sequence``, ``step_derivative``, ``exact_memory`` and ``decay``.

Targets:

* linear, closed form: :class:`ExponentialKernel` (with
  :meth:`ExponentialKernel.discrete` for [WLL]'s ``0.9^t``),
  :class:`PowerLawKernel`, :class:`ExponentialSum`, :class:`ShiftedBump`,
  :class:`AiryKernel`, :class:`TwoPartKernel`, :class:`BoxKernel`,
  :class:`SineKernel`, sums (:class:`LinearSum`, or ``A + B``);
* linear, user kernel: :class:`LinearFunctional`;
* nonlinear: :class:`PointwiseNonlinear` (``f(L_t(x))``), :class:`Volterra2`
  (second order, separable kernel), :class:`TeacherRNN` (a CTRNN);
* registries: :func:`wll_targets` (the paper's experiments, docs/theory.md
  section 4) and :func:`wll_code_targets` (the public code's kernels).

How outputs are computed
------------------------
On an affine piece of the input, ``x(t - s) = x(u_hi) - (s - s_a) x'`` for
``s`` in ``[s_a, s_b]`` (input times ``u`` in ``[u_lo, u_hi]``), so the
piece contributes ``m_0 x(u_hi) - m_1 x'`` with the kernel moments

.. math::

    m_0 = \\int_{s_a}^{s_b} \\rho(s)\\, ds, \\qquad
    m_1 = \\int_{s_a}^{s_b} (s - s_a)\\, \\rho(s)\\, ds .

* Closed forms (exponential, power law, exponential sums, Gaussian bump,
  two-part, box, sine kernels): the moments come from the antiderivatives,
  written to avoid cancellation (``expm1``, ``log1p``, ``exprel``, ``erfc``
  and short series for short pieces).  Observed agreement with
  :func:`scipy.integrate.quad` references is ~1e-14 relative to
  ``sum |m_0| |x|`` (the tests allow 1e-10).
* Airy and user kernels (:class:`LinearFunctional`): a piece no longer than
  one quadrature panel gets one 16-point Gauss-Legendre rule (relative
  accuracy, no cancellation).  Longer pieces use cached cumulative integrals
  ``F(s) = int_0^s rho`` and ``G(s) = int_0^s s' rho(s') ds'`` (composite
  16-point Gauss-Legendre on panels at most ``panel`` long, or for Airy at
  most one radian of the local phase ``(2/3)|z|^{3/2}``), then
  ``m_0 = F(s_b) - F(s_a)`` and ``m_1 = G(s_b) - G(s_a) - s_a m_0``: rounding
  level in absolute terms (``~1e-16 |F|``; observed ~1e-14 against quad).
  Kernels with kinks or jumps must declare them (``breaks``) so that no
  panel straddles one.  ``scipy.special.itairy`` is *not* used: it is only
  ~1e-5 accurate near ``|z| = 5`` (checked against ``quad``).
* Closed-form kernels whose first moment cancels on short pieces (the
  Gaussian bump) also switch to the direct rule there.
* Paths that are not affine (:class:`~dynmem.inputs.FunctionPath`):
  :func:`scipy.integrate.quad_vec` on every knot interval,
  ``epsrel = 1e-10``.

The cost is one moment evaluation per (output time, earlier piece) pair,
``O(n P)`` for ``n`` times and ``P`` pieces (vectorised in blocks); for long
sampled sequences prefer :meth:`Target.output_sequence` (FFT, ``O(T log T)``).

Sampled inputs (``output_sequence``) use the discrete convolution

.. math::

    y_k = \\sum_{j=0}^{k} \\Delta t\\, \\rho(j \\Delta t)^\\top x_{k-j},

computed with :func:`scipy.signal.fftconvolve` along the time axis: the left
Riemann sum of ``H`` at time ``(k + 1) dt`` for the piecewise-constant path
``from_sequence(X, dt)``, error ``O(dt)``.  With ``rho = 0.9^t`` and
``dt = 1`` it is the discrete target of [WLL] Fig. 1.  (The public [WLL]
code omits the ``dt`` factor but draws inputs already multiplied by ``dt``;
the two agree.)  Nonlinear targets apply their nonlinearity to the same
discrete sums.

References
----------
[WLL] S. Wang, Z. Li, Q. Li, Inverse Approximation Theory for Nonlinear
Recurrent Neural Networks, ICLR 2024 (arXiv 2305.19190).
[LHEL] Z. Li, J. Han, W. E, Q. Li, On the Curse of Memory in Recurrent Neural
Networks: Approximation and Optimization Analysis, ICLR 2021; JMLR 23(42), 2022.
"""


from __future__ import annotations

from .numerics import Decay
from .base import DECAY_KINDS, NORMALIZATIONS, Target, LinearTarget
from .kernels import ExponentialKernel, PowerLawKernel, ExponentialSum, ShiftedBump, AiryKernel, TwoPartKernel, BoxKernel, SineKernel, LinearSum, LinearFunctional, wll_targets, wll_code_targets
from .nonlinear import PointwiseNonlinear, TeacherRNN
from .volterra import Volterra2

__all__ = [
    "Decay",
    "Target",
    "LinearTarget",
    "ExponentialKernel",
    "PowerLawKernel",
    "ExponentialSum",
    "ShiftedBump",
    "AiryKernel",
    "TwoPartKernel",
    "BoxKernel",
    "SineKernel",
    "LinearSum",
    "LinearFunctional",
    "PointwiseNonlinear",
    "Volterra2",
    "TeacherRNN",
    "wll_targets",
    "wll_code_targets",
]
