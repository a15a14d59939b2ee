"""Raster geometry: the one place where an output's grid, CRS, nodata and band coordinates are
derived from its input.

Every operation (upscale, unmix, the CLI writers) asks this module for the output's geometry, so
the rules live here once:

* spatial dimensions are found through rioxarray (``y``/``x``, ``lat``/``lon``...);
* the spectral dimension is ``band`` unless the caller names another;
* an output on a grid ``scale`` times finer keeps the outer bounds: its transform is the input's
  transform with the pixel size divided by ``scale``, and its x/y coordinates are the new pixel
  centres;
* CRS, nodata, attributes and every coordinate along the band dimension (wavelength, fwhm...) are
  carried over.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine

from .errors import DimensionError, InvalidDataError, MissingCRSWarning

#: attributes that describe one band only (rioxarray copies band 1's tags onto the whole array)
#: or the array's encoding; they are never carried to an output.
_DROPPED_ATTRS = ("_FillValue", "missing_value", "wavelength", "fwhm", "bbl", "long_name")


@dataclass(frozen=True)
class RasterLayout:
    """Where the spatial and spectral dimensions of a DataArray are, and its grid.

    Attributes:
        band_dim: name of the spectral dimension.
        y_dim: name of the row dimension.
        x_dim: name of the column dimension.
        transform: affine transform of the pixel grid, or None when the array has no x/y
            coordinates (plain array input).
        crs: the CRS, or None (pixel or unprojected coordinates, with a warning).
        nodata: the value marking missing data in the array's values (NaN when the array is
            masked or has no nodata value).
        encoded_nodata: the nodata value to write to files when the values use NaN for missing
            data (rioxarray ``masked=True``), else None.
    """

    band_dim: str
    y_dim: str
    x_dim: str
    transform: Affine | None
    crs: Any
    nodata: float
    encoded_nodata: float | None

    @property
    def dims(self) -> tuple[str, str, str]:
        """The canonical (band, y, x) order."""
        return (self.band_dim, self.y_dim, self.x_dim)


def _spatial_dims(da: xr.DataArray) -> tuple[str, str]:
    """Return the names of the (y, x) dimensions, or raise :class:`DimensionError`."""
    try:
        return da.rio.y_dim, da.rio.x_dim
    except Exception as exc:  # rioxarray raises its own MissingSpatialDimensionError
        raise DimensionError(
            f"no spatial dimensions found in {tuple(da.dims)}: name them 'y' and 'x' (or "
            "'lat'/'lon'), or call da.rio.set_spatial_dims(x_dim=..., y_dim=...) first"
        ) from exc


def layout(da: xr.DataArray, band_dim: str = "band", *, warn_crs: bool = True) -> RasterLayout:
    """Describe a hyperspectral DataArray: its dimensions, grid, CRS and nodata.

    Args:
        da: a (band, y, x) or (y, x, band) array, as rioxarray gives it.
        band_dim: name of the spectral dimension.
        warn_crs: warn with :class:`MissingCRSWarning` when there is no CRS.

    Raises:
        DimensionError: no spatial or no spectral dimension, or extra dimensions.
        InvalidDataError: a non-numeric dtype.
    """
    y_dim, x_dim = _spatial_dims(da)
    if band_dim not in da.dims:
        raise DimensionError(
            f"no spectral dimension {band_dim!r} in {tuple(da.dims)}: pass band_dim='<name>' "
            "naming the dimension that holds the bands"
        )
    extra = set(da.dims) - {band_dim, y_dim, x_dim}
    if extra:
        raise DimensionError(
            f"unexpected dimensions {sorted(extra)}: select or stack them first, e.g. "
            f"da.isel({sorted(extra)[0]}=0); expected only ({band_dim}, {y_dim}, {x_dim})"
        )
    if not (np.issubdtype(da.dtype, np.number) and not np.issubdtype(da.dtype, np.complexfloating)):
        raise InvalidDataError(
            f"values of dtype {da.dtype} are not real numbers: convert them with "
            "da.astype('float32') first"
        )
    crs = da.rio.crs
    if crs is None and warn_crs:
        warnings.warn(
            "the input has no CRS: results keep its pixel coordinates but are not "
            "georeferenced; set one with da.rio.write_crs('EPSG:...') if it is known",
            MissingCRSWarning,
            stacklevel=3,
        )
    transform = (
        da.rio.transform(recalc=True) if (x_dim in da.coords and y_dim in da.coords) else None
    )
    nodata = da.rio.nodata
    encoded = da.rio.encoded_nodata
    return RasterLayout(
        band_dim=band_dim,
        y_dim=y_dim,
        x_dim=x_dim,
        transform=transform,
        crs=crs,
        nodata=float("nan") if nodata is None else float(nodata),
        encoded_nodata=None if encoded is None else float(encoded),
    )


def scaled_transform(transform: Affine, scale: int) -> Affine:
    """The transform of a grid ``scale`` times finer with the same outer bounds."""
    return transform @ Affine.scale(1.0 / scale)


def pixel_centres(transform: Affine, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The (y, x) coordinates of the pixel centres of a north-up grid."""
    if transform.b != 0 or transform.d != 0:
        raise DimensionError(
            "rotated or sheared grids are not supported: warp the raster to a north-up grid first "
            "(e.g. gdalwarp or rioxarray's reproject)"
        )
    x = transform.c + (np.arange(width) + 0.5) * transform.a
    y = transform.f + (np.arange(height) + 0.5) * transform.e
    return y, x


