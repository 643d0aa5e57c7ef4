"""The old import path of :mod:`dynmem.models.interop` (re-exports its public names)."""

from .models.interop import (  # noqa: F401
    from_torch,
    from_state_dict,
    to_state_dict,
)

__all__ = ['from_torch', 'from_state_dict', 'to_state_dict']
