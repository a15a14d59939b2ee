"""Super-resolution of georeferenced hyperspectral DataArrays: the ``upscale`` operation."""

from __future__ import annotations

import os

import dask.array as da
import numpy as np
import torch
import xarray as xr

from . import geometry
from .engine import upscale_array
from .models import SRModel, back_projected, bicubic_resize, get_model, self_ensembled


def upscale(
    cube: xr.DataArray,
    scale: int,
    model: str | os.PathLike[str] | SRModel = "bicubic",
    *,
    band_dim: str = "band",
    tile: int = 256,
    overlap: int | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    back_projection: int = 0,
    self_ensemble: bool = False,
) -> xr.DataArray:
    """Super-resolve a hyperspectral cube by ``scale``.

    Args:
        cube: (band, y, x) or (y, x, band) DataArray, numpy- or dask-backed.
        scale: upsampling factor (2, 3, 4 or 8 for bicubic; a checkpoint's own scale otherwise).
        model: ``"bicubic"``, a shipped model name, a checkpoint path, or an :class:`SRModel`.
        band_dim: name of the spectral dimension.
        tile: core size in pixels of the patches fed to the model.
        overlap: context pixels around each patch (default: the model's receptive field).
        batch_size: patches per model call; None: 8 on a CPU, sized to the free memory of a GPU.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``...
        precision: ``"fp32"``, or ``"bf16"``/``"fp16"`` for mixed precision on the network
            (faster on GPUs with tensor cores; the output stays float32).
        back_projection: steps of iterative back-projection after the model, which make the
            output consistent with ``cube``: degraded like :func:`degrade` does, it gives
            ``cube`` back (0: off; 5 converges; see :mod:`xr_unmixsr.models.backprojection`).
        self_ensemble: average the model over the 8 flips and quarter turns of every patch
            (8 times the compute; see :mod:`xr_unmixsr.models.ensemble`), before any
            back-projection.

    Returns:
        (band, y*scale, x*scale) float32 DataArray, lazy when ``cube`` is dask-backed, with the
        same CRS and outer bounds, a transform with pixel size divided by ``scale``, the band
        coordinates (wavelength, fwhm...) and the nodata value of ``cube``.

    Raises:
        DimensionError, InvalidDataError, UnsupportedScaleError, BandMismatchError, TilingError,
        ModelError: see :mod:`xr_unmixsr.errors`.
    """
    lay = geometry.layout(cube, band_dim)
    net = get_model(model, int(scale))
    net = back_projected(self_ensembled(net, self_ensemble), back_projection)
    cube = geometry.as_canonical(cube, lay)
    net.check_bands(cube.sizes[lay.band_dim])
    data = cube.data
    if not isinstance(data, da.Array):
        data = np.asarray(data)
        geometry.require_valid(int((~geometry.mask_invalid(data, lay.nodata)).sum()))
    out = upscale_array(
        data,
        net,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        nodata=lay.nodata,
        precision=precision,
    )
    return geometry.georeference(out, cube, lay, scale=net.scale)


def degrade(cube: xr.DataArray, scale: int, *, band_dim: str = "band") -> xr.DataArray:
    """Make the low-resolution counterpart of ``cube``: antialiased bicubic downsampling by ``scale``.

    This is the literature's protocol (MATLAB ``imresize``): the result covers the same ground
    with pixels ``scale`` times larger (rows/columns beyond a multiple of ``scale`` are cropped),
    and is what ``upscale`` is evaluated against and trained from. Computed in memory.

    Missing values (NaN or the cube's nodata) take no part: an LR value is missing (the cube's
    nodata) where any HR value of its ``scale x scale`` footprint is, and the other LR values
    are normalised by the kernel weight of the valid HR values around them.

    Returns:
        (band, y // scale, x // scale) float32 DataArray with the coarser transform.
    """
    lay = geometry.layout(cube, band_dim)
    cube = geometry.as_canonical(cube, lay)
    h, w = (cube.sizes[lay.y_dim] // scale) * scale, (cube.sizes[lay.x_dim] // scale) * scale
    cube = cube.isel({lay.y_dim: slice(0, h), lay.x_dim: slice(0, w)})
    values = np.asarray(cube.values, dtype=np.float32)
    invalid = geometry.mask_invalid(values, lay.nodata)
    with torch.inference_mode():
        if not invalid.any():
            low = bicubic_resize(torch.from_numpy(values)[None], 1.0 / scale)[0].numpy()
        else:
            valid = torch.from_numpy((~invalid).astype(np.float32))[None]
            filled = torch.from_numpy(np.where(invalid, np.float32(0), values))[None]
            weight = bicubic_resize(valid, 1.0 / scale)[0]
            low = (bicubic_resize(filled, 1.0 / scale)[0] / weight.clamp_min(1e-6)).numpy()
            missing = torch.nn.functional.max_pool2d(1.0 - valid, scale)[0].numpy() > 0
            low[missing] = np.float32(lay.nodata)
    return geometry.georeference(
        low, cube, geometry.layout(cube, band_dim, warn_crs=False), scale=1.0 / scale
    )
