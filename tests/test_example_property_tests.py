"""The README's user-facing example of property tests (examples/test_memory_decay.py) runs and passes.

The example is outside ``testpaths``; it is loaded here and each of its
tests is called (hypothesis-decorated tests run all their examples).
"""

import os
import runpy

import pytest

_PATH = os.path.join(os.path.dirname(__file__), "..", "examples", "test_memory_decay.py")
_MODULE = runpy.run_path(_PATH, run_name="example_property_tests")
_TESTS = sorted(name for name, obj in _MODULE.items() if name.startswith("test_") and callable(obj))


def test_example_has_tests():
    assert len(_TESTS) >= 4, _TESTS


@pytest.mark.parametrize("name", _TESTS)
def test_example_property_test_passes(name):
    _MODULE[name]()


def test_readme_testing_section_runs():
    # The README's "Testing with dynmem" snippet is real code: extract and run its tests.
    readme = os.path.join(os.path.dirname(__file__), "..", "README.md")
    with open(readme) as fh:
        text = fh.read()
    section = text.split("## Testing with dynmem", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(compile(code, "README.md (Testing with dynmem)", "exec"), namespace)
    tests = [v for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    assert len(tests) == 2
    for t in tests:
        t()
