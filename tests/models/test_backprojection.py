"""Iterative back-projection after an upscaler (``upscale(..., back_projection=)``): consistency
with the input, gain over the model alone, halo, seam-free tiling, geometry, and the skins."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rioxarray  # noqa: F401
import torch
import xarray as xr

import xr_unmixsr
from xr_unmixsr.cli import main
from xr_unmixsr.demo import make_demo_scene
from xr_unmixsr.errors import ParameterError
from xr_unmixsr.io import open_raster, write_raster
from xr_unmixsr.metrics import psnr
from xr_unmixsr.models import back_projected, conv_model, get_model
from xr_unmixsr.models.bicubic import BACKPROJECTION_RADIUS, BICUBIC_HALO, bicubic_resize

BANDS = 4


def _scene(size: int, chunks: int | None = None) -> xr.DataArray:
    cube = make_demo_scene(size, size, 24, seed=2)["reflectance"]
    if chunks is not None:
        cube = cube.chunk({"y": chunks, "x": chunks})
    return cube


def _inconsistency(sr: np.ndarray, lr: np.ndarray, scale: int) -> float:
    """Largest difference between ``sr`` degraded and ``lr``, relative to ``lr``'s largest value,
    away from the scene's border (where the engine's padding stands in for the missing context)."""
    down = bicubic_resize(torch.from_numpy(sr)[None], 1.0 / scale)[0].numpy()
    return float(np.abs(down - lr)[:, 3:-3, 3:-3].max() / np.abs(lr).max())


@pytest.mark.parametrize("scale", [2, 4])
def test_consistent_with_the_input_and_closer_to_the_truth(scale: int) -> None:
    """Degraded again, the back-projected output gives the input back (bicubic does not), and
    it is closer to the HR truth the input was degraded from."""
    hr = _scene(32 * scale)
    lr = xr_unmixsr.degrade(hr, scale)
    plain = xr_unmixsr.upscale(lr, scale).values
    projected = xr_unmixsr.upscale(lr, scale, back_projection=20).values
    assert _inconsistency(projected, lr.values, scale) < 1e-4
    assert _inconsistency(plain, lr.values, scale) > 0.05
    truth = hr.values[:, : 32 * scale, : 32 * scale]
    assert psnr(truth, projected, data_range=1.0) > 0.2 + psnr(truth, plain, data_range=1.0)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("steps", [1, 3])
def test_halo_covers_the_reach(scale: int, steps: int) -> None:
    """Changing one input pixel changes output pixels no farther than the halo, and almost as
    far (each step reaches between 2 and 3 input pixels: the halo counts 3)."""
    model = back_projected(get_model("bicubic", scale), steps)
    assert model.halo == BICUBIC_HALO + steps * BACKPROJECTION_RADIUS
    x = torch.rand(1, 2, 40, 40)
    y = x.clone()
    y[..., 20, 20] += 1.0
    with torch.inference_mode():
        diff = (model.network(x) - model.network(y)).abs().amax(dim=(0, 1)).numpy()
    rows = np.nonzero(diff.max(axis=1) > 0)[0]
    reach = max(20 - rows.min() / scale, (rows.max() + 1) / scale - 21)
    assert model.halo - steps < reach <= model.halo


def test_tiled_equals_whole_for_a_network() -> None:
    """Seam-free: a learned model plus back-projection, on small chunks and tiles, equals the
    whole-scene result; the geometry is that of the model alone."""
    model = conv_model(24, 2, features=6, depth=2, seed=0)
    whole = xr_unmixsr.upscale(_scene(64), 2, model, back_projection=5, device="cpu")
    tiled = xr_unmixsr.upscale(
        _scene(64, chunks=20), 2, model, back_projection=5, tile=24, device="cpu"
    )
    # 2e-7 with the halo; 5e-6 when the per-step radius is set to 1 (too small)
    np.testing.assert_allclose(tiled.values, whole.values, rtol=0, atol=1e-6)
    plain = xr_unmixsr.upscale(_scene(64), 2, model, device="cpu")
    assert whole.rio.transform() == plain.rio.transform()
    assert whole.rio.crs == plain.rio.crs and whole.rio.nodata == plain.rio.nodata
    np.testing.assert_array_equal(whole["wavelength"].values, plain["wavelength"].values)
    assert not np.allclose(whole.values, plain.values)


def test_zero_steps_is_the_model_itself() -> None:
    model = get_model("bicubic", 2)
    assert back_projected(model, 0) is model


@pytest.mark.parametrize("steps", [-1, 2.5, True])
def test_bad_steps_raise(steps: object) -> None:
    with pytest.raises(ParameterError, match="back_projection"):
        xr_unmixsr.upscale(_scene(16), 2, back_projection=steps)


def test_abundance_models_are_refused() -> None:
    with pytest.raises(ParameterError, match="super-resolution models only"):
        back_projected(replace(get_model("bicubic", 2), out_channels=3), 3)


def test_cli_and_accessor_equal_the_api(tmp_path: Path) -> None:
    """The skins only translate the argument: ``--back-projection`` and the accessor's keyword
    give the API's result."""
    src = tmp_path / "scene.tif"
    write_raster(_scene(32), src)
    out = tmp_path / "sr.tif"
    rc = main(["upscale", str(src), str(out), "--scale", "2", "--back-projection", "3", "--quiet"])
    assert rc == 0
    cube = open_raster(src)
    expected = xr_unmixsr.upscale(cube, 2, back_projection=3)
    np.testing.assert_allclose(open_raster(out).values, expected.values, rtol=1e-6)
    via_accessor = cube.unmixsr.upscale(2, back_projection=3)
    np.testing.assert_array_equal(via_accessor.values, expected.values)
    data = da.from_array(cube.values, chunks=(24, 16, 16))
    lazy = cube.copy(data=data).unmixsr.upscale(2, back_projection=3)
    assert isinstance(lazy.data, da.Array)
    np.testing.assert_allclose(lazy.values, expected.values, rtol=1e-5, atol=1e-6)


def test_missing_pixels_add_no_residual_of_their_own() -> None:
    """A nodata hole: valid outputs next to it are disturbed less than with the fill taken as a
    measurement, the disturbance stays within 8 input pixels, and the hole stays missing."""
    lr = xr_unmixsr.degrade(_scene(128), 2)
    holed = lr.copy(data=lr.values.copy())
    holed.values[:, 30:34, 30:34] = np.nan
    clean = xr_unmixsr.upscale(lr, 2, back_projection=5).values
    got = xr_unmixsr.upscale(holed, 2, back_projection=5).values
    assert np.isnan(got[:, 60:68, 60:68]).all() and not np.isnan(got[:, :60]).any()
    diff = np.nan_to_num(np.abs(got - clean)).max(axis=0)
    near = np.zeros_like(diff, bool)
    near[58:70, 58:70] = True
    near[60:68, 60:68] = False
    far = np.ones_like(diff, bool)
    far[44:84, 44:84] = False
    assert diff[far].max() < 1e-4

    # the same hole filled with zeros that count as measurements (the fill without the mask)
    model = back_projected(get_model("bicubic", 2), 5)
    filled = torch.from_numpy(np.nan_to_num(holed.values))[None]
    with torch.inference_mode():
        unmasked = model.network.network(filled)
        for _ in range(5):
            unmasked = unmasked + bicubic_resize(filled - bicubic_resize(unmasked, 0.5), 2)
    unmasked_diff = np.abs(unmasked[0].numpy() - clean).max(axis=0)
    assert diff[near].max() < 0.9 * unmasked_diff[near].max()
