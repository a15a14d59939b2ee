"""Readers for the public benchmark scenes the evaluation tables use, as (band, y, x) DataArrays.

The files are those of the usual public releases (see ``docs/benchmarks.md`` for sources); give
their folder as ``root`` or in ``$XR_UNMIXSR_DATA``. Each reader returns a :class:`Benchmark`:
the cube, its ground truth where there is one, and ``data_scale``, the value that maps the cube
to reflectance in [0, 1] for the metrics (the protocol of the literature).

The cubes carry a ``wavelength`` coordinate (nm) along ``band`` where the band centres are
known: EnMAP's from its band tags; Jasper Ridge's and Indian Pines' are AVIRIS band centres (the
224 listed in the USGS library file of the data folder; Jasper keeps 198 of them); Samson's 156
bands span 401 to 889 nm evenly. Urban has none: HYDICE's 210 bands are not evenly spaced over
400 to 2,500 nm (an even grid puts the red edge of its tree spectrum near 950 nm), and the files
do not list them.

SR benchmarks are split spatially into a training part and a disjoint held-out part
(:data:`SR_SPLITS`): the shipped EnMAP models are trained on the 128 x 64 Potsdam mosaic and
evaluated on the six tiles north-west of it (a contiguous 64 x 96 block).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import ParameterError, RasterIOError

__all__ = [
    "SR_SPLITS",
    "UNMIXING_BENCHMARKS",
    "Benchmark",
    "data_root",
    "load_benchmark",
    "load_sr_split",
]

#: unmixing scenes with ground-truth endmembers and abundances.
UNMIXING_BENCHMARKS = ("jasper", "samson", "urban")

#: SR scenes and their (train, test) row ranges; EnMAP's parts are separate files.
SR_SPLITS: dict[str, tuple[slice, slice] | None] = {
    "enmap": None,
    "indian-pines": (slice(0, 80), slice(80, 144)),
    "urban": (slice(0, 192), slice(192, 256)),
}

_ENMAP = "enmap_potsdam"
#: the six held-out EnMAP tiles as (column, row) offsets in the scene grid.
_ENMAP_TILES = [(c, r) for r in (0, 32) for c in (64, 96, 128)]


@dataclass(frozen=True)
class Benchmark:
    """A benchmark scene.

    Attributes:
        name: the benchmark's name.
        cube: (band, y, x) float32 DataArray (georeferenced where the source is).
        data_scale: divide the cube by this for reflectance in [0, 1].
        endmembers: true endmembers (p, bands) in the cube's units, or None.
        abundances: true abundances (p, y, x), or None.
        materials: names of the true endmembers, or None.
    """

    name: str
    cube: xr.DataArray
    data_scale: float = 1.0
    endmembers: np.ndarray | None = None
    abundances: np.ndarray | None = None
    materials: list[str] | None = None


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The benchmark folder: ``root``, else ``$XR_UNMIXSR_DATA``.

    Raises:
        RasterIOError: neither is given or the folder does not exist.
    """
    found = root if root is not None else os.environ.get("XR_UNMIXSR_DATA")
    if found is None or not Path(found).is_dir():
        raise RasterIOError(
            f"benchmark data folder {found!r} not found: pass --data-dir (root=) or set "
            "XR_UNMIXSR_DATA to the folder holding enmap_potsdam/, unmixing/ and sr_scenes/"
        )
    return Path(found)


def _loadmat(path: Path) -> dict:
    import scipy.io

    if not path.exists():
        raise RasterIOError(f"benchmark file {path} is missing")
    return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)


def _cube(values: np.ndarray, name: str, wavelengths: np.ndarray | None) -> xr.DataArray:
    """(band, y, x) DataArray with pixel-centre coordinates (no georeferencing) and, when given,
    the band centres (nm) as a ``wavelength`` coordinate."""
    bands, h, w = values.shape
    coords: dict[str, object] = {"band": np.arange(1, bands + 1)}
    if wavelengths is not None:
        if len(wavelengths) != bands:
            raise RasterIOError(f"{name}: {bands} bands but {len(wavelengths)} wavelengths")
        coords["wavelength"] = ("band", np.asarray(wavelengths, np.float64), {"units": "nm"})
    coords.update(y=np.arange(h) + 0.5, x=np.arange(w) + 0.5)
    return xr.DataArray(
        np.ascontiguousarray(values, dtype=np.float32),
        dims=("band", "y", "x"),
        coords=coords,
        name=name,
    )


def _aviris_wavelengths(root: Path) -> np.ndarray:
    """The 224 AVIRIS band centres (nm), column 0 of the USGS library resampled to AVIRIS."""
    return _loadmat(root / "unmixing" / "usgs_1995_library_224bands.mat")["datalib"][:, 0] * 1000.0


def _without(wavelengths: np.ndarray, removed_1based: list[tuple[int, int]]) -> np.ndarray:
    """``wavelengths`` less the inclusive 1-based band ranges of ``removed_1based``."""
    drop = np.concatenate([np.arange(a - 1, b) for a, b in removed_1based])
    return np.delete(wavelengths, drop)


