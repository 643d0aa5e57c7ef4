"""The first slow call of a compiled entry point says on stderr that numba is compiling, once per process."""

import time

import pytest

from dynmem import compiling


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(compiling, "_finished", set())
    monkeypatch.setattr(compiling, "NOTICE_DELAY", 0.05)
    monkeypatch.setenv(compiling.NOTICE_ENV, "1")


def test_slow_first_call_is_announced_once(fresh, capsys):
    @compiling.announce_compilation("demo")
    def slow(x):
        time.sleep(0.3)
        return x + 1

    assert slow(1) == 2 and slow(2) == 3
    err = capsys.readouterr().err
    assert err.count("compiling the numba kernels of demo") == 1
    assert err.count("demo ready after") == 1


def test_fast_first_call_and_nested_calls_say_nothing(fresh, capsys):
    @compiling.announce_compilation("inner")
    def inner():
        time.sleep(0.2)

    @compiling.announce_compilation("fast")
    def fast():
        return 1

    @compiling.announce_compilation("outer")
    def outer():
        inner()

    fast()
    outer()
    err = capsys.readouterr().err
    assert "fast" not in err and "inner" not in err and err.count("kernels of outer") == 1


def test_silenced_by_the_environment(fresh, monkeypatch, capsys):
    monkeypatch.setenv(compiling.NOTICE_ENV, "0")

    @compiling.announce_compilation("quiet")
    def slow():
        time.sleep(0.2)

    slow()
    assert capsys.readouterr().err == ""


def test_public_entry_points_keep_their_names_and_docstrings():
    import dynmem as dm

    for fn in (dm.simulate, dm.adjoint_gradient, dm.value_and_grad, dm.memory_function, dm.gated_forward):
        assert fn.__doc__ and fn.__wrapped__.__name__ == fn.__name__


def test_warmup_command_runs_every_entry_point(capsys):
    from dynmem.cli import main

    assert main(["warmup"]) == 0
    out = capsys.readouterr().out
    for name in ("simulate", "adjoint_gradient", "value_and_grad", "memory_function", "gated_forward"):
        assert name in out
