"""Issue 26 (reliability, third round): budgets, escaping, processes, file trust, numeric messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import dynmem as dm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code: str, *, timeout: float, cwd=None, env_extra=None):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


# -- 1. symbolic budgets -------------------------------------------------------------------------------


def test_symbolic_work_is_bounded_in_wall_clock_time():
    # In a child process, so that today's unbounded work (gamma(gamma(20)) never returns) fails the test
    # by its timeout instead of hanging the suite.
    code = """
        import time
        from dynmem.symbolic import check_identity, parse_expression
        t0 = time.perf_counter()
        for text in ["gamma(gamma(20))", "gamma(10**6)", "gamma(1001)", "gamma(-5000.5)", "gamma(2**20) - 1"]:
            try:
                parse_expression(text)
            except ValueError as exc:
                assert "`expr`" in str(exc) and "1000" in str(exc) and "gamma(" in str(exc), exc
            else:
                raise AssertionError("accepted " + text)
        assert not check_identity("(a+b+c+d)**1000 - 1")
        assert not check_identity("(x + 1)**1000 - 1")
        assert check_identity("gamma(1000) - gamma(1000)")
        print("SECONDS", time.perf_counter() - t0)
    """
    proc = _python(code, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.split("SECONDS")[1]) < 10.0


def test_check_identity_over_the_expansion_budget_decides_numerically():
    import sympy as sp

    from dynmem.symbolic import check_identity

    x = sp.Symbol("x")
    big = (x + 1) ** 1000
    same, other = big - sp.expand(big), big - sp.expand((x + 2) ** 1000)   # built outside the timed part
    t0 = time.perf_counter()
    assert check_identity(same)          # a true identity with 1001 terms of ~300 digits
    assert not check_identity(other)
    # the bound is on check_identity alone (the expansion it declines took 28 s and 2.8 GB before the budget)
    assert time.perf_counter() - t0 < 20.0


@pytest.mark.parametrize("text", ["1e-25", "x*1e-25", "exp(log(x)) - x + 1e-25", "-1e-40", "1e-25*sin(x)**2"])
def test_a_definite_nonzero_number_is_never_an_identity(text):
    from dynmem.symbolic import check_identity

    assert check_identity(text) is False


def test_identities_still_hold_after_the_precision_check():
    import sympy as sp

    from dynmem.symbolic import check_identity

    x = sp.Symbol("x")
    assert check_identity(sp.sin(x) * (sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1))   # no sum at the top
    assert check_identity("sin(x)**2 + cos(x)**2 - 1")
    assert check_identity("x*(y + 1) - x*y - x")


# -- 2. the report escapes and survives ----------------------------------------------------------------

INJECTIONS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<iframe src=javascript:alert(1)></iframe>",
    "[click](javascript:alert(1))",
    "x` <b>closed</b> `y",
    "see https://evil.example and www.evil.example",
]


def _fig11_result(protocol_name: str, *, stem="fig11-dynmem") -> dict:
    return {"experiment": "fig11", "protocol_name": protocol_name, "size": protocol_name,
            "widths": [protocol_name], "seeds": [0],
            "reproduce": {"experiment": "fig11", "protocol": "dynmem", "size": "quick", "stem": stem,
                          "config_digest": "x", "seconds": 1.0, "complete": True}}


def _no_raw_markup(text: str, code_spans=()) -> None:
    import re

    # code spans are literal in Markdown (CommonMark, pandoc, python-markdown): look outside them
    for span in code_spans:
        text = text.replace(span, "")
    lowered = text.lower()
    for bad in ("<script", "<img", "<iframe", "<b>", "javascript:alert(1)>"):
        assert bad not in lowered, bad
    # every link target in the report is a file the report wrote (a percent-encoded PNG name)
    for target in re.findall(r"(?<!\\)\]\(([^)]*)\)", text):
        assert target.endswith(".png") and "/" not in target and ":" not in target, target
    assert "https://" not in text and "www.evil" not in text  # bare autolinks are broken by escapes


def test_report_escapes_every_string_from_the_json_and_every_file_name(tmp_path):
    from dynmem.experiments import report

    for i, s in enumerate(INJECTIONS):
        stem = f"fig11-{i}<img src=x onerror=alert(1)>`"
        with open(tmp_path / f"{stem}.json", "w") as fh:
            json.dump(_fig11_result(s, stem=stem), fh)
        (tmp_path / f"{stem}.png").write_bytes(b"\x89PNG")
    path = report.write_report(str(tmp_path))
    text = Path(path).read_text()
    _no_raw_markup(text, [report.markdown_code(f"fig11-{i}<img src=x onerror=alert(1)>`") for i in range(len(INJECTIONS))])
    # the rows are still there, and a code span holding backticks cannot be closed from inside
    assert text.count("fig11-") >= 2 * len(INJECTIONS)
    assert "`` fig11-0<img src=x onerror=alert(1)>` ``" in text
    assert report.markdown_code("a``b").startswith("``` ") and report.markdown_text("<x>") == "&lt;x&gt;"


@pytest.mark.parametrize("content", [
    '{"config": "not a dict", "experiment": "fig2", "reproduce": {"experiment": "fig2", "complete": true}}',
    '{"reproduce": "abc"}',
    "[" * 100_000 + "]" * 100_000,
    '{"experiment": "fig2", "widths": 5, "reproduce": {"experiment": "fig2", "complete": true}}',
    '{"experiment": "fig78", "cells": ["x"], "reproduce": {"experiment": "fig78", "complete": true}}',
    "not json at all",
    "[1, 2]",
])
def test_a_damaged_or_foreign_result_is_listed_as_unreadable(tmp_path, content):
    from dynmem.experiments import report

    (tmp_path / "odd.json").write_text(content)
    with open(tmp_path / "fig11-dynmem.json", "w") as fh:
        json.dump(_fig11_result("dynmem"), fh)
    rows = report.report_rows(str(tmp_path))
    bad = [r for r in rows if r["stem"] == "odd"]
    assert len(bad) == 1 and bad[0]["verdict"] == "unreadable" and "odd.json" in bad[0]["why"]
    text = Path(report.write_report(str(tmp_path))).read_text()
    assert "odd.json" in text and "unreadable" in text and "fig11-dynmem" in text


def test_reproduce_report_on_a_folder_without_results_says_so(tmp_path, capsys):
    from dynmem.cli import main

    assert main(["reproduce", "--report", "--out", str(tmp_path)]) != 0
    assert "no result files" in capsys.readouterr().err
    assert not (tmp_path / "REPORT.md").exists()
    assert main(["reproduce", "--report", "--out", str(tmp_path / "mistyped")]) != 0
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["reproduce", "--report", "--out", str(tmp_path)]) != 0  # only an unreadable file
    assert "deep.json" in capsys.readouterr().err


def test_reproduce_resume_survives_a_deeply_nested_result(tmp_path):
    from dynmem.reproduce import reproduce

    (tmp_path / "fig11-dynmem.json").write_text("[" * 100_000 + "]" * 100_000)
    written = reproduce(["fig11"], out=str(tmp_path), quick=True)
    assert "fig11-dynmem" in written
    text = (tmp_path / "REPORT.md").read_text()
    assert "fig11-dynmem" in text


# -- 3. processes and temporaries ------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    fields = fh.read().split(")")[-1].split()
                if int(fields[1]) == pid:
                    out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_of_reproduce_with_workers_leaves_no_worker_and_resume_removes_the_temporaries(tmp_path):
    import signal
    import tempfile

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", TMPDIR=str(tmp))
    cmd = [sys.executable, "-m", "dynmem.cli", "reproduce", "fig2", "--workers", "2", "--out", str(tmp_path / "out"),
           "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        workers = []
        while time.time() < deadline and len(workers) < 2:
            time.sleep(0.2)
            workers = [p for p in _children(proc.pid) if _alive(p)]
            assert proc.poll() is None, "reproduce ended before its pool started"
        assert len(workers) >= 2, "no pool workers appeared"
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.time() + 20
        while time.time() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers), "pool workers outlived a SIGKILLed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
    leaked = [n for n in os.listdir(tmp) if n.startswith("dynmem-tasks-")]
    # the next run (a resume) removes the task stores of the killed one
    from dynmem.experiments.study import remove_orphan_task_folders

    removed = remove_orphan_task_folders(str(tmp))
    assert sorted(os.path.basename(p) for p in removed) == sorted(leaked)
    assert not [n for n in os.listdir(tmp) if n.startswith("dynmem-tasks-")]
    assert tempfile.gettempdir() != str(tmp)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc")
def test_sigterm_ends_reproduce_with_one_line_and_no_temporaries(tmp_path):
    import signal

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", TMPDIR=str(tmp))
    cmd = [sys.executable, "-m", "dynmem.cli", "reproduce", "fig2", "--workers", "2", "--out", str(tmp_path / "out"),
           "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not [n for n in os.listdir(tmp) if n.startswith("dynmem-tasks-")]:
            time.sleep(0.2)
            assert proc.poll() is None
        workers = [p for p in _children(proc.pid) if _alive(p)]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 143 and len(lines) == 1 and "terminated" in lines[0], err[-2000:]
    assert not [n for n in os.listdir(tmp) if n.startswith("dynmem-tasks-")]
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers)


def test_orphan_task_folders_of_live_processes_are_kept(tmp_path):
    from dynmem.experiments.study import remove_orphan_task_folders

    mine = tmp_path / f"dynmem-tasks-{os.getpid()}-abc"
    mine.mkdir()
    parent = tmp_path / f"dynmem-tasks-{os.getppid()}-abc"
    parent.mkdir()
    other = tmp_path / "unrelated"
    other.mkdir()
    assert remove_orphan_task_folders(str(tmp_path)) == []
    assert mine.exists() and parent.exists() and other.exists()


def test_the_cli_pool_is_the_sweep_pool():
    import inspect

    from dynmem import cli

    src = inspect.getsource(cli)
    assert "process_pool(" in src and "ProcessPoolExecutor(" not in src


# -- 4. files trusted only after checking ----------------------------------------------------------------


def _square(x, *, rng):
    return {"y": float(x) ** 2}


def test_a_symlinked_tasks_folder_is_refused(tmp_path):
    from dynmem.sweep import Grid, load_sweep, run_sweep

    store = tmp_path / "store"
    run_sweep(_square, Grid.product(x=[1, 2]), str(store), seed=0)
    outside = tmp_path / "outside"
    outside.mkdir()
    import shutil

    shutil.rmtree(store / "tasks")
    os.symlink(outside, store / "tasks")
    with pytest.raises(ValueError, match=r"`store`.*symbolic link"):
        run_sweep(_square, Grid.product(x=[1, 2]), str(store), seed=0)
    with pytest.raises(ValueError, match=r"`path`.*symbolic link"):
        load_sweep(str(store))
    assert os.listdir(outside) == []


def test_sweep_status_escapes_control_characters(tmp_path, capsys):
    from dynmem.cli import sweep_status
    from dynmem.sweep import Grid, run_sweep

    store = tmp_path / "store"
    run_sweep(_square, Grid.product(x=[1]), str(store), seed=0)
    side = [p for p in (store / "tasks").iterdir() if p.suffix == ".json"][0]
    meta = json.loads(side.read_text())
    meta.update(status="failed", error="\x1b]0;pwned\x07\x1b[2J boom\ninjected line")
    side.write_text(json.dumps(meta))
    sweep_status(str(store))
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b" in out
    assert "\ninjected line" not in out


def _state(m=3, d=2, g=3):
    rng = np.random.default_rng(0)
    return {"weight_ih_l0": rng.normal(size=(g * m, d)), "weight_hh_l0": rng.normal(size=(g * m, m)),
            "bias_ih_l0": rng.normal(size=g * m), "bias_hh_l0": rng.normal(size=g * m), "c": rng.normal(size=m)}


def test_from_state_dict_refuses_two_names_for_one_parameter():
    from dynmem.interop import from_state_dict

    st = _state()
    st["weight_hh"] = st["weight_hh_l0"] * 2
    with pytest.raises(ValueError, match=r"`state`.*weight_hh.*'weight_hh_l0' and 'weight_hh'"):
        from_state_dict("gru", st)


def test_from_state_dict_npz_reads_only_the_needed_members(tmp_path):
    import tracemalloc

    from dynmem.interop import from_state_dict

    path = tmp_path / "m.npz"
    np.savez_compressed(path, unused=np.zeros(1 << 24), **_state())  # 128 MiB unused, compresses to ~100 kB
    assert os.path.getsize(path) < 2_000_000
    tracemalloc.start()
    try:
        model = from_state_dict("gru", str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000 and model.hidden == 3


@pytest.mark.parametrize("make", ["truncated", "not_zip", "pickled", "object_member", "npy", "header_lies", "missing"])
def test_from_state_dict_bad_files_raise_one_valueerror_naming_state_and_path(tmp_path, make):
    from dynmem.interop import from_state_dict

    path = tmp_path / "bad.npz"
    good = tmp_path / "good.npz"
    np.savez(good, **_state())
    if make == "truncated":
        path.write_bytes(good.read_bytes()[:300])
    elif make == "not_zip":
        path.write_bytes(b"hello, not a zip")
    elif make == "pickled":
        import pickle

        path.write_bytes(pickle.dumps({"weight_hh": [1]}))
    elif make == "object_member":
        st = _state()
        st["weight_hh_l0"] = np.array([object()] * 3, dtype=object)
        np.savez(path, **st)
    elif make == "npy":
        np.save(tmp_path / "bad.npy", np.zeros(3))
        os.replace(tmp_path / "bad.npy", path)
    elif make == "header_lies":
        import zipfile

        with zipfile.ZipFile(good) as zin, zipfile.ZipFile(path, "w") as zout:
            for name in zin.namelist():
                data = zin.read(name)
                if name == "weight_hh_l0.npy":
                    data = data.replace(b"(9, 3)", b"(9, 4)")
                zout.writestr(name, data)
    with pytest.raises(ValueError, match=r"`state` file .*bad\.npz") as info:
        from_state_dict("gru", str(path))
    assert "allow_pickle" not in str(info.value)


# -- 5. numeric items ------------------------------------------------------------------------------------


def _gru(cls, m=2, d=1):
    rng = np.random.default_rng(0)
    return cls(rng.normal(size=(3 * m, d)), rng.normal(size=(3 * m, m)), np.zeros(3 * m), np.zeros(3 * m), np.ones(m))


def test_gated_loss_overflow_is_a_float_overflow_error():
    from dynmem.errors import FloatOverflowError
    from dynmem.gated import GRUCell, gated_value_and_grad

    with pytest.raises(FloatOverflowError, match=r"loss overflowed.*`Y`"):
        gated_value_and_grad(_gru(GRUCell), np.ones((1, 3, 1)), np.full((1, 3), 1e300))


def test_ssm_step_response_is_exact_when_lambda_t_underflows():
    from dynmem.ssm import DiagonalSSM

    m = DiagonalSSM(np.array([-1e-300 + 0j]), np.ones((1, 1)) + 0j, np.ones(1) + 0j, np.zeros(1))
    out = m.step_response([1e-30, 1.0])
    assert out[0, 0] == pytest.approx(1e-30, rel=1e-12) and out[1, 0] == pytest.approx(1.0, rel=1e-12)
    fast = DiagonalSSM(np.array([-2.0 + 3j]), np.ones((1, 1)) + 0j, np.ones(1) + 0j, np.zeros(1))
    t = np.array([1e-9, 0.5, 2.0, 50.0])
    exact = (np.expm1(-2.0 * t + 3j * t) / (-2.0 + 3j)).real
    assert np.allclose(fast.step_response(t)[:, 0], exact, rtol=1e-12, atol=0)


def test_from_reparam_names_w_when_float64_cannot_hold_a_stable_lambda():
    from dynmem.ssm import DiagonalSSM

    with pytest.raises(ValueError, match=r"`w`.*-800"):
        DiagonalSSM.from_reparam([-800.0], [0.0], np.ones((1, 1)), np.ones(1))
    assert DiagonalSSM.from_reparam([-30.0], [0.0], np.ones((1, 1)), np.ones(1)).Lambda.real[0] < 0


@pytest.mark.parametrize("method", ["dopri5", "RK45"])
def test_max_steps_beyond_int64_is_refused_by_name(method):
    model = dm.CTRNN(W=-np.eye(2), U=np.ones((2, 1)), b=np.zeros(2), c=np.ones(2))
    x = dm.inputs.step([1.0])
    with pytest.raises(ValueError, match=r"`max_steps` must be <="):
        dm.simulate(model, x, np.linspace(0, 1, 3), method=method, max_steps=10**30)


def test_ctgru_contract_methods_check_their_arguments():
    from dynmem.gated import CTGRU

    ct = _gru(CTGRU)
    with pytest.raises(ValueError, match=r"`H` must be finite"):
        ct.vector_field(np.array([[np.nan, 0.0]]), np.zeros((1, 1)))
    with pytest.raises(ValueError, match=r"`X`.*width d = 1"):
        ct.equilibrium(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"`H`.*width m = 2"):
        ct.jacobian(np.zeros((1, 5)), np.zeros((1, 1)))


def test_ssm_messages_name_h0_and_dt():
    from dynmem.ssm import DiagonalSSM, ssm_value_and_grad

    m = DiagonalSSM(np.array([-1 + 0j]), np.ones((1, 1)) + 0j, np.ones(1) + 0j, np.zeros(1))
    with pytest.raises(FloatingPointError, match=r"`h0`") as info:
        ssm_value_and_grad(m, np.ones((1, 3, 1)), np.zeros((1, 3)), h0=np.array([1e308 + 0j]))
    assert "`Y`" not in str(info.value)
    m2 = DiagonalSSM(np.array([-1e-10 + 1e10j]), np.ones((1, 1)) + 0j, np.ones(1) + 0j, np.zeros(1))
    with pytest.raises(ValueError, match=r"`dt`"):
        m2.discretize(1e300)


def test_reproduce_refuses_an_unknown_protocol_and_a_file_as_out(tmp_path):
    from dynmem.reproduce import reproduce

    with pytest.raises(ValueError, match=r"`protocol`.*'nonsense'"):
        reproduce(["fig11"], out=str(tmp_path), protocol="nonsense")
    f = tmp_path / "a_file"
    f.write_text("x")
    with pytest.raises(ValueError, match=r"`out`.*a_file.*file"):
        reproduce(["fig11"], out=str(f))


def test_the_stiffness_hint_only_for_a_stiff_w():
    from dynmem.solvers import stiffness_hint

    stiff = dm.CTRNN(W=-1e6 * np.eye(2), U=np.ones((2, 1)), b=np.zeros(2), c=np.ones(2))
    mild = dm.CTRNN(W=-np.eye(2), U=np.ones((2, 1)), b=np.zeros(2), c=np.ones(2))
    assert "Radau" in stiffness_hint(stiff, 10.0, 1000, "dopri5")
    assert "Radau" not in stiffness_hint(mild, 1e12, 1000, "dopri5")     # a huge span
    assert "Radau" not in stiffness_hint(mild, 10.0, 5, "dopri5")        # a tiny budget
