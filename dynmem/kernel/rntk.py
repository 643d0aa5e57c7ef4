"""Deprecated import path of :mod:`dynmem.kernel.recurrent_ntk` (kept for one release).

``dynmem.kernel.rntk`` names the function :func:`~dynmem.kernel.recurrent_ntk.rntk`;
the module that defines it is :mod:`dynmem.kernel.recurrent_ntk`.  Importing
this module warns (:class:`DeprecationWarning`) and gives the new module's
names.  Python binds an imported submodule onto its package, which replaces
the function ``dynmem.kernel.rntk`` by this module; the module is therefore
callable and calls the function, so ``dynmem.kernel.rntk(...)`` keeps working.
"""

import sys
import types
import warnings

from . import recurrent_ntk as _new
from .recurrent_ntk import *  # noqa: F401,F403
from .recurrent_ntk import __all__  # noqa: F401

warnings.warn("the module dynmem.kernel.rntk is deprecated; import from dynmem.kernel.recurrent_ntk "
              "(the function dynmem.kernel.rntk is unchanged)", DeprecationWarning, stacklevel=2)


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return _new.rntk(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
