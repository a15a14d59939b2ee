"""Cascades of SR models: halo, checkpoints, tiling, and the checks on their stages."""

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
from xr_unmixsr.errors import ModelError
from xr_unmixsr.models import (
    Cascade,
    cascade_model,
    conv_model,
    get_model,
    load_checkpoint,
    save_checkpoint,
)
from xr_unmixsr.models.base import SRModel

BANDS = 4


def _conv(scale: int, seed: int, gain: float = 0.5) -> SRModel:
    """A random ConvSR stage as if loaded from a checkpoint (with its config in its card)."""
    config = {"n_bands": BANDS, "scale": scale, "features": 6, "depth": 2}
    model = conv_model(BANDS, scale, features=6, depth=2, seed=seed)
    return replace(model, gain=np.float32(gain), card={"config": config})


def _cube(size: int = 48, chunks: int = 48) -> xr.DataArray:
    data = np.random.default_rng(1).random((BANDS, size, size), dtype=np.float32)
    cube = xr.DataArray(
        da.from_array(data, chunks=(BANDS, chunks, chunks)),
        dims=("band", "y", "x"),
        coords={"y": 1000.0 - np.arange(size) * 10 - 5, "x": np.arange(size) * 10 + 5.0},
    )
    return cube.rio.write_crs("EPSG:32633")


@pytest.fixture(scope="module")
def chain() -> tuple[SRModel, dict]:
    return cascade_model("chain", [_conv(2, 0), get_model("bicubic", 2), _conv(2, 1)])


def test_scale_halo_and_output_equal_the_stages(chain: tuple[SRModel, dict]) -> None:
    model, _ = chain
    stages = model.network.stages
    assert model.scale == 8
    # 3 (conv, depth 2) + ceil(2 / 2) (bicubic, read at x2) + ceil(3 / 4) (conv, read at x4)
    assert model.halo == 3 + 1 + 1
    x = torch.rand(1, BANDS, 12, 12)
    with torch.inference_mode():
        np.testing.assert_array_equal(
            model.network(x).numpy(), stages[2](stages[1](stages[0](x))).numpy()
        )


def test_halo_covers_the_reach(chain: tuple[SRModel, dict]) -> None:
    model, _ = chain
    x = torch.rand(1, BANDS, 30, 30)
    y = x.clone()
    y[..., 15, 15] += 1.0
    with torch.inference_mode():
        diff = (model.network(x) - model.network(y)).abs().amax(dim=(0, 1)).numpy()
    rows = np.nonzero(diff.max(axis=1) > 0)[0]
    reach = max(15 - rows.min() / 8, (rows.max() + 1) / 8 - 16)
    assert 0 < reach <= model.halo


def test_checkpoint_round_trip_and_tiling(tmp_path: Path, chain: tuple[SRModel, dict]) -> None:
    """Saved and loaded, the cascade gives the same output, whole or chunked and tiled."""
    model, config = chain
    path = save_checkpoint(model, tmp_path / "chain", config=config)
    loaded = load_checkpoint(path)
    assert isinstance(loaded.network, Cascade)
    assert (loaded.scale, loaded.halo, loaded.n_bands) == (8, model.halo, BANDS)
    assert float(loaded.gain) == 0.5
    cube = _cube()
    whole = xr_unmixsr.upscale(cube.compute(), 8, model=model, device="cpu").values
    tiled = xr_unmixsr.upscale(_cube(chunks=16), 8, model=path, tile=8, device="cpu").values
    np.testing.assert_allclose(tiled, whole, rtol=1e-5, atol=1e-6)


def test_one_model_twice_is_saved_as_two_stages(tmp_path: Path) -> None:
    stage = _conv(2, 0)
    model, config = cascade_model("twice", [stage, stage])
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "twice", config=config))
    x = torch.rand(1, BANDS, 10, 10)
    with torch.inference_mode():
        expected = stage.network(stage.network(x))
        np.testing.assert_allclose(loaded.network(x).numpy(), expected.numpy(), rtol=1e-6)


def test_stages_must_share_bands_and_normalisation() -> None:
    with pytest.raises(ModelError, match="normalisation"):
        cascade_model("bad", [_conv(2, 0), _conv(2, 1, gain=0.25)])
    with pytest.raises(ModelError, match="at least one stage"):
        Cascade([])
    untrained = replace(_conv(2, 0), card={})
    with pytest.raises(ModelError, match="no config"):
        cascade_model("bad", [untrained])
