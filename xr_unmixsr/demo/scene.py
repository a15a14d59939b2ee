"""A synthetic, physically grounded, georeferenced hyperspectral demo scene.

The scene is built the way linear spectral unmixing assumes the world works: a few pure materials
(endmembers) with known reflectance spectra, spatially varying fractions (abundances) that are
non-negative and sum to one in every pixel, and a cube that is their linear mixture plus sensor
noise. Because the truth is known exactly, unmixing and super-resolution results can be scored.

Endmember spectra come from physical models rather than hand-drawn curves:

* ``vegetation_healthy`` and ``vegetation_stressed``: PROSAIL (PROSPECT-D leaf model + 4SAIL canopy
  model, via the ``prosail`` package), a dense green canopy and a sparse, chlorophyll-poor canopy
  with senescent (brown) pigment over dry soil;
* ``soil_dry`` and ``soil_wet``: the two soil reflectance spectra shipped with ``prosail`` (a dry
  and a wet soil);
* ``water``: a turbid inland water body from a semi-analytical bio-optical model (see
  :func:`water_reflectance`), whose absorption is dominated by pure water, so it falls to ~0 in the
  NIR and SWIR.

All spectra are computed on a 1 nm grid (400-2500 nm) and resampled to the sensor bands with
Gaussian spectral response functions (:func:`resample_gaussian_srf`).
"""

from __future__ import annotations

import functools

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from scipy.ndimage import gaussian_filter

from ..errors import ParameterError

#: Endmember names, in the order of the ``endmember`` dimension.
ENDMEMBER_NAMES: tuple[str, ...] = (
    "vegetation_healthy",
    "vegetation_stressed",
    "soil_dry",
    "soil_wet",
    "water",
)

#: One-line description of each endmember (stored in the ``endmembers`` variable's attributes).
ENDMEMBER_DESCRIPTIONS: dict[str, str] = {
    "vegetation_healthy": "PROSAIL dense green canopy (LAI 4.5, Cab 55 ug/cm2)",
    "vegetation_stressed": "PROSAIL sparse senescent canopy (LAI 1.5, Cab 12 ug/cm2, Cbrown 0.8)",
    "soil_dry": "prosail dry soil spectrum",
    "soil_wet": "prosail wet soil spectrum",
    "water": "bio-optical turbid inland water (pure water + CDOM + phytoplankton + particles)",
}

WAVELENGTH_MIN_NM = 420.0
WAVELENGTH_MAX_NM = 2450.0

# the 1 nm grid on which prosail defines all its spectra
_SRC_WAVELENGTHS = np.arange(400.0, 2501.0, 1.0)
_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def resample_gaussian_srf(
    wavelengths: np.ndarray,
    spectra: np.ndarray,
    centres: np.ndarray,
    fwhm: np.ndarray | float,
) -> np.ndarray:
    """Resample finely sampled spectra to sensor bands with Gaussian spectral response functions.

    Each band's value is the response-weighted mean of the input samples, with a Gaussian response
    of the band's FWHM centred on the band centre. Weights are normalised over the samples that
    exist, so bands whose response is truncated at the ends of the input grid stay unbiased.

    Args:
        wavelengths: (n_src,) wavelengths of the input samples (same unit as ``centres``).
        spectra: (..., n_src) spectra; the last axis is spectral.
        centres: (n_bands,) band centre wavelengths.
        fwhm: (n_bands,) or scalar full width at half maximum of each band's response.

    Returns:
        (..., n_bands) resampled spectra, float64.
    """
    wl = np.asarray(wavelengths, dtype=np.float64)
    c = np.asarray(centres, dtype=np.float64)
    sigma = np.broadcast_to(np.asarray(fwhm, dtype=np.float64), c.shape) * _FWHM_TO_SIGMA
    if np.any(sigma <= 0):
        raise ParameterError("fwhm must be positive")
    z = (wl[None, :] - c[:, None]) / sigma[:, None]
    weights = np.exp(-0.5 * z * z)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.asarray(spectra, dtype=np.float64) @ weights.T


