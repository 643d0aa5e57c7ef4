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
import re
import urllib.parse

from ..io import atomic_write_text, read_json
from . import experiment_names, experiment_of, get_experiment

__all__ = ["collect", "scan", "report_rows", "render", "write_report", "markdown_text", "markdown_code", "in_context",
           "answer", "quick_note", "in_words", "summary_lines", "at_a_glance"]


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


_LIST_OF_SCALARS = ("widths", "seeds")


def _schema_problem(r, names) -> str:
    """Why ``r`` (a parsed result file) is not a complete result of a known experiment ("" if it is).

    Checks what the report reads outside the experiments' own ``verdict``
    (which is guarded separately): the object, its ``reproduce`` block, the
    experiment name and the types of ``config``, ``protocol``, ``size``,
    ``widths``, ``seeds``, ``budget``, ``cells`` and ``variants``.
    """
    if not isinstance(r, dict):
        return f"it holds a JSON {type(r).__name__}, not an object"
    rep = r.get("reproduce")
    if rep is not None and not isinstance(rep, dict):
        return "its `reproduce` is not an object"
    rep = rep or {}
    name = experiment_of(r)
    if not isinstance(name, str) or name not in names:
        return f"it names no dynmem experiment (`experiment` is {_short(name)})"
    if rep and rep.get("complete") is not True:
        return "it is not marked complete"
    if "config" in r and not isinstance(r["config"], dict):
        return "its `config` is not an object"
    if "protocol" in r and not isinstance(r["protocol"], (dict, str)):
        return "its `protocol` is neither an object nor a name"
    if isinstance(r.get("protocol"), dict) and not isinstance(r["protocol"].get("data", {}), dict):
        return "its `protocol.data` is not an object"
    for key in ("size", "protocol_name"):
        if key in r and not isinstance(r[key], str):
            return f"its `{key}` is not a string"
    for where, d in (("", r), ("config.", r.get("config") or {})):
        for key in _LIST_OF_SCALARS:
            v = d.get(key)
            if v is not None and not (isinstance(v, list) and all(isinstance(x, (int, float, str)) for x in v)):
                return f"its `{where}{key}` is not a list of numbers"
    if "budget" in r and not isinstance(r["budget"], dict):
        return "its `budget` is not an object"
    for key in ("cells", "variants"):
        v = r.get(key, [])
        if not (isinstance(v, list) and all(isinstance(c, dict) and isinstance(c.get("summary", {}), dict)
                                            for c in v)):
            return f"its `{key}` is not a list of objects"
    for key in ("protocol", "size", "stem"):
        if key in rep and not isinstance(rep[key], str):
            return f"its `reproduce.{key}` is not a string"
    return ""


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def scan(out: str) -> tuple:
    """``(results, unreadable)`` of the ``*.json`` files in ``out``.

    ``results``: ``(stem, result)`` of every complete result of a known
    experiment, in registry order; ``unreadable``: ``(file name, reason)`` of
    every other JSON file (one that does not parse, is nested too deeply,
    is foreign, incomplete or of the wrong shape).  Never raises for a file's
    content.
    """
    names = experiment_names()
    found, bad = [], []
    for path in sorted(glob.glob(os.path.join(glob.escape(out), "*.json"))):
        fname = os.path.basename(path)
        try:
            r = read_json(path)
        except (OSError, ValueError, RecursionError, MemoryError) as exc:
            reason = "it is nested too deeply" if isinstance(exc, RecursionError) else f"it does not parse ({type(exc).__name__})"
            bad.append((fname, reason))
            continue
        try:
            problem = _schema_problem(r, names)
            if not problem:
                r = _decode(r)
        except RecursionError:
            problem = "it is nested too deeply"
        if problem:
            bad.append((fname, problem))
            continue
        found.append((os.path.splitext(fname)[0], r))
    order = {n: i for i, n in enumerate(names)}
    found.sort(key=lambda sr: (order[experiment_of(sr[1])], sr[0]))
    return found, bad


def collect(out: str) -> list:
    """``(stem, result)`` of every complete result file in ``out`` (malformed or partial files are skipped).

    :func:`scan` also names the skipped files; :func:`report_rows` lists them as unreadable.
    """
    return scan(out)[0]


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
        n = len(cfg["pool"]) if isinstance(cfg.get("pool"), list) else cfg.get("n_teachers")
        parts.append(f"{n} teachers of width {cfg.get('teacher_width')}")
    if r.get("experiment") == "fig78":
        parts.append(f"{len(r.get('cells', []))} cells")
    if r.get("experiment") == "ablation":
        parts.append(f"{len(r.get('variants', []))} variants")
    return "; ".join(parts) or "-"


