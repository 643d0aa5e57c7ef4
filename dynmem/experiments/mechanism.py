r"""The mechanism test: do trained nonlinear RNNs lose their stability margin on a long-memory target?

[WLL] Thm 3.9's proof bounds the spectral margin of the approximants below
by their stability radius: a target approximated *stably* must have
exponentially decaying memory.  Its visible mechanism is that, trained on a
polynomial-memory target, a network's margin goes to 0 as its error does,
while on an exponential target it stays at the target's rate.  The paper's
own protocols cannot show this (a 3.2-unit training window is approximated
by exponentials of any rate >= 0.15 far below the reached error; the public
code pins the margin at 0), so this experiment is dynmem's own protocol
``"mechanism"``, with its decision rule fixed before the run.

Model: the residual tanh recurrence ``h <- h + tanh(W h + U x + b)``,
``y_k = c^T h_{k+1}`` (``dt = 1``, free ``W``, no output bias;
:class:`dynmem.experiments.trained.Net`).  Targets (``j`` in steps, ``tau``
the kernel's time scale in steps):

* ``pol``: ``rho_j = (1 + j / tau)^{-1.5}``;
* ``exp``: ``rho_j = e^{-0.2 j / tau}``, whose own discrete margin is
  ``1 - e^{-0.2 / tau}`` (0.1813 at ``tau = 1``).

Arms (sizes of ``size="full"``):

* main: ``tau = 1`` (window ``H = 256`` kernel scales), widths 2-32, 5 seeds;
* horizon: ``tau = 8`` (``H = 32``) and ``tau = 80`` (``H = 3.2``, the
  paper's window after rescaling), widths 4-16, 3 seeds, init rates / tau;
* least squares (pol, ``tau = 1``): start from the linear VarPro + NNLS fit
  of the discrete kernel (:func:`dynmem.expsum.fit_exponential_sum`),
  ``W0 = -diag(1 - e^{-mu})``, ``U0 = s sqrt(a)``, ``c0 = sqrt(a) / s``,
  ``s = 0.05`` (small states: the tanh net starts as the linear fit);
  400 epochs, cosine lr 1e-3 -> 1e-5.

Data: ``N = 512`` training sequences ``x ~ N(0, 1)`` of 256 steps, a
separate validation set (256 x 256) and a long test (64 x 1024); the target
output is the causal convolution ``y_k = sum_{j <= k} rho_j x_{k-j}``.
Training: Adam (0.9, 0.999), batch 64, cosine lr 3e-3 -> 3e-5 over 800
epochs, plain MSE, float64, no clipping (:func:`dynmem.experiments.trained.fit`, i.e.
:func:`dynmem.training.train_epochs`).

Measured at every checkpoint (epochs 0, 25, 50, 100, 200, 400, 600, 800):
relative MSE on validation and on the long test; the linearised kernel's
relative L2 error on ``[0, 256)``; ``-alpha(W)``; the Euler margin
``1 - rho(I + W)``; the effective margin (:func:`dynmem.margins.effective_margin`,
share 1e-3 of the window's l1 mass); the ``W + beta I`` threshold of the
Euler map (:func:`dynmem.margins.shift_threshold`); the complex stability
radii of ``W`` (continuous) and of ``I + W`` (discrete); ``sum_k |R_k|``.
At the end: relative MSE of ``W + beta I`` on the long test for
``beta / beta*`` in ``{0.5, 0.9, 1.1, 1.5, 2, 3}`` and on a finer grid
(instability: relative MSE > 1e3 or divergence), beside 3 random
block-spectral draws per beta (the paper's rule).  Reference: the linear
frontier ``mu*(E; H, B)`` (:func:`dynmem.margins.linear_frontier`).

Choices the rule leaves open, fixed here before the run: "margin" in
C1-C3, C5 and C6 is the effective margin; "margin" in C4 is ``beta*``, the
exact ``W + beta I`` threshold of the Euler map (equal to ``1 - rho(I + W)``
when the dominant eigenvalue of ``I + W`` is real and positive); relative
MSE is the validation set's; "at every width" in C5 compares the medians
over seeds; the error span of the rule is that of the points entering C2;
a model with fewer than two C2 points has no slope (excluded from the
median, counted as not positive).  Outcome order: confirmed if C1-C6 hold;
else refuted if a refutation condition holds; else inconclusive.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time

import numpy as np
import scipy.optimize
import scipy.signal
import scipy.stats

from ..expsum import fit_exponential_sum
from ..margins import (discrete_margin, discrete_stability_radius, effective_margin, frontier_error,
                       linear_frontier, modal_decomposition, shift_threshold)
from ..spectra import stability_radius
from . import model_line
from . import trained as tr
from .study import config_digest, sweep_tasks
from .record import Experiment

TITLE = "Mechanism test: the margin of trained tanh RNNs on long-memory targets"
CLAIM = ("[WLL] Thm 3.9's mechanism: trained on a polynomial-memory target, a nonlinear RNN's stability margin goes "
         "to 0 as its error does; on an exponential target it stays at the target's rate; W + beta I becomes "
         "unstable at beta = margin; a short window hides all of it.")
PROTOCOLS = ("mechanism",)

__all__ = ["TITLE", "CLAIM", "PROTOCOLS", "config", "run", "plot", "verdict", "criteria", "target_kernel",
           "mechanism_task", "EXP_RATE", "POL_POWER"]

EXP_RATE = 0.2
POL_POWER = 1.5
# Post hoc, fixed after the first full run (not part of the decision rule): the horizon on which the W + beta I
# jump of C4 is also measured.  At 1.1 beta* an unstable mode grows like e^{0.1 beta* T}; T = 60 / beta* gives
# e^6 in amplitude, where T = 1024 gives at most e^{0.1 beta* 1024} (about e^2 at beta* = 0.02).
LONG_JUMP_GROWTH = 60.0
LONG_JUMP_MAX_STEPS = 8192
_PROGRESS_ENV = "DYNMEM_EXPERIMENT_PROGRESS"


def config(size: str = "quick", protocol: str | None = None, **changes) -> dict:
    """The experiment's config (plain data).

    ``size="full"`` is the specified protocol (about an hour on 2 cores);
    ``"quick"`` runs the same code on tiny sizes in seconds and is labelled
    "quick: not evidence" in the result and the report.
    """
    if protocol not in (None, "mechanism"):
        raise ValueError(f"`protocol` must be 'mechanism' for this experiment; got {protocol!r}.")
    cfg = {
        "protocol": "mechanism", "size": size,
        "main": {"tau": 1.0, "widths": [2, 4, 8, 16, 32], "seeds": [0, 1, 2, 3, 4]},
        "horizon": {"taus": [8.0, 80.0], "widths": [4, 8, 16], "seeds": [0, 1, 2]},
        "ls": {"widths": [4, 8, 16], "seeds": [0, 1, 2], "epochs": 400, "lr": [1e-3, 1e-5], "s": 0.05, "n_starts": 6},
        "data": {"T": 256, "n_train": 512, "n_val": 256, "T_test": 1024, "n_test": 64},
        "init": {"rates": [0.6, 1.0], "u_scale": 0.3},
        "training": {"batch_size": 64, "epochs": 800, "lr": [3e-3, 3e-5],
                     "checkpoints": [0, 25, 50, 100, 200, 400, 600, 800]},
        "shift_factors": [0.5, 0.9, 1.1, 1.5, 2.0, 3.0],
        "shift_grid": 16, "instability": 1e3, "random_draws": 3, "share": 1e-3,
        "frontier_errors": list(np.geomspace(1e-1, 1e-5, 9)),
        "workdir": None,
    }
    if size == "quick":
        cfg.update(main={"tau": 1.0, "widths": [2, 4], "seeds": [0, 1]},
                   horizon={"taus": [8.0, 80.0], "widths": [4], "seeds": [0]},
                   ls={"widths": [4], "seeds": [0], "epochs": 6, "lr": [1e-3, 1e-5], "s": 0.05, "n_starts": 2},
                   data={"T": 128, "n_train": 64, "n_val": 32, "T_test": 256, "n_test": 16},
                   training={"batch_size": 32, "epochs": 12, "lr": [3e-3, 3e-5], "checkpoints": [0, 3, 6, 9, 12]},
                   shift_grid=6, frontier_errors=[1e-1, 1e-2, 1e-3])
    elif size != "full":
        raise ValueError(f"`size` must be 'quick' or 'full'; got {size!r}.")
    for k, v in changes.items():
        if k not in cfg:
            raise ValueError(f"unknown mechanism setting {k!r}; known: {sorted(cfg)}.")
        cfg[k] = v
    return cfg


def target_kernel(name: str, n: int, tau: float) -> np.ndarray:
    """``rho_j``, ``j = 0..n-1``, of target ``name`` (``"pol"`` or ``"exp"``) at time scale ``tau`` (steps)."""
    j = np.arange(int(n), dtype=float) / float(tau)
    if name == "pol":
        return (1.0 + j) ** -POL_POWER
    if name == "exp":
        return np.exp(-EXP_RATE * j)
    raise ValueError(f"`name` must be 'pol' or 'exp'; got {name!r}.")


def required_margin(tau: float) -> float:
    """The exponential target's own discrete margin ``1 - e^{-0.2 / tau}``."""
    return float(-math.expm1(-EXP_RATE / float(tau)))


