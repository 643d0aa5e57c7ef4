"""dynmem.sweep: grids, deterministic seeds, the resumable store, executors (serial, process pool, Dask)."""

import contextlib
import functools
import os
import re
import signal
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import dynmem as dm
from dynmem import sweep as sw
from dynmem.io import read_json

FINAL_NAME = re.compile(r"^[0-9a-f]{20}\.(npz|json)$")


# ----------------------------------------------------------------------------
# study functions (module level, so that they pickle)


def noisy(width, seed, *, rng):
    x = rng.standard_normal((width, 3))
    return {"x": x, "mean": float(x.mean()), "width2": width * 2, "label": f"w{width}s{seed}",
            "u": rng.integers(0, 2**31, size=2)}


def _claim(flag: str) -> bool:
    """Remove ``flag``; True for the one caller that removed it (atomic across processes)."""
    try:
        os.remove(flag)
        return True
    except FileNotFoundError:
        return False


def counted(x, *, rng, log_dir, interrupt=None, kind="KeyboardInterrupt", die=None, sleep=0.0, die_sleep=0.0):
    """Log one execution (a new file per call), then maybe interrupt or kill its own process once."""
    fd, _ = tempfile.mkstemp(dir=log_dir, prefix=f"{x}-", suffix=".run")
    os.close(fd)
    flag = os.path.join(log_dir, "once")
    if x == interrupt and _claim(flag):
        raise {"KeyboardInterrupt": KeyboardInterrupt, "SystemExit": SystemExit}[kind]()
    if x == die and os.path.exists(flag):
        time.sleep(die_sleep)
        if _claim(flag):
            os.kill(os.getpid(), signal.SIGKILL)  # a lost worker: no cleanup, no exception
    time.sleep(sleep)
    return {"y": rng.standard_normal(4) + x, "x": x}


def flaky(x, *, rng):
    if x == 2:
        raise ValueError(f"x = {x} is not allowed\nsecond line")
    if x == 3:
        return [1, 2, 3]  # not a dict
    return {"y": float(rng.random()), "k": x}


def runs(log_dir) -> dict:
    """Executions per task parameter ``x`` logged by :func:`counted`."""
    out = {}
    for name in os.listdir(log_dir):
        if name.endswith(".run"):
            x = int(name.split("-")[0])
            out[x] = out.get(x, 0) + 1
    return out


def check_store_clean(store):
    """Only final names, every sidecar valid JSON, every result loadable, one sidecar per result."""
    names = os.listdir(os.path.join(store, "tasks"))
    assert all(FINAL_NAME.match(n) for n in names), names
    assert not [n for n in os.listdir(store) if n.startswith(".dynmem-")]
    for n in names:
        p = os.path.join(store, "tasks", n)
        if n.endswith(".json"):
            meta = read_json(p)
            assert meta["status"] in ("done", "failed")
            if meta["status"] == "done":
                assert os.path.exists(p[:-5] + ".npz")
        else:
            with np.load(p, allow_pickle=False) as z:
                assert z.files


def same_results(a: sw.SweepTable, b: sw.SweepTable):
    by_key = {r.key: r for r in b.records}
    assert {r.key for r in a.records} == set(by_key)
    for r in a.records:
        s = by_key[r.key]
        assert r.status == s.status == "done"
        assert r.params == s.params and r.spawn_key == s.spawn_key
        assert sorted(r.result) == sorted(s.result)
        for k in r.result:
            assert r.result[k].dtype == s.result[k].dtype
            assert r.result[k].tobytes() == s.result[k].tobytes(), k


GRID = dm.Grid.product(width=[2, 3], seed=[0, 1, 2]) + dm.Grid.zip(width=[5, 6], seed=[7, 8])


@pytest.fixture(scope="module")
def serial_store(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("serial") / "store")
    run = dm.run_sweep(noisy, GRID, store, seed=2024)
    assert run.complete and run.n_run == len(GRID) == 8
    return store


# ----------------------------------------------------------------------------
# grids


