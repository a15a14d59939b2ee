"""Tests of the tiling engine: seam-free tiled upscaling, missing values, errors, array types.

The reference for every tiled result is :func:`predict_array`, one network call on the whole
scene padded by the halo; the engine promises the same values for any chunking, tile size and
batch size.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import torch
from dask.callbacks import Callback

from xr_unmixsr.engine import predict_array, upscale_array
from xr_unmixsr.engine.tiling import (
    CPU_BATCH_BYTES,
    CPU_BATCH_SIZE,
    _on,
    auto_batch_size,
    batch_for_memory,
)
from xr_unmixsr.errors import TilingError, UnmixSRError
from xr_unmixsr.models import bicubic_model, conv_model

#: tolerance of tiled vs whole-scene results, relative to the data range.
REL_TOL = 1e-4
NODATA = -9999.0


def _scene(bands: int = 3, h: int = 53, w: int = 47, seed: int = 0) -> np.ndarray:
    """A textured float32 (bands, h, w) cube with values in [20, 120]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = np.stack([np.sin(yy / (3 + b)) * np.cos(xx / (4 + b)) for b in range(bands)])
    return (70 + 30 * smooth + 20 * rng.random((bands, h, w))).astype(np.float32)


def _assert_close(out: np.ndarray, ref: np.ndarray, data: np.ndarray) -> None:
    assert out.shape == ref.shape
    assert out.dtype == np.float32
    span = float(np.nanmax(data) - np.nanmin(data))
    np.testing.assert_allclose(out, ref, rtol=0, atol=REL_TOL * span)


# (scene height and width, chunks of y and x, tile, batch_size): one chunk; chunks smaller than
# the halo (on a smaller scene: they make many blocks); ragged edge chunks (53 = 20+20+13,
# 47 = 13+13+13+8) with tiles smaller than the chunks and batches of one patch; tiles larger
# than the chunks with batches larger than the number of patches.
CHUNKINGS = {
    "one-chunk": ((53, 47), (-1, -1), 128, 8),
    "chunks-1x3": ((21, 17), (1, 3), 4, 3),
    "ragged-small-tiles-batch1": ((53, 47), (20, 13), 5, 1),
    "ragged-large-tiles-big-batch": ((53, 47), (20, 13), 64, 1000),
    "tile-smaller-than-chunk-big-batch": ((53, 47), (27, 24), 7, 1000),
}


def _tiled(data: np.ndarray, model, chunking: str, band_chunk: int = -1) -> np.ndarray:
    _, (cy, cx), tile, batch = CHUNKINGS[chunking]
    arr = da.from_array(data, chunks=(band_chunk, cy, cx))
    out = upscale_array(arr, model, tile=tile, batch_size=batch, device="cpu")
    assert isinstance(out, da.Array)
    return out.compute()


@pytest.mark.parametrize("chunking", list(CHUNKINGS))
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_bicubic_tiled_equals_whole_scene(scale: int, chunking: str) -> None:
    h, w = CHUNKINGS[chunking][0]
    data = _scene(h=h, w=w)
    model = bicubic_model(scale)
    ref = predict_array(model, data, device="cpu")
    assert ref.shape == (3, h * scale, w * scale)
    _assert_close(_tiled(data, model, chunking), ref, data)


@pytest.mark.parametrize("chunking", list(CHUNKINGS))
@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("depth", [1, 3])
def test_conv_tiled_equals_whole_scene(depth: int, scale: int, chunking: str) -> None:
    h, w = CHUNKINGS[chunking][0]
    data = _scene(bands=3, h=h, w=w)
    model = conv_model(3, scale, features=16, depth=depth, seed=depth)
    assert model.halo == max(depth + 1, 2)
    ref = predict_array(model, data, device="cpu")
    _assert_close(_tiled(data, model, chunking), ref, data)


def test_conv_tiled_with_band_chunks_and_normalisation() -> None:
    """Per-band normalisation and an input chunked along the bands give the same result."""
    data = _scene(bands=4)
    model = conv_model(4, 2, features=16, depth=3, seed=7)
    model.offset = np.array([60.0, 70.0, 80.0, 90.0], np.float32)
    model.gain = np.array([0.02, 0.03, 0.04, 0.05], np.float32)
    ref = predict_array(model, data, device="cpu")
    out = _tiled(data, model, "ragged-small-tiles-batch1", band_chunk=1)
    _assert_close(out, ref, data)


