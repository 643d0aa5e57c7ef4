"""[WLL] Sec. 3.3's remark, checked from training histories: exponential targets reach approximation in ~10
epochs, polynomial ones in ~1,000.

:func:`epochs_to_level` reads one model's per-epoch validation MSE relative
to the outputs' power; :func:`epochs_to_approximation` collects it over the
widths and seeds of a trained study (fig2's ``paper`` / ``code`` results,
``per_width[m]["relative_val_history"]``) and checks the remark with stated
criteria: the exponential target's median is at most 30 epochs and the
polynomial target's median is at least 10 times it (a target that never
reaches the level within the budget counts as "more than the budget").
``claim_holds`` is ``None`` (undecided) when there is no history or the
exponential target's budget was under 30 epochs without reaching the level.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LEVEL", "epochs_to_level", "epochs_to_approximation"]

LEVEL = 1e-3  # relative MSE that counts as "approximated"


def epochs_to_level(relative_history, level: float = LEVEL) -> float:
    """First epoch (1-based) whose relative validation MSE is ``<= level``; inf if never, nan without a history."""
    h = np.asarray(relative_history, float).ravel()
    if h.size == 0:
        return math.nan
    hit = np.flatnonzero(h <= level)
    return float(hit[0] + 1) if hit.size else math.inf


def epochs_to_approximation(result: dict, level: float = LEVEL) -> dict:
    """Per target: epochs to ``level`` for every (width, seed), their median, the budget, and the remark's check."""
    out = {"level": level, "targets": {}}
    for tname, t in (result.get("targets") or {}).items():
        vals, budget = [], 0
        for m, row in t["per_width"].items():
            for h in row.get("relative_val_history", []):
                vals.append({"m": int(m), "epochs": epochs_to_level(h, level)})
                budget = max(budget, len(h))
        e = [v["epochs"] for v in vals if not math.isnan(v["epochs"])]
        med = float(np.median(e)) if e else math.nan
        out["targets"][tname] = {"per_model": vals, "median": med, "budget_epochs": budget,
                                 "reached": sum(math.isfinite(x) for x in e), "n": len(e)}
    ex, po = out["targets"].get("exp"), out["targets"].get("pol")
    if ex and po and math.isfinite(ex["median"] if ex["n"] else math.nan):
        fast = ex["median"] <= 30
        slow = (po["median"] >= 10 * ex["median"]) if po["n"] else False
        out["claim_holds"] = bool(fast and slow)
        out["why"] = (f"median epochs to relative MSE {level:g}: exp {ex['median']:g}, pol "
                      + (f"{po['median']:g}" if math.isfinite(po["median"]) else f"> {po['budget_epochs']} (budget)")
                      + " (paper: ~10 / ~1,000)")
    else:
        # the exponential target never reached the level: the remark fails if the budget allowed 30 epochs
        out["claim_holds"] = (False if ex and ex["n"] and ex["budget_epochs"] >= 30 else None)
        out["why"] = (f"epochs to relative MSE {level:g}: "
                      + ("no training history recorded" if not any(v["n"] for v in out["targets"].values())
                         else "the exponential target never reached it")
                      + (f" (exp budget {ex['budget_epochs']} epochs)" if ex else ""))
    return out
