"""Tests of the evaluation protocols on synthetic scenes with known truth."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import xr_unmixsr
from xr_unmixsr.cli import main
from xr_unmixsr.errors import MissingCRSWarning, ParameterError
from xr_unmixsr.evaluation.datasets import Benchmark
from xr_unmixsr.evaluation.evaluate import (
    evaluate_sr,
    evaluate_sr_unmixing,
    evaluate_unmixing,
    markdown_table,
)
from xr_unmixsr.metrics import sr_metrics
from xr_unmixsr.models import conv_model, save_checkpoint
from xr_unmixsr.unmixing.synthetic import linear_mixtures, smooth_mixture_cube

P, BANDS = 3, 24


def _cube(values: np.ndarray, nodata: float | None = None) -> xr.DataArray:
    bands, h, w = values.shape
    cube = xr.DataArray(
        values.astype(np.float32),
        dims=("band", "y", "x"),
        coords={
            "band": np.arange(1, bands + 1),
            "y": 5808045.0 - (np.arange(h) + 0.5) * 30.0,
            "x": 366975.0 + (np.arange(w) + 0.5) * 30.0,
        },
    )
    return cube.rio.write_nodata(nodata) if nodata is not None else cube


@pytest.fixture(autouse=True)
def _no_crs_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingCRSWarning)
        yield


def test_evaluate_sr_is_the_protocol() -> None:
    """Rows equal the metrics of upscale(degrade(hr)) against hr in reflectance, with a band
    missing in the reference left out, whatever the data's scale."""
    values = smooth_mixture_cube(32, BANDS, P, seed=2)  # reflectance in [0, 1]
    rows = evaluate_sr(_cube(values), 2, {"bicubic": "bicubic"})
    assert [r["model"] for r in rows] == ["bicubic"]
    hr = _cube(values)
    expected = sr_metrics(
        hr.values, xr_unmixsr.upscale(xr_unmixsr.degrade(hr, 2), 2).values, scale=2
    )
    for key, value in expected.items():
        assert rows[0][key] == pytest.approx(value, rel=1e-6)
    assert rows[0]["seconds"] >= 0

    scaled = values * 10000.0
    scaled[5] = -32768.0
    rows_scaled = evaluate_sr(_cube(scaled, -32768.0), 2, {"b": "bicubic"}, data_scale=10000.0)
    keep = np.arange(BANDS) != 5
    expected = sr_metrics(
        hr.values[keep],
        xr_unmixsr.upscale(xr_unmixsr.degrade(hr, 2), 2).values[keep],
        scale=2,
    )
    for key, value in expected.items():
        assert rows_scaled[0][key] == pytest.approx(value, rel=1e-4)


def _mixed_bench() -> Benchmark:
    pixels, endm, ab = linear_mixtures(400, BANDS, P, noise=0.0, pure_per_endmember=3, seed=4)
    return Benchmark(
        "mix",
        _cube(pixels.T.reshape(BANDS, 20, 20)),
        endmembers=endm,
        abundances=ab.T.reshape(P, 20, 20),
        materials=["a", "b", "c"],
    )


def test_evaluate_unmixing_scores_against_truth() -> None:
    """VCA-FCLS on noise-free mixtures with pure pixels recovers the truth: the rows say so."""
    rows = evaluate_unmixing(_mixed_bench(), ["vca-fcls"])
    assert rows[0]["method"] == "vca-fcls"
    assert rows[0]["sad"] < 1e-3
    assert rows[0]["rmse"] < 1e-3
    assert len(rows[0]["sad_per_endmember"]) == P


def test_evaluate_sr_unmixing_rows() -> None:
    bench = _mixed_bench()
    big = Benchmark(
        "mix-blocks",
        _cube(np.repeat(np.repeat(bench.cube.values, 4, axis=1), 4, axis=2)),
        endmembers=bench.endmembers,
        abundances=np.repeat(np.repeat(bench.abundances, 4, axis=1), 4, axis=2),
    )
    rows = evaluate_sr_unmixing(
        big,
        2,
        training={"epochs": 1, "steps_per_epoch": 2, "features": 8, "n_grams": 1},
        device="cpu",
    )
    assert [r["method"] for r in rows] == [
        "vca-fcls LR + bicubic",
        "vca-fcls LR + back-projection",
        "smile",
        "true LR abundances + bicubic (reference)",
        "true LR abundances + back-projection (reference)",
    ]
    for row in rows:
        assert 0 <= row["rmse"] < 1
        assert np.isfinite(row["sad"])
    by = {r["method"]: r["rmse"] for r in rows}
    # the blocks are sharp: back-projection beats bicubic upsampling, from estimated or true LR
    assert by["vca-fcls LR + back-projection"] < by["vca-fcls LR + bicubic"]
    assert (
        by["true LR abundances + back-projection (reference)"]
        < by["true LR abundances + bicubic (reference)"]
    )


