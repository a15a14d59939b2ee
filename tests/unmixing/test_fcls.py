"""Tests of the batched fully constrained least-squares solver."""

from __future__ import annotations

import importlib
import itertools
import warnings

import numpy as np
import pytest
from scipy.optimize import nnls

from xr_unmixsr.errors import InvalidDataError, ParameterError, UnmixSRWarning
from xr_unmixsr.unmixing import fcls, reconstruction_rmse

# The package re-exports the function ``fcls``, which shadows the submodule's attribute name.
fcls_module = importlib.import_module("xr_unmixsr.unmixing.fcls")


def _mixtures(
    seed: int, p: int, n_bands: int, n_pixels: int, noise: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random endmembers, Dirichlet abundances (a third of the pixels with zeros), pixels."""
    rng = np.random.default_rng(seed)
    endm = rng.uniform(0.05, 1.0, (p, n_bands))
    abund = rng.dirichlet(np.full(p, 0.7), n_pixels)
    n_sparse = n_pixels // 3
    drop = rng.random((n_sparse, p)) < 0.4
    drop[np.arange(n_sparse), rng.integers(0, p, n_sparse)] = False  # keep one non-zero
    abund[:n_sparse][drop] = 0.0
    abund /= abund.sum(axis=1, keepdims=True)
    pixels = abund @ endm + rng.normal(0.0, noise, (n_pixels, n_bands))
    return pixels, endm, abund


def _brute_force(y: np.ndarray, endm: np.ndarray) -> np.ndarray:
    """Exact FCLS by enumerating every support set (small p only)."""
    p = endm.shape[0]
    best, best_a = np.inf, None
    for r in range(1, p + 1):
        for support in itertools.combinations(range(p), r):
            s = list(support)
            kkt = np.zeros((r + 1, r + 1))
            kkt[:r, :r] = endm[s] @ endm[s].T
            kkt[:r, r] = kkt[r, :r] = 1.0
            sol = np.linalg.solve(kkt, np.r_[endm[s] @ y, 1.0])
            if sol[:r].min() < 0:
                continue
            a = np.zeros(p)
            a[s] = sol[:r]
            obj = float(np.sum((a @ endm - y) ** 2))
            if obj < best:
                best, best_a = obj, a
    assert best_a is not None
    return best_a


def _assert_feasible(abund: np.ndarray) -> None:
    assert abund.dtype == np.float64
    assert np.all(np.isfinite(abund))
    assert abund.min() >= 0.0
    np.testing.assert_allclose(abund.sum(axis=1), 1.0, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("seed", "p", "n_bands"), [(0, 3, 50), (1, 4, 200), (2, 5, 120), (3, 6, 77), (4, 8, 160)]
)
def test_noise_free_mixtures_are_recovered(seed: int, p: int, n_bands: int) -> None:
    pixels, endm, abund = _mixtures(seed, p, n_bands, 400)
    assert (abund == 0).any()  # the boundary of the simplex is exercised
    est = fcls(pixels, endm)
    assert est.shape == (400, p)
    _assert_feasible(est)
    np.testing.assert_allclose(est, abund, rtol=0, atol=1e-6)
    assert reconstruction_rmse(pixels, endm, est).max() < 1e-9


@pytest.mark.parametrize(("seed", "p", "n_bands"), [(10, 3, 60), (11, 5, 150), (12, 8, 200)])
def test_matches_scipy_nnls_on_augmented_system(seed: int, p: int, n_bands: int) -> None:
    pixels, endm, _ = _mixtures(seed, p, n_bands, 120, noise=0.03)
    est = fcls(pixels, endm)
    _assert_feasible(est)
    # Heinz & Chang augmented system [delta E^T; 1^T] a = [delta y; 1]: the sum-to-one row must
    # dominate, i.e. delta small (1e-3 of the data scale) -- equivalently weight 1e3 on the 1-row.
    delta = 1e-3 / np.abs(endm).max()
    mat = np.vstack([delta * endm.T, np.ones((1, p))])
    ref = np.array([nnls(mat, np.r_[delta * y, 1.0])[0] for y in pixels])
    assert (ref < 1e-12).sum() > 20  # many active non-negativity constraints
    np.testing.assert_allclose(est, ref, rtol=0, atol=1e-4)


def test_kkt_optimality_and_brute_force() -> None:
    pixels, endm, _ = _mixtures(20, 5, 90, 40, noise=0.08)
    est = fcls(pixels, endm)
    _assert_feasible(est)
    assert (est == 0).any(axis=1).sum() > 10
    gram, rhs = endm @ endm.T, pixels @ endm.T
    for y, a, b in zip(pixels, est, rhs, strict=True):
        np.testing.assert_allclose(a, _brute_force(y, endm), rtol=0, atol=1e-8)
        # KKT: gradient g = G a - b; on the support g_i = -mu, elsewhere g_j >= -mu.
        g = gram @ a - b
        on = a > 0
        mu = -g[on].mean()
        scale = np.abs(gram).max()
        np.testing.assert_allclose(g[on], -mu, rtol=0, atol=1e-9 * scale)
        assert np.all(g[~on] + mu >= -1e-9 * scale)


def test_pixel_equal_to_endmember_and_zero_pixel() -> None:
    pixels, endm, _ = _mixtures(30, 4, 60, 10)
    stacked = np.vstack([endm, np.zeros((1, 60)), 3.0 * endm[1], pixels])
    est = fcls(stacked, endm)
    _assert_feasible(est)
    np.testing.assert_allclose(est[:4], np.eye(4), rtol=0, atol=1e-10)
    np.testing.assert_allclose(est[5], np.eye(4)[1], rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", ["duplicate", "collinear", "zero", "rank_deficient"])
def test_degenerate_endmembers_give_finite_optimal_results(kind: str) -> None:
    pixels, endm, _ = _mixtures(40, 4, 50, 200, noise=0.02)
    extra = {
        "duplicate": endm[1],
        "collinear": 2.0 * endm[0],
        "zero": np.zeros(50),
        "rank_deficient": 0.3 * endm[0] + 0.7 * endm[2],
    }[kind]
    degenerate = np.vstack([endm, extra])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = fcls(pixels, degenerate)
    _assert_feasible(est)
    # The optimal value cannot be worse than with the original (feasible subset) endmembers.
    ref = reconstruction_rmse(pixels, endm, fcls(pixels, endm))
    assert np.all(reconstruction_rmse(pixels, degenerate, est) <= ref + 1e-7)


def test_all_zero_endmembers_give_uniform() -> None:
    est = fcls(np.ones((3, 5)), np.zeros((2, 5)))
    np.testing.assert_allclose(est, 0.5)


def test_float32_input() -> None:
    pixels, endm, _ = _mixtures(50, 5, 100, 300, noise=0.02)
    est32 = fcls(pixels.astype(np.float32), endm.astype(np.float32))
    _assert_feasible(est32)
    est64 = fcls(pixels.astype(np.float32).astype(np.float64), endm.astype(np.float32))
    np.testing.assert_allclose(est32, est64, rtol=0, atol=1e-12)
    np.testing.assert_allclose(est32, fcls(pixels, endm), rtol=0, atol=1e-4)


def test_non_finite_pixels_give_nan_rows_only() -> None:
    pixels, endm, _ = _mixtures(60, 3, 40, 6, noise=0.01)
    pixels[2, 5] = np.nan
    pixels[4, 0] = np.inf
    est = fcls(pixels, endm)
    assert np.all(np.isnan(est[[2, 4]]))
    ok = [0, 1, 3, 5]
    np.testing.assert_allclose(est[ok], fcls(pixels[ok], endm), rtol=0, atol=1e-12)


def test_chunking_gives_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    pixels, endm, _ = _mixtures(70, 5, 80, 1500, noise=0.05)
    whole = fcls(pixels, endm)
    monkeypatch.setattr(fcls_module, "_MAX_CHUNK", 300)
    chunked = fcls(pixels, endm)  # chunk = max(256, 300) -> 5 chunks
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-12)


def test_empty_input() -> None:
    assert fcls(np.zeros((0, 7)), np.ones((3, 7))).shape == (0, 3)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ParameterError, match="bands"):
        fcls(np.zeros((4, 10)), np.ones((3, 9)))
    with pytest.raises(ParameterError, match="2-D"):
        fcls(np.zeros(10), np.ones((3, 10)))
    with pytest.raises(InvalidDataError, match="NaN"):
        fcls(np.zeros((4, 10)), np.full((3, 10), np.nan))
    with pytest.raises(ParameterError, match="max_iter"):
        fcls(np.zeros((4, 10)), np.ones((3, 10)), max_iter=0)
    with pytest.raises(ParameterError, match="shape"):
        reconstruction_rmse(np.zeros((4, 10)), np.ones((3, 10)), np.ones((4, 2)))


def test_reconstruction_rmse_matches_definition() -> None:
    rng = np.random.default_rng(80)
    pixels, endm, abund = rng.random((50, 30)), rng.random((4, 30)), rng.random((50, 4))
    expected = np.sqrt(np.mean((pixels - abund @ endm) ** 2, axis=1))
    np.testing.assert_allclose(reconstruction_rmse(pixels, endm, abund), expected, rtol=1e-12)


def test_max_iter_exhausted_warns_and_stays_feasible() -> None:
    pixels, endm, _ = _mixtures(90, 8, 60, 500, noise=0.1)
    with pytest.warns(UnmixSRWarning, match="max_iter"):
        est = fcls(pixels, endm, max_iter=1)
    _assert_feasible(est)
    # More iterations can only lower the objective.
    best = fcls(pixels, endm)
    assert np.all(
        reconstruction_rmse(pixels, endm, best) <= reconstruction_rmse(pixels, endm, est) + 1e-12
    )
