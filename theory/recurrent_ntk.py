"""The Recurrent Neural Tangent Kernel ([RNTK]; docs/theory.md section 7, last bullet).

Claims about :mod:`dynmem.kernel.recurrent_ntk`: the closed-form Gaussian expectations,
the hand-written BPTT Jacobian, and the infinite-width limit of the empirical
NTK of the dense NTK-parameterised RNN.
"""

from __future__ import annotations

import numpy as np

from ._claim import Claim, Outcome, decide, property_check

MODULE = "recurrent_ntk"
_SIG = dict(sigma_w=1.0, sigma_u=1.0, sigma_b=0.5, sigma_v=1.0)


def _covariances(seed, k):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0.3, 3.0, k), rng.uniform(0.3, 3.0, k)
    return a, b, rng.uniform(-0.95, 0.95, k) * np.sqrt(a * b)


def _relu_closed_form() -> Outcome:
    from dynmem.decay import loglog_slope
    from dynmem.kernel import recurrent_ntk as R

    a, b, c = _covariances(1, 40)
    K0, D0 = R.closed_form_expectations("relu", a, b, c)
    qs = np.array([32, 64, 128, 256])
    res = [R.gauss_hermite_expectations("relu", a, b, c, int(q)) for q in qs]
    errK = np.array([np.abs(r[0] - K0).max() for r in res])
    errD = np.array([np.abs(r[1] - D0).max() for r in res])
    pK = -loglog_slope(qs, errK).slope
    pD = -loglog_slope(qs, errD).slope
    rich = float(np.abs(2 * res[-1][0] - res[-2][0] - K0).max())
    ok = abs(pK - 1.0) < 0.3 and abs(pD - 0.5) < 0.3 and rich < 0.25 * errK[-1]
    return decide(ok, dict(covariances=40, nodes=qs.tolist(), err_K=errK.tolist(), err_Kdot=errD.tolist(),
                           order_K=pK, order_Kdot=pD, richardson_err_K=rich),
                  f"Gauss-Hermite on 32..256 nodes converges to the arc-cosine closed forms at the orders of a kink "
                  f"(q^-{pK:.2f}, predicted 1) and a jump (q^-{pD:.2f}, predicted 1/2); Richardson leaves {rich:.1e}",
                  f"orders {pK:.2f}, {pD:.2f}; errors {errK}, {errD}")


def _erf_closed_form() -> Outcome:
    from dynmem.kernel import recurrent_ntk as R

    a, b, c = _covariances(0, 50)
    K0, D0 = R.closed_form_expectations("erf", a, b, c)
    errs = []
    for q in (32, 64, 96, 128):
        K, D = R.gauss_hermite_expectations("erf", a, b, c, q)
        errs.append(float(max(np.abs(K - K0).max(), np.abs(D - D0).max())))
    geometric = all(e1 < 1e-3 * e0 for e0, e1 in zip(errs[:2], errs[1:3]))
    ok = geometric and errs[-1] < 1e-13
    return decide(ok, dict(covariances=50, nodes=[32, 64, 96, 128], max_abs_error=errs),
                  f"the arcsine kernel and its derivative kernel equal 2-D Gauss-Hermite quadrature, which converges "
                  f"geometrically to {errs[-1]:.1e} at 128 nodes",
                  f"errors {errs}")


def _monte_carlo() -> Outcome:
    from dynmem.activations import get_kernel_activation
    from dynmem.kernel import recurrent_ntk as R

    rng = np.random.default_rng(3)
    n = 200_000
    worst = 0.0
    for act in ("relu", "erf", "tanh"):
        spec = get_kernel_activation(act)
        fn, deriv, closed = spec.fn, spec.deriv, spec.gaussian_closed_form
        for a, b, c in ((1.0, 1.0, 0.5), (2.5, 0.4, -0.7), (0.8, 1.7, 1.1)):
            L = np.linalg.cholesky(np.array([[a, c], [c, b]]))
            z = rng.standard_normal((n, 2)) @ L.T
            A, B, C = np.array([a]), np.array([b]), np.array([c])
            K, D = R.closed_form_expectations(act, A, B, C) if closed else R.gauss_hermite_expectations(act, A, B, C, 96)
            for val, s in ((K, fn(z[:, 0]) * fn(z[:, 1])), (D, deriv(z[:, 0]) * deriv(z[:, 1]))):
                worst = max(worst, abs(float(val[0]) - s.mean()) / (s.std() / np.sqrt(n)))
    return decide(worst < 5.0, dict(samples=n, cases=18, max_z_score=worst),
                  "K = E[phi phi'] and Kdot = E[phi' phi'] (closed forms for relu/erf, quadrature for tanh) lie "
                  f"within {worst:.1f} standard errors of Monte Carlo means over {n} bivariate normal draws",
                  f"a z-score of {worst:.1f}")


