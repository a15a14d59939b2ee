"""The three algorithms run in-process (``processing.run``) against the Python API's results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine

import xr_unmixsr
from xr_unmixsr.io import open_raster, write_raster
from xr_unmixsr.models import load_checkpoint

CHUNKS = {"y": 512, "x": 512}  # the algorithms' default CHUNK


def _feedback(cancel_at: int | None = None) -> Any:
    """A feedback that records progress and messages, and cancels at the ``cancel_at``-th report."""
    from qgis.core import QgsProcessingFeedback

    class Recorder(QgsProcessingFeedback):
        def __init__(self) -> None:
            super().__init__()
            self.progress: list[float] = []
            self.infos: list[str] = []
            self.progressChanged.connect(self._progress)

        def _progress(self, value: float) -> None:
            self.progress.append(value)
            if cancel_at is not None and len(self.progress) == cancel_at:
                self.cancel()

        def pushInfo(self, info: str) -> None:
            self.infos.append(info)

    return Recorder()


def _run(alg: str, params: dict[str, Any], feedback: Any = None) -> dict[str, Any]:
    import processing

    return processing.run(f"unmixsr:{alg}", params, feedback=feedback or _feedback())


def _error(alg: str, params: dict[str, Any], feedback: Any = None) -> str:
    """The message of the QgsProcessingException that running ``alg`` raises."""
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as info:
        _run(alg, params, feedback)
    return str(info.value)


@pytest.fixture(autouse=True)
def _qgis(qgis_app: Any) -> None:
    """Every test here needs the initialised QGIS with the provider."""


def test_upscale_equals_the_python_api(
    enmap_path: Path, tmp_path: Path, assert_same_raster: Any
) -> None:
    out = tmp_path / "up.tif"
    fb = _feedback()
    res = _run("upscale", {"INPUT": str(enmap_path), "SCALE": 2, "OUTPUT": str(out)}, fb)
    assert res["OUTPUT"] == str(out)
    expected = xr_unmixsr.upscale(open_raster(enmap_path, chunks=CHUNKS), 2, "bicubic")
    assert_same_raster(out, expected)
    with rasterio.open(out) as src, rasterio.open(enmap_path) as ref:
        assert src.count == 224 and src.crs.to_epsg() == 32633
        assert src.transform.a == ref.transform.a / 2 and src.transform.e == ref.transform.e / 2
        assert (src.transform.c, src.transform.f) == (ref.transform.c, ref.transform.f)
    # progress went up block by block to 100 %
    assert len(fb.progress) > 3 and fb.progress == sorted(fb.progress)
    assert fb.progress[-1] == pytest.approx(100.0)


def test_upscale_with_a_shipped_model_self_ensemble_and_back_projection(
    enmap_crop: Path, tmp_path: Path, assert_same_raster: Any
) -> None:
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById("unmixsr:upscale")
    models = alg.parameterDefinition("MODEL").options()
    assert models[0] == "bicubic" and "unmixingsr-enmap-x2" in models
    out = tmp_path / "up.tif"
    params = {"INPUT": str(enmap_crop), "SCALE": 2, "TILE": 48, "BACK_PROJECTION": 3}
    params["SELF_ENSEMBLE"] = True
    _run("upscale", {**params, "MODEL": models.index("unmixingsr-enmap-x2"), "OUTPUT": str(out)})
    cube = open_raster(enmap_crop, chunks=CHUNKS)
    expected = xr_unmixsr.upscale(
        cube, 2, "unmixingsr-enmap-x2", tile=48, back_projection=3, self_ensemble=True
    )
    assert_same_raster(out, expected, rtol=1e-5)


def test_unmix_equals_the_python_api(
    enmap_path: Path, tmp_path: Path, assert_same_raster: Any
) -> None:
    out = tmp_path / "ab.tif"
    res = _run("unmix", {"INPUT": str(enmap_path), "N_ENDMEMBERS": 4, "OUTPUT": str(out)})
    assert res == {
        "OUTPUT": str(out),
        "OUTPUT_RMSE": str(tmp_path / "ab_rmse.tif"),
        "OUTPUT_ENDMEMBERS": str(tmp_path / "ab_endmembers.csv"),
    }
    expected = xr_unmixsr.unmix(open_raster(enmap_path, chunks=CHUNKS), 4)
    assert_same_raster(out, expected["abundances"], rtol=1e-5)
    assert_same_raster(res["OUTPUT_RMSE"], expected["rmse"], rtol=1e-5)
    with rasterio.open(out) as src:
        assert src.descriptions == ("em1", "em2", "em3", "em4")  # band names = endmember names
    table = pd.read_csv(res["OUTPUT_ENDMEMBERS"], index_col=0)
    assert list(table.columns) == ["em1", "em2", "em3", "em4"] and len(table) == 224
    np.testing.assert_allclose(table.to_numpy().T, expected["endmembers"].values, rtol=1e-6)


def test_unmix_with_known_endmembers(enmap_path: Path, tmp_path: Path) -> None:
    first = _run(
        "unmix", {"INPUT": str(enmap_path), "N_ENDMEMBERS": 3, "OUTPUT": str(tmp_path / "a.tif")}
    )
    again = _run(
        "unmix",
        {
            "INPUT": str(enmap_path),
            "ENDMEMBERS": first["OUTPUT_ENDMEMBERS"],
            "OUTPUT": str(tmp_path / "b.tif"),
        },
    )
    a = open_raster(first["OUTPUT"]).values
    b = open_raster(again["OUTPUT"]).values
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)  # same spectra, same abundances
    # a raster library of other bands does not fit: the core's message comes through
    lib, spectra = tmp_path / "lib.tif", open_raster(enmap_path).isel(band=slice(0, 5), y=[0])
    spectra.attrs.pop("long_name", None)  # rioxarray checks it against the band count
    xr_unmixsr.write_raster(spectra, lib)
    message = _error(
        "unmix", {"INPUT": str(enmap_path), "ENDMEMBERS": str(lib), "OUTPUT": str(tmp_path / "c")}
    )
    assert "do not match the input's 224 bands" in message


def test_unmix_smile_on_the_finer_grid(
    enmap_crop: Path, tmp_path: Path, assert_same_raster: Any
) -> None:
    out = tmp_path / "smile.tif"
    fb = _feedback()
    _run(
        "unmix",
        {
            "INPUT": str(enmap_crop),
            "METHOD": 2,  # smile
            "N_ENDMEMBERS": 3,
            "SCALE": 2,
            "EPOCHS": 1,
            "STEPS_PER_EPOCH": 2,
            "TILE": 32,
            "OUTPUT": str(out),
        },
        fb,
    )
    with rasterio.open(out) as src, rasterio.open(enmap_crop) as ref:
        assert (src.count, src.height, src.width) == (3, 2 * ref.height, 2 * ref.width)
        assert src.crs == ref.crs and src.transform.a == ref.transform.a / 2
        assert src.bounds == ref.bounds
        ab = src.read()
    valid = ~np.isnan(ab).any(axis=0)
    assert valid.mean() > 0.9
    np.testing.assert_allclose(ab[:, valid].sum(axis=0), 1.0, atol=1e-4)
    expected = xr_unmixsr.unmix(
        open_raster(enmap_crop, chunks=CHUNKS),
        3,
        "smile",
        scale=2,
        training={"epochs": 1, "steps_per_epoch": 2},
        tile=32,
    )
    assert_same_raster(out, expected["abundances"], rtol=1e-5)
    assert any("training the smile" in m for m in fb.infos)
    assert fb.progress[-1] == pytest.approx(100.0)


def test_unmix_vca_fcls_typical_back_projected_to_the_finer_grid(
    enmap_crop: Path, tmp_path: Path, assert_same_raster: Any
) -> None:
    out = tmp_path / "fine.tif"
    params = {"INPUT": str(enmap_crop), "N_ENDMEMBERS": 3, "SCALE": 4, "TYPICAL": True}
    res = _run("unmix", {**params, "OUTPUT": str(out)})
    with rasterio.open(out) as src, rasterio.open(enmap_crop) as ref:
        assert (src.count, src.height, src.width) == (3, 4 * ref.height, 4 * ref.width)
        assert src.crs == ref.crs and src.transform.a == ref.transform.a / 4
        assert src.bounds == ref.bounds
    with rasterio.open(res["OUTPUT_RMSE"]) as src:
        assert (src.height, src.width) == (4 * ref.height, 4 * ref.width)
    expected = xr_unmixsr.unmix(open_raster(enmap_crop, chunks=CHUNKS), 3, scale=4, typical=True)
    assert_same_raster(out, expected["abundances"], rtol=1e-5)
    table = pd.read_csv(res["OUTPUT_ENDMEMBERS"], index_col=0)
    np.testing.assert_allclose(table.to_numpy().T, expected["endmembers"].values, rtol=1e-6)


def test_unmix_autoencoder_equals_the_python_api(
    enmap_crop: Path, tmp_path: Path, assert_same_raster: Any
) -> None:
    out = tmp_path / "ae.tif"
    params = {"INPUT": str(enmap_crop), "METHOD": 1, "N_ENDMEMBERS": 3, "TILE": 32}
    _run("unmix", {**params, "EPOCHS": 1, "STEPS_PER_EPOCH": 2, "OUTPUT": str(out)})
    expected = xr_unmixsr.unmix(
        open_raster(enmap_crop, chunks=CHUNKS),
        3,
        "autoencoder",
        training={"epochs": 1, "steps_per_epoch": 2},
        tile=32,
    )
    assert_same_raster(out, expected["abundances"], rtol=1e-5)


def test_train_then_upscale_with_the_checkpoint(
    enmap_crop: Path, tmp_path: Path, assert_same_raster: Any
) -> None:
    ckpt = tmp_path / "my_x2.safetensors"
    fb = _feedback()
    params = {
        "INPUT": str(enmap_crop),
        "SCALE": 2,
        "EPOCHS": 1,
        "STEPS_PER_EPOCH": 2,
        "PATCH": 8,
        "BATCH_SIZE": 2,
        "FEATURES": 8,
        "N_GRAMS": 1,
        "N_ENDMEMBERS": 3,
        "OUTPUT": str(ckpt),
    }
    res = _run("train", params, fb)
    assert res["OUTPUT"] == str(ckpt) and ckpt.exists() and ckpt.with_suffix(".json").exists()
    loaded = load_checkpoint(ckpt)
    assert loaded.scale == 2 and loaded.n_bands == 224
    # 1 epoch: 2 unmixing (step I) + 2 SR steps, reported one by one
    assert fb.progress == [25.0, 50.0, 75.0, 100.0]
    assert any("1 epochs" in m for m in fb.infos)
    out = tmp_path / "up.tif"
    _run(
        "upscale",
        {"INPUT": str(enmap_crop), "SCALE": 2, "MODEL_FILE": str(ckpt), "OUTPUT": str(out)},
    )
    expected = xr_unmixsr.upscale(open_raster(enmap_crop, chunks=CHUNKS), 2, str(ckpt))
    assert_same_raster(out, expected, rtol=1e-5)
    # fine-tuning: the new model starts from the checkpoint and keeps its shape (8 features)
    tuned = tmp_path / "tuned.safetensors"
    params = {k: v for k, v in params.items() if k not in ("FEATURES", "N_GRAMS", "N_ENDMEMBERS")}
    _run("train", {**params, "MODEL": str(ckpt), "OUTPUT": str(tuned)})
    card = json.loads(tuned.with_suffix(".json").read_text())
    assert card["training"]["settings"]["fine_tuned_from"] == "my_x2"
    assert card["config"]["features"] == 8 and card["config"]["n_endmembers"] == 3


def test_train_passes_paired_lr_and_gaussian_degradation(enmap_crop: Path, tmp_path: Path) -> None:
    hr = open_raster(enmap_crop)
    lr_path = tmp_path / "lr.tif"
    low = hr.coarsen(x=2, y=2).mean()
    write_raster(low.rio.write_transform(hr.rio.transform() * Affine.scale(2)), lr_path)
    params = {
        "INPUT": str(enmap_crop),
        "SCALE": 2,
        "ARCHITECTURE": 2,  # convsr
        "EPOCHS": 1,
        "STEPS_PER_EPOCH": 1,
        "PATCH": 8,
        "BATCH_SIZE": 2,
        "FEATURES": 8,
    }
    paired = tmp_path / "paired.safetensors"
    _run("train", {**params, "LR_INPUT": str(lr_path), "OUTPUT": str(paired)})
    assert (
        json.loads(paired.with_suffix(".json").read_text())["training"]["degradation"] == "paired"
    )
    psf = tmp_path / "psf.safetensors"
    _run("train", {**params, "DEGRADATION": 1, "GAUSSIAN_SIGMA": 1.5, "OUTPUT": str(psf)})
    training = json.loads(psf.with_suffix(".json").read_text())["training"]
    assert training["degradation"] == "gaussian"
    assert training["settings"]["sampler"]["gaussian_sigma"] == 1.5


def test_cancel_upscale_leaves_no_file(enmap_path: Path, tmp_path: Path) -> None:
    fb = _feedback(cancel_at=2)
    message = _error(
        "upscale", {"INPUT": str(enmap_path), "SCALE": 2, "OUTPUT": str(tmp_path / "up.tif")}, fb
    )
    assert message == "cancelled by the user: no output was written"
    assert len(fb.progress) == 2  # stopped at the next task
    assert list(tmp_path.iterdir()) == []


def test_cancel_unmix_leaves_no_file(enmap_path: Path, tmp_path: Path) -> None:
    message = _error(
        "unmix",
        {"INPUT": str(enmap_path), "N_ENDMEMBERS": 3, "OUTPUT": str(tmp_path / "ab.tif")},
        _feedback(cancel_at=1),
    )
    assert message.startswith("cancelled")
    assert list(tmp_path.iterdir()) == []  # neither abundances, RMSE nor CSV


def test_cancel_training_within_one_step(enmap_crop: Path, tmp_path: Path) -> None:
    fb = _feedback(cancel_at=1)
    params = {
        "INPUT": str(enmap_crop),
        "SCALE": 2,
        "EPOCHS": 3,
        "STEPS_PER_EPOCH": 2,
        "PATCH": 8,
        "BATCH_SIZE": 2,
        "FEATURES": 8,
        "N_GRAMS": 1,
        "ARCHITECTURE": 2,  # convsr
        "OUTPUT": str(tmp_path / "m.safetensors"),
    }
    assert _error("train", params, fb).startswith("cancelled")
    assert fb.progress == [100 / 6]  # stopped after the first of 6 steps
    assert list(tmp_path.iterdir()) == []  # no model, and no epoch finished to resume from


@pytest.mark.parametrize(
    ("alg", "params", "message"),
    [
        ("upscale", {"SCALE": 5}, "scale 5 is not supported: use one of (2, 3, 4, 8)"),
        ("unmix", {"METHOD": 2}, "method='smile' needs scale="),
        ("unmix", {"SCALE": 5}, "scale=5 is not supported"),
        ("train", {"SCALE": 2, "PATCH": 7}, "patch (7) must be a positive multiple of scale (2)"),
    ],
)
def test_bad_parameters_give_the_core_message(
    enmap_crop: Path, tmp_path: Path, alg: str, params: dict[str, Any], message: str
) -> None:
    out = str(tmp_path / ("out.safetensors" if alg == "train" else "out.tif"))
    assert message in _error(alg, {"INPUT": str(enmap_crop), **params, "OUTPUT": out})
    assert list(tmp_path.iterdir()) == []


def test_one_band_raster_is_refused(one_band_raster: Path, tmp_path: Path) -> None:
    params = {"INPUT": str(one_band_raster), "OUTPUT": str(tmp_path / "ab.tif")}
    assert "number of valid bands (1)" in _error("unmix", params)
    shipped = {**params, "SCALE": 2, "MODEL_FILE": ""}
    from qgis.core import QgsApplication

    models = (
        QgsApplication.processingRegistry()
        .algorithmById("unmixsr:upscale")
        .parameterDefinition("MODEL")
        .options()
    )
    shipped["MODEL"] = models.index("unmixingsr-enmap-x2")
    assert "trained on 224 bands but the input has 1" in _error("upscale", shipped)
    assert list(tmp_path.iterdir()) == []
