"""Tests of ``unmix`` on a synthetic georeferenced scene with known endmembers and abundances."""

from __future__ import annotations

from dataclasses import dataclass

import dask.array as da
import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr

import xr_unmixsr
from xr_unmixsr.errors import BandMismatchError, ParameterError
from xr_unmixsr.metrics import match_endmembers, unmixing_metrics
from xr_unmixsr.unmixing.scene import robust_vca, typical_endmembers
from xr_unmixsr.unmixing.synthetic import linear_mixtures

P, BANDS, H, W = 4, 60, 40, 50
NOISE = 1e-3
CRS = "EPSG:32633"
X0, Y0, RES = 366975.0, 5808045.0, 30.0
MAX_SAD = 0.02  # rad
MAX_ABUNDANCE_RMSE = 0.02


@dataclass(frozen=True)
class Scene:
    cube: xr.DataArray  # (band, y, x), numpy-backed
    endmembers: np.ndarray  # (P, BANDS)
    abundances: np.ndarray  # (P, H, W)


def _make_scene(seed: int = 0, noise: float = NOISE) -> Scene:
    pixels, endm, ab = linear_mixtures(
        H * W, BANDS, P, noise=noise, pure_per_endmember=3, seed=seed
    )
    cube = xr.DataArray(
        pixels.T.reshape(BANDS, H, W).astype(np.float32),
        dims=("band", "y", "x"),
        coords={
            "band": np.arange(1, BANDS + 1),
            "wavelength": ("band", np.linspace(420.0, 2400.0, BANDS)),
            "fwhm": ("band", np.full(BANDS, 10.0)),
            "y": Y0 - (np.arange(H) + 0.5) * RES,
            "x": X0 + (np.arange(W) + 0.5) * RES,
        },
        name="refl",
    ).rio.write_crs(CRS)
    return Scene(cube, endm, ab.T.reshape(P, H, W))


@pytest.fixture(scope="module")
def scene() -> Scene:
    return _make_scene()


@pytest.fixture(scope="module")
def result(scene: Scene) -> xr.Dataset:
    return xr_unmixsr.unmix(scene.cube, n_endmembers=P)


def _check_sum_to_one(ab: np.ndarray) -> None:
    assert (ab >= 0).all()
    np.testing.assert_allclose(ab.sum(axis=0), 1.0, rtol=0, atol=1e-5)


def test_structure_and_constraints(scene: Scene, result: xr.Dataset) -> None:
    ab, em, rmse = result["abundances"], result["endmembers"], result["rmse"]
    assert ab.dims == ("endmember", "y", "x")
    assert ab.shape == (P, H, W)
    assert em.dims == ("endmember", "band")
    assert rmse.dims == ("y", "x")
    assert list(ab.endmember.values) == ["em1", "em2", "em3", "em4"]
    np.testing.assert_array_equal(ab.endmember.values, em.endmember.values)
    for name in ("band", "wavelength", "fwhm"):
        np.testing.assert_array_equal(em[name].values, scene.cube[name].values)
    _check_sum_to_one(ab.values)
    assert np.isfinite(em.values).all()
    # the noise is 1e-3, so the reconstruction error is of that order
    assert float(rmse.mean()) < 3 * NOISE
    assert result.attrs["n_endmembers"] == P
    assert result.attrs["method"] == "vca-fcls"


def test_georeferenced_like_input(scene: Scene, result: xr.Dataset) -> None:
    for name in ("abundances", "rmse"):
        out = result[name]
        assert out.rio.crs == scene.cube.rio.crs
        assert out.rio.transform() == scene.cube.rio.transform()
        np.testing.assert_array_equal(out.x.values, scene.cube.x.values)
        np.testing.assert_array_equal(out.y.values, scene.cube.y.values)
        assert np.isnan(out.rio.nodata)


def test_recovers_endmembers_and_abundances(scene: Scene, result: xr.Dataset) -> None:
    metrics = unmixing_metrics(
        result["endmembers"], scene.endmembers, result["abundances"], scene.abundances
    )
    assert max(metrics["sad_per_endmember"]) < MAX_SAD
    assert metrics["rmse_mean"] < MAX_ABUNDANCE_RMSE
    order = match_endmembers(result["endmembers"].values, scene.endmembers)
    assert sorted(order.tolist()) == list(range(P))


