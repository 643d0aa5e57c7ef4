r"""The trained-RNN studies behind Figs. 2, 4, 7 and 8 of [WLL], under a named protocol.

One *study* trains residual RNNs (:mod:`dynmem.experiments.trained`) of
several widths on a target, for several seeds, under one protocol
(:mod:`dynmem.experiments.protocols`), then measures for every trained
model (and for the snapshots taken along training):

* the achieved error ``E_m(0)`` (test error on the evaluation horizon);
* the spectral margin ``-alpha(W_m)`` of the evaluated recurrent matrix;
* the perturbation curve ``E_m(beta)`` under the protocol's rule, its
  first-unstable beta and blow-up beta (``E_m(beta) > K E_m(0)``);
* the crossings of consecutive widths' curves.

Execution: the units of work are tasks of :func:`dynmem.sweep.run_sweep`
(one per target, width and seed under ``"paper"``, whose widths are
independent; one per target and seed under ``"code"``, whose early-stopping
threshold links each width to the previous one).  Each (target, width, seed)
training run checkpoints into ``<workdir>/ckpt/`` so an interrupted run
resumes mid-training; the sweep store in ``<workdir>/store`` keeps finished
tasks.  The merge is deterministic: the same numbers serially or on a pool.

Findings are computed from the data with stated criteria
(:func:`margin_error_fit`, :func:`findings`); nothing is tuned.
"""

from __future__ import annotations

import functools
import math
import os
import time

import numpy as np
import scipy.stats

from ..decay import loglog_slope
from ..margins import discrete_margin, discrete_stability_radius, effective_margin, modal_decomposition, shift_threshold
from ..spectra import stability_radius
from ..stability import crossings_of
from . import model_line
from . import trained as tr
from .protocols import protocol as get_protocol

__all__ = ["run_study", "study_config", "sweep_tasks", "config_digest", "margin_error_fit", "findings", "plot_study", "SLOPE_TOL",
           "stability_measures", "SHIFT_FACTORS", "INSTABILITY"]

_PROGRESS_ENV = "DYNMEM_EXPERIMENT_PROGRESS"  # progress reaches pool workers without entering the sweep's identity
SLOPE_TOL = 0.3  # a log-log slope below -SLOPE_TOL "shrinks" (as dynmem.stability.stability_boundary)


def study_config(figure: str, protocol: str, size: str, **changes) -> dict:
    """The config of one study: protocol name and overrides, targets, widths, seeds, sizes.

    ``size="full"`` is the protocol's own budget; ``"quick"`` a small run of
    the same recipe (fewer, shorter, smaller) that finishes in seconds; the
    config records every reduction.
    """
    proto = get_protocol(protocol)
    cfg = {
        "figure": figure, "protocol": protocol, "size": size, "overrides": {},
        "targets": ["pol", "exp"] if figure in ("fig2", "fig8b") else ["pol"],
        "widths": list(proto["widths"]), "seeds": list(proto["seeds"]), "data_scale": 1.0,
        "activation": None, "parameterisation": figure if figure in proto["parameterisation"] else "fig2",
        "time_cap": None, "workdir": None,
    }
    if size == "quick":
        cfg.update(widths=[4, 8], seeds=[0, 1], data_scale=0.01 if protocol == "paper" else 0.002,
                   overrides={"training__max_epochs": 12, "training__snapshots": [1, 3, 6, 12],
                              "perturbation__repeats": 3})
        if protocol == "paper":
            cfg["overrides"]["training__batch_size"] = 32
        else:
            cfg["overrides"]["training__batch_size"] = 64
            cfg["overrides"]["data__n_val"] = 12800
    elif size != "full":
        raise ValueError(f"`size` must be 'quick' or 'full'; got {size!r}.")
    if protocol == "code" and size == "full":
        # scripts/lf_parallelized.sh (the code's own "full" script) draws 3 repeats per beta;
        # scripts/lf_all.sh draws 30.  3 is used here (cost); recorded in the result.
        cfg["overrides"]["perturbation__repeats"] = 3
    for k, v in changes.items():
        if k == "overrides":
            cfg["overrides"] = {**cfg["overrides"], **v}
        elif k in cfg:
            cfg[k] = v
        else:
            raise ValueError(f"unknown study setting {k!r}; known: {sorted(cfg)}.")
    return cfg


def _protocol_of(cfg: dict) -> dict:
    return get_protocol(cfg["protocol"], **cfg["overrides"])


def _training_overrides(cfg) -> list:
    """The overrides that change training (not the perturbation study): they identify a checkpoint."""
    return sorted((k, repr(v)) for k, v in cfg["overrides"].items() if not (k == "perturbation" or k.startswith("perturbation__")))


