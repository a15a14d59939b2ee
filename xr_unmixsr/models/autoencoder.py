"""The unsupervised unmixing autoencoder of UnmixingSR (paper Sec. III-B, Fig. 4, eqs. 5-8).

* Encoder: a 3x3 convolution to ``features`` channels, ``n_grams`` GRAMs
  (:mod:`xr_unmixsr.models.gram`), a 1x1 convolution to ``n_endmembers`` channels and a softmax over
  that channel axis, so the abundances of each pixel are non-negative and sum to one (ANC, ASC).
* Decoder: the linear mixing model as one 1x1 convolution without bias (:class:`LinearMixingDecoder`);
  its weights *are* the endmembers, ``(p, bands)``.

Endmember non-negativity is kept by projection: after each optimiser step the training loop calls
:meth:`UnmixingAutoencoder.clamp_endmembers_` (projected gradient descent). This keeps the decoder
weights literally equal to the endmembers (paper: "the weights represent the extracted
endmembers"), so VCA endmembers can be copied in as they are (:meth:`init_endmembers_`) and read out
as they are (:attr:`endmembers`), without an inverse softplus and without the vanishing gradients a
softplus has for small reflectances. The initial weights are already non-negative.

Losses: :func:`unmixing_loss` = L1 + alpha * SAD + beta * spectral TV of the endmembers (eq. 8).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .gram import DEFAULT_ATTENTION_RADIUS, gram_stack
from .registry import register_architecture

__all__ = [
    "LinearMixingDecoder",
    "UnmixingAutoencoder",
    "endmember_tv",
    "spectral_angle_loss",
    "unmixing_loss",
]


def spectral_angle_loss(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Mean spectral angle (radians) between the pixels of two (N, C, H, W) tensors (eq. 6/10).

    The cosine is clipped to ``[-1 + 1e-6, 1 - 1e-6]`` so that the gradient of ``arccos`` stays
    finite for identical spectra, and the norms are bounded below by ``eps`` for zero spectra.
    """
    dot = (x * y).sum(dim=1)
    norms = x.norm(dim=1).clamp_min(eps) * y.norm(dim=1).clamp_min(eps)
    cos = (dot / norms).clamp(-1.0 + 1e-6, 1.0 - 1e-6)
    return torch.arccos(cos).mean()


def endmember_tv(endmembers: torch.Tensor) -> torch.Tensor:
    """Spectral total variation of (p, bands) endmembers: ``sum |E[:, b+1] - E[:, b]|`` (eq. 7)."""
    return (endmembers[:, 1:] - endmembers[:, :-1]).abs().sum()


def unmixing_loss(
    x: torch.Tensor,
    recon: torch.Tensor,
    endmembers: torch.Tensor,
    alpha: float = 0.1,
    beta: float = 1e-3,
) -> torch.Tensor:
    """UnLoss = mean |x - recon| + alpha * SAD(x, recon) + beta * TV(endmembers) (paper eq. 8).

    Args:
        x: the input cube (N, bands, H, W).
        recon: its reconstruction by the autoencoder, same shape.
        endmembers: the decoder's (p, bands) endmembers.
        alpha: weight of the spectral-angle term.
        beta: weight of the endmember spectral-TV term.
    """
    return (
        F.l1_loss(recon, x)
        + alpha * spectral_angle_loss(x, recon)
        + beta * endmember_tv(endmembers)
    )


