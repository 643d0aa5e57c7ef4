"""[WLL] Figs. 2 and 8b: trained tanh RNNs with a free ``W`` and with ``W = -softplus(w)``, two records of one module.

The two experiments differ only in the parameterisation of the recurrent
matrix, so they share configs per protocol, the run, the plot and the
frontier read-out; each has its own record (:data:`FIG2`, :data:`FIG8B`),
title, claim and verdict.  Fig. 8b was registered as ``fig4`` until the
paper's own Fig. 4 (a linear RNN, :mod:`dynmem.experiments.fig4`) was added;
result files that say ``fig4`` with a ``paper`` / ``code`` / ``dynmem`` study
config are read as ``fig8b`` (:func:`dynmem.experiments.experiment_of`).

Protocols: ``"paper"`` and ``"code"`` run :func:`dynmem.experiments.study.run_study`
(Fig. 8b under ``"code"`` is the code's ``"softplusrnn"``, ``W = -P^T
diag(softplus(w)) P``); ``"dynmem"`` runs the earlier experiment
(:mod:`dynmem.experiments.wll_training`) unchanged, so its numbers stay
comparable with earlier reports.
"""

from __future__ import annotations

import math

import numpy as np

from ..margins import linear_frontier
from . import study
from . import trained as tr
from .protocols import protocol as get_protocol
from .record import Experiment

__all__ = ["FIG2", "FIG8B", "config", "run", "plot", "titled", "verdict_fig2", "verdict_fig8b", "w_label",
           "window_frontier"]

PROTOCOLS = ("paper", "code", "dynmem")
TITLE_FIG2 = "[WLL] Fig. 2: trained tanh RNN, free W"
CLAIM_FIG2 = ("For a polynomial-memory target the stability boundary of trained tanh RNNs shrinks as the width grows "
              "(perturbation curves cross further left); the spectral margin goes to 0 as the error does "
              "(Thm 3.9's mechanism), while an exponential target keeps a bounded margin.")
TITLE_FIG8B = "[WLL] Fig. 8b: trained tanh RNN, W = -softplus(w)"
CLAIM_FIG8B = ("With W = -softplus(w) the polynomial target is stably approximated: perturbations never make W "
               "unstable, the boundary does not shrink with m and the error falls with m.")


def config(figure: str, size: str, protocol: str, **changes) -> dict:
    """The config of ``figure`` at ``size`` under ``protocol`` (see :func:`dynmem.experiments.study.study_config`).

    ``"dynmem"`` configs hold ``figure``, ``protocol``, ``size`` and ``seeds`` only.
    """
    if protocol == "dynmem":
        cfg = {"figure": figure, "protocol": "dynmem", "size": size, "seeds": [0, 1, 2]}
        for k, v in changes.items():
            if k not in ("seeds", "workdir"):
                raise ValueError(f"unknown setting {k!r} for the 'dynmem' protocol; known: seeds.")
            if k == "seeds":
                cfg[k] = list(v)
        if size not in ("quick", "full"):
            raise ValueError(f"`size` must be 'quick' or 'full'; got {size!r}.")
        return cfg
    if protocol not in ("paper", "code"):
        raise ValueError(f"`protocol` must be 'paper', 'code' or 'dynmem'; got {protocol!r}.")
    return study.study_config(figure, protocol, size, **changes)


def run(cfg: dict, *, executor=None, progress: bool = False) -> dict:
    """Train and measure every model of ``cfg`` (either figure): a study for ``"paper"`` / ``"code"``, the earlier run for ``"dynmem"``."""
    if cfg["protocol"] == "dynmem":
        from . import wll_training as rt

        fn = rt.run_fig2 if cfg["figure"] == "fig2" else rt.run_fig4
        res = fn(quick=cfg["size"] == "quick", seeds=tuple(cfg["seeds"]), progress=progress, executor=executor)
        res.update(protocol_name="dynmem", protocol=get_protocol("dynmem"), config=dict(cfg), size=cfg["size"],
                   experiment=cfg["figure"])
        return res
    return study.run_study(cfg, executor=executor, progress=progress)


def plot(result: dict, path: str, title: str) -> None:
    """The study figure of ``result`` under ``title`` (the earlier figures for the ``"dynmem"`` protocol)."""
    if result.get("protocol_name") == "dynmem":
        from . import wll_training as rt

        (rt.plot_fig2 if result["experiment"] == "fig2" else rt.plot_fig4)(result, path)
        return
    study.plot_study(result, path, title)


