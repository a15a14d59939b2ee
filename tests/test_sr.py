"""Tests of ``upscale`` and the ``unmixsr`` accessor: geometry, laziness, models and errors."""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from dask.callbacks import Callback

import xr_unmixsr
from xr_unmixsr.engine import predict_array
from xr_unmixsr.errors import (
    BandMismatchError,
    DimensionError,
    InvalidDataError,
    MissingCRSWarning,
    ModelError,
    UnsupportedScaleError,
)
from xr_unmixsr.models import SRModel, bicubic_model, conv_model, save_checkpoint

CRS = "EPSG:32633"
X0, Y0, RES = 366975.0, 5808045.0, 30.0
BANDS, H, W = 6, 11, 9


def _cube(
    *,
    bands: int = BANDS,
    band_last: bool = False,
    lazy: bool = False,
    crs: str | None = CRS,
    nodata: float | None = None,
) -> xr.DataArray:
    """A georeferenced float32 cube with wavelength/fwhm band coordinates."""
    rng = np.random.default_rng(1)
    values = (100 + 50 * rng.random((bands, H, W))).astype(np.float32)
    cube = xr.DataArray(
        values,
        dims=("band", "y", "x"),
        coords={
            "band": np.arange(1, bands + 1),
            "wavelength": ("band", np.linspace(420.0, 2400.0, bands)),
            "fwhm": ("band", np.linspace(6.0, 9.0, bands)),
            "y": Y0 - (np.arange(H) + 0.5) * RES,
            "x": X0 + (np.arange(W) + 0.5) * RES,
        },
        attrs={"sensor": "synthetic"},
        name="refl",
    )
    if crs:
        cube = cube.rio.write_crs(crs)
    if nodata is not None:
        cube = cube.rio.write_nodata(nodata)
    if band_last:
        cube = cube.transpose("y", "x", "band")
    if lazy:
        cube = cube.chunk({"y": 4, "x": 5})
    return cube


def _check_geometry(out: xr.DataArray, cube: xr.DataArray, scale: int) -> None:
    assert out.dims == ("band", "y", "x")
    assert out.shape == (BANDS, H * scale, W * scale)
    assert out.dtype == np.float32
    assert out.rio.crs == cube.rio.crs
    src, dst = cube.rio.transform(), out.rio.transform()
    assert dst.a == pytest.approx(src.a / scale)
    assert dst.e == pytest.approx(src.e / scale)
    assert (dst.b, dst.d, dst.c, dst.f) == (src.b, src.d, src.c, src.f)
    np.testing.assert_allclose(out.x.values, X0 + (np.arange(W * scale) + 0.5) * RES / scale)
    np.testing.assert_allclose(out.y.values, Y0 - (np.arange(H * scale) + 0.5) * RES / scale)
    np.testing.assert_allclose(out.rio.bounds(), cube.rio.bounds(), rtol=0, atol=1e-6)
    for name in ("band", "wavelength", "fwhm"):
        np.testing.assert_array_equal(out[name].values, cube[name].values)


# ------------------------------------------------------------------------------------------
# DataArray input
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_accessor", [False, True], ids=["function", "accessor"])
@pytest.mark.parametrize("lazy", [False, True], ids=["numpy", "dask"])
@pytest.mark.parametrize("band_last", [False, True], ids=["band-first", "band-last"])
@pytest.mark.parametrize("scale", [2, 3])
def test_upscale_dataarray(
    scale: int, band_last: bool, lazy: bool, use_accessor: bool, compute_counter: Callback
) -> None:
    cube = _cube(band_last=band_last, lazy=lazy, nodata=-1.0)
    counter = compute_counter
    with counter:
        if use_accessor:
            out = cube.unmixsr.upscale(scale, tile=5, batch_size=3)
        else:
            out = xr_unmixsr.upscale(cube, scale, tile=5, batch_size=3)
    assert counter.started == 0
    assert isinstance(out.data, da.Array) is lazy
    _check_geometry(out, cube, scale)
    assert out.rio.nodata == -1.0
    assert out.attrs["sensor"] == "synthetic"
    assert out.name == "refl"
    values = out.values
    ref = predict_array(bicubic_model(scale), _cube().values, device="cpu", nodata=-1.0)
    np.testing.assert_allclose(values, ref, rtol=0, atol=1e-4 * 50)