def water_reflectance(
    wavelengths: np.ndarray,
    pure_water_absorption: np.ndarray,
    chlorophyll_absorption_shape: np.ndarray,
    *,
    chl: float = 5.0,
    a_cdom_440: float = 0.3,
    bbp_555: float = 0.02,
) -> np.ndarray:
    """Reflectance factor of an optically deep, turbid inland water body.

    A standard semi-analytical model (Gordon et al. 1988; Lee et al. 2002): the sub-surface
    remote-sensing reflectance is ``r_rs = g0 u + g1 u**2`` with ``u = b_b / (a + b_b)``; it is
    carried across the air-water interface with ``R_rs = 0.52 r_rs / (1 - 1.7 r_rs)`` and returned
    as a reflectance factor ``pi * R_rs`` (glint-free, atmospherically corrected). Inherent optical
    properties, all in 1/m:

    * absorption ``a = a_w + a_cdom + a_ph``: ``a_w`` is pure water (PROSPECT's specific water
      absorption, given in 1/cm); CDOM decays exponentially, ``a_cdom_440 exp(-0.017 (l - 440))``;
      phytoplankton uses the chlorophyll absorption shape scaled to 0.03 m2/mg at 440 nm;
    * backscattering ``b_b = b_bw + b_bp``: pure water ``0.0012 (l/500)**-4.32`` and particles
      ``bbp_555 (555/l)``.

    Because pure-water absorption climbs from ~0.01 1/m in the blue to >2 1/m at 750 nm and
    >100 1/m in the SWIR, the result peaks at a few percent in the green and falls to ~0 beyond
    the red edge, as real water does.

    Args:
        wavelengths: (n,) wavelengths in nm.
        pure_water_absorption: (n,) pure water absorption coefficient in 1/cm.
        chlorophyll_absorption_shape: (n,) chlorophyll absorption spectrum (any unit; only its
            shape is used, scaled to its value at 440 nm).
        chl: chlorophyll-a concentration in mg/m3.
        a_cdom_440: CDOM absorption at 440 nm in 1/m.
        bbp_555: particulate backscattering at 555 nm in 1/m.

    Returns:
        (n,) reflectance factor in [0, 1].
    """
    wl = np.asarray(wavelengths, dtype=np.float64)
    a_w = 100.0 * np.asarray(pure_water_absorption, dtype=np.float64)
    shape = np.asarray(chlorophyll_absorption_shape, dtype=np.float64)
    a_ph = 0.03 * chl * shape / np.interp(440.0, wl, shape)
    a_cdom = a_cdom_440 * np.exp(-0.017 * (wl - 440.0))
    b_b = 0.0012 * (wl / 500.0) ** -4.32 + bbp_555 * (555.0 / wl)
    u = b_b / (a_w + a_cdom + a_ph + b_b)
    r_rs_sub = 0.089 * u + 0.125 * u * u
    r_rs = 0.52 * r_rs_sub / (1.0 - 1.7 * r_rs_sub)
    return np.clip(np.pi * r_rs, 0.0, 1.0)


@functools.lru_cache(maxsize=1)
def _library_spectra() -> np.ndarray:
    """The five endmember spectra on prosail's 1 nm grid, (5, 2101), computed once."""
    try:
        import prosail
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the demo scene needs the 'prosail' package: pip install 'xr_unmixsr[demo]'"
        ) from exc

    lib = prosail.spectral_lib
    soil_dry = np.asarray(lib.soil.rsoil1, dtype=np.float64)
    soil_wet = np.asarray(lib.soil.rsoil2, dtype=np.float64)
    geometry = {"hspot": 0.01, "tts": 30.0, "tto": 0.0, "psi": 0.0}
    # dense, green, well-watered canopy over moist soil
    healthy = prosail.run_prosail(
        n=1.5, cab=55.0, car=12.0, cbrown=0.0, cw=0.015, cm=0.005, lai=4.5, lidfa=57.0,
        prospect_version="D", rsoil=1.0, psoil=0.5, factor="SDR", **geometry,
    )  # fmt: skip
    # sparse canopy of chlorophyll-poor, partly senescent, drier leaves over dry soil
    stressed = prosail.run_prosail(
        n=1.8, cab=12.0, car=6.0, cbrown=0.8, cw=0.006, cm=0.008, lai=1.5, lidfa=57.0,
        prospect_version="D", rsoil=1.0, psoil=1.0, factor="SDR", **geometry,
    )  # fmt: skip
    water = water_reflectance(_SRC_WAVELENGTHS, lib.prospectd.kw, lib.prospectd.kab)
    spectra = np.stack([healthy, stressed, soil_dry, soil_wet, water]).astype(np.float64)
    spectra = np.clip(spectra, 0.0, 1.0)
    spectra.setflags(write=False)
    return spectra


