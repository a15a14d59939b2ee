"""Tests of sub-pixel abundances by back-projection (``unmix(..., scale=)`` for VCA-FCLS and the
autoencoder): the operator's constraints and halo, its gain over bicubic upsampling, and the
seam-free, georeferenced result through ``unmix``."""

from __future__ import annotations

import numpy as np
import pytest
import rioxarray  # noqa: F401
import torch
import xarray as xr
from affine import Affine
from scipy import ndimage

import xr_unmixsr
from xr_unmixsr.errors import ParameterError
from xr_unmixsr.models.bicubic import BICUBIC_HALO, bicubic_resize
from xr_unmixsr.unmixing.subpixel import (
    STEP_RADIUS,
    AbundanceBackProjection,
    backprojection_model,
)
from xr_unmixsr.unmixing.synthetic import linear_mixtures

P, BANDS = 3, 40
X0, Y0, RES = 366975.0, 5808045.0, 30.0


def _blocky_abundances(size: int, p: int, seed: int) -> np.ndarray:
    """(p, size, size) abundances of mostly pure regions with sharp borders (like land cover):
    each pixel takes the material of its nearest seed point, then a light blur mixes the borders."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, size, (4 * p, 2))
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    nearest = np.argmin(
        (yy[..., None] - points[:, 0]) ** 2 + (xx[..., None] - points[:, 1]) ** 2, axis=-1
    )
    labels = nearest % p
    maps = np.stack([(labels == k).astype(float) for k in range(p)])
    maps = ndimage.gaussian_filter(maps, sigma=(0, 0.7, 0.7))
    return maps / maps.sum(axis=0, keepdims=True)


def _run(op: AbundanceBackProjection, coarse: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return op(torch.from_numpy(coarse.astype(np.float32))[None])[0].numpy()


def test_simplex_and_shape() -> None:
    coarse = _blocky_abundances(24, P, 0)
    fine = _run(AbundanceBackProjection(4), coarse)
    assert fine.shape == (P, 96, 96)
    assert (fine >= 0).all()
    np.testing.assert_allclose(fine.sum(axis=0), 1.0, atol=1e-5)


def test_zero_steps_is_renormalised_bicubic() -> None:
    coarse = _blocky_abundances(20, P, 1)
    up = bicubic_resize(torch.from_numpy(coarse.astype(np.float32))[None], 2)[0].numpy()
    up = np.clip(up, 1e-3, None)
    np.testing.assert_allclose(
        _run(AbundanceBackProjection(2, 0), coarse), up / up.sum(axis=0), atol=1e-6
    )


@pytest.mark.parametrize("scale", [2, 4])
def test_closer_to_the_truth_than_bicubic(scale: int) -> None:
    """Degrade sharp true abundances, back-project: lower RMSE against the truth than bicubic
    upsampling (by at least 10 %), and more consistent with the coarse maps."""
    truth = _blocky_abundances(32 * scale, P, 2)
    t = torch.from_numpy(truth.astype(np.float32))[None]
    coarse = bicubic_resize(t, 1.0 / scale)[0].numpy()
    bicubic = _run(AbundanceBackProjection(scale, 0), coarse)
    fine = _run(AbundanceBackProjection(scale), coarse)
    rmse_bicubic = np.sqrt(((bicubic - truth) ** 2).mean())
    rmse_fine = np.sqrt(((fine - truth) ** 2).mean())
    assert rmse_fine < 0.9 * rmse_bicubic

    def inconsistency(x: np.ndarray) -> float:
        back = bicubic_resize(torch.from_numpy(x)[None], 1.0 / scale)[0].numpy()
        return float(np.abs(back - coarse).mean())

    assert inconsistency(fine) < 0.5 * inconsistency(bicubic)


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
@pytest.mark.parametrize("steps", [0, 1, 2])
def test_halo_covers_the_reach(scale: int, steps: int) -> None:
    """Changing one coarse pixel changes fine pixels no farther than the operator's halo (in
    coarse pixels), and as far as the halo's per-step radius says (it is not needlessly large)."""
    rng = np.random.default_rng(3)
    coarse = rng.dirichlet(np.ones(P), size=(40, 40)).transpose(2, 0, 1)
    other = coarse.copy()
    other[:, 20, 20] = [1.0, 0.0, 0.0]
    op = AbundanceBackProjection(scale, steps)
    diff = np.abs(_run(op, coarse) - _run(op, other)).max(axis=0)
    ys, xs = np.nonzero(diff > 0)
    lo = min(ys.min(), xs.min()) / scale
    hi = (max(ys.max(), xs.max()) + 1) / scale
    reach = max(20 - lo, hi - 21)
    assert reach <= op.halo
    assert reach > op.halo - 1