@pytest.mark.parametrize("tile", [4, 9, 500])
def test_numpy_tiled_equals_whole_scene(tile: int) -> None:
    data = _scene()
    model = conv_model(3, 3, features=16, depth=3)
    out = upscale_array(data, model, tile=tile, batch_size=2, device="cpu")
    _assert_close(out, predict_array(model, data, device="cpu"), data)


@pytest.mark.parametrize("overlap", [5, 9])
def test_overlap_larger_than_halo_changes_nothing(overlap: int) -> None:
    data = _scene()
    model = conv_model(3, 2, features=16, depth=1)
    ref = predict_array(model, data, device="cpu")
    lazy = upscale_array(
        da.from_array(data, chunks=(-1, 20, 13)), model, tile=overlap, overlap=overlap, device="cpu"
    )
    _assert_close(lazy.compute(), ref, data)
    _assert_close(upscale_array(data, model, tile=12, overlap=overlap, device="cpu"), ref, data)


# ------------------------------------------------------------------------------------------
# Missing values
# ------------------------------------------------------------------------------------------


def _footprint(shape: tuple[int, int], row: int, col: int, s: int, grow: int = 0) -> np.ndarray:
    """Output-grid mask of input pixel (row, col)'s s x s footprint, widened by ``grow`` pixels."""
    mask = np.zeros(shape, bool)
    mask[
        max(row * s - grow, 0) : (row + 1) * s + grow, max(col * s - grow, 0) : (col + 1) * s + grow
    ] = True
    return mask


MODELS = {
    "bicubic-x3": lambda: bicubic_model(3),
    "conv-d3-x2": lambda: conv_model(3, 2, features=16, depth=3),
}


@pytest.mark.parametrize("lazy", [False, True], ids=["numpy", "dask"])
@pytest.mark.parametrize("model_name", list(MODELS))
def test_nan_and_nodata_stay_on_their_footprint(model_name: str, lazy: bool) -> None:
    model = MODELS[model_name]()
    s, halo = model.scale, model.halo
    clean = _scene(h=40, w=40)
    holed = clean.copy()
    nan_px, nodata_px = (10, 9), (25, 30)  # chunk edges of the 10 x 10 chunks below
    holed[1, nan_px[0], nan_px[1]] = np.nan
    holed[:, nodata_px[0], nodata_px[1]] = NODATA

    def run(data: np.ndarray, nodata: float) -> np.ndarray:
        if lazy:
            arr = da.from_array(data, chunks=(-1, 10, 10))
            return upscale_array(arr, model, tile=6, nodata=nodata, device="cpu").compute()
        return upscale_array(data, model, tile=6, nodata=nodata, device="cpu")

    # NaN marks missing values whatever the nodata value; with nodata=NaN the NaN pixel comes
    # back as NaN, and the numeric nodata pixel is then an ordinary value.
    grid = (40 * s, 40 * s)
    nan_fp = _footprint(grid, *nan_px, s)
    out = run(holed, np.nan)
    np.testing.assert_array_equal(np.isnan(out[1]), nan_fp)
    assert not np.isnan(out[[0, 2]]).any()

    # with a numeric nodata, the nodata pixel comes back as nodata in every band, exactly on its
    # footprint, and no NaN pixel is left
    holed_nodata = clean.copy()
    holed_nodata[:, nodata_px[0], nodata_px[1]] = NODATA
    out = run(holed_nodata, NODATA)
    nodata_fp = _footprint(grid, *nodata_px, s)
    for b in range(3):
        np.testing.assert_array_equal(out[b] == NODATA, nodata_fp)
    assert np.isfinite(out).all()

    # both missing pixels at once: beyond (halo + 1) * s of a missing pixel nothing changes
    ref = run(clean, NODATA)
    out = run(holed, NODATA)
    near = _footprint(grid, *nan_px, s, grow=(halo + 1) * s) | _footprint(
        grid, *nodata_px, s, grow=(halo + 1) * s
    )
    np.testing.assert_array_equal(out[:, ~near], ref[:, ~near])
    # ...while around the footprints the filled value is felt (so the check above is not void)
    ring = near & ~nan_fp & ~_footprint(grid, *nodata_px, s)
    assert not np.array_equal(out[:, ring], ref[:, ring])