def _data(cfg, target, tau, seed):
    d = cfg["data"]
    rng = np.random.default_rng([int(seed), 202, int(round(float(tau) * 1000))])
    rho = target_kernel(target, max(int(d["T"]), int(d["T_test"])), tau)

    def seqs(n, T):
        X = rng.standard_normal((int(n), int(T), 1))
        Y = scipy.signal.oaconvolve(X[:, :, 0], rho[None, :T], axes=1)[:, :T]
        return np.ascontiguousarray(X), np.ascontiguousarray(Y)

    X, Y = seqs(d["n_train"], d["T"])
    Xv, Yv = seqs(d["n_val"], d["T"])
    Xt, Yt = seqs(d["n_test"], d["T_test"])
    return {"X": X, "Y": Y, "Xv": Xv, "Yv": Yv, "Xt": Xt, "Yt": Yt,
            "rho_long": target_kernel(target, LONG_JUMP_MAX_STEPS, tau)}


def _init(cfg, arm, target, m, seed, tau):
    m = int(m)
    rng = np.random.default_rng([int(seed), int(m), 5, int(round(float(tau) * 1000))])
    if arm == "ls":
        rho = target_kernel(target, cfg["data"]["T"], tau)
        fit = fit_exponential_sum(np.arange(rho.size, dtype=float), rho, m, n_starts=int(cfg["ls"]["n_starts"]))
        s = float(cfg["ls"]["s"])
        sq = np.sqrt(fit.a)
        return {"M": -np.diag(-np.expm1(-fit.mu)), "U": (s * sq)[:, None], "b": np.zeros(m), "c": sq / s}
    lo, hi = cfg["init"]["rates"]
    r = np.geomspace(lo, hi, m) * np.exp(rng.uniform(-0.1, 0.1, m)) / float(tau)
    us = float(cfg["init"]["u_scale"])
    return {"M": -np.diag(r), "U": us * rng.standard_normal((m, 1)), "b": np.zeros(m),
            "c": rng.standard_normal(m) / math.sqrt(m) / us}


def _rel_mse(net, p, X, Y) -> float:
    """Relative MSE ``mean (y - Y)^2 / mean Y^2``; ``inf`` for a diverged run."""
    e = tr.evaluate(net, {k: np.asarray(v)[None] for k, v in p.items()}, X, Y, np.ones(X.shape[1]))[0]
    return float(e / np.mean(Y * Y))


