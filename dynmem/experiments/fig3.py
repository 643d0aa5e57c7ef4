"""[WLL] Fig. 3: teacher-student filtering, with a teacher pool in which the filter can fail.

The pool (``config["pool"]``) mixes four kinds of teacher:

``rnn``
    random tanh CTRNNs of width ``teacher_width`` with a given spectral
    abscissa (exponential memory by construction when stable);
``exp``
    the linear kernel ``e^{-rate t}`` (a planted exponential teacher);
``power``
    the linear kernel ``(1 + t)^{-p}`` (a long-memory teacher);
``logrates``
    a tanh CTRNN of width ``teacher_width`` with ``W = -diag(r)``, rates ``r``
    log-spaced in [1e-3, 1], input weights 0.5 and read-out weights making
    the linearised kernel ``sum_k c_k u_k e^{-r_k t}`` a discretised
    ``int r^{p-1} e^{-r t} dr ~ t^{-p}`` (long memory up to ``t ~ 1000``).

Students of increasing width are trained on each teacher (the ``"paper"``
protocol's recurrence, loss and optimiser, on the Euler grid ``dt = 0.1``).
For every student the measurements of :func:`dynmem.experiments.study.stability_measures`
are taken (``W + beta I`` on a long test; ``shift_threshold`` is the ``beta``
at which the Euler map of ``W + beta I`` loses stability).  A teacher is
**kept** (:func:`keep_rule`) when

* it is approximated: the widest student's relative test error ``<= tol``, and
* the students' ``E_m(beta)`` family has a positive stability radius: the
  smallest ``shift_threshold`` over the widths is at least ``1 / H`` (``H =
  T dt``, the slowest rate the training window resolves) and it does not
  shrink with ``m`` (log-log slope in ``m`` >= -0.5).

(Before: "kept" meant "the widest student's ``W`` is Hurwitz", which any
trained model passes; a finite family's radius is always positive, so the
trend in ``m`` is what the rule reads.)  Every teacher's memory function
(:func:`dynmem.memory.memory_function`) and its :func:`dynmem.memory.fit_decay`
class are reported, kept or not.  The teachers' outputs are normalised to unit
variance on the training inputs, so the tolerance is a relative error.
"""

from __future__ import annotations

import functools
import math
import os
import time

import numpy as np

from ..decay import loglog_slope
from . import trained as tr
from .study import config_digest, stability_measures, sweep_tasks
from .protocols import protocol as get_protocol
from .record import Experiment

TITLE = "[WLL] Fig. 3: teacher-student filtering"
CLAIM = ("Among random RNN teachers, those that students approximate stably (approximated, positive stability "
         "radius) have exponentially decaying memory.")
PROTOCOLS = ("paper",)
LONG_MEMORY = ("power", "logrates")
SLOPE_TOL = -0.5


def _pool(n_rnn: int, abscissa, p: float) -> list:
    lo, hi = abscissa
    rnn = [{"kind": "rnn", "abscissa": lo + (hi - lo) * i / max(1, n_rnn - 1)} for i in range(n_rnn)]
    return [{"kind": "exp", "rate": 1.0}, {"kind": "power", "p": p}, {"kind": "logrates", "p": p}] + rnn