def _epoch_counts(r: dict) -> list:
    """Epochs trained per model, from the budget of a trained study (or of its cells / variants); [] if none."""
    b = r.get("budget")
    budgets = [b] if isinstance(b, dict) else []
    for key in ("cells", "variants"):
        budgets += [c["budget"] if "budget" in c else c.get("summary", {}).get("budget") for c in r.get(key, [])]
    budgets = [x for x in budgets if isinstance(x, dict)]
    ep = [int(e) for x in budgets for t in (x.get("epochs") or {}).values() for es in t.values() for e in es]
    if not ep and isinstance(b, dict) and isinstance(b.get("epochs_by_arm"), dict):
        ep = [int(e) for e in b["epochs_by_arm"].values()]
    return ep


def _budget(r: dict) -> str:
    secs = (r.get("reproduce") or {}).get("seconds", r.get("wall_seconds", r.get("seconds")))
    b = r.get("budget")
    parts = []
    budgets = [b] if isinstance(b, dict) else []
    for key in ("cells", "variants"):
        budgets += [c["budget"] if "budget" in c else c.get("summary", {}).get("budget") for c in r.get(key, [])]
    budgets = [x for x in budgets if isinstance(x, dict)]
    if budgets and any("steps_total" in x for x in budgets):
        steps = sum(int(x.get("steps_total", 0)) for x in budgets)
        parts.append(f"{steps:,} Adam steps")
    ep = _epoch_counts(r)
    stops = sorted({s for x in budgets for t in (x.get("stopped") or {}).values() for ss in t.values() for s in ss})
    if ep:
        cap = max((int(x["full_budget_epochs"]) for x in budgets if "full_budget_epochs" in x), default=None)
        text = f"{max(ep)} epochs per model" if min(ep) == max(ep) else f"{min(ep)} to {max(ep)} epochs per model"
        if cap is not None and cap > max(ep):
            text += f" (cap {cap})"
        parts.append(text)
    if stops and stops != ["max_epochs"]:  # every model at the epoch cap says nothing beyond the epochs
        parts.append("stopped by " + " / ".join(s.replace("_", " ") for s in stops))
    if secs is not None:
        try:
            secs = float(secs)
            parts.append(f"{secs:.1f} s wall" if secs < 120 else f"{secs / 60:.1f} min wall")
        except (TypeError, ValueError):
            pass
    return "; ".join(parts) or "-"


def _protocol_epochs(name: str, proto: str):
    """The epochs the protocol itself allows (its full size), or None where the experiment trains nothing."""
    from .protocols import protocol, protocol_names

    if proto in protocol_names():
        return int(protocol(proto)["training"]["max_epochs"])
    try:
        cfg = get_experiment(name).config("full", proto)
    except Exception:  # an experiment without that size or protocol: no number to state
        return None
    training = cfg.get("training") if isinstance(cfg, dict) else None
    return int(training["epochs"]) if isinstance(training, dict) and "epochs" in training else None


def quick_note(r: dict, name: str, proto: str, size: str) -> str:
    """What a quick-size result is worth, in words ("" for any other size).

    A trained experiment says how many epochs it ran against the protocol's
    own budget ("quick: 12 epochs of the protocol's up to 1,000; not
    evidence"); the others that their sizes are reduced.
    """
    if size != "quick":
        return ""
    ep = _epoch_counts(r)
    full = _protocol_epochs(name, proto) if ep else None
    if ep and full:
        run = f"{max(ep)}" if min(ep) == max(ep) else f"{min(ep)} to {max(ep)}"
        return f"quick: {run} epochs of the protocol's up to {full:,}; not evidence"
    return "quick: reduced sizes; not evidence"


_NAN = re.compile(r"(?<![\w.])[+-]?nan(?![\w.])")
_CI = re.compile(r"CI \[(-?\d+(?:\.\d*)?(?:e[+-]?\d+)?), (-?\d+(?:\.\d*)?(?:e[+-]?\d+)?)\]")


def in_words(text: str) -> str:
    """A verdict's ``why`` with its undetermined numbers said in words.

    ``nan`` (a slope or a level fitted to fewer than two usable points)
    becomes "undetermined (too few points)"; a confidence interval that
    holds 0 gets "sign undetermined" after it, since it supports neither a
    rise nor a fall.
    """
    text = _NAN.sub("undetermined (too few points)", str(text))

    def ci(m):
        lo, hi = float(m.group(1)), float(m.group(2))
        return m.group(0) + (" (holds 0: sign undetermined)" if lo <= 0 <= hi else "")

    return _CI.sub(ci, text)


