"""Tests of the seeded patch sampler: lazy window reads, nodata handling, pairs, determinism."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import torch
import xarray as xr

from xr_unmixsr.errors import InvalidDataError, ParameterError
from xr_unmixsr.training import PatchSampler, gaussian_degrade


def _cube(data: np.ndarray, nodata: float | None = None) -> xr.DataArray:
    cube = xr.DataArray(data, dims=("band", "y", "x"))
    if nodata is not None:
        cube = cube.rio.write_nodata(nodata)
    return cube


def _smooth(bands: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = 1.0 + np.sin(6 * yy)[None] * np.cos(5 * xx)[None] * 0.5
    return (base * rng.uniform(1.0, 2.0, (bands, 1, 1))).astype(np.float32)


class _Guarded:
    """An array-like that records every region read and refuses big ones."""

    def __init__(self, data: np.ndarray, max_side: int) -> None:
        self.data, self.max_side = data, max_side
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim
        self.reads: list[tuple[slice, ...]] = []

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        out = self.data[key]
        if out.size and max(out.shape[1:]) > self.max_side:
            raise AssertionError(f"read a region of {out.shape}: the whole scene is being loaded")
        if out.size:
            self.reads.append(key)
        return out


def test_dask_reads_only_sampled_windows() -> None:
    guard = _Guarded(_smooth(4, 256, 256), max_side=32)
    cube = _cube(da.from_array(guard, chunks=(4, 32, 32), asarray=True))
    sampler = PatchSampler(cube, 2, 16, seed=0, stat_windows=2)
    lr, hr = sampler.sample(2)
    assert hr.shape == (2, 4, 16, 16) and lr.shape == (2, 4, 8, 8)
    # (2 statistics + 2 training windows) x at most 4 chunks each, of the 64 chunks of the scene
    assert 0 < len(guard.reads) <= 16


def test_numpy_and_dask_give_the_same_patches() -> None:
    data = _smooth(3, 64, 64)
    a = PatchSampler(_cube(data), 2, 16, seed=3).sample(3)
    b = PatchSampler(_cube(da.from_array(data, chunks=(3, 20, 20))), 2, 16, seed=3).sample(3)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_deterministic_with_seed() -> None:
    cube = _cube(_smooth(3, 64, 64))
    a = PatchSampler(cube, 2, 16, seed=1).sample(4)[1]
    b = PatchSampler(cube, 2, 16, seed=1).sample(4)[1]
    c = PatchSampler(cube, 2, 16, seed=2).sample(4)[1]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_rng_state_round_trip() -> None:
    sampler = PatchSampler(_cube(_smooth(3, 64, 64)), 2, 16, seed=1)
    state = sampler.rng_state
    first = sampler.sample(2)[1]
    sampler.rng_state = state
    assert torch.equal(sampler.sample(2)[1], first)


@pytest.mark.parametrize("nodata", [np.nan, -9999.0])
def test_skips_patches_with_nodata(nodata: float) -> None:
    data = _smooth(3, 64, 64)  # values >= 0.5 everywhere
    data[:, :40, :] = nodata
    data[1, 50, 50] = nodata  # a single missing value in one band
    cube = _cube(data, None if np.isnan(nodata) else nodata)
    sampler = PatchSampler(cube, 2, 16, seed=0, normalisation="none", augment=False)
    assert sampler.band_mask.all()
    _, hr = sampler.sample(8)
    assert torch.isfinite(hr).all()
    assert (hr > 0.4).all()  # no filled value, no nodata value


def test_all_nodata_band_is_masked_and_zero() -> None:
    data = _smooth(5, 64, 64)
    data[2] = -32768.0
    cube = _cube(data, -32768.0)
    sampler = PatchSampler(cube, 2, 16, seed=0)
    assert sampler.band_mask.tolist() == [True, True, False, True, True]
    lr, hr = sampler.sample(4)
    assert (hr[:, 2] == 0).all() and (lr[:, 2] == 0).all()
    assert torch.isfinite(lr).all() and (hr[:, [0, 1, 3, 4]] > 0).all()
    assert sampler.sample_pixels(100).shape == (100, 4)


def test_no_valid_window_raises() -> None:
    data = _smooth(2, 32, 32)
    data[:, ::8, ::8] = np.nan
    with pytest.raises(InvalidDataError):
        PatchSampler(_cube(data), 2, 16, seed=0, max_tries=3).sample(1)


def test_global_normalisation_is_the_99th_percentile() -> None:
    data = _smooth(3, 32, 32)
    sampler = PatchSampler(_cube(data), 2, 32, seed=0, stat_windows=1)
    assert sampler.offset == 0.0
    assert sampler.gain == pytest.approx(1.0 / np.percentile(data, 99), rel=1e-5)
    per_band = PatchSampler(_cube(data), 2, 32, seed=0, normalisation="band")
    assert np.asarray(per_band.gain).shape == (3,)


@pytest.mark.parametrize("degradation", ["bicubic", "gaussian"])
@pytest.mark.parametrize("scale", [2, 4])
def test_lr_shape_is_hr_over_scale(degradation: str, scale: int) -> None:
    sampler = PatchSampler(_cube(_smooth(3, 64, 64)), scale, 16, degradation=degradation)
    lr, hr = sampler.sample(2)
    assert hr.shape == (2, 3, 16, 16)
    assert lr.shape == (2, 3, 16 // scale, 16 // scale)


def test_gaussian_degradation_keeps_constants_and_means() -> None:
    x = torch.full((1, 2, 16, 16), 3.0)
    assert torch.allclose(gaussian_degrade(x, 4), torch.full((1, 2, 4, 4), 3.0))
    ramp = torch.arange(16.0).repeat(16, 1)[None, None]
    y = gaussian_degrade(ramp, 2)
    # centred on each 2x2 footprint: the mean of the two columns, away from the borders
    assert torch.allclose(y[0, 0, 4, 2:6], torch.tensor([4.5, 6.5, 8.5, 10.5]), atol=1e-4)


def test_paired_lr_hr() -> None:
    hr = _smooth(3, 64, 64)
    lr = hr[:, ::2, ::2].copy()
    sampler = PatchSampler(
        _cube(hr), 2, 16, lr_cubes=_cube(lr), augment=False, normalisation="none"
    )
    lr_t, hr_t = sampler.sample(3)
    assert torch.equal(lr_t, hr_t[:, :, ::2, ::2])


def test_bad_arguments() -> None:
    cube = _cube(_smooth(3, 32, 32))
    with pytest.raises(ParameterError, match="multiple"):
        PatchSampler(cube, 3, 16)
    with pytest.raises(ParameterError, match="smaller"):
        PatchSampler(cube, 2, 64)
    with pytest.raises(ParameterError, match="degradation"):
        PatchSampler(cube, 2, 16, degradation="box")
    with pytest.raises(ParameterError, match="bands"):
        PatchSampler([cube, _cube(_smooth(4, 32, 32))], 2, 16)