def _kernel(p, n):
    """Linearised kernel ``r_j = c^T (I + W)^j U``, ``j < n`` (by iteration: no eigenvectors)."""
    A = np.eye(p["M"].shape[0]) + p["M"]
    v = p["U"][:, 0].copy()
    out = np.empty(n)
    with np.errstate(all="ignore"):
        for j in range(n):
            out[j] = p["c"] @ v
            v = A @ v
    return out


def _measure_point(cfg, net, p, data, rho_window, H):
    W = np.asarray(p["M"], float)
    dec = modal_decomposition(W, p["U"], p["c"], dt=1.0)
    eff = effective_margin(dec, H, share=float(cfg["share"]))
    r = _kernel(p, rho_window.size)
    alpha = float(np.linalg.eigvals(W).real.max())
    A = np.eye(W.shape[0]) + W
    with np.errstate(all="ignore"):
        kerr = float(np.linalg.norm(r - rho_window) / np.linalg.norm(rho_window))
    return {
        "val": _rel_mse(net, p, data["Xv"], data["Yv"]),
        "test": _rel_mse(net, p, data["Xt"], data["Yt"]),
        "kernel_error": kerr if math.isfinite(kerr) else math.inf,
        "spectral_margin": -alpha,
        "discrete_margin": discrete_margin(W),
        "effective_margin": eff.value,
        "shift_threshold": shift_threshold(W, dt=1.0),
        "radius_continuous": float(stability_radius(W).value) if alpha < 0 else 0.0,
        "radius_discrete": discrete_stability_radius(A),
        "l1_residues": eff.l1_residues,
    }


def _shift_study(cfg, net, p, data, beta_star, seed):
    """Relative MSE on the long test of ``W + beta I`` and of random block-spectral draws, at ``beta = f beta*``."""
    fixed = [float(f) for f in cfg["shift_factors"]]
    fine = list(np.geomspace(0.5, 3.0, int(cfg["shift_grid"])))
    factors = sorted(set(fixed) | set(float(f) for f in fine))
    out = {"factors": factors, "beta_star": beta_star, "shift": [], "random": []}
    if not (math.isfinite(beta_star) and beta_star > 0):
        out["shift"] = [math.nan] * len(factors)
        out["random"] = [math.nan] * len(factors)
        return out
    R = int(cfg["random_draws"])
    dirs = tr.directions(net, "block-spectral", R, np.random.default_rng([int(seed), 11]))
    m = p["M"].shape[0]
    for f in factors:
        beta = f * beta_star
        out["shift"].append(_rel_mse(net, {**p, "M": p["M"] + beta * np.eye(m)}, data["Xt"], data["Yt"]))
        stacked = {k: np.asarray(p[k])[None] + beta * dirs[k] for k in p}
        e = tr.evaluate(net, stacked, data["Xt"], data["Yt"], np.ones(data["Xt"].shape[1]))
        out["random"].append(float(np.max(e)) / float(np.mean(data["Yt"] ** 2)))
    thr = float(cfg["instability"])
    bad = [f for f, e in zip(factors, out["shift"]) if not (e <= thr)]
    out["first_unstable_factor"] = bad[0] if bad else math.inf
    badr = [f for f, e in zip(factors, out["random"]) if not (e <= thr)]
    out["first_unstable_factor_random"] = badr[0] if badr else math.inf
    # Post hoc (added after the first full run, see the module notes): C4's jump on a horizon that can show it.
    T = int(min(LONG_JUMP_MAX_STEPS, max(data["Xt"].shape[1], math.ceil(LONG_JUMP_GROWTH / beta_star))))
    if T > data["Xt"].shape[1]:
        rng = np.random.default_rng([int(seed), 909])
        X = rng.standard_normal((32, T, 1))
        Y = scipy.signal.oaconvolve(X[:, :, 0], data["rho_long"][None, :T], axes=1)[:, :T]
    else:
        X, Y = data["Xt"], data["Yt"]
    e09 = _rel_mse(net, {**p, "M": p["M"] + 0.9 * beta_star * np.eye(m)}, X, Y)
    e11 = _rel_mse(net, {**p, "M": p["M"] + 1.1 * beta_star * np.eye(m)}, X, Y)
    out["long_T"] = T
    out["long_jump"] = e11 / e09 if e09 > 0 and math.isfinite(e09) else math.nan
    return out


