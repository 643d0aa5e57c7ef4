"""The replication report: ``REPORT.md`` from the result files of ``dynmem reproduce``.

One table row per result file (``<experiment>-<protocol>[-full].json``): the
paper's claim, the protocol, the sizes, the budget actually spent, the
measured numbers and the verdict (``reproduced`` / ``partly`` / ``not
reproduced`` / ``not informative`` and why), each computed by the experiment's own ``verdict``
from the JSON; below the table, every figure inline with its verdict.
Nothing in the report is typed in: delete a JSON and its row goes.
"""

from __future__ import annotations

import glob
import os

from ..io import atomic_write_text, read_json
from . import experiment_names, get_experiment

__all__ = ["collect", "report_rows", "render", "write_report", "in_context", "answer"]


_NONFINITE = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


def _decode(obj):
    """Undo :func:`dynmem.io.to_jsonable`'s encoding of non-finite floats as "nan" / "inf" / "-inf" strings."""
    if isinstance(obj, dict):
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    if isinstance(obj, str) and obj in _NONFINITE:
        return _NONFINITE[obj]
    return obj


def collect(out: str) -> list:
    """``(stem, result)`` of every complete result file in ``out`` (malformed or partial files are skipped)."""
    found = []
    for path in sorted(glob.glob(os.path.join(out, "*.json"))):
        try:
            r = read_json(path)
        except (OSError, ValueError):
            continue
        if not isinstance(r, dict):
            continue
        rep = r.get("reproduce") or {}
        name = rep.get("experiment") or r.get("experiment")
        if name not in experiment_names() or (rep and rep.get("complete") is not True):
            continue
        found.append((os.path.splitext(os.path.basename(path))[0], _decode(r)))
    order = {n: i for i, n in enumerate(experiment_names())}
    found.sort(key=lambda sr: (order[(sr[1].get("reproduce") or {}).get("experiment") or sr[1]["experiment"]], sr[0]))
    return found


def _sizes(r: dict) -> str:
    cfg = r.get("config") or {}
    parts = []
    if "widths" in r or "widths" in cfg:
        parts.append("m = " + ",".join(str(m) for m in (r.get("widths") or cfg.get("widths"))))
    seeds = r.get("seeds") or cfg.get("seeds")
    if seeds:
        parts.append(f"{len(seeds)} seeds")
    proto = r.get("protocol") if isinstance(r.get("protocol"), dict) else None
    if proto and "data" in proto and "n_train" in proto["data"] and "data_scale" in cfg:
        n = int(round(proto["data"]["n_train"] * float(cfg["data_scale"])))
        parts.append(f"{n} train seqs x T={proto['data'].get('T_train')}")
    if r.get("experiment") == "fig3":
        parts.append(f"{cfg.get('n_teachers')} teachers of width {cfg.get('teacher_width')}")
    if r.get("experiment") == "fig78":
        parts.append(f"{len(r.get('cells', []))} cells")
    if r.get("experiment") == "ablation":
        parts.append(f"{len(r.get('variants', []))} variants")
    return "; ".join(parts) or "-"


def _budget(r: dict) -> str:
    secs = (r.get("reproduce") or {}).get("seconds", r.get("wall_seconds", r.get("seconds")))
    b = r.get("budget")
    parts = []
    budgets = [b] if isinstance(b, dict) else []
    for key in ("cells", "variants"):
        budgets += [c["budget"] if "budget" in c else c.get("summary", {}).get("budget") for c in r.get(key, [])]
    budgets = [x for x in budgets if isinstance(x, dict)]
    if budgets:
        steps = sum(int(x.get("steps_total", 0)) for x in budgets)
        parts.append(f"{steps:,} Adam steps")
        ep = [e for x in budgets for t in x.get("epochs", {}).values() for es in t.values() for e in es]
        if ep:
            parts.append(f"epochs {min(ep)}-{max(ep)} of {budgets[0].get('full_budget_epochs')}")
        stops = sorted({s for x in budgets for t in x.get("stopped", {}).values() for ss in t.values() for s in ss})
        if stops:
            parts.append("stopped by " + "/".join(stops))
    if secs is not None:
        try:
            secs = float(secs)
            parts.append(f"{secs:.1f} s wall" if secs < 120 else f"{secs / 60:.1f} min wall")
        except (TypeError, ValueError):
            pass
    return "; ".join(parts) or "-"


