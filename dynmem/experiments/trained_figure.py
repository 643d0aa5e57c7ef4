"""What Figs. 2 and 4 (and the activation grid of Figs. 7/8) share: configs per protocol, run, plot, verdicts.

``"paper"`` and ``"code"`` run :func:`dynmem.experiments.study.run_study`;
``"dynmem"`` runs the earlier experiment (:mod:`dynmem.experiments.wll_training`)
unchanged, so its numbers stay comparable with earlier reports.
"""

from __future__ import annotations

import math

import numpy as np

from . import study
from .protocols import protocol as get_protocol

__all__ = ["config", "run", "plot", "verdict_fig2", "verdict_fig4"]


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
    if cfg["protocol"] == "dynmem":
        from . import wll_training as rt

        fn = rt.run_fig2 if cfg["figure"] == "fig2" else rt.run_fig4
        res = fn(quick=cfg["size"] == "quick", seeds=tuple(cfg["seeds"]), progress=progress, executor=executor)
        res.update(protocol_name="dynmem", protocol=get_protocol("dynmem"), config=dict(cfg), size=cfg["size"])
        return res
    return study.run_study(cfg, executor=executor, progress=progress)


def plot(result: dict, path: str, title: str) -> None:
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


def verdict_fig2(result: dict) -> dict:
    """Reproduced when both the mechanism and the visible consequence appear; partly when one does.

    Mechanism: for the polynomial target the margin goes to 0 with the error
    (95% interval of the margin-vs-error slope above 0) and, if an
    exponential target was run, its margin stays bounded.  Visible
    consequence: the polynomial target's blow-up beta or curve crossings
    shrink with m (median log-log slope below ``-SLOPE_TOL``).
    """
    if result.get("protocol_name") == "dynmem":
        return _dynmem_verdict(result)
    f = result["findings"]
    pol = f.get("pol", {})
    exp = f.get("exp")
    mech = bool(pol.get("margin_to_zero_with_error")) and (exp is None or bool(exp.get("margin_bounded")))
    cross = pol.get("crossing_slope_median", math.nan)
    visible = bool(pol.get("blowup_shrinks_with_m")) or bool(np.isfinite(cross) and cross < -study.SLOPE_TOL)
    verdict = "reproduced" if (mech and visible) else ("partly" if (mech or visible) else "not reproduced")
    numbers = {
        "pol_margin_vs_error_slope": pol.get("margin_vs_error_slope"), "pol_margin_vs_error_ci": pol.get("margin_vs_error_ci"),
        "exp_margin_vs_error_slope": exp.get("margin_vs_error_slope") if exp else None,
        "exp_margin_vs_error_ci": exp.get("margin_vs_error_ci") if exp else None,
        "pol_blowup_slope": pol.get("blowup_slope_median"), "pol_crossing_slope": cross,
        "pol_margin_slope_in_m": pol.get("margin_slope_median"), "pol_error0_slope_in_m": pol.get("error0_slope_median"),
    }
    why = (f"margin vs E_m(0): pol slope {_fmt(numbers['pol_margin_vs_error_slope'])} "
           f"CI [{_fmt((numbers['pol_margin_vs_error_ci'] or [math.nan])[0])}, "
           f"{_fmt((numbers['pol_margin_vs_error_ci'] or [math.nan, math.nan])[1])}]"
           + (f", exp slope {_fmt(numbers['exp_margin_vs_error_slope'])} CI "
              f"[{_fmt(numbers['exp_margin_vs_error_ci'][0])}, {_fmt(numbers['exp_margin_vs_error_ci'][1])}]" if exp else "")
           + f"; pol blow-up slope in m {_fmt(numbers['pol_blowup_slope'])}, crossing slope {_fmt(cross)}, "
             f"E_m(0) slope {_fmt(numbers['pol_error0_slope_in_m'])}"
           + ("" if mech else "; mechanism not shown") + ("" if visible else "; no shrinking boundary"))
    return {"verdict": verdict, "why": why, "numbers": numbers}


def verdict_fig4(result: dict) -> dict:
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
    checks = [n_unstable == 0, no_shrink, falls]
    verdict = "reproduced" if all(checks) else ("partly" if any(checks) else "not reproduced")
    numbers = {"n_unstable_perturbed_W": n_unstable, "blowup_slope": s, "blowup_all_inf": all_inf,
               "error0_slope_in_m": f.get("error0_slope_median")}
    why = (f"unstable perturbed W: {n_unstable}; blow-up slope in m {_fmt(s)}{' (never blows up)' if all_inf else ''}; "
           f"E_m(0) slope in m {_fmt(numbers['error0_slope_in_m'])}")
    return {"verdict": verdict, "why": why, "numbers": numbers}