def test_empty_coarse_pixels_constrain_nothing() -> None:
    """Pixels the engine filled with zeros (missing) do not pull their neighbours to zero."""
    coarse = _blocky_abundances(24, P, 4)
    holed = coarse.copy()
    holed[:, 10:14, 10:14] = 0.0
    fine = _run(AbundanceBackProjection(2), holed)
    assert np.isfinite(fine).all()
    np.testing.assert_allclose(fine.sum(axis=0), 1.0, atol=1e-5)
    ref = _run(AbundanceBackProjection(2), coarse)
    far = np.ones((48, 48), bool)
    far[8:40, 8:40] = False
    assert np.abs(fine - ref)[:, far].max() < 1e-3


def _scene(size: int, seed: int) -> tuple[xr.DataArray, np.ndarray]:
    """A noise-free georeferenced cube mixed from sharp abundance maps, and its endmembers."""
    _, endmembers, _ = linear_mixtures(10, BANDS, P, seed=seed)
    maps = _blocky_abundances(size, P, seed)
    values = np.einsum("pyx,pb->byx", maps, endmembers).astype(np.float32)
    cube = xr.DataArray(
        values,
        dims=("band", "y", "x"),
        coords={
            "band": np.arange(1, BANDS + 1),
            "y": Y0 - (np.arange(size) + 0.5) * RES,
            "x": X0 + (np.arange(size) + 0.5) * RES,
        },
        name="refl",
    ).rio.write_crs("EPSG:32633")
    return cube, endmembers


@pytest.fixture(scope="module")
def fine_result() -> tuple[xr.DataArray, np.ndarray, xr.Dataset, xr.Dataset]:
    cube, endmembers = _scene(150, 5)
    return (
        cube,
        endmembers,
        xr_unmixsr.unmix(cube, P, endmembers=endmembers),
        xr_unmixsr.unmix(cube, P, endmembers=endmembers, scale=4),
    )


def test_unmix_scale_geometry(
    fine_result: tuple[xr.DataArray, np.ndarray, xr.Dataset, xr.Dataset],
) -> None:
    cube, _, coarse, fine = fine_result
    ab = fine["abundances"]
    assert ab.shape == (P, 600, 600)
    assert ab.rio.crs == cube.rio.crs
    assert ab.rio.transform() == cube.rio.transform() @ Affine.scale(0.25)
    assert ab.rio.bounds() == pytest.approx(cube.rio.bounds())
    assert fine.attrs["scale"] == 4
    assert fine["rmse"].shape == (600, 600)
    np.testing.assert_array_equal(fine["rmse"].values[1::4, 2::4], coarse["rmse"].values)
    np.testing.assert_array_equal(fine["endmembers"].values, coarse["endmembers"].values)


def test_unmix_scale_is_seam_free(
    fine_result: tuple[xr.DataArray, np.ndarray, xr.Dataset, xr.Dataset],
) -> None:
    """Chunked and tiled (chunks smaller than the operator's halo, rechunked by the engine; tiles
    of 64), the fine abundances equal the in-memory ones."""
    cube, endmembers, _, fine = fine_result
    lazy = xr_unmixsr.unmix(
        cube.chunk({"y": 40, "x": 70}), P, endmembers=endmembers, scale=4, tile=64
    )
    assert lazy["abundances"].chunks is not None
    assert len(lazy["abundances"].chunks[1]) > 1
    np.testing.assert_allclose(lazy["abundances"].values, fine["abundances"].values, atol=1e-5)


def test_unmix_nodata_stays_missing() -> None:
    cube, endmembers = _scene(70, 6)
    holed = cube.copy()
    holed.values[:, 30:33, 40:42] = np.nan
    res = xr_unmixsr.unmix(holed, P, endmembers=endmembers, scale=2)
    ab = res["abundances"].values
    assert np.isnan(ab[:, 60:66, 80:84]).all()
    assert np.isfinite(np.delete(ab, np.s_[60:66], axis=1)).all()


def test_backprojection_model_metadata() -> None:
    model = backprojection_model(3, iterations=5)
    assert model.scale == 3
    assert model.halo == BICUBIC_HALO + 5 * STEP_RADIUS
    assert model.identity_normalisation


def test_unsupported_scale() -> None:
    cube, endmembers = _scene(20, 7)
    with pytest.raises(ParameterError, match="scale=5"):
        xr_unmixsr.unmix(cube, P, endmembers=endmembers, scale=5)
