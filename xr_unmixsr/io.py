"""Reading and writing rasters: GDAL formats and Zarr in, GeoTIFF (COG) and Zarr out.

Writes are blockwise (peak memory follows the chunk size, not the scene size), go to a temporary
name in the target folder and are renamed into place only when complete, so a failed or interrupted
run never leaves a half-written output. Existing outputs are kept unless ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dask
import numpy as np
import rasterio
import rasterio.shutil
import rioxarray
import xarray as xr
import zarr
from dask.callbacks import Callback

from .distributed import active_client, compute_on_cluster, write_lock
from .errors import InvalidDataError, OutputExistsError, RasterIOError
from .geometry import mask_invalid

GEOTIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIXES = (".zarr",)
_BAND_TAGS = ("wavelength", "fwhm")
_GDAL_CACHE_BYTES = 64 * 2**20


def _band_tags(path: str) -> dict[str, list[Any]]:
    """Per-band numeric tags (wavelength, fwhm) and descriptions of a GDAL raster."""
    with rasterio.open(path) as src:
        tags = [src.tags(i) for i in src.indexes]
        out: dict[str, list[Any]] = {}
        for key in _BAND_TAGS:
            values = [t.get(key) for t in tags]
            if all(v is not None for v in values):
                try:
                    out[key] = [float(v) for v in values]
                except ValueError:
                    continue
        units = tags[0].get("wavelength_units") if tags else None
        if units:
            out["wavelength_units"] = [units]
        return out


def open_raster(
    path: str | os.PathLike[str],
    chunks: dict[str, int] | int | bool | None = None,
    *,
    masked: bool = False,
) -> xr.DataArray:
    """Open a hyperspectral raster as a (band, y, x) DataArray, lazily when ``chunks`` is given.

    Reads what GDAL reads (GeoTIFF, ENVI with map info...) through rioxarray, and Zarr stores
    written by :func:`write_raster`. Per-band wavelength and fwhm tags become coordinates on the
    ``band`` dimension (rioxarray alone copies band 1's tags onto the whole array).

    Raises:
        RasterIOError: the file does not exist or cannot be read as a raster.
    """
    p = Path(path)
    if not p.exists():
        raise RasterIOError(f"input {p} does not exist: check the path")
    try:
        if p.suffix.lower() in ZARR_SUFFIXES:
            zchunks = chunks if isinstance(chunks, dict) or type(chunks) is int else {}
            ds = xr.open_zarr(p, decode_coords="all", chunks=zchunks, mask_and_scale=masked)
            name = next((v for v in ds.data_vars if "band" in ds[v].dims), None)
            if name is None:
                raise RasterIOError(f"{p} holds no variable with a 'band' dimension")
            return ds[name]
        da = rioxarray.open_rasterio(p, chunks=chunks, masked=masked)
        tags = _band_tags(str(p))
    except RasterIOError:
        raise
    except Exception as exc:
        raise RasterIOError(
            f"cannot read {p} as a raster ({exc}): give a GeoTIFF, ENVI or other GDAL-readable file, or a .zarr store"
        ) from exc
    if isinstance(da, list):  # subdatasets
        raise RasterIOError(
            f"{p} holds several subdatasets: open the one you need with its GDAL name"
        )
    units = tags.pop("wavelength_units", ["nm"])[0]
    for key, values in tags.items():
        da = da.assign_coords({key: ("band", np.asarray(values))})
        da[key].attrs["units"] = "nm" if units.lower().startswith("nanomet") else units
    da.attrs = {
        k: v
        for k, v in da.attrs.items()
        if k not in ("wavelength", "fwhm", "bbl", "wavelength_units")
    }
    return da


def output_format(path: str | os.PathLike[str]) -> str:
    """``"gtiff"`` or ``"zarr"`` from the suffix; :class:`RasterIOError` otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix in GEOTIFF_SUFFIXES:
        return "gtiff"
    if suffix in ZARR_SUFFIXES:
        return "zarr"
    raise RasterIOError(
        f"cannot write {path}: give an output ending in .tif/.tiff (GeoTIFF) or .zarr"
    )


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


@contextlib.contextmanager
def atomic_outputs(
    paths: Sequence[str | os.PathLike[str]], *, overwrite: bool = False
) -> Iterator[list[Path]]:
    """Yield temporary paths for ``paths``; rename them into place only if the block succeeds.

    Raises:
        OutputExistsError: one of ``paths`` exists and ``overwrite`` is False (checked first,
            before any work).
    """
    targets = [Path(p) for p in paths]
    for t in targets:
        if not t.parent.is_dir():
            raise RasterIOError(
                f"output folder {t.parent} does not exist: create it first or choose another output path"
            )
        if t.exists() and not overwrite:
            raise OutputExistsError(
                f"output {t} exists: choose another name or pass overwrite=True (--overwrite)"
            )
    tag = uuid.uuid4().hex[:8]
    temps = [t.with_name(f".{t.name}.{tag}.tmp{t.suffix}") for t in targets]
    try:
        yield temps
    except BaseException:
        for tmp in temps:
            _remove(tmp)
        raise
    for tmp, target in zip(temps, targets, strict=True):
        if target.exists():
            _remove(target)
        os.replace(tmp, target)


class TqdmCallback(Callback):
    """A dask callback that shows a tqdm progress bar over the tasks of a computation."""

    def __init__(self, desc: str = "", enabled: bool = True) -> None:
        super().__init__()
        self.desc, self.enabled, self.bar = desc, enabled, None

    def _start_state(self, dsk: Any, state: dict[str, Any]) -> None:
        from tqdm.auto import tqdm

        total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))
        self.bar = tqdm(total=total, desc=self.desc, unit="task", disable=not self.enabled)

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        self.bar.update(1)

    def _finish(self, dsk: Any, state: Any, errored: bool) -> None:
        self.bar.close()