def demo_wavelengths(n_bands: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Band centres and FWHM (nm) of the demo sensor: ``n_bands`` evenly over 420-2450 nm.

    The FWHM equals the band spacing (as for imaging spectrometers such as EnMAP), but is never
    below 1 nm, the resolution of the source spectra.

    Args:
        n_bands: number of bands (>= 2).

    Returns:
        (centres, fwhm), two float64 arrays of length ``n_bands``.
    """
    if n_bands < 2:
        raise ParameterError(f"n_bands must be >= 2, got {n_bands}")
    centres = np.linspace(WAVELENGTH_MIN_NM, WAVELENGTH_MAX_NM, n_bands)
    spacing = (WAVELENGTH_MAX_NM - WAVELENGTH_MIN_NM) / (n_bands - 1)
    return centres, np.full(n_bands, max(spacing, 1.0))


def demo_endmembers(n_bands: int = 128) -> xr.DataArray:
    """The demo scene's true endmember spectra at the demo sensor's bands.

    Args:
        n_bands: number of bands.

    Returns:
        (endmember, band) float32 reflectance in [0, 1] with ``wavelength`` and ``fwhm`` coords.
    """
    centres, fwhm = demo_wavelengths(n_bands)
    values = resample_gaussian_srf(_SRC_WAVELENGTHS, _library_spectra(), centres, fwhm)
    values = np.clip(values, 0.0, 1.0).astype(np.float32)
    return xr.DataArray(
        values,
        dims=("endmember", "band"),
        coords={"endmember": list(ENDMEMBER_NAMES), **_band_coords(centres, fwhm)},
        name="endmembers",
        attrs={
            "long_name": "endmember reflectance",
            "units": "1",
            "description": "; ".join(f"{k}: {v}" for k, v in ENDMEMBER_DESCRIPTIONS.items()),
        },
    )


def _band_coords(centres: np.ndarray, fwhm: np.ndarray) -> dict[str, xr.Variable]:
    n = len(centres)
    return {
        "band": xr.Variable("band", np.arange(1, n + 1, dtype=np.int64)),
        "wavelength": xr.Variable(
            "band", centres, {"units": "nm", "long_name": "band centre wavelength"}
        ),
        "fwhm": xr.Variable("band", fwhm, {"units": "nm", "long_name": "full width half maximum"}),
    }


def _unit_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """A smooth, periodic Gaussian random field with zero mean and unit variance."""
    field = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    field -= field.mean()
    std = field.std()
    return field / std if std > 0 else field


def _paint(abundances: np.ndarray, coverage: np.ndarray, index: int, purity: float) -> np.ndarray:
    """Overlay a feature of endmember ``index`` covering ``coverage`` (0-1) of each pixel.

    Inside the feature a fraction ``purity`` of the pixel becomes the feature's material and the
    rest keeps the background mixture; this keeps abundances non-negative and summing to one.
    """
    weight = coverage * purity
    out = abundances * (1.0 - weight)[None]
    out[index] += weight
    return out


def _line_coverage(distance: np.ndarray, half_width: float) -> np.ndarray:
    """Anti-aliased pixel coverage of a band of ``half_width`` pixels around a centre line."""
    return np.clip(half_width - distance + 0.5, 0.0, 1.0)


def _abundance_maps(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(5, height, width) float64 abundances: smooth regions, mixed borders and sharp features."""
    k = len(ENDMEMBER_NAMES)
    size = 0.5 * (height + width)
    sigma_large = max(2.0, 0.07 * size)
    sigma_small = max(1.0, sigma_large / 4.0)
    # landscape: large smooth patches with a finer texture on top; the softmax temperature makes
    # most of the scene nearly pure and keeps mixtures to the borders between patches
    bias = np.array([0.3, 0.1, 0.0, -0.3, -1.0])  # water is rare outside the river
    temperature = 0.2
    logits = np.empty((k, height, width))
    for i in range(k):
        field = _unit_field(rng, (height, width), sigma_large)
        field += 0.3 * _unit_field(rng, (height, width), sigma_small)
        logits[i] = (field + bias[i]) / temperature
    logits -= logits.max(axis=0, keepdims=True)
    abundances = np.exp(logits)
    abundances /= abundances.sum(axis=0, keepdims=True)

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    yy += 0.5  # pixel centres, in pixel units
    xx += 0.5

    # two sharp-edged, rotated rectangular fields: a green crop and a bare (ploughed) field
    for index, purity in ((0, 0.97), (2, 0.95)):
        cy = rng.uniform(0.2, 0.8) * height
        cx = rng.uniform(0.2, 0.8) * width
        half_h = rng.uniform(0.08, 0.14) * height
        half_w = rng.uniform(0.06, 0.12) * width
        angle = np.deg2rad(rng.uniform(-25.0, 25.0))
        cos, sin = np.cos(angle), np.sin(angle)
        u = np.abs(cos * (xx - cx) + sin * (yy - cy)) - half_w
        v = np.abs(-sin * (xx - cx) + cos * (yy - cy)) - half_h
        signed_distance = np.hypot(np.maximum(u, 0.0), np.maximum(v, 0.0)) + np.minimum(
            np.maximum(u, v), 0.0
        )
        abundances = _paint(abundances, np.clip(0.5 - signed_distance, 0.0, 1.0), index, purity)

    # a meandering river, north to south, with wet-soil banks
    x0 = rng.uniform(0.3, 0.7) * width
    amplitude = rng.uniform(0.05, 0.12) * width
    wavelength = rng.uniform(0.6, 1.2) * height
    phase = rng.uniform(0.0, 2.0 * np.pi)
    omega = 2.0 * np.pi / wavelength
    centre = x0 + amplitude * np.sin(omega * yy + phase)
    slope = amplitude * omega * np.cos(omega * yy + phase)
    distance = np.abs(xx - centre) / np.sqrt(1.0 + slope * slope)
    half_width = max(1.0, 0.012 * width)
    abundances = _paint(abundances, _line_coverage(distance, 2.2 * half_width), 3, 0.7)
    abundances = _paint(abundances, _line_coverage(distance, half_width), 4, 0.97)

    # a straight unpaved track (dry soil) crossing the scene, bridging the river
    angle = rng.uniform(0.0, np.pi)
    py, px = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    distance = np.abs(-np.sin(angle) * (xx - px) + np.cos(angle) * (yy - py))
    abundances = _paint(abundances, _line_coverage(distance, max(0.5, 0.004 * width)), 2, 0.9)

    # a lake: a nearly pure water disc, wide enough to keep pure pixels after x4 degradation (the
    # river alone becomes mixed pixels at low resolution, and unmixing needs pure pixels)
    cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
    distance = np.hypot(yy - cy, xx - cx) - max(2.0, 0.06 * size)
    abundances = _paint(abundances, np.clip(0.5 - distance, 0.0, 1.0), 4, 1.0)

    abundances = np.clip(abundances, 0.0, None)
    return abundances / abundances.sum(axis=0, keepdims=True)


def make_demo_scene(
    height: int = 256,
    width: int = 256,
    n_bands: int = 128,
    *,
    seed: int = 0,
    crs: str = "EPSG:32633",
    origin: tuple[float, float] = (366000.0, 5810000.0),
    pixel_size: float = 10.0,
    snr_db: float | None = 40.0,
) -> xr.Dataset:
    """Make a synthetic, georeferenced hyperspectral scene with known endmembers and abundances.

    Five physically modelled endmembers (see the module docstring and :data:`ENDMEMBER_NAMES`) are
    mixed linearly with spatially structured abundances: large, nearly pure patches from smooth
    random fields passed through a low-temperature softmax, mixed borders between them, and
    sharp-edged features for super-resolution to recover (two rotated rectangular fields, a
    meandering river with wet banks, a straight track). Edges are anti-aliased by exact pixel
    coverage, so pixels on a boundary are true linear mixtures.

    The reflectance cube is ``sum_k abundance_k * endmember_k`` plus zero-mean Gaussian noise
    whose standard deviation in each band is the band's RMS signal divided by
    ``10 ** (snr_db / 20)``. The noise is not clipped, so the darkest bands (water in the SWIR)
    may hold tiny negative values, as atmospherically corrected data do.

    Args:
        height: number of rows.
        width: number of columns.
        n_bands: number of spectral bands, evenly spread over 420-2450 nm.
        seed: seed of the random generator; the scene is a deterministic function of the
            arguments.
        crs: coordinate reference system (anything rioxarray's ``write_crs`` accepts).
        origin: (x, y) map coordinates of the top-left corner of the top-left pixel.
        pixel_size: pixel size in CRS units (square pixels, north-up).
        snr_db: signal-to-noise ratio in dB; None for a noise-free cube.

    Returns:
        Dataset with ``reflectance`` (band, y, x), ``abundances`` (endmember, y, x) and
        ``endmembers`` (endmember, band), all float32. Coordinates: ``band`` (1..n_bands) with
        ``wavelength`` and ``fwhm`` (nm) on it, ``endmember`` (names), ``x``/``y`` pixel centres;
        CRS and transform are written with rioxarray, so ``ds.rio.transform()`` is
        ``Affine(pixel_size, 0, origin[0], 0, -pixel_size, origin[1])``.

    Raises:
        ParameterError: for a non-positive size, fewer than 2 bands or a non-positive pixel size.
    """
    if height < 1 or width < 1:
        raise ParameterError(f"height and width must be >= 1, got {height} x {width}")
    if not pixel_size > 0:
        raise ParameterError(f"pixel_size must be > 0, got {pixel_size}")
    rng = np.random.default_rng(seed)
    endmembers = demo_endmembers(n_bands)
    abundances = _abundance_maps(rng, height, width).astype(np.float32)

    em = endmembers.values  # (k, b) float32
    cube = (em.T @ abundances.reshape(len(ENDMEMBER_NAMES), -1)).reshape(n_bands, height, width)
    if snr_db is not None:
        rms = np.sqrt(np.mean(np.square(cube, dtype=np.float64), axis=(1, 2)))
        sigma = (rms / 10.0 ** (snr_db / 20.0)).astype(np.float32)
        cube += rng.standard_normal(cube.shape, dtype=np.float32) * sigma[:, None, None]

    x0, y0 = float(origin[0]), float(origin[1])
    res = float(pixel_size)
    x = x0 + (np.arange(width) + 0.5) * res
    y = y0 - (np.arange(height) + 0.5) * res
    band_coords = {
        name: endmembers.coords[name].variable for name in ("band", "wavelength", "fwhm")
    }
    ds = xr.Dataset(
        {
            "reflectance": (
                ("band", "y", "x"),
                cube,
                {"long_name": "surface reflectance", "units": "1"},
            ),
            "abundances": (
                ("endmember", "y", "x"),
                abundances,
                {"long_name": "true endmember abundance", "units": "1"},
            ),
            "endmembers": endmembers.variable,
        },
        coords={
            **band_coords,
            "endmember": list(ENDMEMBER_NAMES),
            "y": ("y", y, {"units": "metre"}),
            "x": ("x", x, {"units": "metre"}),
        },
        attrs={
            "title": "xr_unmixsr synthetic demo scene",
            "source": "PROSAIL (PROSPECT-D + 4SAIL), prosail soil spectra, bio-optical water "
            "model; linear mixing with Gaussian noise",
            "seed": int(seed),
            "snr_db": float("inf") if snr_db is None else float(snr_db),
        },
    )
    # in place: the dataset is ours, and copying the cube at every step would cost time
    ds.rio.set_spatial_dims(x_dim="x", y_dim="y", inplace=True)
    ds.rio.write_crs(crs, inplace=True)
    ds.rio.write_transform(Affine(res, 0.0, x0, 0.0, -res, y0), inplace=True)
    ds.rio.write_coordinate_system(inplace=True)
    return ds
