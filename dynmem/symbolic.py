r"""Sympy twins of the closed forms in docs/theory.md (sections 2, 5 and 6).

Every function here returns a :class:`SymbolicResult`: the sympy expression,
the ordered symbols it depends on, a numpy/scipy callable built with
:func:`sympy.lambdify` (``numeric(*values)`` in the order of ``symbols``) and,
where the quantity rests on an identity, the residual of that identity (a
sympy expression or matrix that is identically zero; check it with
:func:`check_identity`).  Each quantity has a numeric twin elsewhere in
dynmem, and the test suite compares the two at random parameter values
(ARCHITECTURE.md convention 6):

==============================================================================  =================================================  ==============================================
function                                                                        closed form                                        numeric twin
==============================================================================  =================================================  ==============================================
:func:`memory_diagonal`                                                         ``|sum_i c_i u_i e^{-mu_i t}|``                    :func:`dynmem.memory.linear_memory`
:func:`memory_jordan`                                                           ``e^{lt} [[1, t], [0, 1]]``                        :func:`dynmem.memory.linear_memory`
:func:`matrix_exp_2x2`                                                          Putzer / Cayley-Hamilton form of ``e^{Wt}``        :func:`scipy.linalg.expm`
:func:`memory_2x2`                                                              ``|c^T e^{Wt} U|``                                 :func:`dynmem.memory.linear_memory`
:func:`transfer_function_2x2`                                                   ``c^T (sI - W)^{-1} U``                            Laplace transform by quadrature
:func:`step_response_2x2`                                                       ``c^T W^{-1} (e^{Wt} - I) U x``                    :func:`dynmem.simulate.simulate`
:func:`functional_norm_exp_sum`                                                 ``sum a_i / w_i``                                  :mod:`dynmem.targets` ``ExponentialSum``
:func:`cauchy_determinant`                                                      Cauchy's determinant                               :func:`numpy.linalg.det`
:func:`muntz_distance`                                                          ``(1/2v) prod ((v - w_i)/(v + w_i))^2``            Gram-system least squares
:func:`power_law_mixture`                                                       ``(1+t)^{-p}`` as a Gamma mixture                  ``PowerLawKernel``, mpmath
:func:`plateau_kernel`                                                          ``(sqrt(pi)/2) e^{w^2/4 - wT}(1 + erf(T - w/2))``  :func:`scipy.integrate.quad`
:func:`stability_functional_identity`                                           ``|f(w)/f(w~) - 1|``                               :func:`dynmem.reparam.stability_functional`
:func:`stability_bound`                                                         ``g(beta)``                                        :meth:`dynmem.reparam.Reparam.stability_bound`
:func:`best_reparam_derivation`                                                 ``f = -1/(a w^2 + b)`` from an ODE                 :func:`dynmem.reparam.get_reparam` ("best")
:func:`lyapunov_2x2`, :func:`lyapunov_normal`, :func:`lyapunov_counterexample`  ``W^T P + P W = -I``                               :func:`dynmem.spectra.lyapunov`
==============================================================================  =================================================  ==============================================

Every builder is cached (:func:`functools.lru_cache`) and runs in well under
two seconds.

References
----------
.. [WLL] S. Wang, Z. Li, Q. Li, *Inverse Approximation Theory for Nonlinear
   Recurrent Neural Networks*, ICLR 2024, arXiv:2305.19190.
.. [LHEL] Z. Li, J. Han, W. E, Q. Li, *On the Curse of Memory in Recurrent
   Neural Networks: Approximation and Optimization Analysis*, ICLR 2021;
   JMLR 23(42), 2022.
.. [SSM] S. Wang, Q. Li, *StableSSM*, ICML 2024, arXiv:2311.14495.
.. [Cauchy] A.-L. Cauchy, *Exercices d'analyse et de physique mathematique*
   II, 1841 (the determinant of ``1/(x_i + y_j)``).
.. [Muntz] The distance from ``e^{-vt}`` to ``span{e^{-w_i t}}`` in
   ``L^2(0, inf)``; see e.g. P. Borwein, T. Erdelyi, *Polynomials and
   Polynomial Inequalities*, Springer 1995, section 4.2.
.. [Putzer] E. J. Putzer, *Avoiding the Jordan canonical form in the
   discussion of linear systems with constant coefficients*, Amer. Math.
   Monthly 73(1), 2-7, 1966.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import sympy as sp

from ._validation import check_choice, check_int

__all__ = [
    "SymbolicResult",
    "check_identity",
    "parse_expression",
    "memory_diagonal",
    "memory_jordan",
    "matrix_exp_2x2",
    "memory_2x2",
    "transfer_function_2x2",
    "step_response_2x2",
    "functional_norm_exp_sum",
    "cauchy_determinant",
    "muntz_distance",
    "power_law_mixture",
    "plateau_kernel",
    "stability_functional_identity",
    "stability_bound",
    "best_reparam_derivation",
    "lyapunov_2x2",
    "lyapunov_normal",
    "lyapunov_counterexample",
]

_MODULES = ["scipy", "numpy"]

# check_identity's numeric fallback: evaluate at this many random points with
# this many significant digits (mpmath through evalf) and accept |residual|
# <= _NUMERIC_TOL * max(1, largest |term|).  30-digit arithmetic leaves a
# rounding floor near 1e-28 relative, so 1e-20 separates an identity from a
# non-identity by eight orders of magnitude on either side.
_NUMERIC_POINTS = 5
_NUMERIC_DIGITS = 30
_NUMERIC_TOL = 1e-20
# ... and again with this many digits: a value that agrees to _STABLE_DIGITS between the two
# precisions is a number, not rounding, however small (1e-25 is not zero).
_NUMERIC_DIGITS_HIGH = 60
_STABLE_RTOL = 1e-3

# Budgets on symbolic work (documented in check_identity and parse_expression):
# - an expression whose expansion would have more than _MAX_EXPANSION_TERMS terms (estimated from
#   the tree: an integer power n of a sum of k terms has binomial(n + k - 1, k - 1) of them) is not
#   handed to sympy's cancel/simplify, which expand it; it is decided numerically;
# - gamma of a number beyond _PARSE_MAX_GAMMA_ARG in absolute value is refused by the parser (sympy
#   evaluates gamma of an integer or half-integer eagerly: gamma(10**6) takes seconds, gamma(gamma(20)) never ends).
_MAX_EXPANSION_TERMS = 500
_PARSE_MAX_GAMMA_ARG = 1000


@dataclass(frozen=True, eq=False)
class SymbolicResult:
    """A closed form, its symbols, its lambdified twin and its identity residual.

    Attributes
    ----------
    name : str
    expr : sympy.Expr or sympy.Matrix
        The closed form.
    symbols : tuple of sympy.Symbol
        The arguments of ``numeric``, in order.
    numeric : callable
        ``numeric(*values)``; numpy-vectorised for scalar ``expr`` (a matrix
        ``expr`` takes scalars and returns an ndarray).
    identity_residual : sympy.Expr or sympy.Matrix or None
        An expression that is identically zero if the derivation is right.
    parts : dict
        Named intermediate sympy expressions (e.g. a gradient scale).
    note : str
        Conventions and assumptions.
    """

    name: str
    expr: object
    symbols: tuple
    numeric: Callable = field(repr=False)
    identity_residual: object = None
    parts: dict = field(default_factory=dict, repr=False)
    note: str = ""

    def check(self) -> bool:
        """``check_identity(identity_residual)`` (``True`` when there is none)."""
        return True if self.identity_residual is None else check_identity(self.identity_residual)


def _lambdify(symbols, expr, complex_eval: bool = False) -> Callable:
    fn = sp.lambdify(symbols, expr, modules=_MODULES)
    if not complex_eval:
        return fn

    @functools.wraps(fn)
    def wrapped(*args):
        # Expressions with sqrt(discriminant) are entire in the discriminant but
        # real arithmetic would take sqrt of a negative number: evaluate in
        # complex arithmetic and return the real part (imaginary parts are
        # rounding only).
        out = fn(*[np.asarray(a, dtype=np.complex128) for a in args])
        return np.real(out)

    return wrapped


def _result(name, expr, symbols, residual=None, *, parts=None, note="", complex_eval=False, numeric_expr=None) -> SymbolicResult:
    symbols = tuple(symbols)
    fn = _lambdify(symbols, expr if numeric_expr is None else numeric_expr, complex_eval)
    return SymbolicResult(name, expr, symbols, fn, residual, dict(parts or {}), note)


# -- identity checking ----------------------------------------------------------


def _sample(sym: sp.Symbol, rng: random.Random) -> sp.Float:
    x = rng.uniform(0.5, 2.5)
    if sym.is_negative or sym.is_nonpositive:
        x = -x
    elif not (sym.is_positive or sym.is_nonnegative) and rng.random() < 0.5:
        x = -x
    return sp.Float(x, _NUMERIC_DIGITS)


def _value(expr, digits: int, subs: dict):
    """``expr`` at ``subs`` with ``digits`` digits as an mpmath complex (any exponent), or None if not finite."""
    import mpmath

    v = expr.evalf(digits, subs=subs)
    parts = []
    for part in v.as_real_imag():
        part = sp.sympify(part)
        if not part.is_Number or part in (sp.nan, sp.oo, -sp.oo, sp.zoo):
            return None
        parts.append(mpmath.mpf(part._mpf_) if isinstance(part, sp.Float) else mpmath.mpf(sp.Float(part, digits)._mpf_))
    return mpmath.mpc(*parts)


def _numeric_zero(expr, rng: random.Random) -> bool:
    syms = sorted(expr.free_symbols, key=lambda s: s.name)
    terms = expr.args if isinstance(expr, sp.Add) else (expr,)
    for _ in range(_NUMERIC_POINTS):
        subs = {s: _sample(s, rng) for s in syms}
        try:
            val = _value(expr, _NUMERIC_DIGITS, subs)
            term_values = [_value(t, _NUMERIC_DIGITS, subs) for t in terms]
        except (TypeError, ValueError, ZeroDivisionError, OverflowError, AttributeError):
            return False
        if val is None or any(t is None for t in term_values):
            return False
        scale = max([1] + [abs(t) for t in term_values])
        if abs(val) > _NUMERIC_TOL * scale:
            return False
        if val != 0:
            # Rounding of a true zero shrinks with the precision; a genuine value (say 1e-25 x) does not.
            try:
                high = _value(expr, _NUMERIC_DIGITS_HIGH, subs)
            except (TypeError, ValueError, ZeroDivisionError, OverflowError, AttributeError):
                return False
            if high is None or (high != 0 and abs(high - val) <= _STABLE_RTOL * abs(high)):
                return False
    return True


def _expansion_size(expr) -> int:
    """An upper estimate of the number of terms of ``sympy.expand(expr)``, saturated past the budget.

    A sum has the terms of its summands, a product the product of its
    factors', an integer power ``n`` (of either sign, since ``cancel`` clears
    denominators) of a ``k``-term base ``binomial(|n| + k - 1, k - 1)``;
    anything else counts as one term.  The largest estimate over every
    sub-expression is returned (a function's argument is expanded too).
    Values above ``_MAX_EXPANSION_TERMS`` are returned as that bound plus one.
    """
    cap = _MAX_EXPANSION_TERMS + 1
    worst = 1

    def comb_capped(n: int, m: int) -> int:
        # binomial(n + m, m) = prod_{i <= min(n, m)} (max(n, m) + i) / i, stopping once past the cap
        lo, hi = min(n, m), max(n, m)
        out = 1
        for i in range(1, lo + 1):
            out = out * (hi + i) // i
            if out >= cap:
                return cap
        return out

    def size(e) -> int:
        nonlocal worst
        if not isinstance(e, sp.Basic) or not e.args:
            return 1
        inner = [size(a) for a in e.args]
        if isinstance(e, sp.Add):
            n = min(cap, sum(inner))
        elif isinstance(e, sp.Mul):
            n = 1
            for v in inner:
                n = min(cap, n * v)
        elif isinstance(e, sp.Pow) and e.exp.is_Integer:
            k = inner[0]
            p = abs(int(e.exp)) if abs(e.exp) < 10 * cap else cap
            n = 1 if k == 1 else comb_capped(p, k - 1)
        elif isinstance(e, sp.Pow):
            n = inner[0]
        else:
            n = 1
        worst = max(worst, n)
        return n

    size(expr)
    return min(worst, cap)


# -- a restricted expression parser (no eval) -----------------------------------

_PARSE_MAX_CHARS = 10_000
_PARSE_MAX_INT_EXPONENT = 1000
_PARSE_FUNCTIONS = {
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "sin": sp.sin, "cos": sp.cos, "tan": sp.tan,
    "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh, "asin": sp.asin, "acos": sp.acos, "atan": sp.atan,
    "abs": sp.Abs, "Abs": sp.Abs, "erf": sp.erf, "gamma": sp.gamma, "sign": sp.sign,
}
_PARSE_CONSTANTS = {"pi": sp.pi, "E": sp.E, "I": sp.I, "oo": sp.oo}


def parse_expression(text: str) -> sp.Expr:
    """Parse arithmetic text into a sympy expression without evaluating any Python.

    The string is read with :func:`ast.parse` (which only builds a syntax
    tree) and the tree is translated node by node: numbers, names (which
    become :class:`sympy.Symbol`, except the constants ``pi, E, I, oo``),
    ``+ - * / **``, unary ``+ -`` and calls of a fixed list of functions
    (``exp, log, sqrt, sin, cos, tan, sinh, cosh, tanh, asin, acos, atan, abs,
    erf, gamma, sign``) with positional arguments.  Anything else - attribute
    access, subscripts, keywords, lambdas, comprehensions, strings, other
    calls, integer powers with exponents beyond 1000, ``gamma`` of a number
    beyond 1000 in absolute value (sympy evaluates ``gamma`` of an integer or
    half-integer exactly and eagerly: ``gamma(10**6)`` takes seconds,
    ``gamma(gamma(20))`` never returns) - is refused with a
    :class:`ValueError`.  :func:`sympy.sympify` on a string, by contrast,
    runs :func:`eval` and can execute arbitrary code.

    Raises
    ------
    ValueError
        The text is not such an expression (the message names the offending part).
    """
    import ast

    if not isinstance(text, str):
        raise TypeError(f"`text` must be a string; got {type(text).__name__}.")
    if len(text) > _PARSE_MAX_CHARS:
        raise ValueError(f"`expr` text must be at most {_PARSE_MAX_CHARS} characters; got {len(text)}.")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ValueError(f"`expr` must be an arithmetic expression; could not parse {text[:80]!r} ({exc}).") from None
    binops = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
              ast.Div: lambda a, b: a / b}

    def refuse(node, what):
        seg = ast.get_source_segment(text.strip(), node) or type(node).__name__
        raise ValueError(f"`expr` may hold only numbers, symbols, + - * / ** and the functions "
                         f"{', '.join(sorted(_PARSE_FUNCTIONS))}; got {what + ' ' if what else ''}{seg[:80]!r}.")

    def conv(node):
        if isinstance(node, ast.Expression):
            return conv(node.body)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                refuse(node, "the constant")
            return sp.Integer(node.value) if isinstance(node.value, int) else sp.Float(repr(node.value))
        if isinstance(node, ast.Name):
            if node.id in _PARSE_CONSTANTS:
                return _PARSE_CONSTANTS[node.id]
            if node.id in _PARSE_FUNCTIONS or node.id.startswith("_"):
                refuse(node, "the name")
            return sp.Symbol(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = conv(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and type(node.op) in binops:
            return binops[type(node.op)](conv(node.left), conv(node.right))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            base, ex = conv(node.left), conv(node.right)
            if ex.is_Number and (abs(ex) > _PARSE_MAX_INT_EXPONENT or (
                    base.is_Number and abs(ex) * len(str(abs(base))) > 10 * _PARSE_MAX_INT_EXPONENT)):
                refuse(node, f"a numeric power too large to expand (exponent limit {_PARSE_MAX_INT_EXPONENT}) in")
            return base**ex
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _PARSE_FUNCTIONS:
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                refuse(node, "keyword or starred arguments in")
            args = [conv(a) for a in node.args]
            if node.func.id == "gamma" and any(
                    a.is_number and a.is_real and a.is_finite and abs(a) > _PARSE_MAX_GAMMA_ARG for a in args):
                seg = ast.get_source_segment(text.strip(), node) or "gamma(...)"
                raise ValueError(f"`expr` may take gamma only of numbers at most {_PARSE_MAX_GAMMA_ARG} in absolute "
                                 f"value (sympy evaluates gamma of a number exactly, which takes unbounded time); "
                                 f"got {seg[:80]!r}.")
            return _PARSE_FUNCTIONS[node.func.id](*args)
        refuse(node, "")

    try:
        return sp.sympify(conv(tree))  # sympify of a sympy object only returns it
    except RecursionError:
        raise ValueError(f"`expr` is nested too deeply to parse ({len(text)} characters).") from None
    except TypeError as exc:  # a function called with the wrong number of arguments
        raise ValueError(f"`expr` could not be built from {text[:80]!r} ({exc}).") from None


def check_identity(expr, *, seed: int = 0) -> bool:
    r"""Whether ``expr`` is identically zero.

    First symbolically: ``expr == 0`` after :func:`sympy.cancel` (rational
    functions) or :func:`sympy.simplify`.  If sympy cannot decide, numerically:
    ``expr`` is evaluated with 30-digit arithmetic (mpmath, through
    ``evalf``) at five random points (each symbol uniform in ``[0.5, 2.5]``,
    negated for negative symbols and at random for symbols of unknown sign)
    and must satisfy ``|expr| <= 1e-20 max(1, max_k |term_k|)`` at every
    point, where ``term_k`` are the summands of ``expr``.  The 30-digit
    rounding floor is ~1e-28, so the tolerance is far from both a true
    identity and a genuine non-zero residual.  A non-zero value that is
    under the tolerance must also change when evaluated again with 60
    digits (rounding of a true zero shrinks with the precision): a definite
    non-zero number such as ``1e-25`` or ``1e-25 x`` is never an identity.

    Budget: sympy's ``cancel`` and ``simplify`` expand products and powers,
    so an expression whose expansion is estimated at more than 500 terms
    (an integer power ``n`` of a ``k``-term sum counts
    ``binomial(n + k - 1, k - 1)``; ``(a+b+c+d)**1000`` has ~1.7e8) skips the
    symbolic step and is decided by the numeric check alone, in well under a
    second instead of minutes and gigabytes.

    Parameters
    ----------
    expr : sympy.Expr, sympy.Matrix, number or str
        A matrix is zero when every entry is.  A string is read by
        :func:`parse_expression`, a restricted parser that never evaluates
        Python (``sympy.sympify`` of a string would).
    seed : int
        Seed of the random points (the check is deterministic).

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        A string that is not a plain arithmetic expression.
    TypeError
        Anything that is not a sympy object, a number or a string.
    """
    if isinstance(expr, sp.MatrixBase):
        return all(check_identity(e, seed=seed) for e in expr)
    if isinstance(expr, str):
        expr = parse_expression(expr)
    elif isinstance(expr, bool) or not isinstance(expr, (sp.Basic, int, float, np.integer, np.floating)):
        raise TypeError(f"`expr` must be a sympy expression or matrix, a number or a string; got "
                        f"{type(expr).__name__}.")
    expr = sp.sympify(expr)
    if expr == 0:
        return True
    if isinstance(expr, sp.Number):
        return False  # a definite number that is not 0 (1e-25 included)
    try:
        small = _expansion_size(expr) <= _MAX_EXPANSION_TERMS
    except RecursionError:
        small = False
    if small:
        try:
            if sp.cancel(expr) == 0 or sp.simplify(expr) == 0:
                return True
        except Exception:  # pragma: no cover - sympy raises many kinds on hard inputs
            pass
    return _numeric_zero(expr, random.Random(seed))


# -- linear memory --------------------------------------------------------------


_t = sp.Symbol("t", nonnegative=True)


def _io(n: int):
    u = sp.symbols(f"u1:{n + 1}", real=True)
    c = sp.symbols(f"c1:{n + 1}", real=True)
    return sp.Matrix(u), sp.Matrix(c), u, c


@functools.lru_cache(maxsize=None)
def memory_diagonal(n: int = 2) -> SymbolicResult:
    r"""Memory of a linear RNN with diagonal ``W = -diag(mu)`` and one input.

    .. math:: M(t) = |c^\top e^{W t} U| = \Big| \sum_{i=1}^n c_i u_i e^{-\mu_i t} \Big|

    ([WLL] Sec. 3, docs/theory.md section 2).  Symbols ``(t, mu_1..mu_n, u_1..u_n,
    c_1..c_n)``.  Residual: ``c^T expm(W t) U`` (sympy) minus the sum.
    """
    n = check_int("n", n, minimum=1)
    mu = sp.symbols(f"mu1:{n + 1}", positive=True)
    U, C, u, c = _io(n)
    rho = sum(c[i] * u[i] * sp.exp(-mu[i] * _t) for i in range(n))
    W = sp.diag(*[-m for m in mu])
    residual = (C.T * (W * _t).exp() * U)[0] - rho
    return _result(f"memory_diagonal(n={n})", sp.Abs(rho), (_t, *mu, *u, *c), residual,
                   parts={"kernel": rho}, note="W = -diag(mu), d = 1")


@functools.lru_cache(maxsize=None)
def memory_jordan() -> SymbolicResult:
    r"""Memory for the 2x2 Jordan block ``W = [[l, 1], [0, l]]``.

    .. math:: e^{W t} = e^{l t} \begin{pmatrix} 1 & t \\ 0 & 1 \end{pmatrix}, \qquad
              M(t) = |e^{lt} (c_1 u_1 + c_1 u_2 t + c_2 u_2)|

    Symbols ``(t, l, u1, u2, c1, c2)``.  Residual: ``sympy.Matrix.exp(W t)``
    minus the closed form.
    """
    l = sp.Symbol("l", real=True)  # noqa: E741
    U, C, u, c = _io(2)
    E = sp.exp(l * _t) * sp.Matrix([[1, _t], [0, 1]])
    W = sp.Matrix([[l, 1], [0, l]])
    rho = sp.expand((C.T * E * U)[0])
    return _result("memory_jordan", sp.Abs(rho), (_t, l, *u, *c), (W * _t).exp() - E,
                   parts={"expm": E, "kernel": rho})


_w = sp.symbols("w11 w12 w21 w22", real=True)
_W2 = sp.Matrix([[_w[0], _w[1]], [_w[2], _w[3]]])


@functools.lru_cache(maxsize=None)
def matrix_exp_2x2() -> SymbolicResult:
    r"""``e^{W t}`` for a general real 2x2 ``W`` (Putzer / Cayley-Hamilton form).

    .. math::

        e^{W t} = e^{\tau t / 2} \Big[ \cosh(\delta t) I
                  + \frac{\sinh(\delta t)}{\delta} \big(W - \tfrac{\tau}{2} I\big) \Big],
        \quad \tau = \operatorname{tr} W, \quad
        \delta^2 = \Big(\frac{w_{11} - w_{22}}{2}\Big)^2 + w_{12} w_{21}

    ([Putzer]).  Both ``cosh(delta t)`` and ``sinh(delta t)/delta`` are entire
    in ``delta^2``, so one formula covers real, complex and (as a limit)
    repeated eigenvalues; ``numeric`` evaluates in complex arithmetic and
    returns the real part (it is undefined at ``delta = 0`` exactly).
    Symbols ``(t, w11, w12, w21, w22)``; residual: the stacked
    ``d/dt E - W E`` and ``E(0) - I`` (4 x 2).
    """
    tau = _W2.trace()
    delta = sp.sqrt(((_w[0] - _w[3]) / 2) ** 2 + _w[1] * _w[2])
    E = sp.exp(tau * _t / 2) * (sp.cosh(delta * _t) * sp.eye(2) + sp.sinh(delta * _t) / delta * (_W2 - tau / 2 * sp.eye(2)))
    residual = sp.Matrix.vstack(E.diff(_t) - _W2 * E, E.subs(_t, 0) - sp.eye(2))
    return _result("matrix_exp_2x2", E, (_t, *_w), residual, complex_eval=True,
                   note="complex evaluation, real part returned; undefined at delta = 0")


@functools.lru_cache(maxsize=None)
def memory_2x2() -> SymbolicResult:
    r"""Memory ``|c^T e^{W t} U|`` for a general 2x2 ``W`` and one input.

    Uses :func:`matrix_exp_2x2`.  Symbols ``(t, w11, w12, w21, w22, u1, u2,
    c1, c2)``; the residual is that of :func:`matrix_exp_2x2`.
    """
    U, C, u, c = _io(2)
    E = matrix_exp_2x2()
    rho = (C.T * E.expr * U)[0]
    return _result("memory_2x2", sp.Abs(rho), (_t, *_w, *u, *c), E.identity_residual, parts={"kernel": rho},
                   complex_eval=True, note=E.note)


@functools.lru_cache(maxsize=None)
def transfer_function_2x2() -> SymbolicResult:
    r"""Transfer function ``H(s) = c^T (sI - W)^{-1} U`` of a 2x2 linear RNN.

    .. math:: H(s) = \int_0^\infty e^{-s t} c^\top e^{W t} U \, dt = c^\top (sI - W)^{-1} U
              \quad (\operatorname{Re} s > \alpha(W))

    ([LHEL]; docs/theory.md section 6).  Symbols ``(s, w11, w12, w21, w22, u1, u2,
    c1, c2)``.  Residual: the resolvent identity
    ``s H(s) - c^T U - c^T W (sI - W)^{-1} U`` (from ``s R = I + W R``).
    """
    s = sp.Symbol("s")
    U, C, u, c = _io(2)
    R = (s * sp.eye(2) - _W2).inv()
    H = sp.cancel((C.T * R * U)[0])
    residual = s * H - (C.T * U)[0] - (C.T * _W2 * R * U)[0]
    return _result("transfer_function_2x2", H, (s, *_w, *u, *c), residual)


@functools.lru_cache(maxsize=None)
def step_response_2x2() -> SymbolicResult:
    r"""Step response of a 2x2 linear RNN to ``u(t) = x 1[t >= 0]`` from rest.

    .. math:: y(t) = c^\top W^{-1} (e^{W t} - I) U x, \qquad y'(t) = c^\top e^{W t} U x, \quad y(0) = 0

    ([LHEL]; docs/theory.md section 6; ``W`` invertible).  Symbols ``(t, w11, w12,
    w21, w22, u1, u2, c1, c2, x)``.  Residual: ``(y' - c^T e^{Wt} U x,
    y(0))``, which sympy simplifies to zero.
    """
    U, C, u, c = _io(2)
    x = sp.Symbol("x", real=True)
    E = matrix_exp_2x2().expr
    y = (C.T * _W2.inv() * (E - sp.eye(2)) * U)[0] * x
    residual = sp.Matrix([sp.diff(y, _t) - (C.T * E * U)[0] * x, y.subs(_t, 0)])
    return _result("step_response_2x2", y, (_t, *_w, *u, *c, x), residual, complex_eval=True,
                   note="W invertible; " + matrix_exp_2x2().note)


# -- kernels and norms ----------------------------------------------------------


@functools.lru_cache(maxsize=None)
def functional_norm_exp_sum(n: int = 3) -> SymbolicResult:
    r"""Functional norm of a positive exponential sum.

    .. math:: \|H\| = \int_0^\infty |\rho(t)| \, dt = \sum_i \frac{a_i}{w_i},
              \qquad \rho(t) = \sum_{i=1}^n a_i e^{-w_i t}, \ a_i, w_i > 0

    (docs/theory.md section 6; with positive weights ``|rho| = rho``).  Symbols
    ``(a_1..a_n, w_1..w_n)``; residual: ``sympy.integrate`` minus the sum.
    """
    n = check_int("n", n, minimum=1)
    a = sp.symbols(f"a1:{n + 1}", positive=True)
    w = sp.symbols(f"w1:{n + 1}", positive=True)
    rho = sum(a[i] * sp.exp(-w[i] * _t) for i in range(n))
    expr = sum(a[i] / w[i] for i in range(n))
    return _result(f"functional_norm_exp_sum(n={n})", expr, (*a, *w), sp.integrate(rho, (_t, 0, sp.oo)) - expr,
                   parts={"kernel": rho})


@functools.lru_cache(maxsize=None)
def cauchy_determinant(n: int = 2) -> SymbolicResult:
    r"""Determinant of the Cauchy (Gram) matrix ``G_ij = 1 / (w_i + v_j)``.

    .. math:: \det G = \frac{\prod_{i<j} (w_j - w_i)(v_j - v_i)}{\prod_{i,j} (w_i + v_j)}

    ([Cauchy]).  ``G_ij = <e^{-w_i t}, e^{-v_j t}>_{L^2(0, inf)}`` is the Gram
    matrix of exponentials, the white-noise loss of exponential sums
    (docs/theory.md section 6).  Symbols ``(w_1..w_n, v_1..v_n)``; residual:
    ``det(G)`` times ``prod_{i,j}(w_i + v_j)`` minus the numerator, expanded as a
    polynomial (rows of ``G`` scaled by their common denominators);
    ``parts["G"]`` is the matrix.
    """
    n = check_int("n", n, minimum=1)
    if n > 4:
        raise ValueError(f"`n` must be <= 4 (the symbolic determinant grows factorially); got {n}.")
    w = sp.symbols(f"w1:{n + 1}", positive=True)
    v = sp.symbols(f"v1:{n + 1}", positive=True)
    G = sp.Matrix(n, n, lambda i, j: 1 / (w[i] + v[j]))
    num = sp.Mul(*[(w[j] - w[i]) * (v[j] - v[i]) for i in range(n) for j in range(i + 1, n)])
    den = sp.Mul(*[w[i] + v[j] for i in range(n) for j in range(n)])
    expr = num / den
    # Clearing denominators row by row keeps the check polynomial (and fast):
    # det(G) prod_{i,j}(w_i + v_j) = det(Gp), Gp_ij = prod_{k != j}(w_i + v_k).
    Gp = sp.Matrix(n, n, lambda i, j: sp.Mul(*[w[i] + v[k] for k in range(n) if k != j]))
    residual = sp.expand(Gp.det(method="berkowitz") - num)
    return _result(f"cauchy_determinant(n={n})", expr, (*w, *v), residual, parts={"G": G})


@functools.lru_cache(maxsize=None)
def muntz_distance(n: int = 2) -> SymbolicResult:
    r"""Squared ``L^2(0, inf)`` distance from ``e^{-v t}`` to ``span{e^{-w_i t}}``.

    .. math::

        \min_a \Big\| e^{-v t} - \sum_{i=1}^n a_i e^{-w_i t} \Big\|_2^2
        = \frac{1}{2v} \prod_{i=1}^n \Big(\frac{v - w_i}{v + w_i}\Big)^2

    ([Muntz]; docs/theory.md section 6).  Derivation checked here: the normal
    equations ``G a = g`` with ``G_ij = 1/(w_i + w_j)``, ``g_i = 1/(w_i + v)``
    are solved symbolically and the minimum ``1/(2v) - g^T a`` compared with
    the product.  Symbols ``(v, w_1..w_n)``.  ``parts`` holds ``G``, ``g`` and
    the optimal ``a``.
    """
    n = check_int("n", n, minimum=1)
    if n > 3:
        raise ValueError(f"`n` must be <= 3 for the symbolic normal equations; got {n}.")
    v = sp.Symbol("v", positive=True)
    w = sp.symbols(f"w1:{n + 1}", positive=True)
    G = sp.Matrix(n, n, lambda i, j: 1 / (w[i] + w[j]))
    g = sp.Matrix(n, 1, lambda i, _j: 1 / (w[i] + v))
    a = G.LUsolve(g)
    minimum = 1 / (2 * v) - (g.T * a)[0]
    expr = 1 / (2 * v) * sp.Mul(*[((v - wi) / (v + wi)) ** 2 for wi in w])
    return _result(f"muntz_distance(n={n})", expr, (v, *w), minimum - expr,
                   parts={"G": G, "g": g, "a": sp.simplify(a), "minimum": minimum})


@functools.lru_cache(maxsize=None)
def power_law_mixture() -> SymbolicResult:
    r"""The power law as a completely monotone exponential mixture.

    .. math:: (1 + t)^{-p} = \frac{1}{\Gamma(p)} \int_0^\infty s^{p-1} e^{-s} e^{-s t} \, ds,
              \qquad p > 0,\ t \ge 0

    (Bernstein's theorem; docs/theory.md section 6).  Symbols ``(t, p)``.  The
    residual is ``sympy.integrate`` (with ``conds="none"``, valid for the
    positive symbols) divided by ``Gamma(p)`` minus ``(1 + t)^{-p}``;
    ``parts["density"]`` is the mixing density ``s^{p-1} e^{-s} / Gamma(p)``.
    """
    p = sp.Symbol("p", positive=True)
    s = sp.Symbol("s", positive=True)
    density = s ** (p - 1) * sp.exp(-s) / sp.gamma(p)
    integral = sp.integrate(s ** (p - 1) * sp.exp(-s) * sp.exp(-s * _t), (s, 0, sp.oo), conds="none")
    expr = (1 + _t) ** (-p)
    return _result("power_law_mixture", expr, (_t, p), integral / sp.gamma(p) - expr,
                   parts={"density": density, "s": s})


@functools.lru_cache(maxsize=None)
def plateau_kernel() -> SymbolicResult:
    r"""Laplace transform of a Gaussian bump centred at ``T``.

    .. math:: \int_0^\infty e^{-w t} e^{-(t - T)^2} dt
              = \frac{\sqrt\pi}{2} e^{w^2/4 - w T} \big(1 + \operatorname{erf}(T - w/2)\big)

    (complete the square: ``-w t - (t - T)^2 = -(t - T + w/2)^2 + w^2/4 - w T``;
    docs/theory.md section 6).  Symbols ``(w, T)``.  Residual: the antiderivative
    ``A(t) = -(sqrt(pi)/2) e^{w^2/4 - wT} erf(T - w/2 - t)`` has
    ``A' = integrand`` and ``A(inf) - A(0) = closed form``.
    """
    w = sp.Symbol("w", real=True)
    T = sp.Symbol("T", real=True)
    pref = sp.sqrt(sp.pi) / 2 * sp.exp(w**2 / 4 - w * T)
    expr = pref * (1 + sp.erf(T - w / 2))
    A = -pref * sp.erf(T - w / 2 - _t)
    integrand = sp.exp(-w * _t) * sp.exp(-((_t - T) ** 2))
    residual = sp.Matrix([sp.diff(A, _t) - integrand, sp.limit(A, _t, sp.oo) - A.subs(_t, 0) - expr])
    return _result("plateau_kernel", expr, (w, T), residual, parts={"integrand": integrand, "antiderivative": A})


# -- reparameterisation ----------------------------------------------------------


@functools.lru_cache(maxsize=None)
def stability_functional_identity() -> SymbolicResult:
    r"""Closed form of the stability functional ([WLL] Sec. 3.3, [SSM]).

    .. math:: |\lambda| \int_0^\infty |e^{\mu t} - e^{\lambda t}| \, dt
              = \Big| \frac{\lambda}{\mu} - 1 \Big|, \qquad \lambda = f(w) < 0,\ \mu = f(\tilde w) < 0

    The difference of the two exponentials has one sign on ``t > 0``, so the
    absolute value comes out of the integral.  Symbols ``(lam, mu)``
    (negative).  Residual: ``|lam| |int (e^{mu t} - e^{lam t}) dt| - |lam/mu - 1|``.
    """
    lam = sp.Symbol("lam", negative=True)
    mu = sp.Symbol("mu", negative=True)
    signed = sp.integrate(sp.exp(mu * _t) - sp.exp(lam * _t), (_t, 0, sp.oo), conds="none")
    expr = sp.Abs(lam / mu - 1)
    return _result("stability_functional", expr, (lam, mu), sp.Abs(lam) * sp.Abs(signed) - expr,
                   parts={"signed_integral": signed})


_BOUND_NAMES = ("exp", "softplus", "best")
_EXPM1_NOTE = "numeric evaluates e^beta - 1 as expm1(beta) (no cancellation for small beta)"


def _expm1(x):
    from sympy.codegen.cfunctions import expm1  # lambdify prints it as numpy.expm1

    return expm1(x)


@functools.lru_cache(maxsize=None)
def stability_bound(name: str) -> SymbolicResult:
    r"""``g(beta) = sup_w sup_{|w~ - w| <= beta} |f(w)/f(w~) - 1|`` for a reparameterisation.

    * ``"exp"`` (``f = -e^w``): ``f(w)/f(w~) = e^{w - w~}``, largest at
      ``w~ = w - beta``: ``g = e^beta - 1`` for every ``w``.  Residual:
      ``|f(w)/f(w - beta) - 1| - (e^beta - 1)``.
    * ``"softplus"`` (``f = -log(1 + e^w)``): the ratio
      ``log(1 + e^w) / log(1 + e^{w - beta})`` increases to ``e^beta`` as
      ``w -> -inf``: ``g = e^beta - 1``.  Residual: the limit minus ``e^beta``.
    * ``"best"`` (``f = -1/(a w^2 + b)``): ``S = a |w~^2 - w^2| / (a w^2 + b)
      <= (2 a beta |w| + a beta^2)/(a w^2 + b)``; the first term peaks at
      ``|w| = sqrt(b/a)`` with value ``beta sqrt(a/b)``, the second at
      ``w = 0`` with ``a beta^2 / b``: ``g = beta sqrt(a/b) + a beta^2 / b``
      (an upper bound, [SSM]).  Residual: (S at ``w~ = w + beta`` minus the
      bound's numerator over the denominator for ``w > 0``, the stationary
      point minus ``sqrt(b/a)``, the peak minus ``beta sqrt(a/b)``).

    Symbols ``(beta,)`` or ``(beta, a, b)``.

    Parameters
    ----------
    name : {"exp", "softplus", "best"}
    """
    check_choice("name", name, _BOUND_NAMES)
    beta = sp.Symbol("beta", positive=True)
    w = sp.Symbol("w", real=True)
    if name == "exp":
        f = lambda x: -sp.exp(x)  # noqa: E731
        expr = sp.exp(beta) - 1
        residual = sp.Abs(f(w) / f(w - beta) - 1) - expr
        return _result("stability_bound(exp)", expr, (beta,), residual, numeric_expr=_expm1(beta), note=_EXPM1_NOTE)
    if name == "softplus":
        f = lambda x: -sp.log(1 + sp.exp(x))  # noqa: E731
        expr = sp.exp(beta) - 1
        residual = sp.limit(f(w) / f(w - beta), w, -sp.oo) - sp.exp(beta)
        return _result("stability_bound(softplus)", expr, (beta,), residual, numeric_expr=_expm1(beta), note=_EXPM1_NOTE)
    a, b = sp.symbols("a b", positive=True)
    wp = sp.Symbol("w", positive=True)
    f = lambda x: -1 / (a * x**2 + b)  # noqa: E731
    S = f(wp) / f(wp + beta) - 1  # positive for w, beta > 0
    linear = 2 * a * beta * wp / (a * wp**2 + b)
    crit = sp.solve(sp.diff(linear, wp), wp)
    expr = beta * sp.sqrt(a / b) + a * beta**2 / b
    residual = sp.Matrix([
        S - (2 * a * beta * wp + a * beta**2) / (a * wp**2 + b),
        crit[0] - sp.sqrt(b / a),
        linear.subs(wp, crit[0]) - beta * sp.sqrt(a / b),
    ])
    return _result("stability_bound(best)", expr, (beta, a, b), residual, parts={"S": S, "critical_w": crit[0]})


@functools.lru_cache(maxsize=None)
def best_reparam_derivation() -> SymbolicResult:
    r"""Derive [SSM]'s "best" reparameterisation from its gradient-scale ODE.

    Requiring ``|f'| / f^2 = L |w|`` with ``f < 0`` means
    ``d/dw (-1/f) = L w``; :func:`sympy.dsolve` gives

    .. math:: f(w) = -\frac{2}{L w^2 + C_1} = -\frac{1}{a w^2 + b},
              \qquad a = L/2,\ b = C_1/2 .

    Symbols ``(w, L, C1)`` (``L, C1 > 0``); ``expr`` is ``f``.  Residual: the
    squared gradient-scale identity ``f'^2 / f^4 - L^2 w^2``.
    ``parts["gradient_scale"]`` is ``|f'| / f^2`` (simplified to ``L |w|``),
    ``parts["a"]``, ``parts["b"]`` the [SSM] constants.
    """
    w = sp.Symbol("w", real=True)
    L, C1 = sp.symbols("L C1", positive=True)
    F = sp.Function("f")
    sol = sp.dsolve(sp.Eq(sp.diff(-1 / F(w), w), L * w), F(w))
    sols = sol if isinstance(sol, list) else [sol]
    f = sols[0].rhs
    C = [s for s in f.free_symbols if s.name == "C1"]
    if C:
        f = f.subs(C[0], C1)
    fp = sp.diff(f, w)
    scale = sp.simplify(sp.Abs(fp) / f**2)
    coeffs = sp.Poly(sp.cancel(-1 / f), w).all_coeffs()  # -1/f = a w^2 + 0 w + b
    return _result("best_reparam_derivation", f, (w, L, C1), sp.simplify(fp**2 / f**4 - L**2 * w**2),
                   parts={"gradient_scale": scale, "a": coeffs[0], "b": coeffs[-1],
                          "ode_solution": sols[0]})


# -- Lyapunov -------------------------------------------------------------------


def _lyap(W: sp.Matrix) -> sp.Matrix:
    p11, p12, p22 = sp.symbols("p11 p12 p22")
    P = sp.Matrix([[p11, p12], [p12, p22]])
    eqs = W.T * P + P * W + sp.eye(2)
    sol = sp.solve([eqs[0, 0], eqs[0, 1], eqs[1, 1]], [p11, p12, p22], dict=True)[0]
    return P.subs(sol).applyfunc(sp.factor)


@functools.lru_cache(maxsize=None)
def lyapunov_2x2() -> SymbolicResult:
    r"""Solution ``P`` of ``W^T P + P W = -I`` for a symbolic 2x2 ``W``.

    .. math:: W^\top P + P W = -I

    solved as three linear equations in ``(p11, p12, p22)`` ([WLL] Lemma
    A.8).  Symbols ``(w11, w12, w21, w22)``; ``numeric`` takes scalars and
    returns a (2, 2) array.  Residual: ``W^T P + P W + I``.
    """
    P = _lyap(_W2)
    return _result("lyapunov_2x2", P, _w, (_W2.T * P + P * _W2 + sp.eye(2)).applyfunc(sp.cancel),
                   note="valid when W is Hurwitz (unique P)")


@functools.lru_cache(maxsize=None)
def lyapunov_normal() -> SymbolicResult:
    r"""The normal case ``W = [[-b, w], [-w, -b]]``: ``P = I / (2 b)``.

    ``W`` is normal with eigenvalues ``-b +- i w``, so the spectral gap is
    ``beta = b`` and [WLL] Lemma A.8's bound ``|P|_2 <= 1/(2 beta)`` holds
    with equality.  Symbols ``(b, w)``; residual: ``P - I/(2b)``.
    """
    b = sp.Symbol("b", positive=True)
    w = sp.Symbol("w", real=True)
    W = sp.Matrix([[-b, w], [-w, -b]])
    P = _lyap(W)
    return _result("lyapunov_normal", P, (b, w), P - sp.eye(2) / (2 * b),
                   parts={"W": W, "norm2": 1 / (2 * b), "normality": W * W.T - W.T * W})


@functools.lru_cache(maxsize=None)
def lyapunov_counterexample() -> SymbolicResult:
    r"""The non-normal counterexample to Lemma A.8: ``W = [[-1, 20], [0, -1]]``.

    .. math:: P = \begin{pmatrix} 1/2 & 5 \\ 5 & 201/2 \end{pmatrix}, \qquad
              \|P\|_2 = \frac{101 + \sqrt{10100}}{2} \approx 100.75 \gg \frac{1}{2\beta} = \frac12

    (docs/theory.md section 3).  No symbols; ``numeric()`` returns ``P``.
    ``parts["norm2"]`` is the exact spectral norm.  Residual: the solved ``P``
    minus the stated matrix.
    """
    W = sp.Matrix([[-1, 20], [0, -1]])
    P = _lyap(W)
    stated = sp.Matrix([[sp.Rational(1, 2), 5], [5, sp.Rational(201, 2)]])
    norm2 = max(P.eigenvals(), key=lambda e: float(e))
    return _result("lyapunov_counterexample", P, (), P - stated,
                   parts={"W": W, "norm2": sp.nsimplify(norm2), "stated_norm2": (101 + sp.sqrt(10100)) / 2})
