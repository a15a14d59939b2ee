"""The super-resolution model interface: a torch network plus what the engine needs to know.

A model maps a batch of normalised patches (N, bands, h, w) to (N, bands, h*scale, w*scale). The
engine needs, besides the network:

* ``scale``: the factor this network upsamples by;
* ``halo``: the receptive-field radius in input pixels; each output pixel depends on input pixels at
  most ``halo`` away, so patches cut with that much context reassemble without seams;
* ``n_bands``: the band count it was trained on, or None for band-agnostic models (bicubic);
* ``offset``/``gain``: the input normalisation ``(x - offset) * gain`` (scalars or one value per
  band), undone on the output.

A model may also return channels that are not the input bands (abundance maps, for instance):
``out_channels`` is then their count, the output is taken as it is (no denormalisation), and an
output pixel is missing where any input band the model uses (``band_mask``) is missing there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import BandMismatchError


@dataclass(eq=False)
class SRModel:
    """A super-resolution network with the metadata the tiling engine needs.

    Attributes:
        name: model name (a shipped name, a checkpoint path, or a free label).
        network: torch module mapping (N, C, h, w) to (N, C, h*scale, w*scale).
        scale: upsampling factor of ``network``.
        halo: receptive-field radius of ``network`` in input pixels.
        n_bands: number of bands the network expects, or None if band-agnostic.
        offset: normalisation offset (scalar or one per band).
        gain: normalisation gain (scalar or one per band).
        card: free-form metadata (the model card of a checkpoint).
        out_channels: None when the network returns the input bands (super-resolution); else
            the number of channels it returns (e.g. abundances), which are not denormalised.
        band_mask: bool (n_bands,): the bands the network uses (None: all). With
            ``out_channels``, an output pixel is missing where any of these bands is missing.
    """

    name: str
    network: torch.nn.Module
    scale: int
    halo: int
    n_bands: int | None = None
    offset: float | np.ndarray = 0.0
    gain: float | np.ndarray = 1.0
    card: dict[str, Any] = field(default_factory=dict)
    out_channels: int | None = None
    band_mask: np.ndarray | None = None

    def check_bands(self, n_bands: int) -> None:
        """Raise :class:`BandMismatchError` when ``n_bands`` is not what the model expects."""
        if self.n_bands is not None and n_bands != self.n_bands:
            raise BandMismatchError(
                f"model {self.name!r} was trained on {self.n_bands} bands but the input has "
                f"{n_bands}: select the bands the model expects, or fine-tune the model on this "
                "scene's bands, or use model='bicubic' (band-agnostic)"
            )

    def _norm_params(self, n_bands: int) -> tuple[np.ndarray, np.ndarray]:
        offset = np.broadcast_to(np.asarray(self.offset, np.float32), (n_bands,))
        gain = np.broadcast_to(np.asarray(self.gain, np.float32), (n_bands,))
        return offset[:, None, None], gain[:, None, None]

    @property
    def identity_normalisation(self) -> bool:
        """True when the normalisation leaves values unchanged (offset 0, gain 1)."""
        return not np.any(self.offset) and bool(np.all(np.asarray(self.gain) == 1))

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """Normalise a (bands, h, w) float32 array for the network (a new array)."""
        if self.identity_normalisation:
            return x.copy()
        offset, gain = self._norm_params(x.shape[0])
        out = np.subtract(x, offset, dtype=np.float32)
        out *= gain
        return out

    def output_mask(self, invalid: np.ndarray) -> np.ndarray:
        """The missing-output mask of a (bands, h, w) missing-input mask, on the input grid.

        Band outputs: per element, (bands, h, w). Other outputs: per pixel, (1, h, w), true
        where any band in ``band_mask`` is missing.
        """
        if self.out_channels is None:
            return invalid
        used = invalid if self.band_mask is None else invalid[np.asarray(self.band_mask, bool)]
        return used.any(axis=0, keepdims=True)

    def output_nodata(self, nodata: float) -> float:
        """The value marking missing output: the input's ``nodata`` for bands, else NaN."""
        return nodata if self.out_channels is None else np.nan

    def denormalise_into(self, y: np.ndarray, out: np.ndarray) -> None:
        """Write the denormalised (bands, H, W) network output ``y`` into ``out`` in one pass.

        Outputs that are not the input bands (``out_channels``) are copied as they are.
        """
        if self.out_channels is not None:
            np.copyto(out, y)
            return
        offset, gain = self._norm_params(y.shape[0])
        if self.identity_normalisation:
            np.copyto(out, y)
        else:
            np.divide(y, gain, out=out)
            out += offset

    def to(self, device: torch.device) -> SRModel:
        """Move the network to ``device`` (in place) and return self."""
        self.network.to(device)
        return self


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; anything else is passed to torch."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
