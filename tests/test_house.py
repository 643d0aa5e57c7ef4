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


# ---------------------------------------------------------------------------
# floors: every module sits on one floor and imports only from its floor or below

# Lowest floor first.  A module's floor is that of the longest entry naming it or a package above it;
# every module under dynmem/ must have one (a new module is placed here deliberately).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ground", ("dynmem._validation", "dynmem.errors", "dynmem.version", "dynmem.compiling", "dynmem.io",
                "dynmem.theory_loader")),
    ("basics", ("dynmem.activations", "dynmem.spectra", "dynmem.inputs", "dynmem.reparam", "dynmem.symbolic",
                "dynmem.decay", "dynmem.recurrences")),
    ("models", ("dynmem.models", "dynmem.gated", "dynmem.ssm", "dynmem.stack", "dynmem.residual", "dynmem.interop",
                "dynmem.ssm_init")),
    ("solvers", ("dynmem.ode", "dynmem.odeint", "dynmem.solvers", "dynmem.simulate", "dynmem.adjoint")),
    ("analyses", ("dynmem.memory", "dynmem.stability", "dynmem.training", "dynmem.targets", "dynmem.kernel",
                  "dynmem.expsum", "dynmem.norms", "dynmem.capacity", "dynmem.lyapunov_exponents",
                  "dynmem.fixed_points", "dynmem.margins", "dynmem.sensitivity", "dynmem.spectral_reparam")),
    ("face", ("dynmem", "dynmem.strategies", "dynmem.testing", "dynmem.plotting", "dynmem.sweep")),
    ("experiments", ("dynmem.experiments", "dynmem.reproduce")),
    ("cli", ("dynmem.cli",)),
)
FLOOR = {name: i for i, (name, _) in enumerate(LAYERS)}


def floor_of(module: str) -> str | None:
    """The floor of a dynmem module (longest matching entry of :data:`LAYERS`), None if it has none."""
    best, found = -1, None
    for name, entries in LAYERS:
        for entry in entries:
            if (module == entry or module.startswith(entry + ".")) and len(entry) > best:
                best, found = len(entry), name
    return found


def _imports(module: str, is_package: bool, source: str, known) -> list[tuple[int, str]]:
    """``(line, dynmem module)`` for every import in ``source`` (module level and inside functions).

    ``from pkg import name`` imports the submodule ``pkg.name`` when there is one, else ``pkg`` itself.
    """
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if _ours(a.name) and a.name.startswith("dynmem")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            if not (src == "dynmem" or src.startswith("dynmem.")):
                continue
            found += [(node.lineno, f"{src}.{a.name}" if f"{src}.{a.name}" in known else src) for a in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and node.args[0].value.startswith("dynmem")):
            found.append((node.lineno, node.args[0].value))
    return found


def upward_imports(module: str, is_package: bool, source: str, known) -> list[str]:
    """Imports in ``source`` of a module on a higher floor than ``module``'s (``known``: the dynmem modules)."""
    own = floor_of(module)
    bad = []
    for line, target in _imports(module, is_package, source, known):
        if target not in known or target == module or (target != "dynmem" and module.startswith(target + ".")):
            continue  # not a module of ours; itself; its own package (the face, ``dynmem``, is no one's package)
        floor = floor_of(target)
        if floor is not None and own is not None and FLOOR[floor] > FLOOR[own]:
            bad.append(f"{module}:{line}: imports {target} ({floor}, above {own})")
    return bad


def _dynmem_modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / "dynmem").rglob("*.py")):
        out[_module_name(path)] = path
    return out


def test_every_module_has_a_floor():
    missing = [m for m in _dynmem_modules() if floor_of(m) is None]
    assert not missing, f"modules without a floor in LAYERS (place them): {missing}"


def test_no_import_runs_upward():
    modules = _dynmem_modules()
    bad = []
    for module, path in modules.items():
        bad += upward_imports(module, path.name == "__init__.py", path.read_text(), modules)
    assert not bad, "imports that run upward (LAYERS, lowest floor first):\n" + "\n".join(bad)


