"""Super-resolution models: the interface, the built-in ones, and checkpoint loading."""

from .base import SRModel, resolve_device
from .bicubic import Bicubic, bicubic_model, bicubic_resize
from .conv import ConvSR, conv_model
from .registry import (
    SUPPORTED_SCALES,
    available_models,
    get_model,
    load_checkpoint,
    model_dirs,
    register_architecture,
    save_checkpoint,
)

__all__ = [
    "SUPPORTED_SCALES",
    "Bicubic",
    "ConvSR",
    "SRModel",
    "available_models",
    "bicubic_model",
    "bicubic_resize",
    "conv_model",
    "get_model",
    "load_checkpoint",
    "model_dirs",
    "register_architecture",
    "resolve_device",
    "save_checkpoint",
]
