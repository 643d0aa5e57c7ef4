r"""[WLL] App. C: a rescaled RNN approximates one power-law-like kernel stably, and not another.

Targets (both decay polynomially):

.. math:: \rho_1(t) = \sum_{k \ge 1} k^{-2} e^{-t/k} \sim 1/t, \qquad
          \rho_2(t) = \sum_{k \ge 1} k^{-2} e^{-t/k^2} \sim \tfrac{\sqrt\pi}{2} t^{-1/2} .

Model: the rescaled linear RNN of App. C, ``rho_hat(t) = sum_{k <= m} c_k
e^{w_k t / k}`` (hidden unit ``k`` runs on the time scale ``k``).  Its
width-``m`` approximant is the truncation: ``w_k = -1``, ``c_k = k^{-2}`` for
``rho_1`` and ``w_k = -1/k``, ``c_k = k^{-2}`` for ``rho_2``, with
``E_m(0) = sum_{k > m} k^{-2} ~ 1/m`` for both.  Perturbations act on the
trained variables ``(w, c)``:

* ``theorem``: ``w + beta`` (every unit; the proof's ``W + beta I`` in the
  rescaled variables): unstable once ``beta >= min_k (-w_k)``, which is 1 for
  ``rho_1`` at every ``m`` and ``1/m`` for ``rho_2``;
* ``random``: ``n_draws`` draws with ``max |dw_k| = beta`` and ``|dc|_2 = beta``,
  max over draws.

Errors are the sup over ``t >= 0`` (the norm of [WLL]): a perturbed model with a
non-negative rate on a unit with ``c_k != 0`` has an unbounded error (``inf``);
otherwise the sup is taken on a fixed log grid from 1e-3 to 1e9
(:func:`sup_error`).
The reference targets sum ``N_ref`` terms plus the integral of the tail.

Verdict criteria (fixed here):

* S1: the theorem-direction threshold ``beta*(m)`` of ``rho_1`` does not shrink
  (log-log slope in ``m`` >= -0.3), that of ``rho_2`` shrinks (slope <= -0.7);
* S2: the limit curve ``sup_m E_m(beta)``: for ``rho_1`` finite for every grid
  ``beta < 0.5`` (continuous at 0: ``sup_m E_m(beta_min) <= 10 beta_min +
  2 sup_m E_m(0)``); for ``rho_2`` infinite from some ``beta <= 2 / m_max``
  (the jump at 0 as ``m`` grows);
* S3: ``E_m(0)`` falls with ``m`` for both (ratio >= 0.5 m_max / m_min).

``reproduced``: all hold; ``partly``: S1 or S2 holds for both targets;
``not reproduced``: otherwise.
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.special import erf

from ..decay import loglog_slope
from ..io import atomic_savefig
from .record import Experiment

TITLE = "[WLL] App. C: rescaled RNN, sum k^-2 e^(-t/k) stable, sum k^-2 e^(-t/k^2) not"
CLAIM = ("rho = sum_k k^-2 e^{-t/k} is stably approximated by the rescaled RNN sum_k c_k e^{w_k t/k} although its "
         "memory decays polynomially; rho = sum_k k^-2 e^{-t/k^2} is not, even with the rescaling.")
PROTOCOLS = ("paper",)
TARGETS = ("rho1", "rho2")


def config(size: str = "quick", protocol: str | None = None, **changes) -> dict:
    """Quick: widths 4..256, 10 draws. Full: widths 4..4096, 100 draws, 3 seeds (dynmem's sizes)."""
    if (protocol or "paper") != "paper":
        raise ValueError(f"appc runs the 'paper' protocol only; got {protocol!r}.")
    if size == "quick":
        cfg = dict(widths=[4, 16, 64, 256], n_draws=10, seeds=[0], n_ref=20000, n_grid=1500)
    elif size == "full":
        cfg = dict(widths=[4, 16, 64, 256, 1024, 4096], n_draws=100, seeds=[0, 1, 2], n_ref=200000, n_grid=4000)
    else:
        raise ValueError(f"`size` must be 'quick' or 'full'; got {size!r}.")
    cfg.update(experiment="appc", protocol="paper", size=size, betas=[1e-3 * 2.0 ** k for k in range(11)])
    for k, v in changes.items():
        if k == "workdir":
            continue
        if k not in cfg:
            raise ValueError(f"unknown appc setting {k!r}; known: {sorted(cfg)}.")
        cfg[k] = v
    return cfg


def target_kernel(name: str, t, *, n_ref: int = 20000) -> np.ndarray:
    """``rho_1`` or ``rho_2`` on ``t >= 0``: ``n_ref`` terms plus the tail integral from ``n_ref + 1/2``.

    Tails: ``int_a^inf x^-2 e^{-t/x} dx = (1 - e^{-t/a}) / t`` and
    ``int_a^inf x^-2 e^{-t/x^2} dx = sqrt(pi) erf(sqrt(t) / a) / (2 sqrt(t))`` (``1/a`` at ``t = 0``).
    """
    t = np.asarray(t, float)
    k = np.arange(1, int(n_ref) + 1, dtype=float)
    a = n_ref + 0.5
    out = np.empty(t.shape)
    flat = t.ravel()
    res = np.empty(flat.size)
    for i0 in range(0, flat.size, 256):
        tt = flat[i0:i0 + 256, None]
        if name == "rho1":
            res[i0:i0 + 256] = np.sum(k ** -2 * np.exp(-tt / k), axis=1)
        elif name == "rho2":
            res[i0:i0 + 256] = np.sum(k ** -2 * np.exp(-tt / k ** 2), axis=1)
        else:
            raise ValueError(f"`name` must be 'rho1' or 'rho2'; got {name!r}.")
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "rho1":
            tail = np.where(flat > 0, -np.expm1(-flat / a) / np.where(flat > 0, flat, 1.0), 1.0 / a)
        else:
            st = np.sqrt(flat)
            tail = np.where(flat > 0, math.sqrt(math.pi) * erf(st / a) / (2 * np.where(flat > 0, st, 1.0)), 1.0 / a)
    out.ravel()[:] = res + tail
    return out.reshape(t.shape)


def truncation(name: str, m: int) -> tuple[np.ndarray, np.ndarray]:
    """``(w, c)`` of the width-``m`` truncation of ``name``."""
    k = np.arange(1, int(m) + 1, dtype=float)
    w = -np.ones(int(m)) if name == "rho1" else -1.0 / k
    return w, k ** -2


def model_kernel(w, c, t) -> np.ndarray:
    k = np.arange(1, len(w) + 1, dtype=float)
    return np.exp(np.outer(np.asarray(t, float), np.asarray(w, float) / k)) @ np.asarray(c, float)


T_MAX = 1e9  # end of the fixed log grid of the sup norm


_GRIDS: dict = {}


def error_grid(name: str, n_ref: int, n_grid: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed grid ``{0} U geomspace(1e-3, T_MAX, n_grid)`` and the target on it (cached per process)."""
    key = (name, int(n_ref), int(n_grid))
    if key not in _GRIDS:
        t = np.concatenate([[0.0], np.geomspace(1e-3, T_MAX, int(n_grid))])
        _GRIDS[key] = (t, target_kernel(name, t, n_ref=n_ref))
    return _GRIDS[key]


def sup_error(name: str, w, c, *, n_ref: int, n_grid: int) -> float:
    """``sup_{t >= 0} |rho_hat(t) - rho(t)|`` (inf if a unit with ``c_k != 0`` has a rate >= 0).

    Taken on :func:`error_grid`; units too slow to decay on it (``1 / rate >
    T_MAX / 50``) add their ``|c_k|`` (an upper estimate of what they can add
    beyond the grid).
    """
    w, c = np.asarray(w, float), np.asarray(c, float)
    k = np.arange(1, w.size + 1, dtype=float)
    rate = -w / k
    live = c != 0
    if np.any(live & (rate <= 0)):
        return math.inf
    t, rho = error_grid(name, n_ref, n_grid)
    e = float(np.max(np.abs(model_kernel(w, c, t) - rho)))
    slow = live & (rate < 50.0 / T_MAX)
    return max(e, float(np.sum(np.abs(c[slow])))) if np.any(slow) else e


def _study(name, cfg, seed):
    rng = np.random.default_rng([int(seed), TARGETS.index(name), 3])
    betas = [float(b) for b in cfg["betas"]]
    rows = []
    for m in cfg["widths"]:
        w, c = truncation(name, int(m))
        e0 = sup_error(name, w, c, n_ref=cfg["n_ref"], n_grid=cfg["n_grid"])
        theo, rand = [], []
        for b in betas:
            theo.append(sup_error(name, w + b, c, n_ref=cfg["n_ref"], n_grid=cfg["n_grid"]))
            worst = 0.0
            for _ in range(int(cfg["n_draws"])):
                dw = rng.uniform(-1.0, 1.0, int(m))
                dw *= b / np.max(np.abs(dw))
                dc = rng.standard_normal(int(m))
                dc *= b / np.linalg.norm(dc)
                worst = max(worst, sup_error(name, w + dw, c + dc, n_ref=cfg["n_ref"], n_grid=cfg["n_grid"]))
                if math.isinf(worst):
                    break
            rand.append(worst)
        rows.append({"m": int(m), "error0": e0, "threshold": float(np.min(-w)), "theorem": theo, "random": rand})
    return rows


def summarise(rows: list, betas) -> dict:
    ms = [r["m"] for r in rows]
    sup_theo = [max(r["theorem"][i] for r in rows) for i in range(len(betas))]
    sup_rand = [max(r["random"][i] for r in rows) for i in range(len(betas))]
    jump = next((b for b, e in zip(betas, sup_theo) if not math.isfinite(e)), math.inf)
    jump_rand = next((b for b, e in zip(betas, sup_rand) if not math.isfinite(e)), math.inf)
    return {
        "widths": ms, "error0": [r["error0"] for r in rows], "threshold": [r["threshold"] for r in rows],
        "threshold_slope": float(loglog_slope(ms, [r["threshold"] for r in rows]).slope),
        "sup_theorem": sup_theo, "sup_random": sup_rand, "first_infinite_beta": jump,
        "first_infinite_beta_random": jump_rand,
        "error0_fall": rows[0]["error0"] / max(rows[-1]["error0"], 1e-300),
        "sup_error0": max(r["error0"] for r in rows),
    }


def run(config: dict, *, executor=None, progress: bool = False) -> dict:
    """The rescaled RNN's least-squares fits of both App. C kernels at every width, and their perturbation curves."""
    start = time.perf_counter()
    betas = [float(b) for b in config["betas"]]
    out = {"experiment": "appc", "protocol_name": "paper", "size": config["size"], "config": dict(config),
           "betas": betas, "targets": {}}
    for name in TARGETS:
        per_seed = []
        for seed in config["seeds"]:
            rows = _study(name, config, seed)
            per_seed.append({"seed": int(seed), "rows": rows, "summary": summarise(rows, betas)})
        out["targets"][name] = per_seed
    out["seconds"] = time.perf_counter() - start
    return out


def _rho1_continuous(s1: dict, betas) -> bool:
    """S2's first half: rho1's limit curve is finite for every grid ``beta < 0.5`` and continuous at 0."""
    small = [e for b, e in zip(betas, s1["sup_theorem"]) if b < 0.5]
    return bool(all(math.isfinite(e) for e in small) and s1["sup_theorem"][0] <= 10 * betas[0] + 2 * s1["sup_error0"])


def criteria(result: dict) -> dict:
    """S1-S3, each holding when it holds in every seed, recomputed from the per-width rows."""
    betas = result["betas"]
    m_max, m_min = max(result["config"]["widths"]), min(result["config"]["widths"])
    out = {"S1": True, "S2": True, "S3": True}
    for p1, p2 in zip(result["targets"]["rho1"], result["targets"]["rho2"]):
        s1, s2 = summarise(p1["rows"], betas), summarise(p2["rows"], betas)
        out["S1"] &= bool(s1["threshold_slope"] >= -0.3 and s2["threshold_slope"] <= -0.7)
        out["S2"] &= bool(_rho1_continuous(s1, betas) and s2["first_infinite_beta"] <= 2.0 / m_max)
        out["S3"] &= bool(min(s1["error0_fall"], s2["error0_fall"]) >= 0.5 * m_max / m_min)
    return out


def verdict(result: dict) -> dict:
    """Reproduced when every criterion of :func:`criteria` holds, partly when S1 or S2 does, with the numbers behind them."""
    c = criteria(result)
    s1, s2 = (summarise(result["targets"][n][0]["rows"], result["betas"]) for n in TARGETS)
    if all(c.values()):
        v = "reproduced"
    elif c["S1"] or c["S2"]:
        v = "partly"
    else:
        v = "not reproduced"
    why = (f"threshold slope in m: rho1 {s1['threshold_slope']:.3g}, rho2 {s2['threshold_slope']:.3g}; "
           f"sup_m E_m infinite from beta = {s1['first_infinite_beta']:.3g} (rho1) and {s2['first_infinite_beta']:.3g} "
           f"(rho2, m_max = {max(s2['widths'])}); E_m(0) falls {s1['error0_fall']:.3g}x / {s2['error0_fall']:.3g}x; "
           f"criteria {c}")
    post = _post_hoc(result, c)
    if post["outcome"] != v:
        why += f"; post-hoc reading (not the rule): {post['outcome']} ({post['what']})"
    return {"verdict": v, "why": why, "numbers": {"criteria": c, "rho1": s1, "rho2": s2, "post_hoc": post}}


def _post_hoc(result: dict, c: dict) -> dict:
    """A reading of S2 written after the first full run, reported beside the rule's outcome, never instead of it.

    S2 asks ``rho_2``'s limit curve to be infinite from some ``beta <= 2 /
    m_max``.  At full size ``2 / m_max = 2 / 4096 = 4.9e-4`` lies below the
    grid's smallest ``beta`` (1e-3), so no grid point can satisfy it even when
    the curve is infinite at every grid point, which is the jump at 0 the
    criterion is after.  S2' accepts ``beta <= max(2 / m_max, beta_min)``: an
    infinite limit curve from the grid's first point on.
    """
    betas = result["betas"]
    m_max = max(result["config"]["widths"])
    bound = max(2.0 / m_max, float(betas[0]))
    s2p = True
    for p1, p2 in zip(result["targets"]["rho1"], result["targets"]["rho2"]):
        s1, s2 = summarise(p1["rows"], betas), summarise(p2["rows"], betas)
        s2p &= bool(_rho1_continuous(s1, betas) and s2["first_infinite_beta"] <= bound)
    cp = {**c, "S2": s2p}
    outcome = "reproduced" if all(cp.values()) else ("partly" if cp["S1"] or cp["S2"] else "not reproduced")
    return {"outcome": outcome, "criteria": cp, "bound": bound,
            "what": f"S2' reads rho2's jump from the grid's first beta: infinite from beta <= {bound:.3g}",
            "reason": (f"2 / m_max = {2.0 / m_max:.3g} is below the grid's smallest beta {float(betas[0]):.3g}, so the "
                       "rule's S2 cannot hold on this grid whatever the curve; see _post_hoc's docstring")}


_MATH = {"rho1": r"$\rho_1 = \sum_k k^{-2} e^{-t/k}$", "rho2": r"$\rho_2 = \sum_k k^{-2} e^{-t/k^2}$"}


def plot(result: dict, path: str) -> None:
    """``E_m(beta)`` of both targets (solid: ``w + beta``, dotted: random draws) and the thresholds against m."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from ..plotting import finish_figure

    betas = np.asarray(result["betas"], float)
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2))
    for ax, name in ((axes[0], "rho1"), (axes[1], "rho2")):
        unbounded = False
        for r in result["targets"][name][0]["rows"]:
            e = np.asarray(r["theorem"], float)
            ok = np.isfinite(e)
            line, = ax.loglog(betas[ok], e[ok], "o-", ms=3, label=f"$m = {r['m']}$")
            er = np.asarray(r["random"], float)
            okr = np.isfinite(er)
            ax.loglog(betas[okr], er[okr], ":", color=line.get_color(), lw=1)
            if not ok.all():
                unbounded = True
                ax.axvline(betas[~ok][0], color=line.get_color(), lw=0.6, ls="--")
        styles = [Line2D([], [], color="0.3", marker="o", ms=3, ls="-", label=r"$w + \beta$ (every unit)"),
                  Line2D([], [], color="0.3", ls=":", label="random draws (max)")]
        if unbounded:
            styles.append(Line2D([], [], color="0.3", lw=0.6, ls="--", label=r"$w + \beta$ unbounded from here"))
        handles = ax.get_legend_handles_labels()[0]
        ax.legend(handles=handles + styles, fontsize=7, ncol=2)
        ax.set(title=f"{_MATH[name]}: error under perturbation", xlabel=r"perturbation size $\beta$",
               ylabel=r"$E_m(\beta) = \sup_t$ error")
    ax = axes[2]
    for name in TARGETS:
        s = result["targets"][name][0]["summary"]
        sym = _MATH[name].split(" =")[0] + "$"
        ax.loglog(s["widths"], s["threshold"], "o-", label=f"{sym}: instability threshold $\\beta^*(m)$")
        ax.loglog(s["widths"], s["error0"], "s--", label=f"{sym}: $E_m(0)$")
    ax.set(xlabel="width $m$", title="threshold and truncation error against $m$")
    ax.legend(fontsize=7)
    finish_figure(fig, result, extra=r"[WLL] App. C: rescaled RNN, $\rho_1$ stable, $\rho_2$ not")
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)

EXPERIMENT = Experiment(name="appc", title=TITLE, claim=CLAIM, protocols=PROTOCOLS, config=config, run=run,
                        plot=plot, verdict=verdict, criteria=criteria)
