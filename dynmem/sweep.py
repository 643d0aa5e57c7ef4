r"""Declarative parameter sweeps that run the same on a laptop and on a cluster.

A *sweep* runs a study function over every point of a :class:`Grid` and keeps
each finished task in a *store* (a directory), so that a sweep that is
interrupted, or loses a worker, resumes where it stopped::

    import dynmem as dm

    def study(width, seed, *, rng):            # module level, so it pickles
        model = dm.DiscreteRNN.random(width, 1, rng=rng)
        return {"radius": dm.spectral_radius(model.W), "W": model.W}

    grid = dm.Grid.product(width=[8, 16], seed=[0, 1])
    run = dm.run_sweep(study, grid, "my-sweep", seed=0, workers=2)
    table = dm.load_sweep("my-sweep").table    # numpy structured array

The work is handed to any :class:`concurrent.futures.Executor`: tasks run in
the calling process by default, in a :class:`~concurrent.futures.ProcessPoolExecutor`
with ``workers=N``, or on a Dask cluster through
``distributed.Client.get_executor()`` (:func:`dask_executor`; Dask is an
optional extra, ``pip install 'dynmem[distributed]'``).

Determinism
-----------
One root :class:`numpy.random.SeedSequence` (``seed``) is recorded in the
store.  Task ``p`` gets ``SeedSequence(root.entropy, spawn_key=root.spawn_key
+ h(p))`` where ``h(p)`` is four 32-bit words of the SHA-256 of the point's
canonical JSON, and the study function receives
``rng = numpy.random.default_rng`` of it.  The seed depends on the grid point
only (not on its position, the executor, the number of workers or the order
in which tasks finish), so results are bit-identical across executors.

Store layout
------------
``manifest.json``
    Format, study identity (``module.qualname`` and the keywords of a
    :func:`functools.partial`), the grid's points and hash, the root seed and
    the dynmem version.  A sweep of a different study, grid or seed pointed
    at the store is refused with a :class:`ValueError`.
``tasks/<key>.npz``, ``tasks/<key>.json``
    The arrays a task returned and its metadata sidecar (parameters, seed
    entropy and spawn key, dynmem version, wall time, host, process id,
    status, and for a failed task the error and full traceback).  Each is
    written to a temporary file and renamed into place with :func:`os.replace`;
    the sidecar is written last, so its presence marks the task finished and
    no file under a final name is ever partial.

``.lock``
    The writer lock: :func:`run_sweep` holds ``fcntl.flock`` on it from
    opening the store to its last write, so a second writer gets
    :class:`SweepLocked` at once instead of racing (advisory lock, not
    cooperation: one writer at a time).  The kernel drops the lock when the
    holder dies, so a killed sweep never leaves a stale lock.  On a file
    system without ``flock`` (some network mounts) the lock is not enforced.

Nothing read from a store is trusted.  The manifest's every field is checked
(task keys are 20 hex digits recomputed from their points, so no entry can
name a path outside the store); each finished task's ``.npz`` must load and
match its sidecar (the SHA-256 of the file, the names, dtypes and shapes of
its arrays), otherwise the task is *damaged*: :func:`load_sweep` and
``dynmem sweep status`` report it by file name and :func:`run_sweep`
recomputes it.  A store whose creation was killed before its manifest was in
place is completed by the next run.

Only the calling process writes to the store: workers return their results,
so a remote cluster needs no shared file system.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime
import errno
import functools
import hashlib
import json
import math
import numbers
import os
import re
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from . import io as _io
from ._validation import check_int, check_positive, describe

__all__ = [
    "Grid",
    "run_sweep",
    "load_sweep",
    "SweepRun",
    "SweepTable",
    "TaskRecord",
    "SweepInterrupted",
    "SweepLocked",
    "dask_executor",
    "process_pool",
    "DISTRIBUTED_EXTRA_HINT",
]

FORMAT = "dynmem-sweep/1"
DISTRIBUTED_EXTRA_HINT = "pip install 'dynmem[distributed]'"
_RESERVED = ("rng",)
_STATUSES = ("done", "failed", "pending", "damaged")


class SweepInterrupted(RuntimeError):
    """The executor went away mid-sweep (a worker process died, the pool was shut down).

    Every task that finished before is in the store; run the same sweep again
    to resume.
    """


# ----------------------------------------------------------------------------
# grid


def _canonical(value, where: str):
    """A JSON-compatible copy of a parameter value (tuples for sequences), or TypeError."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        x = float(value)
        if not math.isfinite(x):
            raise ValueError(f"{where} must be finite (it is stored as JSON); got {x}.")
        return x
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v, where) for v in value)
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{where} must have string keys (it is stored as JSON); got the key {bad[0]!r}.")
        return {k: _canonical(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(
        f"{where} must be None, a bool, an int, a finite float, a str or a list or dict of these (it is stored as JSON "
        f"and hashed to seed the task); got {describe(value)} of type {type(value).__name__}."
    )


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _point_digest(point: Mapping) -> bytes:
    return hashlib.sha256(_dumps({k: _jsonable(v) for k, v in point.items()}).encode()).digest()


def _check_name(name) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a grid axis name must be a Python identifier (it is passed as a keyword); got {name!r}.")
    if name in _RESERVED:
        raise ValueError(f"a grid axis must not be named {name!r}: the study function receives `rng` from the sweep.")
    return name


def _axis_values(name: str, values) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"axis `{name}` must be a sequence of values; got {describe(values)}.")
    vals = tuple(_canonical(v, f"axis `{name}`[{i}]") for i, v in enumerate(values))
    if not vals:
        raise ValueError(f"axis `{name}` must hold at least one value; got an empty sequence.")
    return vals


class Grid:
    """An ordered, immutable list of parameter points (dicts of named values).

    Build one with :meth:`product` or :meth:`zip` (or :meth:`from_points`) and
    combine grids with ``a * b`` (Cartesian product, disjoint names) and
    ``a + b`` (concatenation, same names).  Values are JSON scalars (``None``,
    bool, int, finite float, str) or lists of them; sequences come back as
    tuples.  Every point is distinct.

    Examples
    --------
    >>> g = Grid.product(width=[8, 16], seed=[0, 1]) + Grid.zip(width=[32], seed=[0])
    >>> len(g), g[0]
    (5, {'width': 8, 'seed': 0})
    """

    __slots__ = ("_names", "_points", "_keys")

    def __init__(self, names, points):
        names = tuple(_check_name(n) for n in names)
        if len(set(names)) != len(names):
            raise ValueError(f"grid axis names must be distinct; got {list(names)}.")
        pts = []
        for i, p in enumerate(points):
            if not isinstance(p, Mapping) or set(p) != set(names):
                raise ValueError(f"grid point {i} must have exactly the axes {list(names)}; got {describe(p)}.")
            pts.append({n: _canonical(p[n], f"grid point {i}, `{n}`") for n in names})
        if not pts:
            raise ValueError("a grid must hold at least one point; got none.")
        keys = tuple(_point_digest(p).hex()[:20] for p in pts)
        seen = {}
        for i, k in enumerate(keys):
            if k in seen:
                raise ValueError(f"grid points must be distinct; point {i} {pts[i]} repeats point {seen[k]}.")
            seen[k] = i
        self._names = names
        self._points = tuple(pts)
        self._keys = keys

    @classmethod
    def product(cls, **axes) -> "Grid":
        """Every combination of the axes' values; the first axis varies slowest (as :func:`itertools.product`)."""
        if not axes:
            raise ValueError("`Grid.product` needs at least one axis, e.g. Grid.product(width=[8, 16]).")
        names = [_check_name(n) for n in axes]
        vals = [_axis_values(n, v) for n, v in axes.items()]
        import itertools

        return cls(names, [dict(zip(names, combo)) for combo in itertools.product(*vals)])

    @classmethod
    def zip(cls, **axes) -> "Grid":
        """The axes' values taken together, position by position; every axis must have the same length."""
        if not axes:
            raise ValueError("`Grid.zip` needs at least one axis, e.g. Grid.zip(width=[8, 16], lr=[1e-2, 5e-3]).")
        names = [_check_name(n) for n in axes]
        vals = [_axis_values(n, v) for n, v in axes.items()]
        lengths = {n: len(v) for n, v in zip(names, vals)}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"`Grid.zip` axes must have the same length; got lengths {lengths}.")
        return cls(names, [dict(zip(names, combo)) for combo in zip(*vals)])

    @classmethod
    def from_points(cls, points) -> "Grid":
        """A grid of explicit points (a sequence of dicts with the same keys)."""
        points = list(points)
        if not points:
            raise ValueError("`points` must hold at least one point; got none.")
        if not isinstance(points[0], Mapping):
            raise TypeError(f"`points` must be dicts of parameter values; got {describe(points[0])}.")
        return cls(list(points[0]), points)

    @property
    def names(self) -> tuple:
        """The axis names, in order."""
        return self._names

    @property
    def keys(self) -> tuple:
        """Stable task keys (20 hex digits of the SHA-256 of each point's canonical JSON)."""
        return self._keys

    @property
    def points(self) -> list:
        """The points as a list of fresh dicts."""
        return [dict(p) for p in self._points]

    def __len__(self) -> int:
        return len(self._points)

    def __iter__(self):
        return iter(self.points)

    def __getitem__(self, i: int) -> dict:
        return dict(self._points[i])

    def __mul__(self, other: "Grid") -> "Grid":
        if not isinstance(other, Grid):
            return NotImplemented
        shared = set(self._names) & set(other._names)
        if shared:
            raise ValueError(f"the product of two grids needs disjoint axis names; both have {sorted(shared)}.")
        return Grid(self._names + other._names, [{**a, **b} for a in self._points for b in other._points])

    def __add__(self, other: "Grid") -> "Grid":
        if not isinstance(other, Grid):
            return NotImplemented
        if set(self._names) != set(other._names):
            raise ValueError(f"concatenated grids need the same axes; got {list(self._names)} and {list(other._names)}.")
        return Grid(self._names, list(self._points) + [{n: p[n] for n in self._names} for p in other._points])

    def __eq__(self, other) -> bool:
        return isinstance(other, Grid) and self._names == other._names and self._keys == other._keys

    def __hash__(self) -> int:
        return hash((self._names, self._keys))

    def __repr__(self) -> str:
        return f"Grid(axes={list(self._names)}, n_points={len(self)})"

    def _sha256(self) -> str:
        return hashlib.sha256(_dumps([list(self._names), list(self._keys)]).encode()).hexdigest()