def _ckpt_path(cfg, target, m, seed):
    if not cfg.get("workdir"):
        return None
    from ..io import short_digest

    act = cfg.get("activation") or "default"
    digest = short_digest(repr((_training_overrides(cfg), cfg["data_scale"], cfg["parameterisation"])), 10)
    name = f"{cfg['figure']}-{cfg['protocol']}-{cfg['parameterisation']}-{act}-{target}-m{m}-s{seed}-{digest}.npz"
    return os.path.join(cfg["workdir"], "ckpt", name)


def _train_one(cfg, proto, net, data, target_name, m, seed, threshold, progress):
    """Train one (target, width, seed); returns the FitState (resumed from its checkpoint if any)."""
    init = proto["init"]
    p0 = tr.init_params(net, init, np.random.default_rng([int(seed), int(m), 5]))
    key = f"{cfg['figure']}|{cfg['protocol']}|{_training_overrides(cfg)}|{cfg['data_scale']}|" \
          f"{net.to_dict()}|{target_name}|{m}|{seed}|{threshold}"
    return tr.fit(net, p0, data, proto["training"], seed=int(seed) * 1000 + int(m), threshold=threshold,
                  checkpoint=_ckpt_path(cfg, target_name, m, seed), key=key, progress=progress,
                  label=f"{cfg['figure']}/{cfg['protocol']} {target_name} m={m} seed={seed}",
                  time_budget=cfg.get("time_cap"))


SHIFT_FACTORS = (0.5, 0.9, 1.1, 1.5, 2.0, 3.0)
INSTABILITY = 1e3   # relative MSE on the long test above which a perturbed model counts as unstable
LONG_T_MAX = 4096   # steps of the long test (cap)
LONG_N = 32         # sequences of the long test


def _free_net(net: tr.Net) -> tr.Net:
    return tr.Net(hidden=net.hidden, form="free", g="identity", activation=net.activation, dt=net.dt,
                  output_bias=net.output_bias, inputs=net.inputs)


def stability_measures(net, params: dict, W: np.ndarray, long_xy, *, window: int, seed: int) -> dict:
    r"""The measurements that can see the theorem's mechanism, for one trained residual model.

    All margins are per unit time (divided by ``dt``) so they compare with
    ``-alpha(W)``:

    * ``euler_margin``: ``(1 - rho(I + dt W)) / dt``, the Euler model's margin;
    * ``effective_margin``: the slowest mode carrying >= 1e-3 of the
      linearised kernel's l1 mass on the training window
      (:func:`dynmem.margins.effective_margin`), ``l1_residues`` its ``sum |R_k|``;
    * ``shift_threshold``: ``beta*``, where ``W + beta I`` destabilises the Euler map;
    * ``radius_discrete``: the complex stability radius of ``I + dt W``, over ``dt``;
    * ``shift_relmse``: relative MSE of ``W + beta I`` on a long test
      (``T dt >= 30 / beta*`` up to ``LONG_T_MAX`` steps) at
      ``beta = f beta*`` for ``f`` in ``SHIFT_FACTORS``, beside
      ``shift_random_relmse``, the max over 3 random block-spectral draws of
      the same norms; ``instability_beta`` (``_random``): the first such
      beta with relative MSE > ``INSTABILITY`` (the *instability threshold*,
      unlike the protocol's blow-up rule ``E > K E_m(0)``, which measures
      sensitivity).
    """
    dt = float(net.dt)
    dec = modal_decomposition(W, params["U"], params["c"], dt=dt)
    eff = effective_margin(dec, window)
    beta = shift_threshold(W, dt=dt)
    A = np.eye(W.shape[0]) + dt * W
    out = {"euler_margin": discrete_margin(W, dt=dt) / dt, "effective_margin": eff.value / dt,
           "l1_residues": eff.l1_residues, "shift_threshold": beta,
           "radius_discrete": discrete_stability_radius(A) / dt}
    nan = [math.nan] * len(SHIFT_FACTORS)
    out.update(shift_factors=list(SHIFT_FACTORS), shift_relmse=nan, shift_random_relmse=nan,
               instability_beta=math.nan, instability_beta_random=math.nan, long_T=0)
    if long_xy is None or not (math.isfinite(beta) and beta > 0):
        return out
    X, Y = long_xy
    T = int(min(X.shape[1], max(100, math.ceil(30.0 / (beta * dt)))))
    X, Y = X[:, :T], Y[:, :T]
    power = float(np.mean(Y * Y))
    free = _free_net(net)
    base = {"M": np.asarray(W, float), "U": params["U"], "b": params["b"], "c": params["c"]}
    if net.output_bias:
        base["d"] = params["d"]
    dirs = tr.directions(free, "block-spectral", 3, np.random.default_rng([int(seed), 13]))
    ones = np.ones(T)
    sh, rnd = [], []
    for f in SHIFT_FACTORS:
        b = f * beta
        shifted = {k: np.asarray(v, float)[None] for k, v in base.items()}
        shifted["M"] = shifted["M"] + b * np.eye(W.shape[0])[None]
        sh.append(float(tr.evaluate(free, shifted, X, Y, ones)[0]) / power)
        stacked = {k: np.asarray(v, float)[None] + b * dirs[k] for k, v in base.items()}
        rnd.append(float(np.max(tr.evaluate(free, stacked, X, Y, ones))) / power)
    first = [f * beta for f, e in zip(SHIFT_FACTORS, sh) if not e <= INSTABILITY]
    firstr = [f * beta for f, e in zip(SHIFT_FACTORS, rnd) if not e <= INSTABILITY]
    out.update(shift_relmse=sh, shift_random_relmse=rnd, instability_beta=first[0] if first else math.inf,
               instability_beta_random=firstr[0] if firstr else math.inf, long_T=T)
    return out


