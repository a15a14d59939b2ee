"""Tests of the benchmark readers on the real files in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xr_unmixsr.errors import ParameterError, RasterIOError
from xr_unmixsr.evaluation.datasets import (
    SR_SPLITS,
    UNMIXING_BENCHMARKS,
    data_root,
    load_benchmark,
    load_sr_split,
)

# mean |E A - Y| of the published ground truth (README of the data: Samson ~0.013)
MAX_RECONSTRUCTION_MAE = {"jasper": 0.05, "samson": 0.02, "urban": 1e-6}
SHAPES = {"jasper": (198, 100, 100), "samson": (156, 95, 95), "urban": (162, 256, 256)}


@pytest.mark.parametrize("name", UNMIXING_BENCHMARKS)
def test_unmixing_benchmarks_are_consistent(shared_data: Path, name: str) -> None:
    """Cube, endmembers and abundances line up: same pixel order (the linear mixing of the truth
    reconstructs the cube), abundances on the simplex, reflectance in [0, ~1]."""
    bench = load_benchmark(name, shared_data)
    assert bench.cube.shape == SHAPES[name]
    assert bench.cube.dims == ("band", "y", "x")
    p = len(bench.materials)
    assert bench.endmembers.shape == (p, SHAPES[name][0])
    assert bench.abundances.shape == (p, *SHAPES[name][1:])
    assert bench.abundances.min() >= -1e-9
    np.testing.assert_allclose(bench.abundances.sum(axis=0), 1.0, atol=1e-6)
    recon = np.einsum("pb,pyx->byx", bench.endmembers, bench.abundances)
    assert np.abs(recon - bench.cube.values).mean() < MAX_RECONSTRUCTION_MAE[name]
    assert 0 <= float(bench.cube.min()) and float(bench.cube.max()) < 1.2


# the ranges (nm) of each scene's band centres, and a vegetation endmember of its ground truth
WAVELENGTHS = {
    "jasper": ((410, 415), (2455, 2462), "1-tree"),
    "samson": ((400, 402), (888, 890), "tree"),
}


@pytest.mark.parametrize("name", sorted(WAVELENGTHS))
def test_wavelengths_put_the_red_edge_of_vegetation_in_place(shared_data: Path, name: str) -> None:
    """Each cube's ``wavelength`` spans its sensor's range, and the vegetation endmember's
    reflectance jumps between red (670 nm) and near infrared (800 nm), where it must be if the
    band centres are right (a shift of 20 bands would move it away)."""
    bench = load_benchmark(name, shared_data)
    wl = bench.cube["wavelength"].values
    (lo0, lo1), (hi0, hi1), veg = WAVELENGTHS[name]
    assert lo0 <= wl[0] <= lo1 and hi0 <= wl[-1] <= hi1
    assert np.sum(np.diff(wl) <= 0) <= 2  # AVIRIS's spectrometers overlap twice
    order = np.argsort(wl, kind="stable")
    wl, spectrum = wl[order], bench.endmembers[bench.materials.index(veg)][order]
    red, nir = (spectrum[np.abs(wl - w).argmin()] for w in (670.0, 800.0))
    assert nir > 2.5 * red
    # the reflectance rises most steeply on the red edge (680-750 nm), not elsewhere in the VNIR
    vnir = wl < 880
    rise = np.diff(spectrum[vnir]) / np.maximum(np.diff(wl[vnir]), 1.0)
    assert 680 <= wl[vnir][rise.argmax()] <= 750


def test_indian_pines_has_the_aviris_bands_and_urban_none(shared_data: Path) -> None:
    wl = load_benchmark("indian-pines", shared_data).cube["wavelength"].values
    assert wl.shape == (224,) and 380 < wl[0] < 390 and 2500 < wl[-1] < 2510
    assert "wavelength" not in load_benchmark("urban", shared_data).cube.coords  # unknown


def test_sr_splits_are_disjoint(shared_data: Path) -> None:
    train = load_sr_split("enmap", "train", shared_data).cube
    test = load_sr_split("enmap", "test", shared_data).cube
    assert test.shape == (224, 64, 96)
    assert test.rio.crs == train.rio.crs
    assert test.rio.transform().a == 30.0
    l0, b0, r0, t0 = train.rio.bounds()
    l1, b1, r1, t1 = test.rio.bounds()
    assert r1 <= l0 or l1 >= r0 or t1 <= b0 or b1 >= t0  # no overlap on the ground
    for name in ("indian-pines", "urban"):
        tr, te = (load_sr_split(name, part, shared_data).cube for part in ("train", "test"))
        assert tr.shape[1] + te.shape[1] <= SR_SPLITS[name][1].stop
        assert float(tr["y"].max()) < float(te["y"].min())  # rows of the two parts are disjoint
        assert te.shape[1] % 8 == 0 and te.shape[2] % 8 == 0


def test_bad_names_and_folders(tmp_path: Path) -> None:
    with pytest.raises(RasterIOError, match="XR_UNMIXSR_DATA"):
        data_root(tmp_path / "nowhere")
    with pytest.raises(ParameterError, match="unknown benchmark"):
        load_benchmark("pavia", tmp_path)
    with pytest.raises(ParameterError, match="SR benchmark"):
        load_sr_split("jasper", "test", tmp_path)
    with pytest.raises(RasterIOError, match="missing"):
        load_benchmark("samson", tmp_path)
