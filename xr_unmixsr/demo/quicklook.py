"""Quicklook PNGs of cubes, abundance maps and endmember spectra.

Figures are drawn with :class:`matplotlib.figure.Figure` on an Agg canvas, never through
``pyplot``, so no global figure state is created or leaked and no display is needed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..errors import DimensionError

_DPI = 100
#: at most this many pixels are used to compute a percentile stretch (regular subsample)
_STRETCH_SAMPLE = 1_000_000

PathLike = str | os.PathLike


def _new_figure(width_in: float, height_in: float, layout: str = "constrained") -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=_DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: PathLike) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=_DPI)
    return out


def _band_dim(cube: xr.DataArray) -> str:
    """The spectral dimension: ``band``, else ``wavelength``, else the first dimension."""
    for name in ("band", "wavelength"):
        if name in cube.dims:
            return name
    return str(cube.dims[0])


def _wavelengths_nm(da: xr.DataArray, band_dim: str) -> np.ndarray | None:
    """Wavelengths (nm) along ``band_dim`` from a ``wavelength`` coordinate, or None."""
    if "wavelength" not in da.coords or da.coords["wavelength"].dims != (band_dim,):
        return None
    wl = np.asarray(da.coords["wavelength"].values, dtype=np.float64)
    units = str(da.coords["wavelength"].attrs.get("units", "")).lower()
    if units in {
        "um",
        "µm",
        "micrometer",
        "micrometers",
        "micrometre",
        "micrometres",
        "micron",
    } or (not units and np.nanmax(wl) < 30.0):
        wl = wl * 1000.0
    return wl


def _rgb_indices(cube: xr.DataArray, band_dim: str, wavelengths: Sequence[float]) -> list[int]:
    """Positions along ``band_dim`` of the bands nearest to ``wavelengths`` (nm)."""
    n = cube.sizes[band_dim]
    wl = _wavelengths_nm(cube, band_dim)
    if wl is not None and np.isfinite(wl).any():
        filled = np.where(np.isfinite(wl), wl, np.inf)
        return [int(np.argmin(np.abs(filled - w))) for w in wavelengths]
    # no wavelengths: spread the channels evenly, red from the long-wavelength end
    k = len(wavelengths)
    positions = np.linspace(n - 1, 0, k) if k > 1 else np.array([0.0])
    return [int(round(p)) for p in positions]


def _rgb_raw(cube: xr.DataArray, wavelengths: Sequence[float]) -> np.ndarray:
    """(y, x, 3) float64 values of the bands nearest to ``wavelengths``."""
    if cube.ndim != 3:
        raise DimensionError(f"expected a (band, y, x) cube, got dims {cube.dims}")
    band_dim = _band_dim(cube)
    idx = _rgb_indices(cube, band_dim, wavelengths)
    other = [d for d in cube.dims if d != band_dim]
    rgb = cube.isel({band_dim: idx}).transpose(*other, band_dim)
    return np.asarray(rgb.values, dtype=np.float64)


def _percentile_stretch(rgb: np.ndarray, lower: float = 2.0, upper: float = 98.0) -> np.ndarray:
    """(2, channels) low/high percentile per channel, ignoring NaN (degenerate ranges widened)."""
    flat = rgb.reshape(-1, rgb.shape[-1])
    step = max(1, flat.shape[0] // _STRETCH_SAMPLE)
    flat = flat[::step]
    limits = np.zeros((2, flat.shape[1]))
    for c in range(flat.shape[1]):
        valid = flat[:, c][np.isfinite(flat[:, c])]
        if valid.size:
            limits[:, c] = np.percentile(valid, [lower, upper])
    span = limits[1] - limits[0]
    limits[1] = np.where(span > 0, limits[1], limits[0] + 1.0)
    return limits


def _apply_stretch(rgb: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """(y, x, 4) RGBA in [0, 1]; pixels with a NaN channel are transparent."""
    scaled = np.clip((rgb - limits[0]) / (limits[1] - limits[0]), 0.0, 1.0)
    valid = np.all(np.isfinite(rgb), axis=-1)
    rgba = np.empty(rgb.shape[:2] + (4,))
    rgba[..., :3] = np.where(valid[..., None], scaled, 0.0)
    rgba[..., 3] = valid
    return rgba


def _figure_size(height: int, width: int, max_inches: float = 8.0) -> tuple[float, float]:
    scale = max_inches / max(height, width)
    return max(1.0, width * scale), max(1.0, height * scale)


def true_colour_png(
    cube: xr.DataArray,
    path: PathLike,
    *,
    wavelengths: Sequence[float] = (640.0, 550.0, 470.0),
    title: str | None = None,
) -> Path:
    """Save a true-colour (or any three-band) composite of a cube as a PNG.

    The bands nearest to ``wavelengths`` (nm) are chosen through the ``wavelength`` coordinate of
    the spectral dimension (``band``); without one, three band positions spread evenly over the
    cube are used. Each channel is stretched linearly between its 2nd and 98th percentile
    (NaN ignored; NaN pixels are transparent).

    Args:
        cube: (band, y, x) DataArray (numpy- or dask-backed).
        path: output PNG path (parent folders are created).
        wavelengths: red, green, blue wavelengths in nm.
        title: optional figure title.

    Returns:
        The path of the written PNG.
    """
    rgb = _rgb_raw(cube, wavelengths)
    rgba = _apply_stretch(rgb, _percentile_stretch(rgb))
    fig = _new_figure(*_figure_size(*rgb.shape[:2]))
    ax = fig.add_subplot()
    ax.imshow(rgba, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _names(da: xr.DataArray, dim: str, prefix: str) -> list[str]:
    if dim in da.coords:
        return [str(v) for v in da.coords[dim].values]
    return [f"{prefix} {i + 1}" for i in range(da.sizes[dim])]


def abundance_png(abundances: xr.DataArray, path: PathLike, *, max_columns: int = 5) -> Path:
    """Save a grid of abundance maps, one panel per endmember, as a PNG.

    Each panel is titled with the endmember's name; all panels share the colour range 0-1 and one
    colorbar.

    Args:
        abundances: (endmember, y, x) DataArray; the first dimension indexes endmembers.
        path: output PNG path (parent folders are created).
        max_columns: most panels per row.

    Returns:
        The path of the written PNG.
    """
    if abundances.ndim != 3:
        raise DimensionError(f"expected (endmember, y, x) abundances, got dims {abundances.dims}")
    em_dim = str(abundances.dims[0])
    names = _names(abundances, em_dim, "endmember")
    values = np.asarray(abundances.values, dtype=np.float64)
    n = len(names)
    ncols = max(1, min(n, max_columns))
    nrows = math.ceil(n / ncols)
    height, width = values.shape[1:]
    panel = 3.0
    aspect = height / width
    fig = _new_figure(panel * ncols + 1.0, (panel * aspect + 0.5) * nrows, layout="compressed")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    image = None
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        image = ax.imshow(values[i], vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
        ax.set_title(names[i])
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), label="abundance", shrink=0.9)
    return _save(fig, path)


def endmember_png(
    endmembers: xr.DataArray,
    path: PathLike,
    *,
    truth: xr.DataArray | None = None,
) -> Path:
    """Save a plot of endmember spectra against wavelength as a PNG.

    Args:
        endmembers: (endmember, band) DataArray; a ``wavelength`` coordinate on the band dimension
            gives the x axis in nm, otherwise band positions are used.
        path: output PNG path (parent folders are created).
        truth: optional reference spectra, drawn dashed in the same colour as the estimate they
            match (by endmember name when both have the same names, else by position).

    Returns:
        The path of the written PNG.
    """
    if endmembers.ndim != 2:
        raise DimensionError(f"expected (endmember, band) spectra, got dims {endmembers.dims}")
    band_dim = _band_dim(endmembers) if "band" in endmembers.dims else str(endmembers.dims[1])
    em_dim = next(str(d) for d in endmembers.dims if d != band_dim)
    est = endmembers.transpose(em_dim, band_dim)
    names = _names(est, em_dim, "endmember")

    def axis(da: xr.DataArray, dim: str) -> tuple[np.ndarray, str]:
        wl = _wavelengths_nm(da, dim)
        if wl is None:
            return np.arange(1, da.sizes[dim] + 1, dtype=np.float64), "band"
        return wl, "wavelength (nm)"

    x, xlabel = axis(est, band_dim)
    fig = _new_figure(8.0, 4.5)
    ax = fig.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(names))]
    for i, name in enumerate(names):
        ax.plot(x, np.asarray(est.values[i], dtype=np.float64), color=colours[i], label=name)
    if truth is not None:
        t_band = _band_dim(truth) if "band" in truth.dims else str(truth.dims[-1])
        t_em = next(str(d) for d in truth.dims if d != t_band)
        ref = truth.transpose(t_em, t_band)
        ref_names = _names(ref, t_em, "endmember")
        tx, _ = axis(ref, t_band)
        by_name = set(ref_names) == set(names)
        for j, ref_name in enumerate(ref_names):
            i = names.index(ref_name) if by_name else j
            colour = colours[i] if i < len(colours) else f"C{i % 10}"
            label = "truth" if j == 0 else None
            ax.plot(tx, np.asarray(ref.values[j], dtype=np.float64), "--", color=colour,
                    alpha=0.8, label=label)  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylabel("reflectance")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return _save(fig, path)


def comparison_png(
    panels: Mapping[str, xr.DataArray],
    path: PathLike,
    *,
    wavelengths: Sequence[float] = (640.0, 550.0, 470.0),
) -> Path:
    """Save side-by-side true-colour panels (e.g. low-res, bicubic, super-resolved, truth).

    Every panel uses the percentile stretch computed from the first panel, so brightness and
    colour are comparable between panels. Panels may differ in size (they are drawn at the same
    display size, coarse ones with visible pixels).

    Args:
        panels: title -> (band, y, x) DataArray, in display order.
        path: output PNG path (parent folders are created).
        wavelengths: red, green, blue wavelengths in nm.

    Returns:
        The path of the written PNG.
    """
    if not panels:
        raise ValueError("comparison_png needs at least one panel")
    rgbs = {title: _rgb_raw(cube, wavelengths) for title, cube in panels.items()}
    limits = _percentile_stretch(next(iter(rgbs.values())))
    n = len(rgbs)
    first = next(iter(rgbs.values()))
    aspect = first.shape[0] / first.shape[1]
    panel = 4.0
    fig = _new_figure(panel * n, panel * aspect + 0.4, layout="compressed")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (title, rgb) in zip(axes, rgbs.items(), strict=True):
        ax.imshow(_apply_stretch(rgb, limits), interpolation="nearest")
        ax.set_title(f"{title} ({rgb.shape[0]}x{rgb.shape[1]})")
        ax.set_axis_off()
    return _save(fig, path)
