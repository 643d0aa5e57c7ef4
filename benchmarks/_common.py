"""Shared pieces of the benchmark suite: the case record, lazy torch, error norms.

Nothing here imports torch at module level; :func:`import_torch` does it on
demand and says which extra to install when it is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

BENCH_EXTRA_HINT = "pip install 'dynmem[bench]'"


def import_torch():
    """Import torch pinned to one thread, or raise an ImportError naming the extra."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"the benchmarks compare against PyTorch, which is not installed; install the extra with: {BENCH_EXTRA_HINT}"
        ) from exc
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set, or parallel work already started; harmless with set_num_threads(1)
    return torch


def import_torchdiffeq():
    """Import torchdiffeq, or raise an ImportError naming the extra."""
    import_torch()
    try:
        import torchdiffeq
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"the adjoint benchmark compares against torchdiffeq, which is not installed; install the extra with: {BENCH_EXTRA_HINT}"
        ) from exc
    return torchdiffeq


def rel_err(x, ref) -> float:
    """Norm-wise relative error ``||x - ref||_2 / ||ref||_2`` (computed in extended precision)."""
    x = np.asarray(x, dtype=np.longdouble).ravel()
    ref = np.asarray(ref, dtype=np.longdouble).ravel()
    if x.shape != ref.shape:
        raise ValueError(f"shape mismatch: {x.shape} vs reference {ref.shape}")
    return float(np.linalg.norm(x - ref) / np.linalg.norm(ref))


@dataclass
class Case:
    """One side-by-side comparison.

    ``dynmem`` and ``peer`` are zero-argument callables that do the timed work
    and return the quantity being compared (a flat float64 vector);
    ``reference`` returns the independent reference (computed once, untimed);
    ``error(result, ref)`` turns a result into one number.
    """

    name: str
    group: str
    description: str
    params: dict
    dynmem: Callable[[], Any]
    peer: Callable[[], Any]
    reference: Callable[[], Any]
    error: Callable[[Any, Any], float] = rel_err
    peer_name: str = "peer"
    reference_name: str = "reference"
    speed_target: float | None = None  # wanted peer/dynmem time ratio (reported, not asserted)
    accuracy_target: float | None = None  # wanted peer_error/dynmem_error (reported, not asserted)
    # Further dynmem callables timed in the same interleaved loop (e.g. the forward solve alone).
    also_time: dict = field(default_factory=dict)
    extras: Callable[[dict], dict] | None = None  # extra numbers, given the case's record so far
    notes: list = field(default_factory=list)
