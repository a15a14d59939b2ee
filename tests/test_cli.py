"""Tests of the ``xr-unmixsr`` command line: upscale, unmix, info and demo on real and synthetic data."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine

import xr_unmixsr
from xr_unmixsr.cli import main
from xr_unmixsr.io import open_raster, write_raster

NODATA = -32768.0
X0, Y0 = 366975.0, 5808045.0
BAD_BANDS = list(range(130, 136))  # 1-based labels of the six all-nodata EnMAP bands


def _band_tags(path: Path) -> dict[str, np.ndarray]:
    with rasterio.open(path) as src:
        tags = [src.tags(i) for i in src.indexes]
    return {key: np.array([float(t[key]) for t in tags]) for key in ("wavelength", "fwhm")}


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def upscaled(enmap_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, str]:
    """``upscale --scale 2 --chunk 48`` of the real EnMAP scene, run once for the module."""
    out = tmp_path_factory.mktemp("upscale") / "sr.tif"
    stdout, stderr = StringIO(), StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        rc = main(
            ["upscale", str(enmap_path), str(out), "--scale", "2", "--chunk", "48", "--quiet"]
        )
    return rc, out, stdout.getvalue() + stderr.getvalue()


@pytest.fixture
def small_tif(tmp_path: Path) -> Path:
    """A small synthetic georeferenced GeoTIFF (8 bands, 16 x 16 pixels)."""
    rng = np.random.default_rng(3)
    cube = xr.DataArray(
        (100 + 50 * rng.random((8, 16, 16))).astype(np.float32),
        dims=("band", "y", "x"),
        coords={
            "band": np.arange(1, 9),
            "wavelength": ("band", np.linspace(450.0, 2300.0, 8)),
            "y": Y0 - (np.arange(16) + 0.5) * 30.0,
            "x": X0 + (np.arange(16) + 0.5) * 30.0,
        },
    ).rio.write_crs("EPSG:32633")
    path = tmp_path / "in" / "small.tif"
    path.parent.mkdir()
    write_raster(cube, path)
    return path


# ------------------------------------------------------------------------------------------
# upscale
# ------------------------------------------------------------------------------------------


def test_upscale_writes_georeferenced_geotiff(
    upscaled: tuple[int, Path, str], enmap_path: Path
) -> None:
    rc, out, log = upscaled
    assert rc == 0, log
    assert "wrote" in log and "'y': 256" in log and "'x': 128" in log
    assert _files(out.parent) == ["sr.tif"]  # no temporary files left

    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 32633
        assert src.transform == Affine(15.0, 0.0, X0, 0.0, -15.0, Y0)
        assert (src.count, src.height, src.width) == (224, 256, 128)
        assert src.nodata == NODATA
        assert src.dtypes[0] == "float32"
        got = src.read()
    in_tags, out_tags = _band_tags(enmap_path), _band_tags(out)
    for key in ("wavelength", "fwhm"):
        np.testing.assert_array_equal(out_tags[key], in_tags[key])

    ref = xr_unmixsr.upscale(open_raster(enmap_path), 2).values
    assert ref.shape == got.shape
    np.testing.assert_array_equal(got == NODATA, ref == NODATA)
    assert np.all(got[[b - 1 for b in BAD_BANDS]] == NODATA)  # all-nodata bands stay nodata
    valid = ref != NODATA
    span = float(ref[valid].max() - ref[valid].min())
    assert span > 0
    np.testing.assert_allclose(got[valid], ref[valid], rtol=0, atol=1e-4 * span)


def test_upscale_refuses_existing_output(
    upscaled: tuple[int, Path, str], enmap_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = upscaled
    assert rc == 0
    before, mtime = out.read_bytes(), out.stat().st_mtime_ns
    rc = main(["upscale", str(enmap_path), str(out), "--scale", "2", "--chunk", "48", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 2
    assert "--overwrite" in captured.err
    assert "exists" in captured.err
    assert "wrote" not in captured.out
    assert out.read_bytes() == before
    assert out.stat().st_mtime_ns == mtime
    assert _files(out.parent) == ["sr.tif"]


def test_upscale_unsupported_scale(
    enmap_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x5.tif"
    rc = main(["upscale", str(enmap_path), str(out), "--scale", "5", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "scale 5" in err
    assert "2, 3, 4, 8" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["missing", "text"])
@pytest.mark.parametrize("command", ["upscale", "unmix", "info"])
def test_unreadable_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, command: str
) -> None:
    src = tmp_path / "in.tif"
    if kind == "text":
        src.write_text("not a raster\n")
    out = tmp_path / "out.tif"
    argv = {
        "upscale": ["upscale", str(src), str(out), "--scale", "2", "--quiet"],
        "unmix": ["unmix", str(src), str(out), "--n-endmembers", "3", "--quiet"],
        "info": ["info", str(src)],
    }[command]
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.err.startswith("xr-unmixsr: error:")
    assert ("does not exist" if kind == "missing" else "cannot read") in captured.err
    assert "Traceback" not in captured.err
    assert _files(tmp_path) == ([] if kind == "missing" else ["in.tif"])


def test_upscale_zarr_output(
    upscaled: tuple[int, Path, str], enmap_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sr.zarr"
    rc = main(["upscale", str(enmap_path), str(out), "--scale", "2", "--chunk", "64", "--quiet"])
    assert rc == 0
    assert _files(tmp_path) == ["sr.zarr"]
    sr = open_raster(out)
    assert sr.shape == (224, 256, 128)
    assert sr.dtype == np.float32
    assert sr.rio.crs.to_epsg() == 32633
    assert sr.rio.transform() == Affine(15.0, 0.0, X0, 0.0, -15.0, Y0)
    assert sr.rio.nodata == NODATA
    np.testing.assert_array_equal(sr["wavelength"].values, _band_tags(enmap_path)["wavelength"])
    with rasterio.open(upscaled[1]) as src:  # same result as the GeoTIFF run
        tif = src.read()
    values = sr.values
    span = float(np.ptp(tif[tif != NODATA]))
    np.testing.assert_allclose(values, tif, rtol=0, atol=1e-4 * span)


# ------------------------------------------------------------------------------------------
# unmix
# ------------------------------------------------------------------------------------------


def test_unmix_geotiff_outputs(
    enmap_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ab.tif"
    rc = main(
        ["unmix", str(enmap_path), str(out), "--n-endmembers", "4", "--chunk", "48", "--quiet"]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "4 endmembers" in captured.out
    assert _files(tmp_path) == ["ab.tif", "ab_endmembers.csv", "ab_rmse.tif"]

    names = ["em1", "em2", "em3", "em4"]
    with rasterio.open(out) as src:
        assert src.count == 4
        assert list(src.descriptions) == names
        assert src.crs.to_epsg() == 32633
        assert src.transform == Affine(30.0, 0.0, X0, 0.0, -30.0, Y0)
        assert (src.height, src.width) == (128, 64)
        ab = src.read()
    valid = np.isfinite(ab).all(axis=0)
    assert valid.mean() > 0.9
    assert ab[:, valid].min() >= -1e-6
    np.testing.assert_allclose(ab[:, valid].sum(axis=0), 1.0, atol=1e-4)

    with rasterio.open(tmp_path / "ab_rmse.tif") as src:
        assert src.count == 1
        assert src.crs.to_epsg() == 32633
        rmse = src.read(1)
    assert np.all(rmse[valid] >= 0)
    np.testing.assert_array_equal(np.isfinite(rmse), valid)

    table = pd.read_csv(tmp_path / "ab_endmembers.csv")
    assert (tmp_path / "ab_endmembers.csv").read_text().count("\n") == 225  # header + 224 rows
    assert list(table.columns) == ["band", *names]
    assert len(table) == 224
    np.testing.assert_array_equal(table["band"], np.arange(1, 225))
    bad = table["band"].isin(BAD_BANDS)
    assert table.loc[bad, names].isna().all().all()
    assert table.loc[~bad, names].notna().all().all()


@pytest.mark.parametrize(
    ("method", "scale"), [("autoencoder", 1), ("smile", 2), ("vca-fcls", 4), ("autoencoder", 2)]
)
def test_unmix_methods_on_finer_grids_of_enmap(
    enmap_path: Path, tmp_path: Path, method: str, scale: int
) -> None:
    """The autoencoder and SMILE, trained briefly on the real scene, and VCA-FCLS: abundance
    GeoTIFF on the scene's grid (scale 1) or the finer grid with the scaled transform (SMILE
    predicts it, the others back-project onto it), valid wherever the used bands are (EnMAP's
    six empty bands are left out), endmembers NaN in those bands."""
    out = tmp_path / "ab.tif"
    args = ["unmix", str(enmap_path), str(out), "--method", method, "--n-endmembers", "3"]
    args += ["--epochs", "1", "--steps-per-epoch", "2", "--device", "cpu", "--quiet"]
    rc = main([*args, "--scale", str(scale)] if scale > 1 else args)
    assert rc == 0
    assert _files(tmp_path) == ["ab.tif", "ab_endmembers.csv", "ab_rmse.tif"]
    with rasterio.open(out) as src:
        assert src.count == 3
        assert src.crs.to_epsg() == 32633
        res = 30.0 / scale
        assert src.transform == Affine(res, 0.0, X0, 0.0, -res, Y0)
        assert (src.height, src.width) == (128 * scale, 64 * scale)
        ab = src.read()
    assert np.isfinite(ab).all()
    assert ab.min() >= 0
    np.testing.assert_allclose(ab.sum(axis=0), 1.0, atol=1e-4)
    table = pd.read_csv(tmp_path / "ab_endmembers.csv")
    bad = table["band"].isin(BAD_BANDS)
    names = ["em1", "em2", "em3"]
    assert table.loc[bad, names].isna().all().all()
    if method != "vca-fcls":  # the decoder's weights; VCA's are pixels, noise and all
        assert (table.loc[~bad, names] >= 0).all().all()


def test_unmix_one_endmember_exits_2(
    enmap_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["unmix", str(enmap_path), str(tmp_path / "ab.tif"), "--n-endmembers", "1", "--quiet"]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "n_endmembers=1" in err
    assert list(tmp_path.iterdir()) == []


def test_unmix_zarr_output(enmap_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "ab.zarr"
    rc = main(
        ["unmix", str(enmap_path), str(out), "--n-endmembers", "4", "--chunk", "64", "--quiet"]
    )
    assert rc == 0
    assert _files(tmp_path) == ["ab.zarr"]  # one store, no sibling GeoTIFF/CSV
    ds = xr.open_zarr(out, decode_coords="all")
    assert ds["abundances"].shape == (4, 128, 64)
    assert ds["endmembers"].shape == (4, 224)
    assert ds["rmse"].shape == (128, 64)
    assert [str(v) for v in ds["endmember"].values] == ["em1", "em2", "em3", "em4"]
    assert ds["abundances"].rio.crs.to_epsg() == 32633
    assert ds["abundances"].rio.transform() == Affine(30.0, 0.0, X0, 0.0, -30.0, Y0)
    em = ds["endmembers"].values
    bad = np.isin(ds["band"].values, BAD_BANDS)
    assert np.isnan(em[:, bad]).all() and np.isfinite(em[:, ~bad]).all()
    ab = ds["abundances"].values
    valid = np.isfinite(ab).all(axis=0)
    np.testing.assert_allclose(ab[:, valid].sum(axis=0), 1.0, atol=1e-4)


# ------------------------------------------------------------------------------------------
# info, entry point, demo
# ------------------------------------------------------------------------------------------


def test_info_prints_json(enmap_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(enmap_path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["crs"] == "EPSG:32633"
    assert info["dims"] == {"band": 224, "y": 128, "x": 64}
    assert info["nodata"] == NODATA
    assert info["transform"] == [30.0, 0.0, X0, 0.0, -30.0, Y0]
    assert 418 < info["wavelength_nm"][0] < 419 and 2440 < info["wavelength_nm"][1] < 2450


def test_entry_point_subprocess(enmap_path: Path) -> None:
    exe = Path(sys.executable).with_name("xr-unmixsr")
    script = str(exe) if exe.exists() else shutil.which("xr-unmixsr")
    if script is None:
        pytest.skip("the xr-unmixsr entry point is not installed")
    proc = subprocess.run(
        [script, "info", str(enmap_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["crs"] == "EPSG:32633"
    assert info["dims"] == {"band": 224, "y": 128, "x": 64}


def test_no_subcommand_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outdir = tmp_path / "demo"
    assert main(["demo", str(outdir), "--size", "64"]) == 0
    printed = capsys.readouterr().out
    assert "psnr" in printed and "sad_mean" in printed

    tifs = ["truth_hr.tif", "lr.tif", "upscaled_x4.tif", "abundances.tif", "abundances_rmse.tif"]
    tifs.append("abundances_x4.tif")
    pngs = ["comparison.png", "truth_rgb.png", "abundances.png", "endmembers.png"]
    assert _files(outdir) == sorted([*tifs, *pngs, "metrics.json"])
    for name in pngs:
        assert (outdir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (
        rasterio.open(outdir / "truth_hr.tif") as truth,
        rasterio.open(outdir / "upscaled_x4.tif") as sr,
        rasterio.open(outdir / "lr.tif") as lr,
    ):
        assert truth.crs == sr.crs == lr.crs and truth.crs is not None
        assert (sr.count, sr.height, sr.width) == (truth.count, 64, 64)
        assert (lr.height, lr.width) == (16, 16)
        assert sr.transform == truth.transform

    metrics = json.loads((outdir / "metrics.json").read_text())
    psnr = metrics["bicubic_x4"]["psnr"]
    assert math.isfinite(psnr) and psnr > 20
    assert metrics["bicubic_x4_back_projection"]["psnr"] > psnr + 0.2
    sad = metrics["unmixing_vca_fcls"]["sad_mean"]
    assert math.isfinite(sad) and sad >= 0
    assert metrics["scene"]["size"] == 64 and metrics["scene"]["scale"] == 4
    # sharp patches: back-projected abundances beat bicubic-upsampled ones on the HR grid
    fine = metrics["abundances_x4"]
    assert 0 < fine["rmse_backprojection"] < fine["rmse_bicubic"]
    with (
        rasterio.open(outdir / "abundances_x4.tif") as ab,
        rasterio.open(outdir / "truth_hr.tif") as t,
    ):
        assert (ab.count, ab.height, ab.width) == (5, 64, 64) and ab.transform == t.transform


# ------------------------------------------------------------------------------------------
# Known bugs
# ------------------------------------------------------------------------------------------


def test_output_in_missing_folder_exits_2(
    small_tif: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no_such_dir" / "sr.tif"
    rc = main(["upscale", str(small_tif), str(out), "--scale", "2", "--quiet"])
    assert rc == 2
    assert "xr-unmixsr: error" in capsys.readouterr().err


def test_unmix_upper_case_zarr_suffix(small_tif: Path, tmp_path: Path) -> None:
    out = tmp_path / "OUT.ZARR"
    rc = main(["unmix", str(small_tif), str(out), "--n-endmembers", "2", "--quiet"])
    assert rc == 0
    assert xr.open_zarr(out)["abundances"].shape == (2, 16, 16)