def report_rows(out: str) -> list:
    """One dict per result file: stem, experiment, claim, protocol, size, sizes, budget, verdict, why, figure."""
    rows = []
    for stem, r in collect(out):
        name = (r.get("reproduce") or {}).get("experiment") or r["experiment"]
        mod = get_experiment(name)
        try:
            v = mod.verdict(r)
        except Exception as exc:  # a result the verdict cannot read is reported, not hidden
            v = {"verdict": "unreadable", "why": f"verdict failed: {type(exc).__name__}: {exc}", "numbers": {}}
        png = f"{stem}.png"
        rows.append({
            "stem": stem, "experiment": name, "title": mod.TITLE, "claim": mod.CLAIM,
            "protocol": r.get("protocol_name") or (r.get("reproduce") or {}).get("protocol") or "-",
            "size": r.get("size") or (r.get("reproduce") or {}).get("size") or "-",
            "sizes": _sizes(r), "budget": _budget(r), "verdict": v["verdict"], "why": v["why"],
            "numbers": v.get("numbers", {}), "figure": png if os.path.exists(os.path.join(out, png)) else None,
        })
    return rows


_STABLE_FIGURES = ("fig4", "fig78")


def in_context(rows: list) -> list:
    """Verdicts that depend on another experiment's: a stable parameterisation (fig4 / Fig. 8b, fig78) removes
    an instability, so its claim is informative only where the free-W net (fig2, same protocol and size) shows one."""
    fig2 = {(r["protocol"], r["size"]): r for r in rows if r["experiment"] == "fig2"}
    out = []
    for r in rows:
        base = fig2.get((r["protocol"], r["size"]))
        if (r["experiment"] in _STABLE_FIGURES and base is not None and r["protocol"] != "dynmem"
                and base["verdict"] not in ("reproduced", "partly")):
            r = {**r, "verdict": "not informative",
                 "why": f"not informative while fig2 ({base['stem']}) shows no instability to remove "
                        f"(its verdict: {base['verdict']}); measured: {r['why']} (own verdict: {r['verdict']})"}
        out.append(r)
    return out


def answer(rows: list) -> list:
    """The report's first section: the researcher's question answered in three sentences from the verdicts."""
    mech = [r for r in rows if r["experiment"] == "mechanism"]
    mech = sorted(mech, key=lambda r: r["size"] != "full")[0] if mech else None
    lines = ["## Do trained nonlinear RNNs lose their stability margin on a long-memory target?", ""]
    if mech is None:
        s1 = "The mechanism experiment has not been run in this folder (`dynmem reproduce mechanism --full`)."
    else:
        outcome = mech["numbers"].get("outcome", "?")
        s1 = (f"Under dynmem's `mechanism` protocol ({mech['size']} size"
              + ("; quick: not evidence" if mech["size"] != "full" else "") + f") the fixed decision rule says "
              f"**{outcome}**: {mech['why']}.")
    paper = [r for r in rows if r["experiment"] == "fig2" and r["protocol"] == "paper"]
    code = [r for r in rows if r["experiment"] == "fig2" and r["protocol"] == "code"]
    s2 = ("The paper's own protocol (fig2 `paper`): **" + paper[0]["verdict"] + "**: " + paper[0]["why"].split(";")[0] + "."
          if paper else "The paper's own protocol (fig2 `paper`) has not been run here.")
    s3 = ("The public code's protocol (fig2 `code`): **" + code[0]["verdict"] + "**: " + code[0]["why"].split(";")[0] + "."
          if code else "The public code's protocol (fig2 `code`) has not been run here.")
    return lines + [s1, "", s2, "", s3, ""]


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(rows: list) -> str:
    """The Markdown of the report."""
    lines = ["# dynmem replication report", "",
             "Generated by `dynmem reproduce --report` from the result files in this folder; every verdict is "
             "computed from the JSON beside it by the experiment's `verdict` (criteria in its docstring). "
             "Nothing is tuned to reach the paper's numbers; where a finding does not appear the row says so.", "",
             *answer(rows),
             "## Every result", "",
             "| experiment | paper's claim | protocol | size | sizes | budget spent | measured | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(x) for x in (
            f"`{r['stem']}`", r["claim"], r["protocol"], r["size"], r["sizes"], r["budget"], r["why"],
            f"**{r['verdict']}**")) + " |")
    lines.append("")
    for r in rows:
        lines += [f"## {r['stem']}: {r['title']}", "", f"**{r['verdict']}**: {r['why']}", ""]
        if r["figure"]:
            lines += [f"![{r['stem']}]({r['figure']})", ""]
    return "\n".join(lines) + "\n"


def write_report(out: str, name: str = "REPORT.md") -> str:
    """Write ``out/REPORT.md`` atomically; returns its path."""
    path = os.path.join(out, name)
    atomic_write_text(path, render(in_context(report_rows(out))))
    return path

