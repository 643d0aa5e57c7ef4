"""`dynmem sweep status`, `dynmem reproduce --workers/--scheduler`, and fig2/fig8b on an executor."""

import json
import os
import re
from concurrent.futures import ProcessPoolExecutor

import pytest

import dynmem as dm
from dynmem.experiments import wll_training as rt
from dynmem import cli
from dynmem import reproduce as rp

TINY = dict(widths=(2, 4), T=30, n_train=8, n_test=6, steps=15, n_samples=6, betas=(1e-2, 1.0, 5))


def study(x, *, rng):
    if x == 1:
        raise RuntimeError("the solver diverged\nmore detail")
    return {"y": float(rng.random())}


def _numbers(d):
    """The result without its wall times (the only fields allowed to differ between runs)."""
    if isinstance(d, dict):
        return {k: _numbers(v) for k, v in d.items() if k != "seconds"}
    if isinstance(d, list):
        return [_numbers(v) for v in d]
    return d


@pytest.fixture(scope="module")
def pool():
    with ProcessPoolExecutor(max_workers=2) as ex:
        yield ex


def test_sweep_status_summarises_a_store(tmp_path, capsys):
    store = str(tmp_path / "s")
    dm.run_sweep(study, dm.Grid.product(x=[0, 1, 2]), store, seed=0)
    assert cli.main(["sweep", "status", store]) == 0
    out = capsys.readouterr().out
    assert f"sweep store {store}" in out
    assert "study:   test_cli_sweep.study" in out
    assert "axes:    x (3 tasks)" in out
    assert "tasks:   2 done, 1 failed, 0 pending" in out
    assert re.search(r"time:    \d+\.\d\d s of task time in total \(\S+ s per finished task\) on \S+", out)
    failed = out.split("failed tasks:\n", 1)[1].strip().splitlines()
    assert len(failed) == 1
    assert re.fullmatch(r"\[1\] [0-9a-f]{20} x=1: RuntimeError: the solver diverged", failed[0].strip())


def test_sweep_status_of_a_partial_store_and_errors(tmp_path, capsys):
    store = str(tmp_path / "s")
    dm.run_sweep(study, dm.Grid.product(x=[0, 2]), store, seed=0)
    os.remove(os.path.join(store, "tasks", dm.Grid.product(x=[0, 2]).keys[1] + ".json"))  # as if interrupted
    assert cli.main(["sweep", "status", store]) == 0
    out = capsys.readouterr().out
    assert "tasks:   1 done, 0 failed, 1 pending" in out and "failed tasks" not in out
    assert cli.main(["sweep", "status", str(tmp_path)]) == 2
    assert "is not a sweep store: it has no manifest.json" in capsys.readouterr().err
    assert cli.main(["sweep"]) == 0
    assert "status" in capsys.readouterr().out


def test_reproduce_help_lists_every_experiment(capsys):
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--help"])
    out = capsys.readouterr().out
    for name in rp.EXPERIMENTS:
        assert name in out
    assert "--workers N" in out and "--scheduler ADDRESS" in out


