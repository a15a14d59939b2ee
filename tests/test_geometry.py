"""Tests of raster geometry: dimension discovery, finer grids with the same bounds, and the
carrying over of CRS, band coordinates, attributes and nodata."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine

from xr_unmixsr import geometry
from xr_unmixsr.errors import (
    DimensionError,
    InvalidDataError,
    MissingCRSWarning,
    UnmixSRError,
    UnmixSRWarning,
)

CRS = "EPSG:32633"
X0, Y0, RES = 366975.0, 5808045.0, 30.0


def _cube(
    bands: int = 4,
    h: int = 6,
    w: int = 5,
    *,
    crs: str | None = CRS,
    band_dim: str = "band",
    dtype: type = np.float32,
) -> xr.DataArray:
    """A georeferenced (band, y, x) cube with wavelength/fwhm band coordinates."""
    rng = np.random.default_rng(0)
    cube = xr.DataArray(
        rng.random((bands, h, w)).astype(dtype),
        dims=(band_dim, "y", "x"),
        coords={
            band_dim: np.arange(1, bands + 1),
            "wavelength": (band_dim, np.linspace(420.0, 2400.0, bands)),
            "fwhm": (band_dim, np.linspace(6.0, 9.0, bands)),
            "y": Y0 - (np.arange(h) + 0.5) * RES,
            "x": X0 + (np.arange(w) + 0.5) * RES,
        },
        attrs={"sensor": "synthetic", "long_name": "band 1", "wavelength": 420.0},
        name="refl",
    )
    return cube.rio.write_crs(crs) if crs else cube


# ------------------------------------------------------------------------------------------
# layout
# ------------------------------------------------------------------------------------------


def test_layout_band_first() -> None:
    lay = geometry.layout(_cube())
    assert lay.dims == ("band", "y", "x")
    assert lay.transform == Affine(RES, 0.0, X0, 0.0, -RES, Y0)
    assert lay.crs.to_epsg() == 32633
    assert np.isnan(lay.nodata)
    assert lay.encoded_nodata is None


def test_layout_band_last_and_canonical_order() -> None:
    cube = _cube().transpose("y", "x", "band")
    lay = geometry.layout(cube)
    assert (lay.band_dim, lay.y_dim, lay.x_dim) == ("band", "y", "x")
    assert geometry.as_canonical(cube, lay).dims == ("band", "y", "x")
    assert lay.transform == Affine(RES, 0.0, X0, 0.0, -RES, Y0)


def test_layout_custom_band_dim() -> None:
    cube = _cube(band_dim="spectral").transpose("y", "spectral", "x")
    lay = geometry.layout(cube, "spectral")
    assert lay.dims == ("spectral", "y", "x")
    with pytest.raises(DimensionError, match="band_dim="):
        geometry.layout(cube)


def test_layout_nodata_values() -> None:
    lay = geometry.layout(_cube().rio.write_nodata(-32768))
    assert lay.nodata == -32768.0
    assert lay.encoded_nodata is None
    masked = geometry.layout(_cube().rio.write_nodata(-32768, encoded=True))
    assert np.isnan(masked.nodata)
    assert masked.encoded_nodata == -32768.0


def test_missing_band_dim_raises() -> None:
    cube = _cube().rename(band="channel")
    with pytest.raises(DimensionError, match=r"no spectral dimension 'band'.*pass band_dim="):
        geometry.layout(cube)


def test_missing_spatial_dims_raises() -> None:
    cube = xr.DataArray(np.zeros((3, 4, 5), np.float32), dims=("band", "row", "col"))
    with pytest.raises(DimensionError, match=r"no spatial dimensions.*set_spatial_dims") as info:
        geometry.layout(cube)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, UnmixSRError)


def test_extra_dims_raise() -> None:
    cube = _cube().expand_dims(time=2)
    with pytest.raises(DimensionError, match=r"unexpected dimensions \['time'\].*isel\(time=0\)"):
        geometry.layout(cube)


@pytest.mark.parametrize("dtype", ["<U3", np.complex64, bool, object])
def test_non_numeric_dtype_raises(dtype) -> None:
    cube = _cube()
    cube = cube.copy(data=np.zeros(cube.shape, dtype=dtype))
    with pytest.raises(InvalidDataError, match=r"astype\('float32'\)"):
        geometry.layout(cube)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.float64])
def test_numeric_dtypes_accepted(dtype) -> None:
    assert geometry.layout(_cube(dtype=dtype)).band_dim == "band"


def test_missing_crs_warns() -> None:
    cube = _cube(crs=None)
    with pytest.warns(MissingCRSWarning, match="write_crs") as record:
        lay = geometry.layout(cube)
    assert lay.crs is None
    assert lay.transform == Affine(RES, 0.0, X0, 0.0, -RES, Y0)
    assert issubclass(record[0].category, UnmixSRWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingCRSWarning)
        geometry.layout(cube, warn_crs=False)
        geometry.layout(_cube())  # with a CRS: no warning


def test_layout_without_coordinates_has_no_transform() -> None:
    cube = xr.DataArray(np.ones((2, 3, 4), np.float32), dims=("band", "y", "x"))
    with pytest.warns(MissingCRSWarning):
        lay = geometry.layout(cube)
    assert lay.transform is None


# ------------------------------------------------------------------------------------------
# finer grids
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_scaled_grid_keeps_outer_bounds(scale: int) -> None:
    cube = _cube(h=7, w=5)
    src = cube.rio.transform()
    t = geometry.scaled_transform(src, scale)
    assert (t.a, t.e) == pytest.approx((RES / scale, -RES / scale))
    assert (t.b, t.d, t.c, t.f) == (0.0, 0.0, X0, Y0)
    ys, xs = geometry.pixel_centres(t, 7 * scale, 5 * scale)
    np.testing.assert_allclose(xs, X0 + (np.arange(5 * scale) + 0.5) * RES / scale)
    np.testing.assert_allclose(ys, Y0 - (np.arange(7 * scale) + 0.5) * RES / scale)
    fine = xr.DataArray(
        np.zeros((7 * scale, 5 * scale)), dims=("y", "x"), coords={"y": ys, "x": xs}
    )
    fine = fine.rio.write_crs(CRS)
    np.testing.assert_allclose(fine.rio.bounds(), cube.rio.bounds(), rtol=0, atol=1e-6)
    assert cube.rio.bounds() == (X0, Y0 - 7 * RES, X0 + 5 * RES, Y0)


def test_pixel_centres_of_input_grid_are_its_coords() -> None:
    cube = _cube()
    ys, xs = geometry.pixel_centres(cube.rio.transform(), cube.sizes["y"], cube.sizes["x"])
    np.testing.assert_allclose(ys, cube.y.values)
    np.testing.assert_allclose(xs, cube.x.values)


def test_pixel_centres_rotated_grid_raises() -> None:
    rotated = Affine(30.0, 5.0, X0, 0.0, -30.0, Y0)
    with pytest.raises(DimensionError, match="north-up"):
        geometry.pixel_centres(rotated, 4, 4)


def test_mask_invalid() -> None:
    values = np.array([1.0, np.nan, np.inf, -np.inf, -9999.0, 0.0], np.float32)
    np.testing.assert_array_equal(geometry.mask_invalid(values, -9999.0), [0, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(geometry.mask_invalid(values, np.nan), [0, 1, 1, 1, 0, 0])


def test_require_valid() -> None:
    geometry.require_valid(1)
    with pytest.raises(InvalidDataError, match="nodata"):
        geometry.require_valid(0)


# ------------------------------------------------------------------------------------------
# georeference
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_georeference_carries_geometry(scale: int) -> None:
    cube = _cube(h=6, w=5).rio.write_nodata(-32768)
    lay = geometry.layout(cube)
    data = np.zeros((4, 6 * scale, 5 * scale), np.float32)
    out = geometry.georeference(data, cube, lay, scale=scale)
    assert out.dims == ("band", "y", "x")
    assert out.name == "refl"
    assert out.rio.crs == cube.rio.crs
    assert out.rio.nodata == -32768
    assert out.rio.transform() == geometry.scaled_transform(cube.rio.transform(), scale)
    np.testing.assert_allclose(out.rio.bounds(), cube.rio.bounds(), rtol=0, atol=1e-6)
    for name in ("band", "wavelength", "fwhm"):
        np.testing.assert_array_equal(out[name].values, cube[name].values)
        assert out[name].dims == ("band",)
    assert out.attrs["sensor"] == "synthetic"
    # per-band tags that rioxarray copies from band 1 are not carried
    assert "long_name" not in out.attrs
    assert "wavelength" not in out.attrs


def test_georeference_keeps_encoded_nodata_and_overrides() -> None:
    cube = _cube().rio.write_nodata(-32768, encoded=True)
    lay = geometry.layout(cube)
    out = geometry.georeference(np.zeros((4, 12, 10), np.float32), cube, lay, scale=2)
    assert out.rio.encoded_nodata == -32768
    assert np.isnan(out.rio.nodata)
    nan_out = geometry.georeference(np.zeros((4, 6, 5), np.float32), cube, lay, nodata=np.nan)
    assert np.isnan(nan_out.rio.nodata)


def test_georeference_leading_dim_and_2d() -> None:
    cube = _cube()
    lay = geometry.layout(cube)
    ab = geometry.georeference(
        np.zeros((3, 6, 5), np.float32),
        cube,
        lay,
        leading=("endmember", np.array(["a", "b", "c"])),
        name="abundances",
    )
    assert ab.dims == ("endmember", "y", "x")
    assert list(ab.endmember.values) == ["a", "b", "c"]
    assert "wavelength" not in ab.coords
    assert ab.name == "abundances"
    assert ab.rio.crs == cube.rio.crs
    flat = geometry.georeference(np.zeros((6, 5), np.float32), cube, lay, name="rmse")
    assert flat.dims == ("y", "x")
    assert flat.rio.transform() == cube.rio.transform()


def test_georeference_keeps_dask_lazy() -> None:
    cube = _cube()
    lay = geometry.layout(cube)
    out = geometry.georeference(da.zeros((4, 12, 10), chunks=5), cube, lay, scale=2)
    assert isinstance(out.data, da.Array)


def test_georeference_without_crs_keeps_scaled_coords() -> None:
    cube = _cube(crs=None)
    lay = geometry.layout(cube, warn_crs=False)
    out = geometry.georeference(np.zeros((4, 24, 20), np.float32), cube, lay, scale=4)
    assert out.rio.crs is None
    np.testing.assert_allclose(out.x.values, X0 + (np.arange(20) + 0.5) * RES / 4)
    np.testing.assert_allclose(out.y.values, Y0 - (np.arange(24) + 0.5) * RES / 4)
    np.testing.assert_allclose(out.rio.bounds(), cube.rio.bounds(), rtol=0, atol=1e-6)