def test_grid_product_zip_and_combinations():
    g = dm.Grid.product(width=[8, 16], seed=[0, 1])
    assert g.names == ("width", "seed") and len(g) == 4
    assert g.points == [{"width": 8, "seed": 0}, {"width": 8, "seed": 1}, {"width": 16, "seed": 0},
                        {"width": 16, "seed": 1}]
    z = dm.Grid.zip(width=[8, 16], lr=[1e-2, 5e-3])
    assert z.points == [{"width": 8, "lr": 1e-2}, {"width": 16, "lr": 5e-3}]
    prod = z * dm.Grid.product(seed=[0, 1, 2])
    assert len(prod) == 6 and prod[1] == {"width": 8, "lr": 1e-2, "seed": 1}
    cat = g + dm.Grid.zip(seed=[5], width=[32])
    assert len(cat) == 5 and cat[4] == {"width": 32, "seed": 5}
    assert dm.Grid.from_points(g.points) == g
    assert dm.Grid.product(v=[np.int64(3), np.float64(0.5), [1, 2], "a", None, True])[2]["v"] == (1, 2)
    # keys depend on the point only
    assert dm.Grid.product(seed=[1, 0], width=[8])[0]["seed"] == 1
    k = dict(zip(map(lambda p: (p["width"], p["seed"]), g.points), g.keys))
    g2 = dm.Grid.product(seed=[1, 0], width=[16, 8])
    assert all(k[(p["width"], p["seed"])] == key for p, key in zip(g2.points, g2.keys))


@pytest.mark.parametrize("build, exc, match", [
    (lambda: dm.Grid.product(), ValueError, "needs at least one axis"),
    (lambda: dm.Grid.zip(), ValueError, "needs at least one axis"),
    (lambda: dm.Grid.product(width=[]), ValueError, r"axis `width` must hold at least one value"),
    (lambda: dm.Grid.product(width=3), TypeError, r"axis `width` must be a sequence of values; got 3"),
    (lambda: dm.Grid.product(width="abc"), TypeError, r"axis `width` must be a sequence"),
    (lambda: dm.Grid.zip(a=[1, 2], b=[1]), ValueError, r"same length; got lengths \{'a': 2, 'b': 1\}"),
    (lambda: dm.Grid.product(rng=[1]), ValueError, "must not be named 'rng'"),
    (lambda: dm.Grid.product(w=[object()]), TypeError, r"axis `w`\[0\] must be None, a bool, an int"),
    (lambda: dm.Grid.product(w=[1.0, float("nan")]), ValueError, r"axis `w`\[1\] must be finite.*got nan"),
    (lambda: dm.Grid.product(w=[1, 1]), ValueError, "grid points must be distinct; point 1"),
    (lambda: dm.Grid.product(a=[1]) * dm.Grid.product(a=[2]), ValueError, r"disjoint axis names; both have \['a'\]"),
    (lambda: dm.Grid.product(a=[1]) + dm.Grid.product(b=[2]), ValueError, r"same axes; got \['a'\] and \['b'\]"),
    (lambda: dm.Grid.from_points([]), ValueError, "`points` must hold at least one point"),
    (lambda: dm.Grid.from_points([{"a": 1}, {"b": 2}]), ValueError, r"grid point 1 must have exactly the axes \['a'\]"),
])
def test_grid_validation(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


# ----------------------------------------------------------------------------
# seeds, the store, the table


def test_seeds_come_from_the_grid_point(serial_store):
    table = dm.load_sweep(serial_store)
    root = np.random.SeedSequence(2024)
    for r in table.records:
        assert r.seed_entropy == root.entropy and len(r.spawn_key) == 4
        rng = np.random.default_rng(np.random.SeedSequence(r.seed_entropy, spawn_key=r.spawn_key))
        np.testing.assert_array_equal(rng.standard_normal((r.params["width"], 3)), r.result["x"])
        assert r.meta["dynmem_version"] == dm.__version__ and r.meta["host"] and r.seconds >= 0
    assert len({r.spawn_key for r in table.records}) == len(table)


def test_order_of_the_grid_does_not_change_results(serial_store, tmp_path):
    rev = dm.Grid.from_points(GRID.points[::-1])
    dm.run_sweep(noisy, rev, str(tmp_path / "rev"), seed=2024)
    same_results(dm.load_sweep(serial_store), dm.load_sweep(str(tmp_path / "rev")))


def test_table_and_store_layout(serial_store):
    table = dm.load_sweep(serial_store)
    t = table.table
    assert t.dtype.names == ("index", "key", "width", "seed", "status", "seconds", "mean", "width2", "label")
    assert t["width"].dtype == np.int64 and t["width2"].dtype == np.int64 and t["label"].dtype.kind == "U"
    np.testing.assert_array_equal(t["width2"], 2 * t["width"])
    assert list(t["index"]) == list(range(8)) and set(t["status"]) == {"done"}
    assert t["label"][6] == "w5s7"
    assert table.n_done == 8 and table.n_failed == table.n_pending == 0
    man = read_json(os.path.join(serial_store, "manifest.json"))
    assert man["format"] == "dynmem-sweep/1" and man["study"] == "test_sweep.noisy"
    assert man["n_tasks"] == 8 and man["keys"] == list(GRID.keys)
    check_store_clean(serial_store)


def test_finished_store_is_not_recomputed(serial_store):
    before = {n: os.stat(os.path.join(serial_store, "tasks", n)).st_mtime_ns
              for n in os.listdir(os.path.join(serial_store, "tasks"))}
    run = dm.run_sweep(noisy, GRID, serial_store)  # seed=None: the store's
    assert run.n_run == 0 and run.n_skipped == 8 and run.complete
    after = {n: os.stat(os.path.join(serial_store, "tasks", n)).st_mtime_ns for n in before}
    assert after == before


def test_store_refuses_a_different_sweep(serial_store, tmp_path):
    with pytest.raises(ValueError, match=r"already holds a different sweep: its grid has axes \['width', 'seed'\] "
                                         r"and 8 points, this one has axes \['width', 'seed'\] and 6 points"):
        dm.run_sweep(noisy, dm.Grid.product(width=[2, 3], seed=[0, 1, 2]), serial_store)
    with pytest.raises(ValueError, match=r"its study is 'test_sweep.noisy', this one is 'test_sweep.flaky'"):
        dm.run_sweep(flaky, GRID, serial_store)
    with pytest.raises(ValueError, match="its seed entropy is 2024, this one's is 7"):
        dm.run_sweep(noisy, GRID, serial_store, seed=7)
    with pytest.raises(ValueError, match=r"already holds a different sweep.*this one is 'test_sweep.counted\(\*\[\], "
                                         r"\*\*\{\"log_dir\":\"b\"\}\)'"):
        store = str(tmp_path / "p")
        dm.run_sweep(functools.partial(counted, log_dir=str(tmp_path)), dm.Grid.product(x=[0]), store)
        dm.run_sweep(functools.partial(counted, log_dir="b"), dm.Grid.product(x=[0]), store)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="non-empty directory without a sweep manifest"):
        dm.run_sweep(noisy, GRID, str(tmp_path / "other"))


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(fn=lambda x, rng: {}), TypeError, r"`fn` must be a module-level function.*<lambda>"),
    (dict(fn=3), TypeError, r"`fn` must be a callable study function.*got 3"),
    (dict(grid=[{"x": 1}]), TypeError, r"`grid` must be a dynmem.sweep.Grid"),
    (dict(workers=0), ValueError, r"`workers` must be >= 1; got 0"),
    (dict(workers=2.0), TypeError, r"`workers` must be an integer; got 2.0"),
    (dict(workers=2, executor=ProcessPoolExecutor), ValueError, "either `executor` or `workers`, not both"),
    (dict(executor="pool"), TypeError, r"`executor` must be a concurrent.futures.Executor; got 'pool'"),
    (dict(seed=-1), TypeError, r"`seed` must be a non-negative int.*got -1"),
    (dict(progress="yes"), TypeError, r"`progress` must be True or False; got 'yes'"),
    (dict(store=3), TypeError, r"`store` must be a directory path; got 3"),
    (dict(fn=functools.partial(noisy, junk=object())), TypeError, r"the keyword `junk` bound by functools.partial"),
])
def test_run_sweep_validation(kwargs, exc, match, tmp_path):
    args = dict(fn=noisy, grid=dm.Grid.product(width=[1], seed=[0]), store=str(tmp_path / "s"))
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        dm.run_sweep(args.pop("fn"), args.pop("grid"), args.pop("store"), **args)


