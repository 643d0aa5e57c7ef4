"""Durability of the sweep store (issue 16): kills, damaged files, crafted manifests, two writers, orphaned workers.

Every test is bounded in time: subprocesses have timeouts, waits poll with deadlines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import dynmem as dm
from dynmem.cli import sweep_status
from dynmem.sweep import SweepLocked

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kill / flock / pidfd semantics are Linux's")

GRID = dm.Grid.product(width=[1, 2, 3])


def small_study(width, *, rng):
    return {"x": rng.standard_normal(width), "s": float(width)}


def _run(store, **kw):
    return dm.run_sweep(small_study, GRID, str(store), seed=5, **kw)


def _results(store):
    return {r.key: {k: v.copy() for k, v in r.result.items()} for r in dm.load_sweep(str(store)).records}


def _script(tmp_path, body: str) -> str:
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def _child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.abspath(__file__)), env.get("PYTHONPATH", "")])
    return env


# -- a kill during store creation ----------------------------------------------------------------


def test_a_store_killed_during_creation_is_completed_on_resume(tmp_path):
    store = tmp_path / "store"
    # The child SIGKILLs itself at the moment the manifest would be renamed into place.
    child = _script(tmp_path, f"""
        import os, signal
        import dynmem as dm, dynmem.io as dio
        from test_store_durability import small_study, GRID
        real = os.replace
        def replace(src, dst):
            if str(dst).endswith("manifest.json"):
                os.kill(os.getpid(), signal.SIGKILL)
            real(src, dst)
        dio.os.replace = replace
        dm.run_sweep(small_study, GRID, {str(store)!r}, seed=5)
    """)
    proc = subprocess.run([sys.executable, child], env=_child_env(), timeout=120, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert store.is_dir() and not (store / "manifest.json").exists()
    leftovers = sorted(os.listdir(store))
    assert any(n.startswith(".dynmem-") for n in leftovers), leftovers  # the manifest's temporary
    run = _run(store)
    assert run.complete and run.n_run == 3
    assert not any(n.startswith(".dynmem-") for n in os.listdir(store))
    ref = _run(tmp_path / "ref")
    assert ref.complete
    a, b = _results(store), _results(tmp_path / "ref")
    assert a.keys() == b.keys() and all(np.array_equal(a[k]["x"], b[k]["x"]) for k in a)


def test_other_creation_leftovers_are_completed_and_foreign_directories_refused(tmp_path):
    only_tasks = tmp_path / "a"
    (only_tasks / "tasks").mkdir(parents=True)
    (only_tasks / ".lock").write_text("")
    assert _run(only_tasks).complete
    no_tasks = tmp_path / "b"
    assert _run(no_tasks).complete
    for name in os.listdir(no_tasks / "tasks"):
        os.remove(no_tasks / "tasks" / name)
    os.rmdir(no_tasks / "tasks")  # as if killed between the manifest and tasks/
    assert _run(no_tasks).n_run == 3
    foreign = tmp_path / "c"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"non-empty directory without a sweep manifest"):
        _run(foreign)
    assert sorted(os.listdir(foreign)) == ["notes.txt"]  # not even a lock file left in it


# -- damaged task files --------------------------------------------------------------------------


def _damage(store, kind):
    table = dm.load_sweep(str(store))
    k0, k1 = table.records[0].key, table.records[1].key
    tasks = store / "tasks"
    npz, side = tasks / f"{k0}.npz", tasks / f"{k0}.json"
    if kind == "truncated npz":
        data = npz.read_bytes()
        npz.write_bytes(data[: len(data) // 2])
    elif kind == "empty npz":
        npz.write_bytes(b"")
    elif kind == "bit-flipped npz":
        data = bytearray(npz.read_bytes())
        data[len(data) // 2] ^= 0x10
        npz.write_bytes(bytes(data))
    elif kind == "missing npz":
        npz.unlink()
    elif kind == "another task's npz":
        npz.write_bytes((tasks / f"{k1}.npz").read_bytes())
    elif kind == "another task's npz (old sidecar without sha256)":
        meta = json.loads(side.read_text())
        meta.pop("npz_sha256")
        side.write_text(json.dumps(meta))
        npz.write_bytes((tasks / f"{k1}.npz").read_bytes())  # width 2 in place of width 1: shapes differ
    elif kind == "wrong arrays (old sidecar without sha256)":
        meta = json.loads(side.read_text())
        meta.pop("npz_sha256")
        side.write_text(json.dumps(meta))
        np.savez(str(npz), y=np.ones(1))
    elif kind == "bad JSON":
        side.write_text('{"status": "done", ')
    elif kind == "JSON null":
        side.write_text("null")
    elif kind == "JSON []":
        side.write_text("[]")
    elif kind == "empty sidecar":
        side.write_text("")
    elif kind == "sidecar missing keys":
        meta = json.loads(side.read_text())
        del meta["seed"], meta["fields"]
        side.write_text(json.dumps(meta))
    elif kind == "another task's sidecar":
        side.write_text((tasks / f"{k1}.json").read_text())
    else:  # pragma: no cover
        raise AssertionError(kind)
    return k0


DAMAGE = ["truncated npz", "empty npz", "bit-flipped npz", "missing npz", "another task's npz",
          "another task's npz (old sidecar without sha256)", "wrong arrays (old sidecar without sha256)", "bad JSON",
          "JSON null", "JSON []", "empty sidecar", "sidecar missing keys", "another task's sidecar"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_task_is_reported_by_name_and_recomputed(tmp_path, kind, capsys):
    store = tmp_path / "store"
    assert _run(store).complete
    before = _results(store)
    key = _damage(store, kind)
    table = dm.load_sweep(str(store))
    rec = table.records[0]
    assert rec.key == key and rec.status == "damaged" and key in rec.error and rec.result == {}
    assert table.n_damaged == 1 and table.n_done == 2 and table.table["status"][0] == "damaged"
    code = sweep_status(str(store))
    out, err = capsys.readouterr()
    assert code == 1 and "1 damaged" in out and key in out and "Traceback" not in out + err
    run = _run(store)
    assert run.repaired == (key,) and run.n_run == 1 and run.complete
    after = _results(store)
    assert after.keys() == before.keys()
    for k in before:
        assert np.array_equal(after[k]["x"], before[k]["x"]) and after[k]["s"] == before[k]["s"]
    assert dm.load_sweep(str(store)).n_damaged == 0


@pytest.mark.parametrize("retry_failed", [True, False])
def test_damaged_tasks_are_recomputed_whatever_retry_failed_says(tmp_path, retry_failed):
    store = tmp_path / "store"
    _run(store)
    key = _damage(store, "truncated npz")
    assert _run(store, retry_failed=retry_failed).repaired == (key,)


# -- crafted manifests --------------------------------------------------------------------------------


@pytest.mark.parametrize("edit, match", [
    (lambda m: m["keys"].__setitem__(0, "../../x"), r"task key '\.\./\.\./x' is not 20 hex digits"),
    (lambda m: m["keys"].__setitem__(0, "/etc/passwd"), r"not 20 hex digits"),
    (lambda m: m["keys"].__setitem__(0, m["keys"][1]), r"does not match point 0"),
    (lambda m: m["points"].pop(), r"must agree"),
    (lambda m: m.__setitem__("seed", {"entropy": "x"}), r"`seed` must hold"),
    (lambda m: m.pop("axes"), r"`axes` is missing"),
    (lambda m: m["points"][0].__setitem__("width", 99), r"does not match point 0"),
])
def test_a_crafted_manifest_is_refused_and_nothing_outside_is_read(tmp_path, edit, match, capsys):
    store = tmp_path / "a" / "b" / "store"
    _run(store)
    outside = tmp_path / "a" / "x.json"
    outside.write_text(json.dumps({"status": "done"}))
    man = json.loads((store / "manifest.json").read_text())
    edit(man)
    (store / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match=r"malformed manifest.json: .*" + match):
        dm.load_sweep(str(store))
    with pytest.raises(ValueError, match=match):
        _run(store)
    assert sweep_status(str(store)) == 2
    out, err = capsys.readouterr()
    assert "malformed manifest" in err and "Traceback" not in out + err


# -- two writers on one store ------------------------------------------------------------------------------

_GATE = threading.Event()
_ENTERED = threading.Event()


def gated_study(width, *, rng):
    _ENTERED.set()
    assert _GATE.wait(60), "the test did not release the first writer"
    return {"x": rng.standard_normal(width)}


def test_a_second_writer_gets_a_clear_error_and_the_first_finishes(tmp_path):
    store = str(tmp_path / "store")
    _GATE.clear()
    _ENTERED.clear()
    box = {}
    first = threading.Thread(target=lambda: box.setdefault("run", dm.run_sweep(gated_study, GRID, store, seed=1)))
    first.start()
    try:
        assert _ENTERED.wait(60)
        with pytest.raises(SweepLocked, match=r"is being written by another sweep \(pid \d+ on .*one writer at a time"):
            dm.run_sweep(gated_study, GRID, store, seed=1)
        # readers are not blocked
        assert dm.load_sweep(store).n_tasks == 3
    finally:
        _GATE.set()
        first.join(60)
    assert box["run"].complete and box["run"].n_run == 3
    again = dm.run_sweep(gated_study, GRID, store, seed=1)  # the lock went with the first writer
    assert again.n_run == 0 and again.complete


def test_a_second_writer_process_is_refused_and_a_killed_writer_leaves_no_stale_lock(tmp_path):
    store = tmp_path / "store"
    flag = tmp_path / "started"
    child = _script(tmp_path, f"""
        import time, pathlib
        import dynmem as dm
        def slow(width, *, rng):
            pathlib.Path({str(flag)!r}).write_text("x")
            time.sleep(120)
            return {{"x": rng.standard_normal(width)}}
        slow.__module__ = "test_store_durability"; slow.__qualname__ = "small_study"  # same study identity
        dm.run_sweep(slow, dm.Grid.product(width=[1, 2, 3]), {str(store)!r}, seed=5)
    """)
    errlog = open(tmp_path / "child.err", "wb")
    proc = subprocess.Popen([sys.executable, child], env=_child_env(), stdout=subprocess.DEVNULL, stderr=errlog)
    errlog.close()
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert proc.poll() is None, (tmp_path / "child.err").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(SweepLocked, match=rf"pid {proc.pid} "):
            _run(store)
    finally:
        proc.kill()
        proc.wait(30)
    run = _run(store)  # the kernel released the dead writer's lock
    assert run.complete and run.n_run == 3


# -- a killed parent's process-pool workers ---------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            state = next(line for line in fh if line.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return False
    return "Z" not in state.split()[1]  # a zombie is dead, merely not reaped yet


def test_pool_workers_die_with_their_killed_parent(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    child = _script(tmp_path, f"""
        import os, time, pathlib
        import dynmem as dm
        def sleeper(width, *, rng):
            pathlib.Path({str(pids)!r}, str(os.getpid())).write_text("")
            time.sleep(300)
            return {{}}
        if __name__ == "__main__":
            dm.run_sweep(sleeper, dm.Grid.product(width=[1, 2]), {str(tmp_path / "store")!r}, seed=0, workers=2)
    """)
    errlog = open(tmp_path / "child.err", "wb")
    proc = subprocess.Popen([sys.executable, child], env=_child_env(), stdout=subprocess.DEVNULL, stderr=errlog)
    errlog.close()
    try:
        deadline = time.monotonic() + 90
        while len(os.listdir(pids)) < 2:
            assert proc.poll() is None, (tmp_path / "child.err").read_text()
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.05)
        workers = [int(n) for n in os.listdir(pids)]
        assert all(_alive(p) for p in workers)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in workers if _alive(p)]
    for p in left:  # do not leave them behind even when the test fails
        os.kill(p, signal.SIGKILL)
    assert not left, f"workers {left} outlived their SIGKILLed parent"


def test_process_pool_validates_workers():
    with pytest.raises(ValueError, match=r"`workers` must be >= 1; got 0"):
        dm.sweep.process_pool(0)


# -- permissions --------------------------------------------------------------------------------------


def test_store_files_get_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        _run(tmp_path / "store")
    finally:
        os.umask(old)
    files = [tmp_path / "store" / "manifest.json"] + list((tmp_path / "store" / "tasks").iterdir())
    assert files and all(f.stat().st_mode & 0o777 == 0o644 for f in files)