def mechanism_task(arm: str, tau: float, target: str, width: int, seed: int, *, config: dict, rng=None) -> dict:
    """Train and measure one network (one sweep task); every random draw comes from ``seed``."""
    cfg = config
    progress = os.environ.get(_PROGRESS_ENV) == "1"
    t0 = time.perf_counter()
    m, tau = int(width), float(tau)
    net = tr.Net(hidden=m, form="free", g="identity", activation="tanh", dt=1.0, output_bias=False)
    data = _data(cfg, target, tau, seed)
    p0 = _init(cfg, arm, target, m, seed, tau)
    tcfg = cfg["training"]
    epochs = int(cfg["ls"]["epochs"]) if arm == "ls" else int(tcfg["epochs"])
    lr0, lr1 = cfg["ls"]["lr"] if arm == "ls" else tcfg["lr"]
    ckpts = [int(e) for e in tcfg["checkpoints"] if int(e) <= epochs]
    if arm == "ls":
        ckpts = sorted(set([0] + [int(round(epochs * f)) for f in (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 1)]))
    training = {"optimizer": "adam", "lr": float(lr0), "weight_decay": 0.0, "batch_size": int(tcfg["batch_size"]),
                "max_epochs": epochs, "min_epochs": epochs, "schedule": {"kind": "cosine", "lr_min": float(lr1)},
                "clip_norm": None, "time_weight_power": 0.0, "penalty": None,
                "snapshots": [e for e in ckpts if e > 0]}
    ck = None
    if cfg.get("workdir"):
        ck = os.path.join(cfg["workdir"], "ckpt", f"{arm}-tau{tau:g}-{target}-m{m}-s{seed}-{config_digest(cfg)}.npz")
        os.makedirs(os.path.dirname(ck), exist_ok=True)
    key = f"mechanism|{config_digest(cfg)}|{arm}|{tau}|{target}|{m}|{seed}"
    fs = tr.fit(net, p0, data, training, seed=int(seed) * 1000 + m, checkpoint=ck, key=key, progress=progress,
                label=f"mechanism {arm} tau={tau:g} {target} m={m} seed={seed}")
    H = int(cfg["data"]["T"])
    rho_w = target_kernel(target, H, tau)
    snaps = {0: p0, **fs.snapshots}
    points = []
    for e in sorted(snaps):
        pt = _measure_point(cfg, net, snaps[e], data, rho_w, H)
        pt["epoch"] = int(e)
        points.append(pt)
    final = {k: np.asarray(v) for k, v in fs.params.items()}
    shift = _shift_study(cfg, net, final, data, points[-1]["shift_threshold"], seed) if arm != "horizon" else None
    out = {"arm": arm, "tau": tau, "target": target, "width": m, "seed": int(seed), "points": points,
           "final": points[-1], "shift": shift, "epochs": int(fs.epochs), "steps": int(fs.steps),
           "stopped": fs.stopped, "train_seconds": float(fs.seconds), "resumed": int(fs.resumed),
           "history": fs.history[:, [0, 2, 3, 4]].tolist() if fs.history.size else [],
           "task_seconds": time.perf_counter() - t0}
    if progress:
        f = points[-1]
        model_line(f"[dynmem.experiments] mechanism {arm} tau={tau:g} {target} m={m} seed={seed}: val {f['val']:.3g}, "
                   f"eff margin {f['effective_margin']:.3g}, beta* {f['shift_threshold']:.3g}, "
                   f"{time.perf_counter() - t0:.0f} s")
    return {"json": json.dumps(out)}  # one text field: the sweep store keeps flat arrays, this result is nested


def _tasks(cfg) -> list:
    tasks = []
    for m in sorted(cfg["main"]["widths"], reverse=True):  # widest first: balances a pool
        for t in ("pol", "exp"):
            for s in cfg["main"]["seeds"]:
                tasks.append(dict(arm="main", tau=float(cfg["main"]["tau"]), target=t, width=int(m), seed=int(s)))
    for m in sorted(cfg["ls"]["widths"], reverse=True):
        for s in cfg["ls"]["seeds"]:
            tasks.append(dict(arm="ls", tau=float(cfg["main"]["tau"]), target="pol", width=int(m), seed=int(s)))
    for tau in cfg["horizon"]["taus"]:
        for m in sorted(cfg["horizon"]["widths"], reverse=True):
            for t in ("pol", "exp"):
                for s in cfg["horizon"]["seeds"]:
                    tasks.append(dict(arm="horizon", tau=float(tau), target=t, width=int(m), seed=int(s)))
    return tasks


def run(config: dict, *, executor=None, progress: bool = False) -> dict:
    """Train every network of every arm (through :mod:`dynmem.sweep` with a workdir or executor), then judge."""
    cfg = dict(config)
    if progress:
        os.environ[_PROGRESS_ENV] = "1"
    t0 = time.perf_counter()
    tasks = _tasks(cfg)
    results = sweep_tasks(functools.partial(mechanism_task, config=cfg), tasks, workdir=cfg.get("workdir"),
                          store=f"store-mechanism-{config_digest(cfg)}", executor=executor, progress=progress,
                          label="[dynmem.experiments] mechanism")
    nets = [json.loads(str(np.asarray(r["json"]))) for r in results]
    main_pol = [n for n in nets if n["arm"] == "main" and n["target"] == "pol"]
    B = float(np.median([n["final"]["l1_residues"] for n in main_pol])) if main_pol else 1.0
    rho = target_kernel("pol", int(cfg["data"]["T"]), float(cfg["main"]["tau"]))
    errs = [float(e) for e in cfg["frontier_errors"]]
    frontier = {"errors": errs, "l1_bound": B, "margins": linear_frontier(rho, errs, l1_bound=B, tol=1e-3).tolist()}
    out = {"experiment": "mechanism", "protocol_name": "mechanism", "size": cfg["size"], "config": cfg,
           "evidence": "quick: not evidence" if cfg["size"] == "quick" else "full protocol",
           "required_exp_margin": required_margin(float(cfg["main"]["tau"])), "nets": nets, "frontier": frontier,
           "budget": {"steps_total": int(sum(n["steps"] for n in nets)),
                      "train_seconds": float(sum(n["train_seconds"] for n in nets)),
                      "task_seconds": float(sum(n["task_seconds"] for n in nets)),
                      "epochs_by_arm": {"main": cfg["training"]["epochs"], "ls": cfg["ls"]["epochs"]}},
           "seconds": time.perf_counter() - t0}
    out["criteria"] = criteria(out)
    return out


# ----------------------------------------------------------------------------
# the decision rule (fixed before the run; see the module notes for the choices it leaves open)


def _slope(points, key="effective_margin", min_epoch=200, max_err=1e-2):
    pts = [(q["val"], q[key]) for q in points
           if q["epoch"] >= min_epoch and math.isfinite(q["val"]) and 0 < q["val"] <= max_err and q[key] > 0]
    if len(pts) < 2 or len({e for e, _ in pts}) < 2:
        return math.nan, pts
    e, mg = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(scipy.stats.linregress(e, mg).slope), pts


def _median(v) -> float:
    v = [x for x in v if math.isfinite(x)]
    return float(np.median(v)) if v else math.nan


def _min_epoch(result) -> int:
    """C2's earliest checkpoint: epoch 200 of 800, scaled with the run's length (quick runs)."""
    return int(round(200 * int(result["config"]["training"]["epochs"]) / 800))


