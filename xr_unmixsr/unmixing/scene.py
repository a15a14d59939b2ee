"""Unmixing of georeferenced hyperspectral DataArrays: the ``unmix`` operation.

Endmembers come from VCA on a deterministic random sample of valid pixels drawn across the whole
scene (or from the caller); abundances are then solved by batched FCLS block by block, lazily on
dask. Bands that hold no valid value in the sample (EnMAP's water-vapour bands, for instance) take
no part; the endmember spectra are NaN there.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .. import geometry
from ..errors import BandMismatchError, ParameterError
from .fcls import fcls, reconstruction_rmse
from .vca import vca

METHODS = ("vca-fcls",)


def sample_pixels(
    data: np.ndarray | da.Array, n_samples: int, nodata: float, *, seed: int = 0
) -> np.ndarray:
    """Draw up to ``n_samples`` pixels (n, bands) uniformly over the whole (bands, H, W) scene.

    The draw depends on ``seed`` and the scene's size only, never on its chunking. Values that
    are missing stay NaN in the result (the caller decides which bands and pixels to keep).
    """
    _, h, w = data.shape
    rng = np.random.default_rng(seed)
    n = min(n_samples, h * w)
    flat = np.sort(rng.choice(h * w, size=n, replace=False))
    rows, cols = np.divmod(flat, w)
    if isinstance(data, da.Array):
        picked = np.asarray(data.transpose(1, 2, 0).vindex[rows, cols].compute())
    else:
        picked = np.asarray(data)[:, rows, cols].T
    picked = picked.astype(np.float64)  # (n, bands)
    picked[geometry.mask_invalid(picked, nodata)] = np.nan
    return picked


def estimate_n_endmembers(pixels: np.ndarray, *, false_alarm: float = 1e-3) -> int:
    """Estimate the number of endmembers by the HFC virtual-dimensionality test.

    Harsanyi-Farrand-Chang: a signal source shows as an eigenvalue of the correlation matrix that
    significantly exceeds the matching eigenvalue of the covariance matrix (Neyman-Pearson test at
    ``false_alarm``); differences below 1e-6 of the largest eigenvalue (float32 round-off) never
    count. The result is clipped to [2, bands].
    """
    from scipy.stats import norm

    n, bands = pixels.shape
    corr = pixels.T @ pixels / n
    centred = pixels - pixels.mean(axis=0)
    cov = centred.T @ centred / n
    lam_r = np.sort(np.linalg.eigvalsh(corr))[::-1]
    lam_k = np.sort(np.linalg.eigvalsh(cov))[::-1]
    sigma = np.sqrt(2.0 * (lam_r**2 + lam_k**2) / n)
    # floor: eigenvalue differences below float32 round-off of the largest eigenvalue are no signal
    threshold = np.maximum(norm.isf(false_alarm) * sigma, 1e-6 * lam_r[0])
    count = int(np.sum(lam_r - lam_k > threshold))
    return int(np.clip(count, 2, bands))


def robust_vca(pixels: np.ndarray, n_endmembers: int, *, seed: int = 0) -> np.ndarray:
    """VCA endmembers from whichever of VCA's two projections reconstructs ``pixels`` best.

    VCA picks its projection by an SNR estimate: above ``15 + 10 log10(p)`` dB it divides every
    pixel by its projection on the mean direction, which amplifies the noise of dark materials
    (water) so much that noisy dark pixels get picked again and again. Both projections are run
    and the endmember set whose FCLS reconstruction of the pixels has the lower mean RMSE is kept.
    """
    best, best_err = None, np.inf
    for snr in (np.inf, -np.inf):  # projective, then subspace projection
        em, _ = vca(pixels, n_endmembers, seed=seed, snr=snr)
        err = float(reconstruction_rmse(pixels, em, fcls(pixels, em)).mean())
        if err < best_err:
            best, best_err = em, err
    return best


def _endmember_array(endmembers: Any, n_bands: int) -> tuple[np.ndarray, list[str] | None]:
    names = None
    if isinstance(endmembers, xr.DataArray):
        if "endmember" in endmembers.dims:
            names = (
                [str(v) for v in endmembers["endmember"].values]
                if "endmember" in endmembers.coords
                else None
            )
            endmembers = endmembers.transpose("endmember", ...)
        endmembers = endmembers.values
    arr = np.asarray(endmembers, dtype=np.float64)
    if arr.ndim != 2 or n_bands not in arr.shape:
        raise BandMismatchError(
            f"endmembers of shape {arr.shape} do not match the input's {n_bands} bands: give an array (n_endmembers, {n_bands})"
        )
    if arr.shape[1] != n_bands:
        arr = arr.T
    return arr, names


def _unmix_block(
    block: np.ndarray, *, endmembers: np.ndarray, bands: np.ndarray, nodata: float
) -> np.ndarray:
    """FCLS on one (bands, h, w) block: returns (p + 1, h, w) = abundances and RMSE, NaN where invalid."""
    _, h, w = block.shape
    x = np.asarray(block, dtype=np.float64)[bands].reshape(int(bands.sum()), -1).T
    valid = ~geometry.mask_invalid(x, nodata).any(axis=1)
    p = endmembers.shape[0]
    out = np.full((h * w, p + 1), np.nan, np.float32)
    if valid.any():
        pix = x[valid]
        ab = fcls(pix, endmembers)
        out[valid, :p] = ab
        out[valid, p] = reconstruction_rmse(pix, endmembers, ab)
    return out.T.reshape(p + 1, h, w)


def unmix(
    cube: xr.DataArray,
    n_endmembers: int | None = None,
    method: str = "vca-fcls",
    endmembers: Any = None,
    *,
    band_dim: str = "band",
    n_samples: int = 20000,
    seed: int = 0,
) -> xr.Dataset:
    """Linear unmixing of a hyperspectral cube into endmember spectra and abundance maps.

    Args:
        cube: (band, y, x) or (y, x, band) DataArray, numpy- or dask-backed.
        n_endmembers: number of endmembers; None estimates it (HFC) or takes the count of
            ``endmembers``.
        method: ``"vca-fcls"`` (VCA endmembers, fully constrained least-squares abundances).
        endmembers: known endmember spectra, (n_endmembers, bands) array or DataArray with an
            ``endmember`` dimension; skips VCA.
        band_dim: name of the spectral dimension.
        n_samples: pixels drawn across the scene for VCA and band screening.
        seed: seed of that draw and of VCA.

    Returns:
        Dataset with ``abundances`` (endmember, y, x), non-negative and summing to one, NaN where
        the input is missing; ``endmembers`` (endmember, band) with the input's band coordinates;
        ``rmse`` (y, x), the reconstruction error per pixel; georeferenced like ``cube`` and lazy
        per block when ``cube`` is dask-backed.
    """
    if method not in METHODS:
        raise ParameterError(f"unknown unmixing method {method!r}: use one of {METHODS}")
    lay = geometry.layout(cube, band_dim)
    cube = geometry.as_canonical(cube, lay)
    n_bands = cube.sizes[lay.band_dim]
    data = cube.data if isinstance(cube.data, da.Array) else np.asarray(cube.data)
    sample = sample_pixels(data, n_samples, lay.nodata, seed=seed)
    bands = ~np.isnan(sample).all(axis=0)
    pixels = sample[:, bands]
    pixels = pixels[~np.isnan(pixels).any(axis=1)]
    geometry.require_valid(len(pixels))

    names: list[str] | None = None
    if endmembers is not None:
        full, names = _endmember_array(endmembers, n_bands)
        if n_endmembers is not None and n_endmembers != len(full):
            raise ParameterError(
                f"n_endmembers={n_endmembers} but {len(full)} endmembers were given: drop one of the two arguments"
            )
        em = full[:, bands]
    else:
        p = estimate_n_endmembers(pixels) if n_endmembers is None else int(n_endmembers)
        if not 2 <= p <= int(bands.sum()):
            raise ParameterError(
                f"n_endmembers={p} is out of range: it must be between 2 and the number of valid bands ({int(bands.sum())})"
            )
        em = robust_vca(pixels, p, seed=seed)
        full = np.full((p, n_bands), np.nan)
        full[:, bands] = em
    p = em.shape[0]
    names = names or [f"em{i + 1}" for i in range(p)]

    kwargs = dict(endmembers=em, bands=bands, nodata=lay.nodata)
    if isinstance(data, da.Array):
        data = data.rechunk({0: -1})
        chunks = ((p + 1,), data.chunks[1], data.chunks[2])
        stacked = data.map_blocks(
            _unmix_block,
            chunks=chunks,
            dtype=np.float32,
            meta=np.empty((0, 0, 0), np.float32),
            **kwargs,
        )
    else:
        stacked = _unmix_block(data, **kwargs)
    leading = ("endmember", np.asarray(names, dtype=object))
    abundances = geometry.georeference(
        stacked[:p], cube, lay, leading=leading, name="abundances", nodata=np.nan
    )
    rmse = geometry.georeference(stacked[p], cube, lay, name="rmse", nodata=np.nan)
    em_da = xr.DataArray(
        full.astype(np.float32),
        dims=("endmember", lay.band_dim),
        coords={
            "endmember": np.asarray(names, dtype=object),
            **{k: c for k, c in cube.coords.items() if c.dims == (lay.band_dim,)},
        },
        name="endmembers",
    )
    ds = xr.Dataset({"abundances": abundances, "endmembers": em_da, "rmse": rmse})
    ds.attrs.update(method=method, n_endmembers=p, seed=seed, n_samples=len(pixels))
    return ds
