"""SMILE-style super-resolution-guided multitask unmixing network.

After SMILE (super-resolution guided multi-task learning for hyperspectral unmixing): SR and
unmixing share a representation, SR guides unmixing, and the linear mixing model ties the two.
This is a compact convolutional rendition with GRAMs (:mod:`xr_unmixsr.models.gram`), not a
reproduction of the paper's exact architecture:

* shared encoder on the LR cube: 3x3 head, ``n_grams`` GRAMs and a 3x3 conv (with a residual);
* SR head: progressive pixel-shuffle upsampler (as in UnmixingSR), 3x3 tail to the bands, plus the
  bicubic upsampling of the input -> ``sr`` (N, bands, h*s, w*s);
* unmixing head: its own upsampler; its HR features are concatenated with the SR head's HR
  features (the SR guidance), then a 3x3 conv, LeakyReLU, 1x1 conv to ``p`` and a softmax over the
  endmembers -> ``abundances`` on the HR grid (N, p, h*s, w*s), non-negative and summing to 1;
* a shared linear decoder (:class:`~xr_unmixsr.models.autoencoder.LinearMixingDecoder`, endmembers
  kept non-negative by :meth:`SMILE.clamp_endmembers_` after each optimiser step):
  ``reconstruction = decoder(abundances)`` should match the SR cube, and its bicubic degradation
  the LR input (:func:`smile_loss`).

``forward(lr)`` returns a dict (``sr``, ``abundances``, ``endmembers``, ``reconstruction``); with
``output="sr"`` it returns the SR tensor only, which is what the tiling engine calls.

``halo`` (LR pixels): ``1 + n_grams * (attention_radius + 3) + 1`` for the shared encoder, plus
``len(steps) + 1`` for either head (the unmixing head's 3x3 conv is on the HR grid: 1 LR pixel),
at least the bicubic residual's 2.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .autoencoder import (
    EndmemberDecoderMixin,
    LinearMixingDecoder,
    endmember_tv,
    spectral_angle_loss,
)
from .bicubic import BICUBIC_HALO, bicubic_resize
from .gram import DEFAULT_ATTENTION_RADIUS, gram_stack
from .registry import register_architecture
from .unmixingsr import Upsampler

__all__ = ["SMILE", "degrade", "smile_loss"]

_OUTPUTS = ("dict", "sr")


def degrade(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic (antialiased, a = -0.5) downsampling of (N, C, H, W) to ``size`` = (h, w).

    The same kernel as :func:`~xr_unmixsr.models.bicubic.bicubic_resize`, the project's
    degradation model, with the output size given exactly.
    """
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)


