"""Tests of the synthetic demo scene: structure, georeferencing, physics and determinism."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import xarray as xr
from affine import Affine

from xr_unmixsr.demo import (
    ENDMEMBER_NAMES,
    demo_wavelengths,
    make_demo_scene,
    resample_gaussian_srf,
    water_reflectance,
)
from xr_unmixsr.errors import ParameterError

_BUILD_SECONDS: list[float] = []


@pytest.fixture(scope="module")
def scene() -> xr.Dataset:
    make_demo_scene(8, 8, 128)  # warm the cached library spectra
    start = time.perf_counter()
    ds = make_demo_scene()
    _BUILD_SECONDS.append(time.perf_counter() - start)
    return ds


@pytest.fixture(scope="module")
def small() -> xr.Dataset:
    return make_demo_scene(48, 64, 100, seed=3)


def _band_at(ds: xr.Dataset, nm: float) -> int:
    return int(np.argmin(np.abs(ds.wavelength.values - nm)))


def test_shapes_dtypes_and_coords(scene: xr.Dataset) -> None:
    assert scene.reflectance.dims == ("band", "y", "x")
    assert scene.reflectance.shape == (128, 256, 256)
    assert scene.abundances.dims == ("endmember", "y", "x")
    assert scene.abundances.shape == (5, 256, 256)
    assert scene.endmembers.dims == ("endmember", "band")
    assert scene.endmembers.shape == (5, 128)
    for name in ("reflectance", "abundances", "endmembers"):
        assert scene[name].dtype == np.float32
    np.testing.assert_array_equal(scene.band.values, np.arange(1, 129))
    assert scene.wavelength.dims == ("band",) and scene.fwhm.dims == ("band",)
    assert "wavelength" not in scene.indexes and "fwhm" not in scene.indexes
    assert scene.wavelength.attrs["units"] == "nm"
    assert scene.wavelength.values[0] == pytest.approx(420.0)
    assert scene.wavelength.values[-1] == pytest.approx(2450.0)
    assert np.all(np.diff(scene.wavelength.values) > 0)
    assert np.all(scene.fwhm.values > 0)
    assert list(scene.endmember.values) == list(ENDMEMBER_NAMES)
    assert len(set(ENDMEMBER_NAMES)) == 5


def test_small_and_many_bands(small: xr.Dataset) -> None:
    assert small.reflectance.shape == (100, 48, 64)
    assert small.abundances.shape == (5, 48, 64)
    ds = make_demo_scene(16, 16, 224, seed=1)
    assert ds.reflectance.shape == (224, 16, 16)
    assert ds.endmembers.shape == (5, 224)


def test_abundances_nonnegative_and_sum_to_one(scene: xr.Dataset, small: xr.Dataset) -> None:
    for ds in (scene, small):
        a = ds.abundances.values
        assert np.all(a >= 0)
        np.testing.assert_allclose(a.sum(axis=0), 1.0, atol=1e-5)


def test_cube_is_linear_mixture_plus_noise(scene: xr.Dataset) -> None:
    clean = xr.dot(scene.abundances, scene.endmembers, dim="endmember").transpose(
        *scene.reflectance.dims
    )
    residual = (scene.reflectance - clean).values
    rms = np.sqrt(np.mean(np.square(clean.values, dtype=np.float64), axis=(1, 2)))
    noise = residual.std(axis=(1, 2))
    # SNR 40 dB: the noise std is 1 % of each band's RMS signal, with zero mean
    np.testing.assert_allclose(noise / rms, 0.01, rtol=0.05)
    assert abs(residual.mean()) < 1e-4


def test_noise_free_cube_is_exact_mixture() -> None:
    ds = make_demo_scene(32, 32, 100, snr_db=None)
    clean = np.einsum("kyx,kb->byx", ds.abundances.values, ds.endmembers.values)
    np.testing.assert_allclose(ds.reflectance.values, clean, rtol=1e-5, atol=1e-6)


def test_deterministic_for_seed() -> None:
    a = make_demo_scene(32, 40, 100, seed=7)
    b = make_demo_scene(32, 40, 100, seed=7)
    c = make_demo_scene(32, 40, 100, seed=8)
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a.abundances.values, c.abundances.values)
    assert not np.allclose(a.reflectance.values, c.reflectance.values)
    # the endmembers are physical constants of the scene, not random
    np.testing.assert_array_equal(a.endmembers.values, c.endmembers.values)


def test_crs_and_transform_exact(scene: xr.Dataset) -> None:
    assert scene.rio.crs.to_epsg() == 32633
    assert scene.reflectance.rio.crs.to_epsg() == 32633
    expected = Affine(10.0, 0.0, 366000.0, 0.0, -10.0, 5810000.0)
    assert scene.rio.transform() == expected
    assert tuple(scene.rio.transform()) == tuple(expected)
    assert tuple(scene.rio.transform(recalc=True)) == tuple(expected)
    assert tuple(scene.reflectance.rio.transform()) == tuple(expected)
    assert scene.rio.bounds() == (366000.0, 5810000.0 - 2560.0, 366000.0 + 2560.0, 5810000.0)


def test_custom_grid_and_pixel_centres() -> None:
    ox, oy, res = 500012.5, 4000020.0, 30.0
    ds = make_demo_scene(12, 20, 100, crs="EPSG:32632", origin=(ox, oy), pixel_size=res)
    assert ds.rio.crs.to_epsg() == 32632
    assert tuple(ds.rio.transform()) == (res, 0.0, ox, 0.0, -res, oy, 0.0, 0.0, 1.0)
    np.testing.assert_array_equal(ds.x.values, ox + (np.arange(20) + 0.5) * res)
    np.testing.assert_array_equal(ds.y.values, oy - (np.arange(12) + 0.5) * res)
    assert ds.rio.width == 20 and ds.rio.height == 12


def test_endmember_spectra_physically_sensible(scene: xr.Dataset) -> None:
    em = scene.endmembers
    assert float(em.min()) >= 0.0 and float(em.max()) <= 1.0
    b670, b800, b550 = (_band_at(scene, nm) for nm in (670, 800, 550))
    for veg in ("vegetation_healthy", "vegetation_stressed"):
        s = em.sel(endmember=veg).values
        assert s[b800] > 2.0 * s[b670], veg  # red edge
        assert s[b800] > 0.25, veg
    healthy = em.sel(endmember="vegetation_healthy").values
    stressed = em.sel(endmember="vegetation_stressed").values
    assert healthy[b550] > healthy[b670]  # green peak of chlorophyll
    assert stressed[b670] > healthy[b670]  # less chlorophyll absorption in the red
    water = em.sel(endmember="water").values
    nir = scene.wavelength.values > 750
    assert water[nir].max() < 0.05
    assert water.max() < 0.1 and water.argmax() < _band_at(scene, 700)
    dry = em.sel(endmember="soil_dry").values
    wet = em.sel(endmember="soil_wet").values
    assert np.all(dry > wet)


def test_endmembers_pairwise_separable(scene: xr.Dataset) -> None:
    em = scene.endmembers.values.astype(np.float64)
    for i, j in itertools.combinations(range(len(em)), 2):
        cos = em[i] @ em[j] / (np.linalg.norm(em[i]) * np.linalg.norm(em[j]))
        angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
        assert angle > 10.0, (ENDMEMBER_NAMES[i], ENDMEMBER_NAMES[j], angle)


def test_abundances_spatially_structured(scene: xr.Dataset) -> None:
    a = scene.abundances.values
    dominant = a.max(axis=0)
    assert (dominant > 0.9).mean() > 0.3  # large nearly pure regions
    assert (dominant < 0.7).mean() > 0.02  # mixed borders
    # every endmember is present somewhere as a nearly pure pixel
    assert np.all(a.reshape(5, -1).max(axis=1) > 0.9)
    # sharp edges: some neighbouring pixels differ by more than half the pixel
    water = a[ENDMEMBER_NAMES.index("water")]
    assert np.abs(np.diff(water, axis=1)).max() > 0.5
    # smooth regions: most neighbouring pixels differ little
    assert np.median(np.abs(np.diff(a, axis=2))) < 0.01


def test_invalid_parameters() -> None:
    with pytest.raises(ParameterError):
        make_demo_scene(0, 10)
    with pytest.raises(ParameterError):
        make_demo_scene(10, 10, 1)
    with pytest.raises(ValueError):
        make_demo_scene(10, 10, pixel_size=0.0)


def test_runtime_default_scene(scene: xr.Dataset) -> None:
    assert scene.reflectance.shape == (128, 256, 256)
    assert _BUILD_SECONDS and _BUILD_SECONDS[0] < 5.0


def test_resample_gaussian_srf() -> None:
    wl = np.arange(400.0, 2501.0)
    centres, fwhm = demo_wavelengths(100)
    flat = resample_gaussian_srf(wl, np.full((2, wl.size), 0.3), centres, fwhm)
    assert flat.shape == (2, 100)
    np.testing.assert_allclose(flat, 0.3)
    # a linear spectrum is reproduced at band centres away from the grid ends
    ramp = resample_gaussian_srf(wl, wl / 1000.0, centres, fwhm)
    inner = (centres > 500) & (centres < 2400)
    np.testing.assert_allclose(ramp[inner], centres[inner] / 1000.0, atol=1e-9)
    # a narrow feature is smoothed but conserved in area
    spike = np.zeros(wl.size)
    spike[wl == 1000.0] = 1.0
    out = resample_gaussian_srf(wl, spike, np.array([1000.0]), 20.0)
    assert 0 < out[0] < 0.1


def test_water_model_limits() -> None:
    wl = np.arange(400.0, 2501.0)
    kw = np.interp(wl, [400, 700, 750, 1000, 2500], [6e-5, 6e-3, 0.03, 0.4, 60.0])
    chl_shape = np.exp(-(((wl - 440.0) / 40.0) ** 2))
    r = water_reflectance(wl, kw, chl_shape)
    assert r.shape == wl.shape
    assert np.all((r >= 0) & (r < 0.1))
    assert r[wl > 900].max() < 0.005
