"""Linear theory ([LHEL]; docs/theory.md sections 2 and 6).

Claims about the memory of linear RNNs ``dh/dt = W h + U x``, ``y = c^T h``.
"""

from __future__ import annotations

import numpy as np
import scipy.integrate
import scipy.linalg

from ._claim import Claim, Outcome, decide, property_check, with_symbolic

MODULE = "linear_memory"


def _closed_form_vs_generic() -> Outcome:
    import dynmem as dm
    from dynmem.strategies import linear_rnns

    def pred(model):
        margin = -dm.spectral_abscissa(model.W)
        t = np.linspace(0, 4.0 / margin, 12)
        ref = np.array([np.abs(model.U.T @ scipy.linalg.expm(model.W.T * ti) @ model.c).sum() for ti in t])
        gen = dm.memory_function(model, t, closed_form=False, rtol=1e-12, atol=1e-15).values
        keep = ref > 1e-3 * ref.max()
        err = float(np.max(np.abs(gen[keep] - ref[keep]) / ref[keep]))
        return err <= 1e-7, err

    ok, n, bad, worst = property_check(linear_rnns(max_hidden=5, max_inputs=3, min_margin=0.3), pred, max_examples=12)
    sym = ("memory_diagonal", "memory_2x2")
    # Tolerance: the generic path solves the probe ODE at rtol 1e-12; dy/dt = c^T (W h + U x)
    # then carries ~1e-12 |W||h| / M(t) relative error, below 1e-7 where M > 1e-3 max M.
    return with_symbolic(decide(ok, dict(models=n, max_rel_error=worst),
                  f"the batched Heaviside probes (exact vector field, sup over the 2^d vertices) match "
                  f"|U^T e^(W^T t) c|_1 from scipy.linalg.expm on {n} random linear RNNs",
                  f"counterexample: {bad!r}"), *sym)


def _vertex_attains_sup() -> Outcome:
    import dynmem as dm
    from dynmem.strategies import linear_rnns

    rng = np.random.default_rng(0)

    def pred(model):
        t = np.linspace(0, 5, 7)
        res = dm.linear_memory(model, t)
        rho = np.stack([model.U.T @ scipy.linalg.expm(model.W.T * ti) @ model.c for ti in t])
        x = rng.uniform(-1, 1, size=(500, model.inputs))  # inside the unit inf-ball
        best_random = np.abs(x @ rho.T).max(axis=0)
        at_vertex = np.abs(np.sum(res.argmax * rho, axis=1))
        slack = float(np.max(best_random - at_vertex))
        return bool(np.all(best_random <= at_vertex * (1 + 1e-12) + 1e-15)) and np.allclose(at_vertex, res.values), slack

    ok, n, bad, worst = property_check(linear_rnns(max_hidden=5, max_inputs=4), pred, max_examples=15)
    return decide(ok, dict(models=n, max_excess_of_random_inputs=worst),
                  "x = sign(rho(t)) attains |rho(t)|_1 and 500 random inputs in the inf-ball never exceed it",
                  f"an input beat the vertex: {bad!r}")


def _step_response_derivative() -> Outcome:
    import dynmem as dm
    from dynmem.strategies import linear_rnns

    def pred(model):
        x = np.linspace(1.0, -1.0, model.inputs)
        t = np.array([0.3, 1.0, 2.5])
        Winv = np.linalg.inv(model.W)
        closed = np.array([model.c @ Winv @ (scipy.linalg.expm(model.W * ti) - np.eye(model.hidden)) @ model.U @ x
                           for ti in t])
        sim = dm.simulate(model, dm.step(x), t, rtol=1e-12, atol=1e-14).y
        err = float(np.max(np.abs(sim - closed)) / max(1e-12, np.max(np.abs(closed))))
        return err < 1e-8, err

    ok, n, bad, worst = property_check(linear_rnns(max_hidden=4, max_inputs=2, min_margin=0.2), pred, max_examples=10)
    return with_symbolic(decide(ok, dict(models=n, max_rel_error=worst),
                                "y(t) = c^T W^{-1}(e^{Wt} - I) U x matches dynmem.simulate at rtol 1e-12",
                                f"mismatch: {bad!r}"), "step_response_2x2")


def _transfer_function() -> Outcome:
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(5):
        m = 3
        A = rng.standard_normal((m, m))
        W = A - (np.max(np.linalg.eigvals(A).real) + 0.5) * np.eye(m)
        U, c = rng.standard_normal((m, 1)), rng.standard_normal(m)
        for s in (0.3, 1.0, 2.0):
            laplace, _ = scipy.integrate.quad(lambda t: float(c @ scipy.linalg.expm(W * t) @ U[:, 0]) * np.exp(-s * t),
                                              0, np.inf, epsabs=1e-13, epsrel=1e-11, limit=200)
            closed = float(c @ np.linalg.solve(s * np.eye(m) - W, U[:, 0]))
            worst = max(worst, abs(laplace - closed) / max(1e-12, abs(closed)))
    return with_symbolic(decide(worst < 1e-8, dict(cases=15, max_rel_error=worst),
                                "quadrature of the Laplace transform of c^T e^{Wt} U equals c^T (sI - W)^{-1} U",
                                f"relative error {worst:.3g}"), "transfer_function_2x2")