def test_lazy_and_independent_of_chunking(scene: Scene, result: xr.Dataset) -> None:
    runs = []
    for chunks in ({"y": 7, "x": 11}, {"y": 40, "x": 13, "band": 17}):
        res = xr_unmixsr.unmix(scene.cube.chunk(chunks), n_endmembers=P)
        assert isinstance(res["abundances"].data, da.Array)
        assert isinstance(res["rmse"].data, da.Array)
        runs.append(res.compute())
    for name in ("abundances", "endmembers", "rmse"):
        np.testing.assert_allclose(runs[0][name].values, runs[1][name].values, rtol=0, atol=1e-6)
        np.testing.assert_allclose(runs[0][name].values, result[name].values, rtol=0, atol=1e-6)


def test_band_last_input(scene: Scene, result: xr.Dataset) -> None:
    res = xr_unmixsr.unmix(scene.cube.transpose("y", "x", "band"), n_endmembers=P)
    assert res["abundances"].dims == ("endmember", "y", "x")
    np.testing.assert_allclose(
        res["abundances"].values, result["abundances"].values, rtol=0, atol=1e-6
    )


def test_deterministic_for_a_seed(scene: Scene) -> None:
    a = scene.cube.unmixsr.unmix(n_endmembers=P, seed=3, n_samples=500)
    b = scene.cube.unmixsr.unmix(n_endmembers=P, seed=3, n_samples=500)
    xr.testing.assert_identical(a, b)
    assert a.attrs["n_samples"] == 500
    assert a.attrs["seed"] == 3


def test_given_endmembers_numpy(scene: Scene) -> None:
    res = xr_unmixsr.unmix(scene.cube, endmembers=scene.endmembers)
    np.testing.assert_array_equal(res["endmembers"].values, scene.endmembers.astype(np.float32))
    _check_sum_to_one(res["abundances"].values)
    # the true endmembers give the true abundances up to the noise, in the given order
    err = np.sqrt(np.mean((res["abundances"].values - scene.abundances) ** 2))
    assert err < 0.01
    # transposed (bands, n_endmembers) is recognised too
    res_t = xr_unmixsr.unmix(scene.cube, endmembers=scene.endmembers.T)
    np.testing.assert_array_equal(res_t["abundances"].values, res["abundances"].values)


def test_given_endmembers_dataarray(scene: Scene) -> None:
    names = ["soil", "grass", "water", "roof"]
    em = xr.DataArray(scene.endmembers.T, dims=("band", "endmember"), coords={"endmember": names})
    res = xr_unmixsr.unmix(scene.cube, endmembers=em)
    assert list(res["abundances"].endmember.values) == names
    assert list(res["endmembers"].endmember.values) == names
    np.testing.assert_array_equal(res["endmembers"].values, scene.endmembers.astype(np.float32))
    np.testing.assert_allclose(res["abundances"].values, scene.abundances, rtol=0, atol=0.05)


def test_given_endmembers_errors(scene: Scene) -> None:
    with pytest.raises(BandMismatchError, match="do not match the input's 60 bands"):
        xr_unmixsr.unmix(scene.cube, endmembers=scene.endmembers[:, :50])
    with pytest.raises(ParameterError, match="n_endmembers=3 but 4 endmembers were given"):
        xr_unmixsr.unmix(scene.cube, n_endmembers=3, endmembers=scene.endmembers)


@pytest.mark.parametrize("n", [1, 0, BANDS + 1])
def test_n_endmembers_out_of_range_raises(scene: Scene, n: int) -> None:
    with pytest.raises(ParameterError, match=rf"n_endmembers={n} is out of range.*\(60\)"):
        xr_unmixsr.unmix(scene.cube, n_endmembers=n)


def test_unknown_method_raises(scene: Scene) -> None:
    with pytest.raises(ParameterError, match="unknown unmixing method 'nmf'"):
        xr_unmixsr.unmix(scene.cube, n_endmembers=P, method="nmf")


def test_estimated_number_of_endmembers(scene: Scene) -> None:
    res = xr_unmixsr.unmix(scene.cube)
    assert res.attrs["n_endmembers"] == P
    assert res.sizes["endmember"] == P
    _check_sum_to_one(res["abundances"].values)


