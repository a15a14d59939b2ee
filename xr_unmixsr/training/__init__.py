"""Training: seeded patch sampling and resumable trainers for the SR and unmixing networks.

* :class:`PatchSampler`: (LR, HR) patches read window by window from (dask) DataArrays.
* :func:`train_autoencoder`: the unmixing autoencoder alone (step I of UnmixingSR).
* :func:`train_sr`: UnmixingSR (two-step alternating training) and its baselines.
* :func:`train_smile`: the SMILE multitask network.

Each trainer returns a :class:`TrainResult`; with ``checkpoint=`` it writes a checkpoint that
``xr_unmixsr.upscale(cube, scale, model=path)`` loads, and a resumable training state beside it.
"""

from .patches import DEGRADATIONS, NORMALISATIONS, PatchSampler, gaussian_degrade
from .train import (
    ARCHITECTURES,
    TrainResult,
    band_coordinates,
    hardware,
    train_autoencoder,
    train_smile,
    train_sr,
)

__all__ = [
    "ARCHITECTURES",
    "DEGRADATIONS",
    "NORMALISATIONS",
    "PatchSampler",
    "TrainResult",
    "band_coordinates",
    "gaussian_degrade",
    "hardware",
    "train_autoencoder",
    "train_smile",
    "train_sr",
]