def test_load_sweep_validation(tmp_path):
    with pytest.raises(ValueError, match="`path` must be an existing sweep store directory"):
        dm.load_sweep(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="`path` .* is not a sweep store: it has no manifest.json"):
        dm.load_sweep(str(tmp_path))
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="`store` must be a directory; got the file"):
        dm.run_sweep(noisy, GRID, str(f))


# ----------------------------------------------------------------------------
# failures, interruptions, lost workers


def test_failed_task_is_recorded_and_the_others_finish(tmp_path, capsys):
    store = str(tmp_path / "s")
    run = dm.run_sweep(flaky, dm.Grid.product(x=[0, 1, 2, 3, 4]), store, seed=1)
    assert (run.n_done, run.n_failed, run.n_pending, run.complete) == (3, 2, 0, False)
    table = dm.load_sweep(store)
    assert list(table.table["status"]) == ["done", "done", "failed", "failed", "done"]
    bad = table.records[2]
    assert bad.error == "ValueError: x = 2 is not allowed"
    assert "Traceback (most recent call last)" in bad.traceback and 'raise ValueError(f"x = {x}' in bad.traceback
    assert "in flaky" in bad.traceback and bad.result == {}
    assert table.records[3].error.startswith("TypeError: the study function must return a dict")
    assert np.isnan(table.table["y"][2]) and table.table["k"].dtype == np.float64  # widened for the gaps
    assert table.table["k"][4] == 4.0
    check_store_clean(store)
    assert run.failed == (table.records[2].key, table.records[3].key)
    # retry_failed=False keeps them, the default reruns (and they fail again, deterministically)
    assert dm.run_sweep(flaky, dm.Grid.product(x=[0, 1, 2, 3, 4]), store, retry_failed=False).n_run == 0
    assert dm.run_sweep(flaky, dm.Grid.product(x=[0, 1, 2, 3, 4]), store).n_run == 2
    assert capsys.readouterr().err == ""  # progress is off by default