def _fmt(x) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3g}"


def _dynmem_verdict(result: dict) -> dict:
    f = result.get("findings", {})
    shown = bool(f.get("shown"))
    nums = {k: f.get(k) for k in ("margin_slope_median", "blowup_slope_median", "error0_slope_median")}
    why = ", ".join(f"{k} {_fmt(v)}" for k, v in nums.items())
    return {"verdict": "reproduced" if shown else "not reproduced", "why": f"dynmem protocol: {why}",
            "numbers": nums}


def window_frontier(result: dict, target: str = "pol") -> dict:
    """What the evaluation window allows: the linear frontier ``mu*(E; H, B)`` at the nets' achieved error.

    ``E`` is the median relative test MSE of the final models, ``B`` the median
    ``sum |R_k|`` of their linearised kernels, ``H`` the evaluation window
    (``T_eval`` steps of ``dt``), the kernel the discrete one the data use
    (``dt rho(j dt)``).  Returns ``mu*`` per unit time beside the nets' median
    effective margin; ``{}`` for a result without these measurements.
    """
    proto = result.get("protocol") or {}
    per = (result.get("targets", {}).get(target) or {}).get("per_width")
    if not per or "relative_error0" not in next(iter(per.values())):
        return {}
    dt = float(proto["model"]["dt"])
    T = int(proto["data"]["T_eval"])
    code_style = proto["data"].get("validation") == "validation"
    kern = np.asarray(tr.make_target(proto["targets"][target]).kernel(np.arange(T) * dt)).reshape(T, -1)[:, 0]
    kern = kern * (1.0 if code_style else dt)
    E = [e for row in per.values() for e in row["relative_error0"] if np.isfinite(e) and e > 0]
    B = [b for row in per.values() for b in row["l1_residues"] if np.isfinite(b) and b > 0]
    M = [x for row in per.values() for x in row["effective_margin"] if np.isfinite(x)]
    if not E or not B:
        return {}
    e, b = float(np.median(E)), float(np.median(B))
    mu = float(linear_frontier(kern, [min(e, 1.0)], l1_bound=b, tol=1e-4)[0]) / dt
    return {"window": T * dt, "error": e, "l1_bound": b, "frontier_margin": mu,
            "effective_margin_median": float(np.median(M)) if M else math.nan}


def _pinned_at_zero(result: dict) -> tuple[int, int]:
    margins = [x for t in result.get("targets", {}).values() for row in t["per_width"].values() for x in row["margin"]]
    return int(sum(abs(x) <= 1e-9 for x in margins)), len(margins)