def mask_invalid(values: np.ndarray, nodata: float) -> np.ndarray:
    """Boolean mask of the values that are missing: NaN, infinite or equal to ``nodata``."""
    invalid = ~np.isfinite(values)
    if np.isfinite(nodata):
        invalid |= values == nodata
    return invalid


def _carried_attrs(src: xr.DataArray) -> dict[str, Any]:
    return {k: v for k, v in src.attrs.items() if k not in _DROPPED_ATTRS}


def georeference(
    data: Any,
    src: xr.DataArray,
    src_layout: RasterLayout,
    *,
    scale: float = 1,
    leading: tuple[str, xr.DataArray | np.ndarray | None] | None = None,
    name: str | None = None,
    nodata: float | None = None,
) -> xr.DataArray:
    """Wrap ``data`` (lead, y*scale, x*scale) as a georeferenced DataArray derived from ``src``.

    Args:
        data: numpy or dask array whose last two axes are the output grid.
        src: the input the output derives from.
        src_layout: ``layout(src)``.
        scale: how many times finer the output grid is than the input's.
        leading: (dimension name, coordinate) of the first axis; None means ``src``'s band
            dimension with all its coordinates (wavelength, fwhm...). A 2-D ``data`` takes None
            here and gets no leading dimension.
        name: the output's name (default: the input's, else ``"reflectance"``).
        nodata: the output's missing-value marker (NaN or a number) when it differs from the
            input's (abundances, errors); None inherits the input's nodata.

    Returns:
        A DataArray with CRS, transform, x/y pixel-centre coordinates, nodata and attributes
        derived from ``src``.
    """
    lay = src_layout
    height, width = data.shape[-2:]
    coords: dict[str, Any] = {}
    if data.ndim == 3:
        lead_dim, lead_coord = leading if leading is not None else (lay.band_dim, None)
        dims = (lead_dim, lay.y_dim, lay.x_dim)
        if leading is None:
            for cname, coord in src.coords.items():
                if coord.dims == (lay.band_dim,):
                    coords[cname] = coord
        elif lead_coord is not None:
            coords[lead_dim] = lead_coord
    else:
        dims = (lay.y_dim, lay.x_dim)
    transform = None
    if lay.transform is not None:
        transform = scaled_transform(lay.transform, scale)
        ys, xs = pixel_centres(transform, height, width)
        coords[lay.y_dim] = xr.Variable(lay.y_dim, ys, src[lay.y_dim].attrs)
        coords[lay.x_dim] = xr.Variable(lay.x_dim, xs, src[lay.x_dim].attrs)
    out = xr.DataArray(
        data,
        dims=dims,
        coords=coords,
        attrs=_carried_attrs(src),
        name=name or src.name or "reflectance",
    )
    if lay.crs is not None:
        out = out.rio.write_crs(lay.crs)
    if transform is not None:
        out = out.rio.write_transform(transform)
    if nodata is not None:
        out = out.rio.write_nodata(nodata)
    elif lay.encoded_nodata is not None:
        out = out.rio.write_nodata(lay.encoded_nodata, encoded=True)
    elif np.isfinite(lay.nodata):
        out = out.rio.write_nodata(lay.nodata)
    return out


def as_canonical(da: xr.DataArray, lay: RasterLayout) -> xr.DataArray:
    """``da`` transposed to (band, y, x)."""
    return da.transpose(*lay.dims)


def require_valid(valid_count: int) -> None:
    """Raise :class:`InvalidDataError` when an input holds no valid value at all."""
    if valid_count == 0:
        raise InvalidDataError(
            "every value of the input is nodata or NaN: check the nodata value "
            "(da.rio.nodata) and that the right file or band range was read"
        )
