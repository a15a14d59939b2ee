"""Super-resolution models: the interface, the built-in ones, and checkpoint loading."""

from .autoencoder import UnmixingAutoencoder, unmixing_loss
from .auxiliary import AuxiliaryUnmixing
from .backprojection import BackProjected, back_projected
from .base import SRModel, resolve_device
from .bicubic import Bicubic, bicubic_model, bicubic_resize
from .cascade import Cascade, cascade_model
from .conv import ConvSR, conv_model
from .ensemble import SelfEnsembled, self_ensembled
from .gram import GRAM, LocalChannelAttention
from .registry import (
    SUPPORTED_SCALES,
    available_models,
    checkpoint_stem,
    get_model,
    load_checkpoint,
    model_dirs,
    register_architecture,
    save_checkpoint,
)
from .smile import SMILE, smile_loss
from .unmixingsr import MaterialAwareModule, UnmixingSR, sr_loss

__all__ = [
    "GRAM",
    "SMILE",
    "SUPPORTED_SCALES",
    "AuxiliaryUnmixing",
    "BackProjected",
    "Bicubic",
    "Cascade",
    "ConvSR",
    "LocalChannelAttention",
    "MaterialAwareModule",
    "SRModel",
    "SelfEnsembled",
    "UnmixingAutoencoder",
    "UnmixingSR",
    "available_models",
    "back_projected",
    "bicubic_model",
    "bicubic_resize",
    "cascade_model",
    "checkpoint_stem",
    "conv_model",
    "get_model",
    "load_checkpoint",
    "model_dirs",
    "register_architecture",
    "resolve_device",
    "save_checkpoint",
    "self_ensembled",
    "smile_loss",
    "sr_loss",
    "unmixing_loss",
]