def test_upscale_nodata_pixel_and_masked_input() -> None:
    cube = _cube(nodata=-32768.0)
    cube[:, 3, 4] = -32768.0
    out = xr_unmixsr.upscale(cube, 2).values
    assert (out[:, 6:8, 8:10] == -32768.0).all()
    assert (out == -32768.0).sum() == BANDS * 4
    masked = _cube().rio.write_nodata(-32768.0, encoded=True)
    masked[:, 3, 4] = np.nan
    out = xr_unmixsr.upscale(masked, 2)
    assert out.rio.encoded_nodata == -32768.0
    assert np.isnan(out.values).sum() == BANDS * 4


def test_degrade_leaves_missing_values_out() -> None:
    """A band missing everywhere stays exactly nodata after degradation and does not change
    the other bands; a missing HR pixel makes its LR pixel missing, and only that one."""
    cube = _cube(nodata=-32768.0).isel(y=slice(0, 10), x=slice(0, 8))
    clean = xr_unmixsr.degrade(cube, 2).values
    holed = cube.copy()
    holed[2] = -32768.0
    holed[4, 5, 3] = -32768.0
    low = xr_unmixsr.degrade(holed, 2)
    assert low.rio.nodata == -32768.0
    values = low.values
    assert (values[2] == -32768.0).all()
    expected_missing = np.zeros(values.shape, bool)
    expected_missing[2] = True
    expected_missing[4, 2, 1] = True
    np.testing.assert_array_equal(values == -32768.0, expected_missing)
    others = [0, 1, 3, 5]
    np.testing.assert_allclose(values[others], clean[others], rtol=1e-5)
    # band 4: the LR values near the hole are renormalised, not pulled towards 0
    ok = ~expected_missing[4]
    np.testing.assert_allclose(values[4][ok], clean[4][ok], rtol=0.05)


def test_upscale_custom_band_dim() -> None:
    cube = _cube().rename(band="wl")
    out = cube.unmixsr.upscale(2, band_dim="wl")
    assert out.dims == ("wl", "y", "x")
    np.testing.assert_array_equal(out.wavelength.values, cube.wavelength.values)


# ------------------------------------------------------------------------------------------
# Dataset input
# ------------------------------------------------------------------------------------------


def test_upscale_dataset_auto_variable() -> None:
    cube = _cube(lazy=True)
    ds = xr.Dataset({"refl": cube, "mask": cube.isel(band=0, drop=True) > 120})
    out = ds.unmixsr.upscale(2)
    assert isinstance(out.data, da.Array)
    _check_geometry(out, cube, 2)
    assert out.name == "refl"


def test_upscale_dataset_var() -> None:
    a, b = _cube(), _cube() * 2
    ds = xr.Dataset({"a": a, "b": b})
    out = ds.unmixsr.upscale(2, var="b")
    _check_geometry(out, b, 2)
    np.testing.assert_allclose(out.values, 2 * ds.unmixsr.upscale(2, var="a").values, rtol=1e-6)


def test_upscale_dataset_ambiguous_raises() -> None:
    ds = xr.Dataset({"a": _cube(), "b": _cube()})
    with pytest.raises(DimensionError, match=r"variables with a 'band' dimension: a, b; pass var="):
        ds.unmixsr.upscale(2)
    no_band = xr.Dataset({"m": _cube().isel(band=0, drop=True)})
    with pytest.raises(DimensionError, match=r"dimension: none"):
        no_band.unmixsr.upscale(2)
    with pytest.raises(DimensionError, match=r"no variable 'c'"):
        ds.unmixsr.upscale(2, var="c")


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------


def test_unsupported_scale_raises() -> None:
    with pytest.raises(UnsupportedScaleError, match=r"scale 5 is not supported.*\(2, 3, 4, 8\)"):
        xr_unmixsr.upscale(_cube(), 5)
    model = conv_model(BANDS, 2, features=8, depth=1)
    with pytest.raises(UnsupportedScaleError, match="upsamples by 2, not 3"):
        xr_unmixsr.upscale(_cube(), 3, model=model)


def test_band_mismatch_raises() -> None:
    model = conv_model(10, 2, features=8, depth=1)
    cube = xr.concat([_cube(), _cube()], dim="band").isel(band=slice(0, 12))
    assert cube.sizes["band"] == 12
    with pytest.raises(
        BandMismatchError, match=r"trained on 10 bands but the input has 12.*fine-tune"
    ):
        xr_unmixsr.upscale(cube, 2, model=model)


@pytest.mark.parametrize("nodata", [None, -9999.0])
def test_all_nodata_numpy_input_raises(nodata: float | None) -> None:
    cube = _cube(nodata=nodata)
    cube[:] = np.nan if nodata is None else nodata
    with pytest.raises(InvalidDataError, match="every value of the input is nodata or NaN"):
        xr_unmixsr.upscale(cube, 2)