class ProgressCallback(Callback):
    """A dask callback that calls ``on_progress(done, total)`` after every finished task.

    Use it around any computation (``with ProgressCallback(report): write_raster(...)``) or
    through ``on_progress=`` of :func:`store_rasters` and :func:`write_raster`. ``done`` and
    ``total`` count the tasks of the current ``dask.compute`` call (a computation that computes
    twice starts again from 0). An exception raised by ``on_progress`` stops the computation and
    propagates to the caller; a write then removes its temporary output (:func:`atomic_outputs`),
    which is how a GUI cancels a run.
    """

    def __init__(self, on_progress: Callable[[int, int], None]) -> None:
        super().__init__()
        self.on_progress, self.done, self.total = on_progress, 0, 0

    def _start_state(self, dsk: Any, state: dict[str, Any]) -> None:
        self.done = 0
        self.total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        self.done += 1
        self.on_progress(self.done, self.total)


def _nodata(da: xr.DataArray) -> float:
    """``da``'s nodata value as a float (NaN when it has none)."""
    nodata = da.rio.nodata
    return np.nan if nodata is None else float(nodata)


@contextlib.contextmanager
def _own_thread_pool() -> Iterator[dict[str, Any]]:
    """``dask.compute`` keyword arguments that run the threaded scheduler's tasks on a pool of
    their own; on leaving the block (on an error or a cancel too) the tasks still running are
    waited for and the queued ones dropped.

    dask's shared pool would otherwise go on running tasks of a failed or cancelled write after
    it returned: writing into the temporary output that :func:`atomic_outputs` removed, or
    still running when the program exits (which crashes ``qgis_process``). Yields no argument
    (dask decides) when another scheduler (distributed, synchronous...) or pool is configured.
    """
    if dask.config.get("scheduler", None) not in (None, "threads", "threading") or (
        dask.config.get("pool", None) is not None
    ):
        yield {}
        return
    pool = ThreadPoolExecutor(dask.config.get("num_workers", None) or dask.system.CPU_COUNT)
    try:
        yield {"pool": pool}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _any_valid(data: Any, nodata: float) -> Any:
    """A lazy (or eager) boolean: does ``data`` hold any value that is not nodata/NaN?"""
    return (~mask_invalid(data, nodata)).any()