@pytest.mark.parametrize("kind", ["KeyboardInterrupt", "SystemExit"])
def test_interrupted_in_the_parent_resumes_without_recomputing(tmp_path, kind):
    log = tmp_path / "log"
    log.mkdir()
    (log / "once").touch()
    fn = functools.partial(counted, log_dir=str(log), interrupt=3, kind=kind)
    grid = dm.Grid.product(x=range(6))
    store = str(tmp_path / "s")
    with pytest.raises(BaseException) as info:
        dm.run_sweep(fn, grid, store, seed=3)
    assert type(info.value).__name__ == kind
    check_store_clean(store)
    table = dm.load_sweep(store)
    assert list(table.table["status"]) == ["done"] * 3 + ["pending"] * 3
    mtimes = {r.key: os.stat(os.path.join(store, "tasks", r.key + ".npz")).st_mtime_ns
              for r in table.records if r.status == "done"}
    run = dm.run_sweep(fn, grid, store)
    assert run.complete and run.n_run == 3 and run.n_skipped == 3
    assert runs(log) == {0: 1, 1: 1, 2: 1, 3: 2, 4: 1, 5: 1}  # task 3 was interrupted once, nothing else rerun
    assert all(os.stat(os.path.join(store, "tasks", k + ".npz")).st_mtime_ns == t for k, t in mtimes.items())
    check_store_clean(store)


def test_interruption_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    store = str(tmp_path / "s")
    grid = dm.Grid.product(width=[1, 2, 3], seed=[0])
    real = os.replace
    calls = []

    def replace(src, dst):
        calls.append(dst)
        if dst.endswith(".npz") and sum(c.endswith(".npz") for c in calls) == 2:
            raise KeyboardInterrupt  # between writing the temporary file and renaming it
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        dm.run_sweep(noisy, grid, store, seed=0)
    monkeypatch.setattr(os, "replace", real)
    check_store_clean(store)
    assert sorted(os.listdir(os.path.join(store, "tasks"))) == sorted([grid.keys[0] + ".npz", grid.keys[0] + ".json"])
    assert dm.run_sweep(noisy, grid, store).n_run == 2


