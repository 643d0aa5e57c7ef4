"""The engine as data (issue 24): pair records checked at import, the method registry, one loop for every pair."""

import re
from pathlib import Path

import numpy as np
import pytest

import dynmem as dm
from dynmem.ode import REGISTRY, Pair, method_info, pair_of
from dynmem.ode import dopri5, dop853, tsit5


@pytest.mark.parametrize("pair", [dopri5.PAIR, tsit5.PAIR, dop853.PAIR], ids=lambda p: p.name)
def test_pair_records_hold_their_conditions(pair):
    assert np.allclose(pair.A.sum(axis=1), pair.C, rtol=0, atol=1e-14)
    assert abs(pair.B.sum() - 1.0) < 1e-14 and abs(pair.E.sum()) < 1e-14
    assert pair.stages == max(pair.C.size, pair.B.size + 1)
    assert not any(a.flags.writeable for a in (pair.C, pair.A, pair.B, pair.E, pair.P, pair.E2))
    assert REGISTRY[pair.name].pair is pair and pair_of(pair.name) is pair


def test_pair_record_refuses_broken_tables():
    good = dopri5.PAIR
    kw = dict(C=good.C, A=good.A, B=good.B, E=good.E, P=good.P, order=5, error_order=4)
    Pair("copy", **kw)
    with pytest.raises(ValueError, match="row sums of A must equal C"):
        Pair("bad", **{**kw, "C": good.C + np.r_[0, 0, 0, 0, 0, 1e-9]})
    with pytest.raises(ValueError, match="weights B must sum to 1"):
        Pair("bad", **{**kw, "B": good.B * 1.001})
    with pytest.raises(ValueError, match="error weights E must sum to 0"):
        Pair("bad", **{**kw, "E": good.E + 1e-9})
    with pytest.raises(ValueError, match="dense output must give B"):
        Pair("bad", **{**kw, "P": good.P * 1.001})


def test_registry_capabilities():
    assert method_info("dopri5").compiled and not method_info("RK45").compiled
    assert set(method_info("dopri5").adjoints) == {"discrete", "continuous"}
    assert method_info("dop853").adjoints == () and method_info("Radau").stiff
    assert dm.ode.METHODS == ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")
    assert dm.ode.COMPILED_METHODS == ("dopri5", "tsit5", "dop853")
    assert dm.ode.EVALS_PER_STEP == {"RK45": 6, "RK23": 3, "DOP853": 12}


def test_no_stage_count_literal_in_the_loops():
    # the loops read the number of stages from the pair's arrays: no 6/7/12/13/16 stage literal in range()
    root = Path(dm.__file__).resolve().parent / "ode"
    for name in ("loop.py", "adjoint.py", "control.py", "field.py", "solve.py"):
        text = (root / name).read_text()
        assert not re.search(r"range\((\d+, )?(6|7|12|13|16)\)|np\.empty\(\((7|16)\b", text), name
