"""Cascades: super-resolution networks applied one after the other, saved as one checkpoint.

A model trained at x2 on a small scene generalises to the next scale better than a x4 model
trained on the same scene at x4, where the LR side is 16 times smaller than the scene: on the
held-out EnMAP tiles, the shipped x2 UnmixingSR followed by bicubic x2 scores 35.56 dB at x4,
the x4 UnmixingSR trained on the same mosaic 35.03 dB, bicubic 35.11 dB (docs/benchmarks.md).
:func:`cascade_model` builds such a chain from models that share one normalisation (every
stage sees the normalised values; bicubic, being linear, fits any), and
:func:`~xr_unmixsr.models.save_checkpoint` saves it like any network (architecture
``"cascade"``, the stages' architectures and configs in its config, their weights under
``stages.<i>.``).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModelError
from .base import SRModel
from .bicubic import BICUBIC_HALO, Bicubic
from .registry import architecture_of, build_network, register_architecture

__all__ = ["Cascade", "cascade_model"]


def _halo(network: nn.Module) -> int:
    return int(getattr(network, "halo", BICUBIC_HALO))


@register_architecture("cascade")
class Cascade(nn.Module):
    """Stages applied in order; each maps (N, C, h, w) to (N, C, h*s_i, w*s_i).

    Args:
        stages: one ``{"architecture": name, "config": kwargs}`` per stage (registered
            architectures, as in a model card), built here.
        networks: or the stage networks themselves.

    Attributes:
        scale: the product of the stages' scales.
        halo: receptive-field radius in input pixels: each stage's halo, in the pixels it
            reads, divided by the scale reached before it (rounded up), summed.
    """

    def __init__(
        self,
        stages: list[dict[str, Any]] | None = None,
        *,
        networks: list[nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if networks is None:
            networks = [build_network(spec) for spec in stages or []]
        if not networks:
            raise ModelError("a cascade needs at least one stage")
        self.stages = nn.ModuleList(networks)
        self.scale = 1
        self.halo = 0
        for stage in self.stages:
            self.halo += math.ceil(_halo(stage) / self.scale)
            self.scale *= int(stage.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale (N, C, h, w) by every stage in turn."""
        for stage in self.stages:
            x = stage(x)
        return x


def cascade_model(name: str, models: list[SRModel]) -> tuple[SRModel, dict[str, Any]]:
    """Chain ``models`` into one :class:`SRModel` (and the config that rebuilds its network).

    The cascade takes the band count and normalisation of the first model that has them; the
    others must have the same, or be band-agnostic with an identity normalisation (bicubic).
    The stages' networks are copied (a model may appear twice).

    Returns:
        ``(model, config)``: save with ``save_checkpoint(model, path, config=config, ...)``.

    Raises:
        ModelError: a stage's architecture is not registered, or the stages disagree on bands
            or normalisation.
    """
    learned = [m for m in models if not m.identity_normalisation or m.n_bands is not None]
    first = learned[0] if learned else models[0]
    for m in learned[1:]:
        same = (
            m.n_bands == first.n_bands
            and np.allclose(m.offset, first.offset)
            and np.allclose(m.gain, first.gain)
        )
        if not same:
            raise ModelError(
                f"models {first.name!r} and {m.name!r} differ in bands or normalisation: a cascade needs one"
            )
    stages = [{"architecture": architecture_of(m.network), "config": _config_of(m)} for m in models]
    network = Cascade(networks=[copy.deepcopy(m.network) for m in models])
    model = SRModel(
        name=name,
        network=network.eval(),
        scale=network.scale,
        halo=network.halo,
        n_bands=first.n_bands,
        offset=first.offset,
        gain=first.gain,
    )
    return model, {"stages": stages}


def _config_of(model: SRModel) -> dict[str, Any]:
    config = model.card.get("config")
    if config is None and isinstance(model.network, Bicubic):
        config = {"scale": model.scale}
    if config is None:
        raise ModelError(
            f"model {model.name!r} has no config in its card: load it from a checkpoint to chain it"
        )
    return dict(config)