def test_nan_comes_back_as_numeric_nodata() -> None:
    """With a numeric nodata, a NaN input pixel is marked with that nodata value in the output."""
    data = _scene(h=12, w=12)
    data[0, 5, 6] = np.nan
    out = upscale_array(data, bicubic_model(2), nodata=NODATA, device="cpu")
    np.testing.assert_array_equal(out[0] == NODATA, _footprint((24, 24), 5, 6, 2))
    assert np.isfinite(out).all()


@pytest.mark.parametrize("model_name", list(MODELS))
def test_all_nodata_bands_stay_nodata(model_name: str) -> None:
    model = MODELS[model_name]()
    data = _scene(h=30, w=26)
    data[1] = NODATA
    out = upscale_array(
        da.from_array(data, chunks=(-1, 11, 9)), model, tile=8, nodata=NODATA, device="cpu"
    ).compute()
    assert (out[1] == NODATA).all()
    assert np.isfinite(out).all()
    assert not (out[[0, 2]] == NODATA).any()
    # the valid bands are still the whole-scene result
    ref = predict_array(model, data, device="cpu", nodata=NODATA)
    _assert_close(out, ref, data[[0, 2]])


def test_all_nan_band_stays_nan() -> None:
    data = _scene(h=20, w=20)
    data[2] = np.nan
    out = upscale_array(
        da.from_array(data, chunks=(-1, 7, 7)), bicubic_model(2), device="cpu"
    ).compute()
    assert np.isnan(out[2]).all()
    assert np.isfinite(out[:2]).all()


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("exc", [TilingError, ValueError, UnmixSRError])
def test_tile_smaller_than_halo_raises(exc: type[Exception]) -> None:
    model = conv_model(3, 2, features=8, depth=3)  # halo 4
    with pytest.raises(exc, match=r"tile=3 is smaller than the halo of 4"):
        upscale_array(_scene(h=10, w=10), model, tile=3, device="cpu")


@pytest.mark.parametrize("exc", [TilingError, ValueError, UnmixSRError])
def test_overlap_smaller_than_halo_raises(exc: type[Exception]) -> None:
    with pytest.raises(exc, match=r"overlap=1 is smaller than the receptive field.*overlap>=2"):
        upscale_array(da.zeros((3, 10, 10), chunks=5), bicubic_model(2), overlap=1, device="cpu")


def test_tile_smaller_than_overlap_raises() -> None:
    with pytest.raises(TilingError, match=r"tile=4 is smaller than the halo of 6"):
        upscale_array(_scene(h=10, w=10), bicubic_model(2), tile=4, overlap=6, device="cpu")


def test_batch_size_zero_raises() -> None:
    with pytest.raises(TilingError, match="batch_size=0"):
        upscale_array(_scene(h=10, w=10), bicubic_model(2), batch_size=0, device="cpu")


def test_tile_equal_to_halo_is_allowed() -> None:
    data = _scene(h=11, w=9)
    model = bicubic_model(2)
    out = upscale_array(data, model, tile=model.halo, batch_size=1, device="cpu")
    _assert_close(out, predict_array(model, data, device="cpu"), data)


# ------------------------------------------------------------------------------------------
# Array types and laziness
# ------------------------------------------------------------------------------------------


def test_numpy_in_numpy_out() -> None:
    data = _scene(h=9, w=8).astype(np.float64)
    out = upscale_array(data, bicubic_model(3), device="cpu")
    assert type(out) is np.ndarray
    assert out.shape == (3, 27, 24)
    assert out.dtype == np.float32


def test_dask_in_lazy_dask_out(compute_counter: Callback) -> None:
    data = _scene(h=30, w=25)
    arr = da.from_array(data, chunks=(-1, 10, 10))
    counter = compute_counter
    with counter:
        out = upscale_array(arr, conv_model(3, 2, features=8, depth=1), tile=4, device="cpu")
    assert counter.started == 0
    assert isinstance(out, da.Array)
    assert out.dtype == np.float32
    assert out.shape == (3, 60, 50)
    assert out.chunks == ((3,), (20, 20, 20), (20, 20, 10))
    with counter:
        out.compute(scheduler="synchronous")
    assert counter.started == 1