def criteria(result: dict) -> dict:
    """C1-C6 and the outcome, from the result's numbers (THEORY-style rule fixed before the run).

    Returns
    -------
    dict
        ``C1`` ... ``C6`` (each with ``pass`` and its numbers), ``outcome``
        (``"confirmed"``, ``"refuted"``, ``"inconclusive"``), ``reasons``,
        ``error_span_decades``, and the reported-only statistics.
    """
    nets = result["nets"]
    req = float(result["required_exp_margin"])
    main = [n for n in nets if n["arm"] == "main"]
    by = {(n["target"], n["width"], n["seed"]): n for n in main}
    widths = sorted({n["width"] for n in main})
    seeds = sorted({n["seed"] for n in main})
    min_ep = _min_epoch(result)
    out: dict = {}

    # C1 separation
    cells = []
    for m in [w for w in widths if w >= 4]:
        ok = 0
        ratios = []
        for s in seeds:
            p, e = by.get(("pol", m, s)), by.get(("exp", m, s))
            if p is None or e is None:
                continue
            r = p["final"]["effective_margin"] / e["final"]["effective_margin"]
            ratios.append(r)
            ok += int(r < 0.5)
        need = math.ceil(0.8 * len(ratios)) if ratios else 1
        cells.append({"width": m, "ratios": ratios, "separated": ok, "of": len(ratios), "pass": ok >= need and len(ratios) > 0})
    out["C1"] = {"rule": "every width >= 4: pol effective margin < 0.5 x exp's in >= 4 of 5 seeds",
                 "cells": cells, "pass": bool(cells) and all(c["pass"] for c in cells)}

    # C2 margin -> 0 with error along training
    slopes = {"pol": [], "exp": []}
    span_pts = []
    for n in main:
        if n["width"] < 4:
            continue
        s, pts = _slope(n["points"], min_epoch=min_ep)
        slopes[n["target"]].append({"width": n["width"], "seed": n["seed"], "slope": s, "n_points": len(pts)})
        if n["target"] == "pol":
            span_pts += [p[0] for p in pts]
    pol_s = [x["slope"] for x in slopes["pol"]]
    exp_s = [x["slope"] for x in slopes["exp"]]
    med_pol, med_exp = _median(pol_s), _median(exp_s)
    frac_pos = float(np.mean([x > 0 if math.isfinite(x) else False for x in pol_s])) if pol_s else 0.0
    pooled = []
    for s in seeds:
        pts = [q for n in main if n["target"] == "pol" and n["seed"] == s and n["width"] >= 4
               for q in n["points"] if q["epoch"] >= min_ep and 0 < q["val"] <= 1e-2 and q["effective_margin"] > 0]
        if len(pts) >= 3:
            pooled.append(float(scipy.stats.linregress(np.log([q["val"] for q in pts]),
                                                       np.log([q["effective_margin"] for q in pts])).slope))
    if len(pooled) >= 2:
        mean = float(np.mean(pooled))
        half = float(scipy.stats.t.ppf(0.975, len(pooled) - 1) * np.std(pooled, ddof=1) / math.sqrt(len(pooled)))
        pooled_ci = [mean - half, mean + half]
    else:
        mean, pooled_ci = (pooled[0] if pooled else math.nan), [math.nan, math.nan]
    finals = [(n["final"]["val"], n["final"]["effective_margin"]) for n in main if n["target"] == "pol"]
    fm, fe = [f[1] for f in finals], [f[0] for f in finals]
    rho_s = (float(scipy.stats.spearmanr(fm, fe)[0]) if len(finals) >= 3 and len(set(fm)) > 1 and len(set(fe)) > 1
             else math.nan)  # undefined for constant margins or errors
    out["C2"] = {"rule": "pol median slope >= 0.1 and >= 80% positive; exp median slope < 0.05 "
                         f"(checkpoints with epoch >= {min_ep} and relative MSE <= 1e-2, widths >= 4)",
                 "pol_slopes": slopes["pol"], "exp_slopes": slopes["exp"], "pol_median": med_pol,
                 "pol_fraction_positive": frac_pos, "exp_median": med_exp,
                 "pass": bool(math.isfinite(med_pol) and med_pol >= 0.1 and frac_pos >= 0.8
                              and math.isfinite(med_exp) and med_exp < 0.05),
                 "reported": {"pooled_per_seed": pooled, "pooled_mean": mean, "pooled_ci95": pooled_ci,
                              "spearman_final_margin_vs_error_pol": rho_s}}
    span = (math.log10(max(span_pts) / min(span_pts)) if len(span_pts) >= 2 else 0.0)

    # C3 exp bounded at its rate
    ex = [(q["val"], q["effective_margin"]) for n in main if n["target"] == "exp" for q in n["points"]
          if math.isfinite(q["val"]) and q["val"] <= 1e-2]
    within = [abs(mg / req - 1.0) <= 0.1 for _, mg in ex]
    fit = {"mu_inf": math.nan, "A": math.nan, "gamma": math.nan}
    if len(ex) >= 4:
        E = np.array([e for e, _ in ex])
        M = np.array([mg for _, mg in ex])
        try:
            (mu_inf, A, g), _ = scipy.optimize.curve_fit(lambda x, a, b, c: a + b * x ** c, E, M,
                                                         p0=[req, 0.0, 0.5], bounds=([-1, -10, 0.01], [2, 10, 3]),
                                                         maxfev=20000)
            fit = {"mu_inf": float(mu_inf), "A": float(A), "gamma": float(g)}
        except (RuntimeError, ValueError):
            pass
    out["C3"] = {"rule": f"every exp effective margin with relative MSE <= 1e-2 within 10% of {req:.4f}; "
                         "fit margin = mu_inf + A E^gamma has mu_inf >= 0.15 (in units of the tau = 1 rate)",
                 "n_points": len(ex), "n_within": int(sum(within)),
                 "margins": [mg for _, mg in ex], "fit": fit,
                 "pass": bool(ex) and all(within) and math.isfinite(fit["mu_inf"]) and fit["mu_inf"] >= 0.15}

    # C4 stability boundary = margin
    jumps = []
    for n in main:
        sh = n["shift"]
        if not sh or not sh["shift"]:
            continue
        f = sh["factors"]
        try:
            e09, e11 = sh["shift"][f.index(0.9)], sh["shift"][f.index(1.1)]
        except ValueError:
            continue
        jump = e11 / e09 if (e09 > 0 and math.isfinite(e09)) else math.nan
        if not math.isfinite(e11):
            jump = math.inf
        jumps.append({"target": n["target"], "width": n["width"], "seed": n["seed"], "jump": jump,
                      "first_unstable_beta": sh["first_unstable_factor"] * sh["beta_star"]
                      if math.isfinite(sh["first_unstable_factor"]) else math.inf,
                      "first_unstable_beta_random": sh["first_unstable_factor_random"] * sh["beta_star"]
                      if math.isfinite(sh["first_unstable_factor_random"]) else math.inf})
    slope_fu = {}
    for t in ("pol", "exp"):
        xs = [(j["width"], j["first_unstable_beta"]) for j in jumps if j["target"] == t and math.isfinite(j["first_unstable_beta"])]
        if len({x for x, _ in xs}) >= 2:
            slope_fu[t] = float(scipy.stats.linregress(np.log([x for x, _ in xs]), np.log([y for _, y in xs])).slope)
        else:
            slope_fu[t] = math.nan
    out["C4"] = {"rule": "every net: relative MSE of W + beta I on the long test jumps >= 100x from beta = 0.9 beta* "
                         "to 1.1 beta*",
                 "jumps": jumps, "min_jump": min([j["jump"] for j in jumps if not math.isnan(j["jump"])], default=math.nan),
                 "pass": bool(jumps) and all(j["jump"] >= 100 for j in jumps),
                 "reported": {"first_unstable_beta_m_slope": slope_fu}}

    # C5 horizon control
    hz = [n for n in nets if n["arm"] == "horizon"]
    T = float(result["config"]["data"]["T"])
    short = max((n["tau"] for n in hz), default=math.nan)  # the shortest window: the paper's regime
    c5 = []
    for tau in sorted({n["tau"] for n in hz}):
        for m in sorted({n["width"] for n in hz if n["tau"] == tau}):
            sel = [n for n in hz if n["tau"] == tau and n["width"] == m]
            mp = _median([n["final"]["effective_margin"] * tau for n in sel if n["target"] == "pol"])
            me = _median([n["final"]["effective_margin"] * tau for n in sel if n["target"] == "exp"])
            want = "pol >= exp" if tau == short else "pol < exp"
            ok = (mp >= me) if want == "pol >= exp" else (mp < me)
            c5.append({"tau": tau, "H": T / tau, "width": m, "pol_margin_x_tau": mp, "exp_margin_x_tau": me,
                       "expected": want, "pass": bool(ok)})
    out["C5"] = {"rule": "H = 3.2: pol margin x tau >= exp's at every width (the window cannot see the tail); "
                         "H = 32: pol < exp at every width (medians over seeds)",
                 "cells": c5, "pass": bool(c5) and all(c["pass"] for c in c5)}

    # C6 no nonlinear escape
    rho = target_kernel("pol", int(result["config"]["data"]["T"]), float(result["config"]["main"]["tau"]))
    rhoe = target_kernel("exp", int(result["config"]["data"]["T"]), float(result["config"]["main"]["tau"]))
    esc = []
    for n in main:
        f = n["final"]
        mu = f["effective_margin"]
        if not (mu > 0 and math.isfinite(f["val"])):
            continue
        k = rho if n["target"] == "pol" else rhoe
        fe = frontier_error(k, min(1.0, mu / 1.5), l1_bound=max(f["l1_residues"], 1e-12)).error
        esc.append({"target": n["target"], "width": n["width"], "seed": n["seed"], "margin": mu, "error": f["val"],
                    "frontier_error_at_margin_over_1.5": fe, "escape": bool(fe > f["val"])})
    ls_rows = []
    for n in (n for n in nets if n["arm"] == "ls"):
        p0 = n["points"][0]
        rise = [q for q in n["points"][1:] if q["val"] <= 2 * p0["val"] and q["effective_margin"] > 2 * p0["effective_margin"]]
        ls_rows.append({"width": n["width"], "seed": n["seed"], "start_margin": p0["effective_margin"],
                        "start_error": p0["val"], "final_margin": n["final"]["effective_margin"],
                        "final_error": n["final"]["val"], "max_margin_ratio": max(q["effective_margin"] for q in n["points"]) / p0["effective_margin"],
                        "rose": bool(rise)})
    out["C6"] = {"rule": "no main-arm net has an effective margin > 1.5 x mu*(E; H, B = its sum |R_k|); in the "
                         "least-squares arm the margin does not rise > 2x while the error stays within 2x of its start",
                 "nets": esc, "n_escapes": int(sum(e["escape"] for e in esc)), "ls": ls_rows,
                 "pass": bool(esc) and not any(e["escape"] for e in esc) and not any(r["rose"] for r in ls_rows)}

    out["post_hoc"] = _post_hoc(result, out, min_ep, req, rho, span)
    passed = {k: out[k]["pass"] for k in ("C1", "C2", "C3", "C4", "C5", "C6")}
    outcome, reasons = _outcome(passed, med_pol, span)
    out["passed"] = passed
    out["error_span_decades"] = span
    out["outcome"] = outcome
    out["reasons"] = reasons
    return out


