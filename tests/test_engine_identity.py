"""The engine's results are bit-identical to those before issue 24 moved it into ``dynmem/ode/``.

``tests/fixtures/engine_identity.npz`` was written by
``tests/fixtures/make_engine_identity.py`` from main at 0ca63db (``dynmem/odeint.py``);
every array (states, outputs, gradients, losses, memory functions, step and
evaluation counts) must come out exactly equal today.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).with_name("fixtures")


def _maker():
    spec = importlib.util.spec_from_file_location("make_engine_identity", FIXTURES / "make_engine_identity.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def outputs():
    return _maker().cases()


def test_engine_outputs_bit_identical(outputs):
    ref = np.load(FIXTURES / "engine_identity.npz")
    assert sorted(ref.files) == sorted(outputs)
    differ = [k for k in ref.files
              if ref[k].shape != np.shape(outputs[k]) or not np.array_equal(ref[k], outputs[k], equal_nan=True)]
    assert not differ, f"{len(differ)} of {len(ref.files)} arrays differ from the fixture: {differ[:10]}"
