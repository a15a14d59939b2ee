"""QGIS plugin of xr_unmixsr: the Processing provider ``unmixsr`` (upscale, unmix, train).

Importing this package, the plugin class and the provider needs QGIS only: xr_unmixsr and torch
are imported when an algorithm runs (see :mod:`.bridge`), so the plugin loads, and says how to
install them, where they are missing.
"""

from __future__ import annotations

from typing import Any


def classFactory(iface: Any) -> Any:
    """The plugin object QGIS loads (``iface`` is None under ``qgis_process``)."""
    from .plugin import UnmixSRPlugin

    return UnmixSRPlugin(iface)
