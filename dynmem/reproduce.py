"""Reproductions of the [WLL] and [LSS] experiments: ``dynmem reproduce <experiment>``.

The experiments live in :mod:`dynmem.experiments` (one module each, one
contract, one registry); this module runs them, keeps their files and
writes the replication report (:mod:`dynmem.experiments.report`).

Files, in the output folder ``out``:

``<experiment>-<protocol>.json`` / ``.png``
    a quick run (``<experiment>-<protocol>-full.*`` for ``size="full"``):
    every number, the config, the protocol and the budget spent, and a
    ``"reproduce"`` block (config digest, seconds, ``complete``).
``work/<experiment>-<protocol>-<size>/``
    training checkpoints and sweep stores of full runs (an interrupted run
    resumes mid-training).
``REPORT.md``
    one row per experiment file found in ``out`` (``report=True``).

Every file is written atomically (a kill leaves the previous file or none).
With ``resume=True`` an experiment whose JSON is complete and records the
same config is skipped; a JSON that is unreadable, not an object, or
incomplete (``[]``, ``null``, a truncated file) is recomputed.
"""

from __future__ import annotations

import os
import sys
import time

from .experiments import VERBOSE_ENV, experiment_names, get_experiment, model_line, progress_line, renamed_note
from .io import atomic_write_json, config_digest, read_json, remove_stale_temporaries

__all__ = ["EXPERIMENTS", "reproduce", "experiment_stem", "resolve_protocol", "all_protocols"]

EXPERIMENTS = experiment_names()


def resolve_protocol(name: str, protocol: str | None) -> str:
    """The protocol ``name`` runs: ``protocol`` when the experiment has it, else the experiment's default."""
    protos = tuple(get_experiment(name).protocols)
    return protocol if protocol in protos else protos[0]


def all_protocols() -> tuple:
    """Every protocol some experiment has, in first-seen registry order (``--protocol`` accepts these)."""
    seen = []
    for name in EXPERIMENTS:
        for p in get_experiment(name).protocols:
            if p not in seen:
                seen.append(p)
    return tuple(seen)


def experiment_stem(name: str, protocol: str, size: str) -> str:
    """``<name>-<protocol>`` (quick) or ``<name>-<protocol>-full``."""
    return f"{name}-{protocol}" + ("-full" if size == "full" else "")


def _digest(cfg: dict) -> str:
    """The digest a result file records of its config (:func:`dynmem.io.config_digest`, 16 hex digits)."""
    return config_digest(cfg, length=16)


def _finished(path: str, digest: str) -> bool:
    """Whether ``path`` holds a complete result of the same config (anything malformed: no)."""
    try:
        old = read_json(path)
    except (OSError, ValueError, RecursionError, MemoryError):  # RecursionError: a file nested too deeply
        return False
    if not isinstance(old, dict):
        return False
    rep = old.get("reproduce")
    return isinstance(rep, dict) and rep.get("complete") is True and rep.get("config_digest") == digest


def missing_extras(experiment) -> list:
    """The optional extras an experiment record needs (its ``requires``: module -> extra) that are not installed."""
    import importlib.util

    need = experiment.requires
    return sorted({extra for module, extra in need.items() if importlib.util.find_spec(module) is None})