def _outcome(passed: dict, med_pol: float, span: float) -> tuple[str, list]:
    """The rule's outcome order: confirmed if C1-C6 hold; else refuted if a refutation condition holds; else inconclusive."""
    if all(passed.values()):
        return "confirmed", []
    refute = []
    if not passed["C1"]:
        refute.append("C1 fails")
    if math.isfinite(med_pol) and med_pol < 0.05 and span >= 1.5:
        refute.append(f"pol median C2 slope {med_pol:.3g} < 0.05 over {span:.2f} decades of error")
    if not passed["C6"]:
        refute.append("C6 fails (the nonlinearity lifts the curse)")
    if refute:
        return "refuted", refute
    reasons = [f"{k} fails" for k, v in passed.items() if not v]
    if span < 1.0:
        reasons.append(f"the pol relative MSE spans {span:.2f} < 1 decade: train longer or add m = 64")
    return "inconclusive", reasons


def _post_hoc(result: dict, c: dict, min_ep: int, req: float, rho: np.ndarray, span: float) -> dict:
    """Readings of C3, C4 and C6 written after the first full run showed them ill-posed; reported beside the rule.

    * C3': C3 on C2's checkpoints (epoch >= 200 of 800): the rule's ``+-10%``
      also failed exp nets still converging to their rate from above at
      epochs 25-100 (THEORY B5's own caveat), none below it.
    * C4': the jump across ``beta*`` on a test of ``T = 60 / beta*`` steps
      (``long_jump``): on 1,024 steps a 10% excess grows an unstable mode by
      at most ``e^{0.1 beta* 1024}``, under 100x in mean square for
      ``beta* < 0.0225``, so C4 as written cannot pass for small margins
      whatever the mechanism.
    * C6': the least-squares clause judged against the linear frontier (as
      the main-arm clause is): a final margin ``<= 1.5 mu*(E; H, B)``.  The
      clause as written assumes the VarPro start (sup-error optimal) sits on
      the margin frontier at its MSE; a rise towards the frontier is no
      nonlinear escape.
    """
    nets = result["nets"]
    main = [n for n in nets if n["arm"] == "main"]
    ex = [q for n in main if n["target"] == "exp" for q in n["points"]
          if q["epoch"] >= min_ep and math.isfinite(q["val"]) and q["val"] <= 1e-2]
    within = [abs(q["effective_margin"] / req - 1.0) <= 0.1 for q in ex]
    c3 = {"n_points": len(ex), "n_within": int(sum(within)),
          "pass": bool(ex) and all(within) and math.isfinite(c["C3"]["fit"]["mu_inf"]) and c["C3"]["fit"]["mu_inf"] >= 0.15}
    jumps = [(n["target"], n["width"], n["seed"], n["shift"].get("long_T"), n["shift"].get("long_jump"))
             for n in main if n["shift"] and "long_jump" in n["shift"]]
    c4 = {"jumps": [{"target": t, "width": w, "seed": s, "T": T, "jump": j} for t, w, s, T, j in jumps],
          "min_jump": min((j for *_, j in jumps if j is not None and not math.isnan(j)), default=math.nan),
          "measured": bool(jumps) and len(jumps) == len([n for n in main if n["shift"]])}
    c4["pass"] = c4["measured"] and all(j is not None and j >= 100 for *_, j in jumps)
    ls = []
    for n in (n for n in nets if n["arm"] == "ls"):
        f = n["final"]
        mu = f["effective_margin"]
        fe = frontier_error(rho, min(1.0, mu / 1.5), l1_bound=max(f["l1_residues"], 1e-12)).error if mu > 0 else 0.0
        ls.append({"width": n["width"], "seed": n["seed"], "margin": mu, "error": f["val"],
                   "frontier_error_at_margin_over_1.5": fe, "escape": bool(fe > f["val"])})
    c6 = {"ls": ls, "pass": c["C6"]["n_escapes"] == 0 and bool(c["C6"]["nets"]) and not any(x["escape"] for x in ls)}
    passed = {"C1": c["C1"]["pass"], "C2": c["C2"]["pass"], "C3": c3["pass"], "C4": c4["pass"], "C5": c["C5"]["pass"],
              "C6": c6["pass"]}
    outcome, reasons = _outcome(passed, c["C2"]["pol_median"], span)
    return {"note": "readings fixed after the first full run; the rule's own outcome stands beside them",
            "C3": c3, "C4": c4, "C6": c6, "passed": passed, "outcome": outcome, "reasons": reasons}


