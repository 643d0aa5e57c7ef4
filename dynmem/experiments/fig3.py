"""[WLL] Fig. 3: teacher-student filtering.

Random tanh CTRNN teachers of width 256 with a spread of spectral abscissae
(some linearly unstable) produce targets; students of increasing width are
trained on them (the ``"paper"`` protocol's recurrence, loss and optimiser,
on the teacher's own Euler grid).  A teacher is *kept* when the widest student
approximates it (relative test error ``E / Var(Y) <= tol``) and that student
has a positive complex stability radius (its ``W`` is Hurwitz).  The claim:
the kept teachers' memories decay exponentially.  Every teacher's memory
function (:func:`dynmem.memory.memory_function`, exact flow, all default
amplitudes) and its :func:`dynmem.memory.fit_decay` verdict are reported,
kept or not, so the filter's effect is visible.

The teachers' outputs are normalised to unit variance on the training inputs
(``c`` rescaled), so the tolerance is a relative error.
"""

from __future__ import annotations

import functools
import math
import os
import time

import numpy as np

from . import trained as tr
from .study import config_digest, sweep_tasks
from .protocols import protocol as get_protocol

TITLE = "[WLL] Fig. 3: teacher-student filtering"
CLAIM = ("Among random RNN teachers, those that students approximate stably (approximated, positive stability "
         "radius) have exponentially decaying memory.")
PROTOCOLS = ("paper",)


def config(size: str = "quick", protocol: str | None = None, **changes) -> dict:
    """Teachers, student widths, data and training budget (the paper protocol's optimiser and recurrence).

    ``"full"``: 12 teachers of width 256 with spectral abscissae evenly in
    [-0.5, 0.5], students of width 8..64, 2,560 training sequences of 100
    steps (``dt = 0.1``), 200 epochs of Adam (lr 0.005, batch 128).  The
    paper does not give the counts or the budget: these are dynmem's.
    """
    if (protocol or "paper") != "paper":
        raise ValueError(f"fig3 runs the 'paper' protocol only; got {protocol!r}.")
    if size == "quick":
        cfg = dict(n_teachers=4, teacher_width=64, abscissa=[-0.5, 0.5], widths=[4, 8], n_train=128, n_test=64,
                   T=60, epochs=10, t_memory=[0.0, 20.0, 201])
    elif size == "full":
        cfg = dict(n_teachers=12, teacher_width=256, abscissa=[-0.5, 0.5], widths=[8, 16, 32, 64], n_train=2560,
                   n_test=1280, T=100, epochs=200, t_memory=[0.0, 60.0, 601])
    else:
        raise ValueError(f"`size` must be 'quick' or 'full'; got {size!r}.")
    cfg.update(experiment="fig3", protocol="paper", size=size, tol=1e-2, seed=0, workdir=None)
    for k, v in changes.items():
        if k not in cfg:
            raise ValueError(f"unknown fig3 setting {k!r}; known: {sorted(cfg)}.")
        cfg[k] = v
    return cfg


def _teacher(cfg, i):
    from ..models import CTRNN

    lo, hi = cfg["abscissa"]
    a = lo + (hi - lo) * i / max(1, cfg["n_teachers"] - 1)
    return CTRNN.random(int(cfg["teacher_width"]), 1, spectral_abscissa=float(a), activation="tanh",
                        rng=np.random.default_rng([int(cfg["seed"]), int(i), 31])), float(a)


def teacher_task(teacher: int, *, config: dict, rng=None) -> dict:
    """Train the students of teacher number ``teacher`` and measure its memory (a :func:`dynmem.sweep.run_sweep` study).

    (The parameter is not called ``index``: the sweep table has a column of that name.)
    """
    index = int(teacher)
    from ..memory import fit_decay, memory_function
    from ..spectra import stability_radius
    from ..targets import TeacherRNN

    cfg = config
    proto = get_protocol("paper")
    dt = float(proto["model"]["dt"])
    teacher, a = _teacher(cfg, index)
    drng = np.random.default_rng([int(cfg["seed"]), int(index), 37])
    X = drng.standard_normal((int(cfg["n_train"]), int(cfg["T"]), 1))
    Xt = drng.standard_normal((int(cfg["n_test"]), int(cfg["T"]), 1))
    raw = TeacherRNN(teacher).output_sequence(X, dt)
    scale = float(np.std(raw))
    out = {"index": int(index), "abscissa": a, "output_std": scale}
    if not (math.isfinite(scale) and scale > 0):
        out.update(kept=False, reason="teacher output not finite or zero")
        scale = 1.0
    teacher = teacher.replace(c=np.asarray(teacher.c) / scale)
    Y = TeacherRNN(teacher).output_sequence(X, dt)
    Yt = TeacherRNN(teacher).output_sequence(Xt, dt)
    var = float(np.var(Yt))
    data = {"X": X, "Y": Y, "Xv": Xt, "Yv": Yt}
    training = dict(proto["training"], max_epochs=int(cfg["epochs"]), snapshots=[])
    rel, radius = [], []
    for m in cfg["widths"]:
        net = tr.Net(int(m), form="free", activation="tanh", dt=dt)
        p0 = tr.init_params(net, proto["init"], np.random.default_rng([int(cfg["seed"]), int(index), int(m)]))
        ck = (os.path.join(cfg["workdir"], "ckpt", f"fig3-t{index}-m{m}.npz") if cfg.get("workdir") else None)
        fs = tr.fit(net, p0, data, training, seed=int(index) * 1000 + int(m), threshold=1e-8, checkpoint=ck,
                    key=f"fig3|{sorted((k, str(v)) for k, v in cfg.items() if k != 'workdir')}|{index}|{m}")
        e = float(tr.evaluate(net, {k: v[None] for k, v in fs.best_params.items()}, Xt, Yt, tr.time_weights(Xt.shape[1], 0.0))[0])
        W = fs.best_params["M"]
        mg = -float(np.linalg.eigvals(W).real.max())
        rel.append(e / var if var > 0 else math.inf)
        radius.append(float(stability_radius(W).value) if mg > 0 else 0.0)
        out[f"m{m}/steps"] = int(fs.steps)
    t = np.linspace(*cfg["t_memory"][:2], int(cfg["t_memory"][2]))
    mem = memory_function(teacher, t)
    fit = fit_decay(t, mem.values)
    approximated = bool(rel[-1] <= float(cfg["tol"]))
    stable = bool(radius[-1] > 0)
    W_t = np.asarray(teacher.W)
    out.update(
        relative_error=np.asarray(rel), student_radius=np.asarray(radius), approximated=approximated,
        student_stable=stable, kept=bool(approximated and stable),
        teacher_margin=-float(np.linalg.eigvals(W_t).real.max()),
        memory=np.asarray(mem.values, dtype=float), t=t, decay_kind=str(fit.kind),
        decay_rate=float(fit.rate) if fit.rate is not None and np.isfinite(fit.rate) else math.nan,
    )
    return out


