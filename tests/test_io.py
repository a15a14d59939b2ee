"""Tests of raster I/O: band metadata on read, GeoTIFF/COG/Zarr writes, atomicity and errors."""

from __future__ import annotations

import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr
from affine import Affine
from dask.callbacks import Callback

from xr_unmixsr.errors import (
    InvalidDataError,
    OutputExistsError,
    RasterIOError,
    UnmixSRError,
)
from xr_unmixsr.io import (
    ProgressCallback,
    describe,
    open_raster,
    read_endmembers,
    write_raster,
)

CRS = "EPSG:32633"
X0, Y0, RES = 366975.0, 5808045.0, 30.0
NODATA = -32768.0
BANDS, H, W = 5, 40, 36
# exactly representable with 6 significant digits, so GeoTIFF tags can hold them exactly
WAVELENGTHS = np.array([420.5, 550.25, 900.0, 1650.75, 2200.5])
FWHMS = np.array([5.5, 6.0, 7.25, 8.5, 10.0])
TRANSFORM = Affine(RES, 0.0, X0, 0.0, -RES, Y0)


def _values(seed: int = 0) -> np.ndarray:
    values = (100 + 50 * np.random.default_rng(seed).random((BANDS, H, W))).astype(np.float32)
    values[:, 0, 0] = NODATA  # one missing pixel
    return values


