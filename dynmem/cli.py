"""The ``dynmem`` command.

``dynmem --version``, ``dynmem --help`` and the subcommands:

``dynmem quickstart``
    Simulate a random tanh CTRNN, compute the gradient of a loss on its
    output twice (continuous adjoint, and BPTT through its Euler recurrence),
    and write a figure.  Finishes in seconds after numba's first compile.

``dynmem reproduce [EXPERIMENT ... | all] [--quick | --full] [--protocol P] [--out DIR] [--report] [--workers N | --scheduler ADDRESS]``
    Reproduce the papers' experiments (``dynmem reproduce --help`` lists
    them, from :data:`dynmem.experiments.REGISTRY`) under a protocol
    (``paper``, ``code`` or ``dynmem``, :mod:`dynmem.experiments.protocols`);
    each writes ``<experiment>-<protocol>[-full].json`` with every number and
    a PNG, atomically, finished experiments are not recomputed, and
    ``REPORT.md`` is rewritten from every result in the folder (``--report``
    only rewrites it).  The terminal gets one line per experiment and per
    trained model (``--verbose`` adds the per-epoch lines) and ends with the
    verdict table: experiment, protocol, size, verdict and why, with quick
    sizes marked as not evidence.  Ctrl-C ends with one line; rerun to resume.  ``--workers N`` runs the per-seed tasks of the
    experiments that have them on N local processes, ``--scheduler`` on a
    Dask cluster (``tcp://host:8786``; ``pip install 'dynmem[distributed]'``);
    the numbers are the same as the serial run's.

``dynmem warmup``
    Compile the numba kernels of the common entry points now (they are
    cached on disk), with the time of each first call: after an install or in
    a CI image, so that the first real call does not wait.

``dynmem sweep status DIR``
    Summarise a sweep store (:mod:`dynmem.sweep`): task counts, failed tasks
    with their error line, total task time.

``dynmem verify [--claim NAME] [--json PATH] [--list]``
    Run the theorem catalogue (``dynmem.theory``) and print a table of
    claim, method, outcome, expectation, time and key numbers.  The exit
    status is 1 when any outcome differs from its expectation.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time

import numpy as np


def _version() -> str:
    from . import __version__

    return __version__


from .experiments.quickstart import quickstart  # noqa: E402,F401  (the quickstart lives with the experiments)


def _short_numbers(numbers: dict, limit: int = 70) -> str:
    parts = []
    for k, v in numbers.items():
        if isinstance(v, float):
            parts.append(f"{k}={v:.3g}")
        elif isinstance(v, str):
            continue  # long texts go to --json
        else:
            parts.append(f"{k}={v}")
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def verify(names=None, *, json_path=None, list_only=False, out=None) -> int:
    """Run the theorem catalogue; print a table; return the exit status (1 if any outcome is unexpected).

    Each row is printed as soon as its claim has finished, with its time; on a
    terminal a transient line names the claim that is running.
    """
    import json

    from .theory_loader import load_theory

    out = out or sys.stdout
    theory = load_theory()
    if list_only:
        for c in theory.all_claims():
            print(f"{c.name:58s} {c.method:17s} expected {c.expected}", file=out)
        return 0
    live = bool(getattr(out, "isatty", lambda: False)())
    header = f"{'claim':56s} {'method':16s} {'outcome':12s} {'expected':9s} {'time':>7s}  key numbers"

    def started(claim, index, total):
        if index == 0:
            print(header, file=out)
            print("-" * len(header), file=out, flush=True)
        if live:  # overwritten by the claim's row when it finishes
            print(f"  running {claim.name} ({index + 1} of {total}) ...", end="\r", file=out, flush=True)

    def finished(r):
        mark = "" if r.as_expected else "  <-- UNEXPECTED"
        clear = "\r\x1b[K" if live else ""  # the running line goes
        print(f"{clear}{r.claim.name:56s} {r.claim.method:16s} {r.outcome.outcome:12s} "
              f"{r.claim.expected:9s} {r.seconds:6.2f}s  {_short_numbers(r.outcome.numbers)}{mark}", file=out, flush=True)

    t0 = time.perf_counter()
    try:
        results = theory.run_catalogue(names, progress=finished, started=started)
    except ValueError as exc:
        print(f"dynmem verify: {exc}", file=sys.stderr)
        return 2
    bad = [r for r in results if not r.as_expected]
    print(f"\n{len(results)} claims: {sum(r.outcome.outcome == 'verified' for r in results)} verified, "
          f"{sum(r.outcome.outcome == 'refuted' for r in results)} refuted, "
          f"{sum(r.outcome.outcome == 'inconclusive' for r in results)} inconclusive; "
          f"{len(bad)} differ from their expectation ({time.perf_counter() - t0:.0f} s).", file=out)
    for r in bad:
        print(f"  {r.claim.name}: expected {r.claim.expected}, got {r.outcome.outcome}: {r.outcome.detail.splitlines()[0] if r.outcome.detail else ''}",
              file=out)
    if json_path:
        from .io import atomic_write_text, to_jsonable

        payload = json.dumps(to_jsonable([r.to_dict() for r in results]), indent=2, default=str, allow_nan=False)
        if json_path == "-":
            print(payload, file=out)
        else:
            atomic_write_text(json_path, payload)
    return 1 if bad else 0


@contextlib.contextmanager
def _executor(workers, scheduler):
    """The executor of ``--workers`` / ``--scheduler`` (None for a serial run), shut down on exit."""
    if scheduler is not None:
        from .sweep import dask_executor

        with dask_executor(scheduler) as ex:
            yield ex
    elif workers is not None:
        from .sweep import process_pool  # the pool run_sweep(workers=N) uses: its workers die with this process

        ex = process_pool(workers)
        try:
            yield ex
        except BaseException:
            ex.terminate()  # interrupted: do not wait for the running tasks
            raise
        else:
            ex.shutdown(wait=True)
    else:
        yield None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that interrupted runs clean up as for Ctrl-C."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    import signal

    def handler(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave the default
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _printable(text) -> str:
    """``text`` with control characters (terminal escapes, newlines, bidi controls) shown as ``\\xNN`` / ``\\uNNNN``."""
    return "".join(ch if ch.isprintable() or ch == " " else (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
                   for ch in str(text))


def sweep_status(path: str, *, out=None) -> int:
    """Print a summary of the sweep store at ``path``; return the exit status.

    0: a readable store; 1: some task files are damaged (listed by name);
    2: not a sweep store, or its manifest is malformed (one line on stderr).
    """
    from .sweep import load_sweep

    out = out or sys.stdout

    def say(text):  # every stored string is escaped: a crafted store cannot drive the terminal
        print(_printable(text), file=out)

    try:
        table = load_sweep(path)
    except (ValueError, TypeError) as exc:
        print(_printable(f"dynmem sweep status: {exc}"), file=sys.stderr)
        return 2
    finished = [r for r in table.records if r.status != "pending"]
    hosts = sorted({r.host for r in finished if r.host})
    say(f"sweep store {table.path}")
    say(f"  study:   {table.study}")
    say(f"  axes:    {', '.join(table.axes)} ({table.n_tasks} tasks)")
    say(f"  tasks:   {table.n_done} done, {table.n_failed} failed, {table.n_pending} pending"
          + (f", {table.n_damaged} damaged" if table.n_damaged else ""))
    mean = table.seconds / len(finished) if finished else float("nan")
    say(f"  time:    {table.seconds:.2f} s of task time in total ({mean:.3g} s per finished task)"
          + (f" on {', '.join(hosts)}" if hosts else ""))
    say(f"  created: {table.manifest.get('created_utc', '?')} with dynmem {table.manifest.get('dynmem_version', '?')}")
    if table.n_failed:
        say("failed tasks:")
        for r in table.records:
            if r.status == "failed":
                params = " ".join(f"{k}={v}" for k, v in r.params.items())
                say(f"  [{r.index}] {r.key} {params}: {r.error}")
    if table.n_damaged:
        say("damaged tasks (recomputed when the sweep is run again):")
        for r in table.records:
            if r.status == "damaged":
                say(f"  [{r.index}] {r.key}: {r.error}")
        return 1
    return 0


def _print_verdicts(out: str, written: dict) -> None:
    """The end of ``dynmem reproduce``: the verdict table of the experiments just run (stdout), then where the files are."""
    from .experiments.report import in_context, report_rows, summary_lines

    rows = [r for r in in_context(report_rows(out)) if r["stem"] in written]
    print()
    print("\n".join(summary_lines(rows, width=shutil.get_terminal_size((110, 24)).columns)))
    if any(r.get("quick") for r in rows):
        print("quick size: the pipeline runs end to end; these verdicts are not evidence (dynmem reproduce --full).")
    print(f"files: {len(written)} JSON + PNG in {out}; report: {os.path.join(out, 'REPORT.md')}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="dynmem", description="Recurrent neural networks as dynamical systems.")
    parser.add_argument("--version", action="version", version=f"dynmem {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    q = sub.add_parser("quickstart", help="simulate a CTRNN, compute a gradient two ways, write a figure")
    q.add_argument("--hidden", type=int, default=16, help="hidden width m (default 16)")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument("--t-end", type=float, default=10.0, help="simulated time (default 10)")
    q.add_argument("--out", default="quickstart.png", help="figure path (default quickstart.png)")
    sub.add_parser("warmup", help="compile the numba kernels of the common entry points now (after an install, in CI)")
    v = sub.add_parser("verify", help="check the theorem catalogue (symbolic and numeric) and print a table")
    v.add_argument("--claim", action="append", metavar="NAME",
                   help="run only this claim (or every claim of a module, e.g. linear_memory); repeatable")
    v.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH ('-' for stdout)")
    v.add_argument("--list", action="store_true", help="list the claims without running them")
    from .reproduce import EXPERIMENTS

    listed = ", ".join(EXPERIMENTS)
    r = sub.add_parser("reproduce", help=f"reproduce the experiments of [WLL] and [LSS] ({listed}, all)")
    r.add_argument("experiments", nargs="*", default=["all"], metavar="EXPERIMENT",
                   help=f"{listed} or all (default: all)")
    mode = r.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="quick", action="store_true", default=True,
                      help="small sizes, about two minutes for all on 2 cores (default)")
    mode.add_argument("--full", dest="quick", action="store_false", help="the protocol's full budget (hours for the trained figures; resumable)")
    r.add_argument("--out", default="dynmem-results", help="output folder (default dynmem-results)")
    r.add_argument("--protocol", choices=("paper", "code", "dynmem"),
                   help="protocol of the trained experiments (fig2, fig8b, fig78, ablation); the others run their own "
                        "(default: each experiment's first: paper)")
    r.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seeds of the experiments that have a seeds setting (default: each experiment's)")
    r.add_argument("--no-resume", action="store_true", help="recompute experiments already in --out")
    r.add_argument("--report", action="store_true",
                   help="only write REPORT.md from the result files already in --out (no experiment runs)")
    r.add_argument("--quiet", action="store_true", help="no progress on stderr")
    r.add_argument("--verbose", action="store_true",
                   help="also the per-epoch training lines and per-width detail (default: one line per trained model)")
    where = r.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="run the per-seed tasks (fig2, fig8b, ...) on N local processes (same numbers as serial)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the per-seed tasks on the Dask cluster at ADDRESS, e.g. tcp://host:8786 "
                            "(needs pip install 'dynmem[distributed]')")
    sw = sub.add_parser("sweep", help="inspect parameter-sweep result stores (dynmem.sweep)")
    swsub = sw.add_subparsers(dest="sweep_command", metavar="SUBCOMMAND")
    st = swsub.add_parser("status", help="summarise a sweep store: counts, failed tasks, total time")
    st.add_argument("store", metavar="DIR", help="the sweep store directory")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "verify" and args.list and (args.claim or args.json):
        parser.error("--list cannot be combined with --claim or --json")
    if args.command == "quickstart":
        if args.hidden < 1:
            parser.error(f"--hidden must be >= 1; got {args.hidden}")
        if not args.t_end >= 1.0:
            parser.error(f"--t-end must be >= 1; got {args.t_end}")
        quickstart(hidden=args.hidden, seed=args.seed, t_end=args.t_end, out=args.out)
        return 0
    if args.command == "warmup":
        from .experiments.quickstart import warmup

        print("dynmem warmup: first call of each entry point (numba compiles, or loads its on-disk cache)")
        total = sum(warmup().values())
        print(f"  total {total:.1f} s; later processes load the cached kernels")
        return 0
    if args.command == "verify":
        return verify(args.claim, json_path=args.json, list_only=args.list)
    if args.command == "reproduce":
        from .reproduce import reproduce

        bad = [e for e in args.experiments if e != "all" and e not in EXPERIMENTS]
        if bad:
            parser.error(f"unknown experiment(s) {bad}; choose from {sorted(EXPERIMENTS)} or all")
        if args.workers is not None and args.workers < 1:
            parser.error(f"--workers must be >= 1; got {args.workers}")
        if args.scheduler is not None and not args.scheduler.strip():
            parser.error("--scheduler must be a scheduler address such as tcp://host:8786; got an empty string")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            parser.error(f"--out must be a folder; {args.out!r} is a file")
        if args.report and args.experiments != ["all"]:
            parser.error("--report writes the report from the files in --out; it takes no experiment names")
        if args.report:
            from .experiments.report import scan, write_report

            if not os.path.isdir(args.out):
                print(f"dynmem reproduce --report: {args.out!r} is not a folder; no report written "
                      f"(--out names the folder of the result files)", file=sys.stderr)
                return 1
            results, unreadable = scan(args.out)
            if not results and not unreadable:
                print(f"dynmem reproduce --report: no result files (*.json of dynmem reproduce) in {args.out!r}; "
                      f"no report written", file=sys.stderr)
                return 1
            print(f"report: {write_report(args.out)}")
            if unreadable:
                print(f"dynmem reproduce --report: {len(unreadable)} file(s) are not readable results and are listed "
                      f"as unreadable: " + ", ".join(_printable(f) for f, _ in unreadable), file=sys.stderr)
            return 0 if results else 1
        try:
            with _sigterm_as_interrupt(), _executor(args.workers, args.scheduler) as executor:
                written = reproduce(args.experiments, out=args.out, quick=args.quick, protocol=args.protocol,
                                    seeds=args.seeds, resume=not args.no_resume, progress=not args.quiet,
                                    executor=executor, verbose=args.verbose)
        except KeyboardInterrupt as exc:
            how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
            print(f"dynmem reproduce: {how}; finished experiments are kept in {args.out} "
                  f"(run the same command again to resume)", file=sys.stderr)
            return 143 if isinstance(exc, Terminated) else 130
        _print_verdicts(args.out, written)
        return 0
    if args.command == "sweep":
        if args.sweep_command is None:
            sw.print_help()
            return 0
        return sweep_status(args.store)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
