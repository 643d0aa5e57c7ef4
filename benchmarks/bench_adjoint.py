"""CTRNN adjoint gradient: dynmem vs torchdiffeq ``odeint_adjoint`` (float64, CPU, one thread).

Problem (identical on both sides)::

    dh/dt = tanh(W h + U x(t) + b),  h(0) = 0,  y(t) = c^T h(t),   m = 32, d = 4
    x: PiecewiseConstant(np.linspace(0, 10, 21), values)   (20 pieces of length 0.5)
    t_obs = 0.25, 0.75, ..., 9.75  (20 times in (0, 10], midway between knots)
    L = 0.5 * sum_i (y(t_i) - y_obs_i)^2,   y_obs from a "teacher" CTRNN

dynmem: ``adjoint_gradient(model, x, t_obs, y_obs, rtol=1e-6, atol=1e-8)``
(RK45 = Dormand-Prince 5(4) both ways; it stops at every knot and observation).

torchdiffeq: ``odeint_adjoint(field, h0, [0, *t_obs], method="dopri5", rtol=1e-6,
atol=1e-8, options=dict(jump_t=inner_knots))`` where ``field`` is an
``nn.Module`` holding W, U, b as parameters and looking up the piecewise
constant input with ``torch.searchsorted``; ``c`` is a leaf tensor used in
the read-out, so autograd gives dL/dc and the adjoint gives dL/dW, dL/dU,
dL/db.  Fairness notes:

* same tableau (dopri5 = scipy RK45), same rtol/atol, same RMS error norm
  ``||err / (atol + rtol max(|y0|, |y1|))||_rms`` in both libraries;
* ``jump_t`` makes dopri5 end a step exactly at each knot and restart (it
  evaluates the field just after/before the jump), which is what dynmem's
  knot-to-knot integration does; ``adjoint_options`` default to the same
  options (torchdiffeq flips ``jump_t`` for the reversed solve);
* two torchdiffeq variants are timed: the default adjoint norm (error control
  on state, adjoint and parameter integrals) and ``norm="seminorm"``
  (parameter integrals excluded from step-size control, Kidger et al. 2021),
  which is torchdiffeq's fastest documented setting;
* torchdiffeq integrates the state backwards alongside the adjoint (its
  method), dynmem interpolates the stored forward solution.

Reference (independent of both libraries): the exact gradient of a
*fixed-step classical RK4* discretisation, obtained with torch autograd
through a hand-written loop, with steps aligned to knots and observations,
at two step sizes combined by Richardson extrapolation (RK4 error ~ h^4):
``g_ref = (16 g(h/2) - g(h)) / 15``.  ``|g(h/2) - g_ref|`` is reported as an
estimate of the reference's own error; dynmem's adjoint at rtol=1e-12,
atol=1e-14 is reported against it as a consistency check.

A second row times the forward solve alone (``dynmem.simulate`` with the same
tolerances vs torchdiffeq ``odeint`` without gradients, error of ``y(t_obs)``)
and the adjoint row reports dynmem's adjoint/forward time ratio.
"""

from __future__ import annotations

import numpy as np

import dynmem
from _common import Case, import_torch, import_torchdiffeq, rel_err

M, D = 32, 4
T_END = 10.0
N_PIECES = 20
RTOL, ATOL = 1e-6, 1e-8
# RK4 reference: steps per input piece (0.5 long) for the fine solve; the coarse one uses half.
REF_STEPS_PER_PIECE = 400
QUICK_REF_STEPS_PER_PIECE = 100


def make_problem(seed: int = 0):
    rng = np.random.default_rng([seed, 7])
    model = dynmem.CTRNN.random(M, D, spectral_abscissa=-0.5, bias_scale=0.1, rng=rng)
    teacher = dynmem.CTRNN.random(M, D, spectral_abscissa=-0.5, bias_scale=0.1, rng=rng)
    knots = np.linspace(0.0, T_END, N_PIECES + 1)
    values = rng.standard_normal((N_PIECES, D))
    x = dynmem.PiecewiseConstant(knots, values)
    t_obs = knots[:-1] + 0.5 * np.diff(knots)  # 0.25, 0.75, ..., 9.75
    y_obs = dynmem.simulate(teacher, x, t_obs, rtol=1e-10, atol=1e-12).y + 0.05 * rng.standard_normal(t_obs.size)
    return model, x, t_obs, y_obs


def _params(model):
    return [np.array(model.W), np.array(model.U), np.array(model.b), np.array(model.c)]