def report_rows(out: str) -> list:
    """One dict per result file: stem, experiment, claim, protocol, size, sizes, budget, verdict, why, figure."""
    rows = []
    for stem, r in collect(out):
        name = experiment_of(r)
        exp = get_experiment(name)
        try:
            v = exp.verdict(r)
        except Exception as exc:  # a result the verdict cannot read is reported, not hidden
            v = {"verdict": "unreadable", "why": f"verdict failed: {type(exc).__name__}: {exc}", "numbers": {}}
        png = f"{stem}.png"
        proto = r.get("protocol_name") or (r.get("reproduce") or {}).get("protocol") or "-"
        size = r.get("size") or (r.get("reproduce") or {}).get("size") or "-"
        rows.append({
            "stem": stem, "experiment": name, "title": _guard(exp.title_of, r, exp.title), "claim": exp.claim,
            "protocol": proto,
            "size": size, "sizes": _guard(_sizes, r), "budget": _guard(_budget, r), "verdict": v["verdict"],
            "why": in_words(v["why"]), "quick": _guard(lambda x: quick_note(x, name, str(proto), str(size)), r, ""),
            "numbers": v.get("numbers", {}), "figure": png if os.path.isfile(os.path.join(out, png)) else None,
        })
    rows += _unreadable_rows(out)
    return rows


def _guard(fn, r, default: str = "-") -> str:
    """``fn(r)``, or ``default`` for a result whose values have an unexpected type (the verdict says why)."""
    try:
        return fn(r)
    except Exception:  # a damaged value must not stop the report
        return default


def _unreadable_rows(out: str) -> list:
    """One row per JSON file in ``out`` that is not a complete result (verdict "unreadable", the reason in why)."""
    return [{"stem": os.path.splitext(fname)[0], "experiment": None, "title": "unreadable result file",
             "claim": "-", "protocol": "-", "size": "-", "sizes": "-", "budget": "-", "verdict": "unreadable", "quick": "",
             "why": f"{fname} is not a result of dynmem reproduce: {reason}", "numbers": {}, "figure": None}
            for fname, reason in scan(out)[1]]


# -- escaping: every string from a result file or a file name goes through these ---------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]~@])|(:)(?=//)|(?<=www)(\.)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _visible_controls(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}" if ord(m.group(0)) < 0x100 else f"\\u{ord(m.group(0)):04x}",
                        text)


def markdown_text(text) -> str:
    """``text`` as literal Markdown and HTML: no markup, raw HTML, link or autolink can form from it.

    Control characters (newlines included) become visible ``\\xNN`` / ``\\uNNNN``;
    the characters Markdown reads inline (backslash, backtick, ``* _ [ ] ~ @``,
    and the ``:`` of ``://`` and ``.`` of ``www.`` that start bare autolinks)
    are backslash-escaped; ``& < >`` become entities, so no HTML tag and no
    ``<...>`` autolink can form.  ``|`` is left to the table-cell escaping.
    """
    text = _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), _visible_controls(str(text)))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def markdown_code(text) -> str:
    """``text`` as a Markdown code span that nothing inside can close (a fence longer than any backtick run)."""
    text = _visible_controls(str(text))
    runs = [len(m) for m in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if runs else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def markdown_link_target(name: str) -> str:
    """A relative link to a file the report wrote beside it: percent-encoded, so no scheme or markup survives."""
    return urllib.parse.quote(os.path.basename(str(name)), safe="")


_STABLE_FIGURES = ("fig8b", "fig78")


def in_context(rows: list) -> list:
    """Verdicts that depend on another experiment's: a stable parameterisation (fig8b, fig78) removes
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
        num = mech["numbers"] if isinstance(mech.get("numbers"), dict) else {}
        outcome = num.get("outcome", "?")
        flags = {k: num[k] for k in ("C1", "C2", "C3", "C4", "C5", "C6") if isinstance(num.get(k), bool)}
        held = ", ".join(k for k, v in flags.items() if v) or "none"
        failed = ", ".join(k for k, v in flags.items() if not v) or "none"
        post = num.get("post_hoc_outcome")
        s1 = (f"Under dynmem's `mechanism` protocol ({markdown_text(mech['size'])} size"
              + ("; quick: not evidence" if mech["size"] != "full" else "") + f") the decision rule fixed before the run "
              f"says **{markdown_text(outcome)}** (criteria holding: {markdown_text(held)}; failing: "
              f"{markdown_text(failed)})"
              + (f"; read with the post-hoc criteria that replace the ill-posed ones it says "
                 f"**{markdown_text(post)}**" if post else "")
              + f". The numbers of every criterion are in the row {markdown_code(mech['stem'])} below.")
    paper = [r for r in rows if r["experiment"] == "fig2" and r["protocol"] == "paper"]
    code = [r for r in rows if r["experiment"] == "fig2" and r["protocol"] == "code"]
    s2 = ("The paper's own protocol (fig2 `paper`): **" + markdown_text(paper[0]["verdict"]) + "**: "
          + markdown_text(paper[0]["why"].split(";")[0]) + "."
          if paper else "The paper's own protocol (fig2 `paper`) has not been run here.")
    s3 = ("The public code's protocol (fig2 `code`): **" + markdown_text(code[0]["verdict"]) + "**: "
          + markdown_text(code[0]["why"].split(";")[0]) + "."
          if code else "The public code's protocol (fig2 `code`) has not been run here.")
    return lines + [s1, "", s2, "", s3, ""]


def _one_line(why: str, limit: int = 110) -> str:
    """A verdict's ``why`` on one line: cut at a word boundary to ``limit`` characters."""
    text = " ".join(str(why).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ;,") + "..."


def _shown_verdict(r: dict) -> str:
    """The verdict in bold, then the quick-size note if any (Markdown)."""
    bold = f"**{_md(r['verdict'])}**"
    return f"{bold} ({_md(r['quick'])})" if r.get("quick") else bold


def at_a_glance(rows: list) -> list:
    """The report's summary: one line per result with its verdict and the reason in words (Markdown lines)."""
    if not rows:
        return []
    lines = ["## At a glance", ""]
    quick = [r for r in rows if r.get("quick")]
    if quick:
        lines += [f"**{len(quick)} of {len(rows)} results are quick-size runs**: reduced sizes and epoch budgets that "
                  "check the pipeline end to end; their verdicts are not evidence for or against the papers "
                  "(`dynmem reproduce --full` runs the protocols' budgets).", ""]
    lines += ["| experiment | protocol | size | verdict | why, in one line |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(x) for x in (
            _code(r["stem"]), _md(r["protocol"]), _md(r["size"]), _shown_verdict(r),
            _md(_one_line(r["why"])))) + " |")
    return lines + [""]


