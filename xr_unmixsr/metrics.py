"""Quality metrics for super-resolution and unmixing results.

Super-resolution metrics compare a reference image with an estimate of the same shape. Images are
arrays with one spectral axis (``band_axis``, default 0, i.e. ``(band, y, x)``) and any number of
other axes; :func:`ssim` needs exactly two spatial axes. An :class:`xarray.DataArray` with a
``"band"`` dimension is used by that name (``band_axis`` is then ignored) and its other dimensions
are put in ``(y, x)`` order when it has both; without a ``"band"`` dimension ``band_axis`` is used.

Conventions (those of the project's data README):

* Data are scaled to ``[0, 1]`` before the metrics are computed; ``data_range`` (default 1.0) is
  the peak value used by PSNR and the constants of SSIM.
* :func:`psnr` and :func:`ssim` are computed per band and averaged over bands.
* :func:`sam` is the spectral angle per pixel, in degrees, averaged over pixels.
* :func:`ergas` is ``(100 / scale) * sqrt(mean_b(MSE_b / mean_b**2))``, ``mean_b`` being the mean
  of reference band ``b``.
* Unmixing: :func:`sad` (spectral angle distance, radians) between estimated and true endmembers
  and abundance RMSE, after matching the estimated endmembers to the true ones with the Hungarian
  algorithm on the SAD matrix (:func:`match_endmembers`).

NaN handling: a pixel (one position of the non-spectral axes) that holds a NaN in any band of
either image is excluded from every metric. For SSIM this means that every SSIM window touching
such a pixel is excluded from the average.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from xr_unmixsr.errors import DimensionError, InvalidDataError, ParameterError

__all__ = [
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_TRUNCATE",
    "ergas",
    "match_endmembers",
    "psnr",
    "sad",
    "sad_matrix",
    "sam",
    "sr_metrics",
    "ssim",
    "unmixing_metrics",
]

ArrayLike = Any  # numpy.ndarray, xarray.DataArray, or anything numpy.asarray accepts

#: SSIM stabilising constants of Wang et al. (2004).
SSIM_K1 = 0.01
SSIM_K2 = 0.03
#: Standard deviation of the SSIM Gaussian window, in pixels.
SSIM_SIGMA = 1.5
#: Truncation of the Gaussian (in sigmas): radius ``int(3.5 * 1.5 + 0.5) = 5``, an 11x11 window.
SSIM_TRUNCATE = 3.5
_SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
_SSIM_WIN = 2 * _SSIM_RADIUS + 1


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _is_dataarray(obj: Any) -> bool:
    # xarray is only looked up if already imported: an object cannot be a DataArray otherwise.
    xr = sys.modules.get("xarray")
    return xr is not None and isinstance(obj, xr.DataArray)


def _as_float(values: Any, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise InvalidDataError(
            f"{what} has dtype {arr.dtype}, which is not numeric; pass a numeric array"
        )
    if np.iscomplexobj(arr):
        raise InvalidDataError(f"{what} is complex; pass a real-valued array")
    return arr.astype(np.float64, copy=False)


def _band_first(image: ArrayLike, band_axis: int, what: str) -> np.ndarray:
    """Return ``image`` as float64 with its spectral axis first."""
    if _is_dataarray(image):
        if "band" in image.dims:
            rest = [d for d in image.dims if d != "band"]
            if "y" in rest and "x" in rest:
                rest = [d for d in rest if d not in ("y", "x")] + ["y", "x"]
            return _as_float(image.transpose("band", *rest).values, what)
        image = image.values
    arr = _as_float(image, what)
    if arr.ndim < 2:
        raise DimensionError(
            f"{what} has {arr.ndim} dimension(s); pass an image with a spectral axis and at least "
            "one spatial axis, e.g. (band, y, x)"
        )
    if not isinstance(band_axis, (int, np.integer)) or not -arr.ndim <= band_axis < arr.ndim:
        raise ParameterError(
            f"band_axis={band_axis!r} is not a valid axis of {what} with shape {arr.shape}; "
            f"pass an integer in [{-arr.ndim}, {arr.ndim - 1}]"
        )
    return np.moveaxis(arr, int(band_axis), 0)


def _prepare(
    reference: ArrayLike, estimate: ArrayLike, band_axis: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Band-first float64 copies of both images and the mask of valid (NaN-free) pixels."""
    ref = _band_first(reference, band_axis, "reference")
    est = _band_first(estimate, band_axis, "estimate")
    if ref.shape != est.shape:
        raise DimensionError(
            f"reference has shape {ref.shape} and estimate has shape {est.shape} (band axis "
            "first); pass images with the same bands on the same grid (resample the estimate to "
            "the reference grid, or check band_axis)"
        )
    valid = ~(np.isnan(ref).any(axis=0) | np.isnan(est).any(axis=0))
    if not valid.any():
        raise InvalidDataError(
            "no pixel is free of NaN in both images; pass images with at least one valid pixel"
        )
    return ref, est, valid