def test_dask_chunks_below_halo_are_merged() -> None:
    arr = da.from_array(_scene(h=7, w=5), chunks=(-1, 1, 1))
    out = upscale_array(arr, bicubic_model(2), device="cpu")
    # chunks of at least the halo (2): 1+1, 1+1, 1+1+1 and 1+1, 1+1+1
    assert out.chunks[1:] == ((4, 4, 6), (4, 6))
    with dask.config.set(scheduler="synchronous"):
        assert np.isfinite(out.compute()).all()


def test_dask_scene_smaller_than_halo() -> None:
    data = _scene(h=3, w=7)
    model = conv_model(3, 2, features=8, depth=3)  # halo 4 > 3 rows
    ref = predict_array(model, data, device="cpu")
    _assert_close(upscale_array(data, model, tile=4, device="cpu"), ref, data)  # numpy works
    out = upscale_array(da.from_array(data), model, tile=4, device="cpu").compute()
    _assert_close(out, ref, data)


# ------------------------------------------------------------------------------------------
# Devices, batch sizes and mixed precision (the GPU path; run here on the CPU)
# ------------------------------------------------------------------------------------------


def test_bad_precision_raises() -> None:
    with pytest.raises(TilingError, match="precision='fp8'.*fp32, bf16, fp16"):
        upscale_array(_scene(h=10, w=10), bicubic_model(2), precision="fp8", device="cpu")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_close_to_fp32(precision: str) -> None:
    data = _scene(bands=4)
    model = conv_model(4, 2, features=8)
    model.offset, model.gain = 70.0, 1 / 30
    ref = predict_array(model, data, device="cpu")
    out = upscale_array(
        da.from_array(data, chunks=(-1, 20, 13)), model, device="cpu", precision=precision
    ).compute()
    assert out.dtype == np.float32
    err = np.abs(out - ref)
    span = float(data.max() - data.min())
    # half precision keeps ~3 significant digits: close to fp32, but not equal to it
    assert err.max() < 0.02 * span
    assert err.max() > 0
    # tiled and whole-scene mixed precision agree as closely as fp32 does
    whole = predict_array(model, data, device="cpu", precision=precision)
    _assert_close(out, whole, data)


def test_automatic_batch_size_on_cpu_equals_explicit() -> None:
    data = _scene()
    model = conv_model(3, 2, features=8)
    auto = upscale_array(da.from_array(data, chunks=(-1, 20, 13)), model, tile=5, device="cpu")
    one = upscale_array(data, model, tile=5, batch_size=1, device="cpu")
    _assert_close(auto.compute(), one, data)
    cpu = torch.device("cpu")
    assert auto_batch_size(model, (3, 9, 9), cpu, "fp32") == CPU_BATCH_SIZE
    # large patches: as many as fit CPU_BATCH_BYTES of float32 output, at least one
    wide = conv_model(64, 2, features=8)
    per_patch = 4 * 64 * (2 * 260) ** 2
    expected = max(1, min(CPU_BATCH_SIZE, CPU_BATCH_BYTES // per_patch))
    assert auto_batch_size(wide, (64, 260, 260), cpu, "fp32") == expected < CPU_BATCH_SIZE
    assert auto_batch_size(wide, (64, 2000, 2000), cpu, "fp32") == 1


@pytest.mark.parametrize(
    ("free", "per_patch", "expected"),
    [(8 * 2**30, 2**20, 256), (2**30, 64 * 2**20, 8), (2**20, 2**30, 1), (10**9, 0, 256)],
)
def test_batch_for_memory(free: int, per_patch: int, expected: int) -> None:
    assert batch_for_memory(free, per_patch) == expected


def test_lazy_graph_leaves_the_model_where_it_is() -> None:
    """The device is chosen where the blocks run: building the graph moves nothing."""
    model = conv_model(3, 2, features=8).to(torch.device("meta"))
    lazy = upscale_array(da.zeros((3, 16, 16), chunks=8), model, device="cpu")
    assert next(model.network.parameters()).device.type == "meta"
    assert lazy.shape == (3, 32, 32)


@pytest.mark.parametrize(
    ("where", "device", "expected"),
    [("cuda:0", "cuda", True), ("cuda:1", "cuda:1", True), ("cuda:1", "cuda:0", False)]
    + [("cpu", "cuda", False), ("cpu", "cpu", True)],
)
def test_placement_compares_devices(where: str, device: str, expected: bool) -> None:
    """``cuda`` without an index matches the GPU a model is on: it is not moved again per block."""
    assert _on(torch.device(where), torch.device(device)) is expected