def verdict_fig2(result: dict) -> dict:
    """Reproduced when the mechanism (with its exponential control) and the visible consequence both appear.

    Mechanism: for the polynomial target the effective margin goes to 0 with
    the error (95% interval of the slope above 0, early snapshots excluded)
    and ends below 0.5 x the exponential control's (THEORY B5); without the
    effective-margin measurements (older results), the spectral margin's
    slope criterion.  Visible consequence: the blow-up beta, the ``W + beta I``
    instability beta or the curve crossings shrink with m.  The verdict says
    why when it is negative: ``"not informative"`` when the protocol's
    parameterisation pins the margin at 0 (most models at ``-alpha(W) = 0``);
    under ``"paper"``, the evaluation window's linear frontier
    (:func:`window_frontier`) says whether the window could show the
    mechanism at the error the nets reached.
    """
    if result.get("protocol_name") == "dynmem":
        return _dynmem_verdict(result)
    f = result["findings"]
    pol = f.get("pol", {})
    exp = f.get("exp")
    if "mechanism_with_control" in pol:
        mech = bool(pol["mechanism_with_control"])
    else:
        mech = bool(pol.get("margin_to_zero_with_error")) and (exp is None or bool(exp.get("margin_bounded")))
    cross = pol.get("crossing_slope_median", math.nan)
    visible = (bool(pol.get("blowup_shrinks_with_m")) or bool(pol.get("instability_shrinks_with_m"))
               or bool(np.isfinite(cross) and cross < -study.SLOPE_TOL))
    verdict = "reproduced" if (mech and visible) else ("partly" if (mech or visible) else "not reproduced")
    numbers = {
        "pol_margin_vs_error_slope": pol.get("margin_vs_error_slope"), "pol_margin_vs_error_ci": pol.get("margin_vs_error_ci"),
        "pol_effective_margin_vs_error_slope": pol.get("effective_margin_vs_error_slope"),
        "pol_effective_margin_vs_error_ci": pol.get("effective_margin_vs_error_ci"),
        "pol_margin_ratio_to_exp_control": pol.get("margin_ratio_to_exp_control"),
        "exp_margin_vs_error_slope": exp.get("margin_vs_error_slope") if exp else None,
        "exp_margin_vs_error_ci": exp.get("margin_vs_error_ci") if exp else None,
        "pol_blowup_slope": pol.get("blowup_slope_median"), "pol_crossing_slope": cross,
        "pol_instability_slope": pol.get("instability_beta_slope_median"),
        "pol_margin_slope_in_m": pol.get("margin_slope_median"), "pol_error0_slope_in_m": pol.get("error0_slope_median"),
    }
    ci = numbers["pol_effective_margin_vs_error_ci"] or numbers["pol_margin_vs_error_ci"] or [math.nan, math.nan]
    slope = numbers["pol_effective_margin_vs_error_slope"]
    if slope is None:
        slope = numbers["pol_margin_vs_error_slope"]
    why = (f"margin vs error: pol slope {_fmt(slope)} CI [{_fmt(ci[0])}, {_fmt(ci[1])}]"
           + (f", pol/exp margin ratio {_fmt(numbers['pol_margin_ratio_to_exp_control'])}"
              if numbers["pol_margin_ratio_to_exp_control"] is not None else "")
           + f"; pol blow-up slope in m {_fmt(numbers['pol_blowup_slope'])} (sensitivity), instability-beta slope "
             f"{_fmt(numbers['pol_instability_slope'])}, crossing slope {_fmt(cross)}, "
             f"E_m(0) slope {_fmt(numbers['pol_error0_slope_in_m'])}"
           + ("" if mech else "; mechanism not shown") + ("" if visible else "; no shrinking boundary"))
    from .epochs import epochs_to_approximation

    ep = epochs_to_approximation(result)
    numbers["epochs_to_approximation"] = {"claim_holds": ep["claim_holds"],
                                          **{t: v["median"] for t, v in ep["targets"].items()}}
    why += f"; {ep['why']}"
    zero, total = _pinned_at_zero(result)
    if result.get("protocol_name") == "code" and total and zero >= total / 2:
        numbers["models_with_margin_zero"] = [zero, total]
        return {"verdict": "not informative",
                "why": f"its parameterisation pins the margin at 0: {zero} of {total} trained models have "
                       f"-alpha(W) = 0 (W = -P^T diag(relu w) P is singular once a w <= 0), for every target; " + why,
                "numbers": numbers}
    if result.get("protocol_name") == "paper" and not mech:
        wf = window_frontier(result)
        numbers["window_frontier"] = wf
        if wf:
            why = (f"its window (t <= {_fmt(wf['window'])}, {_fmt(wf['window'])} kernel scales) cannot exhibit the "
                   f"mechanism: at the nets' relative test MSE {_fmt(wf['error'])}, a linear RNN with sum |R| <= "
                   f"{_fmt(wf['l1_bound'])} reaches it with any margin up to {_fmt(wf['frontier_margin'])} per unit "
                   f"time (nets' effective margin {_fmt(wf['effective_margin_median'])}); " + why)
        else:
            why = "its window (<= 10 kernel scales) cannot exhibit the mechanism (docs/theory.md section 4.2); " + why
    return {"verdict": verdict, "why": why, "numbers": numbers}


