"""Integration tests on the real EnMAP scene: upscaling and unmixing keep its geometry, bands and
nodata, and tiled upscaling equals one call on the whole scene."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from affine import Affine

import xr_unmixsr
from xr_unmixsr.engine import predict_array
from xr_unmixsr.models import bicubic_model

NODATA = -32768.0
BAD_BANDS = np.arange(129, 135)  # 0-based, entirely nodata (water vapour)
N_BANDS, HEIGHT, WIDTH = 224, 128, 64
X0, Y0, RES = 366975.0, 5808045.0, 30.0


@pytest.fixture(scope="module")
def cube(enmap_path: Path) -> xr.DataArray:
    # chunks of 48 x 40 on a 128 x 64 scene: ragged edge chunks (48, 48, 32) and (40, 24)
    return xr_unmixsr.open_raster(enmap_path, chunks={"y": 48, "x": 40})


@pytest.fixture(scope="module")
def values(cube: xr.DataArray) -> np.ndarray:
    return cube.values


@pytest.fixture(scope="module", params=[2, 4])
def upscaled(
    request: pytest.FixtureRequest, cube: xr.DataArray
) -> tuple[int, xr.DataArray, np.ndarray]:
    scale = request.param
    out = cube.unmixsr.upscale(scale, model="bicubic", tile=32, batch_size=4)
    assert isinstance(out.data, da.Array)
    return scale, out, out.values


def test_input_is_what_the_tests_expect(cube: xr.DataArray, values: np.ndarray) -> None:
    assert cube.shape == (N_BANDS, HEIGHT, WIDTH)
    assert cube.chunks[1:] == ((48, 48, 32), (40, 24))
    assert cube.rio.nodata == NODATA
    bad = (values == NODATA).all(axis=(1, 2))
    np.testing.assert_array_equal(np.flatnonzero(bad), BAD_BANDS)


def test_upscale_geometry(
    cube: xr.DataArray, upscaled: tuple[int, xr.DataArray, np.ndarray]
) -> None:
    scale, out, _ = upscaled
    assert out.dims == ("band", "y", "x")
    assert out.shape == (N_BANDS, HEIGHT * scale, WIDTH * scale)
    assert out.dtype == np.float32
    assert out.rio.crs.to_epsg() == 32633
    assert cube.rio.transform() == Affine(RES, 0.0, X0, 0.0, -RES, Y0)
    assert out.rio.transform() == Affine(RES / scale, 0.0, X0, 0.0, -RES / scale, Y0)
    np.testing.assert_allclose(out.rio.bounds(), cube.rio.bounds(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        out.x.values[[0, -1]], [X0 + RES / scale / 2, X0 + WIDTH * RES - RES / scale / 2]
    )
    assert out.rio.nodata == NODATA


def test_upscale_band_coords(
    cube: xr.DataArray, upscaled: tuple[int, xr.DataArray, np.ndarray]
) -> None:
    _, out, _ = upscaled
    for name in ("band", "wavelength", "fwhm"):
        assert out[name].dims == ("band",)
        assert out[name].size == N_BANDS
        np.testing.assert_array_equal(out[name].values, cube[name].values)
    assert 400 < float(out.wavelength[0]) < float(out.wavelength[-1]) < 2500


def test_upscale_nodata_bands(upscaled: tuple[int, xr.DataArray, np.ndarray]) -> None:
    _, _, result = upscaled
    assert (result[BAD_BANDS] == NODATA).all()
    good = np.delete(result, BAD_BANDS, axis=0)
    assert not (good == NODATA).any()
    assert np.isfinite(result).all()


def test_upscale_equals_whole_scene_prediction(
    values: np.ndarray, upscaled: tuple[int, xr.DataArray, np.ndarray]
) -> None:
    scale, _, result = upscaled
    ref = predict_array(bicubic_model(scale), values, device="cpu", nodata=NODATA)
    valid = values[values != NODATA]
    span = float(valid.max() - valid.min())
    assert span > 0
    np.testing.assert_allclose(result, ref, rtol=0, atol=1e-4 * span)


def test_unmix(cube: xr.DataArray, values: np.ndarray) -> None:
    res = cube.unmixsr.unmix(n_endmembers=5)
    assert isinstance(res["abundances"].data, da.Array)
    ab = res["abundances"].values
    assert ab.shape == (5, HEIGHT, WIDTH)
    good = np.delete(values, BAD_BANDS, axis=0)
    valid = (good != NODATA).all(axis=0) & np.isfinite(good).all(axis=0)
    assert valid.sum() > 0.9 * HEIGHT * WIDTH
    assert (ab[:, valid] >= 0).all()
    np.testing.assert_allclose(ab[:, valid].sum(axis=0), 1.0, rtol=0, atol=1e-5)
    assert np.isnan(ab[:, ~valid]).all()
    em = res["endmembers"]
    np.testing.assert_array_equal(np.flatnonzero(np.isnan(em.values).any(axis=0)), BAD_BANDS)
    assert np.isnan(em.values[:, BAD_BANDS]).all()
    np.testing.assert_array_equal(em.wavelength.values, cube.wavelength.values)
    for name in ("abundances", "rmse"):
        assert res[name].rio.crs == cube.rio.crs
        assert res[name].rio.transform() == cube.rio.transform()
    assert np.isfinite(res["rmse"].values[valid]).all()
