"""Tests of Vertex Component Analysis, and of VCA + FCLS on the real Samson scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from scipy.optimize import linear_sum_assignment

from xr_unmixsr.errors import InvalidDataError, ParameterError
from xr_unmixsr.unmixing import fcls, reconstruction_rmse, vca
from xr_unmixsr.unmixing.synthetic import linear_mixtures
from xr_unmixsr.unmixing.vca import _snr_from, _top_eigvecs

# Measured on Samson with seed=0 (numpy 2.4 / OpenBLAS): mean SAD 0.0830 rad, abundance RMSE
# 0.1392, mean reconstruction RMSE 0.0105. Bounds leave margin for BLAS/platform differences.
SAMSON_MAX_MEAN_SAD = 0.15
SAMSON_MAX_ABUNDANCE_RMSE = 0.25
SAMSON_MAX_RECON_RMSE = 0.02


def _sad_matrix(est: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Spectral angles (rad) between every row of ``est`` and every row of ``ref``."""
    e = est / np.linalg.norm(est, axis=1, keepdims=True)
    r = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    return np.arccos(np.clip(e @ r.T, -1.0, 1.0))


def _match(est: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching on SAD: returns (SAD per reference endmember, est index per ref)."""
    sad = _sad_matrix(est, ref)
    rows, cols = linear_sum_assignment(sad)
    order = np.empty(ref.shape[0], dtype=int)
    order[cols] = rows
    return sad[order, np.arange(ref.shape[0])], order


def _scene(
    seed: int, p: int, n_bands: int = 100, n_pixels: int = 2000, noise: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dirichlet mixtures with three pure pixels per endmember at random rows."""
    return linear_mixtures(n_pixels, n_bands, p, noise=noise, pure_per_endmember=3, seed=seed)


def _snr(pixels: np.ndarray, p: int) -> float:
    mean = pixels.mean(axis=0)
    centred = pixels - mean
    return _snr_from(pixels, centred, mean, _top_eigvecs(centred.T @ centred / len(pixels), p), p)


@pytest.mark.parametrize(("seed", "p"), [(0, 3), (1, 4), (2, 6), (3, 8)])
def test_noise_free_picks_pure_pixels(seed: int, p: int) -> None:
    pixels, endm, abund = _scene(seed, p)
    est, idx = vca(pixels, p)
    assert est.shape == (p, pixels.shape[1]) and est.dtype == np.float64
    assert idx.shape == (p,)
    # Every chosen pixel is pure, and each endmember is chosen once.
    chosen = abund[idx]
    assert np.allclose(chosen.max(axis=1), 1.0)
    assert sorted(np.argmax(chosen, axis=1).tolist()) == list(range(p))
    sad, _ = _match(est, endm)
    assert sad.max() < 1e-6


@pytest.mark.parametrize(("seed", "p"), [(4, 3), (5, 5), (6, 8)])
def test_noisy_projective_branch_recovers_endmembers(seed: int, p: int) -> None:
    pixels, endm, _ = _scene(seed, p, noise=0.002)
    assert _snr(pixels, p) > 15 + 10 * np.log10(p)  # high SNR: projective projection
    for s in (0, 1, 2):
        est, _ = vca(pixels, p, seed=s)
        sad, _ = _match(est, endm)
        assert sad.max() < 0.01


def test_subspace_branch() -> None:
    # Forced through snr=0 on clean data: must still find the pure pixels exactly.
    pixels, endm, abund = _scene(7, 5)
    est, idx = vca(pixels, 5, snr=0.0)
    assert sorted(np.argmax(abund[idx], axis=1).tolist()) == list(range(5))
    assert _match(est, endm)[0].max() < 1e-6
    # Genuinely low SNR: the estimate selects the subspace branch; the result is still sensible.
    noisy, endm, _ = _scene(8, 3, noise=0.05)
    assert _snr(noisy, 3) < 15 + 10 * np.log10(3)
    est, _ = vca(noisy, 3)
    assert _match(est, endm)[0].max() < 0.1


def test_deterministic_for_a_seed() -> None:
    pixels, _, _ = _scene(9, 5, noise=0.01)
    est_a, idx_a = vca(pixels, 5, seed=123)
    est_b, idx_b = vca(pixels, 5, seed=123)
    np.testing.assert_array_equal(idx_a, idx_b)
    np.testing.assert_array_equal(est_a, est_b)


def test_float32_and_projection_of_chosen_pixels() -> None:
    pixels, endm, _ = _scene(10, 4, noise=0.002)
    est, idx = vca(pixels.astype(np.float32), 4)
    assert est.dtype == np.float64
    # The returned endmembers are the chosen pixels, denoised by projection on the signal space.
    assert np.abs(est - pixels[idx]).max() < 0.02
    assert _match(est, endm)[0].max() < 0.01


@pytest.mark.parametrize(
    ("n_pixels", "n_bands", "p", "match"),
    [
        (50, 10, 1, "at least 2"),
        (50, 10, 0, "at least 2"),
        (50, 10, -3, "at least 2"),
        (50, 10, 11, "exceeds the number of bands"),
        (3, 10, 4, "at least as many"),
    ],
)
def test_bad_n_endmembers_raise(n_pixels: int, n_bands: int, p: int, match: str) -> None:
    pixels = np.random.default_rng(0).random((n_pixels, n_bands))
    with pytest.raises(ParameterError, match=match):
        vca(pixels, p)


def test_bad_inputs_raise() -> None:
    pixels = np.random.default_rng(0).random((50, 10))
    with pytest.raises(ParameterError, match="integer"):
        vca(pixels, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="2-D"):
        vca(pixels[0], 2)
    pixels[3, 3] = np.nan
    with pytest.raises(InvalidDataError, match="NaN"):
        vca(pixels, 3)


def test_samson_vca_fcls(shared_data: Path) -> None:
    folder = shared_data / "unmixing"
    cube = scipy.io.loadmat(folder / "samson_Y_clean.mat")["Y_clean"]
    endm_true = scipy.io.loadmat(folder / "samson_E.mat")["E"].T  # (3, 156)
    abund_true = scipy.io.loadmat(folder / "samson_A_true.mat")["A_true"].reshape(-1, 3)
    pixels = cube.reshape(-1, cube.shape[-1])
    assert pixels.shape == (95 * 95, 156)

    # The reference abundances are the FCLS solution for the reference endmembers.
    np.testing.assert_allclose(fcls(pixels, endm_true), abund_true, rtol=0, atol=1e-6)

    est, idx = vca(pixels, 3, seed=0)
    sad, order = _match(est, endm_true)
    abund = fcls(pixels, est)
    rmse = float(np.sqrt(np.mean((abund[:, order] - abund_true) ** 2)))
    recon = float(reconstruction_rmse(pixels, est, abund).mean())
    print(
        f"Samson VCA+FCLS: mean SAD {sad.mean():.4f} rad, abundance RMSE {rmse:.4f}, "
        f"reconstruction RMSE {recon:.4f}, pixels {idx.tolist()}"
    )
    assert sad.mean() < SAMSON_MAX_MEAN_SAD
    assert rmse < SAMSON_MAX_ABUNDANCE_RMSE
    assert recon < SAMSON_MAX_RECON_RMSE
