"""Exception hierarchy of xr_unmixsr.

Every error the package raises on bad input derives from :class:`UnmixSRError`, so a caller (the
CLI, the QGIS plugin, a notebook) can catch one type. Each subclass also derives from the built-in
exception that fits it, so code that catches ``ValueError`` or ``OSError`` keeps working. Messages
say what is wrong and what to do about it.
"""

from __future__ import annotations


class UnmixSRError(Exception):
    """Base class of all xr_unmixsr errors."""


class UnmixSRWarning(UserWarning):
    """Base class of all xr_unmixsr warnings."""


class MissingCRSWarning(UnmixSRWarning):
    """The input has no CRS: results keep pixel/array coordinates but are not georeferenced."""


class DimensionError(UnmixSRError, ValueError):
    """The input lacks a spatial (y, x) or spectral (band) dimension, or has extra ones."""


class InvalidDataError(UnmixSRError, ValueError):
    """The input's values cannot be processed: non-numeric dtype, or no valid pixel at all."""


class UnsupportedScaleError(UnmixSRError, ValueError):
    """The requested scale factor is not supported by the chosen model."""


class BandMismatchError(UnmixSRError, ValueError):
    """The input's band count differs from the number of bands the model was trained on."""


class TilingError(UnmixSRError, ValueError):
    """The tiling parameters cannot give a seam-free result (e.g. tile smaller than the halo)."""


class ModelError(UnmixSRError, ValueError):
    """A model name or checkpoint cannot be found or loaded."""


class ParameterError(UnmixSRError, ValueError):
    """An argument is out of its valid range (e.g. n_endmembers < 2)."""


class RasterIOError(UnmixSRError, OSError):
    """A raster cannot be read or written (unreadable file, unsupported format)."""


class OutputExistsError(RasterIOError, FileExistsError):
    """The output path exists and overwriting was not asked for."""
