"""The plugin object: registers the Processing provider with QGIS and removes it on unload."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication

from .provider import UnmixSRProvider


class UnmixSRPlugin:
    """Registers :class:`UnmixSRProvider`; it keeps the reference QGIS needs to keep it alive."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: UnmixSRProvider | None = None

    def initProcessing(self) -> None:
        """Add the provider to the Processing registry (called by QGIS and ``qgis_process``)."""
        if self.provider is None:
            self.provider = UnmixSRProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        """Called by the QGIS desktop: the plugin has no GUI of its own beyond Processing."""
        self.initProcessing()

    def unload(self) -> None:
        """Remove the provider when the plugin is unloaded."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
