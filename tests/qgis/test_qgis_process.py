"""The algorithms through the real ``qgis_process`` client, on the real EnMAP scene."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pandas as pd
import rasterio

import xr_unmixsr
from xr_unmixsr.io import open_raster

CHUNKS = {"y": 512, "x": 512}  # the algorithms' default CHUNK
ALGORITHMS = ("unmixsr:train", "unmixsr:unmix", "unmixsr:upscale")


def _json_run(qgis_process: Any, alg: str, **params: Any) -> dict[str, Any]:
    proc = qgis_process("--json", "run", alg, "--", *(f"{k}={v}" for k, v in params.items()))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout[proc.stdout.index("{") :])["results"]


def test_list_shows_the_algorithms(qgis_process: Any) -> None:
    for python_path in (True, False):  # also where xr_unmixsr and torch cannot be imported
        listed = qgis_process("list", python_path=python_path)
        assert listed.returncode == 0
        assert all(f"\t{alg}\t" in listed.stdout for alg in ALGORITHMS)


def test_upscale_equals_the_python_api(
    qgis_process: Any, enmap_path: Path, tmp_path: Path, assert_same_raster: Any
) -> None:
    out = tmp_path / "up.tif"
    results = _json_run(
        qgis_process, "unmixsr:upscale", INPUT=enmap_path, SCALE=2, MODEL=0, OUTPUT=out
    )
    assert results == {"OUTPUT": str(out)}
    expected = xr_unmixsr.upscale(open_raster(enmap_path, chunks=CHUNKS), 2, "bicubic")
    assert_same_raster(out, expected)
    with rasterio.open(out) as src, rasterio.open(enmap_path) as ref:
        assert src.count == ref.count == 224 and src.crs.to_epsg() == 32633
        assert src.transform == ref.transform @ ref.transform.scale(0.5)
        wavelengths = [float(src.tags(i)["wavelength"]) for i in src.indexes]
        assert wavelengths == [float(ref.tags(i)["wavelength"]) for i in ref.indexes]
        assert src.descriptions[0] == "band 1 (418.24 nm)"


def test_unmix_equals_the_python_api(
    qgis_process: Any, enmap_path: Path, tmp_path: Path, assert_same_raster: Any
) -> None:
    out = tmp_path / "ab.tif"
    results = _json_run(qgis_process, "unmixsr:unmix", INPUT=enmap_path, N_ENDMEMBERS=4, OUTPUT=out)
    expected = xr_unmixsr.unmix(open_raster(enmap_path, chunks=CHUNKS), 4)
    assert_same_raster(results["OUTPUT"], expected["abundances"], rtol=1e-5)
    assert_same_raster(results["OUTPUT_RMSE"], expected["rmse"], rtol=1e-5)
    table = pd.read_csv(results["OUTPUT_ENDMEMBERS"], index_col=0)
    assert list(table.columns) == ["em1", "em2", "em3", "em4"]
    with rasterio.open(out) as src:
        assert src.descriptions == ("em1", "em2", "em3", "em4")


def test_bad_input_exits_with_the_core_message(
    qgis_process: Any, enmap_path: Path, one_band_raster: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.tif"
    bad_scale = qgis_process(
        "run", "unmixsr:upscale", "--", f"INPUT={enmap_path}", "SCALE=5", f"OUTPUT={out}"
    )
    assert bad_scale.returncode == 1
    assert (
        "scale 5 is not supported: use one of (2, 3, 4, 8)" in bad_scale.stdout + bad_scale.stderr
    )
    one_band = qgis_process(
        "run", "unmixsr:unmix", "--", f"INPUT={one_band_raster}", f"OUTPUT={out}"
    )
    assert one_band.returncode == 1
    assert "number of valid bands (1)" in one_band.stdout + one_band.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_core_says_how_to_install(
    qgis_process: Any, enmap_path: Path, tmp_path: Path
) -> None:
    proc = qgis_process(
        "run",
        "unmixsr:upscale",
        "--",
        f"INPUT={enmap_path}",
        "SCALE=2",
        f"OUTPUT={tmp_path / 'up.tif'}",
        python_path=False,
    )
    assert proc.returncode == 1
    assert "needs the Python packages xr_unmixsr and torch" in proc.stdout + proc.stderr
    assert "pip install" in proc.stdout + proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_interrupt_cancels_and_leaves_no_file(
    qgis_process: Any, enmap_path: Path, tmp_path: Path
) -> None:
    """Ctrl-C makes qgis_process cancel its feedback: the run stops at the next block."""
    out = tmp_path / "up.tif"
    args = (f"INPUT={enmap_path}", "SCALE=2", "MODEL=1", "TILE=64", "CHUNK=32", f"OUTPUT={out}")
    proc = qgis_process("run", "unmixsr:upscale", "--", *args, popen=True)
    deadline = time.monotonic() + 120
    while not any(tmp_path.iterdir()):  # the temporary output appears when writing starts
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "cancelled by the user: no output was written" in stdout + stderr
    assert list(tmp_path.iterdir()) == []


def test_train_writes_a_checkpoint(qgis_process: Any, enmap_crop: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "model.safetensors"
    params = {"INPUT": enmap_crop, "SCALE": 2, "EPOCHS": 1, "STEPS_PER_EPOCH": 2}
    params.update(PATCH=8, BATCH_SIZE=2, FEATURES=8, N_GRAMS=1, N_ENDMEMBERS=3, OUTPUT=ckpt)
    assert _json_run(qgis_process, "unmixsr:train", **params) == {"OUTPUT": str(ckpt)}
    card = json.loads(ckpt.with_suffix(".json").read_text())
    assert card["scale"] == 2 and card["n_bands"] == 224
    assert card["training"]["command"] == f"QGIS unmixsr:train on {enmap_crop}"


def test_help_of_every_algorithm(qgis_process: Any) -> None:
    for alg in ALGORITHMS:
        proc = qgis_process("help", alg)
        assert proc.returncode == 0
        assert "INPUT:" in proc.stdout and "OUTPUT:" in proc.stdout
        assert "<h3>Parameters</h3>" in proc.stdout
