"""Unmixing as a plug-in auxiliary task for any SR backbone (UnmixingSR paper, Table III).

:class:`AuxiliaryUnmixing` wraps an SR network (e.g. :class:`~xr_unmixsr.models.conv.ConvSR`) and a
trained :class:`~xr_unmixsr.models.autoencoder.UnmixingAutoencoder`, which it freezes. Inference is
the backbone alone (``forward(lr) = backbone(lr)``, ``halo = backbone.halo``); training adds
:meth:`AuxiliaryUnmixing.aux_loss`, the AbunLoss ``mean |A(SR) - Up(A(LR))|`` (paper eq. 11, ``Up``
nearest as in :func:`~xr_unmixsr.models.unmixingsr.upsample_abundances`), to the backbone's own
loss, e.g. :func:`~xr_unmixsr.models.unmixingsr.sr_loss`.

This is the MAM-free variant: the wrapper does not change the backbone's architecture, so it works
with any backbone. A material-aware module needs the backbone's last upsampling stage, which has no
common interface across architectures; networks that want it build it in, as
:class:`~xr_unmixsr.models.unmixingsr.UnmixingSR` does (``use_mam=True``).

For checkpoints the wrapper is registered as ``"auxiliary_unmixing"``; to rebuild it from a card,
pass ``backbone={"architecture": <registered name>, "config": {...}}`` and
``autoencoder={...UnmixingAutoencoder kwargs...}`` instead of modules (those dicts are then the
checkpoint's ``config``). For inference one usually saves the backbone alone.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .autoencoder import UnmixingAutoencoder
from .registry import build_network, register_architecture
from .unmixingsr import upsample_abundances

__all__ = ["AuxiliaryUnmixing"]


def _build_backbone(spec: nn.Module | dict[str, Any]) -> nn.Module:
    return spec if isinstance(spec, nn.Module) else build_network(spec)


@register_architecture("auxiliary_unmixing")
class AuxiliaryUnmixing(nn.Module):
    """An SR backbone trained with unmixing as an auxiliary task (AbunLoss with a frozen encoder).

    Args:
        backbone: the SR network (N, C, h, w) -> (N, C, h*scale, w*scale), or a spec
            ``{"architecture": name, "config": kwargs}`` of a registered one.
        autoencoder: the trained unmixing autoencoder, or its constructor kwargs; it is frozen.
        scale: the backbone's upsampling factor.

    Attributes:
        halo: the backbone's ``halo`` (the autoencoder is not used by :meth:`forward`).
    """

    def __init__(
        self,
        backbone: nn.Module | dict[str, Any],
        autoencoder: UnmixingAutoencoder | dict[str, Any],
        scale: int,
    ) -> None:
        super().__init__()
        self.backbone = _build_backbone(backbone)
        if isinstance(autoencoder, dict):
            autoencoder = UnmixingAutoencoder(**autoencoder)
        self.autoencoder = autoencoder
        self.autoencoder.requires_grad_(False)
        self.scale = scale
        halo = getattr(self.backbone, "halo", None)
        if halo is None:
            raise ValueError(
                f"backbone {type(self.backbone).__name__} has no 'halo' attribute (its receptive-field radius)"
            )
        self.halo = int(halo)

    def train(self, mode: bool = True) -> AuxiliaryUnmixing:
        """Set the backbone's training mode; the frozen autoencoder stays in eval mode."""
        super().train(mode)
        self.autoencoder.eval()
        return self

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """The backbone's SR output for (N, C, h, w) ``lr``."""
        return self.backbone(lr)

    def abundance_pair(
        self, lr: torch.Tensor, sr: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A(SR), Up(A(LR)))``: ``A(SR)`` with gradients w.r.t. ``sr``, ``A(LR)`` without."""
        with torch.no_grad():
            abun_lr_up = upsample_abundances(self.autoencoder.encode(lr), self.scale)
        return self.autoencoder.encode(sr), abun_lr_up

    def aux_loss(self, lr: torch.Tensor, sr: torch.Tensor) -> torch.Tensor:
        """AbunLoss ``mean |A(SR) - Up(A(LR))|`` with the frozen autoencoder (paper eq. 11).

        Gradients flow to ``sr`` (hence the backbone), never to the autoencoder.
        """
        abun_sr, abun_lr_up = self.abundance_pair(lr, sr)
        return F.l1_loss(abun_sr, abun_lr_up)
