"""Tests of ``unmix(method="autoencoder" | "smile")``: training on the scene, tiled inference."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import rioxarray  # noqa: F401
import torch
import xarray as xr
from affine import Affine

import xr_unmixsr
from xr_unmixsr.errors import BandMismatchError, ModelError, ParameterError
from xr_unmixsr.metrics import unmixing_metrics
from xr_unmixsr.models import SRModel
from xr_unmixsr.models.bicubic import bicubic_resize
from xr_unmixsr.unmixing.deep import AbundanceHead, abundance_model, endmembers_of
from xr_unmixsr.unmixing.synthetic import linear_mixtures, smooth_mixture_cube

P, BANDS, H, W = 3, 30, 24, 28
X0, Y0, RES = 366975.0, 5808045.0, 30.0
AE_TRAINING = {"epochs": 3, "steps_per_epoch": 15, "patch": 16}
SMILE_TRAINING = {"epochs": 1, "steps_per_epoch": 6, "patch": 16, "features": 8, "n_grams": 1}


def _georef(values: np.ndarray) -> xr.DataArray:
    bands, h, w = values.shape
    return xr.DataArray(
        values.astype(np.float32),
        dims=("band", "y", "x"),
        coords={
            "band": np.arange(1, bands + 1),
            "wavelength": ("band", np.linspace(420.0, 2400.0, bands)),
            "y": Y0 - (np.arange(h) + 0.5) * RES,
            "x": X0 + (np.arange(w) + 0.5) * RES,
        },
        name="refl",
    ).rio.write_crs("EPSG:32633")


@pytest.fixture(scope="module")
def mixed() -> tuple[xr.DataArray, np.ndarray, np.ndarray]:
    """A scene of random linear mixtures: cube, true endmembers (P, BANDS), abundances (P, H, W)."""
    pixels, endm, ab = linear_mixtures(H * W, BANDS, P, noise=1e-3, pure_per_endmember=3, seed=1)
    return _georef(pixels.T.reshape(BANDS, H, W)), endm, ab.T.reshape(P, H, W)


@pytest.fixture(scope="module")
def ae_model(mixed: tuple[xr.DataArray, np.ndarray, np.ndarray]) -> SRModel:
    from xr_unmixsr.unmixing.deep import train_unmixing_model

    return train_unmixing_model(mixed[0], "autoencoder", P, device="cpu", training=AE_TRAINING)


@pytest.fixture(scope="module")
def ae_result(mixed: tuple[xr.DataArray, np.ndarray, np.ndarray], ae_model: SRModel) -> xr.Dataset:
    return xr_unmixsr.unmix(mixed[0], method="autoencoder", model=ae_model, device="cpu")


def _check_abundances(ab: np.ndarray) -> None:
    assert (ab >= 0).all()
    np.testing.assert_allclose(ab.sum(axis=0), 1.0, atol=1e-5)


def test_autoencoder_structure_and_geometry(
    mixed: tuple[xr.DataArray, np.ndarray, np.ndarray], ae_result: xr.Dataset
) -> None:
    cube = mixed[0]
    assert ae_result["abundances"].dims == ("endmember", "y", "x")
    assert ae_result["abundances"].shape == (P, H, W)
    assert ae_result["endmembers"].shape == (P, BANDS)
    _check_abundances(ae_result["abundances"].values)
    assert ae_result["abundances"].rio.transform() == cube.rio.transform()
    assert ae_result["abundances"].rio.crs == cube.rio.crs
    np.testing.assert_array_equal(
        ae_result["endmembers"]["wavelength"].values, cube["wavelength"].values
    )
    assert ae_result.attrs["method"] == "autoencoder"
    assert ae_result.attrs["n_endmembers"] == P


def test_autoencoder_endmembers_in_data_units_and_rmse_consistent(
    mixed: tuple[xr.DataArray, np.ndarray, np.ndarray], ae_result: xr.Dataset
) -> None:
    """The decoder's endmembers are returned in the cube's units (not normalised): they
    reconstruct the cube with the returned abundances, with the returned per-pixel RMSE."""
    cube, endm, ab = mixed
    em = ae_result["endmembers"].values.astype(np.float64)
    a = ae_result["abundances"].values.astype(np.float64)
    recon = np.einsum("pb,pyx->byx", em, a)
    rmse = np.sqrt(((recon - cube.values) ** 2).mean(axis=0))
    np.testing.assert_allclose(ae_result["rmse"].values, rmse, rtol=1e-3, atol=1e-6)
    metrics = unmixing_metrics(em, endm, a, ab)
    assert metrics["sad_mean"] < 0.1  # VCA-initialised, 45 steps
    # it reconstructs the pixels much better than their mean spectrum does
    values = cube.values.astype(np.float64)
    mean_spectrum_rmse = np.sqrt(((values - values.mean(axis=(1, 2), keepdims=True)) ** 2).mean(0))
    assert float(rmse.mean()) < 0.5 * float(mean_spectrum_rmse.mean())


def test_autoencoder_tiled_equals_in_memory(
    mixed: tuple[xr.DataArray, np.ndarray, np.ndarray], ae_model: SRModel, ae_result: xr.Dataset
) -> None:
    lazy = xr_unmixsr.unmix(
        mixed[0].chunk({"y": 7, "x": 11}), method="autoencoder", model=ae_model, tile=16
    )
    assert isinstance(lazy["abundances"].data, da.Array)
    for name in ("abundances", "rmse"):
        np.testing.assert_allclose(lazy[name].values, ae_result[name].values, atol=2e-6)


def test_autoencoder_missing_pixels_and_bands(
    mixed: tuple[xr.DataArray, np.ndarray, np.ndarray],
) -> None:
    """A band missing everywhere is left out (NaN endmember values there, abundances
    everywhere else); a pixel missing in a used band gets NaN abundances and RMSE."""
    cube = mixed[0].copy()
    cube[4] = -9999.0
    cube[10, 3, 5] = -9999.0
    cube = cube.rio.write_nodata(-9999.0)
    res = xr_unmixsr.unmix(
        cube.chunk({"y": 12, "x": 14}), P, "autoencoder", training=AE_TRAINING, device="cpu"
    ).compute()
    missing = np.zeros((H, W), bool)
    missing[3, 5] = True
    ab = res["abundances"].values
    np.testing.assert_array_equal(np.isnan(ab), np.broadcast_to(missing, ab.shape))
    np.testing.assert_array_equal(np.isnan(res["rmse"].values), missing)
    _check_abundances(ab[:, ~missing])
    em = res["endmembers"].values
    np.testing.assert_array_equal(np.isnan(em).any(axis=0), np.arange(BANDS) == 4)


def test_autoencoder_checkpoint_round_trip(
    mixed: tuple[xr.DataArray, np.ndarray, np.ndarray], tmp_path
) -> None:
    """Training with a checkpoint, then unmixing with that checkpoint's path, gives the
    same result as the in-process model."""
    cube = mixed[0]
    ckpt = tmp_path / "ae.safetensors"
    trained = xr_unmixsr.unmix(
        cube, P, "autoencoder", training={**AE_TRAINING, "checkpoint": ckpt}, device="cpu"
    )
    loaded = xr_unmixsr.unmix(cube, method="autoencoder", model=ckpt, device="cpu")
    np.testing.assert_allclose(loaded["abundances"].values, trained["abundances"].values, atol=1e-6)
    np.testing.assert_allclose(loaded["endmembers"].values, trained["endmembers"].values)


def test_smile_abundances_on_finer_grid() -> None:
    """SMILE gives abundances (and RMSE) on the x2 grid with the x2 transform, the same for
    any chunking."""
    values = smooth_mixture_cube(16, BANDS, P, seed=3)
    cube = _georef(values)
    res = xr_unmixsr.unmix(cube, P, "smile", scale=2, training=SMILE_TRAINING, device="cpu")
    ab = res["abundances"]
    assert ab.shape == (P, 32, 32)
    assert res["rmse"].shape == (32, 32)
    _check_abundances(ab.values)
    t = cube.rio.transform()
    assert ab.rio.transform() == t @ Affine.scale(0.5)
    assert ab.rio.bounds() == pytest.approx(cube.rio.bounds())
    assert res.attrs["scale"] == 2
    assert np.isfinite(res["endmembers"].values).all()
    assert (res["endmembers"].values >= 0).all()
    # the trained model, applied tile by tile on a chunked cube, gives the same maps
    again = xr_unmixsr.unmix(
        cube.chunk({"y": 5, "x": 9}),
        P,
        "smile",
        scale=2,
        training=SMILE_TRAINING,
        tile=20,
        device="cpu",
    )
    np.testing.assert_allclose(again["abundances"].values, ab.values, atol=2e-6)


def test_autoencoder_abundances_back_projected_to_finer_grid(
    mixed: tuple[xr.DataArray, np.ndarray, np.ndarray], ae_model: SRModel, ae_result: xr.Dataset
) -> None:
    """With scale=, the autoencoder's abundances go to the finer grid by back-projection: degraded
    back, they match the scene-grid abundances better than their bicubic upsampling does, and
    the RMSE is that of the scene pixel."""
    res = xr_unmixsr.unmix(mixed[0], method="autoencoder", model=ae_model, scale=2, device="cpu")
    ab = res["abundances"].values
    assert ab.shape == (P, 2 * H, 2 * W)
    _check_abundances(ab)
    assert res["abundances"].rio.transform() == mixed[0].rio.transform() @ Affine.scale(0.5)
    assert res.attrs["scale"] == 2
    coarse = torch.from_numpy(ae_result["abundances"].values)[None]
    bicubic = bicubic_resize(coarse, 2)
    fine = torch.from_numpy(ab)[None]
    err = (bicubic_resize(fine, 0.5) - coarse).abs().mean()
    assert err < 0.5 * (bicubic_resize(bicubic, 0.5) - coarse).abs().mean()
    np.testing.assert_array_equal(res["rmse"].values[::2, ::2], ae_result["rmse"].values)
    np.testing.assert_array_equal(res["endmembers"].values, ae_result["endmembers"].values)


def test_accessor_reaches_deep_unmixing(
    mixed: tuple[xr.DataArray, np.ndarray, np.ndarray], ae_model: SRModel, ae_result: xr.Dataset
) -> None:
    res = mixed[0].unmixsr.unmix(method="autoencoder", model=ae_model, device="cpu")
    np.testing.assert_array_equal(res["abundances"].values, ae_result["abundances"].values)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "smile"}, "scale"),
        ({"method": "smile", "scale": 5}, "scale"),
        ({"method": "autoencoder", "scale": 5}, "scale"),
        ({"method": "autoencoder", "endmembers": np.ones((P, BANDS))}, "endmembers"),
    ],
)
def test_parameter_errors(
    mixed: tuple[xr.DataArray, np.ndarray, np.ndarray], kwargs: dict, match: str
) -> None:
    with pytest.raises(ParameterError, match=match):
        xr_unmixsr.unmix(mixed[0], P, **kwargs)


def test_model_errors(
    mixed: tuple[xr.DataArray, np.ndarray, np.ndarray], ae_model: SRModel
) -> None:
    cube = mixed[0]
    with pytest.raises(ParameterError, match="autoencoder checkpoint"):
        xr_unmixsr.unmix(cube, method="smile", model=ae_model)
    with pytest.raises(ParameterError, match="endmembers"):
        xr_unmixsr.unmix(cube, P + 1, method="autoencoder", model=ae_model)
    with pytest.raises(BandMismatchError, match="fine-tune"):
        xr_unmixsr.unmix(cube.isel(band=slice(0, BANDS - 1)), method="autoencoder", model=ae_model)
    with pytest.raises(ModelError, match="not an unmixing network"):
        AbundanceHead(xr_unmixsr.models.get_model("bicubic", 2).network, 1.0)


def test_abundance_model_reads_excluded_bands_from_card(ae_model: SRModel) -> None:
    base = SRModel(
        name="ae",
        network=ae_model.network.network,
        scale=1,
        halo=ae_model.halo,
        n_bands=BANDS,
        gain=np.float32(2.0),
        card={"training": {"excluded_bands": [2, 5]}},
    )
    am = abundance_model(base)
    assert am.out_channels == P + 1
    expected = np.ones(BANDS, bool)
    expected[[2, 5]] = False
    np.testing.assert_array_equal(am.band_mask, expected)
    em = endmembers_of(am)
    assert np.isnan(em[:, [2, 5]]).all()
    decoder = ae_model.network.network.endmembers.detach().numpy()
    np.testing.assert_allclose(em[:, expected], decoder[:, expected] / 2.0, rtol=1e-6)
