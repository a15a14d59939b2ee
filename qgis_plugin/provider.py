"""The Processing provider ``unmixsr``."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider

from .algorithms import TrainAlgorithm, UnmixAlgorithm, UpscaleAlgorithm

PROVIDER_ID = "unmixsr"


class UnmixSRProvider(QgsProcessingProvider):
    """Provides ``unmixsr:upscale``, ``unmixsr:unmix`` and ``unmixsr:train``."""

    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return "xr_unmixsr"

    def longName(self) -> str:
        return "xr_unmixsr: hyperspectral super-resolution and unmixing"

    def loadAlgorithms(self) -> None:
        for alg in (UpscaleAlgorithm(), UnmixAlgorithm(), TrainAlgorithm()):
            self.addAlgorithm(alg)

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        # xr_unmixsr writes GeoTIFF (and Zarr, which QGIS does not open as a layer)
        return ["tif", "tiff"]
