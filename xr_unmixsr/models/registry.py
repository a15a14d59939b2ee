"""Finding models by name or path, and saving/loading checkpoints safely.

A checkpoint is two files side by side: ``<stem>.safetensors`` (the weights; loading it never
unpickles anything) and ``<stem>.json`` (the model card: architecture and its config, scale, band
count, halo, normalisation, plus whatever the trainer recorded). A model is named by

* ``"bicubic"`` (built in, band-agnostic, scales 2, 3, 4 and 8);
* a shipped name, i.e. the stem of a checkpoint in one of :func:`model_dirs`;
* a path to a ``.safetensors`` or ``.json`` file of a checkpoint;
* an :class:`SRModel` instance, used as it is.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import ModelError, UnsupportedScaleError
from .base import SRModel
from .bicubic import Bicubic, bicubic_model
from .conv import ConvSR

#: scale factors of the built-in bicubic model.
SUPPORTED_SCALES = (2, 3, 4, 8)

_ARCHITECTURES: dict[str, Callable[..., torch.nn.Module]] = {"convsr": ConvSR, "bicubic": Bicubic}


def register_architecture(
    name: str,
) -> Callable[[Callable[..., torch.nn.Module]], Callable[..., torch.nn.Module]]:
    """Class decorator that makes a network class loadable from checkpoints as ``name``."""

    def deco(cls: Callable[..., torch.nn.Module]) -> Callable[..., torch.nn.Module]:
        _ARCHITECTURES[name] = cls
        return cls

    return deco


def build_network(spec: dict[str, Any]) -> torch.nn.Module:
    """Build a network from ``{"architecture": name, "config": kwargs}`` (a model card's fields).

    Raises:
        ModelError: the name is not a registered architecture or the spec lacks it.
    """
    try:
        cls = _ARCHITECTURES[spec["architecture"]]
    except KeyError as exc:
        raise ModelError(
            f"{spec!r} must name a registered architecture under 'architecture' (one of {sorted(_ARCHITECTURES)}) with its keyword arguments under 'config'"
        ) from exc
    try:
        return cls(**spec.get("config", {}))
    except TypeError as exc:
        raise ModelError(
            f"config {spec.get('config')!r} does not fit architecture {spec['architecture']!r}: {exc}"
        ) from exc


def architecture_of(network: torch.nn.Module) -> str:
    """The registered architecture name of ``network``'s class.

    Raises:
        ModelError: the class is not registered.
    """
    arch = next((n for n, cls in _ARCHITECTURES.items() if type(network) is cls), None)
    if arch is None:
        raise ModelError(
            f"{type(network).__name__} is not a registered architecture: decorate it with register_architecture"
        )
    return arch


def model_dirs() -> list[Path]:
    """Folders searched for shipped model names: ``$XR_UNMIXSR_MODEL_PATH`` (os.pathsep-separated)
    first, then the package's ``models/`` folder."""
    extra = [Path(p) for p in os.environ.get("XR_UNMIXSR_MODEL_PATH", "").split(os.pathsep) if p]
    return [*extra, Path(__file__).resolve().parents[2] / "models"]


def available_models() -> list[str]:
    """Names accepted by :func:`get_model`: ``bicubic`` and every shipped checkpoint (not the
    ``*.train.safetensors`` training states that trainers keep beside a checkpoint)."""
    names = {
        p.stem
        for d in model_dirs()
        if d.is_dir()
        for p in d.glob("*.safetensors")
        if not p.name.endswith(".train.safetensors")
    }
    return ["bicubic", *sorted(names)]


def checkpoint_stem(path: str | os.PathLike[str]) -> Path:
    """``path`` without its ``.safetensors`` or ``.json`` suffix.

    Any other dot belongs to the name: ``run-0.2`` and ``run-0.2.safetensors`` are both the
    checkpoint ``run-0.2``, whose files are ``run-0.2.safetensors`` and ``run-0.2.json``.
    """
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".safetensors", ".json") else p


def _sibling(stem: Path, suffix: str) -> Path:
    return stem.with_name(stem.name + suffix)