def reproduce(experiments=("all",), *, out: str = "dynmem-results", quick: bool = True, protocol: str | None = None,
              seeds=None, resume: bool = True, progress: bool = False, executor=None, report: bool = True,
              verbose: bool = False) -> dict:
    """Run experiments and write their JSON and PNG files; return ``{stem: json path}``.

    Parameters
    ----------
    experiments : sequence of str
        Names from :data:`EXPERIMENTS`, or ``"all"``.
    out : str
        Output folder.
    quick : bool
        ``True``: each experiment's quick size (all of them in about a
        minute); ``False``: the protocol's full budget (hours for the trained
        figures; resumable through ``out/work``).
    protocol : {"paper", "code", "dynmem"}, optional
        The protocol of the experiments that have it; the others run their
        own (default: each experiment's first protocol).
    seeds : sequence of int, optional
        Replace the seeds of the experiments whose config has ``seeds``.
    resume : bool
        Skip experiments whose JSON is complete for the same config.
    progress : bool
        Progress on stderr: a line per experiment (``[k/n]``, elapsed time),
        the task counter with its ETA and one line per trained model.
    verbose : bool
        With ``progress``, also the per-epoch training lines and the
        experiments' per-width detail (:func:`dynmem.experiments.verbose`).
    executor : concurrent.futures.Executor, optional
        Handed to every experiment (their sweeps run on it; same numbers as serial).
    report : bool
        Write ``out/REPORT.md`` from every result file in ``out`` at the end.
    """
    if isinstance(experiments, str):
        experiments = (experiments,)
    names = list(EXPERIMENTS) if "all" in experiments else list(experiments)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"`experiments` must be among {list(EXPERIMENTS)} or 'all'; got {unknown}.")
    for n in ([] if "all" in experiments else names):  # asked by name for a protocol only its old meaning had
        note = renamed_note(n, protocol) if protocol is not None else ""
        if note:
            raise ValueError(f"experiment {n!r} has no protocol {protocol!r}: {note}")
    known = all_protocols()
    if protocol is not None and (not isinstance(protocol, str) or protocol not in known):
        raise ValueError(f"`protocol` must be None or one of {list(known)} (the protocols of the experiments); "
                         f"got {protocol!r}.")
    if not isinstance(out, (str, os.PathLike)) or not str(out):
        raise TypeError(f"`out` must be a folder path; got {out!r}.")
    size = "quick" if quick else "full"
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"`out` must be a folder (it is created if missing); got {str(out)!r}, which is a file.")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"`out` must be a folder that can be created; {str(out)!r} cannot ({exc.strerror or exc}).") from None
    from .experiments.study import remove_orphan_task_folders

    remove_orphan_task_folders()  # task stores of a killed earlier run
    remove_stale_temporaries(out, older_than=600.0)
    written = {}
    previous = os.environ.get(VERBOSE_ENV)
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"  # reaches pool workers started from here
    try:
        _run_all(names, out, size, protocol, seeds, resume, progress, executor, written, asked_all="all" in experiments)
    finally:
        if previous is None:
            os.environ.pop(VERBOSE_ENV, None)
        else:
            os.environ[VERBOSE_ENV] = previous
    if report:
        from .experiments.report import write_report

        path = write_report(out)
        if progress:
            progress_line(f"report: {path}")
    return written


def _fmt_elapsed(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _run_all(names, out, size, protocol, seeds, resume, progress, executor, written, asked_all=False):
    start = time.perf_counter()
    for i, name in enumerate(names):
        tag = f"[{i + 1}/{len(names)}]"
        exp = get_experiment(name)
        missing = missing_extras(exp)
        if missing:
            if not asked_all:
                raise ImportError(f"experiment {name!r} needs the optional extra(s) {missing}: "
                                  f"pip install 'dynmem[{','.join(missing)}]'.")
            print(f"{name}: skipped (needs the optional extra {','.join(missing)}: "
                  f"pip install 'dynmem[{','.join(missing)}]')", file=sys.stderr, flush=True)
            continue
        proto = resolve_protocol(name, protocol)
        if protocol is not None and proto != protocol and progress:
            print(f"{name}: has no protocol {protocol!r}; runs {proto!r}", file=sys.stderr, flush=True)
        stem = experiment_stem(name, proto, size)
        jpath, ppath = os.path.join(out, f"{stem}.json"), os.path.join(out, f"{stem}.png")
        changes = {"workdir": os.path.abspath(os.path.join(out, "work", f"{name}-{proto}-{size}"))} if size == "full" else {}
        cfg = exp.config(size, proto, **changes)
        if seeds is not None and isinstance(cfg, dict) and "seeds" in cfg:
            cfg = exp.config(size, proto, seeds=[int(s) for s in seeds], **changes)
        digest = _digest(cfg)
        if resume and _finished(jpath, digest) and os.path.exists(ppath):
            if progress:
                progress_line(f"{tag} {stem}: already in {jpath}, skipped")
            written[stem] = jpath
            continue
        if progress:
            what = "quick size, not evidence" if size == "quick" else "full size"
            # on a terminal the model lines that follow redraw this one; the "done" line stays
            model_line(f"{tag} {stem}: running ({what}; {_fmt_elapsed(time.perf_counter() - start)} elapsed)")
        t0 = time.perf_counter()
        result = exp.run(cfg, executor=executor, progress=progress)
        seconds = time.perf_counter() - t0
        result["reproduce"] = {"experiment": name, "protocol": proto, "size": size, "stem": stem,
                               "config_digest": digest, "seconds": seconds, "complete": True}
        exp.plot(result, ppath)
        atomic_write_json(jpath, result)  # last: its presence marks the experiment finished
        written[stem] = jpath
        if progress:
            progress_line(f"{tag} {stem}: done in {_fmt_elapsed(seconds)} -> {jpath}, {ppath}")