def _jordan_block() -> Outcome:
    worst = 0.0
    for lam in (-0.3, -1.0, -2.5):
        W = np.array([[lam, 1.0], [0.0, lam]])
        for t in (0.1, 1.0, 7.0):
            closed = np.exp(lam * t) * np.array([[1.0, t], [0.0, 1.0]])
            worst = max(worst, float(np.max(np.abs(scipy.linalg.expm(W * t) - closed))))
    return with_symbolic(decide(worst < 1e-13, dict(max_abs_error=worst),
                                "scipy.linalg.expm of [[l, 1], [0, l]] equals e^{lt}[[1, t], [0, 1]]",
                                f"error {worst:.3g}"), "memory_jordan", "matrix_exp_2x2")


def _linear_rate_is_spectral_abscissa() -> Outcome:
    import dynmem as dm

    rng = np.random.default_rng(2)
    errs = []
    for _ in range(6):
        m = 4
        A = rng.standard_normal((m, m))
        A = 0.5 * (A + A.T)  # real spectrum: a clean exponential tail
        W = A - (np.max(np.linalg.eigvalsh(A)) + rng.uniform(0.2, 1.0)) * np.eye(m)
        model = dm.LinearRNN(W, rng.standard_normal((m, 1)), rng.standard_normal(m))
        alpha = dm.spectral_abscissa(W)
        # Fit the tail t >= 10/|alpha|, where faster modes have died by a factor e^{-10 gap/|alpha|}.
        t = np.linspace(10.0 / -alpha, 40.0 / -alpha, 600)
        fit = dm.fit_decay(t, dm.linear_memory(model, t).values)
        errs.append(abs(fit.rate / -alpha - 1) if fit.kind == "exponential" else np.inf)
    worst = float(max(errs))
    # measured max_rel_rate_error 1.1e-12 (the tail is a clean exponential to rounding); 1e-10 is ~100x that
    return decide(worst < 1e-10, dict(models=len(errs), max_rel_rate_error=worst),
                  "fit_decay recovers beta = -alpha(W) from the tail of the memory of random symmetric-W linear "
                  "RNNs to a relative 1e-10",
                  f"rate errors {errs}")


CLAIMS = [
    Claim("linear_memory.closed_form",
          r"M(t) = \sup_{\|x\|_\infty \le 1} |\tfrac{d}{dt} H_t(u^x)| = \|U^\top e^{W^\top t} c\|_1",
          "linear RNN, Hurwitz W", "[WLL] Sec. 3; [LHEL]", "symbolic+numeric", "verified", _closed_form_vs_generic, MODULE),
    Claim("linear_memory.vertex_attains_sup",
          r"\arg\max_{\|x\|_\infty \le 1} |\rho(t)^\top x| = \mathrm{sign}(\rho(t))",
          "linear RNN", "docs/theory.md sec. 2", "numeric", "verified", _vertex_attains_sup, MODULE),
    Claim("linear_memory.step_response",
          r"y(t) = c^\top W^{-1}(e^{Wt} - I) U x,\quad y'(t) = c^\top e^{Wt} U x",
          "linear RNN, W invertible, Heaviside input", "[LHEL]; docs/theory.md sec. 6", "symbolic+numeric", "verified",
          _step_response_derivative, MODULE),
    Claim("linear_memory.transfer_function",
          r"\mathcal{L}[c^\top e^{Wt} U](s) = c^\top (sI - W)^{-1} U",
          "Hurwitz W, s > 0", "docs/theory.md sec. 6", "symbolic+numeric", "verified", _transfer_function, MODULE),
    Claim("linear_memory.jordan_block",
          r"\exp\left(t\begin{bmatrix}\lambda & 1\\ 0 & \lambda\end{bmatrix}\right) = e^{\lambda t}\begin{bmatrix}1 & t\\ 0 & 1\end{bmatrix}",
          "2x2 Jordan block", "docs/theory.md sec. 6", "symbolic+numeric", "verified", _jordan_block, MODULE),
    Claim("linear_memory.rate_equals_spectral_abscissa",
          r"M(t) \asymp e^{\alpha(W) t},\ \alpha(W) = \max \mathrm{Re}\,\lambda(W)",
          "linear RNN, symmetric Hurwitz W, generic U, c", "[LHEL]", "numeric", "verified",
          _linear_rate_is_spectral_abscissa, MODULE),
]