_NEW_KEYS = ("euler_margin", "effective_margin", "l1_residues", "shift_threshold", "radius_discrete",
             "instability_beta", "instability_beta_random", "long_T")


def _measure(cfg, proto, net, fs, data, seed, m) -> dict:
    """Everything measured on one trained model: perturbation curve, spectra, margins, ``W + beta I``, snapshots."""
    wt2 = tr.time_weights(data["Xt"].shape[1], proto["training"]["time_weight_power"])
    swap = bool(proto.get("identity_swap"))
    pst = tr.perturbation_study(net, fs.best_params, proto["perturbation"], data["Xt"], data["Yt"], wt2,
                                identity_swap=swap, seed=int(seed) * 1000 + int(m))
    g_eval = "identity" if (swap and net.g == "relu" and net.form != "free") else None

    def evaluated(p):
        return {**p, "w": np.maximum(p["w"], 0.0)} if g_eval else p

    W = tr.recurrent_matrix(net, evaluated(fs.best_params), g=g_eval)
    radius = float(stability_radius(W).value) if pst["margin"] > 0 else 0.0
    window = int(data["X"].shape[1])
    sm = stability_measures(net, evaluated(fs.best_params), W, data.get("long"), window=window,
                            seed=int(seed) * 1000 + int(m))
    snap_e, snap_m, snap_ep, snap_eff, snap_eul = [], [], [], [], []
    for ep in sorted(fs.snapshots):
        sp = evaluated(fs.snapshots[ep])
        e0 = float(tr.evaluate(net, {k: v[None] for k, v in sp.items()}, data["Xt"], data["Yt"], wt2, g=g_eval)[0])
        Ws = tr.recurrent_matrix(net, sp, g=g_eval)
        snap_ep.append(ep)
        snap_e.append(e0)
        snap_m.append(-float(np.linalg.eigvals(Ws).real.max()))
        snap_eff.append(effective_margin(modal_decomposition(Ws, sp["U"], sp["c"], dt=net.dt), window).value / net.dt)
        snap_eul.append(discrete_margin(Ws, dt=net.dt) / net.dt)
    h = fs.history
    out = {
        f"m{m}/betas": pst["betas"], f"m{m}/errors": pst["errors"], f"m{m}/shell_max": pst["shell_max"],
        f"m{m}/ball_sup": pst["ball_sup"], f"m{m}/unstable": pst["unstable"], f"m{m}/error0": pst["error0"],
        f"m{m}/margin": pst["margin"], f"m{m}/radius": radius, f"m{m}/first_unstable": pst["first_unstable"],
        f"m{m}/blowup": pst["blowup"], f"m{m}/n_diverged": pst["n_diverged"],
        f"m{m}/epochs": int(fs.epochs), f"m{m}/steps": int(fs.steps), f"m{m}/stopped": fs.stopped,
        f"m{m}/best_val": float(fs.best_val), f"m{m}/last_val": float(fs.last_val),
        f"m{m}/train_seconds": float(fs.seconds), f"m{m}/resumed": int(fs.resumed),
        f"m{m}/history": h if h.size else np.zeros((0, 6)),
        f"m{m}/snap_epochs": np.asarray(snap_ep, dtype=float), f"m{m}/snap_error0": np.asarray(snap_e, dtype=float),
        f"m{m}/snap_margin": np.asarray(snap_m, dtype=float),
        f"m{m}/snap_effective_margin": np.asarray(snap_eff, dtype=float),
        f"m{m}/snap_euler_margin": np.asarray(snap_eul, dtype=float),
        f"m{m}/test_power": float(np.mean(data["Yt"] ** 2)),
        f"m{m}/shift_factors": np.asarray(sm["shift_factors"], float),
        f"m{m}/shift_relmse": np.asarray(sm["shift_relmse"], float),
        f"m{m}/shift_random_relmse": np.asarray(sm["shift_random_relmse"], float),
    }
    for k in _NEW_KEYS:
        out[f"m{m}/{k}"] = float(sm[k])
    return out


