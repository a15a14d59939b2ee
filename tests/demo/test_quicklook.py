"""Tests of the quicklook PNG writers."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import xarray as xr

from xr_unmixsr.demo import (
    abundance_png,
    comparison_png,
    endmember_png,
    make_demo_scene,
    true_colour_png,
)
from xr_unmixsr.demo.quicklook import _percentile_stretch, _rgb_indices
from xr_unmixsr.errors import DimensionError


@pytest.fixture(scope="module")
def scene() -> xr.Dataset:
    return make_demo_scene(64, 80, 100, seed=2)


def _check_png(path: Path) -> np.ndarray:
    assert path.exists() and path.suffix == ".png"
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    assert float(img[..., :3].std()) > 0.01  # not a constant image
    return img


def test_true_colour_png(scene: xr.Dataset, tmp_path: Path) -> None:
    out = true_colour_png(scene.reflectance, tmp_path / "sub" / "tc.png", title="demo")
    assert out == tmp_path / "sub" / "tc.png"
    _check_png(out)


def test_true_colour_png_str_path_dask_and_nan(scene: xr.Dataset, tmp_path: Path) -> None:
    cube = scene.reflectance.copy()
    cube[:, :5, :5] = np.nan
    out = true_colour_png(cube.chunk({"y": 32}), str(tmp_path / "nan.png"))
    assert isinstance(out, Path)
    _check_png(out)


def test_true_colour_png_without_wavelengths(scene: xr.Dataset, tmp_path: Path) -> None:
    cube = scene.reflectance.drop_vars(["wavelength", "fwhm"])
    _check_png(true_colour_png(cube, tmp_path / "nowl.png"))


def test_band_selection_nearest_wavelength(scene: xr.Dataset) -> None:
    cube = scene.reflectance
    idx = _rgb_indices(cube, "band", (640, 550, 470))
    wl = cube.wavelength.values
    for i, target in zip(idx, (640, 550, 470), strict=True):
        assert i == int(np.argmin(np.abs(wl - target)))
    # wavelengths in micrometres are recognised
    um = cube.assign_coords(wavelength=("band", wl / 1000.0, {"units": "um"}))
    assert _rgb_indices(um, "band", (640, 550, 470)) == idx
    # no wavelength: evenly spread, red at the long end
    assert _rgb_indices(cube.drop_vars("wavelength"), "band", (640, 550, 470)) == [99, 50, 0]


def test_percentile_stretch_ignores_nan() -> None:
    rgb = np.stack([np.linspace(0, 1, 101)] * 3, axis=-1)[:, None, :]
    rgb[0, 0, 1] = np.nan
    lo, hi = _percentile_stretch(rgb)
    np.testing.assert_allclose(lo[[0, 2]], 0.02)
    np.testing.assert_allclose(hi[[0, 2]], 0.98)
    assert np.all(np.isfinite(lo)) and np.all(hi > lo)
    const = np.ones((4, 4, 3))
    lo, hi = _percentile_stretch(const)
    assert np.all(hi > lo)


def test_abundance_png(scene: xr.Dataset, tmp_path: Path) -> None:
    img = _check_png(abundance_png(scene.abundances, tmp_path / "ab.png"))
    assert img.shape[1] > img.shape[0]  # panels side by side


def test_endmember_png(scene: xr.Dataset, tmp_path: Path) -> None:
    _check_png(endmember_png(scene.endmembers, tmp_path / "em.png"))
    estimate = (scene.endmembers * 1.05).isel(endmember=[2, 0, 1, 4, 3])
    _check_png(endmember_png(estimate, tmp_path / "em_truth.png", truth=scene.endmembers))
    no_coords = xr.DataArray(scene.endmembers.values, dims=("endmember", "band"))
    _check_png(endmember_png(no_coords, tmp_path / "em_plain.png"))


def test_comparison_png(scene: xr.Dataset, tmp_path: Path) -> None:
    truth = scene.reflectance
    lr = truth.coarsen(x=4, y=4).mean()
    bicubic = lr.interp(x=truth.x, y=truth.y, method="cubic")
    out = comparison_png({"LR": lr, "bicubic x4": bicubic, "truth": truth}, tmp_path / "cmp.png")
    img = _check_png(out)
    assert img.shape[1] > 2 * img.shape[0]  # three panels side by side
    with pytest.raises(ValueError):
        comparison_png({}, tmp_path / "empty.png")


def test_bad_dimensions(scene: xr.Dataset, tmp_path: Path) -> None:
    with pytest.raises(DimensionError):
        true_colour_png(scene.reflectance.isel(band=0), tmp_path / "bad.png")
    with pytest.raises(DimensionError):
        abundance_png(scene.abundances.isel(endmember=0), tmp_path / "bad.png")
    with pytest.raises(DimensionError):
        endmember_png(scene.abundances, tmp_path / "bad.png")


def test_no_pyplot_figures_leak(scene: xr.Dataset, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    true_colour_png(scene.reflectance, tmp_path / "a.png")
    abundance_png(scene.abundances, tmp_path / "b.png")
    assert plt.get_fignums() == before