def summary_lines(rows: list, *, width: int = 110) -> list:
    """The verdict table for a terminal: experiment, protocol, size, verdict and a one-line why per result.

    A quick-size row of a trained experiment gets a second line with its
    epochs against the protocol's budget; the caller says once that quick
    verdicts are not evidence.

    Every string from a result file is shown with its control characters
    made visible, so a crafted file cannot drive the terminal.
    """
    if not rows:
        return []
    cols = [(_visible_controls(str(r["stem"])), _visible_controls(str(r["protocol"])), _visible_controls(str(r["size"])),
             _visible_controls(str(r["verdict"]))) for r in rows]
    head = ("experiment", "protocol", "size", "verdict")
    w = [max(len(head[i]), *(len(c[i]) for c in cols)) for i in range(4)]
    fmt = "  ".join(f"{{:<{x}}}" for x in w)
    out = [fmt.format(*head) + "  why", fmt.format(*("-" * x for x in w)) + "  ---"]
    rest = max(70, width - sum(w) - 10)
    for c, r in zip(cols, rows):
        why = _visible_controls(_one_line(r["why"], rest))
        out.append(fmt.format(*c) + "  " + why)
        if r.get("quick") and "epochs" in str(r["quick"]):  # a budget to state; "reduced sizes" is the footer's
            out.append(fmt.format("", "", "", "") + "  " + _visible_controls(str(r["quick"])))
    return out


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


_md, _code = markdown_text, markdown_code


def render(rows: list) -> str:
    """The Markdown of the report."""
    lines = ["# dynmem replication report", "",
             "Generated by `dynmem reproduce --report` from the result files in this folder; every verdict is "
             "computed from the JSON beside it by the experiment's `verdict` (criteria in its docstring). "
             "Nothing is tuned to reach the paper's numbers; where a finding does not appear the row says so.", "",
             *answer(rows),
             *at_a_glance(rows),
             "## Every result", "",
             "| experiment | paper's claim | protocol | size | sizes | budget spent | measured | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(x) for x in (
            _code(r["stem"]), r["claim"], _md(r["protocol"]), _md(r["size"]), _md(r["sizes"]), _md(r["budget"]),
            _md(r["why"]), _shown_verdict(r))) + " |")
    lines.append("")
    for r in rows:
        lines += [f"## {_md(r['stem'])}: {r['title']}", "", f"{_shown_verdict(r)}: {_md(r['why'])}", ""]
        if r["figure"]:
            lines += [f"![{_md(r['stem'])}]({markdown_link_target(r['figure'])})", ""]
    return "\n".join(lines) + "\n"


def write_report(out: str, name: str = "REPORT.md") -> str:
    """Write ``out/REPORT.md`` atomically; returns its path."""
    path = os.path.join(out, name)
    atomic_write_text(path, render(in_context(report_rows(out))))
    return path

