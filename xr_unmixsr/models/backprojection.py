"""Iterative back-projection: make any upscaler's output consistent with its input.

The project's degradation model (:func:`~xr_unmixsr.sr.degrade`, antialiased bicubic
downsampling) says what the scene would look like at its own resolution if the super-resolved
cube were true. An upscaler rarely honours it: bicubic upsampling, degraded again, is a blurred
copy of the input, and a network only approximates the inverse. :class:`BackProjected` follows the
model with ``steps`` steps of Irani and Peleg's back-projection (1991)

    SR <- SR + up(LR - down(SR)),   up = bicubic upsampling, down = the degradation,

which pull the degraded output onto the input while adding only what the input asks for. On the
held-out benchmark scenes (docs/benchmarks.md) 5 steps lift bicubic by 0.3 to 1.0 dB and the
networks by 0.08 to 0.26 dB; more steps change nothing (the iteration has converged).

Missing input values reach the model as exact zeros (the tiling engine's fill, after
normalisation); they constrain nothing here (a value that is genuinely zero is then left to the
model, which is harmless). Next to a nodata hole the model's output is disturbed by the fill; the
steps correct that disturbance within 2 input pixels of the hole and spread what remains of it a
little farther (on a demo scene: at most 1.7 % of the data's range 3 pixels away, 0.2 % 5 pixels
away, none beyond 8; bicubic alone: none beyond 2).

Every step reaches :data:`~xr_unmixsr.models.bicubic.BACKPROJECTION_RADIUS` input pixels, so the
wrapped model keeps a finite halo and stays seam-free through the tiling engine. The steps run in
float32 even under mixed precision (they add small residuals to large values).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..errors import ParameterError
from .base import SRModel
from .bicubic import BACKPROJECTION_RADIUS, bicubic_resize

__all__ = ["CONVERGED_STEPS", "BackProjected", "back_projected"]

#: steps after which the iteration has converged on every benchmark scene (10 or 20 change the
#: PSNR by less than 0.005 dB): what the demo and the model cards use.
CONVERGED_STEPS = 5


class BackProjected(nn.Module):
    """``network`` followed by ``steps`` back-projection steps onto its input.

    Args:
        network: maps (N, C, h, w) to (N, C, h*scale, w*scale).
        scale: the network's upsampling factor.
        steps: back-projection steps (0: the network alone).
        halo: the network's receptive-field radius in input pixels.

    Attributes:
        halo: the network's halo plus ``steps`` times the per-step radius.
    """

    def __init__(self, network: nn.Module, scale: int, steps: int, halo: int) -> None:
        super().__init__()
        self.network = network
        self.scale = int(scale)
        self.steps = int(steps)
        self.halo = int(halo) + self.steps * BACKPROJECTION_RADIUS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale (N, C, h, w), then back-project ``steps`` times onto ``x``."""
        out = self.network(x)
        with torch.autocast(x.device.type, enabled=False):
            lr = x.float()
            known = (lr != 0).float()  # the engine passes missing values as 0
            sr = out.float()
            for _ in range(self.steps):
                residual = (lr - bicubic_resize(sr, 1.0 / self.scale)) * known
                sr = sr + bicubic_resize(residual, self.scale)
        return sr.to(out.dtype)


def back_projected(model: SRModel, steps: int) -> SRModel:
    """``model`` with ``steps`` back-projection steps appended (``model`` itself when 0).

    Raises:
        ParameterError: ``steps`` is negative or not an integer, or ``model`` does not return
            the input's bands (an unmixing network: there is nothing to degrade and compare).
    """
    if model.out_channels is not None:
        raise ParameterError(
            f"model {model.name!r} returns {model.out_channels} channels, not the input's bands: "
            "back-projection applies to super-resolution models only"
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ParameterError(
            f"back_projection must be a whole number of steps >= 0, got {steps!r}; 5 is plenty "
            "(the iteration has converged by then on every benchmark scene)"
        )
    if steps == 0:
        return model
    network = BackProjected(model.network, model.scale, steps, model.halo).eval()
    return dataclasses.replace(
        model,
        name=f"{model.name} + back-projection x{steps}",
        network=network,
        halo=network.halo,
    )