def verdict_fig8b(result: dict) -> dict:
    """Reproduced when perturbations never destabilise W, the blow-up beta does not shrink and the error falls with m."""
    if result.get("protocol_name") == "dynmem":
        return _dynmem_verdict(result)
    pol = result["targets"].get("pol") or next(iter(result["targets"].values()))
    f = result["findings"].get("pol") or next(iter(result["findings"].values()))
    n_unstable = int(sum(sum(u[1:]) for m in result["widths"] for u in pol["per_width"][str(m)]["unstable"]))
    s = f.get("blowup_slope_median", math.nan)
    all_inf = all(math.isinf(b) for m in result["widths"] for b in pol["per_width"][str(m)]["blowup"])
    no_shrink = bool(all_inf or (np.isfinite(s) and s >= -study.SLOPE_TOL))
    falls = bool(f.get("error_falls_with_m"))
    # W = -softplus(w) keeps every perturbed W Hurwitz by construction, so that check alone says nothing about
    # the claim: "partly" needs one of the two that can fail in training (boundary, error).
    checks = [n_unstable == 0, no_shrink, falls]
    verdict = "reproduced" if all(checks) else ("partly" if (no_shrink or falls) else "not reproduced")
    numbers = {"n_unstable_perturbed_W": n_unstable, "blowup_slope": s, "blowup_all_inf": all_inf,
               "error0_slope_in_m": f.get("error0_slope_median")}
    e_slope = numbers["error0_slope_in_m"]
    err_words = ("falls with m" if falls else
                 "rises with m" if e_slope is not None and np.isfinite(e_slope) and e_slope > 0 else "does not fall with m")
    why = (f"error {err_words} (E_m(0) slope in m {_fmt(e_slope)}); "
           f"boundary {'does not shrink' if no_shrink else 'shrinks or is undetermined'} "
           f"(blow-up slope in m {_fmt(s)}{', never blows up' if all_inf else ''}); "
           f"unstable perturbed W: {n_unstable} (none by construction of the parameterisation)")
    return {"verdict": verdict, "why": why, "numbers": numbers}


def fig2_config(size: str = "quick", protocol: str | None = None, **changes) -> dict:
    """Fig. 2's config (free ``W``) at ``size`` under ``protocol`` (default ``"paper"``); see :func:`config`."""
    return config("fig2", size, protocol or PROTOCOLS[0], **changes)


def fig8b_config(size: str = "quick", protocol: str | None = None, **changes) -> dict:
    """Fig. 8b's config (``W = -softplus(w)``) at ``size`` under ``protocol`` (default ``"paper"``); see :func:`config`."""
    return config("fig8b", size, protocol or PROTOCOLS[0], **changes)


def w_label(result: dict) -> str | None:
    """How ``W`` is formed in ``result``, read from its protocol's parameterisation (``None`` if it does not say).

    ``"free W"``, ``"W = -diag(g(w))"`` or ``"W = -P^T diag(g(w)) P"`` with ``g`` the protocol's map
    (left out when it is the identity).
    """
    proto = result.get("protocol") or {}
    cfg = result.get("config") or {}
    par = (proto.get("parameterisation") or {}).get(cfg.get("parameterisation", result.get("experiment")))
    if not par:
        return None
    g = par.get("g")
    gw = "w" if g in (None, "identity") else f"{g}(w)"
    return {"free": "free W", "diag": f"W = -diag({gw})", "orth": f"W = -P^T diag({gw}) P"}.get(par.get("form"))


def titled(result: dict, title: str) -> str:
    """``title`` with its ``W`` description replaced by the one ``result`` was trained with.

    The registry titles name the paper's ``W``; under the ``"code"`` protocol both figures use the code's
    orthogonal form, so a fixed title would misdescribe the run (the figure's header names the protocol).
    """
    label = w_label(result)
    return f"{title.rsplit(', ', 1)[0]}, {label}" if label else title


def fig2_title(result: dict) -> str:
    """Fig. 2's title for ``result``, naming the ``W`` it was trained with (:func:`titled`)."""
    return titled(result, TITLE_FIG2)


def fig8b_title(result: dict) -> str:
    """Fig. 8b's title for ``result``, naming the ``W`` it was trained with (:func:`titled`)."""
    return titled(result, TITLE_FIG8B)


def fig2_plot(result: dict, path: str) -> None:
    """Fig. 2's figure (:func:`plot` with its title, naming the run's ``W`` and protocol)."""
    plot(result, path, fig2_title(result))


def fig8b_plot(result: dict, path: str) -> None:
    """Fig. 8b's figure (:func:`plot` with its title, naming the run's ``W`` and protocol)."""
    plot(result, path, fig8b_title(result))


FIG2 = Experiment(name="fig2", title=TITLE_FIG2, claim=CLAIM_FIG2, protocols=PROTOCOLS, config=fig2_config, run=run,
                  plot=fig2_plot, verdict=verdict_fig2, title_for=fig2_title)
FIG8B = Experiment(name="fig8b", title=TITLE_FIG8B, claim=CLAIM_FIG8B, protocols=PROTOCOLS, config=fig8b_config,
                   run=run, plot=fig8b_plot, verdict=verdict_fig8b, title_for=fig8b_title)
