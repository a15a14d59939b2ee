"""The ``unmixsr`` accessor on DataArray and Dataset: thin wrappers over the core functions."""

from __future__ import annotations

from typing import Any

import xarray as xr

from .errors import DimensionError
from .models import SRModel
from .sr import upscale
from .unmixing.scene import unmix


class _Base:
    def __init__(self, obj: xr.DataArray | xr.Dataset) -> None:
        self._obj = obj

    def _cube(self, band_dim: str, var: str | None = None) -> xr.DataArray:
        return self._obj  # type: ignore[return-value]

    def upscale(
        self,
        scale: int,
        model: Any = "bicubic",
        *,
        band_dim: str = "band",
        var: str | None = None,
        **kwargs: Any,
    ) -> xr.DataArray:
        """Super-resolve by ``scale``; see :func:`xr_unmixsr.upscale` for the arguments."""
        return upscale(self._cube(band_dim, var), scale, model, band_dim=band_dim, **kwargs)

    def fit(
        self, scale: int, *, band_dim: str = "band", var: str | None = None, **kwargs: Any
    ) -> SRModel:
        """Train an SR model on this scene (self-supervised) and return it, ready for ``upscale``.

        See :func:`xr_unmixsr.training.train_sr` for the arguments (``architecture``, ``epochs``,
        ``checkpoint``...); ``model=`` (a shipped name, a checkpoint or an :class:`SRModel`)
        fine-tunes that model on the scene instead of training a new network.
        """
        from .training import train_sr

        sampler_kwargs = {"band_dim": band_dim, **kwargs.pop("sampler_kwargs", {})}
        return train_sr(
            self._cube(band_dim, var), scale, sampler_kwargs=sampler_kwargs, **kwargs
        ).model

    def unmix(
        self,
        n_endmembers: int | None = None,
        method: str = "vca-fcls",
        endmembers: Any = None,
        *,
        band_dim: str = "band",
        var: str | None = None,
        **kwargs: Any,
    ) -> xr.Dataset:
        """Unmix into endmembers and abundances; see :func:`xr_unmixsr.unmix` for the arguments."""
        return unmix(
            self._cube(band_dim, var), n_endmembers, method, endmembers, band_dim=band_dim, **kwargs
        )


@xr.register_dataarray_accessor("unmixsr")
class UnmixSRDataArrayAccessor(_Base):
    """``da.unmixsr``: super-resolution and unmixing of a hyperspectral DataArray."""


@xr.register_dataset_accessor("unmixsr")
class UnmixSRDatasetAccessor(_Base):
    """``ds.unmixsr``: works on the variable named by ``var=``, or the one with a band dimension."""

    def _cube(self, band_dim: str, var: str | None = None) -> xr.DataArray:
        ds: xr.Dataset = self._obj  # type: ignore[assignment]
        if var is not None:
            if var not in ds.data_vars:
                raise DimensionError(
                    f"no variable {var!r} in the Dataset: choose one of {list(ds.data_vars)}"
                )
            return ds[var]
        candidates = [name for name, v in ds.data_vars.items() if band_dim in v.dims]
        if len(candidates) != 1:
            found = "none" if not candidates else ", ".join(map(str, candidates))
            raise DimensionError(
                f"cannot tell which variable to use: variables with a {band_dim!r} dimension: {found}; pass var='<name>' (or band_dim=)"
            )
        return ds[candidates[0]]