def test_evaluate_sr_unmixing_methods() -> None:
    rows = evaluate_sr_unmixing(_mixed_bench(), 2, ["vca-fcls"])
    assert "smile" not in [r["method"] for r in rows]
    assert len(rows) == 4
    with pytest.raises(ParameterError, match="unknown methods"):
        evaluate_sr_unmixing(_mixed_bench(), 2, ["autoencoder"])


def test_markdown_table() -> None:
    table = markdown_table([{"m": "x", "v": 1.234567}, {"m": "y"}], ["m", "v"])
    assert table.splitlines() == ["| m | v |", "|---|---|", "| x | 1.235 |", "| y |  |"]


def test_cli_evaluate_sr_on_a_raster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values = smooth_mixture_cube(32, BANDS, P, seed=2) * 10000.0
    path = tmp_path / "hr.tif"
    xr_unmixsr.write_raster(_cube(values).rio.write_crs("EPSG:32633"), path)
    out = tmp_path / "rows.json"
    rc = main(
        ["evaluate", "sr", str(path), "--scale", "2", "--data-scale", "10000"]
        + ["--model", "again=bicubic", "--json", str(out), "--device", "cpu"]
    )
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| model | psnr | ssim | sam | ergas | seconds |"
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == ["bicubic", "again"]
    assert rows[0]["psnr"] == pytest.approx(rows[1]["psnr"])
    assert 20 < rows[0]["psnr"] < 80

    rc = main(
        ["evaluate", "sr", str(path), "--scale", "2", "--data-scale", "10000"]
        + ["--back-projection", "5", "--self-ensemble", "--json", str(out), "--device", "cpu"]
    )
    assert rc == 0
    refined = json.loads(out.read_text())
    assert [r["model"] for r in refined] == [
        "bicubic",
        "bicubic + back-projection x5",
        "bicubic + self-ensemble",
        "bicubic + self-ensemble + back-projection x5",
    ]
    assert refined[0]["psnr"] == pytest.approx(rows[0]["psnr"])
    assert refined[1]["psnr"] > refined[0]["psnr"]
    # bicubic is its own self-ensemble
    assert refined[2]["psnr"] == pytest.approx(refined[0]["psnr"], abs=1e-4)
    assert refined[3]["psnr"] == pytest.approx(refined[1]["psnr"], abs=1e-4)


def test_cli_evaluate_sr_labels_a_checkpoint_by_its_whole_name(tmp_path: Path) -> None:
    values = smooth_mixture_cube(32, BANDS, P, seed=2)
    path = tmp_path / "hr.tif"
    xr_unmixsr.write_raster(_cube(values).rio.write_crs("EPSG:32633"), path)
    config = {"n_bands": BANDS, "scale": 2, "features": 4}
    weights = save_checkpoint(conv_model(BANDS, 2, features=4), tmp_path / "run-0.2", config)
    out = tmp_path / "rows.json"
    rc = main(
        ["evaluate", "sr", str(path), "--scale", "2", "--model", str(weights)]
        + ["--json", str(out), "--device", "cpu"]
    )
    assert rc == 0
    assert [r["model"] for r in json.loads(out.read_text())] == ["bicubic", "run-0.2"]


def test_cli_evaluate_unmix_on_samson(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rows.json"
    rc = main(
        ["evaluate", "unmix", "samson", "--method", "vca-fcls", "--data-dir", str(shared_data)]
        + ["--json", str(out)]
    )
    assert rc == 0
    assert "| vca-fcls |" in capsys.readouterr().out
    (row,) = json.loads(out.read_text())
    assert row["sad"] < 0.15  # VCA on Samson: 0.088 rad measured
    assert row["rmse"] < 0.25
