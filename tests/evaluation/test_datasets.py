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
