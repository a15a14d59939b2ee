"""Seeded sampling of training patches from hyperspectral scenes, read window by window.

:class:`PatchSampler` draws square HR windows of ``patch`` pixels from one or more (band, y, x)
DataArrays (numpy-, lazily- or dask-backed) and makes self-supervised (LR, HR) pairs from them:

* **Reading.** Only the sampled windows are read: each batch reads its windows with one
  ``dask.compute`` over ``cube.data[:, y0:y1, x0:x1]`` slices (dask), or ``cube.isel(...)`` (numpy
  or rioxarray's lazy backend). The whole scene is never loaded.
* **Missing data.** A window is rejected (and another drawn) when any *used* band holds a missing
  value (NaN, infinite or the cube's nodata). Bands that are missing everywhere in the scene (EnMAP
  has six such water-absorption bands) would reject every window, so they are found once, from
  ``stat_windows`` random windows read at construction, and excluded: the models still take all
  of the scene's bands (a checkpoint must fit the scene it is applied to), those bands are filled
  with 0 in the patches (the value the tiling engine gives missing inputs after normalisation),
  and the trainers leave them out of every loss through :attr:`PatchSampler.band_mask`.
* **Normalisation.** ``(x - offset) * gain`` with ``offset = 0`` and, by default
  (``normalisation="global"``), one ``gain = 1 / p99`` where ``p99`` is the 99th percentile of the
  valid values of the used bands in the statistics windows. A single gain keeps spectral shapes,
  so spectral angles and the linear mixing model are the same before and after normalisation;
  ``"band"`` gives one gain per band (1 for excluded bands), ``"none"`` gain 1. The values are
  stored as the model's ``offset``/``gain`` so that :meth:`~xr_unmixsr.models.SRModel.normalise`
  applies the same transform at inference.
* **Augmentation.** Each window is flipped left-right with probability 1/2 and rotated by a random
  multiple of 90 degrees (the dihedral group of the square), applied equally to LR and HR.
* **Degradation.** LR = ``bicubic_resize(HR, 1/scale)`` (antialiased bicubic, the project's
  protocol, :func:`xr_unmixsr.sr.degrade`) by default; ``degradation="gaussian"`` blurs with a
  Gaussian PSF of standard deviation ``gaussian_sigma`` HR pixels (default ``0.5 * scale``, i.e. a
  PSF about as wide as an LR pixel: FWHM ~ 1.18 LR pixels) centred on each LR pixel's
  ``scale x scale`` footprint, and keeps one value per footprint (decimation). With ``lr_cubes``
  the LR windows are read from co-registered LR scenes instead (pixel ``(i, j)`` of the LR scene
  covers HR pixels ``[i*s, (i+1)*s) x [j*s, (j+1)*s)``).

The draws depend only on ``seed`` (numpy's PCG64; :attr:`PatchSampler.rng_state` saves it), never on
the chunking of the scenes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr

from .. import geometry
from ..errors import InvalidDataError, ParameterError
from ..models.bicubic import bicubic_resize

__all__ = ["DEGRADATIONS", "NORMALISATIONS", "PatchSampler", "gaussian_degrade"]

DEGRADATIONS = ("bicubic", "gaussian")
NORMALISATIONS = ("global", "band", "none")


def _as_list(cubes: xr.DataArray | Sequence[xr.DataArray]) -> list[xr.DataArray]:
    return [cubes] if isinstance(cubes, xr.DataArray) else list(cubes)


def gaussian_degrade(x: torch.Tensor, scale: int, sigma: float | None = None) -> torch.Tensor:
    """Blur (N, C, H, W) with a Gaussian PSF and decimate by ``scale`` (H, W multiples of it).

    The PSF (standard deviation ``sigma`` HR pixels, default ``0.5 * scale``) is centred on each LR
    pixel's ``scale x scale`` footprint, whose centre lies between HR pixels for even scales; the
    blur and the decimation are one strided separable convolution with reflect padding.
    """
    sigma = 0.5 * scale if sigma is None else float(sigma)
    if sigma <= 0:
        raise ParameterError(f"gaussian_sigma must be > 0, got {sigma}")
    r = max(1, math.ceil(3.0 * sigma))
    taps = torch.arange(scale + 2 * r, dtype=torch.float64) - r - (scale - 1) / 2.0
    k = torch.exp(-0.5 * (taps / sigma) ** 2)
    k = (k / k.sum()).to(x)
    n, c, h, w = x.shape
    y = F.pad(x.reshape(n * c, 1, h, w), (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1), stride=(1, scale))
    y = F.conv2d(y, k.view(1, 1, -1, 1), stride=(scale, 1))
    return y.reshape(n, c, h // scale, w // scale)


class PatchSampler:
    """Seeded (LR, HR) training patches from hyperspectral scenes (see the module docstring).

    Args:
        cubes: one or more (band, y, x) DataArrays (or (y, x, band)) with the same band count.
        scale: SR factor; ``patch`` must be a multiple of it.
        patch: HR patch size in pixels (LR patches are ``patch // scale``).
        lr_cubes: co-registered LR scenes, one per cube (paired training); None: LR is made by
            ``degradation`` from the HR patch.
        degradation: ``"bicubic"`` (default) or ``"gaussian"``.
        gaussian_sigma: PSF standard deviation in HR pixels for ``"gaussian"`` (``0.5 * scale``).
        augment: random flips and 90-degree rotations.
        normalisation: ``"global"`` (one gain, default), ``"band"`` or ``"none"``.
        gain: a given gain (scalar or one per band) instead of the computed one, e.g. that of a
            pretrained model being fine-tuned (``offset`` is 0).
        seed: seed of the draws.
        band_dim: name of the spectral dimension.
        stat_windows: windows read at construction to find the excluded bands and the gain.
        max_tries: windows drawn per wanted patch before giving up on finding a valid one.

    Attributes:
        n_bands: bands of the scenes (what the model takes).
        band_mask: bool (n_bands,): True for the bands used in the losses.
        offset: the normalisation offset (0.0).
        gain: the normalisation gain (float, or float32 array (n_bands,) with ``"band"``).

    Raises:
        ParameterError: bad ``patch``/``scale``/option, or scenes of different band counts or
            smaller than a patch.
        InvalidDataError: no valid band, or no valid window found.
    """

    def __init__(
        self,
        cubes: xr.DataArray | Sequence[xr.DataArray],
        scale: int,
        patch: int = 64,
        *,
        lr_cubes: xr.DataArray | Sequence[xr.DataArray] | None = None,
        degradation: str = "bicubic",
        gaussian_sigma: float | None = None,
        augment: bool = True,
        normalisation: str = "global",
        gain: float | np.ndarray | None = None,
        seed: int = 0,
        band_dim: str = "band",
        stat_windows: int = 16,
        max_tries: int = 100,
    ) -> None:
        scale, patch = int(scale), int(patch)
        if scale < 1 or patch < scale or patch % scale:
            raise ParameterError(
                f"patch ({patch}) must be a positive multiple of scale ({scale}), e.g. patch={4 * scale * 4}"
            )
        if degradation not in DEGRADATIONS:
            raise ParameterError(f"degradation must be one of {DEGRADATIONS}, got {degradation!r}")
        if normalisation not in NORMALISATIONS:
            raise ParameterError(
                f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}"
            )
        self.scale, self.patch = scale, patch
        self.degradation, self.gaussian_sigma = degradation, gaussian_sigma
        self.augment, self.max_tries = augment, int(max_tries)
        self.seed = int(seed)
        self.cubes, self.nodata = self._canonical(_as_list(cubes), band_dim)
        if not self.cubes:
            raise ParameterError("give at least one cube to sample patches from")
        self.lr_cubes: list[xr.DataArray] | None = None
        self.lr_nodata: list[float] = []
        if lr_cubes is not None:
            self.lr_cubes, self.lr_nodata = self._canonical(_as_list(lr_cubes), band_dim)
            if len(self.lr_cubes) != len(self.cubes):
                raise ParameterError(
                    f"{len(self.lr_cubes)} LR cubes for {len(self.cubes)} HR cubes: give one LR scene per HR scene"
                )
        self.n_bands = int(self.cubes[0].shape[0])
        for i, c in enumerate(self.cubes + (self.lr_cubes or [])):
            if c.shape[0] != self.n_bands:
                raise ParameterError(
                    f"cube {i} has {c.shape[0]} bands, cube 0 has {self.n_bands}: all scenes must have the same bands"
                )
        self._sizes = []
        for i, c in enumerate(self.cubes):
            h, w = c.shape[1:]
            if self.lr_cubes is not None:
                lh, lw = self.lr_cubes[i].shape[1:]
                h, w = min(h, lh * scale), min(w, lw * scale)
            if h < patch or w < patch:
                raise ParameterError(
                    f"cube {i} ({h} x {w} usable pixels) is smaller than a patch ({patch}): use a smaller patch"
                )
            self._sizes.append((h, w))
        self._weights = np.array([h * w for h, w in self._sizes], np.float64)
        self._weights /= self._weights.sum()
        self.band_mask = np.ones(self.n_bands, bool)
        self.offset = 0.0
        self.gain: float | np.ndarray = 1.0
        self._compute_statistics(int(stat_windows), normalisation, gain)
        self.rng = np.random.default_rng(self.seed)

    @staticmethod
    def _canonical(
        cubes: list[xr.DataArray], band_dim: str
    ) -> tuple[list[xr.DataArray], list[float]]:
        out, nodata = [], []
        for c in cubes:
            lay = geometry.layout(c, band_dim, warn_crs=False)
            out.append(geometry.as_canonical(c, lay))
            nodata.append(lay.nodata)
        return out, nodata

    # -- reading -----------------------------------------------------------------------------

    def _read(self, windows: list[tuple[int, int, int]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Read (hr, invalid) for HR windows (cube, y0, x0), and the LR ones when paired."""
        p, s = self.patch, self.scale
        lazy: list[Any] = []
        for ci, y0, x0 in windows:
            lazy.append(self._window(self.cubes[ci], y0, x0, p))
            if self.lr_cubes is not None:
                lazy.append(self._window(self.lr_cubes[ci], y0 // s, x0 // s, p // s))
        if any(isinstance(a, da.Array) for a in lazy):
            lazy = list(dask.compute(*lazy))
        arrays = [np.asarray(a, dtype=np.float32) for a in lazy]
        out = []
        step = 1 if self.lr_cubes is None else 2
        for k, (ci, _, _) in enumerate(windows):
            hr = arrays[k * step]
            out.append((hr, geometry.mask_invalid(hr, self.nodata[ci])))
            if self.lr_cubes is not None:
                lr = arrays[k * step + 1]
                out.append((lr, geometry.mask_invalid(lr, self.lr_nodata[ci])))
        return out

    @staticmethod
    def _window(cube: xr.DataArray, y0: int, x0: int, size: int) -> Any:
        if cube.chunks is not None:
            return cube.data[:, y0 : y0 + size, x0 : x0 + size]
        return cube[:, y0 : y0 + size, x0 : x0 + size].values

    def _draw_windows(self, rng: np.random.Generator, n: int) -> list[tuple[int, int, int]]:
        s = self.scale
        cis = rng.choice(len(self.cubes), size=n, p=self._weights)
        out = []
        for ci in cis:
            h, w = self._sizes[ci]
            # on the LR grid so that paired LR windows line up with the HR ones
            y0 = int(rng.integers(0, (h - self.patch) // s + 1)) * s
            x0 = int(rng.integers(0, (w - self.patch) // s + 1)) * s
            out.append((int(ci), y0, x0))
        return out

    def _compute_statistics(
        self, n_windows: int, normalisation: str, gain: float | np.ndarray | None
    ) -> None:
        rng = np.random.default_rng([self.seed, 1])
        read = self._read(self._draw_windows(rng, max(1, n_windows)))
        hrs = read[:: 1 if self.lr_cubes is None else 2]
        valid_any = np.zeros(self.n_bands, bool)
        for _, inv in hrs:
            valid_any |= (~inv).any(axis=(1, 2))
        if not valid_any.any():
            raise InvalidDataError(
                "no valid value found in the sampled windows: the scenes hold only nodata/NaN"
            )
        self.band_mask = valid_any
        if gain is not None:
            self.gain = float(gain) if np.ndim(gain) == 0 else np.asarray(gain, np.float32).copy()
            return
        if normalisation == "none":
            return
        values = [np.where(inv, np.nan, arr)[self.band_mask] for arr, inv in hrs]
        stack = np.concatenate([v.reshape(v.shape[0], -1) for v in values], axis=1)
        if normalisation == "global":
            p99 = float(np.nanpercentile(np.abs(stack), 99))
            self.gain = 1.0 / p99 if np.isfinite(p99) and p99 > 0 else 1.0
        else:
            p99 = np.nanpercentile(np.abs(stack), 99, axis=1)
            g = np.ones(self.n_bands, np.float32)
            ok = np.isfinite(p99) & (p99 > 0)
            g[np.flatnonzero(self.band_mask)[ok]] = (1.0 / p99[ok]).astype(np.float32)
            self.gain = g

    # -- sampling ----------------------------------------------------------------------------

    @property
    def rng_state(self) -> dict[str, Any]:
        """The state of the draws (JSON-serialisable), for resuming."""
        return self.rng.bit_generator.state

    @rng_state.setter
    def rng_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state

    def _gain_array(self) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.gain, np.float32), (self.n_bands,))[:, None, None]

    def _prepare(self, arr: np.ndarray, inv: np.ndarray) -> np.ndarray:
        out = (arr - np.float32(self.offset)) * self._gain_array()
        out[inv] = 0.0
        out[~self.band_mask] = 0.0
        return out.astype(np.float32, copy=False)

    def _valid(self, inv: np.ndarray) -> bool:
        return not inv[self.band_mask].any()

    def sample_windows(self, n: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Draw ``n`` valid windows: normalised, filled (hr, lr or None) numpy arrays, unaugmented.

        Raises:
            InvalidDataError: no valid window within ``max_tries`` draws per window.
        """
        found: list[tuple[np.ndarray, np.ndarray | None]] = []
        tries = 0
        while len(found) < n:
            need = n - len(found)
            tries += need
            if tries > self.max_tries * n:
                raise InvalidDataError(
                    f"found only {len(found)} of {n} windows of {self.patch} px free of nodata in {self.max_tries * n} draws: "
                    "use a smaller patch, or crop the scenes to their valid area"
                )
            read = self._read(self._draw_windows(self.rng, need))
            step = 1 if self.lr_cubes is None else 2
            for k in range(need):
                hr, hinv = read[k * step]
                if not self._valid(hinv):
                    continue
                lr = None
                if self.lr_cubes is not None:
                    larr, linv = read[k * step + 1]
                    if not self._valid(linv):
                        continue
                    lr = self._prepare(larr, linv)
                found.append((self._prepare(hr, hinv), lr))
        return found

    def _augment(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        k = int(self.rng.integers(0, 4))
        flip = bool(self.rng.integers(0, 2))
        out = []
        for a in arrays:
            if flip:
                a = a[:, :, ::-1]
            out.append(np.ascontiguousarray(np.rot90(a, k, axes=(1, 2))))
        return out

    def degrade(self, hr: torch.Tensor) -> torch.Tensor:
        """The LR counterpart of a (N, C, H, W) HR batch by the sampler's degradation."""
        if self.scale == 1:
            return hr.clone()
        if self.degradation == "gaussian":
            return gaussian_degrade(hr, self.scale, self.gaussian_sigma)
        return bicubic_resize(hr, 1.0 / self.scale)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch ``(lr, hr)`` of float32 CPU tensors (N, C, p/s, p/s) and (N, C, p, p).

        Both are normalised, with excluded bands and missing values set to 0.
        """
        hrs, lrs = [], []
        for hr, lr in self.sample_windows(batch_size):
            if self.augment:
                aug = self._augment([hr] if lr is None else [hr, lr])
                hr, lr = aug[0], (aug[1] if lr is not None else None)
            hrs.append(hr)
            if lr is not None:
                lrs.append(lr)
        hr_t = torch.from_numpy(np.stack(hrs))
        if lrs:
            lr_t = torch.from_numpy(np.stack(lrs))
        else:
            lr_t = self.degrade(hr_t)
        mask = torch.from_numpy(self.band_mask)
        lr_t[:, ~mask] = 0.0
        return lr_t.contiguous(), hr_t

    def sample_pixels(self, n: int, *, lr: bool = True) -> np.ndarray:
        """About ``n`` normalised pixels (n, n_used_bands) of the used bands, for VCA.

        Read from windows drawn by a generator of their own (seeded by ``seed``), so the training
        draws do not depend on it. ``lr=True`` takes them from LR patches (bicubic degradation).
        """
        saved = self.rng
        self.rng = np.random.default_rng([self.seed, 2])
        try:
            per = (self.patch // self.scale) ** 2 if lr else self.patch**2
            n_windows = max(1, min(64, math.ceil(n / per)))
            lr_t, hr_t = self.sample(n_windows)
            x = lr_t if lr else hr_t
            sub = x[:, torch.from_numpy(self.band_mask)]
            pix = sub.permute(0, 2, 3, 1).reshape(-1, sub.shape[1]).numpy()
            if pix.shape[0] > n:
                idx = np.sort(self.rng.choice(pix.shape[0], n, replace=False))
                pix = pix[idx]
            return pix.astype(np.float64)
        finally:
            self.rng = saved