def test_estimated_number_of_endmembers_noise_free() -> None:
    clean = _make_scene(noise=0.0)
    res = xr_unmixsr.unmix(clean.cube)
    assert P - 1 <= res.attrs["n_endmembers"] <= P + 1


def test_nan_pixels_give_nan(scene: Scene) -> None:
    cube = scene.cube.copy()
    cube[:, 5, 7] = np.nan  # a pixel missing in every band
    cube[12, 20, 30] = np.nan  # a pixel missing in one band
    res = xr_unmixsr.unmix(cube.chunk({"y": 16, "x": 16}), n_endmembers=P).compute()
    missing = np.zeros((H, W), bool)
    missing[5, 7] = missing[20, 30] = True
    ab, rmse = res["abundances"].values, res["rmse"].values
    np.testing.assert_array_equal(np.isnan(ab), np.broadcast_to(missing, ab.shape))
    np.testing.assert_array_equal(np.isnan(rmse), missing)
    _check_sum_to_one(ab[:, ~missing])
    assert np.isfinite(res["endmembers"].values).all()


@pytest.mark.parametrize("nodata", [np.nan, -9999.0])
def test_missing_band_is_ignored(scene: Scene, nodata: float) -> None:
    cube = scene.cube.copy()
    cube[7] = nodata
    if np.isfinite(nodata):
        cube = cube.rio.write_nodata(nodata)
    res = xr_unmixsr.unmix(cube, n_endmembers=P)
    em = res["endmembers"].values
    np.testing.assert_array_equal(np.isnan(em).any(axis=0), np.arange(BANDS) == 7)
    assert not np.isnan(em).all(axis=0)[np.arange(BANDS) != 7].any()
    _check_sum_to_one(res["abundances"].values)
    keep = np.arange(BANDS) != 7
    metrics = unmixing_metrics(
        em[:, keep], scene.endmembers[:, keep], res["abundances"], scene.abundances
    )
    assert max(metrics["sad_per_endmember"]) < MAX_SAD
    assert metrics["rmse_mean"] < MAX_ABUNDANCE_RMSE


def _varied_pixels(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (n, bands) whose pure pixels vary around the true endmembers (P, BANDS): 150 per
    endmember scaled and tilted by a few per cent, plus one far-off pure pixel each (the
    extreme VCA picks), among Dirichlet mixtures."""
    rng = np.random.default_rng(seed)
    mixed, endm, _ = linear_mixtures(1500, BANDS, P, noise=1e-3, seed=seed)
    ramp = np.linspace(-1.0, 1.0, BANDS)
    pure = [
        endm[k] * rng.uniform(0.95, 1.05, (150, 1)) * (1 + rng.normal(0, 0.03, (150, 1)) * ramp)
        for k in range(P)
    ]
    extreme = [endm[k] * 1.3 * (1 + 0.3 * ramp) for k in range(P)]
    return np.vstack([mixed, *pure, np.array(extreme)]), endm


def test_typical_endmembers_are_typical_pure_pixels() -> None:
    pixels, endm = _varied_pixels()
    vca_em = robust_vca(pixels, P, seed=0)
    typical = typical_endmembers(pixels, vca_em)
    # each is one of the pixels
    for row in typical:
        assert (np.abs(pixels - row).max(axis=1) == 0).any()

    def mean_sad(est: np.ndarray) -> float:
        est = est[match_endmembers(est, endm)]
        cos = (est * endm).sum(1) / np.linalg.norm(est, axis=1) / np.linalg.norm(endm, axis=1)
        return float(np.arccos(np.clip(cos, -1, 1)).mean())

    assert mean_sad(typical) < 0.5 * mean_sad(vca_em)
    with pytest.raises(ParameterError, match="fraction"):
        typical_endmembers(pixels, vca_em, 0.0)


def test_unmix_typical(scene: Scene) -> None:
    plain = xr_unmixsr.unmix(scene.cube, P)
    typical = xr_unmixsr.unmix(scene.cube, P, typical=True)
    assert typical.attrs["typical"] == 1 and plain.attrs["typical"] == 0
    assert not np.allclose(typical["endmembers"].values, plain["endmembers"].values)
    _check_sum_to_one(typical["abundances"].values)
    with pytest.raises(ParameterError, match="typical"):
        xr_unmixsr.unmix(scene.cube, P, endmembers=scene.endmembers, typical=True)
