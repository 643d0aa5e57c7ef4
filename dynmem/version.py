"""The installed version of dynmem (``dynmem.__version__``), read from the package metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _metadata_version

__all__ = ["__version__"]

try:
    __version__ = _metadata_version("dynmem")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
