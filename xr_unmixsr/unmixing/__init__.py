"""Linear spectral unmixing: endmember extraction (VCA) and abundance estimation (FCLS)."""

from xr_unmixsr.unmixing.fcls import fcls, reconstruction_rmse
from xr_unmixsr.unmixing.vca import vca

__all__ = ["fcls", "reconstruction_rmse", "vca"]
