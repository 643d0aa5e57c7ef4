"""The documentation exists where the README says: every relative link resolves, the Sphinx setup is complete,
the docs extra is not a runtime or test dependency, and the README keeps its two set-up commands."""

import ast
import os
import re
import tomllib

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as fh:
        return fh.read()


def _relative_links(text):
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    return [u.split("#", 1)[0] for u in links if not re.match(r"[a-z][a-z0-9+.-]*:", u) and not u.startswith("#")]


def test_every_readme_link_resolves():
    links = _relative_links(_read("README.md"))
    assert "docs/theory.md" in links
    missing = [u for u in links if not os.path.exists(os.path.join(ROOT, u))]
    assert missing == []


def test_no_document_points_to_a_missing_theory_file():
    for parts in (("README.md",), ("dynmem", "ARCHITECTURE.md")):
        assert "THEORY.md" not in _read(*parts), parts


def test_architecture_and_theory_links_resolve():
    for parts in (("dynmem", "ARCHITECTURE.md"), ("docs", "theory.md")):
        base = os.path.join(ROOT, *parts[:-1])
        missing = [u for u in _relative_links(_read(*parts)) if not os.path.exists(os.path.join(base, u))]
        assert missing == [], parts


def test_theory_notes_have_the_sections_the_docstrings_cite():
    text = _read("docs", "theory.md")
    for n in range(1, 10):
        assert re.search(rf"^## {n}\. ", text, re.M), n
    assert "### 4.1" in text and "arXiv:2305.19190" in text and "arXiv:2308.14555" in text


def test_sphinx_setup_is_complete_and_its_extra_stays_out_of_runtime_and_tests():
    conf = ast.parse(_read("docs", "conf.py"))
    names = {t.id for node in conf.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
    assert {"project", "extensions"} <= names
    index = _read("docs", "index.rst")
    for page in ("theory", "tutorials", "api"):
        assert page in index and os.path.exists(os.path.join(ROOT, "docs", page + (".md" if page == "theory" else ".rst")))
    api = _read("docs", "api.rst")
    import importlib

    for mod in re.findall(r"^\s+(dynmem[\w.]*)\s*$", api, re.M):
        importlib.import_module(mod)
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        project = tomllib.load(fh)["project"]
    docs = project["optional-dependencies"]["docs"]
    assert any(d.startswith("sphinx") for d in docs)
    for dep in project["dependencies"] + project["optional-dependencies"]["test"]:
        assert not re.match(r"(sphinx|numpydoc|myst)", dep), dep


def test_readme_keeps_exactly_its_two_set_up_commands():
    text = _read("README.md")
    assert text.count("<!-- main-command -->") == 1 and text.count("<!-- test-command -->") == 1
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert setup.count("```bash") == 2


def test_readme_memory_example_reads_the_slowest_mode():
    import numpy as np

    import dynmem as dm

    M = dm.memory_function(dm.CTRNN.random(8, 1, rng=1), np.linspace(0, 60, 601))
    fit = dm.fit_decay(M.t, M.values)
    assert fit.kind == "exponential" and abs(fit.rate - 0.5) < 0.05, fit.note
    assert f"exponential {round(fit.rate, 2)}" in _read("README.md")


@pytest.mark.slow
def test_sphinx_build_has_no_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    pytest.importorskip("myst_parser")
    import subprocess
    import sys

    docs = os.path.join(ROOT, "docs")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", "-d", str(tmp_path / "doctrees"),
                           docs, str(tmp_path / "html")], capture_output=True, text=True, timeout=1200)
    import shutil

    shutil.rmtree(os.path.join(docs, "generated"), ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


#: top-level modules the API reference leaves out, each with its reason
_NOT_IN_API = {
    "dynmem._validation": "private: the argument checks behind every public function",
    "dynmem.cli": "the command line; `dynmem --help` documents it",
    "dynmem.version": "the version string only (dm.__version__)",
    "dynmem.theory_loader": "installs `dynmem.theory`, the catalogue, at import",
    "dynmem.odeint": "earlier import path of dynmem.ode",
    "dynmem.gated": "earlier import path of dynmem.models.gated",
    "dynmem.ssm": "earlier import path of dynmem.models.ssm",
    "dynmem.stack": "earlier import path of dynmem.models.stack",
    "dynmem.residual": "earlier import path of dynmem.models.residual",
    "dynmem.interop": "earlier import path of dynmem.models.interop",
}


def _api_modules(text):
    return set(re.findall(r"^\s+(dynmem(?:\.\w+)+)\s*$", text, flags=re.M))


def test_the_api_reference_lists_every_public_module():
    import pkgutil

    import dynmem

    listed = _api_modules(_read("docs", "api.rst"))
    modules = {m.name for m in pkgutil.iter_modules(dynmem.__path__, "dynmem.")}
    assert not (set(_NOT_IN_API) - modules), "an excluded module no longer exists"
    assert sorted(modules - listed - set(_NOT_IN_API)) == []
    assert sorted(listed - modules) == []
    # the checker itself: a module missing from the page is found
    assert "dynmem.norms" in listed and "dynmem.norms" not in _api_modules(_read("docs", "api.rst").replace(
        "   dynmem.norms\n", ""))
