"""Model lookup: built-in names, checkpoints loaded once per process, safe loading."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import xr_unmixsr
from xr_unmixsr.errors import ModelError, UnsupportedScaleError
from xr_unmixsr.models import available_models, conv_model, get_model, save_checkpoint
from xr_unmixsr.models.registry import _load_checkpoint_cached


def _cube(bands: int = 5, size: int = 40) -> xr.DataArray:
    data = np.random.default_rng(0).random((bands, size, size), dtype=np.float32)
    cube = xr.DataArray(
        da.from_array(data, chunks=(bands, 8, 8)),
        dims=("band", "y", "x"),
        coords={"y": 1000.0 - np.arange(size) * 10 - 5, "x": np.arange(size) * 10 + 5.0},
    )
    return cube.rio.write_crs("EPSG:32633")


def test_checkpoint_loaded_once_per_process_not_per_tile(tmp_path) -> None:
    path = save_checkpoint(
        conv_model(5, 2, features=8),
        tmp_path / "tiny",
        config={"n_bands": 5, "scale": 2, "features": 8},
    )
    _load_checkpoint_cached.cache_clear()
    cube = _cube()
    assert cube.data.npartitions == 25
    xr_unmixsr.upscale(cube, 2, model=path, tile=8).compute()
    xr_unmixsr.upscale(cube, 2, model=str(path), tile=8).compute()
    info = _load_checkpoint_cached.cache_info()
    assert info.misses == 1, info


def test_shipped_name_lookup_through_model_path(tmp_path, monkeypatch) -> None:
    save_checkpoint(
        conv_model(5, 2, features=8),
        tmp_path / "my-model-x2",
        config={"n_bands": 5, "scale": 2, "features": 8},
    )
    monkeypatch.setenv("XR_UNMIXSR_MODEL_PATH", str(tmp_path))
    assert "my-model-x2" in available_models()
    model = get_model("my-model-x2", 2)
    assert model.n_bands == 5 and model.scale == 2
    with pytest.raises(UnsupportedScaleError, match="upsamples by 2"):
        get_model("my-model-x2", 4)


@pytest.mark.parametrize("given", ["run-0.2", "run-0.2.safetensors", "run-0.2.json"])
def test_checkpoint_name_with_a_dot_keeps_its_dot(tmp_path, given) -> None:
    weights = save_checkpoint(
        conv_model(5, 2, features=8),
        tmp_path / given,
        config={"n_bands": 5, "scale": 2, "features": 8},
    )
    assert weights == tmp_path / "run-0.2.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-0.2.json", "run-0.2.safetensors"]
    for path in ("run-0.2", "run-0.2.safetensors", "run-0.2.json"):
        assert get_model(tmp_path / path, 2).name == "run-0.2"


def test_bicubic_scales_and_unknown_name() -> None:
    for s in (2, 3, 4, 8):
        assert get_model("bicubic", s).scale == s
    with pytest.raises(UnsupportedScaleError, match="2, 3, 4, 8"):
        get_model("bicubic", 6)
    with pytest.raises(ModelError, match="bicubic"):
        get_model("no-such-model", 2)
