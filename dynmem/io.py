"""Atomic writes of results (JSON documents, ``.npz`` arrays, figures), config digests and temporaries.

Everything is written to a temporary file in the destination folder and then
renamed into place with :func:`os.replace`, so an interrupted run never leaves
a half-written file under the final name.  Files get the permissions the
umask gives a newly created file (``0666 & ~umask``), like any other file the
user writes, not :func:`tempfile.mkstemp`'s ``0600``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time

import numpy as np

__all__ = ["atomic_write_text", "atomic_write_bytes", "atomic_write_json", "atomic_savez", "atomic_savefig", "read_json",
           "to_jsonable", "short_digest", "config_digest", "remove_stale_temporaries", "TEMPORARY_PREFIX"]

TEMPORARY_PREFIX = ".dynmem-"  # every temporary this module writes starts so; nothing final does


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
    fd, tmp = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, suffix=suffix, dir=folder)
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


def short_digest(text: str | bytes, length: int) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``text`` (UTF-8 when a string): names stores and files."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    return hashlib.sha256(data).hexdigest()[: int(length)]


def config_digest(cfg: dict, *, length: int = 16, exclude=("workdir",)) -> str:
    """A short digest of a config: what decides whether a stored result or store belongs to it.

    The keys in ``exclude`` are left out (where a run keeps its files is not
    part of what it computes); the rest is written as canonical JSON
    (:func:`to_jsonable`, sorted keys; anything else by ``str``) and the
    config's own ``workdir``, wherever else it appears in that text (in the
    nested configs of a grid), is replaced by ``<workdir>``; then
    :func:`short_digest`.  The result files of ``dynmem reproduce`` use
    ``length=16``; the sweep stores of the studies ``length=12`` with
    ``exclude=("workdir", "progress")``.
    """
    keep = {k: v for k, v in cfg.items() if k not in exclude}
    text = json.dumps(to_jsonable(keep), sort_keys=True, default=str)
    workdir = cfg.get("workdir")
    if workdir is not None:
        text = text.replace(str(workdir), "<workdir>")
    return short_digest(text, length)


def remove_stale_temporaries(folder: str, *, older_than: float | None = None) -> list:
    """Delete the temporaries a killed writer left in ``folder`` (files named ``.dynmem-*``); their names.

    ``older_than`` (seconds): only files last modified longer ago go (a writer
    in flight renames its temporary within seconds); ``None``: every one (for
    a caller that holds the folder's writer lock, so none is in flight).
    Files that vanish or cannot be removed meanwhile are skipped.
    """
    removed = []
    now = time.time()
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return removed
    for name in names:
        path = os.path.join(folder, name)
        if not (name.startswith(TEMPORARY_PREFIX) and os.path.isfile(path)):
            continue
        try:
            if older_than is None or now - os.path.getmtime(path) > float(older_than):
                os.remove(path)
                removed.append(name)
        except OSError:
            pass
    return removed


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