def study_task(target: str, seed: int, width: int = 0, *, config: dict, rng=None) -> dict:
    """One sweep task: train and measure one (target, seed) for one width (``width > 0``) or for all widths in order.

    The sweep's ``rng`` is not used: every random draw comes from ``seed``,
    so the numbers do not depend on the executor.
    """
    cfg = config
    proto = _protocol_of(cfg)
    target_obj = tr.make_target(proto["targets"][target])
    data = tr.make_data(proto, target_obj, int(seed), scale=float(cfg["data_scale"]))
    data["long"] = tr.long_test(proto, target_obj, int(seed), LONG_T_MAX if cfg["size"] == "full" else 512,
                                LONG_N if cfg["size"] == "full" else 8)
    widths = [int(width)] if width else [int(m) for m in cfg["widths"]]
    stop = proto["training"]["stop"]
    out: dict = {"target": target, "seed": int(seed)}
    thr = float(stop["first"]) if stop["kind"] == "width-to-width" else float(stop["value"])
    progress = bool(cfg.get("progress")) or os.environ.get(_PROGRESS_ENV) == "1"
    for m in widths:
        net = tr.net_from_protocol(proto, cfg["parameterisation"], m, activation=cfg.get("activation"))
        t0 = time.perf_counter()
        fs = _train_one(cfg, proto, net, data, target, m, seed, thr, progress)
        out.update(_measure(cfg, proto, net, fs, data, seed, m))
        out[f"m{m}/threshold"] = thr
        out[f"m{m}/task_seconds"] = time.perf_counter() - t0
        if stop["kind"] == "width-to-width":
            thr = float(stop["factor"]) * float(fs.best_val)  # the code's train.py reads the best checkpoint's loss
        if progress:
            par = (proto.get("parameterisation") or {}).get(cfg["parameterisation"]) or {}
            act = cfg.get("activation") or (proto.get("model") or {}).get("activation", "tanh")
            cell = f"{act}, W {par.get('form', cfg['parameterisation'])}" + \
                (f" {par['g']}" if par.get("g") not in (None, "identity") else "")
            model_line(f"[dynmem.experiments] {cfg['figure']}/{cfg['protocol']} ({cell}) {target} m={m} seed={seed}: "
                       f"{fs.epochs} epochs ({fs.stopped}), val {fs.best_val:.3g}, E(0) {out[f'm{m}/error0']:.3g}, "
                       f"margin {out[f'm{m}/margin']:.3g}, {time.perf_counter() - t0:.0f} s")
    return out


def _tasks(cfg, proto):
    if proto["training"]["stop"]["kind"] == "width-to-width":
        return [dict(target=t, seed=int(s), width=0) for t in cfg["targets"] for s in cfg["seeds"]]
    return [dict(target=t, seed=int(s), width=int(m)) for t in cfg["targets"] for m in cfg["widths"]
            for s in cfg["seeds"]]


def config_digest(cfg) -> str:
    """A short digest of a config (without its workdir): names the sweep store of that config (:func:`dynmem.io.config_digest`)."""
    from ..io import config_digest as digest

    return digest(cfg, length=12, exclude=("workdir", "progress"))


TASKS_PREFIX = "dynmem-tasks-"


