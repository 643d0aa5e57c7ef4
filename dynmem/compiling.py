"""A word on stderr while numba compiles.

The compiled kernels (``@njit(cache=True)``) are compiled for this machine on
their first call and cached on disk, next to the package's modules (or in
``NUMBA_CACHE_DIR``); later processes load them in a fraction of a second.
The first call in a fresh environment therefore waits several seconds per
entry point, which looks like a hang.  :func:`announce_compilation` wraps the
public entry points: when the first call of one of them in this process takes
longer than :data:`NOTICE_DELAY` seconds, a line on stderr says that numba is
compiling, and a second line how long it took.  Nothing is said on a fast
(cached) first call, nor on any later call.

The notice goes to a terminal; set ``DYNMEM_COMPILE_NOTICE=1`` to have it in
a log too, or ``0`` to silence it.  (The on-disk cache is keyed on each
module's path and modification time, so reinstalling the package starts it
afresh; ``dynmem warmup`` right after an install compiles the common
kernels ahead.)
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time

import numpy as np

__all__ = ["announce_compilation", "kernel_array", "NOTICE_DELAY", "NOTICE_ENV"]

NOTICE_DELAY = 1.0
NOTICE_ENV = "DYNMEM_COMPILE_NOTICE"

_finished: set = set()  # entry points whose first call has returned in this process
_inside = threading.local()  # nested entry points (memory_function -> simulate) are the outer call's business


def _wanted(stream) -> bool:
    flag = os.environ.get(NOTICE_ENV, "")
    if flag in ("0", "1"):
        return flag == "1"
    return bool(getattr(stream, "isatty", lambda: False)())


def announce_compilation(name: str):
    """Decorator: say on stderr that numba compiles when the first call of ``name`` in this process is slow."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if name in _finished or getattr(_inside, "active", False):
                return fn(*args, **kwargs)
            stream = sys.stderr
            if not _wanted(stream):
                _finished.add(name)
                return fn(*args, **kwargs)
            said = []

            def notice():
                said.append(True)
                print(f"dynmem: compiling the numba kernels of {name} for this machine (first call; they are cached "
                      f"on disk, so later runs load them in well under a second) ...", file=stream, flush=True)

            timer = threading.Timer(NOTICE_DELAY, notice)
            timer.daemon = True
            _inside.active = True
            start = time.perf_counter()
            timer.start()
            try:
                return fn(*args, **kwargs)
            finally:
                timer.cancel()
                _inside.active = False
                _finished.add(name)
                if said:
                    print(f"dynmem: {name} ready after {time.perf_counter() - start:.1f} s", file=stream, flush=True)

        return wrapper

    return decorate


def kernel_array(a: np.ndarray, dtype=np.float64) -> np.ndarray:
    """``a`` as the one array type the compiled kernels are specialised for: C-contiguous, writeable, ``dtype``.

    numba compiles a kernel once per combination of argument types, and a
    read-only array (a model's frozen weights, a user's read-only input, or
    a contiguous view of either such as ``W.T`` of a 1 x 1 ``W``) is a
    different type from a writeable one: passed as it is, it would compile
    (and cache) the kernel a second time.  ``a`` itself is returned when it
    already has that type, otherwise a copy (the values are unchanged).
    """
    if a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable:
        return a
    return np.array(a, dtype=dtype, order="C", copy=True)