def _check_positive(value: float, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ParameterError(f"{name} must be a positive finite number, got {value!r}")
    return value


def _band_mse(ref: np.ndarray, est: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mean squared error of each band over the valid pixels; shape (band,)."""
    diff = (ref - est)[:, valid]
    return np.mean(diff * diff, axis=1)


def _unit_angle(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """Angle (radians) between unit vectors ``a`` and ``b`` along ``axis``.

    Uses ``2 * atan2(|a - b|, |a + b|)``, which, unlike ``arccos`` of the dot product, is
    accurate for nearly parallel vectors (and exactly 0 for identical ones).
    """
    return 2.0 * np.arctan2(np.linalg.norm(a - b, axis=axis), np.linalg.norm(a + b, axis=axis))


# --------------------------------------------------------------------------------------------
# Super-resolution metrics
# --------------------------------------------------------------------------------------------


def _psnr(ref: np.ndarray, est: np.ndarray, valid: np.ndarray, data_range: float) -> float:
    mse = _band_mse(ref, est, valid)
    with np.errstate(divide="ignore"):
        per_band = 10.0 * np.log10(data_range**2 / mse)
    return float(np.mean(per_band))


def psnr(
    reference: ArrayLike,
    estimate: ArrayLike,
    *,
    data_range: float = 1.0,
    band_axis: int = 0,
) -> float:
    """Peak signal-to-noise ratio (dB), computed per band and averaged over bands.

    For band ``b``: ``10 * log10(data_range**2 / MSE_b)``, ``MSE_b`` taken over the valid pixels.
    A band without any error has an infinite PSNR, so the mean is ``inf`` when any band of the
    estimate equals the reference exactly (in particular for identical images).

    Args:
        reference: Reference image, spectral axis ``band_axis`` (default ``(band, y, x)``).
        estimate: Estimated image, same shape as ``reference``.
        data_range: Peak value of the data (1.0 for data scaled to ``[0, 1]``).
        band_axis: Spectral axis of numpy inputs (ignored for a DataArray with a ``band`` dim).

    Returns:
        Mean of the per-band PSNR in dB (``inf`` if any band has zero error).

    Raises:
        DimensionError: The images differ in shape or have fewer than two axes.
        ParameterError: ``data_range`` is not positive or ``band_axis`` is invalid.
        InvalidDataError: No pixel is free of NaN.
    """
    data_range = _check_positive(data_range, "data_range")
    ref, est, valid = _prepare(reference, estimate, band_axis)
    return _psnr(ref, est, valid, data_range)


def _ssim(ref: np.ndarray, est: np.ndarray, valid: np.ndarray, data_range: float) -> float:
    if ref.ndim != 3:
        raise DimensionError(
            f"SSIM needs images with one spectral and two spatial axes, got {ref.ndim} axes "
            f"(shape {ref.shape}, band axis first); pass (band, y, x) images"
        )
    if min(ref.shape[1:]) < _SSIM_WIN:
        raise DimensionError(
            f"SSIM uses an {_SSIM_WIN}x{_SSIM_WIN} window but the images are only "
            f"{ref.shape[1]}x{ref.shape[2]} pixels; pass images of at least "
            f"{_SSIM_WIN}x{_SSIM_WIN} pixels"
        )
    # Centres of windows that lie fully inside the image and touch no invalid pixel.
    usable = ndimage.maximum_filter((~valid).astype(np.uint8), size=_SSIM_WIN, mode="constant")
    usable = usable == 0
    r = _SSIM_RADIUS
    border = np.zeros_like(usable)
    border[r:-r, r:-r] = True
    usable &= border
    if not usable.any():
        raise InvalidDataError(
            f"every {_SSIM_WIN}x{_SSIM_WIN} SSIM window touches a NaN pixel, so SSIM is "
            "undefined; pass images with a larger NaN-free area"
        )
    ref = np.where(valid, ref, 0.0)
    est = np.where(valid, est, 0.0)

    def smooth(img: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(
            img, sigma=(0, SSIM_SIGMA, SSIM_SIGMA), truncate=SSIM_TRUNCATE, mode="reflect"
        )

    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_x = smooth(ref)
    mu_y = smooth(est)
    var_x = smooth(ref * ref) - mu_x * mu_x
    var_y = smooth(est * est) - mu_y * mu_y
    cov_xy = smooth(ref * est) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    per_band = ssim_map[:, usable].mean(axis=1)
    return float(np.mean(per_band))


def ssim(
    reference: ArrayLike,
    estimate: ArrayLike,
    *,
    data_range: float = 1.0,
    band_axis: int = 0,
) -> float:
    """Structural similarity index (Wang et al. 2004), per band, averaged over bands.

    Uses the paper's 11x11 Gaussian window (sigma 1.5, truncated at 3.5 sigma), population
    (co)variances, ``K1 = 0.01``, ``K2 = 0.03``, and averages the SSIM map over windows lying
    fully inside the image. Without NaN this equals, per band,
    ``skimage.metrics.structural_similarity(ref_b, est_b, data_range=data_range,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``. Windows touching a NaN
    pixel are left out of the average.

    Args:
        reference: Reference image ``(band, y, x)`` (spectral axis ``band_axis``).
        estimate: Estimated image, same shape as ``reference``.
        data_range: Peak value of the data (1.0 for data scaled to ``[0, 1]``).
        band_axis: Spectral axis of numpy inputs (ignored for a DataArray with a ``band`` dim).

    Returns:
        Mean of the per-band SSIM (1.0 for identical images).

    Raises:
        DimensionError: The images differ in shape, do not have exactly two spatial axes, or
            are smaller than 11x11 pixels.
        ParameterError: ``data_range`` is not positive or ``band_axis`` is invalid.
        InvalidDataError: No SSIM window is free of NaN.
    """
    data_range = _check_positive(data_range, "data_range")
    ref, est, valid = _prepare(reference, estimate, band_axis)
    return _ssim(ref, est, valid, data_range)


def _sam(ref: np.ndarray, est: np.ndarray, valid: np.ndarray) -> float:
    r = ref[:, valid]
    e = est[:, valid]
    nr = np.linalg.norm(r, axis=0)
    ne = np.linalg.norm(e, axis=0)
    keep = (nr > 0) & (ne > 0)
    if not keep.any():
        raise InvalidDataError(
            "every valid pixel has a zero spectrum in the reference or the estimate, so SAM is "
            "undefined; pass images with non-zero spectra"
        )
    angles = _unit_angle(r[:, keep] / nr[keep], e[:, keep] / ne[keep], axis=0)
    return float(np.degrees(np.mean(angles)))


def sam(reference: ArrayLike, estimate: ArrayLike, *, band_axis: int = 0) -> float:
    """Spectral angle mapper: angle between the two spectra of each pixel, mean over pixels.

    Pixels whose spectrum has zero norm in either image are excluded (their angle is undefined),
    as are NaN pixels.

    Args:
        reference: Reference image, spectral axis ``band_axis`` (default ``(band, y, x)``).
        estimate: Estimated image, same shape as ``reference``.
        band_axis: Spectral axis of numpy inputs (ignored for a DataArray with a ``band`` dim).

    Returns:
        Mean spectral angle in degrees (0 for identical or proportional spectra).

    Raises:
        DimensionError: The images differ in shape or have fewer than two axes.
        ParameterError: ``band_axis`` is invalid.
        InvalidDataError: No pixel is free of NaN with non-zero spectra in both images.
    """
    ref, est, valid = _prepare(reference, estimate, band_axis)
    return _sam(ref, est, valid)


def _ergas(ref: np.ndarray, est: np.ndarray, valid: np.ndarray, scale: float) -> float:
    mse = _band_mse(ref, est, valid)
    means = ref[:, valid].mean(axis=1)
    zero = np.flatnonzero(means == 0)
    if zero.size:
        raise InvalidDataError(
            f"reference band(s) {zero.tolist()} have zero mean over the valid pixels, so ERGAS "
            "is undefined; drop those bands or scale the data so that band means are non-zero"
        )
    return float(100.0 / scale * np.sqrt(np.mean(mse / means**2)))


def ergas(
    reference: ArrayLike,
    estimate: ArrayLike,
    *,
    scale: float,
    band_axis: int = 0,
) -> float:
    """Relative dimensionless global error in synthesis (ERGAS).

    ``(100 / scale) * sqrt(mean_b(MSE_b / mean_b**2))``, with ``MSE_b`` the mean squared error
    of band ``b`` and ``mean_b`` the mean of reference band ``b``, both over the valid pixels.

    Args:
        reference: Reference image, spectral axis ``band_axis`` (default ``(band, y, x)``).
        estimate: Estimated image, same shape as ``reference``.
        scale: Super-resolution scale factor (ratio of low- to high-resolution pixel size).
        band_axis: Spectral axis of numpy inputs (ignored for a DataArray with a ``band`` dim).

    Returns:
        ERGAS (0 for identical images; lower is better).

    Raises:
        DimensionError: The images differ in shape or have fewer than two axes.
        ParameterError: ``scale`` is not positive or ``band_axis`` is invalid.
        InvalidDataError: No pixel is free of NaN, or a reference band has zero mean.
    """
    scale = _check_positive(scale, "scale")
    ref, est, valid = _prepare(reference, estimate, band_axis)
    return _ergas(ref, est, valid, scale)


def sr_metrics(
    reference: ArrayLike,
    estimate: ArrayLike,
    *,
    scale: float,
    data_range: float = 1.0,
    band_axis: int = 0,
) -> dict[str, float]:
    """All super-resolution metrics at once: PSNR, SSIM, SAM and ERGAS.

    Args:
        reference: Reference image ``(band, y, x)`` (spectral axis ``band_axis``).
        estimate: Estimated image, same shape as ``reference``.
        scale: Super-resolution scale factor (used by ERGAS).
        data_range: Peak value of the data (used by PSNR and SSIM).
        band_axis: Spectral axis of numpy inputs (ignored for a DataArray with a ``band`` dim).

    Returns:
        ``{"psnr": dB, "ssim": ..., "sam": degrees, "ergas": ...}``, as by :func:`psnr`,
        :func:`ssim`, :func:`sam` and :func:`ergas`.

    Raises:
        DimensionError, ParameterError, InvalidDataError: As the individual metrics.
    """
    data_range = _check_positive(data_range, "data_range")
    scale = _check_positive(scale, "scale")
    ref, est, valid = _prepare(reference, estimate, band_axis)
    return {
        "psnr": _psnr(ref, est, valid, data_range),
        "ssim": _ssim(ref, est, valid, data_range),
        "sam": _sam(ref, est, valid),
        "ergas": _ergas(ref, est, valid, scale),
    }


# --------------------------------------------------------------------------------------------
# Unmixing metrics
# --------------------------------------------------------------------------------------------


def _endmembers(values: ArrayLike, what: str) -> np.ndarray:
    """``(n_endmembers, bands)`` float64 array; a DataArray's ``band`` dim is put last."""
    if _is_dataarray(values) and "band" in values.dims:
        values = values.transpose(..., "band").values
    arr = _as_float(values, what)
    if arr.ndim != 2:
        raise DimensionError(
            f"{what} has shape {arr.shape}; pass a 2-D array of shape (n_endmembers, bands)"
        )
    if np.isnan(arr).any():
        raise InvalidDataError(f"{what} contains NaN; pass endmember spectra without NaN")
    return arr


def _unit_rows(arr: np.ndarray, what: str) -> np.ndarray:
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    zero = np.flatnonzero(norms.ravel() == 0)
    if zero.size:
        raise InvalidDataError(
            f"{what} has zero-norm spectra at index(es) {zero.tolist()}, whose spectral angle is "
            "undefined; pass non-zero spectra"
        )
    return arr / norms


def sad(e1: ArrayLike, e2: ArrayLike) -> float:
    """Spectral angle distance between two spectra, in radians.

    ``arccos(<e1, e2> / (|e1| |e2|))``, evaluated in a numerically stable way.

    Args:
        e1: First spectrum, shape ``(bands,)``.
        e2: Second spectrum, shape ``(bands,)``.

    Returns:
        Angle in radians, in ``[0, pi]``.

    Raises:
        DimensionError: The inputs are not 1-D spectra of the same length.
        InvalidDataError: A spectrum has zero norm or contains NaN.
    """
    a = _as_float(e1, "e1")
    b = _as_float(e2, "e2")
    if a.ndim != 1 or b.shape != a.shape:
        raise DimensionError(
            f"e1 has shape {a.shape} and e2 has shape {b.shape}; pass two 1-D spectra with the "
            "same number of bands (use sad_matrix for sets of spectra)"
        )
    return float(sad_matrix(a[None, :], b[None, :])[0, 0])


def sad_matrix(estimated: ArrayLike, truth: ArrayLike) -> np.ndarray:
    """Spectral angle distance (radians) between every estimated and every true endmember.

    Args:
        estimated: Estimated endmembers, shape ``(p, bands)``.
        truth: True endmembers, shape ``(q, bands)``.

    Returns:
        Array of shape ``(p, q)``; entry ``[i, j]`` is the SAD between ``estimated[i]`` and
        ``truth[j]``.

    Raises:
        DimensionError: The inputs are not 2-D or differ in their number of bands.
        InvalidDataError: A spectrum has zero norm or contains NaN.
    """
    est = _endmembers(estimated, "estimated endmembers")
    tru = _endmembers(truth, "true endmembers")
    if est.shape[1] != tru.shape[1]:
        raise DimensionError(
            f"estimated endmembers have {est.shape[1]} bands and true endmembers "
            f"{tru.shape[1]}; pass spectra sampled at the same bands"
        )
    u = _unit_rows(est, "estimated endmembers")
    v = _unit_rows(tru, "true endmembers")
    return _unit_angle(u[:, None, :], v[None, :, :], axis=-1)


def match_endmembers(estimated: ArrayLike, truth: ArrayLike) -> np.ndarray:
    """Match estimated endmembers to true ones by the Hungarian algorithm on the SAD matrix.

    The assignment minimises the total SAD (:func:`scipy.optimize.linear_sum_assignment`).

    Args:
        estimated: Estimated endmembers, shape ``(p, bands)``.
        truth: True endmembers, shape ``(q, bands)``, with ``q <= p``.

    Returns:
        Integer array ``order`` of length ``q``: ``estimated[order[j]]`` is the estimate matched
        to ``truth[j]``, so ``estimated[order]`` is in the order of ``truth``.

    Raises:
        DimensionError: The inputs are not 2-D or differ in their number of bands.
        ParameterError: There are fewer estimated than true endmembers.
        InvalidDataError: A spectrum has zero norm or contains NaN.
    """
    cost = sad_matrix(truth, estimated)  # (q, p)
    q, p = cost.shape
    if p < q:
        raise ParameterError(
            f"{p} estimated endmembers cannot be matched to {q} true ones; estimate at least "
            "as many endmembers as there are true ones"
        )
    rows, cols = linear_sum_assignment(cost)
    order = np.empty(q, dtype=np.intp)
    order[rows] = cols
    return order


def _abundances(values: ArrayLike, what: str) -> np.ndarray:
    """Abundance maps as float64 ``(n_endmembers, n_pixels)``."""
    if _is_dataarray(values):
        if "endmember" in values.dims:
            values = values.transpose("endmember", ...)
        values = values.values
    arr = _as_float(values, what)
    if arr.ndim < 1:
        raise DimensionError(f"{what} is a scalar; pass an array of shape (n_endmembers, ...)")
    return arr.reshape(arr.shape[0], -1)


def unmixing_metrics(
    est_endmembers: ArrayLike,
    true_endmembers: ArrayLike,
    est_abundances: ArrayLike,
    true_abundances: ArrayLike,
) -> dict[str, Any]:
    """SAD of the endmembers and RMSE of the abundances, after Hungarian matching.

    The estimated endmembers are matched to the true ones with :func:`match_endmembers`; the
    estimated abundance maps are reordered the same way. For each true endmember ``k``, the
    abundance RMSE is ``sqrt(mean over pixels of (a_est - a_true)**2)``; pixels with a NaN in
    any abundance map of either input are excluded.

    Args:
        est_endmembers: Estimated endmembers, shape ``(p, bands)``.
        true_endmembers: True endmembers, shape ``(q, bands)`` (normally ``q == p``; ``q < p``
            is allowed and leaves the unmatched estimates out).
        est_abundances: Estimated abundances, shape ``(p, ...)`` (endmember axis first; a
            DataArray's ``endmember`` dim is moved first).
        true_abundances: True abundances, shape ``(q, ...)`` with the same pixel axes.

    Returns:
        Dict with ``sad_mean`` (radians), ``sad_per_endmember`` (list, in true-endmember
        order), ``rmse_mean``, ``rmse_per_endmember`` (list, in true-endmember order) and
        ``order`` (list: index of the estimate matched to each true endmember).

    Raises:
        DimensionError: Inconsistent numbers of endmembers, bands or pixels.
        ParameterError: Fewer estimated than true endmembers.
        InvalidDataError: A zero-norm or NaN spectrum, or no NaN-free abundance pixel.
    """
    est_e = _endmembers(est_endmembers, "estimated endmembers")
    tru_e = _endmembers(true_endmembers, "true endmembers")
    est_a = _abundances(est_abundances, "estimated abundances")
    tru_a = _abundances(true_abundances, "true abundances")
    if est_a.shape[0] != est_e.shape[0] or tru_a.shape[0] != tru_e.shape[0]:
        raise DimensionError(
            f"there are {est_e.shape[0]} estimated endmembers but {est_a.shape[0]} estimated "
            f"abundance maps, and {tru_e.shape[0]} true endmembers but {tru_a.shape[0]} true "
            "abundance maps; pass one abundance map per endmember, endmember axis first"
        )
    if est_a.shape[1] != tru_a.shape[1]:
        raise DimensionError(
            f"estimated abundance maps have {est_a.shape[1]} pixels and true ones "
            f"{tru_a.shape[1]}; pass abundance maps on the same grid"
        )
    order = match_endmembers(est_e, tru_e)
    sad_all = sad_matrix(est_e, tru_e)
    sad_per = sad_all[order, np.arange(tru_e.shape[0])]

    matched = est_a[order]
    valid = ~(np.isnan(matched).any(axis=0) | np.isnan(tru_a).any(axis=0))
    if not valid.any():
        raise InvalidDataError(
            "no abundance pixel is free of NaN in both inputs; pass abundances with at least "
            "one valid pixel"
        )
    diff = matched[:, valid] - tru_a[:, valid]
    rmse_per = np.sqrt(np.mean(diff * diff, axis=1))
    return {
        "sad_mean": float(np.mean(sad_per)),
        "sad_per_endmember": [float(v) for v in sad_per],
        "rmse_mean": float(np.mean(rmse_per)),
        "rmse_per_endmember": [float(v) for v in rmse_per],
        "order": [int(i) for i in order],
    }