def config(size: str = "quick", protocol: str | None = None, **changes) -> dict:
    """Teachers, student widths, data and training budget (the paper protocol's optimiser and recurrence).

    ``"full"``: the planted exponential teacher, a power-law kernel and a
    log-rate RNN teacher (``p = 1.5``) beside 9 random tanh teachers of width
    256 with abscissae evenly in [-0.5, 0.5]; students of width 8..64; 2,560
    training sequences of 1,000 steps (``H = 100``); 200 epochs of Adam (lr
    0.005, batch 128).  The paper gives neither counts nor budget: these are
    dynmem's; tolerance 1e-2.  ``"quick"``: 2 random teachers of width 64, widths
    4 and 8, 150 steps (``H = 15``), 80 epochs of 128 sequences and a
    tolerance of 0.2: the paper protocol's constant learning rate does not
    reach 1e-2 in seconds, so the quick run illustrates the filter and is not
    evidence.
    """
    if (protocol or "paper") != "paper":
        raise ValueError(f"fig3 runs the 'paper' protocol only; got {protocol!r}.")
    if size == "quick":
        cfg = dict(pool=_pool(2, [-0.5, 0.5], 1.5), teacher_width=64, widths=[4, 8], n_train=128, n_test=64,
                   T=150, T_long=600, epochs=80, t_memory=[0.0, 20.0, 201], tol=0.2)
    elif size == "full":
        cfg = dict(pool=_pool(9, [-0.5, 0.5], 1.5), teacher_width=256, widths=[8, 16, 32, 64], n_train=2560,
                   n_test=1280, T=1000, T_long=4000, epochs=200, t_memory=[0.0, 200.0, 2001], tol=1e-2)
    else:
        raise ValueError(f"`size` must be 'quick' or 'full'; got {size!r}.")
    cfg.update(experiment="fig3", protocol="paper", size=size, seed=0, workdir=None)
    for k, v in changes.items():
        if k not in cfg:
            raise ValueError(f"unknown fig3 setting {k!r}; known: {sorted(cfg)}.")
        cfg[k] = v
    return cfg


def keep_rule(relative_error, thresholds, widths, *, tol: float, horizon: float) -> dict:
    """The filter: approximated (last width's relative error ``<= tol``) with a positive family stability radius.

    ``thresholds`` are the students' ``W + beta I`` instability thresholds per
    width (per unit time); the family radius is their minimum, required
    ``>= 1 / horizon``, and their log-log slope in ``m`` must be ``>= -0.5``.
    """
    rel = [float(x) for x in relative_error]
    th = [float(x) if math.isfinite(x) else 0.0 for x in thresholds]
    approximated = bool(rel[-1] <= tol)
    radius = min(th) if th else 0.0
    slope = float(loglog_slope(widths, th).slope) if len(th) >= 2 and min(th) > 0 else math.nan
    positive = bool(radius >= 1.0 / horizon and (not math.isfinite(slope) or slope >= SLOPE_TOL) and radius > 0)
    return {"approximated": approximated, "family_radius": radius, "radius_slope": slope,
            "positive_radius": positive, "kept": bool(approximated and positive)}


def _teacher(cfg, i):
    """``(target, spec)`` of pool entry ``i`` (a :class:`~dynmem.targets.Target`)."""
    from ..models import CTRNN
    from ..targets import ExponentialKernel, PowerLawKernel, TeacherRNN

    spec = dict(cfg["pool"][i])
    n = int(cfg["teacher_width"])
    rng = np.random.default_rng([int(cfg["seed"]), int(i), 31])
    if spec["kind"] == "rnn":
        model = CTRNN.random(n, 1, spectral_abscissa=float(spec["abscissa"]), activation="tanh", rng=rng)
        return TeacherRNN(model), spec
    if spec["kind"] == "logrates":
        r = np.geomspace(1e-3, 1.0, n)
        u = 0.5
        dlog = math.log(r[1] / r[0]) if n > 1 else 1.0
        c = r ** float(spec["p"]) * dlog / u
        model = CTRNN(W=-np.diag(r), U=np.full((n, 1), u), b=np.zeros(n), c=c,
                      activation="tanh")
        return TeacherRNN(model), spec
    if spec["kind"] == "power":
        return PowerLawKernel(float(spec["p"])), spec
    if spec["kind"] == "exp":
        return ExponentialKernel(float(spec["rate"])), spec
    raise ValueError(f"unknown teacher kind {spec['kind']!r}; known: rnn, logrates, power, exp.")


def _scaled(target, scale):
    from ..targets import TeacherRNN

    if isinstance(target, TeacherRNN):
        return TeacherRNN(target.model.replace(c=np.asarray(target.model.c) / scale))
    import dataclasses

    return dataclasses.replace(target, a=np.asarray(target.a, float) / scale)


