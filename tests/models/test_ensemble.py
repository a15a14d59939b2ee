"""Geometric self-ensemble (``upscale(..., self_ensemble=True)``): the average it computes, its
equivariance, bicubic unchanged, seam-free tiling, and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import xarray as xr

import xr_unmixsr
from xr_unmixsr.cli import main
from xr_unmixsr.demo import make_demo_scene
from xr_unmixsr.io import open_raster, write_raster
from xr_unmixsr.models import conv_model, get_model, self_ensembled

BANDS = 6


def _net() -> torch.nn.Module:
    return conv_model(BANDS, 2, features=6, depth=2, seed=0).network


def _scene(size: int, chunks: int | None = None) -> xr.DataArray:
    cube = make_demo_scene(size, size, BANDS, seed=3)["reflectance"]
    return cube if chunks is None else cube.chunk({"y": chunks, "x": chunks})


def test_is_the_mean_over_the_eight_symmetries() -> None:
    net = _net()
    model = self_ensembled(conv_model(BANDS, 2, features=6, depth=2, seed=0))
    x = torch.rand(1, BANDS, 10, 14)  # not square: turned copies are 14 x 10
    outputs = []
    with torch.inference_mode():
        for turns in range(4):
            for mirror in (False, True):
                y = torch.rot90(x, turns, dims=(2, 3))
                y = torch.flip(y, dims=(3,)) if mirror else y
                out = net(y)
                out = torch.flip(out, dims=(3,)) if mirror else out
                outputs.append(torch.rot90(out, -turns, dims=(2, 3)))
        got = model.network(x)
        plain = net(x)
    assert got.shape == (1, BANDS, 20, 28)
    np.testing.assert_allclose(got.numpy(), torch.stack(outputs).mean(0).numpy(), atol=1e-6)
    assert not np.allclose(got.numpy(), plain.numpy(), atol=1e-4)


def test_equivariant_where_the_network_is_not() -> None:
    """Turning or mirroring the input turns or mirrors the ensemble's output exactly."""
    net = _net()
    ens = self_ensembled(conv_model(BANDS, 2, features=6, depth=2, seed=0)).network
    x = torch.rand(1, BANDS, 12, 12)
    with torch.inference_mode():
        for transform in (lambda t: torch.rot90(t, 1, dims=(2, 3)), lambda t: t.flip(2)):
            assert not torch.allclose(net(transform(x)), transform(net(x)), atol=1e-4)
            torch.testing.assert_close(ens(transform(x)), transform(ens(x)), atol=1e-5, rtol=0)


def test_bicubic_is_unchanged_and_disabled_is_the_model() -> None:
    model = get_model("bicubic", 2)
    assert self_ensembled(model, enabled=False) is model
    cube = _scene(32)
    np.testing.assert_allclose(
        xr_unmixsr.upscale(cube, 2, self_ensemble=True).values,
        xr_unmixsr.upscale(cube, 2).values,
        atol=1e-6,
    )


def test_tiled_equals_whole_with_back_projection() -> None:
    """The halo is the network's: small tiles and chunks give the whole-scene result."""
    model = conv_model(BANDS, 2, features=6, depth=2, seed=0)
    options = dict(self_ensemble=True, back_projection=3, device="cpu")
    whole = xr_unmixsr.upscale(_scene(64), 2, model, **options)
    tiled = xr_unmixsr.upscale(_scene(64, chunks=20), 2, model, tile=16, **options)
    np.testing.assert_allclose(tiled.values, whole.values, rtol=0, atol=1e-6)
    assert whole.rio.transform() == xr_unmixsr.upscale(_scene(64), 2, model).rio.transform()


def test_cli_equals_the_api(tmp_path: Path) -> None:
    src, ckpt = tmp_path / "scene.tif", tmp_path / "net.safetensors"
    write_raster(_scene(32), src)
    model = conv_model(BANDS, 2, features=6, depth=2, seed=0)
    config = {"n_bands": BANDS, "scale": 2, "features": 6, "depth": 2}
    xr_unmixsr.models.save_checkpoint(model, ckpt, config=config)
    out = tmp_path / "sr.tif"
    args = ["upscale", str(src), str(out), "--scale", "2", "--model", str(ckpt)]
    assert main([*args, "--self-ensemble", "--quiet"]) == 0
    expected = xr_unmixsr.upscale(open_raster(src), 2, ckpt, self_ensemble=True)
    np.testing.assert_allclose(open_raster(out).values, expected.values, rtol=1e-5, atol=1e-7)
