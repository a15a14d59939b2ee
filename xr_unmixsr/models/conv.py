"""A small convolutional SR network (ESPCN-like) with a known receptive field.

It is the simplest learned backbone: ``depth`` 3x3 convolutions, a 3x3 convolution to
``bands * scale**2`` channels and a pixel shuffle, added to the bicubic upsampling of the input.
Each 3x3 convolution widens the receptive field by one input pixel, so ``halo = depth + 1``
(at least the bicubic halo).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import SRModel
from .bicubic import BICUBIC_HALO, bicubic_resize


class ConvSR(nn.Module):
    """ESPCN-style residual SR network for ``n_bands`` bands."""

    def __init__(self, n_bands: int, scale: int, features: int = 32, depth: int = 2) -> None:
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = []
        channels = n_bands
        for _ in range(depth):
            layers += [nn.Conv2d(channels, features, 3, padding=1), nn.ReLU(inplace=True)]
            channels = features
        layers += [
            nn.Conv2d(channels, n_bands * scale * scale, 3, padding=1),
            nn.PixelShuffle(scale),
        ]
        self.body = nn.Sequential(*layers)
        self.halo = max(depth + 1, BICUBIC_HALO)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample (N, C, h, w) to (N, C, h*scale, w*scale)."""
        return self.body(x) + bicubic_resize(x, self.scale)


def conv_model(
    n_bands: int, scale: int, *, features: int = 32, depth: int = 2, seed: int = 0
) -> SRModel:
    """A :class:`ConvSR` model with seeded random weights (tests, benchmarks, a training start)."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    net = ConvSR(n_bands, scale, features, depth).eval()
    torch.random.set_rng_state(gen_state)
    return SRModel(name="convsr", network=net, scale=scale, halo=net.halo, n_bands=n_bands)