def teacher_task(teacher: int, *, config: dict, rng=None) -> dict:
    """Train the students of pool entry ``teacher`` and measure them and its memory (a :func:`dynmem.sweep.run_sweep` study).

    (The parameter is not called ``index``: the sweep table has a column of that name.)
    """
    index = int(teacher)
    from ..memory import fit_decay, memory_function

    cfg = config
    proto = get_protocol("paper")
    dt = float(proto["model"]["dt"])
    target, spec = _teacher(cfg, index)
    drng = np.random.default_rng([int(cfg["seed"]), int(index), 37])
    X = drng.standard_normal((int(cfg["n_train"]), int(cfg["T"]), 1))
    Xt = drng.standard_normal((int(cfg["n_test"]), int(cfg["T"]), 1))
    Xl = drng.standard_normal((16, int(cfg["T_long"]), 1))
    raw = target.output_sequence(X, dt)
    scale = float(np.std(raw))
    out = {"index": int(index), "kind": spec["kind"], "output_std": scale,
           "abscissa": float(spec.get("abscissa", math.nan))}
    if not (math.isfinite(scale) and scale > 0):
        scale = 1.0
    target = _scaled(target, scale)
    Y, Yt, Yl = target.output_sequence(X, dt), target.output_sequence(Xt, dt), target.output_sequence(Xl, dt)
    var = float(np.var(Yt))
    data = {"X": X, "Y": Y, "Xv": Xt, "Yv": Yt}
    training = dict(proto["training"], max_epochs=int(cfg["epochs"]), snapshots=[])
    rel, thresholds, inst, eff = [], [], [], []
    for m in cfg["widths"]:
        net = tr.Net(int(m), form="free", activation="tanh", dt=dt)
        p0 = tr.init_params(net, proto["init"], np.random.default_rng([int(cfg["seed"]), int(index), int(m)]))
        ck = (os.path.join(cfg["workdir"], "ckpt", f"fig3-t{index}-m{m}.npz") if cfg.get("workdir") else None)
        fs = tr.fit(net, p0, data, training, seed=int(index) * 1000 + int(m), threshold=1e-8, checkpoint=ck,
                    key=f"fig3|{sorted((k, str(v)) for k, v in cfg.items() if k != 'workdir')}|{index}|{m}")
        e = float(tr.evaluate(net, {k: v[None] for k, v in fs.best_params.items()}, Xt, Yt, tr.time_weights(Xt.shape[1], 0.0))[0])
        W = fs.best_params["M"]
        meas = stability_measures(net, fs.best_params, W, (Xl, Yl), window=int(cfg["T"]), seed=int(index) * 100 + int(m))
        rel.append(e / var if var > 0 else math.inf)
        thresholds.append(float(meas["shift_threshold"]))
        inst.append(float(meas["instability_beta"]))
        eff.append(float(meas["effective_margin"]))
        out[f"m{m}/steps"] = int(fs.steps)
    rule = keep_rule(rel, thresholds, [int(m) for m in cfg["widths"]], tol=float(cfg["tol"]),
                     horizon=float(cfg["T"]) * dt)
    t = np.linspace(*cfg["t_memory"][:2], int(cfg["t_memory"][2]))
    mem = memory_function(target, t)
    fit = fit_decay(t, mem.values)
    out.update(
        relative_error=np.asarray(rel), shift_threshold=np.asarray(thresholds), instability_beta=np.asarray(inst),
        effective_margin=np.asarray(eff), **rule,
        memory=np.asarray(mem.values, dtype=float), t=t, decay_kind=str(fit.kind),
        decay_rate=float(fit.rate) if fit.rate is not None and np.isfinite(fit.rate) else math.nan,
    )
    return out