def _write_band_metadata(path: Path, da: xr.DataArray) -> None:
    """Write band descriptions and per-band wavelength/fwhm tags into a GeoTIFF."""
    band_dim = da.dims[0] if da.ndim == 3 else None
    with rasterio.open(path, "r+") as dst:
        if band_dim is None:
            return
        labels = [str(v) for v in da[band_dim].values]
        for i in range(da.sizes[band_dim]):
            tags = {
                key: repr(float(da[key].values[i]))
                for key in _BAND_TAGS
                if key in da.coords and da[key].dims == (band_dim,)
            }
            if tags:
                tags["wavelength_units"] = "Nanometers"
                dst.update_tags(i + 1, **tags)
            dst.set_band_description(
                i + 1,
                labels[i]
                if band_dim != "band"
                else f"band {labels[i]}"
                + (f" ({tags['wavelength']} nm)" if "wavelength" in tags else ""),
            )


def to_zarr(ds: xr.Dataset, path: Path, *, compute: bool = True) -> Any:
    """Write ``ds`` to a Zarr store (consolidated metadata, which zarr 3 warns is outside its spec)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        return ds.to_zarr(path, mode="w", compute=compute)


def _coords_loaded(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with its dask-backed coordinates loaded: they are small (wavelength, fwhm...) and
    are then written with the metadata, before the blocks."""
    return ds.assign_coords({k: c.load() for k, c in ds.coords.items() if c.chunks})


def _write_zarr_block(
    block: np.ndarray, *, target: Any, nodata: float, block_info: dict | None = None
) -> np.ndarray:
    """Write one block into its region of the Zarr array ``target``; return whether it holds a
    valid value, as a one-element array of the block's rank."""
    region = tuple(slice(a, b) for a, b in block_info[0]["array-location"])  # type: ignore[index]
    target[region] = block
    return np.full((1,) * block.ndim, bool((~mask_invalid(block, nodata)).any()))


def _store(
    da: xr.DataArray, tmp: Path, fmt: str, compress: str, blocksize: int, client: Any | None
) -> tuple[Any, Any]:
    """A lazy write of ``da`` to ``tmp``: (a task to compute, or None; a lazy "holds a valid
    value" check that writes the blocks as it is computed, or None).

    A Zarr output is written by its check: each block is stored and then reduced to one boolean,
    so the validity test costs no second computation of the blocks (a separate ``any()`` over
    ``da`` would be optimised apart from the store and compute every block twice). With a
    distributed ``client`` the workers write the blocks themselves (a GeoTIFF under a
    cluster-wide lock), so ``tmp`` must be on storage the workers share with this process.
    """
    if fmt == "zarr":
        name = da.name or "data"
        ds = _coords_loaded(da.rename(name).to_dataset())
        if da.chunks is None:
            to_zarr(ds, tmp)
            return None, None
        deferred = to_zarr(ds, tmp, compute=False)  # metadata and coordinates now
        enc = da.encoding
        if {"scale_factor", "add_offset"} & enc.keys() or np.dtype(
            enc.get("dtype", da.dtype)
        ) != np.dtype(da.dtype):
            return deferred, None  # values change when stored: xarray encodes each block
        target = zarr.open_array(str(tmp), path=name, mode="r+")
        # chunk-aligned block writes: no lock needed, also across processes
        flags = da.data.map_blocks(
            _write_zarr_block,
            target=target,
            nodata=_nodata(da),
            chunks=tuple((1,) * len(c) for c in da.data.chunks),
            dtype=bool,
            meta=np.empty((0,) * da.ndim, bool),
        )
        return None, flags.any()
    kwargs = dict(
        driver="GTiff",
        tiled=True,
        blockxsize=blocksize,
        blockysize=blocksize,
        compress=compress,
        BIGTIFF="IF_SAFER",
    )
    if da.chunks is None:
        da.rio.to_raster(tmp, **kwargs)
        return None, None
    task = _tile_aligned(da, blocksize).rio.to_raster(
        tmp, lock=write_lock(client), compute=False, **kwargs
    )
    return task, None