def remove_orphan_task_folders(tmpdir: str | None = None, *, legacy_age: float = 6 * 3600.0) -> list:
    """Delete the temporary task stores (``dynmem-tasks-<pid>-*``) of processes that are gone.

    :func:`sweep_tasks` keeps the stores of a run without a workdir in the
    system's temporary folder, named after its process id, and removes them
    when it returns or is interrupted; a SIGKILL leaves them behind, and the
    next ``dynmem reproduce`` calls this.  Only folders owned by this user
    whose process no longer exists are removed (and folders of the older
    ``dynmem-tasks-<random>`` form untouched for ``legacy_age`` seconds).
    Returns the removed paths.
    """
    import shutil
    import tempfile

    tmpdir = tmpdir or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(tmpdir)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(TASKS_PREFIX):
            continue
        path = os.path.join(tmpdir, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != os.getuid():
            continue
        pid_text = name[len(TASKS_PREFIX):].split("-", 1)[0]
        if pid_text.isdigit() and "-" in name[len(TASKS_PREFIX):]:
            pid = int(pid_text)
            if pid == os.getpid():
                continue
            try:
                os.kill(pid, 0)
                continue  # alive (or reused): leave it
            except ProcessLookupError:
                pass
            except OSError:
                continue
        elif time.time() - st.st_mtime < legacy_age:
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            removed.append(path)
    return removed


def sweep_tasks(fn, tasks: list, *, workdir, store: str, executor=None, progress: bool = False,
                label: str = "") -> list:
    """``[fn(**t) for t in tasks]``, through :func:`dynmem.sweep.run_sweep` when there is a pool or a workdir.

    The store is ``<workdir>/<store>`` (in a temporary folder without a
    workdir); callers put a digest of their config in ``store`` so a changed
    config never reads another config's results.  Finished tasks are kept
    there and an interrupted call resumes.
    A failed task raises ``RuntimeError`` with its traceback.
    """
    if executor is None and not workdir:
        return [fn(**t) for t in tasks]
    import tempfile

    from ..sweep import Grid, load_sweep, run_sweep

    keys = list(tasks[0])
    grid = Grid.zip(**{k: [t[k] for t in tasks] for k in keys})
    ctx = tempfile.TemporaryDirectory(prefix=f"{TASKS_PREFIX}{os.getpid()}-") if not workdir else None
    path = os.path.join(ctx.name if ctx else workdir, store)
    try:
        run_sweep(fn, grid, path, seed=0, executor=executor, progress=progress, label=label)
        table = load_sweep(path)
    finally:
        if ctx:
            ctx.cleanup()
    bad = [r for r in table.records if r.status != "done"]
    if bad:
        r = bad[0]
        raise RuntimeError(f"{label or store}: task {r.params} {r.status}: {r.error}\n{r.traceback}")
    by = {tuple(_plain(r.params[k]) for k in keys): r.result for r in table.records}
    return [by[tuple(_plain(t[k]) for k in keys)] for t in tasks]


def _plain(v):
    """A sweep parameter as the plain Python value it was given as (numpy scalars from the store)."""
    return v.item() if hasattr(v, "item") else v


def _run_tasks(cfg, tasks, executor, progress):
    cfg = {k: v for k, v in cfg.items() if k != "progress"}
    if progress:
        os.environ[_PROGRESS_ENV] = "1"
    return sweep_tasks(functools.partial(study_task, config=cfg), tasks, workdir=cfg.get("workdir"),
                       store=f"store-{config_digest(cfg)}", executor=executor, progress=progress,
                       label=f"[dynmem.experiments] {cfg['figure']}/{cfg['protocol']}")


def _f(x) -> list:
    return [float(v) for v in np.asarray(x, dtype=float).ravel()]


def _ci(values, level=0.95) -> dict:
    """Mean and t-interval over seeds of finite values."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    n = int(v.size)
    if n == 0:
        return {"mean": math.nan, "lo": math.nan, "hi": math.nan, "n": 0, "values": []}
    mean = float(v.mean())
    if n == 1:
        return {"mean": mean, "lo": math.nan, "hi": math.nan, "n": 1, "values": _f(v)}
    half = float(scipy.stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": n, "values": _f(v)}


def margin_error_fit(points: list) -> dict:
    r"""Fit ``log margin = a + s log E_m(0)`` per seed; the slope's 95% t-interval over seeds.

    ``points``: dicts with ``seed``, ``error0``, ``margin`` (every width and
    every training snapshot of one target).  Only finite, positive pairs
    enter.  The theorem predicts ``s > 0`` (margin -> 0 as the error -> 0)
    for a polynomial-memory target and a bounded margin for an exponential
    one.

    Returns
    -------
    dict
        ``per_seed`` slopes, ``slope`` (mean, lo, hi, n), ``pooled_slope``
        (one regression over all points, with its standard error),
        ``n_points``; and ``margin_floor``: the median margin over the
        quarter of points with the smallest errors, and over the quarter
        with the largest.
    """
    seeds = sorted({int(p["seed"]) for p in points})
    per = []
    for s in seeds:
        e = [p["error0"] for p in points if int(p["seed"]) == s]
        mg = [p["margin"] for p in points if int(p["seed"]) == s]
        per.append(loglog_slope(e, mg).slope)
    e = np.asarray([p["error0"] for p in points], float)
    mg = np.asarray([p["margin"] for p in points], float)
    ok = np.isfinite(e) & np.isfinite(mg) & (e > 0) & (mg > 0)
    pooled = {"slope": math.nan, "stderr": math.nan}
    low = high = math.nan
    if ok.sum() >= 3:
        r = loglog_slope(e, mg)
        pooled = {"slope": r.slope, "stderr": r.stderr}
        order = np.argsort(e[ok])
        q = max(1, ok.sum() // 4)
        low = float(np.median(mg[ok][order[:q]]))
        high = float(np.median(mg[ok][order[-q:]]))
    return {"per_seed": per, "slope": _ci(per), "pooled_slope": pooled, "n_points": int(ok.sum()),
            "margin_at_smallest_errors": low, "margin_at_largest_errors": high}


def _late_effective(points: list) -> list:
    """Points with the effective margin as ``margin``, without early snapshots (epoch < 1/4 of the model's last)."""
    last = {}
    for p in points:
        key = (p["seed"], p["m"])
        last[key] = max(last.get(key, 0.0), float(p["epoch"]))
    return [{**p, "margin": p.get("effective_margin", math.nan)} for p in points
            if float(p["epoch"]) >= 0.25 * last[(p["seed"], p["m"])]]


def findings(target_results: dict) -> dict:
    """The study's findings per target, from the data, with the criteria written into the result.

    Notes
    -----
    The criteria:

    * *margin -> 0 with the error* (the theorem's mechanism): the lower end
      of the 95% interval of the per-seed slope of ``log margin`` against
      ``log E_m(0)`` is above 0.
    * *margin bounded*: that interval's lower end is <= 0 (no evidence of a
      margin that vanishes with the error).
    * *boundary shrinks with m* (the figure's visible consequence): the
      median over seeds of the log-log slope of the blow-up beta (and of the
      first-unstable beta) against ``m`` is below ``-SLOPE_TOL``.
    * *error falls with m*: the median slope of ``E_m(0)`` against ``m`` is negative.
    * *effective margin -> 0 with the error*: as the first criterion, with
      the effective margin (:func:`stability_measures`) and without the
      snapshots before a quarter of each model's training;
      *mechanism with control* (THEORY B5: an exponential target converging
      to its rate from above also has a positive slope): that, and the
      polynomial target's median effective margin over its quarter of
      smallest errors below 0.5 x the exponential target's.
    * *instability threshold shrinks with m*: the median slope of the
      ``W + beta I`` instability beta (relative MSE > ``INSTABILITY`` on the
      long test) against ``m`` is below ``-SLOPE_TOL``.
    """
    out = {}
    for tname, r in target_results.items():
        fit = r["margin_vs_error"]
        lo = fit["slope"]["lo"]
        f = {
            "margin_to_zero_with_error": bool(np.isfinite(lo) and lo > 0),
            "margin_bounded": bool(not (np.isfinite(lo) and lo > 0)),
            "margin_vs_error_slope": fit["slope"]["mean"], "margin_vs_error_ci": [fit["slope"]["lo"], fit["slope"]["hi"]],
        }
        for key in ("blowup", "first_unstable", "margin", "error0", "crossing"):
            s = r["slopes"][key]["median"]
            f[f"{key}_slope_median"] = s
        f["blowup_shrinks_with_m"] = bool(np.isfinite(f["blowup_slope_median"]) and f["blowup_slope_median"] < -SLOPE_TOL)
        f["margin_shrinks_with_m"] = bool(np.isfinite(f["margin_slope_median"]) and f["margin_slope_median"] < -SLOPE_TOL)
        f["error_falls_with_m"] = bool(np.isfinite(f["error0_slope_median"]) and f["error0_slope_median"] < 0)
        eff = r.get("effective_margin_vs_error")
        if eff is not None:
            f["effective_margin_vs_error_slope"] = eff["slope"]["mean"]
            f["effective_margin_vs_error_ci"] = [eff["slope"]["lo"], eff["slope"]["hi"]]
            f["effective_margin_at_smallest_errors"] = eff["margin_at_smallest_errors"]
            lo_e = eff["slope"]["lo"]
            f["effective_margin_to_zero_with_error"] = bool(np.isfinite(lo_e) and lo_e > 0)
        inst = r["slopes"].get("instability_beta", {}).get("median", math.nan)
        f["instability_beta_slope_median"] = inst
        f["instability_shrinks_with_m"] = bool(np.isfinite(inst) and inst < -SLOPE_TOL)
        out[tname] = f
    # B5: an exponential target converging to its rate from above also has a positive slope; the mechanism
    # needs the polynomial target's margin to end well below the exponential control's
    if "pol" in out and "exp" in out and "effective_margin_to_zero_with_error" in out["pol"]:
        mp = out["pol"].get("effective_margin_at_smallest_errors", math.nan)
        me = out["exp"].get("effective_margin_at_smallest_errors", math.nan)
        ratio = mp / me if (np.isfinite(mp) and np.isfinite(me) and me > 0) else math.nan
        out["pol"]["margin_ratio_to_exp_control"] = ratio
        out["pol"]["mechanism_with_control"] = bool(out["pol"]["effective_margin_to_zero_with_error"]
                                                    and np.isfinite(ratio) and ratio < 0.5)
    return out


def _merge(cfg, proto, tasks, results, seconds) -> dict:
    widths = [int(m) for m in cfg["widths"]]
    per_target = {}
    for tname in cfg["targets"]:
        rows = {str(m): {k: [] for k in ("error0", "margin", "radius", "first_unstable", "blowup", "ball_sup",
                                         "shell_max", "epochs", "steps", "stopped", "best_val", "last_val",
                                         "train_seconds", "threshold", "unstable", "resumed") + _NEW_KEYS
                          + ("shift_relmse", "shift_random_relmse", "relative_error0", "relative_val_history")}
                for m in widths}
        points, per_seed = [], []
        betas = None
        for s in cfg["seeds"]:
            res = {}
            for t, r in zip(tasks, results):
                if t["target"] == tname and int(t["seed"]) == int(s):
                    res.update(r)
            for m in widths:
                row = rows[str(m)]
                betas = _f(res[f"m{m}/betas"])
                for k in ("error0", "margin", "radius", "first_unstable", "blowup", "best_val", "last_val",
                          "train_seconds", "threshold"):
                    row[k].append(float(res[f"m{m}/{k}"]))
                for k in ("epochs", "steps", "resumed"):
                    row[k].append(int(res[f"m{m}/{k}"]))
                row["stopped"].append(str(res[f"m{m}/stopped"]))
                for k in _NEW_KEYS:
                    row[k].append(float(res.get(f"m{m}/{k}", math.nan)))
                row["shift_relmse"].append(_f(res.get(f"m{m}/shift_relmse", [])))
                row["shift_random_relmse"].append(_f(res.get(f"m{m}/shift_random_relmse", [])))
                power = float(res.get(f"m{m}/test_power", math.nan))
                row["relative_error0"].append(float(res[f"m{m}/error0"]) / power if power > 0 else math.nan)
                hist = np.asarray(res.get(f"m{m}/history", np.zeros((0, 6))), float).reshape(-1, 6)
                # validation MSE per epoch over the test outputs' power (same distribution): the training history
                row["relative_val_history"].append(_f(hist[:, 3] / power) if power > 0 else [])
                snap_eff = _f(res.get(f"m{m}/snap_effective_margin", [math.nan] * len(_f(res[f"m{m}/snap_epochs"]))))
                row["ball_sup"].append(_f(res[f"m{m}/ball_sup"]))
                row["shell_max"].append(_f(res[f"m{m}/shell_max"]))
                row["unstable"].append([int(u) for u in np.asarray(res[f"m{m}/unstable"]).ravel()])
                for ep, e0, mg, ef in zip(_f(res[f"m{m}/snap_epochs"]), _f(res[f"m{m}/snap_error0"]),
                                          _f(res[f"m{m}/snap_margin"]), snap_eff):
                    points.append({"seed": int(s), "m": m, "epoch": ep, "error0": e0, "margin": mg,
                                   "effective_margin": ef, "kind": "snapshot"})
                points.append({"seed": int(s), "m": m, "epoch": float(res[f"m{m}/epochs"]),
                               "error0": float(res[f"m{m}/error0"]), "margin": float(res[f"m{m}/margin"]),
                               "effective_margin": float(res.get(f"m{m}/effective_margin", math.nan)),
                               "kind": "final"})
            b = np.asarray(betas)
            pos = b > 0
            crossing = []
            for m1, m2 in zip(widths[:-1], widths[1:]):
                first, _ = crossings_of(b[pos], np.asarray(res[f"m{m1}/ball_sup"])[pos], np.asarray(res[f"m{m2}/ball_sup"])[pos])
                crossing.append(float(first))
            seed_slopes = {k: loglog_slope(widths, [res.get(f"m{m}/{k}", math.nan) for m in widths]).slope
                           for k in ("error0", "margin", "blowup", "first_unstable", "radius", "effective_margin",
                                     "instability_beta")}
            seed_slopes["crossing"] = loglog_slope(widths[1:], crossing).slope
            per_seed.append({"seed": int(s), "crossing": crossing, "slopes": seed_slopes})
        slopes = {}
        for k in ("error0", "margin", "blowup", "first_unstable", "radius", "crossing", "effective_margin",
                  "instability_beta"):
            vals = [ps["slopes"][k] for ps in per_seed]
            fin = [v for v in vals if np.isfinite(v)]
            slopes[k] = {"per_seed": vals, "median": float(np.median(fin)) if fin else math.nan}
        for m in widths:
            row = rows[str(m)]
            for k in ("error0", "margin", "blowup", "first_unstable", "effective_margin", "euler_margin",
                      "instability_beta", "relative_error0"):
                row[f"{k}_median"] = float(np.median(row[k]))
        final_pts = [p for p in points if p["kind"] == "final"]
        per_target[tname] = {
            "target": proto["targets"][tname], "betas": betas, "per_width": rows, "per_seed": per_seed,
            "slopes": slopes, "points": points,
            "margin_vs_error": margin_error_fit(points),
            "margin_vs_error_final_only": margin_error_fit(final_pts),
            "effective_margin_vs_error": margin_error_fit(_late_effective(points)),
        }
    budget = {
        "epochs": {t: {m: per_target[t]["per_width"][str(m)]["epochs"] for m in widths} for t in cfg["targets"]},
        "steps_total": int(sum(sum(per_target[t]["per_width"][str(m)]["steps"]) for t in cfg["targets"] for m in widths)),
        "train_seconds_total": float(sum(sum(per_target[t]["per_width"][str(m)]["train_seconds"])
                                         for t in cfg["targets"] for m in widths)),
        "stopped": {t: {m: per_target[t]["per_width"][str(m)]["stopped"] for m in widths} for t in cfg["targets"]},
        "full_budget_epochs": int(proto["training"]["max_epochs"]),
    }
    return {
        "experiment": cfg["figure"], "protocol_name": cfg["protocol"], "size": cfg["size"],
        "protocol": proto, "config": {k: v for k, v in cfg.items() if k != "progress"},
        "widths": widths, "seeds": [int(s) for s in cfg["seeds"]], "targets": per_target,
        "findings": findings(per_target), "budget": budget, "seconds": seconds,
    }


def run_study(cfg: dict, *, executor=None, progress: bool = False) -> dict:
    """Run one study (see the module notes) and return its JSON-serialisable result.

    Parameters
    ----------
    cfg : dict
        From :func:`study_config`.  ``workdir`` (optional) holds the training
        checkpoints and the sweep store, so an interrupted call resumes.
    executor : concurrent.futures.Executor, optional
        Run the tasks on it (a process pool, a Dask executor); same numbers as serial.
    progress : bool
        Progress lines on stderr (per epoch milestones, per trained model, sweep ETA).
    """
    start = time.perf_counter()
    proto = _protocol_of(cfg)
    tasks = _tasks(cfg, proto)
    results = _run_tasks(cfg, tasks, executor, progress)
    return _merge(cfg, proto, tasks, results, time.perf_counter() - start)


# ----------------------------------------------------------------------------
# figure


#: margins at or below this are drawn as 0: ``-alpha(W)`` of a singular ``W`` comes out as +-1e-17 or so
MARGIN_FLOOR = 1e-12


def _pos(a, floor: float = 0.0):
    a = np.asarray(a, dtype=float)
    return np.where(np.isfinite(a) & (a > floor), a, np.nan)


def plot_study(result: dict, path: str, title: str = "") -> None:
    """Per target: median ``E_m(beta)`` per width (log-log) and margin against ``E_m(0)`` (all snapshots)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_savefig
    from ..plotting import finish_figure

    targets = list(result["targets"])
    fig, axes = plt.subplots(len(targets), 2, figsize=(11, 4 * len(targets)), squeeze=False)
    widths = result["widths"]
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(widths)))
    for row, tname in enumerate(targets):
        r = result["targets"][tname]
        b = np.asarray(r["betas"], float)
        pos = b > 0
        ax = axes[row, 0]
        for col, m in zip(colors, widths):
            curves = np.asarray(r["per_width"][str(m)]["ball_sup"], float)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.median(curves, axis=0)
            ax.plot(b[pos], _pos(med[pos]), color=col, marker="o", ms=2.5, label=f"m = {m}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set(xlabel=r"perturbation size $\beta$", ylabel=r"$E_m(\beta)$ (median over seeds)",
               title=f"target {tname}: error under perturbation")
        ax.legend(fontsize=7, title="width", title_fontsize=7)
        ax = axes[row, 1]
        for col, m in zip(colors, widths):
            pts = [p for p in r["points"] if p["m"] == m]
            e = _pos([p["error0"] for p in pts])
            mg = _pos([p["margin"] for p in pts], MARGIN_FLOOR)
            fin = [p["kind"] == "final" for p in pts]
            ax.scatter(e, mg, s=10, color=col, alpha=0.5)
            ax.scatter(e[fin], mg[fin], s=40, color=col, edgecolor="k", label=f"m = {m}")
        ax.scatter([], [], s=10, color="0.5", alpha=0.5, label="training snapshot")
        ax.scatter([], [], s=40, color="0.5", edgecolor="k", label="final model")
        fit = r["margin_vs_error"]["slope"]
        pos_pts = [p for p in r["points"] if np.isfinite(p["margin"]) and p["margin"] > MARGIN_FLOOR
                   and np.isfinite(p["error0"]) and p["error0"] > 0]
        if pos_pts:
            ax.set_xscale("log")
            ax.set_yscale("log")
        else:  # e.g. the code protocol's relu(w) with a w <= 0: W is singular, margin 0 at every point
            ax.text(0.5, 0.5, r"margin $\leq 10^{-12}$ (0 to rounding) at every point", transform=ax.transAxes,
                    ha="center")
        ax.set(xlabel=r"achieved error $E_m(0)$", ylabel=r"spectral margin $-\alpha(W_m)$",
               title=f"target {tname}: margin vs error, {_slope_words(fit)}")
        ax.legend(fontsize=7)
    finish_figure(fig, result, extra=title)
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


def _slope_words(fit: dict) -> str:
    """A slope with its 95% interval over seeds, in words where the numbers say nothing."""
    mean, lo, hi = (float(fit.get(k, float("nan"))) for k in ("mean", "lo", "hi"))
    if not np.isfinite(mean):
        return "slope undetermined (too few points)"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"slope {mean:.2f} (no interval: too few seeds)"
    sign = "; holds 0, sign undetermined" if lo <= 0 <= hi else ""
    return f"slope {mean:.2f}, 95% CI [{lo:.2f}, {hi:.2f}] over seeds{sign}"