def _jacobian_fd() -> Outcome:
    from hypothesis import strategies as st

    from dynmem.kernel.recurrent_ntk import init_params, rnn_jacobian, rnn_output

    def pred(ex):
        n, d, T, act, seed = ex
        rng = np.random.default_rng(seed)
        p = init_params(n, d, activation=act, rng=rng, **_SIG)
        X = rng.standard_normal((2, T, d))
        J = rnn_jacobian(p, X)
        theta, h = p.flatten(), 1e-5
        Jfd = np.empty_like(J)
        for i in range(theta.size):
            e = np.zeros_like(theta)
            e[i] = h
            Jfd[:, i] = (rnn_output(p.unflatten(theta + e), X) - rnn_output(p.unflatten(theta - e), X)) / (2 * h)
        err = float(np.abs(J - Jfd).max() / max(1.0, np.abs(J).max()))
        return err <= 50 * (h * h + 2.2e-16 / h), err

    strat = st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(1, 5), st.sampled_from(["tanh", "erf"]),
                      st.integers(0, 2**32 - 1))
    ok, n, bad, worst = property_check(strat, pred, max_examples=15)
    return decide(ok, dict(networks=n, max_rel_error=worst, step=1e-5),
                  f"the BPTT Jacobian of f with respect to (W, U, b, v) matches central differences (h = 1e-5) on {n} "
                  f"random networks within 50 (h^2 + eps/h)",
                  f"counterexample (n, d, T, activation, seed) = {bad!r}")


def _infinite_width() -> Outcome:
    from dynmem.decay import loglog_slope
    from dynmem.kernel.recurrent_ntk import empirical_rntk, init_params, rntk

    X = np.random.default_rng(10).standard_normal((6, 5, 2))
    widths = np.array([64, 128, 256, 512, 1024])
    k = 32
    out = {}
    ok = True
    for act in ("relu", "erf"):
        A = rntk(X, activation=act, **_SIG).ntk
        med = []
        for n in widths:
            nets = (init_params(int(n), 2, activation=act, rng=1000 * int(n) + s, **_SIG) for s in range(k))
            errs = [np.linalg.norm(empirical_rntk(p, X) - A) / np.linalg.norm(A) for p in nets]
            med.append(float(np.median(errs)))
        slope = loglog_slope(widths, med).slope
        out[act] = dict(median_error=med, slope=slope)
        ok &= abs(slope + 0.5) < 0.15
    # The median, not the mean square: for relu the error of one network is heavy-tailed
    # (products of random Jacobians over time), which makes an RMS over 32 draws noisy.
    return decide(ok, dict(widths=widths.tolist(), initialisations=k,
                           **{f"{a}_{kk}": v for a, d in out.items() for kk, v in d.items()}),
                  "the empirical NTK of one width-n network is off the analytic RNTK by a median relative error "
                  f"falling like n^{out['relu']['slope']:.2f} (relu) and n^{out['erf']['slope']:.2f} (erf) over "
                  f"n = 64..1024, {k} networks per width (predicted n^-0.5)",
                  f"slopes / errors: {out}")


def _nngp() -> Outcome:
    from dynmem.kernel.recurrent_ntk import init_params, rnn_output, rntk

    X = np.random.default_rng(11).standard_normal((3, 3, 2))
    res = rntk(X, activation="erf", **_SIG)
    F = np.stack([rnn_output(init_params(128, 2, activation="erf", rng=s, **_SIG), X) for s in range(1500)])
    C = F.T @ F / len(F)
    err = float(np.abs(C - res.nngp).max() / np.abs(res.nngp).max())
    return decide(err < 0.1, dict(networks=1500, width=128, max_rel_error=err),
                  f"the output covariance of 1500 random width-128 erf RNNs matches the NNGP kernel "
                  f"sigma_v^2 K^(T,T') within {err:.1%} (Monte Carlo error ~4%)",
                  f"relative error {err:.3f}")