def _jasper(root: Path) -> Benchmark:
    raw = _loadmat(root / "unmixing" / "jasper_ridge_R198.mat")
    truth = _loadmat(root / "unmixing" / "jasper_ridge_end4.mat")
    cube = (raw["Y"].T / float(raw["maxValue"])).reshape(100, 100, -1, order="F")
    abundances = truth["A"].T.reshape(100, 100, -1, order="F").transpose(2, 0, 1)
    return Benchmark(
        "jasper",
        # the usual release drops AVIRIS bands 1-3, 108-112, 154-166 and 220-224
        _cube(
            cube.transpose(2, 0, 1),
            "jasper",
            _without(_aviris_wavelengths(root), [(1, 3), (108, 112), (154, 166), (220, 224)]),
        ),
        endmembers=truth["M"].T,
        abundances=abundances,
        materials=[str(n).strip() for n in truth["cood"]],
    )


def _samson(root: Path) -> Benchmark:
    cube = _loadmat(root / "unmixing" / "samson_Y_clean.mat")["Y_clean"]
    em = _loadmat(root / "unmixing" / "samson_E.mat")["E"].T
    ab = _loadmat(root / "unmixing" / "samson_A_true.mat")["A_true"].transpose(2, 0, 1)
    return Benchmark(
        "samson",
        _cube(cube.transpose(2, 0, 1), "samson", np.linspace(401.0, 889.0, cube.shape[2])),
        endmembers=em,
        abundances=ab,
        materials=["soil", "tree", "water"],
    )


def _urban(root: Path) -> Benchmark:
    """Semi-synthetic Urban: the true library mixed by the true abundances (linear model)."""
    urban = _loadmat(root / "unmixing" / "urban6_abundances_endmembers.mat")["Urban"]
    lib = np.asarray(urban.lib, np.float64)  # (bands, p)
    ab = (
        np.asarray(urban.Xtrue, np.float64).reshape(-1, 256, 256).transpose(0, 2, 1)
    )  # MATLAB order
    cube = np.einsum("bp,pyx->byx", lib, ab)
    return Benchmark(
        "urban",
        _cube(cube, "urban", None),  # HYDICE band centres: not in the files (module docstring)
        endmembers=lib.T,
        abundances=ab,
        materials=[str(m).strip() for m in np.atleast_1d(urban.materials)],
    )


def _indian_pines(root: Path) -> Benchmark:
    cube = _loadmat(root / "sr_scenes" / "indian_pines_simulated_145x145x224.mat")["Ori_H"]
    values = np.asarray(cube).transpose(2, 0, 1)
    return Benchmark("indian-pines", _cube(values, "indian_pines", _aviris_wavelengths(root)))


def _enmap(root: Path, part: str) -> Benchmark:
    from ..io import open_raster

    folder = root / _ENMAP
    if part == "train":
        cube = open_raster(folder / "enmap_potsdam_mosaic_128x64x224.tif").load()
    else:
        tiles = {
            (c, r): open_raster(folder / "tiles" / f"enmap_potsdam_tile_{c}_{r}.tif").load()
            for c, r in _ENMAP_TILES
        }
        cube = xr.combine_by_coords(
            [t.to_dataset(name="reflectance") for t in tiles.values()],
            combine_attrs="drop_conflicts",
        )["reflectance"]
        cube = cube.rio.write_crs(tiles[(64, 0)].rio.crs).rio.write_nodata(
            tiles[(64, 0)].rio.nodata
        )
    out = cube.astype(np.float32)
    out.encoding = dict(cube.encoding)  # keeps the source path (training cards name their data)
    return Benchmark(f"enmap-{part}", out, data_scale=10000.0)


def load_benchmark(name: str, root: str | os.PathLike[str] | None = None) -> Benchmark:
    """Load ``"jasper"``, ``"samson"``, ``"urban"``, ``"indian-pines"``, ``"enmap-train"`` or
    ``"enmap-test"`` from the benchmark folder (see :func:`data_root`)."""
    base = data_root(root)
    readers = {
        "jasper": _jasper,
        "samson": _samson,
        "urban": _urban,
        "indian-pines": _indian_pines,
        "enmap-train": lambda r: _enmap(r, "train"),
        "enmap-test": lambda r: _enmap(r, "test"),
    }
    if name not in readers:
        raise ParameterError(f"unknown benchmark {name!r}: use one of {sorted(readers)}")
    return readers[name](base)


def load_sr_split(name: str, part: str, root: str | os.PathLike[str] | None = None) -> Benchmark:
    """The ``"train"`` or ``"test"`` part of an SR benchmark of :data:`SR_SPLITS`.

    The test part is cropped to a multiple of 8 pixels so that every scale divides it.
    """
    if name not in SR_SPLITS or part not in ("train", "test"):
        raise ParameterError(
            f"SR benchmark must be one of {sorted(SR_SPLITS)} and part 'train' or 'test', got {name!r}, {part!r}"
        )
    split = SR_SPLITS[name]
    if split is None:
        return load_benchmark(f"{name}-{part}", root)
    full = load_benchmark(name, root)
    rows = split[0] if part == "train" else split[1]
    cube = full.cube.isel(y=rows)
    if part == "test":
        cube = cube.isel(y=slice(0, cube.sizes["y"] // 8 * 8), x=slice(0, cube.sizes["x"] // 8 * 8))
    return Benchmark(f"{name}-{part}", cube, data_scale=full.data_scale)