def run(config: dict, *, executor=None, progress: bool = False) -> dict:
    """Every teacher of the pool, its students and memory (:func:`teacher_task`, through :mod:`dynmem.sweep`), and the summary."""
    start = time.perf_counter()
    fn = functools.partial(teacher_task, config=config)
    idx = list(range(len(config["pool"])))
    rows = sweep_tasks(fn, [{"teacher": i} for i in idx], workdir=config.get("workdir"),
                       store=f"store-fig3-{config_digest(config)}", executor=executor, progress=progress,
                       label="[dynmem.experiments] fig3 teachers")
    teachers = []
    for r in rows:
        fl = lambda key: [float(v) for v in np.asarray(r[key]).ravel()]
        teachers.append({
            "index": int(r["index"]), "kind": str(r["kind"]), "spec": dict(config["pool"][int(r["index"])]),
            "abscissa": float(r["abscissa"]),
            "relative_error": fl("relative_error"), "shift_threshold": fl("shift_threshold"),
            "instability_beta": fl("instability_beta"), "effective_margin": fl("effective_margin"),
            "approximated": bool(r["approximated"]), "family_radius": float(r["family_radius"]),
            "radius_slope": float(r["radius_slope"]), "positive_radius": bool(r["positive_radius"]),
            "kept": bool(r["kept"]), "decay_kind": str(r["decay_kind"]), "decay_rate": float(r["decay_rate"]),
            "memory": fl("memory"),
        })
    t = np.linspace(*config["t_memory"][:2], int(config["t_memory"][2]))
    summary = summarise(teachers)
    return {"experiment": "fig3", "protocol_name": "paper", "size": config["size"], "config": config,
            "protocol": get_protocol("paper"), "t": [float(v) for v in t], "teachers": teachers, "summary": summary,
            "seconds": time.perf_counter() - start}


def summarise(teachers: list) -> dict:
    """Counts by kind and decay class, kept and rejected (recomputed from the per-teacher rows)."""
    kept = [t for t in teachers if t["kept"]]
    rej = [t for t in teachers if not t["kept"]]
    long_ = [t for t in teachers if t["kind"] in LONG_MEMORY]
    return {
        "n_teachers": len(teachers), "n_kept": len(kept), "n_rejected": len(rej),
        "kept_exponential": sum(t["decay_kind"] == "exponential" for t in kept),
        "rejected_exponential": sum(t["decay_kind"] == "exponential" for t in rej),
        "n_long_memory": len(long_), "long_memory_kept": sum(t["kept"] for t in long_),
        "long_memory_rejected_for_radius": sum((not t["positive_radius"]) for t in long_),
        "kinds_kept": sorted({t["decay_kind"] for t in kept}),
        "kinds_rejected": sorted({t["decay_kind"] for t in rej}),
        "teacher_kinds_kept": sorted({t["kind"] for t in kept}),
        "teacher_kinds_rejected": sorted({t["kind"] for t in rej}),
    }


def verdict(result: dict) -> dict:
    """From the teachers' rows: the filter keeps only exponential memories and rejects the long-memory teachers.

    ``not informative``: nothing kept, or no long-memory teacher in the pool;
    ``reproduced``: every kept teacher's memory is exponential and every
    long-memory teacher is rejected; ``partly``: one of the two; ``not
    reproduced``: neither.
    """
    s = summarise(result["teachers"])
    if s["n_kept"] == 0:
        v, why = "not informative", "no teacher was kept (none approximated with a positive family stability radius)"
    elif s["n_long_memory"] == 0:
        v, why = "not informative", "the pool holds no long-memory teacher: the filter cannot fail"
    else:
        all_exp = s["kept_exponential"] == s["n_kept"]
        long_rejected = s["long_memory_kept"] == 0
        v = "reproduced" if (all_exp and long_rejected) else ("partly" if (all_exp or long_rejected) else "not reproduced")
        why = (f"{s['kept_exponential']} of {s['n_kept']} kept teachers decay exponentially ({s['teacher_kinds_kept']}); "
               f"long-memory teachers kept: {s['long_memory_kept']} of {s['n_long_memory']} "
               f"({s['long_memory_rejected_for_radius']} lack a positive radius)")
    why += f"; rejected: {s['n_rejected']} ({s['rejected_exponential']} of them exponential)"
    return {"verdict": v, "why": why, "numbers": dict(s)}


