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


def test_kernel_array_passes_kernel_ready_arrays_through_and_copies_the_rest():
    import numpy as np

    a = np.arange(6.0).reshape(2, 3)
    assert compiling.kernel_array(a) is a
    frozen = a.copy()
    frozen.flags.writeable = False
    for x in (frozen, a.T, a[:, ::2], a.astype(np.float32), np.arange(6).reshape(2, 3)):
        k = compiling.kernel_array(x)
        assert k is not x and k.dtype == np.float64 and k.flags.c_contiguous and k.flags.writeable
        np.testing.assert_array_equal(k, x)
    assert compiling.kernel_array(np.zeros(2, complex), np.complex128).dtype == np.complex128


def test_each_kernel_is_compiled_once_whatever_the_inputs_look_like():
    """Read-only inputs, 1 x 1 weights (whose transposes are read-only views) and non-contiguous inputs
    reach the kernels as the same array type: one signature per kernel (a second would compile again)."""
    import numpy as np

    import dynmem as dm
    from dynmem import recurrences
    from dynmem.models import gated, ssm

    rng = np.random.default_rng(0)
    for m, d in ((1, 1), (3, 2)):
        X = rng.standard_normal((2, 4, d))
        frozen = X.copy()
        frozen.flags.writeable = False
        Y = np.zeros((2, 4))
        Y.flags.writeable = False
        rnn = dm.DiscreteRNN(0.3 * rng.standard_normal((m, m)), rng.standard_normal((m, d)), np.zeros(m), np.ones(m))
        for inputs in (X, frozen, X[:, ::-1], X[:1], X.tolist()):
            dm.value_and_grad(rnn, inputs, Y[: len(inputs)])
            recurrences.outputs_many(rnn, {k: np.asarray(v)[None] for k, v in rnn.params().items()}, inputs)
            for cell in (dm.GRUCell.random(m, d, rng=0), dm.LSTMCell.random(m, d, rng=0)):
                dm.gated_value_and_grad(cell, inputs, Y[: len(inputs)])
            ssm.ssm_value_and_grad(dm.DiagonalSSM.random(m, d, rng=0), inputs, Y[: len(inputs)])
    kernels = [recurrences._forward_kernel, recurrences._backward_kernel, recurrences._outputs_many_kernel,
               gated._gru_forward_kernel, gated._gru_backward_kernel, gated._lstm_forward_kernel,
               gated._lstm_backward_kernel, ssm._ssm_forward_store, ssm._ssm_backward]
    assert {k.py_func.__name__: len(k.signatures) for k in kernels} == {k.py_func.__name__: 1 for k in kernels}