def save_checkpoint(
    model: SRModel, path: str | os.PathLike[str], config: dict[str, Any], **card: Any
) -> Path:
    """Write ``model`` as ``<stem>.safetensors`` + ``<stem>.json``; returns the weights path.

    Args:
        model: the model; ``model.network`` must be of a registered architecture.
        path: target path, with or without the ``.safetensors`` suffix (:func:`checkpoint_stem`).
        config: keyword arguments that rebuild ``model.network`` from its class.
        card: extra model-card entries (training data, metrics...).
    """
    arch = architecture_of(model.network)
    stem = checkpoint_stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.network.state_dict().items()}
    weights = _sibling(stem, ".safetensors")
    save_file(state, str(weights))
    from .. import __version__

    meta = {
        "name": stem.name,
        "architecture": arch,
        "config": config,
        "scale": model.scale,
        "halo": model.halo,
        "n_bands": model.n_bands,
        "normalisation": {
            "offset": np.asarray(model.offset).tolist(),
            "gain": np.asarray(model.gain).tolist(),
        },
        "package_version": __version__,
        **card,
    }
    _sibling(stem, ".json").write_text(json.dumps(meta, indent=2))
    return weights


@functools.lru_cache(maxsize=8)
def _load_checkpoint_cached(weights: str, mtime: float) -> SRModel:
    card_path = Path(weights).with_suffix(".json")
    if not card_path.exists():
        raise ModelError(
            f"model card {card_path} is missing: a checkpoint is a .safetensors file with its .json card beside it"
        )
    card = json.loads(card_path.read_text())
    network = build_network(card)
    try:
        network.load_state_dict(load_file(weights))
        scale, halo = int(card["scale"]), int(card["halo"])
    except KeyError as exc:
        raise ModelError(
            f"model card {card_path} lacks {exc}: write checkpoints with save_checkpoint"
        ) from exc
    except RuntimeError as exc:
        raise ModelError(
            f"weights in {weights} do not fit the architecture in its card: {exc}"
        ) from exc
    norm = card.get("normalisation", {})
    return SRModel(
        name=card.get("name", Path(weights).stem),
        network=network.eval(),
        scale=scale,
        halo=halo,
        n_bands=card.get("n_bands"),
        offset=np.asarray(norm.get("offset", 0.0), np.float32),
        gain=np.asarray(norm.get("gain", 1.0), np.float32),
        card=card,
    )


def _weights_path(path: Path) -> Path:
    """The weights file of a checkpoint given by its weights, card or stem path."""
    return _sibling(checkpoint_stem(path), ".safetensors")


def load_checkpoint(path: str | os.PathLike[str]) -> SRModel:
    """Load a checkpoint (``.safetensors`` or its ``.json`` card), once per process.

    Loading never unpickles: the weights are read with safetensors.
    """
    weights = _weights_path(Path(path))
    if not weights.exists():
        raise ModelError(
            f"no checkpoint at {weights}: give the path of a .safetensors file or a model name from {available_models()}"
        )
    return _load_checkpoint_cached(str(weights.resolve()), weights.stat().st_mtime)


def get_model(model: str | os.PathLike[str] | SRModel, scale: int) -> SRModel:
    """Resolve a model name, checkpoint path or :class:`SRModel` for ``scale``.

    Raises:
        ModelError: unknown name, missing or broken checkpoint.
        UnsupportedScaleError: the model cannot upsample by ``scale``.
    """
    if isinstance(model, SRModel):
        resolved = model
    elif str(model) == "bicubic":
        if scale not in SUPPORTED_SCALES:
            raise UnsupportedScaleError(
                f"scale {scale} is not supported: use one of {SUPPORTED_SCALES}"
            )
        return bicubic_model(scale)
    else:
        path = Path(model)
        if path.suffix in (".safetensors", ".json") or _weights_path(path).exists():
            resolved = load_checkpoint(path)
        else:
            found = [
                d / f"{model}.safetensors"
                for d in model_dirs()
                if (d / f"{model}.safetensors").exists()
            ]
            if not found:
                raise ModelError(
                    f"unknown model {str(model)!r}: use one of {available_models()} or the path of a checkpoint"
                )
            resolved = load_checkpoint(found[0])
    if resolved.scale != scale:
        raise UnsupportedScaleError(
            f"model {resolved.name!r} upsamples by {resolved.scale}, not {scale}: ask for scale={resolved.scale} or choose a model trained for x{scale}"
        )
    return resolved
