"""House rules checked on the source: no private name of one dynmem module is used by another.

Every ``.py`` file under ``dynmem/``, ``theory/`` (installed as ``dynmem.theory``)
and ``benchmarks/`` is parsed with :mod:`ast`.  A use is an offence when it
reaches a name with a leading underscore (not a dunder) that belongs to a
*different* dynmem module:

* ``from dynmem.x import _name`` / ``from .x import _name`` (also a private
  submodule imported this way: ``from dynmem import _mod``);
* ``import dynmem._mod`` or ``from dynmem._mod import name`` (a private module);
* ``alias._name`` where ``alias`` was bound by an import to a dynmem module
  or to a name imported from one;
* ``importlib.import_module("dynmem._mod")``.

Own-module use is fine, and tests/ are exempt.  The package-internal support
modules in :data:`SUPPORT_MODULES` are private to users but shared by the
package: importing their (public) names is allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("dynmem", "theory", "benchmarks")

# Private-by-convention modules whose names are meant for every module of their package.
SUPPORT_MODULES = {
    "dynmem._validation",  # argument checks at the public boundary
    "dynmem.theory._claim",  # the Claim / Outcome records of the theorem catalogue
    "benchmarks._common",  # timing helpers of the benchmark scripts
}

# Known offences, each to be removed once fixed: (file, module the name comes from, name).
# Empty since issue 13 moved simulate.py's solver helpers into dynmem/solvers.py.
ALLOWED: set[tuple[str, str, str]] = set()


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "theory":
        parts[0:1] = ["dynmem", "theory"]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _ours(module: str) -> bool:
    return module == "dynmem" or module.startswith("dynmem.") or module.startswith("benchmarks")


def _private_module(module: str) -> bool:
    return any(_private(p) for p in module.split(".")) and module not in SUPPORT_MODULES


def offences(path: Path, source: str | None = None) -> list[tuple[int, str, str, str]]:
    """``(line, module the name comes from, name, what)`` for every cross-module private use in ``path``."""
    tree = ast.parse(path.read_text() if source is None else source)
    own = _module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found = []
    bound: dict[str, str] = {}  # local name -> the dynmem module or "module.name" it stands for

    def resolve(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = package.split(".")
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if not _ours(a.name):
                    continue
                if _private_module(a.name) and a.name != own:
                    found.append((node.lineno, a.name, a.name, "import of a private module"))
                bound[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            src = resolve(node)
            if not _ours(src) or src == own:
                continue
            if _private_module(src):
                found.append((node.lineno, src, "*", "import from a private module"))
            for a in node.names:
                if _private(a.name):
                    found.append((node.lineno, src, a.name, "private name imported"))
                bound[a.asname or a.name] = f"{src}.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name):
            target = bound.get(node.value.id)
            if target is not None and target != own:
                found.append((node.lineno, target, node.attr, "private attribute"))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            name = node.args[0].value
            if _ours(name) and _private_module(name) and name != own:
                found.append((node.lineno, name, name, "private module imported by importlib"))
    return found


def _sources():
    for folder in FOLDERS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_no_private_name_crosses_modules():
    bad, seen_allowed = [], set()
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        for line, src, name, what in offences(path):
            if (rel, src, name) in ALLOWED:
                seen_allowed.add((rel, src, name))
                continue
            bad.append(f"{rel}:{line}: {what}: {src} {name}")
    assert not bad, "private names used across modules:\n" + "\n".join(bad)
    stale = ALLOWED - seen_allowed
    assert not stale, f"allow-list entries that no longer occur (remove them): {sorted(stale)}"


@pytest.mark.parametrize("source, expected", [
    ("from dynmem.stability import _check_beta\n", [("dynmem.stability", "_check_beta")]),
    ("from .stability import _check_beta\n", [("dynmem.stability", "_check_beta")]),
    ("from .activations import _REGISTRY\n", [("dynmem.activations", "_REGISTRY")]),
    ("from dynmem import _repro_training\n", [("dynmem", "_repro_training")]),
    ("from dynmem._repro_kernel import run\n", [("dynmem._repro_kernel", "*")]),
    ("import dynmem._repro_kernel as rk\n", [("dynmem._repro_kernel", "dynmem._repro_kernel")]),
    ("from . import io as _io\nx = _io._umask()\n", [("dynmem.io", "_umask")]),
    ("import dynmem\nx = dynmem._secret\n", [("dynmem", "_secret")]),
    ("import importlib\nm = importlib.import_module('dynmem._theory_loader')\n",
     [("dynmem._theory_loader", "dynmem._theory_loader")]),
    # allowed: own module, public names, dunders, support modules, foreign packages
    ("from dynmem.sweep import _private_helper\n", []),
    ("from .stability import ball_sup\nfrom . import __version__\n", []),
    ("from ._validation import check_int\n", []),
    ("import numpy as np\nx = np._NoValue\n", []),
])
def test_checker_finds_what_it_should(source, expected):
    path = ROOT / "dynmem" / "sweep.py"  # parsed as if it were dynmem/sweep.py (own module dynmem.sweep)
    got = [(src, name) for _, src, name, _ in offences(path, source)]
    assert got == expected


def test_checker_resolves_relative_imports_in_subpackages():
    path = ROOT / "dynmem" / "kernel" / "ntk.py"
    source = "from ..activations import _REGISTRY\nfrom .network import _prefix_tree\nfrom . import chains\nchains._h()\n"
    got = [(src, name) for _, src, name, _ in offences(path, source)]
    assert sorted(got) == [("dynmem.activations", "_REGISTRY"), ("dynmem.kernel.chains", "_h"),
                           ("dynmem.kernel.network", "_prefix_tree")]


def test_no_submodule_shadows_a_public_function():
    # `import dynmem.x` sets the attribute `dynmem.x` to the module: a module named like a public function
    # (dynmem.lyapunov, the Lyapunov solve of dynmem.spectra) would silently replace that function
    import importlib
    import pkgutil

    import dynmem

    for info in pkgutil.iter_modules(dynmem.__path__):
        importlib.import_module(f"dynmem.{info.name}")
    for name in dynmem.__all__:
        obj = getattr(dynmem, name)
        assert not type(obj).__name__ == "module", f"dynmem.{name} is a module, not the public object it names"