def _teacher_name(tch: dict) -> str:
    return f"#{tch['index']} " + (rf"RNN $\alpha = {tch['abscissa']:.2f}$" if tch["kind"] == "rnn" else tch["kind"])


def plot(result: dict, path: str) -> None:
    """Teachers' memories (solid: kept, dotted: rejected), the students' errors and stability thresholds in m.

    One colour per teacher in every panel; each panel's legend explains its
    line styles and markers, and a style that does not occur (no teacher
    kept, or none rejected) is not in the key.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from ..io import atomic_savefig
    from ..plotting import finish_figure

    teachers = result["teachers"]
    fig, (ax, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 5.4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {tch["index"]: colours[i % len(colours)] for i, tch in enumerate(teachers)}
    any_kept = any(tch["kept"] for tch in teachers)
    any_rejected = not all(tch["kept"] for tch in teachers)
    t = np.asarray(result["t"], float)
    for tch in teachers:
        mem = np.asarray(tch["memory"], float)
        ok = mem > 0
        ax.semilogy(t[ok], mem[ok], "-" if tch["kept"] else ":", color=colour[tch["index"]],
                    lw=1.4 if tch["kept"] else 1.0,
                    label=f"{_teacher_name(tch)}, {'kept' if tch['kept'] else 'rejected'}: {tch['decay_kind']}")
    if any_kept:
        key = "solid: kept, dotted: rejected" if any_rejected else "solid: kept"
    else:
        key = "no teacher kept: all dotted (rejected)"
    ax.set(xlabel="$t$", ylabel="teacher memory $M(t)$", title=f"teacher memories ({key})")
    ax.legend(fontsize=7, title="teacher, filter: memory class", title_fontsize=7)

    widths = np.asarray(result["config"]["widths"], float)
    for tch in teachers:
        err = np.maximum(np.asarray(tch["relative_error"], float), 1e-16)
        ax2.loglog(widths, err, "o-" if tch["kept"] else "x:", color=colour[tch["index"]])
    tol = float(result["config"]["tol"])
    ax2.axhline(tol, color="k", lw=0.8, ls="--")
    ax2.set(xlabel="student width $m$", ylabel="relative test error", title="students' test error")
    ax2.legend(handles=[h for h, wanted in (
        (Line2D([], [], color="0.3", marker="o", ls="-", label="teacher kept"), any_kept),
        (Line2D([], [], color="0.3", marker="x", ls=":", label="teacher rejected"), any_rejected),
        (Line2D([], [], color="k", lw=0.8, ls="--", label=f"tolerance {tol:g}"), True)) if wanted],
        fontsize=7, title="colours: teachers as on the left", title_fontsize=7)

    for tch in teachers:
        th = np.asarray(tch["shift_threshold"], float)
        ok = np.isfinite(th) & (th > 0)
        ax3.loglog(widths[ok], th[ok], "o-" if tch["kept"] else "x:", color=colour[tch["index"]],
                   label=_teacher_name(tch))
    H = float(result["config"]["T"]) * float(result["protocol"]["model"]["dt"])
    ax3.axhline(1.0 / H, color="k", lw=0.8, ls="--", label=f"floor $1/H$, $H = {H:g}$")
    ax3.set(xlabel="student width $m$", ylabel=r"$\beta$ where $W + \beta I$ loses stability (per unit time)",
            title="students' stability thresholds")
    ax3.legend(fontsize=7, title="o: kept, x: rejected", title_fontsize=7)
    finish_figure(fig, result, extra=TITLE)
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)

EXPERIMENT = Experiment(name="fig3", title=TITLE, claim=CLAIM, protocols=PROTOCOLS, config=config, run=run,
                        plot=plot, verdict=verdict)