class LinearMixingDecoder(nn.Module):
    """The linear mixing model ``Y = A M`` as a bias-free 1x1 convolution (radius 0).

    The weight of ``conv`` is (bands, p, 1, 1); :attr:`endmembers` gives it as (p, bands).
    Non-negativity is kept by :meth:`clamp_endmembers_` after each optimiser step.
    """

    radius: int = 0

    def __init__(self, n_endmembers: int, n_bands: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(n_endmembers, n_bands, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.uniform_(0.05, 1.0)

    @property
    def endmembers(self) -> torch.Tensor:
        """The (p, bands) endmember matrix (a view of the weights, with gradients)."""
        return self.conv.weight[:, :, 0, 0].t()

    @torch.no_grad()
    def clamp_endmembers_(self) -> None:
        """Project the endmembers onto the non-negative orthant (call after each optimiser step)."""
        self.conv.weight.clamp_(min=0.0)

    @torch.no_grad()
    def init_endmembers_(self, endmembers: np.ndarray | torch.Tensor) -> None:
        """Set the endmembers from a (p, bands) array (e.g. from :func:`xr_unmixsr.unmixing.vca`).

        Negative entries are clipped to 0.
        """
        if isinstance(endmembers, torch.Tensor):
            e = endmembers.detach().to(self.conv.weight)
        else:
            e = torch.as_tensor(np.asarray(endmembers), dtype=self.conv.weight.dtype)
        p, bands = self.conv.in_channels, self.conv.out_channels
        if tuple(e.shape) != (p, bands):
            raise ValueError(f"endmembers must have shape ({p}, {bands}), got {tuple(e.shape)}")
        self.conv.weight.copy_(e.t().clamp(min=0.0)[:, :, None, None])

    def forward(self, abundances: torch.Tensor) -> torch.Tensor:
        """Mix (N, p, H, W) abundances into a (N, bands, H, W) cube."""
        return self.conv(abundances)


class EndmemberDecoderMixin:
    """Endmember access for networks whose ``decoder`` is a :class:`LinearMixingDecoder`."""

    decoder: LinearMixingDecoder

    @property
    def endmembers(self) -> torch.Tensor:
        """The (p, bands) endmembers (the decoder weights)."""
        return self.decoder.endmembers

    def clamp_endmembers_(self) -> None:
        """Project the endmembers to be non-negative; call after every optimiser step."""
        self.decoder.clamp_endmembers_()

    def init_endmembers_(self, endmembers: np.ndarray | torch.Tensor) -> None:
        """Initialise the decoder from (p, bands) endmembers, e.g. from VCA."""
        self.decoder.init_endmembers_(endmembers)


@register_architecture("unmixing_autoencoder")
class UnmixingAutoencoder(EndmemberDecoderMixin, nn.Module):
    """Unsupervised unmixing autoencoder with GRAMs (UnmixingSR, Fig. 4).

    Args:
        n_bands: number of spectral bands.
        n_endmembers: number of endmembers ``p``.
        features: feature channels of the encoder.
        n_grams: number of GRAMs in the encoder.
        attention_radius: half-width of the GRAMs' local channel-attention window.
        reduction: channel reduction of the attention MLP.

    Attributes:
        radius: receptive-field radius of the encoder (and of the whole autoencoder, the decoder
            being per pixel), in input pixels: ``1 + n_grams * (attention_radius + 3)``.
        halo: same as ``radius`` (the name the tiling engine uses).
    """

    def __init__(
        self,
        n_bands: int,
        n_endmembers: int,
        features: int = 32,
        n_grams: int = 2,
        attention_radius: int = DEFAULT_ATTENTION_RADIUS,
        reduction: int = 4,
    ) -> None:
        super().__init__()
        if n_endmembers < 2:
            raise ValueError(f"n_endmembers must be >= 2, got {n_endmembers}")
        self.n_bands = n_bands
        self.n_endmembers = n_endmembers
        self.head = nn.Sequential(
            nn.Conv2d(n_bands, features, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)
        )
        self.grams = gram_stack(features, n_grams, attention_radius, reduction)
        self.to_abundances = nn.Conv2d(features, n_endmembers, 1)
        self.decoder = LinearMixingDecoder(n_endmembers, n_bands)
        self.radius = 1 + self.grams.radius
        self.halo = self.radius

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Abundances (N, p, H, W) of a (N, bands, H, W) cube: non-negative, summing to 1."""
        return torch.softmax(self.to_abundances(self.grams(self.head(x))), dim=1)

    def decode(self, abundances: torch.Tensor) -> torch.Tensor:
        """Cube (N, bands, H, W) mixed from (N, p, H, W) abundances."""
        return self.decoder(abundances)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(reconstruction, abundances)`` of a (N, bands, H, W) cube."""
        abundances = self.encode(x)
        return self.decode(abundances), abundances
