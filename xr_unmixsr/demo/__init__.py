"""Synthetic, physically grounded demo scene and quicklook images.

Needs the ``demo`` extra (``prosail`` for the spectra, ``matplotlib`` for the images).
"""

from __future__ import annotations

from .quicklook import abundance_png, comparison_png, endmember_png, true_colour_png
from .scene import (
    ENDMEMBER_NAMES,
    demo_endmembers,
    demo_wavelengths,
    make_demo_scene,
    resample_gaussian_srf,
    water_reflectance,
)

__all__ = [
    "ENDMEMBER_NAMES",
    "abundance_png",
    "comparison_png",
    "demo_endmembers",
    "demo_wavelengths",
    "endmember_png",
    "make_demo_scene",
    "resample_gaussian_srf",
    "true_colour_png",
    "water_reflectance",
]