def _cube(
    data: np.ndarray | da.Array | None = None,
    *,
    wavelengths: np.ndarray = WAVELENGTHS,
    chunks: int | None = 16,
) -> xr.DataArray:
    """A georeferenced float32 (band, y, x) cube, dask-backed unless ``chunks`` is None."""
    cube = xr.DataArray(
        _values() if data is None else data,
        dims=("band", "y", "x"),
        coords={
            "band": np.arange(1, BANDS + 1),
            "wavelength": ("band", wavelengths),
            "fwhm": ("band", FWHMS),
            "y": Y0 - (np.arange(H) + 0.5) * RES,
            "x": X0 + (np.arange(W) + 0.5) * RES,
        },
        name="reflectance",
    )
    cube = cube.rio.write_crs(CRS).rio.write_nodata(NODATA)
    if chunks is not None and not isinstance(cube.data, da.Array):
        cube = cube.chunk({"y": chunks, "x": chunks})
    return cube


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _failing_cube() -> xr.DataArray:
    """A lazy cube whose computation raises in one of its blocks."""

    def fail_one_block(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        if block_info is not None and block_info[0]["chunk-location"][1:] == (1, 1):
            raise RuntimeError("simulated failure in one block")
        return block

    data = da.from_array(_values(), chunks=(BANDS, 16, 16)).map_blocks(
        fail_one_block, dtype=np.float32
    )
    return _cube(data)


# ------------------------------------------------------------------------------------------
# open_raster on the real EnMAP scene
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunks", [None, {"y": 64, "x": 32}], ids=["eager", "dask"])
def test_open_raster_band_coords_from_enmap(enmap_path: Path, chunks: dict | None) -> None:
    cube = open_raster(enmap_path, chunks=chunks)
    assert cube.dims == ("band", "y", "x")
    assert cube.shape == (224, 128, 64)
    assert isinstance(cube.data, da.Array) is (chunks is not None)
    assert cube.rio.crs.to_epsg() == 32633
    assert cube.rio.transform() == TRANSFORM
    assert cube.rio.nodata == NODATA

    with rasterio.open(enmap_path) as src:
        tags = [src.tags(i) for i in src.indexes]
    for key in ("wavelength", "fwhm"):
        assert cube[key].dims == ("band",)
        expected = np.array([float(t[key]) for t in tags])
        np.testing.assert_array_equal(cube[key].values, expected)
        assert len(np.unique(cube[key].values)) > 200  # per band, not band 1's value repeated
        assert cube[key].attrs["units"] == "nm"
    assert np.all(np.diff(cube["wavelength"].values[:90]) > 0)  # VNIR part ascends
    assert 418 < cube["wavelength"].values[0] < 419
    assert 2440 < cube["wavelength"].values[-1] < 2450

    # rioxarray alone copies band 1's tags as scalar attributes; open_raster drops them
    assert "wavelength" in rioxarray.open_rasterio(enmap_path).attrs
    for key in ("wavelength", "fwhm", "bbl", "wavelength_units"):
        assert key not in cube.attrs


def test_open_raster_missing_file_raises(tmp_path: Path) -> None:
    missing = tmp_path / "nope.tif"
    with pytest.raises(RasterIOError, match="does not exist") as info:
        open_raster(missing)
    assert str(missing) in str(info.value)
    assert isinstance(info.value, OSError) and isinstance(info.value, UnmixSRError)


def test_open_raster_non_raster_raises(tmp_path: Path) -> None:
    fake = tmp_path / "x.tif"
    fake.write_text("this is not a raster\n")
    with pytest.raises(RasterIOError, match="cannot read"):
        open_raster(fake)
    with pytest.raises(RasterIOError):
        open_raster(fake, chunks={"y": 8, "x": 8})


def test_open_raster_zarr_without_band_variable_raises(tmp_path: Path) -> None:
    xr.Dataset({"v": (("y", "x"), np.zeros((3, 3), np.float32))}).to_zarr(tmp_path / "s.zarr")
    with pytest.raises(RasterIOError, match="band"):
        open_raster(tmp_path / "s.zarr")


# ------------------------------------------------------------------------------------------
# GeoTIFF writes
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("blocksize", [None, 16])
def test_write_geotiff_round_trip(tmp_path: Path, blocksize: int | None) -> None:
    cube = _cube()
    assert isinstance(cube.data, da.Array)
    out = tmp_path / "cube.tif"
    kwargs = {} if blocksize is None else {"blocksize": blocksize}
    assert write_raster(cube, out, **kwargs) == out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.tif"]

    with rasterio.open(out) as src:
        np.testing.assert_array_equal(src.read(), _values())
        assert src.dtypes[0] == "float32"
        assert src.crs.to_epsg() == 32633
        assert src.transform == TRANSFORM
        assert src.nodata == NODATA
        assert src.profile["tiled"] is True
        expected_block = 256 if blocksize is None else blocksize
        assert src.profile["blockxsize"] == expected_block
        assert src.profile["blockysize"] == expected_block
        descriptions = src.descriptions
        tags = [src.tags(i) for i in src.indexes]
    assert len(descriptions) == BANDS
    for i, (desc, tag) in enumerate(zip(descriptions, tags, strict=True)):
        assert desc.startswith(f"band {i + 1}")
        assert float(tag["wavelength"]) == WAVELENGTHS[i]
        assert float(tag["fwhm"]) == FWHMS[i]
        assert f"{WAVELENGTHS[i]:g}" in desc

    back = open_raster(out)
    np.testing.assert_array_equal(back["wavelength"].values, WAVELENGTHS)
    np.testing.assert_array_equal(back["fwhm"].values, FWHMS)


def test_write_numpy_backed_geotiff(tmp_path: Path) -> None:
    cube = _cube(chunks=None)
    assert isinstance(cube.data, np.ndarray)
    write_raster(cube, tmp_path / "eager.tif")
    with rasterio.open(tmp_path / "eager.tif") as src:
        np.testing.assert_array_equal(src.read(), _values())
        assert float(src.tags(3)["wavelength"]) == WAVELENGTHS[2]


def test_write_cog(tmp_path: Path) -> None:
    out = tmp_path / "cog.tif"
    write_raster(_cube(), out, cog=True, blocksize=16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cog.tif"]
    with rasterio.open(out) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.overviews(1)  # 40x36 pixels in 16-pixel blocks need overviews
        assert src.profile["blockxsize"] == 16
        np.testing.assert_array_equal(src.read(), _values())
        assert src.crs.to_epsg() == 32633
        assert src.transform == TRANSFORM
        assert src.nodata == NODATA
        # band metadata survives the COG copy
        assert [float(src.tags(i)["wavelength"]) for i in src.indexes] == list(WAVELENGTHS)
        assert src.descriptions[0].startswith("band 1")


def test_plain_geotiff_is_not_cog(tmp_path: Path) -> None:
    write_raster(_cube(), tmp_path / "plain.tif", blocksize=16)
    with rasterio.open(tmp_path / "plain.tif") as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG"
        assert not src.overviews(1)


def test_describe(tmp_path: Path) -> None:
    write_raster(_cube(), tmp_path / "d.tif")
    info = describe(tmp_path / "d.tif")
    assert info["dims"] == {"band": BANDS, "y": H, "x": W}
    assert info["dtype"] == "float32"
    assert info["crs"] == CRS
    assert info["transform"] == list(TRANSFORM)[:6]
    assert info["nodata"] == NODATA
    assert info["wavelength_nm"] == [WAVELENGTHS.min(), WAVELENGTHS.max()]
    assert info["bounds"] == [X0, Y0 - H * RES, X0 + W * RES, Y0]


# ------------------------------------------------------------------------------------------
# Zarr writes
# ------------------------------------------------------------------------------------------


def test_write_zarr_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "cube.zarr"
    assert write_raster(_cube(), out) == out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.zarr"]
    back = open_raster(out)
    assert back.dims == ("band", "y", "x")
    assert back.dtype == np.float32
    assert back.rio.crs.to_epsg() == 32633
    assert back.rio.transform() == TRANSFORM
    assert back.rio.nodata == NODATA
    np.testing.assert_array_equal(back.values, _values())
    np.testing.assert_array_equal(back["wavelength"].values, WAVELENGTHS)
    np.testing.assert_array_equal(back["fwhm"].values, FWHMS)
    np.testing.assert_array_equal(back["band"].values, np.arange(1, BANDS + 1))


# ------------------------------------------------------------------------------------------
# Refusals and atomicity
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.png", "out.nc", "out"])
def test_unknown_suffix_raises_before_writing(
    tmp_path: Path, name: str, compute_counter: Callback
) -> None:
    counter = compute_counter
    with counter, pytest.raises(RasterIOError, match=r"\.tif"):
        write_raster(_cube(), tmp_path / name)
    assert counter.started == 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_existing_output_kept_unless_overwrite(
    tmp_path: Path, suffix: str, compute_counter: Callback
) -> None:
    out = tmp_path / f"out{suffix}"
    write_raster(_cube(_values(seed=0)), out)
    before = _snapshot(tmp_path)

    new = _cube(_values(seed=1))
    counter = compute_counter
    with counter, pytest.raises(OutputExistsError, match="overwrite") as info:
        write_raster(new, out)
    assert isinstance(info.value, FileExistsError)
    assert counter.started == 0  # refused before any work
    assert _snapshot(tmp_path) == before

    write_raster(new, out, overwrite=True)
    np.testing.assert_array_equal(open_raster(out).values, _values(seed=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no leftovers


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_failed_computation_leaves_no_file(tmp_path: Path, suffix: str) -> None:
    (tmp_path / "keep.txt").write_text("pre-existing")
    with pytest.raises(RuntimeError, match="simulated failure"):
        write_raster(_failing_cube(), tmp_path / f"out{suffix}")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_on_progress_reports_every_task(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    write_raster(_cube(), tmp_path / "out.tif", on_progress=lambda d, t: calls.append((d, t)))
    dones = [d for d, _ in calls]
    assert dones == list(range(1, len(calls) + 1))
    assert len({t for _, t in calls}) == 1 and calls[-1][0] == calls[-1][1] > 9  # 9 blocks


class _Cancelled(Exception):
    pass


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_exception_from_on_progress_cancels_and_leaves_no_file(tmp_path: Path, suffix: str) -> None:
    calls: list[int] = []

    def cancel_at_third(done: int, total: int) -> None:
        calls.append(done)
        if done == 3:
            raise _Cancelled

    with pytest.raises(_Cancelled):
        write_raster(_cube(), tmp_path / f"out{suffix}", on_progress=cancel_at_third)
    assert calls == [1, 2, 3]
    assert list(tmp_path.iterdir()) == []


def test_cancelled_write_returns_when_its_tasks_have_stopped(tmp_path: Path) -> None:
    """No task of a cancelled write runs on (writing into a removed temporary file, or while
    the program exits): the write waits for the running ones and drops the queued ones."""
    finished: list[float] = []

    def slow(block: np.ndarray) -> np.ndarray:
        time.sleep(0.05)
        finished.append(time.monotonic())
        return block

    data = da.from_array(_values(), chunks=(BANDS, 8, 8)).map_blocks(slow, dtype=np.float32)

    def cancel(done: int, total: int) -> None:
        if finished:
            raise _Cancelled

    with dask.config.set(num_workers=4), pytest.raises(_Cancelled):
        write_raster(_cube(data), tmp_path / "out.tif", on_progress=cancel)
    returned = time.monotonic()
    n_finished = len(finished)
    time.sleep(0.3)
    assert len(finished) == n_finished < 25  # nothing ran after the return, 25 blocks in all
    assert max(finished) <= returned
    assert list(tmp_path.iterdir()) == []


def test_progress_callback_as_context_manager() -> None:
    calls: list[tuple[int, int]] = []
    with ProgressCallback(lambda d, t: calls.append((d, t))):
        _cube().sum().compute()
    assert calls and calls[-1][0] == calls[-1][1]
    calls.clear()
    _cube().sum().compute()  # outside the block: no report
    assert calls == []


def test_read_endmembers_csv(tmp_path: Path) -> None:
    path = tmp_path / "em.csv"
    path.write_text("band,soil,water\n1,0.5,0.1\n2,,0.2\n3,0.7,0.3\n")
    em = read_endmembers(path)
    assert em.dims == ("endmember", "band")
    assert list(em["endmember"].values) == ["soil", "water"]
    np.testing.assert_array_equal(em.values, [[0.5, np.nan, 0.7], [0.1, 0.2, 0.3]])


def test_read_endmembers_raster_skips_empty_pixels(tmp_path: Path) -> None:
    values = np.arange(BANDS * 3, dtype=np.float32).reshape(BANDS, 1, 3)
    values[:, 0, 1] = NODATA  # an empty library slot
    values[2, 0, 2] = NODATA  # one missing band
    lib = xr.DataArray(values, dims=("band", "y", "x")).rio.write_nodata(NODATA)
    lib = lib.rio.write_crs(CRS).rio.write_transform(TRANSFORM)
    lib.rio.to_raster(tmp_path / "lib.tif")
    em = read_endmembers(tmp_path / "lib.tif")
    assert list(em["endmember"].values) == ["em1", "em2"]
    expected = values[:, 0, [0, 2]].T.astype(np.float64)
    expected[1, 2] = np.nan
    np.testing.assert_array_equal(em.values, expected)


@pytest.mark.parametrize("content", [None, "band,a\n1,x\n"])
def test_read_endmembers_errors(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "em.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RasterIOError):
        read_endmembers(path)


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_failed_overwrite_keeps_previous_output(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"out{suffix}"
    write_raster(_cube(), out)
    before = _snapshot(tmp_path)
    with pytest.raises(RuntimeError, match="simulated failure"):
        write_raster(_failing_cube(), out, overwrite=True)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
@pytest.mark.parametrize("fill", [NODATA, np.nan], ids=["nodata", "nan"])
def test_all_nodata_lazy_input_raises(tmp_path: Path, suffix: str, fill: float) -> None:
    data = da.full((BANDS, H, W), fill, dtype=np.float32, chunks=(BANDS, 16, 16))
    with pytest.raises(InvalidDataError, match="no valid pixel"):
        write_raster(_cube(data), tmp_path / f"empty{suffix}")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------
# Known bugs
# ------------------------------------------------------------------------------------------


def test_write_to_missing_folder_raises_package_error(tmp_path: Path) -> None:
    with pytest.raises(RasterIOError):
        write_raster(_cube(), tmp_path / "no_such_dir" / "out.tif")


def test_wavelength_tags_round_trip_exactly(tmp_path: Path) -> None:
    wavelengths = (
        np.linspace(420.0, 2400.0, BANDS) + 0.0625
    )  # 420.0625, 915.0625...: 7 significant digits
    write_raster(_cube(wavelengths=wavelengths), tmp_path / "w.tif")
    np.testing.assert_array_equal(open_raster(tmp_path / "w.tif")["wavelength"].values, wavelengths)


def test_upper_case_zarr_suffix_round_trip(tmp_path: Path) -> None:
    write_raster(_cube(), tmp_path / "CUBE.ZARR")
    np.testing.assert_array_equal(open_raster(tmp_path / "CUBE.ZARR").values, _values())


def test_envi_with_map_info_and_wavelengths(tmp_path: Path) -> None:
    from rasterio.transform import from_origin

    data = np.random.default_rng(1).random((5, 10, 12), dtype=np.float32)
    path = tmp_path / "cube.bsq"
    profile = dict(driver="ENVI", width=12, height=10, count=5, dtype="float32")
    with rasterio.open(
        path, "w", crs="EPSG:32633", transform=from_origin(366975, 5808045, 30, 30), **profile
    ) as dst:
        dst.write(data)
    with open(tmp_path / "cube.hdr", "a") as hdr:
        hdr.write("wavelength units = Nanometers\nwavelength = {400.5, 500, 600, 700, 800.25}\n")
    cube = open_raster(path)
    assert cube.rio.crs.to_epsg() == 32633
    assert tuple(cube.rio.transform())[:6] == (30.0, 0.0, 366975.0, 0.0, -30.0, 5808045.0)
    np.testing.assert_array_equal(cube["wavelength"].values, [400.5, 500, 600, 700, 800.25])
    np.testing.assert_array_equal(cube.values, data)


def test_lazy_zarr_write_computes_each_block_once(tmp_path: Path) -> None:
    """The Zarr blocks and the all-nodata check come from one computation of each block."""
    calls = []

    def count(block: np.ndarray) -> np.ndarray:
        calls.append(block.shape)
        return block

    data = da.from_array(_values(), chunks=(BANDS, 16, 16)).map_blocks(
        count, dtype=np.float32, meta=np.empty((0, 0, 0), np.float32)
    )
    write_raster(_cube(data), tmp_path / "once.zarr")
    assert len(calls) == data.npartitions
    np.testing.assert_array_equal(open_raster(tmp_path / "once.zarr").values, _values())


def test_lazy_zarr_write_keeps_xarray_encoding(tmp_path: Path) -> None:
    """A variable whose stored values differ from its data (scale/offset, other dtype) is
    encoded by xarray, block by block."""
    cube = _cube().chunk({"y": 16, "x": 16})
    cube.encoding = {"dtype": "int16", "scale_factor": 0.5}
    write_raster(cube, tmp_path / "scaled.zarr")
    raw = xr.open_zarr(tmp_path / "scaled.zarr", mask_and_scale=False)
    assert raw[next(iter(raw.data_vars))].dtype == np.int16
    back = xr.open_zarr(tmp_path / "scaled.zarr")
    # the valid values (row 0 holds the nodata pixel, whose CF decoding is xarray's business)
    np.testing.assert_allclose(
        back[next(iter(back.data_vars))].values[:, 1:], _values()[:, 1:], atol=0.25
    )