def run(config: dict, *, executor=None, progress: bool = False) -> dict:
    start = time.perf_counter()
    fn = functools.partial(teacher_task, config=config)
    idx = list(range(int(config["n_teachers"])))
    rows = sweep_tasks(fn, [{"teacher": i} for i in idx], workdir=config.get("workdir"),
                       store=f"store-fig3-{config_digest(config)}", executor=executor, progress=progress,
                       label="[dynmem.experiments] fig3 teachers")
    teachers = []
    for r in rows:
        teachers.append({
            "index": int(r["index"]), "abscissa": float(r["abscissa"]), "teacher_margin": float(r["teacher_margin"]),
            "relative_error": [float(v) for v in np.asarray(r["relative_error"]).ravel()],
            "student_radius": [float(v) for v in np.asarray(r["student_radius"]).ravel()],
            "approximated": bool(r["approximated"]), "student_stable": bool(r["student_stable"]),
            "kept": bool(r["kept"]), "decay_kind": str(r["decay_kind"]), "decay_rate": float(r["decay_rate"]),
            "memory": [float(v) for v in np.asarray(r["memory"]).ravel()],
        })
    kept = [t for t in teachers if t["kept"]]
    t = np.linspace(*config["t_memory"][:2], int(config["t_memory"][2]))
    summary = {
        "n_teachers": len(teachers), "n_kept": len(kept),
        "kept_exponential": sum(t_["decay_kind"] == "exponential" for t_ in kept),
        "rejected_exponential": sum(t_["decay_kind"] == "exponential" for t_ in teachers if not t_["kept"]),
        "n_rejected": len(teachers) - len(kept),
        "kinds_kept": sorted({t_["decay_kind"] for t_ in kept}),
        "kinds_rejected": sorted({t_["decay_kind"] for t_ in teachers if not t_["kept"]}),
    }
    return {"experiment": "fig3", "protocol_name": "paper", "size": config["size"], "config": config,
            "protocol": get_protocol("paper"), "t": [float(v) for v in t], "teachers": teachers, "summary": summary,
            "seconds": time.perf_counter() - start}


def verdict(result: dict) -> dict:
    """Reproduced when at least one teacher is kept and every kept teacher's memory is classified exponential."""
    s = result["summary"]
    if s["n_kept"] == 0:
        v, why = "not reproduced", "no teacher was kept (none approximated with a stable student)"
    elif s["kept_exponential"] == s["n_kept"]:
        v, why = "reproduced", f"{s['kept_exponential']} of {s['n_kept']} kept teachers decay exponentially"
    elif s["kept_exponential"] > 0:
        v, why = "partly", f"{s['kept_exponential']} of {s['n_kept']} kept teachers decay exponentially"
    else:
        v, why = "not reproduced", f"0 of {s['n_kept']} kept teachers decay exponentially ({s['kinds_kept']})"
    why += f"; rejected: {s['n_rejected']} ({s['rejected_exponential']} of them exponential too)"
    return {"verdict": v, "why": why, "numbers": dict(s)}


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_savefig

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    t = np.asarray(result["t"], float)
    for tch in result["teachers"]:
        mem = np.asarray(tch["memory"], float)
        ok = mem > 0
        style = "-" if tch["kept"] else ":"
        ax.semilogy(t[ok], mem[ok], style, lw=1.2 if tch["kept"] else 0.8,
                    label=f"#{tch['index']} a={tch['abscissa']:.2f} {'kept' if tch['kept'] else 'rejected'}: {tch['decay_kind']}")
    ax.set(xlabel="t", ylabel="teacher memory M(t)", title="teacher memories (solid: kept)")
    ax.legend(fontsize=6)
    widths = result["config"]["widths"]
    for tch in result["teachers"]:
        ax2.loglog(widths, np.maximum(tch["relative_error"], 1e-16), "o-" if tch["kept"] else "x:")
    ax2.axhline(result["config"]["tol"], color="k", lw=0.8, ls="--")
    ax2.set(xlabel="student width m", ylabel="relative test error", title="students (dashed: tolerance)")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)