def verdict(result: dict) -> dict:
    """The report's verdict: the rule's outcome (criteria recomputed from the numbers), every criterion's numbers."""
    c = criteria(result)
    quick = result.get("size") == "quick"
    v = {"confirmed": "reproduced", "refuted": "not reproduced", "inconclusive": "not informative"}[c["outcome"]]
    if quick:
        v = "not informative"
    c1 = c["C1"]["cells"]
    parts = [f"rule outcome: {c['outcome']}" + (" (quick: not evidence)" if quick else ""),
             "C1 " + ("pass" if c["C1"]["pass"] else "fail") + ": pol/exp margin ratio "
             + ", ".join(f"m={x['width']}: {min(x['ratios'], default=math.nan):.2f}-{max(x['ratios'], default=math.nan):.2f}" for x in c1),
             f"C2 {'pass' if c['C2']['pass'] else 'fail'}: pol median slope {c['C2']['pol_median']:.3g} "
             f"({100 * c['C2']['pol_fraction_positive']:.0f}% positive), exp median {c['C2']['exp_median']:.3g}",
             f"C3 {'pass' if c['C3']['pass'] else 'fail'}: {c['C3']['n_within']}/{c['C3']['n_points']} exp margins within 10% of "
             f"{result['required_exp_margin']:.4f}, mu_inf {c['C3']['fit']['mu_inf']:.3g}",
             f"C4 {'pass' if c['C4']['pass'] else 'fail'}: smallest jump across beta* {c['C4']['min_jump']:.3g}x",
             f"C5 {'pass' if c['C5']['pass'] else 'fail'}: " + ", ".join(
                 f"H={x['H']:g} m={x['width']}: pol {x['pol_margin_x_tau']:.3g} vs exp {x['exp_margin_x_tau']:.3g}" for x in c["C5"]["cells"]),
             f"C6 {'pass' if c['C6']['pass'] else 'fail'}: {c['C6']['n_escapes']} escapes above 1.5 mu*, "
             f"{sum(r['rose'] for r in c['C6']['ls'])} least-squares nets raised the margin > 2x at equal error",
             f"pol error span {c['error_span_decades']:.2f} decades"]
    if c["reasons"]:
        parts.append("reasons: " + "; ".join(c["reasons"]))
    ph = c["post_hoc"]
    parts.append(f"post-hoc readings of the criteria found ill-posed (not the rule): outcome {ph['outcome']}; "
                 f"C3' {'pass' if ph['C3']['pass'] else 'fail'} ({ph['C3']['n_within']}/{ph['C3']['n_points']} exp "
                 f"margins within 10% from epoch {_min_epoch(result)}); C4' "
                 + (f"{'pass' if ph['C4']['pass'] else 'fail'} (smallest jump {ph['C4']['min_jump']:.3g}x on T = 60/beta*)"
                    if ph["C4"]["measured"] else "not measured in this result")
                 + f"; C6' {'pass' if ph['C6']['pass'] else 'fail'} (least-squares nets against the linear frontier: "
                 f"{sum(x['escape'] for x in ph['C6']['ls'])} escapes)")
    return {"verdict": v, "why": "; ".join(parts), "numbers": {k: c[k]["pass"] for k in c["passed"]} | {
        "outcome": c["outcome"], "error_span_decades": c["error_span_decades"], "post_hoc_outcome": ph["outcome"],
        "post_hoc_passed": ph["passed"]}}