@pytest.mark.parametrize("argv, match", [
    (["reproduce", "fig2", "--workers", "0"], "--workers must be >= 1; got 0"),
    (["reproduce", "fig2", "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], "not allowed with argument"),
    (["reproduce", "fig2", "--scheduler", " "], "--scheduler must be a scheduler address"),
])
def test_reproduce_executor_flags_are_checked(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert match in capsys.readouterr().err


def test_fig2_fig4_on_a_process_pool_equal_the_serial_run(pool):
    for run, kw in ((rt.run_fig2, {}), (rt.run_fig4, dict(reparam="exp"))):
        serial = run(quick=True, seeds=(0, 1, 2), cfg=TINY, **kw)
        parallel = run(quick=True, seeds=(0, 1, 2), cfg=TINY, executor=pool, **kw)
        assert json.dumps(_numbers(parallel), allow_nan=True) == json.dumps(_numbers(serial), allow_nan=True)


def test_reproduce_cli_workers_gives_the_serial_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(rt.SETTINGS, "quick", dict(rt.SETTINGS["quick"], **TINY))
    base = ["reproduce", "fig2", "--protocol", "dynmem", "--seeds", "0", "1", "--quiet"]
    assert cli.main(base + ["--out", str(tmp_path / "serial")]) == 0
    assert cli.main(base + ["--out", str(tmp_path / "pool"), "--workers", "2"]) == 0
    capsys.readouterr()
    with open(tmp_path / "serial" / "fig2-dynmem.json") as a, open(tmp_path / "pool" / "fig2-dynmem.json") as b:
        serial, pooled = json.load(a), json.load(b)
    assert serial["widths"] == [2, 4] and serial["reproduce"]["complete"]
    assert _numbers(pooled) == _numbers(serial)
    assert (tmp_path / "pool" / "fig2-dynmem.png").stat().st_size > 1000


def test_reproduce_hands_the_executor_to_every_experiment(tmp_path, monkeypatch, pool, patch_experiment):

    seen = {}

    def run(cfg, *, executor=None, progress=False):
        seen[cfg["experiment"]] = executor
        return {"x": 1}

    def plot(result, path):
        open(path, "wb").close()

    for name in ("fig1", "fig11"):
        patch_experiment(name, run=run, plot=plot)
    rp.reproduce(["fig1", "fig11"], out=str(tmp_path), seeds=(0,), executor=pool, report=False)
    assert seen == {"fig1": pool, "fig11": pool}


def test_failed_seed_task_raises_with_its_traceback(pool, monkeypatch):
    with pytest.raises(RuntimeError, match=r"fig2: the task of seed 0 failed: KeyError: 'steps'(.|\n)*Traceback"):
        rt._seeds_on(pool, "fig2", (0,), {k: v for k, v in rt.SETTINGS["quick"].items() if k != "steps"},
                     "softplus", False)


@pytest.fixture(scope="module")
def scheduler():
    distributed = pytest.importorskip("distributed")
    from test_sweep import port_8787_may_be_taken

    with port_8787_may_be_taken():
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                           host="127.0.0.1", dashboard_address=None)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close(timeout=30)


def test_reproduce_cli_scheduler_gives_the_serial_json(tmp_path, monkeypatch, capsys, scheduler):
    monkeypatch.setitem(rt.SETTINGS, "quick", dict(rt.SETTINGS["quick"], **TINY))
    base = ["reproduce", "fig8b", "--protocol", "dynmem", "--seeds", "0", "1"]
    assert cli.main(base + ["--out", str(tmp_path / "serial"), "--quiet"]) == 0
    assert cli.main(base + ["--out", str(tmp_path / "dask"), "--scheduler", scheduler]) == 0
    err = capsys.readouterr().err
    assert "fig8b seeds: 2/2 done, 0 failed, 0 remaining" in err  # the sweep's progress, on by default in the CLI
    with open(tmp_path / "serial" / "fig8b-dynmem.json") as a, open(tmp_path / "dask" / "fig8b-dynmem.json") as b:
        assert _numbers(json.load(b)) == _numbers(json.load(a))


def test_readme_scaling_out_example_runs(tmp_path):
    import subprocess
    import sys

    root = os.path.join(os.path.dirname(__file__), "..")
    with open(os.path.join(root, "README.md")) as fh:
        section = fh.read().split("## Scaling out", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "scaling_out.py").write_text(code)
    # -W error as in the test suite, except distributed's note that port 8787 is taken (see test_sweep).
    proc = subprocess.run([sys.executable, "-W", "error", "-W", "ignore:Port 8787 is already in use:UserWarning",
                           "scaling_out.py"], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "9/9 done, 0 failed, 0 remaining" in proc.stderr
    a, b = dm.load_sweep(str(tmp_path / "radius-sweep")), dm.load_sweep(str(tmp_path / "radius-sweep-dask"))
    assert [r.result["W"].tobytes() for r in a.records] == [r.result["W"].tobytes() for r in b.records]
