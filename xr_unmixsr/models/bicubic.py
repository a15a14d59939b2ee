"""Bicubic resampling as a model: the baseline upscaler and the degradation used for training."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import SRModel

#: each output pixel of bicubic upsampling depends on input pixels at most 2 away.
BICUBIC_HALO = 2
#: input pixels one back-projection step (degrade the fine grid, compare with the input, bring the
#: difference back up) reaches: measured by perturbing one input pixel, at scales 2 to 8, by
#: tests/unmixing/test_subpixel.py and tests/models/test_backprojection.py.
BACKPROJECTION_RADIUS = 3


def bicubic_resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Resize (N, C, H, W) by ``factor`` with the antialiased bicubic kernel (a = -0.5).

    With ``antialias=True`` torch uses the Keys kernel with a = -0.5, the one MATLAB's ``imresize``
    uses, and widens it when downsampling so that the result is alias-free; both directions of the
    literature's protocol (degrade HR to LR, upsample LR back) use this one function.
    """
    return F.interpolate(
        x, scale_factor=factor, mode="bicubic", align_corners=False, antialias=True
    )


class Bicubic(torch.nn.Module):
    """Band-agnostic bicubic upsampling by an integer factor."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample (N, C, h, w) to (N, C, h*scale, w*scale)."""
        return bicubic_resize(x, self.scale)


def bicubic_model(scale: int) -> SRModel:
    """The built-in ``bicubic`` model for ``scale``."""
    return SRModel(name="bicubic", network=Bicubic(scale).eval(), scale=scale, halo=BICUBIC_HALO)