# ----------------------------------------------------------------------------
# study identity, seeds, task execution (the part that runs on a worker)


def _study_id(fn) -> str:
    """``module.qualname`` of the study, with a partial's bound arguments; TypeError for what cannot be named."""
    if isinstance(fn, functools.partial):
        args = [_jsonable(_canonical(a, "a positional argument bound by functools.partial")) for a in fn.args]
        kw = {k: _jsonable(_canonical(v, f"the keyword `{k}` bound by functools.partial"))
              for k, v in (fn.keywords or {}).items()}
        return f"{_study_id(fn.func)}(*{_dumps(args)}, **{_dumps(kw)})"
    if not callable(fn):
        raise TypeError(f"`fn` must be a callable study function fn(**params, rng=...); got {describe(fn)}.")
    mod = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", None)
    if not mod or not qual:
        raise TypeError(
            f"`fn` must be a module-level function (or a functools.partial of one) so that it can be pickled "
            f"and named in the store; got {describe(fn)}."
        )
    if "<lambda>" in qual or "<locals>" in qual:
        raise TypeError(
            f"`fn` must be a module-level function (or a functools.partial of one) so that it can be pickled "
            f"and named in the store; got {mod}.{qual}."
        )
    return f"{mod}.{qual}"


def _root_seed(seed) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise TypeError(f"`seed` must be a non-negative int, a numpy.random.SeedSequence or None; got {describe(seed)}.")
    return np.random.SeedSequence(int(seed))


