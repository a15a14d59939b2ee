"""Unmixing of georeferenced hyperspectral DataArrays: the ``unmix`` operation.

Endmembers come from VCA on a deterministic random sample of valid pixels drawn across the whole
scene (or from the caller); abundances are then solved by batched FCLS block by block, lazily on
dask. Bands that hold no valid value in the sample (EnMAP's water-vapour bands, for instance) take
no part; the endmember spectra are NaN there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .. import geometry
from ..errors import BandMismatchError, ParameterError
from ..io import atomic_outputs, output_format, store_dataset, store_rasters
from ..models import SUPPORTED_SCALES
from .fcls import fcls, reconstruction_rmse
from .vca import vca

METHODS = ("vca-fcls", "autoencoder", "smile")


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


#: the share of pixels :func:`typical_endmembers` takes per endmember (chosen on Jasper Ridge and
#: Samson: of all their pixels, 0.01 / 0.02 / 0.05 give mean SAD 0.090 / 0.076 / 0.060 rad on
#: Jasper, 0.086 / 0.070 / 0.061 on Samson, but 0.009 / 0.013 / 0.031 on noise-free Urban,
#: where VCA's are exact).
TYPICAL_FRACTION = 0.02


def typical_endmembers(
    pixels: np.ndarray, endmembers: np.ndarray, fraction: float = TYPICAL_FRACTION
) -> np.ndarray:
    """Replace each endmember by the most typical of the pixels most abundant in it.

    VCA picks the most extreme pixels: on real scenes, where a material's pure pixels vary
    (illumination, moisture, noise), those are its least typical ones. Here the ``fraction`` of
    ``pixels`` (n, bands) with the highest FCLS abundance of endmember ``k`` is taken, and their
    medoid in spectral angle (the pixel with the smallest sum of angles to the others) becomes
    endmember ``k``. The result is still a set of real pixels. On Jasper Ridge this takes VCA's
    mean SAD from 0.132 to 0.076 rad (docs/benchmarks.md); where the extremes are exact (a
    noise-free mixture of pure spectra), it moves the endmembers inwards.
    """
    if not 0.0 < fraction <= 1.0:
        raise ParameterError(f"fraction must be in (0, 1], got {fraction}")
    ab = fcls(pixels, endmembers)
    n = max(1, round(fraction * len(pixels)))
    out = np.empty_like(endmembers)
    for k in range(len(endmembers)):
        top = pixels[np.argsort(-ab[:, k], kind="stable")[:n]]
        unit = top / np.linalg.norm(top, axis=1, keepdims=True)
        angles = np.arccos(np.clip(unit @ unit.T, -1.0, 1.0))
        out[k] = top[np.argmin(angles.sum(axis=1))]
    return out


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
    scale: int | None = None,
    typical: bool = False,
    model: Any = None,
    training: dict[str, Any] | None = None,
    band_dim: str = "band",
    n_samples: int = 20000,
    seed: int = 0,
    tile: int = 256,
    batch_size: int = 8,
    device: str = "auto",
) -> xr.Dataset:
    """Linear unmixing of a hyperspectral cube into endmember spectra and abundance maps.

    Args:
        cube: (band, y, x) or (y, x, band) DataArray, numpy- or dask-backed.
        n_endmembers: number of endmembers; None estimates it (HFC) or takes the count of
            ``endmembers``.
        method: ``"vca-fcls"`` (VCA endmembers, fully constrained least-squares abundances),
            ``"autoencoder"`` (the unmixing autoencoder of UnmixingSR, trained on the scene) or
            ``"smile"`` (SR-guided multitask unmixing network: abundances on a grid ``scale``
            times finer than the scene's).
        endmembers: known endmember spectra, (n_endmembers, bands) array or DataArray with an
            ``endmember`` dimension; skips VCA (``"vca-fcls"`` only).
        scale: how much finer the abundance grid is (2, 3, 4, 8; None or 1: the scene's grid).
            ``"smile"`` needs it and predicts the fine abundances with its network;
            ``"vca-fcls"`` and ``"autoencoder"`` unmix on the scene's grid, then refine their
            abundances onto the finer grid by back-projection
            (:class:`~xr_unmixsr.unmixing.subpixel.AbundanceBackProjection`), and their ``rmse``
            is that of the scene pixel each fine pixel lies in.
        typical: replace each VCA endmember by the most typical of the pixels most abundant
            in it (:func:`typical_endmembers`) instead of VCA's most extreme pixel: better on
            real scenes whose pure pixels vary, worse where VCA's extremes are exact (noise-free
            mixtures, few pure pixels). ``"vca-fcls"``, and the initial endmembers of the
            autoencoder and SMILE.
        model: ``"autoencoder"``/``"smile"``: a trained checkpoint (path, or a trainer's
            ``model``) to apply instead of training on the scene.
        training: ``"autoencoder"``/``"smile"``: keyword arguments for the trainer (see
            :func:`~xr_unmixsr.unmixing.deep.train_unmixing_model`).
        band_dim: name of the spectral dimension.
        n_samples: pixels drawn across the scene for VCA, band screening and estimating
            ``n_endmembers``.
        seed: seed of that draw, of VCA and of the training.
        tile: ``"autoencoder"``/``"smile"``: patch size of the tiled inference.
        batch_size: patches per network call.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...

    Returns:
        Dataset with ``abundances`` (endmember, y, x), non-negative and summing to one, NaN where
        the input is missing; ``endmembers`` (endmember, band) with the input's band coordinates;
        ``rmse`` (y, x), the reconstruction error per pixel; georeferenced like ``cube`` (for
        ``"smile"``, on the grid ``scale`` times finer, with the scaled transform) and lazy
        per block when ``cube`` is dask-backed.
    """
    if method not in METHODS:
        raise ParameterError(f"unknown unmixing method {method!r}: use one of {METHODS}")
    if typical and (endmembers is not None or model is not None):
        raise ParameterError(
            "typical=True refines the endmembers VCA finds: drop it, or drop endmembers=/model="
        )
    if method != "vca-fcls" and endmembers is not None:
        raise ParameterError(
            f"method {method!r} learns its endmembers: drop endmembers= or use method='vca-fcls'"
        )
    if scale not in (None, 1) and scale not in SUPPORTED_SCALES:
        raise ParameterError(
            f"scale={scale} is not supported: the abundance grid can be 2, 3, 4 or 8 times finer (or scale=None)"
        )
    engine = {"tile": tile, "batch_size": batch_size, "device": device}
    lay = geometry.layout(cube, band_dim)
    cube = geometry.as_canonical(cube, lay)
    n_bands = cube.sizes[lay.band_dim]
    data = cube.data if isinstance(cube.data, da.Array) else np.asarray(cube.data)
    sample = sample_pixels(data, n_samples, lay.nodata, seed=seed)
    bands = ~np.isnan(sample).all(axis=0)
    pixels = sample[:, bands]
    pixels = pixels[~np.isnan(pixels).any(axis=1)]
    geometry.require_valid(len(pixels))
    if method != "vca-fcls":
        return _unmix_deep(
            cube,
            data,
            lay,
            method,
            n_endmembers=n_endmembers,
            pixels=pixels,
            scale=scale,
            model=model,
            training={"init": "typical", **(training or {})} if typical else training,
            seed=seed,
            engine=engine,
        )

    names: list[str] | None = None
    if endmembers is not None:
        full, names = _endmember_array(endmembers, n_bands)
        if n_endmembers is not None and n_endmembers != len(full):
            raise ParameterError(
                f"n_endmembers={n_endmembers} but {len(full)} endmembers were given: drop one of the two arguments"
            )
        em = full[:, bands]
    else:
        p = _n_endmembers(n_endmembers, pixels)
        em = robust_vca(pixels, p, seed=seed)
        if typical:
            em = typical_endmembers(pixels, em)
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
    fine = scale or 1
    if fine > 1:
        stacked = _subpixel(stacked, fine, engine)
    ds = _unmixing_dataset(stacked, full, cube, lay, names, scale=fine)
    ds.attrs.update(
        method=method,
        n_endmembers=p,
        seed=seed,
        n_samples=len(pixels),
        scale=fine,
        typical=int(typical),
    )
    return ds


def _subpixel(
    stacked: np.ndarray | da.Array, scale: int, engine: dict[str, Any]
) -> np.ndarray | da.Array:
    """(p + 1, H, W) abundances + RMSE to the grid ``scale`` times finer.

    The abundances are back-projected (:mod:`~xr_unmixsr.unmixing.subpixel`) through the tiling
    engine (in tiles of at least the operator's halo); the RMSE of each scene pixel is repeated
    over the fine pixels it holds.
    """
    from ..engine.tiling import upscale_array
    from .subpixel import backprojection_model

    p = stacked.shape[0] - 1
    model = backprojection_model(scale)
    engine = {**engine, "tile": max(engine["tile"], model.halo)}
    fine = upscale_array(stacked[:p], model, nodata=np.nan, **engine)
    rmse = stacked[p:].repeat(scale, axis=1).repeat(scale, axis=2)
    if isinstance(fine, da.Array):
        return da.concatenate([fine, rmse.rechunk({1: fine.chunks[1], 2: fine.chunks[2]})])
    return np.concatenate([fine, rmse])


def _n_endmembers(n_endmembers: int | None, pixels: np.ndarray) -> int:
    p = estimate_n_endmembers(pixels) if n_endmembers is None else int(n_endmembers)
    if not 2 <= p <= pixels.shape[1]:
        raise ParameterError(
            f"n_endmembers={p} is out of range: it must be between 2 and the number of valid bands ({pixels.shape[1]})"
        )
    return p


def _unmix_deep(
    cube: xr.DataArray,
    data: np.ndarray | da.Array,
    lay: geometry.RasterLayout,
    method: str,
    *,
    n_endmembers: int | None,
    pixels: np.ndarray,
    scale: int | None,
    model: Any,
    training: dict[str, Any] | None,
    seed: int,
    engine: dict[str, Any],
) -> xr.Dataset:
    """``unmix`` with the autoencoder or SMILE, trained on the scene or given as ``model``."""
    from ..engine.tiling import upscale_array
    from ..models import SMILE
    from .deep import abundance_model, endmembers_of, train_unmixing_model

    n_bands = cube.sizes[lay.band_dim]
    smile = method == "smile"
    if model is not None:
        am = abundance_model(model)
        am.check_bands(n_bands)
        is_smile = isinstance(am.network.network, SMILE)
        if is_smile != (method == "smile"):
            raise ParameterError(
                f"model {am.name!r} is {'a SMILE' if is_smile else 'an autoencoder'} checkpoint, not a {method!r} one"
            )
        if smile and scale is not None and scale != am.scale:
            raise ParameterError(
                f"model {am.name!r} unmixes on a grid {am.scale} times finer, not {scale}: drop scale= or give a x{scale} model"
            )
        if n_endmembers is not None and n_endmembers != am.out_channels - 1:
            raise ParameterError(
                f"model {am.name!r} has {am.out_channels - 1} endmembers, not {n_endmembers}: drop n_endmembers="
            )
    else:
        if smile and scale not in SUPPORTED_SCALES:
            raise ParameterError(
                f"method='smile' needs scale= one of {SUPPORTED_SCALES} (the abundance grid is that much finer), got {scale}"
            )
        am = train_unmixing_model(
            cube,
            method,
            _n_endmembers(n_endmembers, pixels),
            scale=(scale or 1) if smile else 1,
            band_dim=lay.band_dim,
            seed=seed,
            device=engine["device"],
            training=training,
        )
    stacked = upscale_array(data, am, nodata=lay.nodata, **engine)
    fine = am.scale
    if not smile and (scale or 1) > 1:
        stacked, fine = _subpixel(stacked, scale, engine), scale
    p = am.out_channels - 1
    ds = _unmixing_dataset(
        stacked, endmembers_of(am), cube, lay, [f"em{i + 1}" for i in range(p)], scale=fine
    )
    ds.attrs.update(method=method, n_endmembers=p, seed=seed, scale=fine, model=am.name)
    return ds


def _unmixing_dataset(
    stacked: np.ndarray | da.Array,
    endmembers: np.ndarray,
    cube: xr.DataArray,
    lay: geometry.RasterLayout,
    names: list[str],
    *,
    scale: int = 1,
) -> xr.Dataset:
    """The ``unmix`` Dataset of (p + 1, H, W) abundances + RMSE and (p, bands) endmembers."""
    p = len(names)
    leading = ("endmember", np.asarray(names, dtype=object))
    abundances = geometry.georeference(
        stacked[:p], cube, lay, scale=scale, leading=leading, name="abundances", nodata=np.nan
    )
    rmse = geometry.georeference(stacked[p], cube, lay, scale=scale, name="rmse", nodata=np.nan)
    em_da = xr.DataArray(
        endmembers.astype(np.float32),
        dims=("endmember", lay.band_dim),
        coords={
            "endmember": np.asarray(names, dtype=object),
            **{k: c for k, c in cube.coords.items() if c.dims == (lay.band_dim,)},
        },
        name="endmembers",
    )
    return xr.Dataset({"abundances": abundances, "endmembers": em_da, "rmse": rmse})


def unmix_outputs(output: str | os.PathLike[str]) -> dict[str, Path]:
    """Paths written by ``unmix``: a Zarr store holds everything; a GeoTIFF gets siblings."""
    out = Path(output)
    if output_format(out) == "zarr":
        return {"dataset": out}
    stem = out.with_suffix("")
    return {
        "abundances": out,
        "rmse": stem.with_name(stem.name + "_rmse.tif"),
        "endmembers": stem.with_name(stem.name + "_endmembers.csv"),
    }


def write_unmixing(
    res: xr.Dataset, output: str | os.PathLike[str], *, overwrite: bool, progress: bool
) -> dict[str, Path]:
    """Write an ``unmix`` result atomically: Zarr (one store) or GeoTIFFs + an endmember CSV."""
    paths = unmix_outputs(output)
    if "dataset" in paths:
        with atomic_outputs([paths["dataset"]], overwrite=overwrite) as (tmp,):
            store_dataset(res, tmp, progress=progress)
        return paths
    with atomic_outputs(list(paths.values()), overwrite=overwrite) as (ab_tmp, rmse_tmp, csv_tmp):
        store_rasters([(res["abundances"], ab_tmp), (res["rmse"], rmse_tmp)], progress=progress)
        res["endmembers"].to_pandas().T.to_csv(csv_tmp, index_label="band")
    return paths
