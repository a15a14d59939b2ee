"""The general residual attention module (GRAM) of UnmixingSR, with a *local* channel attention.

A GRAM (UnmixingSR paper, Sec. III-C and Fig. 5) is a spectral residual block followed by a
spatial residual block:

* spectral: ``x + CA(LeakyReLU(Conv3x3(LN(x))))``, LN a layer normalisation over the channels of
  each pixel and CA a squeeze-and-excitation channel attention;
* spatial: ``x + Conv3x3(ReLU(Conv3x3(LN(x))))``.

Deviation from the paper -- local channel attention. The classic channel attention squeezes each
channel by a *global* average over the whole image, so every output pixel depends on every input
pixel: the receptive field is the whole input, and a scene processed tile by tile (the engine in
:mod:`xr_unmixsr.engine.tiling`) would give different values in every tile, i.e. seams. Here the
squeeze is a *local* box mean over a ``(2r+1) x (2r+1)`` window around each pixel
(``AvgPool2d(2r+1, stride=1, padding=r, count_include_pad=False)``), followed by the usual
excitation MLP (two 1x1 convolutions, ReLU, sigmoid). The channel weights are thus per pixel and
depend only on pixels at most ``r`` away, so the module has a finite receptive field. With ``r``
of a few pixels the descriptor still summarises the local spectral content (what channel attention
is for), and for inputs smaller than the window it *is* the global mean.

Every module here exposes ``radius``: how many input pixels away an output pixel may depend on
(for a 3x3 convolution 1, for the local channel attention ``r``); networks add them up to their
``halo``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "GRAM",
    "DEFAULT_ATTENTION_RADIUS",
    "LayerNorm2d",
    "LocalChannelAttention",
    "SpatialResidualBlock",
    "SpectralResidualBlock",
    "gram_stack",
]

#: default radius ``r`` (in pixels) of the local channel-attention window (9 x 9 pixels).
DEFAULT_ATTENTION_RADIUS = 4


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channels of each pixel of a (N, C, H, W) tensor.

    Each pixel's channel vector is normalised to zero mean and unit variance, then scaled and
    shifted by learned per-channel ``weight`` and ``bias``. Purely per pixel: ``radius = 0``.
    """

    radius: int = 0

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise (N, C, H, W) over C."""
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class LocalChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention with a local (box-mean) squeeze.

    ``y = x * sigmoid(W2 ReLU(W1 boxmean_r(x)))`` with ``W1``, ``W2`` 1x1 convolutions
    (``channels -> channels // reduction -> channels``). ``boxmean_r`` averages each channel over
    the ``(2r+1)^2`` window around the pixel, the window cut at the image border (padding is not
    counted). ``radius = r``.

    Args:
        channels: number of channels.
        radius: half-width ``r`` of the averaging window, in pixels (0: per-pixel attention).
        reduction: channel reduction ratio of the excitation MLP.
    """

    def __init__(
        self, channels: int, radius: int = DEFAULT_ATTENTION_RADIUS, reduction: int = 4
    ) -> None:
        super().__init__()
        if radius < 0:
            raise ValueError(f"attention radius must be >= 0, got {radius}")
        self.radius = int(radius)
        hidden = max(1, channels // reduction)
        self.pool = nn.AvgPool2d(
            2 * self.radius + 1, stride=1, padding=self.radius, count_include_pad=False
        )
        self.excite = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reweight the channels of (N, C, H, W) pixel by pixel."""
        return x * self.excite(self.pool(x))


class SpectralResidualBlock(nn.Module):
    """``x + CA(LeakyReLU(Conv3x3(LN(x))))``; ``radius = 1 + attention radius``."""

    def __init__(
        self,
        channels: int,
        attention_radius: int = DEFAULT_ATTENTION_RADIUS,
        reduction: int = 4,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.norm = LayerNorm2d(channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(negative_slope, inplace=True)
        self.attention = LocalChannelAttention(channels, attention_radius, reduction)
        self.radius = 1 + self.attention.radius

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to (N, C, H, W)."""
        return x + self.attention(self.act(self.conv(self.norm(x))))


class SpatialResidualBlock(nn.Module):
    """``x + Conv3x3(ReLU(Conv3x3(LN(x))))``; ``radius = 2``."""

    radius: int = 2

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to (N, C, H, W)."""
        return x + self.conv2(F.relu(self.conv1(self.norm(x))))


class GRAM(nn.Module):
    """General residual attention module: spectral then spatial residual block.

    Args:
        channels: feature channels (input = output).
        attention_radius: half-width of the local channel-attention window, in pixels.
        reduction: channel reduction of the attention MLP.

    Attributes:
        radius: receptive-field radius in input pixels, ``attention_radius + 3``.
    """

    def __init__(
        self, channels: int, attention_radius: int = DEFAULT_ATTENTION_RADIUS, reduction: int = 4
    ) -> None:
        super().__init__()
        self.spectral = SpectralResidualBlock(channels, attention_radius, reduction)
        self.spatial = SpatialResidualBlock(channels)
        self.radius = self.spectral.radius + self.spatial.radius

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module to (N, C, H, W)."""
        return self.spatial(self.spectral(x))


def gram_stack(
    channels: int,
    n_grams: int,
    attention_radius: int = DEFAULT_ATTENTION_RADIUS,
    reduction: int = 4,
) -> nn.Sequential:
    """``n_grams`` GRAMs in sequence; the result has ``radius`` = the sum of theirs."""
    stack = nn.Sequential(*(GRAM(channels, attention_radius, reduction) for _ in range(n_grams)))
    stack.radius = sum(g.radius for g in stack)  # type: ignore[assignment]
    return stack