def _spawn_key(root_key, digest: bytes) -> tuple:
    return tuple(int(k) for k in root_key) + tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))


def _check_result(out) -> dict:
    if not isinstance(out, Mapping):
        raise TypeError(f"the study function must return a dict of arrays or scalars; got {describe(out)}.")
    arrays = {}
    for k, v in out.items():
        if not isinstance(k, str) or not k or k.startswith("_"):
            raise ValueError(f"result keys must be non-empty strings not starting with '_'; got {k!r}.")
        try:
            a = np.asarray(v)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"result `{k}` must be an array or a scalar; got {describe(v)} ({exc}).") from exc
        if a.dtype.kind not in "biufcUS":
            raise TypeError(
                f"result `{k}` must be numeric, boolean or text (stored without pickle); got dtype {a.dtype} "
                f"from {describe(v)}."
            )
        arrays[k] = a
    return arrays


def _utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _execute(fn, params: dict, entropy, spawn_key: tuple) -> dict:
    """Run one task; an ``Exception`` becomes a failed outcome, anything else (an interruption) propagates."""
    info = dict(host=socket.gethostname(), pid=os.getpid(), started_utc=_utc())
    t0 = time.perf_counter()
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=spawn_key))
    try:
        arrays = _check_result(fn(**params, rng=rng))
    except Exception as exc:
        return dict(info, status="failed", seconds=time.perf_counter() - t0, error=_error_line(exc),
                    traceback=traceback.format_exc(), arrays=None)
    return dict(info, status="done", seconds=time.perf_counter() - t0, error="", traceback="", arrays=arrays)


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ----------------------------------------------------------------------------
# the store


def _dynmem_version() -> str:
    from .version import __version__

    return __version__


def _tasks_dir(store: str) -> str:
    return os.path.join(store, "tasks")


def _check_tasks_dir(store: str, name: str = "store") -> None:
    """Refuse a ``tasks/`` that is a symbolic link or not a folder (writes through it would leave the store)."""
    tasks = _tasks_dir(store)
    if os.path.islink(tasks):
        raise ValueError(f"`{name}` {store!r} has a symbolic link as its tasks/ folder (to "
                         f"{os.readlink(tasks)!r}); a sweep store keeps its task files inside itself: "
                         f"refusing to read or write through it.")
    if os.path.lexists(tasks) and not os.path.isdir(tasks):
        raise ValueError(f"`{name}` {store!r} has a tasks/ that is not a folder; refusing to use it.")


_KEY_RE = re.compile(r"[0-9a-f]{20}")
_LOCK_NAME = ".lock"


def _paths(store: str, key: str):
    # Keys come from manifests, which are read, not trusted: only 20 hex digits name a file,
    # so no manifest entry (say "../../x") can point outside the store.
    if not (isinstance(key, str) and _KEY_RE.fullmatch(key)):
        raise ValueError(f"task key {key!r} is not 20 hex digits; refusing to build a path from it.")
    base = os.path.join(_tasks_dir(store), key)
    return base + ".npz", base + ".json"


def _manifest(study: str, grid: Grid, root: np.random.SeedSequence) -> dict:
    return dict(
        format=FORMAT, study=study, axes=list(grid.names), n_tasks=len(grid), grid_sha256=grid._sha256(),
        keys=list(grid.keys), points=[{k: _jsonable(v) for k, v in p.items()} for p in grid._points],
        seed=dict(entropy=root.entropy, spawn_key=list(root.spawn_key)),
        dynmem_version=_dynmem_version(), created_utc=_utc(),
    )


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _manifest_problem(man) -> str:
    """What is wrong with a parsed manifest ("" if nothing): every field a reader uses is checked."""
    if not isinstance(man, dict):
        return f"it holds a JSON {type(man).__name__}, not an object"
    if man.get("format") != FORMAT:
        return f"its format is {man.get('format')!r}, not {FORMAT!r}"
    for name, kind in (("study", str), ("axes", list), ("keys", list), ("points", list), ("seed", dict),
                       ("grid_sha256", str)):
        if not isinstance(man.get(name), kind):
            return f"its `{name}` is missing or not a {kind.__name__}"
    seed = man["seed"]
    if not (_is_int(seed.get("entropy")) and seed["entropy"] >= 0 and isinstance(seed.get("spawn_key"), list)
            and all(_is_int(k) and k >= 0 for k in seed["spawn_key"])):
        return "its `seed` must hold a non-negative int `entropy` and a list of non-negative ints `spawn_key`"
    if len(man["keys"]) != len(man["points"]) or man.get("n_tasks") != len(man["keys"]):
        return (f"it lists {len(man['keys'])} keys, {len(man['points'])} points and n_tasks = "
                f"{man.get('n_tasks')!r}, which must agree")
    bad = [k for k in man["keys"] if not (isinstance(k, str) and _KEY_RE.fullmatch(k))]
    if bad:
        return f"its task key {bad[0]!r} is not 20 hex digits (keys name files inside the store)"
    try:
        grid = Grid(man["axes"], man["points"])
    except (TypeError, ValueError) as exc:
        return f"its grid does not rebuild ({exc})"
    if list(grid.keys) != man["keys"]:
        i = next(i for i, (a, b) in enumerate(zip(grid.keys, man["keys"])) if a != b)
        return f"its key {man['keys'][i]!r} does not match point {i} (whose key is {grid.keys[i]!r})"
    if grid._sha256() != man["grid_sha256"]:
        return "its grid_sha256 does not match its keys"
    return ""