def rk4_gradient(model, x, t_obs, y_obs, steps_per_piece: int):
    """Loss gradient of a fixed-step RK4 solve, by autograd through the loop.

    Steps are ``0.5 / steps_per_piece`` long and every knot and observation
    falls on a step boundary.  Returns (flat gradient, y at t_obs).
    """
    torch = import_torch()
    knots = x.knots
    piece = float(knots[1] - knots[0])
    if not np.allclose(np.diff(knots), piece):
        raise ValueError("the RK4 reference assumes equally spaced knots")
    n = steps_per_piece
    dt = piece / n
    obs_steps = np.rint((t_obs - knots[0]) / dt).astype(int)
    if not np.allclose(obs_steps * dt + knots[0], t_obs, rtol=0, atol=1e-12):
        raise ValueError("observation times must fall on RK4 step boundaries")
    W, U, b, c = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in _params(model))
    vals = torch.tensor(np.array(x.values), dtype=torch.float64)
    h = torch.zeros(model.hidden, dtype=torch.float64)
    obs_at = {int(k): i for i, k in enumerate(obs_steps)}
    ys = [None] * len(t_obs)
    WT = W.T
    for k in range(int(obs_steps.max())):
        p = U @ vals[k // n] + b  # the input is constant on the whole step
        k1 = torch.tanh(h @ WT + p)
        k2 = torch.tanh((h + (0.5 * dt) * k1) @ WT + p)
        k3 = torch.tanh((h + (0.5 * dt) * k2) @ WT + p)
        k4 = torch.tanh((h + dt * k3) @ WT + p)
        h = h + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        if k + 1 in obs_at:
            ys[obs_at[k + 1]] = h @ c
    y = torch.stack(ys)
    loss = 0.5 * torch.sum((y - torch.from_numpy(np.asarray(y_obs))) ** 2)
    loss.backward()
    g = np.concatenate([p.grad.numpy().ravel() for p in (W, U, b, c)])
    return g, y.detach().numpy()


def _torchdiffeq_side(model, x, t_obs, y_obs, *, seminorm: bool, with_grad: bool = True):
    torch = import_torch()
    torchdiffeq = import_torchdiffeq()
    nn = torch.nn

    class Field(nn.Module):
        """dh/dt = tanh(W h + U x(t) + b) with x piecewise constant."""

        def __init__(self):
            super().__init__()
            W, U, b, _ = _params(model)
            self.W = nn.Parameter(torch.from_numpy(W))
            self.U = nn.Parameter(torch.from_numpy(U))
            self.b = nn.Parameter(torch.from_numpy(b))
            self.register_buffer("inner", torch.tensor(x.knots[1:-1], dtype=torch.float64))
            self.register_buffer("values", torch.tensor(np.array(x.values), dtype=torch.float64))

        def forward(self, t, h):
            k = torch.searchsorted(self.inner, t.reshape(1), right=True)[0]  # right-continuous pieces
            return torch.tanh(self.W @ h + self.U @ self.values[k] + self.b)

    field = Field()
    c = torch.tensor(np.array(model.c), dtype=torch.float64, requires_grad=True)
    h0 = torch.zeros(model.hidden, dtype=torch.float64)
    ts = torch.tensor(np.concatenate([[x.t_start], t_obs]), dtype=torch.float64)
    yo = torch.from_numpy(np.asarray(y_obs, dtype=np.float64))
    options = dict(jump_t=torch.tensor(x.knots[1:-1], dtype=torch.float64))
    kwargs = dict(method="dopri5", rtol=RTOL, atol=ATOL, options=options)
    if seminorm:
        kwargs["adjoint_options"] = dict(options, norm="seminorm")
    params = (field.W, field.U, field.b, c)

    def run_grad():
        for p in params:
            p.grad = None
        hs = torchdiffeq.odeint_adjoint(field, h0, ts, **kwargs)
        y = hs[1:] @ c
        loss = 0.5 * torch.sum((y - yo) ** 2)
        loss.backward()
        return np.concatenate([p.grad.numpy().ravel() for p in params])

    def run_forward():
        with torch.no_grad():
            hs = torchdiffeq.odeint(field, h0, ts, method="dopri5", rtol=RTOL, atol=ATOL, options=options)
            return (hs[1:] @ c).numpy()

    return run_grad if with_grad else run_forward


class _Reference:
    """Computes the RK4 reference once and shares it between the cases."""

    def __init__(self, problem, steps_per_piece: int):
        self.problem = problem
        self.n = steps_per_piece
        self._cache = None

    def get(self) -> dict:
        if self._cache is None:
            model, x, t_obs, y_obs = self.problem
            g_c, y_c = rk4_gradient(model, x, t_obs, y_obs, self.n // 2)
            g_f, y_f = rk4_gradient(model, x, t_obs, y_obs, self.n)
            g = (16.0 * g_f - g_c) / 15.0
            y = (16.0 * y_f - y_c) / 15.0
            tight = dynmem.adjoint.adjoint_gradient(model, x, t_obs, y_obs, rtol=1e-12, atol=1e-14).flat
            self._cache = dict(
                grad=g,
                y=y,
                grad_error_estimate=rel_err(g_f, g),
                y_error_estimate=rel_err(y_f, y),
                dynmem_tight_vs_reference=rel_err(tight, g),
            )
        return self._cache


_SHARED = {}


def _shared(quick: bool):
    if quick not in _SHARED:
        problem = make_problem()
        _SHARED[quick] = (problem, _Reference(problem, QUICK_REF_STEPS_PER_PIECE if quick else REF_STEPS_PER_PIECE))
    return _SHARED[quick]


def cases(quick: bool = False) -> list[tuple[str, str, object]]:
    """``(name, group, build)`` triples; ``build()`` makes the :class:`Case`."""

    def adjoint_case(seminorm: bool):
        def build():
            problem, ref = _shared(quick)
            model, x, t_obs, y_obs = problem

            def run_dynmem():
                return dynmem.adjoint.adjoint_gradient(model, x, t_obs, y_obs, rtol=RTOL, atol=ATOL).flat

            def run_forward():
                return dynmem.simulate(model, x, t_obs, rtol=RTOL, atol=ATOL).y

            def extras(record):
                fwd = record["also_timed"]["dynmem_forward"]["median_s"]
                info = {k: v for k, v in ref.get().items() if k not in ("grad", "y")}
                res = dynmem.adjoint.adjoint_gradient(model, x, t_obs, y_obs, rtol=RTOL, atol=ATOL)
                info.update(
                    dynmem_forward_median_s=fwd,
                    dynmem_adjoint_over_forward=record["dynmem_median_s"] / fwd,
                    dynmem_nfev_forward=res.nfev_forward,
                    dynmem_nfev_backward=res.nfev_backward,
                    dynmem_quadrature_nodes=res.n_quadrature_nodes,
                )
                return info

            variant = "seminorm" if seminorm else "default norm"
            return Case(
                name="ctrnn_adjoint_m32" + ("_seminorm" if seminorm else ""),
                group="adjoint",
                description=f"CTRNN adjoint gradient, m={M} d={D} T={T_END:g}, 20 pieces, 20 obs, rtol={RTOL:g} atol={ATOL:g}; "
                f"torchdiffeq odeint_adjoint dopri5 ({variant}, jump_t at knots)",
                params=dict(m=M, d=D, T=T_END, pieces=N_PIECES, n_obs=len(t_obs), rtol=RTOL, atol=ATOL,
                            torchdiffeq_adjoint_norm=variant),
                dynmem=run_dynmem,
                peer=_torchdiffeq_side(model, x, t_obs, y_obs, seminorm=seminorm),
                reference=lambda: ref.get()["grad"],
                peer_name=f"torchdiffeq adjoint ({'seminorm' if seminorm else 'default'})",
                reference_name="RK4 autograd, Richardson",
                speed_target=30.0,
                accuracy_target=10.0,
                also_time={"dynmem_forward": run_forward},
                extras=extras,
            )

        return build

    def forward_case():
        problem, ref = _shared(quick)
        model, x, t_obs, y_obs = problem
        return Case(
            name="ctrnn_forward_m32",
            group="adjoint",
            description=f"CTRNN forward solve only, y(t_obs), rtol={RTOL:g} atol={ATOL:g}: "
            "dynmem.simulate (RK45) vs torchdiffeq odeint dopri5 (no grad, jump_t at knots)",
            params=dict(m=M, d=D, T=T_END, pieces=N_PIECES, n_obs=len(t_obs), rtol=RTOL, atol=ATOL),
            dynmem=lambda: dynmem.simulate(model, x, t_obs, rtol=RTOL, atol=ATOL).y,
            peer=_torchdiffeq_side(model, x, t_obs, y_obs, seminorm=False, with_grad=False),
            reference=lambda: ref.get()["y"],
            peer_name="torchdiffeq odeint",
            reference_name="RK4, Richardson",
        )

    return [
        ("ctrnn_adjoint_m32", "adjoint", adjoint_case(False)),
        ("ctrnn_adjoint_m32_seminorm", "adjoint", adjoint_case(True)),
        ("ctrnn_forward_m32", "adjoint", forward_case),
    ]