def store_dataset(ds: xr.Dataset, path: Path, *, progress: bool = False) -> None:
    """Write a Dataset to a Zarr store at ``path``, lazily block by block like :func:`store_rasters`.

    The metadata is written first; the blocks then run on this process's own thread pool, or on
    the workers of an active dask.distributed client. Either way it returns or raises only when
    none of its tasks runs any more, so an interrupted write can be removed safely.
    """
    ds = _coords_loaded(ds)
    if not any(v.chunks for v in ds.data_vars.values()):
        to_zarr(ds, path)
        return
    deferred = to_zarr(ds, path, compute=False)
    client = active_client()
    if client is None:
        _compute_locally([deferred], True, progress, None)
    else:
        compute_on_cluster(client, [deferred], progress=progress)


def _tile_aligned(da: xr.DataArray, blocksize: int) -> xr.DataArray:
    """Rechunk ``da`` spatially so that every chunk border falls on a GeoTIFF tile border.

    Each dask chunk is then written as whole tiles, so GDAL never re-reads and recompresses a
    partly written tile, and its block cache can stay small (see :func:`store_rasters`).
    """
    new = {}
    for dim in (da.rio.y_dim, da.rio.x_dim):
        chunks = da.chunksizes[dim]
        if any(c % blocksize for c in chunks[:-1]):
            new[dim] = max(blocksize, round(chunks[0] / blocksize) * blocksize)
    return da.chunk(new) if new else da


def _compute_locally(
    stores: list[Any],
    check: Any,
    progress: bool,
    on_progress: Callable[[int, int], None] | None,
) -> bool:
    """Run the writes and the validity check on the local scheduler; return the check."""
    # GDAL caches written tiles up to 5 % of RAM by default, so that memory would grow with the
    # scene; chunks are tile-aligned (_tile_aligned), so a small cache costs nothing
    reporting = ProgressCallback(on_progress) if on_progress else contextlib.nullcontext()
    with (
        rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_BYTES),
        _own_thread_pool() as pool,
        TqdmCallback("writing", enabled=progress),
        reporting,
    ):
        _, valid = dask.compute(stores, check, **pool)
    return bool(valid)


