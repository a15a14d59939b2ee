"""xr_unmixsr: hyperspectral super-resolution and unmixing for xarray.

Importing the package registers the ``unmixsr`` accessor on DataArray and Dataset::

    import rioxarray, xr_unmixsr
    cube = xr_unmixsr.open_raster("scene.tif", chunks={"y": 512, "x": 512})
    sr = cube.unmixsr.upscale(scale=4)
    res = cube.unmixsr.unmix(n_endmembers=5)
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import accessor as _accessor  # noqa: E402,F401  (registers the accessor)
from .io import open_raster, write_raster  # noqa: E402
from .sr import degrade, upscale  # noqa: E402
from .unmixing.scene import unmix  # noqa: E402

__all__ = ["__version__", "degrade", "open_raster", "unmix", "upscale", "write_raster"]
