"""Atomic writes of results: JSON documents, ``.npz`` arrays and figures.

Everything is written to a temporary file in the destination folder and then
renamed into place with :func:`os.replace`, so an interrupted run never leaves
a half-written file under the final name.  Files get the permissions the
umask gives a newly created file (``0666 & ~umask``), like any other file the
user writes, not :func:`tempfile.mkstemp`'s ``0600``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile

import numpy as np

__all__ = ["atomic_write_text", "atomic_write_bytes", "atomic_write_json", "atomic_savez", "atomic_savefig", "read_json", "to_jsonable"]


def current_umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # not thread-safe, hence the /proc path first
    os.umask(old)
    return old


def _tmp_in(path: str, suffix: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".dynmem-", suffix=suffix, dir=folder)
    try:
        # mkstemp creates 0600; a result file gets what open() would give it (0666 minus the umask).
        os.fchmod(fd, 0o666 & ~current_umask())
    except (OSError, AttributeError):  # pragma: no cover - platforms without fchmod
        pass
    os.close(fd)
    return tmp


def _atomic_write(path: str, suffix: str, mode: str, write) -> None:
    """``write(fh)`` into a temporary file beside ``path``, fsync, then rename it onto ``path``."""
    tmp = _tmp_in(path, suffix)
    try:
        with open(tmp, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    _atomic_write(path, ".tmp", "w", lambda fh: fh.write(text))


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    _atomic_write(path, ".tmp", "wb", lambda fh: fh.write(data))


def atomic_savez(path: str, arrays: dict) -> None:
    """``numpy.savez(path, **arrays)`` atomically (``path`` is used as given: name it ``*.npz``)."""
    _atomic_write(path, ".npz", "wb", lambda fh: np.savez(fh, **arrays))


def to_jsonable(obj):
    """numpy scalars and arrays to Python; non-finite floats to the strings "inf", "-inf", "nan"."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        if math.isfinite(x):
            return x
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return obj


def atomic_write_json(path: str, obj) -> None:
    """Write ``obj`` as strict JSON (non-finite floats become strings) atomically."""
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=1, allow_nan=False))


def read_json(path: str):
    """Read a JSON file written by :func:`atomic_write_json` ("inf"/"nan" strings stay strings)."""
    with open(path) as fh:
        return json.load(fh)


def atomic_savefig(fig, path: str, **kwargs) -> None:
    """``fig.savefig`` to a temporary file, then rename it to ``path``."""
    suffix = os.path.splitext(path)[1] or ".png"
    tmp = _tmp_in(path, suffix)
    try:
        fig.savefig(tmp, **kwargs)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