def store_rasters(
    items: Sequence[tuple[xr.DataArray, Path]],
    *,
    cog: bool = False,
    compress: str = "deflate",
    blocksize: int = 256,
    progress: bool = False,
    require_valid: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write DataArrays to the given paths (format by suffix) in one blockwise pass.

    Not atomic by itself: :func:`write_rasters` wraps it in :func:`atomic_outputs`. It returns
    or raises only when none of its tasks runs any more (see :func:`_own_thread_pool` and
    :func:`~xr_unmixsr.distributed.compute_on_cluster`).

    On a dask.distributed cluster (an active client) the workers compute and write the blocks
    themselves: nothing is gathered into this process, and the output folder must be on storage
    the workers share (a ``LocalCluster`` does).

    Args:
        items: (array, path) pairs; the format comes from each path's suffix.
        cog: write GeoTIFFs as Cloud Optimized GeoTIFFs (with overviews).
        compress: GeoTIFF compression.
        blocksize: GeoTIFF tile size.
        progress: show a progress bar.
        require_valid: raise :class:`InvalidDataError` when the first array holds no valid value.
        on_progress: called as ``on_progress(done, total)`` after every finished dask task (see
            :class:`ProgressCallback`); an exception it raises cancels the write. On a
            distributed cluster it is called once, as ``on_progress(1, 1)`` when all is written.
    """
    fmts = [output_format(p) for _, p in items]
    client = active_client()
    tasks, checks = zip(
        *(
            _store(da, path, fmt, compress, blocksize, client)
            for (da, path), fmt in zip(items, fmts, strict=True)
        ),
        strict=True,
    )
    first = items[0][0]
    check = checks[0]
    if check is None:
        check = _any_valid(first.data, _nodata(first)) if require_valid else True
    # every lazy write, and the first output's check last
    lazy = [t for t in (*tasks, *checks[1:]) if t is not None]
    if client is not None:
        *_, valid = compute_on_cluster(client, [*lazy, dask.delayed(check)], progress=progress)
        if on_progress:
            on_progress(1, 1)
    else:
        valid = _compute_locally(lazy, check, progress, on_progress)
    if require_valid and not valid:
        raise InvalidDataError(
            "the result holds no valid pixel (the input is all nodata/NaN): check the input's "
            "nodata value and band range"
        )
    for (da, path), fmt in zip(items, fmts, strict=True):
        if fmt != "gtiff":
            continue
        _write_band_metadata(path, da)
        if cog:
            cog_tmp = path.with_name(path.name + ".cog.tif")
            rasterio.shutil.copy(
                path,
                cog_tmp,
                driver="COG",
                compress=compress.upper(),
                BLOCKSIZE=blocksize,
                BIGTIFF="IF_SAFER",
            )
            os.replace(cog_tmp, path)


def write_rasters(
    items: Sequence[tuple[xr.DataArray, str | os.PathLike[str]]],
    *,
    overwrite: bool = False,
    **kwargs: Any,
) -> list[Path]:
    """Write DataArrays to GeoTIFF or Zarr (by suffix) in one blockwise pass, atomically.

    All outputs are computed together (shared inputs are read once), written to temporary names
    and renamed into place only when all succeeded; options as in :func:`store_rasters`.

    Returns:
        The written paths.
    """
    paths = [Path(p) for _, p in items]
    for p in paths:
        output_format(p)
    with atomic_outputs(paths, overwrite=overwrite) as temps:
        store_rasters([(da, tmp) for (da, _), tmp in zip(items, temps, strict=True)], **kwargs)
    return paths


def write_raster(da: xr.DataArray, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Write one DataArray to GeoTIFF or Zarr; see :func:`write_rasters` for the options."""
    return write_rasters([(da, path)], **kwargs)[0]


def read_endmembers(path: str | os.PathLike[str]) -> xr.DataArray:
    """Read known endmember spectra for ``unmix(endmembers=...)``, as (endmember, band).

    Two forms are read:

    * ``.csv``: the endmember table that ``xr-unmixsr unmix`` writes (``*_endmembers.csv``): one
      row per band, the band label in the first column and one column per endmember, named in
      the header; an empty cell is a band the endmember has no value for (NaN).
    * any raster :func:`open_raster` reads: a spectral library image with the scene's bands,
      each pixel one endmember spectrum (row by row), e.g. an n x 1 GeoTIFF; nodata values
      become NaN and pixels without any valid value are skipped. Endmembers are named ``em1``, ``em2``...

    Raises:
        RasterIOError: the file does not exist or cannot be read.
        InvalidDataError: it holds no endmember spectrum.
    """
    p = Path(path)
    if p.suffix.lower() == ".csv":
        import pandas as pd

        if not p.exists():
            raise RasterIOError(f"endmember file {p} does not exist: check the path")
        try:
            table = pd.read_csv(p, index_col=0)
            spectra = table.to_numpy(dtype=np.float64).T
        except Exception as exc:
            raise RasterIOError(
                f"cannot read {p} as an endmember table ({exc}): give a CSV with one row per band and one numeric column per endmember"
            ) from exc
        names = [str(c) for c in table.columns]
    else:
        lib = open_raster(p)
        spectra = lib.values.reshape(lib.shape[0], -1).T.astype(np.float64)
        invalid = mask_invalid(spectra, _nodata(lib))
        spectra = np.where(invalid, np.nan, spectra)[~invalid.all(axis=1)]
        names = [f"em{i + 1}" for i in range(len(spectra))]
    if spectra.size == 0:
        raise InvalidDataError(f"{p} holds no endmember spectrum")
    return xr.DataArray(spectra, dims=("endmember", "band"), coords={"endmember": names})


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A summary of a raster: size, dtype, CRS, transform, nodata, wavelength range."""
    da = open_raster(path)  # lazily indexed: describing reads no pixel
    info: dict[str, Any] = {
        "path": str(path),
        "dims": dict(da.sizes),
        "dtype": str(da.dtype),
        "crs": None if da.rio.crs is None else da.rio.crs.to_string(),
        "transform": list(da.rio.transform())[:6],
        "resolution": list(da.rio.resolution()),
        "bounds": list(da.rio.bounds()),
        "nodata": da.rio.nodata if da.rio.nodata is None else float(da.rio.nodata),
    }
    if "wavelength" in da.coords:
        wl = da["wavelength"].values
        info["wavelength_nm"] = [float(wl.min()), float(wl.max())]
    return info