@pytest.mark.parametrize("module, source, expected", [
    # a model importing an analysis, at module level and inside a function
    ("dynmem.models.rnn", "from ..memory import memory_function\n", ["dynmem.memory"]),
    ("dynmem.models.rnn", "def f():\n    from ..simulate import simulate\n", ["dynmem.simulate"]),
    ("dynmem.recurrences", "from .models import DiscreteRNN\n", ["dynmem.models"]),
    ("dynmem.recurrences", "import dynmem.models.rnn as r\n", ["dynmem.models.rnn"]),
    ("dynmem.memory", "from . import sweep\n", ["dynmem.sweep"]),
    ("dynmem.memory", "from dynmem import simulate, memory_function\n", ["dynmem"]),  # the face, by a name
    ("dynmem.ode.field", "import importlib\nm = importlib.import_module('dynmem.training')\n", ["dynmem.training"]),
    # allowed: same floor, below, the own package
    ("dynmem.memory", "from .models import CTRNN\nfrom .stability import perturbation_curve\n", []),
    ("dynmem.models.rnn", "from ..recurrences import forward\nfrom .contract import ParamArrays\n", []),
    ("dynmem.cli", "from .experiments import report\n", []),
])
def test_floor_checker_finds_what_it_should(module, source, expected):
    modules = _dynmem_modules()
    got = [line.split(" imports ")[1].split(" ")[0] for line in upward_imports(module, False, source, modules)]
    assert got == expected


# ---------------------------------------------------------------------------
# capabilities, not classes: no isinstance on a concrete RNN class outside the model wing

CONCRETE = {"CTRNN", "LinearRNN", "DiscreteRNN", "EulerRNN"}


def concrete_checks(source: str) -> list[tuple[int, list[str]]]:
    """``(line, classes)`` of every isinstance / issubclass / ``type(x) is`` test naming a concrete RNN class.

    A module-level tuple of classes (``_RNNS = (CTRNN, LinearRNN)``) counts as the classes it holds.
    """
    tree = ast.parse(source)
    aliases = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple):
            names = {e.id for e in node.value.elts if isinstance(e, ast.Name)} & CONCRETE
            for t in node.targets:
                if isinstance(t, ast.Name) and names:
                    aliases[t.id] = names

    def named(expr) -> set[str]:
        out = set()
        for n in ast.walk(expr):
            if isinstance(n, ast.Name):
                out |= ({n.id} & CONCRETE) | aliases.get(n.id, set())
            elif isinstance(n, ast.Attribute):
                out |= {n.attr} & CONCRETE
        return out

    found = []
    for node in ast.walk(tree):
        hit = set()
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("isinstance", "issubclass")
                and len(node.args) == 2):
            hit = named(node.args[1])
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.Is, ast.IsNot, ast.Eq, ast.NotEq)) for op in node.ops):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Call) and isinstance(s.func, ast.Name) and s.func.id == "type" for s in sides):
                hit = set().union(*(named(s) for s in sides if not isinstance(s, ast.Call)))
        if hit:
            found.append((node.lineno, sorted(hit)))
    return found


def test_no_concrete_class_check_outside_the_model_wing():
    bad = []
    for folder in ("dynmem", "theory", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("dynmem/models/"):
                continue
            bad += [f"{rel}:{line}: {names}" for line, names in concrete_checks(path.read_text())]
    assert not bad, ("isinstance on concrete model classes outside dynmem/models/ (ask for a capability of the "
                     "contract instead, dynmem.models.contract):\n" + "\n".join(bad))


@pytest.mark.parametrize("source, expected", [
    ("if isinstance(m, CTRNN):\n    pass\n", [["CTRNN"]]),
    ("ok = isinstance(m, (DiscreteRNN, models.EulerRNN))\n", [["DiscreteRNN", "EulerRNN"]]),
    ("_RNNS = (LinearRNN, CTRNN)\ndef f(m):\n    return isinstance(m, _RNNS)\n", [["CTRNN", "LinearRNN"]]),
    ("ok = issubclass(cls, LinearRNN)\n", [["LinearRNN"]]),
    ("ok = type(m) is EulerRNN\n", [["EulerRNN"]]),
    # capabilities are fine
    ("ok = isinstance(m, CTRNNForm) or isinstance(m, Recurrence)\n", []),
    ("m = CTRNN(W, U, b, c)\n", []),
])
def test_concrete_check_finder_finds_what_it_should(source, expected):
    assert [names for _, names in concrete_checks(source)] == expected