def _psd() -> Outcome:
    from dynmem.kernel.recurrent_ntk import rntk

    X = np.random.default_rng(7).standard_normal((12, 5, 2))
    worst, asym = np.inf, 0.0
    for act in ("relu", "erf", "tanh"):
        res = rntk(X, activation=act, **_SIG)
        for M in (res.ntk, res.nngp):
            asym = max(asym, float(np.abs(M - M.T).max()))
            worst = min(worst, float(np.linalg.eigvalsh(M).min() / np.abs(M).max()))
    return decide(worst > -1e-12 and asym == 0.0, dict(sets=3, sequences=12, min_relative_eigenvalue=worst),
                  "the RNTK and NNGP Gram matrices of 12 random sequences are symmetric and positive semi-definite "
                  "for relu, erf and tanh",
                  f"min eigenvalue / max entry = {worst:.2e}, asymmetry {asym:.1e}")


CLAIMS = [
    Claim("recurrent_ntk.relu_closed_form",
          r"E[\phi(z)\phi(z')] = \tfrac{\sqrt{ab}}{2\pi}(\sin\theta + (\pi-\theta)\cos\theta),\ "
          r"E[\phi'(z)\phi'(z')] = \tfrac{\pi-\theta}{2\pi},\ \phi = \mathrm{relu},\ \cos\theta = c/\sqrt{ab}",
          "(z, z') centred bivariate normal with variances a, b and covariance c",
          "[RNTK] App.; Cho & Saul 2009; docs/theory.md sec. 7", "numeric", "verified", _relu_closed_form, MODULE),
    Claim("recurrent_ntk.erf_closed_form",
          r"E[\mathrm{erf}(z)\mathrm{erf}(z')] = \tfrac{2}{\pi}\arcsin\tfrac{2c}{\sqrt{(1+2a)(1+2b)}},\ "
          r"E[\mathrm{erf}'(z)\mathrm{erf}'(z')] = \tfrac{4}{\pi}((1+2a)(1+2b)-4c^2)^{-1/2}",
          "(z, z') centred bivariate normal", "Williams 1998; [RNTK]; docs/theory.md sec. 7", "numeric", "verified",
          _erf_closed_form, MODULE),
    Claim("recurrent_ntk.expectations_monte_carlo",
          r"K = E[\phi(z)\phi(z')],\ \dot K = E[\phi'(z)\phi'(z')]",
          "relu, erf (closed forms), tanh (96-node Gauss-Hermite)", "docs/theory.md sec. 7", "numeric", "verified",
          _monte_carlo, MODULE),
    Claim("recurrent_ntk.bptt_jacobian",
          r"\partial f/\partial W = \tfrac{\sigma_w}{\sqrt n}\sum_t \delta_t h_{t-1}^\top,\ "
          r"\delta_{t-1} = \phi'(g_{t-1}) \odot \tfrac{\sigma_w}{\sqrt n} W^\top \delta_t",
          "dense NTK-parameterised RNN, smooth activation", "[RNTK] Sec. 3; docs/theory.md sec. 8", "numeric", "verified",
          _jacobian_fd, MODULE),
    Claim("recurrent_ntk.infinite_width_limit",
          r"\|\Theta_n - \Theta\| / \|\Theta\| = O(n^{-1/2}),\ "
          r"\Theta = \sigma_v^2[K^{(T,T')} + \dot K^{(T,T')}\Theta_g^{(T,T')}]",
          "standard-normal weights, NTK parameterisation, h_0 = 0, relu and erf", "[RNTK] Thm 1; docs/theory.md sec. 7",
          "numeric", "verified", _infinite_width, MODULE),
    Claim("recurrent_ntk.nngp_is_output_covariance",
          r"\lim_{n\to\infty} E[f(x) f(x')] = \sigma_v^2 K^{(T,T')}(x, x')",
          "standard-normal weights, erf, width 128", "[RNTK] Sec. 3; docs/theory.md sec. 7", "numeric", "verified",
          _nngp, MODULE),
    Claim("recurrent_ntk.positive_semidefinite",
          r"[\Theta(x_i, x_j)]_{ij} \succeq 0,\ [K^{(T,T)}(x_i, x_j)]_{ij} \succeq 0",
          "any finite set of sequences", "[RNTK]", "numeric", "verified", _psd, MODULE),
]