# ----------------------------------------------------------------------------
# figure


def plot(result: dict, path: str) -> None:
    """Three panels: effective margin against validation error (with the linear frontier), the ``W + beta I``
    scan, and the horizon arm's margins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import NullFormatter

    from ..io import atomic_savefig
    from ..plotting import finish_figure

    nets = result["nets"]
    req = result["required_exp_margin"]
    fig, ax = plt.subplots(1, 3, figsize=(15, 5.2))
    widths = sorted({n["width"] for n in nets if n["arm"] == "main"})
    cmap = plt.get_cmap("viridis")
    col = {m: cmap(i / max(1, len(widths) - 1)) for i, m in enumerate(widths)}
    for n in (n for n in nets if n["arm"] == "main"):
        e = [q["val"] for q in n["points"]]
        mg = [max(q["effective_margin"], 1e-6) for q in n["points"]]
        ls = "-" if n["target"] == "pol" else "--"
        ax[0].plot(e, mg, ls, color=col[n["width"]], alpha=0.5, lw=0.8)
        ax[0].plot(e[-1], mg[-1], "o" if n["target"] == "pol" else "s", color=col[n["width"]], ms=4)
    fr = result["frontier"]
    ax[0].plot(fr["errors"], np.maximum(fr["margins"], 1e-6), "k:", lw=1.5,
               label=rf"linear frontier $\mu^*(E)$, $B = {fr['l1_bound']:.2g}$")
    ax[0].axhline(req, color="grey", lw=0.8, label=f"exp target's margin {req:.3f}")
    for m in widths:
        ax[0].plot([], [], color=col[m], label=f"m = {m}")
    ax[0].plot([], [], "k-", marker="o", ms=4, label="pol target (marker: final)")
    ax[0].plot([], [], "k--", marker="s", ms=4, label="exp target (marker: final)")
    ax[0].set(xscale="log", yscale="log", xlabel="relative validation MSE", ylabel="effective margin",
              title="margin against error along training")
    ax[0].legend(fontsize=7, loc="lower right")
    for n in (n for n in nets if n["arm"] == "main" and n["shift"] and n["shift"]["shift"]):
        sh = n["shift"]
        ax[1].plot(sh["factors"], np.minimum(np.nan_to_num(sh["shift"], nan=1e12, posinf=1e12), 1e12),
                   "-" if n["target"] == "pol" else "--", color=col[n["width"]], alpha=0.6, lw=0.8)
    ax[1].axhline(result["config"]["instability"], color="r", lw=0.8,
                  label=f"instability: relative MSE {result['config']['instability']:g}")
    ax[1].axvline(1.0, color="grey", lw=0.8, ls=":", label=r"$\beta = \beta^*$ ($W + \beta I$ threshold)")
    ax[1].plot([], [], "k-", lw=0.8, label="pol target")
    ax[1].plot([], [], "k--", lw=0.8, label="exp target")
    ax[1].set(xscale="log", yscale="log", xlabel=r"$\beta / \beta^*$", ylabel="relative MSE, long test",
              title=r"$W + \beta I$ across the margin")
    ax[1].legend(fontsize=7, loc="upper left")
    taus = sorted({n["tau"] for n in nets if n["arm"] in ("main", "horizon")})
    for i, tau in enumerate(taus):
        for t, mk in (("pol", "o"), ("exp", "s")):
            pts = [(n["width"], n["final"]["effective_margin"] * tau) for n in nets
                   if n["arm"] in ("main", "horizon") and n["tau"] == tau and n["target"] == t]
            if pts:
                ws = sorted({w for w, _ in pts})
                med = [np.median([v for w2, v in pts if w2 == w]) for w in ws]
                ax[2].plot(ws, med, mk + ("-" if t == "pol" else "--"), color=f"C{i}",
                           label=f"{t}, H = {result['config']['data']['T'] / tau:g}")
    ax[2].set(xscale="log", yscale="log", xlabel="width $m$", ylabel=r"effective margin $\times\, \tau$ (median over seeds)",
              title="horizon control")
    ax[2].legend(fontsize=7)
    ph = result["criteria"].get("post_hoc") or {}
    finish_figure(fig, result, extra=f"mechanism test, rule outcome {result['criteria']['outcome']}"
                  + (f" (post-hoc readings: {ph['outcome']})" if ph.get("outcome") else ""))
    for a in ax[2:]:  # the widths as they are
        ws = sorted({n["width"] for n in nets if n["arm"] in ("main", "horizon")})
        a.set_xticks(ws, [str(w) for w in ws])
        a.xaxis.set_minor_formatter(NullFormatter())
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)

EXPERIMENT = Experiment(name="mechanism", title=TITLE, claim=CLAIM, protocols=PROTOCOLS, config=config, run=run,
                        plot=plot, verdict=verdict, criteria=criteria)
