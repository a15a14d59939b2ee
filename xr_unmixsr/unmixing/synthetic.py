"""Synthetic linear mixtures with known endmembers and abundances, for tests and benchmarks."""

from __future__ import annotations

import numpy as np


def smooth_spectra(rng: np.random.Generator, n: int, n_bands: int) -> np.ndarray:
    """``n`` smooth, positive, reflectance-like spectra (sums of Gaussian bumps on an offset)."""
    x = np.linspace(0.0, 1.0, n_bands)
    spectra = np.zeros((n, n_bands))
    for i in range(n):
        for _ in range(4):
            width = rng.uniform(0.05, 0.3)
            spectra[i] += rng.uniform(0.2, 1.0) * np.exp(-(((x - rng.uniform()) / width) ** 2))
    return 0.05 + 0.8 * spectra / spectra.max()


def linear_mixtures(
    n_pixels: int,
    n_bands: int,
    n_endmembers: int,
    *,
    noise: float = 0.0,
    concentration: float = 1.0,
    pure_per_endmember: int = 0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels mixed linearly from smooth endmembers with Dirichlet abundances.

    Args:
        n_pixels: number of pixels.
        n_bands: number of bands.
        n_endmembers: number of endmembers.
        noise: standard deviation of the added Gaussian noise.
        concentration: Dirichlet concentration (below 1: abundances near the simplex's corners).
        pure_per_endmember: pixels per endmember made pure, at random rows.
        seed: seed of everything drawn.

    Returns:
        ``(pixels (n_pixels, n_bands), endmembers (n_endmembers, n_bands),
        abundances (n_pixels, n_endmembers))``.
    """
    rng = np.random.default_rng(seed)
    endmembers = smooth_spectra(rng, n_endmembers, n_bands)
    abundances = rng.dirichlet(np.full(n_endmembers, concentration), n_pixels)
    if pure_per_endmember:
        rows = rng.choice(n_pixels, pure_per_endmember * n_endmembers, replace=False)
        abundances[rows] = np.tile(np.eye(n_endmembers), (pure_per_endmember, 1))
    pixels = abundances @ endmembers + rng.normal(0.0, noise, (n_pixels, n_bands))
    return pixels, endmembers, abundances


def smooth_mixture_cube(
    size: int, n_bands: int, n_endmembers: int, *, sigma: float = 2.0, seed: int = 0
) -> np.ndarray:
    """A noise-free (n_bands, size, size) cube mixed from spatially smooth abundance maps.

    The Dirichlet abundances of :func:`linear_mixtures` are smoothed with a Gaussian of ``sigma``
    pixels and renormalised to sum to one, so neighbouring pixels look alike, as in real scenes.
    """
    from scipy import ndimage

    _, endmembers, abundances = linear_mixtures(size * size, n_bands, n_endmembers, seed=seed)
    maps = ndimage.gaussian_filter(
        abundances.T.reshape(n_endmembers, size, size), sigma=(0, sigma, sigma)
    )
    maps /= maps.sum(axis=0, keepdims=True)
    return np.einsum("pyx,pb->byx", maps, endmembers)
