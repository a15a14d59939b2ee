"""A small convolutional SR network (ESPCN-like) with a known receptive field.

It is the simplest learned backbone: ``depth`` 3x3 convolutions, each followed by a (leaky) ReLU,
a 3x3 convolution to ``bands * scale**2`` channels and a pixel shuffle, added to the bicubic
upsampling of the input.

``negative_slope`` is the slope of the activations below 0. With 0 (a plain ReLU, the default,
which checkpoints written without the setting were trained with) the first layer can die: its
inputs are all reflectances of one sign, so once every unit's response is negative on all of
them no gradient revives it, and the network stays the bicubic upsampling (on semi-synthetic
Urban at x2, every unit of the first layer ended inactive, docs/benchmarks.md). The trainer
builds ConvSR with :data:`TRAINING_NEGATIVE_SLOPE`.

Each 3x3 convolution widens the receptive field by one input pixel, so ``halo = depth + 1``
(at least the bicubic halo).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import SRModel
from .bicubic import BICUBIC_HALO, bicubic_resize

#: the ``negative_slope`` that :func:`xr_unmixsr.training.train_sr` gives ConvSR.
TRAINING_NEGATIVE_SLOPE = 0.2


class ConvSR(nn.Module):
    """ESPCN-style residual SR network for ``n_bands`` bands (see the module docstring)."""

    def __init__(
        self,
        n_bands: int,
        scale: int,
        features: int = 32,
        depth: int = 2,
        negative_slope: float = 0.0,
    ) -> None:
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = []
        channels = n_bands
        for _ in range(depth):
            layers += [
                nn.Conv2d(channels, features, 3, padding=1),
                nn.LeakyReLU(negative_slope, inplace=True),
            ]
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