def _read_manifest(store: str, name: str = "store") -> dict:
    path = os.path.join(store, "manifest.json")
    try:
        man = _io.read_json(path)
    except FileNotFoundError:
        raise ValueError(f"`{name}` {store!r} is not a sweep store: it has no manifest.json.") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"`{name}` {store!r} has an unreadable manifest.json ({exc}).") from exc
    fmt = man.get("format") if isinstance(man, dict) else None
    if fmt != FORMAT:
        raise ValueError(f"`{name}` {store!r} is not a {FORMAT} store (its manifest says format {fmt!r}).")
    problem = _manifest_problem(man)
    if problem:
        raise ValueError(f"`{name}` {store!r} has a malformed manifest.json: {problem}.")
    return man


class SweepLocked(RuntimeError):
    """Another process is writing to this sweep store (one writer at a time).

    :func:`run_sweep` holds an advisory lock (``fcntl.flock`` on
    ``<store>/.lock``) from opening the store to its last write; the kernel
    releases it when the holder exits, however it exits, so a killed sweep
    never leaves a stale lock.  Readers (:func:`load_sweep`,
    ``dynmem sweep status``) do not take it.
    """


@contextlib.contextmanager
def _store_lock(store: str):
    """Hold the store's writer lock (see :class:`SweepLocked`)."""
    os.makedirs(store, exist_ok=True)
    path = os.path.join(store, _LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_io.current_umask())
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock, as documented
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    raise
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "a process"
                raise SweepLocked(
                    f"`store` {store!r} is being written by another sweep ({holder}); a store takes one writer "
                    f"at a time: wait for that sweep to finish (or stop it), or use another store directory."
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {_utc()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # releases the lock; the file stays (removing it would race with a waiting writer)


def _creation_leftovers_only(store: str) -> bool:
    """True if ``store`` holds nothing but what an interrupted creation leaves (lock, temporaries, empty tasks/)."""
    for name in os.listdir(store):
        full = os.path.join(store, name)
        if name == _LOCK_NAME or name.startswith(".dynmem-"):
            continue
        if name == "tasks" and os.path.isdir(full) and all(n.startswith(".dynmem-") for n in os.listdir(full)):
            continue
        return False
    return True


def _check_creatable(store: str) -> None:
    if (os.path.isdir(store) and not os.path.exists(os.path.join(store, "manifest.json"))
            and not _creation_leftovers_only(store)):
        raise ValueError(
            f"`store` {store!r} is a non-empty directory without a sweep manifest; use a new or empty directory."
        )


def _open_store(store: str, study: str, grid: Grid, seed) -> tuple[dict, np.random.SeedSequence]:
    """Create the store, or check that the existing one holds this very sweep; return (manifest, root seed).

    Called with the writer lock held.  A directory holding only what an
    interrupted creation leaves behind (the lock file, temporaries, an empty
    ``tasks/``) is completed into a store.
    """
    man_path = os.path.join(store, "manifest.json")
    _check_tasks_dir(store)
    if os.path.exists(man_path):
        man = _read_manifest(store)
        theirs = np.random.SeedSequence(man["seed"]["entropy"], spawn_key=tuple(man["seed"]["spawn_key"]))
        root = theirs if seed is None else _root_seed(seed)
        diffs = []
        if man["study"] != study:
            diffs.append(f"its study is {man['study']!r}, this one is {study!r}")
        if man["grid_sha256"] != grid._sha256():
            diffs.append(f"its grid has axes {man['axes']} and {man['n_tasks']} points, this one has axes "
                         f"{list(grid.names)} and {len(grid)} points (or different values)")
        if (root.entropy, tuple(root.spawn_key)) != (theirs.entropy, tuple(theirs.spawn_key)):
            diffs.append(f"its seed entropy is {theirs.entropy}, this one's is {root.entropy}")
        if diffs:
            raise ValueError(
                f"`store` {store!r} already holds a different sweep: " + "; ".join(diffs)
                + ". Point this sweep at a new directory (or delete the old store)."
            )
        os.makedirs(_tasks_dir(store), exist_ok=True)  # a creation killed after the manifest was written
        return man, root
    _check_creatable(store)
    root = np.random.SeedSequence() if seed is None else _root_seed(seed)
    man = _manifest(study, grid, root)
    os.makedirs(_tasks_dir(store), exist_ok=True)
    _io.atomic_write_json(man_path, man)
    return man, root


def _meta_problem(meta, key: str) -> str:
    if not isinstance(meta, dict):
        return f"it holds a JSON {type(meta).__name__}, not an object"
    missing = [k for k in ("key", "status", "seed", "params", "fields") if k not in meta]
    if missing:
        return f"it lacks the field(s) {', '.join(missing)}"
    if meta["key"] != key:
        return f"it belongs to task {meta['key']!r}, not {key!r}"
    if meta["status"] not in ("done", "failed"):
        return f"its status is {meta['status']!r}, not 'done' or 'failed'"
    seed = meta["seed"]
    if not (isinstance(seed, dict) and _is_int(seed.get("entropy")) and isinstance(seed.get("spawn_key"), list)):
        return "its `seed` is not {entropy: int, spawn_key: [int, ...]}"
    if not isinstance(meta["fields"], dict) or not all(
            isinstance(f, dict) and isinstance(f.get("dtype"), str) and isinstance(f.get("shape"), list)
            for f in meta["fields"].values()):
        return "its `fields` is not {name: {dtype, shape}}"
    if meta["status"] == "done" and "npz_sha256" in meta and not isinstance(meta["npz_sha256"], str):
        return "its npz_sha256 is not a string"
    return ""


def _inspect_task(store: str, key: str) -> tuple[str, dict, dict, str]:
    """``(status, sidecar, arrays, problem)`` of one task, checked against its sidecar.

    ``status`` is ``"pending"`` (no sidecar: not finished), ``"done"``,
    ``"failed"`` or ``"damaged"``: a sidecar that does not parse or lacks
    fields, or a result file that is missing, does not load, differs from the
    SHA-256 its sidecar recorded, or holds other arrays (names, dtypes,
    shapes) than the sidecar lists.  ``problem`` says which, naming the file.
    """
    npz, side = _paths(store, key)
    if not os.path.exists(side):
        return "pending", {}, {}, ""
    try:
        meta = _io.read_json(side)
    except (OSError, ValueError) as exc:
        return "damaged", {}, {}, f"sidecar {side!r} does not parse ({_error_line(exc)})"
    problem = _meta_problem(meta, key)
    if problem:
        return "damaged", {}, {}, f"sidecar {side!r} is not a task record: {problem}"
    if meta["status"] == "failed":
        return "failed", meta, {}, ""
    try:
        with open(npz, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return "damaged", meta, {}, f"result file {npz!r} of a finished task cannot be read ({_error_line(exc)})"
    want = meta.get("npz_sha256")
    if want is not None and hashlib.sha256(data).hexdigest() != want:
        return "damaged", meta, {}, (f"result file {npz!r} does not match its sidecar (SHA-256 differs: truncated, "
                                     f"altered or another task's file)")
    try:
        with np.load(_bytes_io(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # BadZipFile, EOFError, zlib.error, ValueError, OSError ...: whatever a bad file raises
        return "damaged", meta, {}, f"result file {npz!r} does not load ({_error_line(exc)})"
    fields = meta["fields"]
    got = {k: dict(dtype=str(a.dtype), shape=list(a.shape)) for k, a in arrays.items()}
    if got != fields:
        return "damaged", meta, {}, (f"result file {npz!r} holds arrays {got} but its sidecar records {fields}")
    return "done", meta, arrays, ""


def _bytes_io(data: bytes):
    import io as _stdio

    return _stdio.BytesIO(data)


def _remove_stale_temporaries(store: str) -> None:
    # Left by a process killed between mkstemp and os.replace; never under a final name.  Called
    # with the writer lock held, so no other writer has a temporary in flight: every one goes.
    for folder in (store, _tasks_dir(store)):
        _io.remove_stale_temporaries(folder)


def _write_task(store, key, index, params, study, root, spawn_key, outcome) -> None:
    npz, side = _paths(store, key)
    arrays = outcome["arrays"]
    sha = ""
    if arrays is not None:
        buf = _bytes_io(b"")
        np.savez(buf, **arrays)
        data = buf.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        _io.atomic_write_bytes(npz, data)
    elif os.path.exists(npz):
        os.remove(npz)  # a stale result of an earlier attempt must not pass for this one
    meta = dict(
        key=key, index=index, params={k: _jsonable(v) for k, v in params.items()}, study=study,
        status=outcome["status"], seed=dict(entropy=root.entropy, spawn_key=list(spawn_key)),
        dynmem_version=_dynmem_version(), seconds=outcome["seconds"], host=outcome["host"], pid=outcome["pid"],
        started_utc=outcome["started_utc"], finished_utc=_utc(), error=outcome["error"],
        traceback=outcome["traceback"],
        fields={} if arrays is None else {k: dict(dtype=str(a.dtype), shape=list(a.shape)) for k, a in arrays.items()},
    )
    if arrays is not None:
        meta["npz_sha256"] = sha
    _io.atomic_write_json(side, meta)  # last: its presence marks the task finished


# ----------------------------------------------------------------------------
# process pools whose workers die with their parent


def _watch_parent(parent_pid: int) -> None:
    """In a pool worker: exit as soon as the process that made the pool is gone.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` plus a thread blocked on a
    pidfd of the parent; elsewhere a thread polling the parent's pid once a
    second.  A SIGKILLed sweep therefore leaves no worker computing.
    """
    import threading

    with contextlib.suppress(Exception):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1

    def watch():
        try:
            fd = os.pidfd_open(parent_pid)
        except ProcessLookupError:
            os._exit(1)
        except (AttributeError, OSError):
            fd = None
        if fd is not None:
            import select

            select.select([fd], [], [])  # readable once the parent has exited
            os._exit(1)
        while True:  # pragma: no cover - platforms without pidfd
            time.sleep(1.0)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except OSError:
                pass

    threading.Thread(target=watch, name="dynmem-parent-watch", daemon=True).start()


class DyingProcessPool(cf.ProcessPoolExecutor):
    """A process pool whose workers exit when the process that made it dies (see :func:`process_pool`)."""

    def terminate(self) -> None:
        """Stop now: cancel pending tasks, kill the workers (running tasks are lost) and shut down."""
        procs = list((getattr(self, "_processes", None) or {}).values())
        for p in procs:
            with contextlib.suppress(Exception):
                p.kill()
        self.shutdown(wait=True, cancel_futures=True)


def process_pool(workers: int) -> DyingProcessPool:
    """A :class:`~concurrent.futures.ProcessPoolExecutor` of ``workers`` processes that die with this process.

    What :func:`run_sweep` uses for ``workers=N`` and ``dynmem reproduce
    --workers N`` uses for its pool; use it for your own pools (``with
    process_pool(2) as ex: run_sweep(..., executor=ex)``).  Its
    ``terminate()`` kills the workers at once (for an interrupted run).
    """
    workers = check_int("workers", workers, minimum=1)
    return DyingProcessPool(max_workers=workers, initializer=_watch_parent, initargs=(os.getpid(),))


# ----------------------------------------------------------------------------
# progress


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "--"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}"


class _Progress:
    """``done / failed / remaining`` and an ETA on stderr; redrawn in place on a terminal, else throttled lines."""

    def __init__(self, total, done, failed, *, enabled, label="sweep", stream=None, interval=1.0):
        self.total, self.done, self.failed = total, done, failed
        self.enabled = enabled
        self.label = label
        self.stream = stream
        self.interval = interval
        self.start = time.perf_counter()
        self.finished_here = 0
        self.last = -math.inf
        self.tty = False
        if enabled:
            s = self.out
            self.tty = bool(getattr(s, "isatty", lambda: False)())

    @property
    def out(self):
        return self.stream if self.stream is not None else sys.stderr

    def line(self) -> str:
        remaining = self.total - self.done - self.failed
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.finished_here * remaining if self.finished_here else (0.0 if remaining == 0 else math.inf)
        return (f"{self.label}: {self.done}/{self.total} done, {self.failed} failed, {remaining} remaining, "
                f"elapsed {_fmt_seconds(elapsed)}, ETA {_fmt_seconds(eta)}")

    def show(self, force=False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        if self.tty:
            print("\r" + self.line() + "\x1b[K", end="", file=self.out, flush=True)
        else:
            print(self.line(), file=self.out, flush=True)

    def update(self, status: str) -> None:
        self.finished_here += 1
        if status == "done":
            self.done += 1
        else:
            self.failed += 1
        self.show(force=self.done + self.failed == self.total)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=self.out, flush=True)


# ----------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class SweepRun:
    """What one :func:`run_sweep` call did.

    Attributes
    ----------
    store : str
        The store directory.
    n_tasks : int
        Points in the grid.
    n_done, n_failed, n_pending : int
        Tasks in each state after the call (``n_pending`` is 0 unless the
        sweep was interrupted, which raises instead of returning).
    n_skipped : int
        Tasks already finished in the store when the call started (not rerun).
    n_run : int
        Tasks executed by this call.
    seconds : float
        Wall time of the call.
    failed : tuple of str
        Keys of the failed tasks (see :func:`load_sweep` for their errors).
    repaired : tuple of str
        Keys of tasks found damaged in the store (files that did not load or
        did not match their sidecar) and recomputed by this call.
    complete : bool
        Every task is done (none failed or pending).
    """

    store: str
    n_tasks: int
    n_done: int
    n_failed: int
    n_pending: int
    n_skipped: int
    n_run: int
    seconds: float
    failed: tuple = ()
    repaired: tuple = ()

    @property
    def complete(self) -> bool:
        return self.n_done == self.n_tasks


@dataclass(frozen=True)
class TaskRecord:
    """One task of a stored sweep.

    Attributes
    ----------
    key : str
        Stable task key (hash of the grid point).
    index : int
        Position of the point in the grid.
    params : dict
        The grid point.
    status : {"done", "failed", "pending", "damaged"}
        ``"damaged"``: the task's files do not load or do not match its
        sidecar (see :func:`load_sweep`); it is recomputed on resume.
    result : dict of str to ndarray
        The arrays the study returned (empty unless done).
    error : str
        ``"ExceptionType: first line"`` of a failed task, what is wrong with
        a damaged one (naming the file), else ``""``.
    traceback : str
        Full traceback of a failed task, else ``""``.
    seconds : float
        Wall time of the task (NaN when pending).
    host : str
        Host that ran it (``""`` when pending).
    seed_entropy : int
        Entropy of the task's :class:`numpy.random.SeedSequence` (the root's).
    spawn_key : tuple of int
        Its spawn key (the root's followed by four words of the point's hash).
    meta : dict
        The whole JSON sidecar (empty when pending).
    """

    key: str
    index: int
    params: dict
    status: str
    result: dict = field(default_factory=dict)
    error: str = ""
    traceback: str = ""
    seconds: float = math.nan
    host: str = ""
    seed_entropy: int = 0
    spawn_key: tuple = ()
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SweepTable:
    """A stored sweep, loaded: :func:`load_sweep`.

    Attributes
    ----------
    path : str
        The store directory.
    study : str
        The study's identity as recorded in the manifest.
    axes : tuple of str
        Grid axis names.
    records : tuple of TaskRecord
        One per grid point, in grid order.
    table : numpy structured array, shape (n_tasks,)
        Columns ``index``, ``key``, the axes, ``status``, ``seconds``, then
        every scalar (0-d) result field.  A scalar field missing from some row
        (failed or pending task) is NaN there (integer and boolean fields are
        then widened to float64; text fields are ``""``); a result field whose
        name clashes with another column gets the prefix ``result_``.
    manifest : dict
        The store's manifest.
    """

    path: str
    study: str
    axes: tuple
    records: tuple
    table: np.ndarray
    manifest: dict

    @property
    def n_tasks(self) -> int:
        return len(self.records)

    @property
    def n_done(self) -> int:
        return sum(r.status == "done" for r in self.records)

    @property
    def n_failed(self) -> int:
        return sum(r.status == "failed" for r in self.records)

    @property
    def n_pending(self) -> int:
        return sum(r.status == "pending" for r in self.records)

    @property
    def n_damaged(self) -> int:
        """Tasks whose files do not load or do not match their sidecar (recomputed on resume)."""
        return sum(r.status == "damaged" for r in self.records)

    @property
    def seconds(self) -> float:
        """Total wall time of the finished tasks (summed over tasks, not the sweep's elapsed time)."""
        return float(sum(r.seconds for r in self.records if r.status in ("done", "failed")))

    def __len__(self) -> int:
        return len(self.records)


def _column_dtype(values):
    vals = [v for v in values]
    if all(isinstance(v, bool) for v in vals):
        return np.bool_
    if all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        return np.int64
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        return np.float64
    return None  # text


def load_sweep(path: str) -> SweepTable:
    """Load a sweep store written by :func:`run_sweep`.

    Parameters
    ----------
    path : str
        The store directory.

    Returns
    -------
    SweepTable
        Every task in grid order (done, failed, pending or damaged) with its
        arrays, errors and metadata, and a numpy structured array of the
        scalar fields (no pandas needed; ``pandas.DataFrame(table.table)``
        works).  Nothing read is trusted: a task whose files do not load or
        do not match its sidecar (truncated, empty, bit-flipped, missing
        fields, another task's arrays) has status ``"damaged"`` and its
        ``error`` names the file and what is wrong; :func:`run_sweep`
        recomputes it.

    Raises
    ------
    ValueError
        If ``path`` is not a sweep store, or its manifest is malformed (every
        field is checked; a task key that is not 20 hex digits, which could
        name a path outside the store, is refused).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a directory path; got {describe(path)}.")
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ValueError(f"`path` must be an existing sweep store directory; got {path!r}.")
    _check_tasks_dir(path, "path")
    man = _read_manifest(path, "path")
    root_entropy = man["seed"]["entropy"]
    records = []
    for index, (key, params) in enumerate(zip(man["keys"], man["points"])):
        status, meta, result, problem = _inspect_task(path, key)
        if status in ("pending", "damaged"):
            digest = _point_digest({k: _jsonable(_canonical(v, k)) for k, v in params.items()})
            records.append(TaskRecord(key=key, index=index, params=params, status=status, error=problem,
                                      seed_entropy=root_entropy,
                                      spawn_key=_spawn_key(man["seed"]["spawn_key"], digest)))
            continue
        try:
            seconds = float(meta.get("seconds", math.nan))
        except (TypeError, ValueError):
            seconds = math.nan
        records.append(TaskRecord(
            key=key, index=index, params=params, status=status, result=result, error=str(meta.get("error", "")),
            traceback=str(meta.get("traceback", "")), seconds=seconds,
            host=str(meta.get("host", "")), seed_entropy=meta["seed"]["entropy"],
            spawn_key=tuple(meta["seed"]["spawn_key"]), meta=meta,
        ))
    return SweepTable(path=path, study=man["study"], axes=tuple(man["axes"]), records=tuple(records),
                      table=_table(man["axes"], records), manifest=man)


def _table(axes, records) -> np.ndarray:
    n = len(records)
    cols: list[tuple[str, Any, list]] = []
    cols.append(("index", np.int64, [r.index for r in records]))
    cols.append(("key", f"U{max(len(r.key) for r in records)}", [r.key for r in records]))
    for a in axes:
        vals = [r.params[a] for r in records]
        dt = _column_dtype(vals)
        if dt is None:
            vals = [v if isinstance(v, str) else _dumps(v) for v in vals]
            dt = f"U{max(1, max(len(v) for v in vals))}"
        cols.append((a, dt, vals))
    cols.append(("status", "U7", [r.status for r in records]))
    cols.append(("seconds", np.float64, [r.seconds for r in records]))
    taken = {c[0] for c in cols}
    scalars: dict[str, list] = {}
    for r in records:
        for k, v in r.result.items():
            if v.ndim == 0:
                scalars.setdefault(k, [])
    for k in scalars:
        present = [r.result[k] for r in records if k in r.result and r.result[k].ndim == 0]
        dt = np.result_type(*present)
        full = len(present) == n
        if dt.kind in "US":
            width = max(1, max(len(str(v)) for v in present))
            dt = np.dtype(f"U{width}")
            fill = ""
        elif full:
            fill = 0
        else:
            dt = np.result_type(dt, np.float64)
            fill = np.nan
        vals = [r.result[k][()] if k in r.result and r.result[k].ndim == 0 else fill for r in records]
        name = k if k not in taken else f"result_{k}"
        taken.add(name)
        cols.append((name, dt, vals))
    table = np.empty(n, dtype=[(c[0], c[1]) for c in cols])
    for name, _, vals in cols:
        table[name] = vals
    return table


# ----------------------------------------------------------------------------
# running


def _as_store(store) -> str:
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"`store` must be a directory path; got {describe(store)}.")
    store = os.fspath(store)
    if os.path.exists(store) and not os.path.isdir(store):
        raise ValueError(f"`store` must be a directory; got the file {store!r}.")
    return store


def run_sweep(
    fn: Callable[..., Mapping],
    grid: Grid,
    store,
    *,
    seed=None,
    executor: cf.Executor | None = None,
    workers: int | None = None,
    progress: bool = False,
    retry_failed: bool = True,
    label: str = "sweep",
) -> SweepRun:
    """Run ``fn`` on every point of ``grid`` that is not finished in ``store``.

    Parameters
    ----------
    fn : callable
        ``fn(**point, rng=numpy.random.Generator) -> dict`` of arrays or
        scalars (numeric, boolean or text; stored in ``.npz`` without pickle).
        A module-level function, or a :func:`functools.partial` of one whose
        bound arguments are JSON values, so that it pickles and has a stable
        name in the store.
    grid : Grid
        The parameter points.
    store : str or os.PathLike
        Directory of the result store: created if missing; if it holds the
        same sweep (study, grid and seed), finished tasks are skipped.
    seed : int, numpy.random.SeedSequence or None
        Root seed of the sweep.  ``None``: the store's seed when resuming, a
        fresh one (recorded) otherwise.
    executor : concurrent.futures.Executor, optional
        Where tasks run, e.g. a :class:`~concurrent.futures.ProcessPoolExecutor`
        or ``distributed.Client.get_executor()`` (:func:`dask_executor`).  It
        is not shut down.  Default: in the calling process, one task after
        another.
    workers : int, optional
        Run on a new ``ProcessPoolExecutor(workers)``, shut down at the end.
        Not together with ``executor``.
    progress : bool
        Print ``done / failed / remaining`` counts and an ETA on stderr.
    retry_failed : bool
        Rerun tasks recorded as failed (default); ``False`` keeps them.
    label : str
        Name shown in the progress line.

    Returns
    -------
    SweepRun
        Counts and timing of the call; :func:`load_sweep` reads the results.

    Raises
    ------
    ValueError, TypeError
        Bad arguments, or a store holding a different sweep.
    SweepLocked
        Another process is running a sweep on this store (one writer at a
        time; the lock is released when that process ends, however it ends).
    SweepInterrupted
        The executor broke (e.g. a worker process was killed); the finished
        tasks are kept, run the sweep again to resume.
    KeyboardInterrupt, SystemExit
        Propagated from a task or the caller; the store holds every task that
        finished before and no partial file.

    Notes
    -----
    A task whose study function raises an :class:`Exception` is recorded as
    failed, with its error and traceback, and the sweep goes on.  A task found
    damaged in the store (see :func:`load_sweep`) is recomputed, whatever
    ``retry_failed`` says, and listed in ``SweepRun.repaired``.  A store
    whose creation was interrupted (only the lock file, temporaries and an
    empty ``tasks/`` in it) is completed.  With ``workers=N`` the pool's
    processes exit when this process dies (:func:`process_pool`).  An error
    raised by the executor for one task (e.g. Dask's ``KilledWorker``) is
    recorded the same way.
    """
    t_start = time.perf_counter()
    study = _study_id(fn)
    if not isinstance(grid, Grid):
        raise TypeError(f"`grid` must be a dynmem.sweep.Grid (Grid.product, Grid.zip); got {describe(grid)}.")
    store = _as_store(store)
    if workers is not None:
        workers = check_int("workers", workers, minimum=1)
        if executor is not None:
            raise ValueError("pass either `executor` or `workers`, not both; got both.")
    if executor is not None and not isinstance(executor, cf.Executor):
        raise TypeError(f"`executor` must be a concurrent.futures.Executor; got {describe(executor)}.")
    if not isinstance(progress, bool):
        raise TypeError(f"`progress` must be True or False; got {describe(progress)}.")
    if not isinstance(label, str):
        raise TypeError(f"`label` must be a string; got {describe(label)}.")
    if seed is not None:
        _root_seed(seed)
    _check_creatable(store)  # before the lock file is made in someone's unrelated directory
    with _store_lock(store):
        return _run_locked(fn, grid, store, study, seed, executor, workers, progress, retry_failed, label, t_start)


def _run_locked(fn, grid, store, study, seed, executor, workers, progress, retry_failed, label, t_start) -> SweepRun:
    man, root = _open_store(store, study, grid, seed)
    _remove_stale_temporaries(store)

    status = [_inspect_task(store, k)[0] for k in grid.keys]
    repaired_keys = tuple(grid.keys[i] for i, st in enumerate(status) if st == "damaged")
    keep = ("done", "failed") if not retry_failed else ("done",)
    todo = [i for i, st in enumerate(status) if st not in keep]
    n_skipped = len(grid) - len(todo)
    counts = {"done": sum(s == "done" for s in status), "failed": sum(s == "failed" for s in status)}
    if retry_failed:
        counts["failed"] = 0
    prog = _Progress(len(grid), counts["done"], counts["failed"], enabled=progress, label=label)
    prog.show(force=True)

    spawn = {i: _spawn_key(root.spawn_key, _point_digest(grid._points[i])) for i in todo}

    def finish(i, outcome):
        _write_task(store, grid.keys[i], i, grid._points[i], study, root, spawn[i], outcome)
        status[i] = outcome["status"]
        prog.update(outcome["status"])

    n_run = 0
    try:
        if executor is None and workers is None:
            for i in todo:
                finish(i, _execute(fn, grid[i], root.entropy, spawn[i]))
                n_run += 1
        else:
            own = executor is None
            ex = process_pool(workers) if own else executor
            futures = {}
            broken = None
            try:
                for i in todo:
                    futures[ex.submit(_execute, fn, grid[i], root.entropy, spawn[i])] = i
                for fut in cf.as_completed(futures):
                    i = futures[fut]
                    try:
                        outcome = fut.result()
                    except (cf.BrokenExecutor, cf.CancelledError) as exc:
                        # Keep draining: tasks that finished before the break are written, not lost.
                        broken = broken or exc
                        continue
                    except Exception as exc:  # the executor's own error for this task (pickling, lost worker)
                        outcome = dict(status="failed", seconds=math.nan, host="", pid=-1, started_utc="",
                                       error=_error_line(exc), arrays=None,
                                       traceback="".join(traceback.format_exception(exc)))
                    finish(i, outcome)
                    n_run += 1
                if broken is not None:
                    raise SweepInterrupted(
                        f"the executor stopped before the sweep finished ({_error_line(broken)}); "
                        f"{sum(s == 'done' for s in status)} of {len(grid)} tasks are done in {store!r}: "
                        f"run the same sweep again to resume."
                    ) from broken
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
            finally:
                if own:
                    ex.shutdown(wait=True, cancel_futures=True)
    finally:
        prog.close()
    return SweepRun(
        store=store, n_tasks=len(grid), n_done=sum(s == "done" for s in status),
        n_failed=sum(s == "failed" for s in status), n_pending=sum(s in ("pending", "damaged") for s in status),
        n_skipped=n_skipped, n_run=n_run, seconds=time.perf_counter() - t_start,
        failed=tuple(grid.keys[i] for i, s in enumerate(status) if s == "failed"),
        repaired=repaired_keys,
    )


# ----------------------------------------------------------------------------
# Dask


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"running a sweep on a Dask cluster needs dask.distributed, which is not installed; install the extra "
            f"with: {DISTRIBUTED_EXTRA_HINT}"
        ) from exc
    return distributed


def dask_executor(address, *, timeout: float = 30.0):
    """A :class:`concurrent.futures.Executor` on a Dask cluster: ``Client(address).get_executor()``.

    Parameters
    ----------
    address : str or distributed cluster
        A scheduler address (``"tcp://host:8786"``) or a cluster object such
        as ``distributed.LocalCluster(...)``.
    timeout : float
        Seconds to wait for the scheduler.

    Returns
    -------
    context manager yielding a concurrent.futures.Executor
        Pass it to :func:`run_sweep` (or ``dynmem reproduce --scheduler``).
        The client is closed on exit; a cluster passed in is left running.

    Raises
    ------
    TypeError, ValueError
        Checked when called (before the ``with``): ``address`` of the wrong
        type, ``timeout`` not a positive finite number.
    ImportError
        If dask.distributed is not installed (``pip install 'dynmem[distributed]'``).
    """
    if not (isinstance(address, str) or hasattr(address, "scheduler_address")):
        raise TypeError(f"`address` must be a scheduler address such as 'tcp://host:8786' or a Dask cluster; "
                        f"got {describe(address)}.")
    timeout = check_positive("timeout", timeout)
    return _dask_executor(address, timeout)


@contextlib.contextmanager
def _dask_executor(address, timeout: float):
    distributed = _import_distributed()
    client = distributed.Client(address, timeout=timeout, set_as_default=False)
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close(timeout=timeout)