@register_architecture("smile")
class SMILE(EndmemberDecoderMixin, nn.Module):
    """SR-guided multitask unmixing network (see the module docstring).

    Args:
        n_bands: number of spectral bands.
        scale: upsampling factor (2, 3, 4, 8...).
        n_endmembers: number of endmembers ``p``.
        features: feature channels.
        n_grams: GRAMs in the shared encoder.
        attention_radius: half-width of the local channel-attention window of the GRAMs.
        reduction: channel reduction of the attention MLPs.
        output: ``"dict"`` (all outputs) or ``"sr"`` (the SR tensor only, for the engine).

    Attributes:
        halo: receptive-field radius in LR pixels (of every output).
    """

    def __init__(
        self,
        n_bands: int,
        scale: int,
        n_endmembers: int = 6,
        features: int = 32,
        n_grams: int = 2,
        attention_radius: int = DEFAULT_ATTENTION_RADIUS,
        reduction: int = 4,
        output: str = "dict",
    ) -> None:
        super().__init__()
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {_OUTPUTS}, got {output!r}")
        self.n_bands = n_bands
        self.scale = scale
        self.n_endmembers = n_endmembers
        self.output = output
        self.head = nn.Conv2d(n_bands, features, 3, padding=1)
        self.grams = gram_stack(features, n_grams, attention_radius, reduction)
        self.shared_conv = nn.Conv2d(features, features, 3, padding=1)
        self.sr_up = Upsampler(features, scale)
        self.sr_tail = nn.Conv2d(features, n_bands, 3, padding=1)
        self.unmix_up = Upsampler(features, scale)
        self.unmix_body = nn.Sequential(
            nn.Conv2d(2 * features, features, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)
        )
        self.to_abundances = nn.Conv2d(features, n_endmembers, 1)
        self.decoder = LinearMixingDecoder(n_endmembers, n_bands)
        shared = 1 + self.grams.radius + 1
        self.halo = max(shared + self.sr_up.radius + 1, BICUBIC_HALO)

    def forward(self, lr: torch.Tensor) -> dict[str, torch.Tensor] | torch.Tensor:
        """Run both tasks on a (N, bands, h, w) LR cube.

        Returns:
            With ``output="dict"``: ``sr`` (N, bands, h*s, w*s), ``abundances`` (N, p, h*s, w*s),
            ``endmembers`` (p, bands) and ``reconstruction`` = decoder(abundances)
            (N, bands, h*s, w*s). With ``output="sr"``: the ``sr`` tensor.
        """
        feat = self.head(lr)
        feat = feat + self.shared_conv(self.grams(feat))
        sr_feat = self.sr_up(feat)
        sr = self.sr_tail(sr_feat) + bicubic_resize(lr, self.scale)
        if self.output == "sr":
            return sr
        un_feat = self.unmix_body(torch.cat([self.unmix_up(feat), sr_feat], dim=1))
        abundances = torch.softmax(self.to_abundances(un_feat), dim=1)
        return {
            "sr": sr,
            "abundances": abundances,
            "endmembers": self.endmembers,
            "reconstruction": self.decoder(abundances),
        }


def smile_loss(
    outputs: dict[str, Any],
    lr: torch.Tensor,
    hr: torch.Tensor | None = None,
    alpha: float = 0.1,
    beta: float = 1e-3,
    unmixing_weight: float = 1.0,
) -> torch.Tensor:
    """Multitask loss of :class:`SMILE`.

    * SR term: with ``hr``, ``L1(sr, hr) + alpha * SAD(hr, sr)``; without (self-supervised),
      the same between the bicubic degradation of ``sr`` and ``lr``.
    * Unmixing term (weighted by ``unmixing_weight``): the decoder's reconstruction should match
      the SR cube (``L1 + alpha * SAD``, the SR cube detached: SR guides unmixing, not the other
      way round) and its degradation the LR input (``L1 + alpha * SAD``), plus
      ``beta * spectral TV`` of the endmembers.

    Args:
        outputs: the dict returned by :meth:`SMILE.forward`.
        lr: the LR input (N, bands, h, w).
        hr: the HR reference (N, bands, h*s, w*s), or None.
        alpha: weight of the spectral-angle terms.
        beta: weight of the endmember spectral TV.
        unmixing_weight: weight of the unmixing term.
    """
    sr, recon = outputs["sr"], outputs["reconstruction"]
    size = (lr.shape[-2], lr.shape[-1])
    if hr is not None:
        sr_term = F.l1_loss(sr, hr) + alpha * spectral_angle_loss(hr, sr)
    else:
        sr_lr = degrade(sr, size)
        sr_term = F.l1_loss(sr_lr, lr) + alpha * spectral_angle_loss(lr, sr_lr)
    target = sr.detach()
    recon_lr = degrade(recon, size)
    unmix_term = (
        F.l1_loss(recon, target)
        + alpha * spectral_angle_loss(target, recon)
        + F.l1_loss(recon_lr, lr)
        + alpha * spectral_angle_loss(lr, recon_lr)
        + beta * endmember_tv(outputs["endmembers"])
    )
    return sr_term + unmixing_weight * unmix_term
