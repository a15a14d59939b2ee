"""Tests of xr_unmixsr.metrics against scikit-image and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from xr_unmixsr.errors import DimensionError, InvalidDataError, ParameterError
from xr_unmixsr.metrics import (
    ergas,
    match_endmembers,
    psnr,
    sad,
    sad_matrix,
    sam,
    sr_metrics,
    ssim,
    unmixing_metrics,
)

skm = pytest.importorskip("skimage.metrics")

SKIMAGE_SSIM_OPTIONS = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


def _pair(seed: int, shape=(5, 32, 40), data_range: float = 1.0, noise: float = 0.05):
    """A smooth-ish reference in [0, data_range] and a noisy estimate of it."""
    rng = np.random.default_rng(seed)
    ref = ndimage.gaussian_filter(rng.random(shape), sigma=(0, 2, 2))
    ref = (ref - ref.min()) / (ref.max() - ref.min()) * data_range
    est = np.clip(ref + noise * data_range * rng.standard_normal(shape), 0, data_range)
    return ref, est


# --------------------------------------------------------------------------------------------
# Super-resolution metrics
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data_range", [1.0, 255.0, 0.5])
def test_psnr_matches_skimage_per_band_mean(data_range):
    ref, est = _pair(0, data_range=data_range)
    expected = np.mean(
        [
            skm.peak_signal_noise_ratio(ref[b], est[b], data_range=data_range)
            for b in range(ref.shape[0])
        ]
    )
    assert psnr(ref, est, data_range=data_range) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("data_range", "shape"), [(1.0, (4, 32, 40)), (255.0, (3, 17, 23))])
def test_ssim_matches_skimage_gaussian_per_band_mean(data_range, shape):
    ref, est = _pair(1, shape=shape, data_range=data_range, noise=0.1)
    expected = np.mean(
        [
            skm.structural_similarity(ref[b], est[b], data_range=data_range, **SKIMAGE_SSIM_OPTIONS)
            for b in range(ref.shape[0])
        ]
    )
    got = ssim(ref, est, data_range=data_range)
    assert abs(got - expected) < 1e-6
    assert got < 0.99  # the noise is visible: not a trivially perfect score


def test_ssim_differs_from_uniform_window_choice():
    # Guards the documented window choice: the 7x7 uniform variant gives another number.
    ref, est = _pair(2, noise=0.1)
    uniform = np.mean(
        [skm.structural_similarity(ref[b], est[b], data_range=1.0) for b in range(ref.shape[0])]
    )
    assert abs(ssim(ref, est) - uniform) > 1e-4


def test_sam_on_hand_made_spectra():
    # Columns are pixels: orthogonal (90 deg), scaled copy (0 deg), 45 deg, and a zero spectrum.
    ref = np.array([[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    est = np.array([[0.0, 2.0, 1.0, 1.0], [1.0, 2.0, 1.0, 2.0], [0.0, 0.0, 0.0, 3.0]])
    assert sam(ref[:, :1], est[:, :1]) == pytest.approx(90.0, abs=1e-12)
    assert sam(ref[:, 1:2], est[:, 1:2]) == pytest.approx(0.0, abs=1e-12)
    assert sam(ref[:, 2:3], est[:, 2:3]) == pytest.approx(45.0, abs=1e-12)
    # Mean over pixels; the zero-norm reference pixel is excluded.
    assert sam(ref, est) == pytest.approx(45.0, abs=1e-12)
    # Same spectra laid out as (band, y, x).
    assert sam(ref[:, :3].reshape(3, 1, 3), est[:, :3].reshape(3, 1, 3)) == pytest.approx(45.0)
    with pytest.raises(InvalidDataError):
        sam(ref[:, 3:], est[:, 3:])


def test_ergas_hand_computed():
    ref = np.array([[0.2, 0.4], [0.5, 0.5]])
    est = np.array([[0.3, 0.4], [0.4, 0.6]])
    # band 0: MSE 0.005, mean 0.3; band 1: MSE 0.01, mean 0.5.
    expected = (100 / 4) * math.sqrt((0.005 / 0.3**2 + 0.01 / 0.5**2) / 2)
    assert expected == pytest.approx(5.4645, abs=1e-4)
    assert ergas(ref, est, scale=4) == pytest.approx(expected, rel=1e-12)
    assert ergas(ref, est, scale=2) == pytest.approx(2 * expected, rel=1e-12)


def test_identical_images_give_perfect_scores():
    ref, _ = _pair(3)
    ref = ref + 0.01  # no zero-norm spectrum, no zero-mean band
    out = sr_metrics(ref, ref.copy(), scale=4)
    assert set(out) == {"psnr", "ssim", "sam", "ergas"}
    assert out["psnr"] == math.inf
    assert out["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert out["sam"] == 0.0
    assert out["ergas"] == 0.0


def test_sr_metrics_equals_individual_functions():
    ref, est = _pair(4)
    ref, est = ref + 0.05, est + 0.05
    out = sr_metrics(ref, est, scale=3, data_range=1.2)
    assert out["psnr"] == psnr(ref, est, data_range=1.2)
    assert out["ssim"] == ssim(ref, est, data_range=1.2)
    assert out["sam"] == sam(ref, est)
    assert out["ergas"] == ergas(ref, est, scale=3)
    assert all(isinstance(v, float) for v in out.values())


def test_nan_pixels_are_ignored():
    ref, est = _pair(5, shape=(4, 30, 30))
    ref, est = ref + 0.05, est + 0.05
    bad = np.zeros((30, 30), dtype=bool)
    bad[3, 4] = bad[20, 25] = bad[0, 29] = True
    ref_nan, est_nan = ref.copy(), est.copy()
    ref_nan[1, 3, 4] = np.nan  # NaN in one band of the reference
    est_nan[2, 20, 25] = np.nan  # NaN in one band of the estimate
    ref_nan[:, 0, 29] = np.nan  # a fully NaN pixel
    good = ~bad

    # PSNR, SAM, ERGAS: same as on the valid pixels only.
    assert psnr(ref_nan, est_nan) == pytest.approx(psnr(ref[:, good], est[:, good]), rel=1e-12)
    assert sam(ref_nan, est_nan) == pytest.approx(sam(ref[:, good], est[:, good]), rel=1e-12)
    assert ergas(ref_nan, est_nan, scale=2) == pytest.approx(
        ergas(ref[:, good], est[:, good], scale=2), rel=1e-12
    )
    assert psnr(ref_nan, est_nan) != pytest.approx(psnr(ref, est), rel=1e-9)

    # SSIM: mean of skimage's SSIM map over interior windows not touching a NaN pixel.
    r = 5
    touching = ndimage.maximum_filter(bad.astype(np.uint8), size=2 * r + 1, mode="constant") > 0
    usable = np.zeros_like(bad)
    usable[r:-r, r:-r] = True
    usable &= ~touching
    expected = np.mean(
        [
            skm.structural_similarity(
                ref[b], est[b], data_range=1.0, full=True, **SKIMAGE_SSIM_OPTIONS
            )[1][usable].mean()
            for b in range(4)
        ]
    )
    got = ssim(ref_nan, est_nan)
    assert np.isfinite(got)
    assert abs(got - expected) < 1e-6
    # The non-NaN values of the other bands at an excluded pixel do not matter.
    other = ref_nan.copy()
    other[:, 20, 25] = 0.9  # the estimate has a NaN (band 2) there
    other[0, 3, 4] = 0.0  # the reference has a NaN (band 1) there
    for metric in (psnr, ssim, sam):
        assert metric(other, est_nan) == pytest.approx(metric(ref_nan, est_nan), rel=1e-12)

    all_nan = np.full_like(ref, np.nan)
    with pytest.raises(InvalidDataError):
        psnr(all_nan, est)


def test_dataarray_in_y_x_band_order():
    ref, est = _pair(6, shape=(4, 24, 20))
    ref, est = ref + 0.05, est + 0.05
    expected = sr_metrics(ref, est, scale=2)
    coords = {"band": [450.0, 550.0, 650.0, 750.0]}
    ref_da = xr.DataArray(np.transpose(ref, (1, 2, 0)), dims=("y", "x", "band"), coords=coords)
    est_da = xr.DataArray(np.transpose(est, (1, 2, 0)), dims=("y", "x", "band"), coords=coords)
    got = sr_metrics(ref_da, est_da, scale=2)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-12), key
    # A DataArray may be compared with a (band, y, x) numpy array.
    assert psnr(ref_da, est) == pytest.approx(expected["psnr"], rel=1e-12)
    # numpy with the spectral axis last, through band_axis.
    assert ssim(np.moveaxis(ref, 0, -1), np.moveaxis(est, 0, -1), band_axis=-1) == pytest.approx(
        expected["ssim"], rel=1e-12
    )


def test_shape_and_parameter_errors():
    ref, est = _pair(7, shape=(3, 16, 16))
    with pytest.raises(DimensionError, match="same"):
        psnr(ref, est[:, :15])
    with pytest.raises(ValueError):  # DimensionError is also a ValueError
        sam(ref, est[:2])
    with pytest.raises(DimensionError, match="11x11"):
        ssim(ref[:, :10], est[:, :10])
    with pytest.raises(ParameterError):
        psnr(ref, est, data_range=0)
    with pytest.raises(ParameterError):
        ergas(ref, est, scale=-2)
    with pytest.raises(ParameterError):
        sam(ref, est, band_axis=3)


# --------------------------------------------------------------------------------------------
# Unmixing metrics
# --------------------------------------------------------------------------------------------


def test_sad_known_angles():
    assert sad([1.0, 0.0, 0.0], [0.0, 3.0, 0.0]) == pytest.approx(math.pi / 2)
    assert sad([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx(0.0, abs=1e-15)
    assert sad([1.0, 0.0], [1.0, 1.0]) == pytest.approx(math.pi / 4)
    assert sad([1.0, 0.0], [-1.0, 0.0]) == pytest.approx(math.pi)
    with pytest.raises(DimensionError):
        sad([1.0, 0.0], [1.0, 0.0, 0.0])
    with pytest.raises(InvalidDataError):
        sad([0.0, 0.0], [1.0, 0.0])


def test_sad_matrix_shape_and_values():
    est = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    truth = np.array([[1.0, 0.0], [0.0, 1.0]])
    m = sad_matrix(est, truth)
    assert m.shape == (3, 2)
    expected = np.array([[0.0, 90.0], [45.0, 45.0], [90.0, 0.0]])
    np.testing.assert_allclose(np.degrees(m), expected, atol=1e-12)
    with pytest.raises(DimensionError):
        sad_matrix(est, np.ones((2, 3)))


def test_match_endmembers_recovers_permutation():
    rng = np.random.default_rng(8)
    truth = rng.random((5, 60))
    perm = np.array([3, 0, 4, 1, 2])
    estimated = truth[perm] * rng.uniform(0.5, 2.0, (5, 1)) + 0.01 * rng.random((5, 60))
    order = match_endmembers(estimated, truth)
    np.testing.assert_array_equal(order, np.argsort(perm))
    assert np.array_equal(perm[order], np.arange(5))


def test_match_endmembers_is_optimal_not_greedy():
    # Endmembers as 2-band spectra at polar angles: SAD = |angle difference|.
    def spectra(deg):
        rad = np.radians(deg)
        return np.stack([np.cos(rad), np.sin(rad)], axis=1)

    truth = spectra([20.0, 30.0])
    estimated = spectra([25.0, 0.0])
    # Greedy in truth order would give [0, 1] (total 5 + 30 deg); Hungarian gives 20 + 5 deg.
    np.testing.assert_array_equal(match_endmembers(estimated, truth), [1, 0])
    with pytest.raises(ParameterError):
        match_endmembers(estimated[:1], truth)


def test_unmixing_metrics_on_permuted_perturbed_case():
    rng = np.random.default_rng(9)
    p, bands = 3, 8
    truth_e = np.zeros((p, bands))
    est_e = np.zeros((p, bands))
    thetas = np.array([0.05, 0.10, 0.20])
    for k in range(p):
        truth_e[k, 2 * k] = 1.0
        # Rotated by theta_k inside the plane of bands (2k, 2k+1), and rescaled.
        est_e[k, 2 * k] = 3.0 * math.cos(thetas[k])
        est_e[k, 2 * k + 1] = 3.0 * math.sin(thetas[k])
    truth_a = rng.dirichlet(np.ones(p), size=(6, 7)).transpose(2, 0, 1)  # (p, y, x)
    offsets = np.array([0.02, -0.05, 0.1])
    est_a = truth_a + offsets[:, None, None]

    perm = np.array([2, 0, 1])  # est[k] comes from truth[perm[k]]
    out = unmixing_metrics(est_e[perm], truth_e, est_a[perm], truth_a)
    assert out["order"] == np.argsort(perm).tolist()
    np.testing.assert_allclose(out["sad_per_endmember"], thetas, rtol=1e-12)
    assert out["sad_mean"] == pytest.approx(thetas.mean(), rel=1e-12)
    np.testing.assert_allclose(out["rmse_per_endmember"], np.abs(offsets), rtol=1e-9)
    assert out["rmse_mean"] == pytest.approx(np.abs(offsets).mean(), rel=1e-9)
    assert isinstance(out["sad_per_endmember"], list)

    # A NaN abundance pixel is excluded from every RMSE.
    est_nan = est_a[perm].copy()
    est_nan[1, 2, 3] = np.nan
    est_nan[0, 0, 0] = 5.0  # a big error at a pixel that stays valid...
    est_nan[0, 2, 3] = 5.0  # ...and one under the NaN pixel, which must not count
    out_nan = unmixing_metrics(est_e[perm], truth_e, est_nan, truth_a)
    assert all(np.isfinite(out_nan["rmse_per_endmember"]))
    # Estimated map 0 is matched to true endmember 2 (perm[0] == 2).
    err = est_nan[0] - truth_a[2]
    valid = np.ones((6, 7), dtype=bool)
    valid[2, 3] = False
    assert out_nan["rmse_per_endmember"][2] == pytest.approx(
        math.sqrt(np.mean(err[valid] ** 2)), rel=1e-12
    )

    with pytest.raises(DimensionError):
        unmixing_metrics(est_e, truth_e, est_a[:, :5], truth_a)
    with pytest.raises(DimensionError):
        unmixing_metrics(est_e, truth_e, est_a[:2], truth_a)