def test_missing_crs_warns_but_works() -> None:
    cube = _cube(crs=None)
    with pytest.warns(MissingCRSWarning):
        out = cube.unmixsr.upscale(4)
    assert out.rio.crs is None
    assert out.shape == (BANDS, 4 * H, 4 * W)
    np.testing.assert_allclose(out.x.values, X0 + (np.arange(4 * W) + 0.5) * RES / 4)
    np.testing.assert_allclose(out.y.values, Y0 - (np.arange(4 * H) + 0.5) * RES / 4)
    np.testing.assert_allclose(out.rio.bounds(), cube.rio.bounds(), rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------


def _model() -> SRModel:
    model = conv_model(BANDS, 2, features=8, depth=1, seed=5)
    model.offset = np.linspace(100.0, 150.0, BANDS).astype(np.float32)
    model.gain = np.full(BANDS, 0.02, np.float32)
    return model


def test_checkpoint_roundtrip(tmp_path: Path) -> None:
    model = _model()
    config = {"n_bands": BANDS, "scale": 2, "features": 8, "depth": 1}
    weights = save_checkpoint(model, tmp_path / "m", config=config, trained_on="synthetic")
    assert weights == tmp_path / "m.safetensors"
    # safetensors: an 8-byte little-endian header length, then a JSON header; never a pickle
    raw = weights.read_bytes()
    assert raw[:1] != b"\x80"
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    assert any(k.startswith("body.") for k in header)
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["architecture"] == "convsr"
    assert card["halo"] == model.halo
    assert card["trained_on"] == "synthetic"

    cube = _cube(lazy=True)
    expected = xr_unmixsr.upscale(cube, 2, model=model).values
    # the weights file, its card, and the (absolute) path given to save_checkpoint
    for ref in (weights, str(weights), tmp_path / "m.json", tmp_path / "m"):
        out = xr_unmixsr.upscale(cube, 2, model=ref)
        np.testing.assert_allclose(out.values, expected, rtol=0, atol=1e-5)
    # the network is not the identity plus bicubic: the weights mattered
    bicubic = xr_unmixsr.upscale(cube, 2).values
    assert np.abs(expected - bicubic).max() > 1e-2


def test_safetensors_loads_without_pickle(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    model = _model()
    weights = save_checkpoint(
        model,
        tmp_path / "sub" / "m.pt",
        config={"n_bands": BANDS, "scale": 2, "features": 8, "depth": 1},
    )
    assert weights.suffix == ".safetensors"
    tensors = load_file(str(weights))
    for key, value in model.network.state_dict().items():
        np.testing.assert_array_equal(tensors[key], value.numpy())


def test_unknown_model_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"unknown model 'no_such_model'.*bicubic"):
        xr_unmixsr.upscale(_cube(), 2, model="no_such_model")
    with pytest.raises(ModelError, match="no checkpoint"):
        xr_unmixsr.upscale(_cube(), 2, model=tmp_path / "missing.safetensors")


def test_checkpoint_without_card_raises(tmp_path: Path) -> None:
    weights = save_checkpoint(
        _model(), tmp_path / "m", config={"n_bands": BANDS, "scale": 2, "features": 8, "depth": 1}
    )
    (tmp_path / "m.json").unlink()
    with pytest.raises(ModelError, match="model card"):
        xr_unmixsr.upscale(_cube(), 2, model=weights)


def test_checkpoint_with_wrong_config_raises(tmp_path: Path) -> None:
    weights = save_checkpoint(
        _model(), tmp_path / "m", config={"n_bands": BANDS, "scale": 2, "features": 16, "depth": 1}
    )
    with pytest.raises(ModelError, match="do not fit"):
        xr_unmixsr.upscale(_cube(), 2, model=weights)


def test_numpy_and_dask_give_same_result() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingCRSWarning)
        eager = xr_unmixsr.upscale(_cube(), 3, model="bicubic")
        lazy = xr_unmixsr.upscale(_cube(lazy=True), 3, model="bicubic", tile=3)
    np.testing.assert_allclose(eager.values, lazy.values, rtol=0, atol=1e-4 * 50)
    xr.testing.assert_allclose(eager, lazy.compute(), rtol=0, atol=1e-4 * 50)
    assert eager.rio.transform() == lazy.rio.transform()
    assert eager.attrs == lazy.attrs