def test_killed_worker_process_resumes_without_recomputing(tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    (log / "once").touch()
    # Task 3 waits a little, then SIGKILLs its worker; the other worker keeps finishing tasks meanwhile.
    fn = functools.partial(counted, log_dir=str(log), die=3, sleep=0.05, die_sleep=0.3)
    grid = dm.Grid.product(x=range(10))
    store = str(tmp_path / "s")
    with pytest.raises(dm.SweepInterrupted, match="run the same sweep again to resume"):
        dm.run_sweep(fn, grid, store, seed=4, workers=2)
    check_store_clean(store)
    first = dm.load_sweep(store)
    done = {r.params["x"] for r in first.records if r.status == "done"}
    assert 3 not in done and len(done) >= 2 and first.n_failed == 0
    mtimes = {r.key: os.stat(os.path.join(store, "tasks", r.key + ".json")).st_mtime_ns
              for r in first.records if r.status == "done"}
    run = dm.run_sweep(fn, grid, store, workers=2)
    assert run.complete and run.n_skipped == len(done) and run.n_run == 10 - len(done)
    counts = runs(log)
    assert all(counts[x] == 1 for x in done)  # finished tasks ran once
    assert set(counts) == set(range(10)) and counts[3] == 2
    assert all(os.stat(os.path.join(store, "tasks", k + ".json")).st_mtime_ns == t for k, t in mtimes.items())
    check_store_clean(store)
    # and the resumed sweep equals an uninterrupted serial one
    ref = str(tmp_path / "ref")
    dm.run_sweep(functools.partial(counted, log_dir=str(log), die=3, sleep=0.05, die_sleep=0.3), grid, ref, seed=4)
    same_results(dm.load_sweep(store), dm.load_sweep(ref))


def test_process_pool_gives_bit_identical_results(serial_store, tmp_path):
    store = str(tmp_path / "pool")
    run = dm.run_sweep(noisy, GRID, store, seed=2024, workers=2)
    assert run.complete
    same_results(dm.load_sweep(serial_store), dm.load_sweep(store))
    # a caller's executor is used and left open
    with ProcessPoolExecutor(max_workers=2) as ex:
        store2 = str(tmp_path / "pool2")
        dm.run_sweep(noisy, GRID, store2, seed=2024, executor=ex)
        assert ex.submit(int, "5").result() == 5
    same_results(dm.load_sweep(serial_store), dm.load_sweep(store2))


# ----------------------------------------------------------------------------
# progress


def test_progress_counts_and_eta(tmp_path, capsys):
    dm.run_sweep(flaky, dm.Grid.product(x=[0, 1, 2, 4]), str(tmp_path / "s"), seed=0, progress=True, label="demo")
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("demo: 0/4 done, 0 failed, 4 remaining, elapsed 0:00:00, ETA --")
    assert re.fullmatch(r"demo: 3/4 done, 1 failed, 0 remaining, elapsed \d+:\d\d:\d\d, ETA 0:00:00", err[-1])
    # resumed: the already finished tasks are counted from the start
    dm.run_sweep(flaky, dm.Grid.product(x=[0, 1, 2, 4]), str(tmp_path / "s"), progress=True, retry_failed=False)
    assert capsys.readouterr().err.startswith("sweep: 3/4 done, 1 failed, 0 remaining")


def test_progress_eta_line():
    p = sw._Progress(10, 2, 0, enabled=False)
    p.finished_here = 2
    p.start -= 4.0  # 2 tasks in 4 s -> 8 remaining in about 16 s
    assert re.search(r"2/10 done, 0 failed, 8 remaining, elapsed 0:00:04, ETA 0:00:1[67]", p.line())


# ----------------------------------------------------------------------------
# Dask (a loopback LocalCluster started here; dask[distributed] is in the test extra)


@contextlib.contextmanager
def deadline(seconds):
    """Fail instead of hanging: SIGALRM after ``seconds`` (the main thread runs the sweep)."""
    def boom(*_):
        raise TimeoutError(f"the Dask test took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def port_8787_may_be_taken():
    """Ignore (only) distributed's warning that its HTTP port 8787 is taken.

    The scheduler serves HTTP routes even with ``dashboard_address=None``, on
    port 8787 by default; when another cluster on the machine holds it (a
    colleague's session, another test module's fixture) it moves to a free
    port and warns, which ``filterwarnings = error`` would turn into a failure.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Port \d+ is already in use", category=UserWarning)
        yield


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with deadline(60), port_8787_may_be_taken():
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                           host="127.0.0.1", dashboard_address=None)
    try:
        yield cluster
    finally:
        with deadline(60):
            cluster.close(timeout=30)


def test_dask_cluster_gives_bit_identical_results(dask_cluster, serial_store, tmp_path):
    store = str(tmp_path / "dask")
    with deadline(60), dm.dask_executor(dask_cluster, timeout=30) as ex:
        run = dm.run_sweep(noisy, GRID, store, seed=2024, executor=ex)
    assert run.complete and run.n_run == 8
    same_results(dm.load_sweep(serial_store), dm.load_sweep(store))
    hosts = {r.meta["pid"] for r in dm.load_sweep(store).records}
    assert hosts == {os.getpid()}  # processes=False: the workers are threads of this process


def test_dask_failed_task_and_address(dask_cluster, tmp_path):
    store = str(tmp_path / "dask-fail")
    with deadline(60), dm.dask_executor(dask_cluster.scheduler_address, timeout=30) as ex:
        run = dm.run_sweep(flaky, dm.Grid.product(x=[0, 1, 2]), store, seed=0, executor=ex)
    assert (run.n_done, run.n_failed) == (2, 1)
    assert dm.load_sweep(store).records[2].error == "ValueError: x = 2 is not allowed"


def test_dask_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'dynmem\[distributed\]'"):
        with dm.dask_executor("tcp://127.0.0.1:1"):
            pass
    with pytest.raises(TypeError, match="`address` must be a scheduler address"):
        with dm.dask_executor(8786):
            pass
