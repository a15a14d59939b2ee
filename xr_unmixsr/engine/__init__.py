"""The tiling engine: seam-free, batched model application on numpy and dask arrays."""

from .tiling import predict_array, upscale_array, upscale_block

__all__ = ["predict_array", "upscale_array", "upscale_block"]
