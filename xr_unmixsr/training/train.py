"""Training the unmixing autoencoder, UnmixingSR and its baselines, and SMILE.

All trainers share one loop (:func:`_fit`):

* **Data**: a :class:`~xr_unmixsr.training.patches.PatchSampler` (self-supervised (LR, HR) pairs,
  see its module for the band mask and the normalisation). Bands missing in the whole scene are
  fed as 0 and left out of every loss: the L1/SAD terms, the autoencoder's reconstruction and
  endmember TV are computed on the used bands only, and the SR output's excluded bands are zeroed
  before it is unmixed for the AbunLoss (its LR counterpart has them at 0 too).
* **Optimiser** (paper Sec. IV-A): Adam, betas (0.9, 0.99), no weight decay, learning rate ``lr``
  (5e-4) halved every ``lr_halving_epochs`` (40) epochs, the same for both steps.
* **UnmixingSR, two-step alternating training** (paper Sec. III-E): every epoch first runs
  ``ae_steps`` (default ``steps_per_epoch``) steps of step I, the autoencoder alone on the LR
  patches with the unmixing loss (eq. 8) and endmembers clamped non-negative after each step;
  its weights are then copied into the SR network's frozen autoencoder, and ``steps_per_epoch``
  steps of step II train the SR network with ``sr_loss`` (eq. 12: L1 + alpha SAD + beta AbunLoss)
  while the autoencoder stays fixed. ``ae_epochs=k`` runs step I in the first ``k`` epochs only
  (``ae_epochs=1``: pretrain, then freeze); a given ``autoencoder`` skips step I altogether. The
  endmembers start from VCA (:func:`~xr_unmixsr.unmixing.scene.robust_vca`) on LR pixels.
* **Baselines at the same budget**: ``"unmixingsr-nomam"`` (UnmixingSR without MAM and without
  autoencoder, loss L1 + alpha SAD), ``"convsr"`` (:class:`~xr_unmixsr.models.ConvSR`, same loss),
  ``"convsr-aux"`` (ConvSR trained with the AbunLoss of a frozen autoencoder through
  :class:`~xr_unmixsr.models.AuxiliaryUnmixing`, step I alternating as for UnmixingSR; the saved
  model is the ConvSR backbone alone, which is all inference needs) and ``"unmixingsr-aux"`` (the
  same plug-in on UnmixingSR's own backbone, ``unmixingsr-nomam``: the AbunLoss without the MAM,
  which separates what the auxiliary loss and the material-aware module each bring).
* **Fine-tuning**: ``train_sr(..., model=name_or_path)`` starts from a trained UnmixingSR or ConvSR
  model instead of a fresh network: its weights, its configuration (the shape arguments are
  ignored) and its normalisation gain are kept, and ``architecture`` must be one that trains such
  a network (:func:`_fits`). UnmixingSR with its MAM keeps its own frozen autoencoder, so step I
  does not run; ``"unmixingsr-aux"`` and ``"convsr-aux"`` start their backbone from the model and
  train a fresh autoencoder as from scratch. The scenes must have the model's band count.
* **Resuming**: with ``checkpoint=path``, the training state is written at the end of every epoch
  to ``<stem>.train.safetensors`` (weights of every trained module and every optimiser tensor) and
  ``<stem>.train.json`` (epoch, history, seconds per epoch, optimiser hyper-parameters, the patch
  sampler's PCG64 state and the run's settings). Nothing is pickled. With ``resume=True`` an
  existing state of the same settings (``epochs`` may differ) is loaded and training goes on from
  its epoch; because the networks are initialised from ``seed`` and the sampler is the only random
  source during training, the result equals an uninterrupted run (on the same device and thread
  count). The final model goes to ``<stem>.safetensors`` + ``<stem>.json`` by
  :func:`~xr_unmixsr.models.save_checkpoint`, loadable by ``xr_unmixsr.upscale(..., model=path)``;
  the training state is kept, so a later call with more ``epochs`` continues the run.
* **Progress and stopping**: ``on_progress(done, total)`` is called after every optimiser step
  (steps of the epochs run in this call); an exception it raises stops training, keeping the
  state of the finished epochs (how the QGIS plugin cancels a run).
* **Determinism**: networks are built under ``torch.manual_seed(seed)`` (the global torch RNG is
  restored afterwards) and the draws come from the sampler's seeded generator, so the same seed
  gives the same weights on CPU.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import xarray as xr
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from ..errors import BandMismatchError, ParameterError
from ..models import (
    SMILE,
    AuxiliaryUnmixing,
    ConvSR,
    SRModel,
    UnmixingAutoencoder,
    UnmixingSR,
    checkpoint_stem,
    get_model,
    load_checkpoint,
    resolve_device,
    save_checkpoint,
    smile_loss,
    sr_loss,
    unmixing_loss,
)
from ..models.conv import TRAINING_NEGATIVE_SLOPE
from ..models.unmixingsr import abundance_loss
from ..unmixing.scene import robust_vca, typical_endmembers
from .patches import PatchSampler, _as_list

__all__ = [
    "ARCHITECTURES",
    "TrainResult",
    "band_coordinates",
    "hardware",
    "train_autoencoder",
    "train_smile",
    "train_sr",
]

#: the ``architecture`` values of :func:`train_sr`.
ARCHITECTURES = ("unmixingsr", "unmixingsr-nomam", "convsr", "convsr-aux", "unmixingsr-aux")

#: the architectures trained with the AbunLoss of a frozen autoencoder (and step I).
_WITH_AUTOENCODER = ("unmixingsr", "convsr-aux", "unmixingsr-aux")

_BETAS = (0.9, 0.99)


@dataclass
class TrainResult:
    """What a trainer returns.

    Attributes:
        network: the trained network (eval mode, on the training device).
        model: an :class:`SRModel` ready for :func:`xr_unmixsr.upscale` (None for the
            autoencoder alone).
        history: one dict per epoch: ``epoch``, ``lr`` and the mean of each loss term.
        seconds_per_epoch: wall-clock seconds of each epoch run in this call (resumed epochs
            keep the times recorded when they ran).
        device: the torch device trained on, e.g. ``"cpu"``.
        autoencoder: the trained unmixing autoencoder, when there is one.
        band_mask: bool (n_bands,): the bands used in the losses.
        checkpoint: the weights path of the saved final model, or None.
        config: the network's constructor arguments (as saved in the checkpoint).
    """

    network: nn.Module
    model: SRModel | None
    history: list[dict[str, float]]
    seconds_per_epoch: list[float]
    device: str
    autoencoder: UnmixingAutoencoder | None = None
    band_mask: np.ndarray | None = None
    checkpoint: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def final_losses(self) -> dict[str, float]:
        """The loss terms of the last epoch (empty before any epoch)."""
        if not self.history:
            return {}
        return {k: v for k, v in self.history[-1].items() if k not in ("epoch", "lr")}


# -- helpers -----------------------------------------------------------------------------------


def _seeded(seed: int, build: Callable[[], Any]) -> Any:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _adam(params: Any, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, betas=_BETAS, weight_decay=0.0)


def _state_paths(checkpoint: str | os.PathLike[str]) -> tuple[Path, Path]:
    stem = checkpoint_stem(checkpoint)
    return (
        stem.with_name(stem.name + ".train.safetensors"),
        stem.with_name(stem.name + ".train.json"),
    )


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: np.asarray(o).tolist()))


def _save_state(
    checkpoint: Path,
    modules: dict[str, nn.Module],
    optimisers: dict[str, torch.optim.Optimizer],
    meta: dict[str, Any],
) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"module/{name}/{key}"] = value.detach().cpu().clone().contiguous()
    optim_meta: dict[str, Any] = {}
    for name, opt in optimisers.items():
        sd = opt.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for idx, entry in sd["state"].items():
            scalars[str(idx)] = {}
            for key, value in entry.items():
                if torch.is_tensor(value):
                    tensors[f"optim/{name}/{idx}/{key}"] = value.detach().cpu().clone()
                else:
                    scalars[str(idx)][key] = value
        optim_meta[name] = {"param_groups": sd["param_groups"], "state": scalars}
    st_path, json_path = _state_paths(checkpoint)
    st_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_st, tmp_json = st_path.with_suffix(".tmp"), json_path.with_suffix(".jtmp")
    save_file(tensors, str(tmp_st))
    tmp_json.write_text(json.dumps(_jsonable({**meta, "optimisers": optim_meta}), indent=1))
    os.replace(tmp_st, st_path)
    os.replace(tmp_json, json_path)


def _load_state(
    checkpoint: Path,
    modules: dict[str, nn.Module],
    optimisers: dict[str, torch.optim.Optimizer],
) -> dict[str, Any]:
    st_path, json_path = _state_paths(checkpoint)
    meta = json.loads(json_path.read_text())
    tensors = load_file(str(st_path))
    for name, module in modules.items():
        prefix = f"module/{name}/"
        module.load_state_dict(
            {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        )
    for name, opt in optimisers.items():
        saved = meta["optimisers"][name]
        state: dict[int, dict[str, Any]] = {}
        for idx, scalars in saved["state"].items():
            state[int(idx)] = dict(scalars)
        prefix = f"optim/{name}/"
        for key, value in tensors.items():
            if key.startswith(prefix):
                idx, tname = key[len(prefix) :].split("/", 1)
                state.setdefault(int(idx), {})[tname] = value
        groups = [
            {k: (tuple(v) if k == "betas" else v) for k, v in g.items()}
            for g in saved["param_groups"]
        ]
        opt.load_state_dict({"state": state, "param_groups": groups})
    return meta


def _band_index(mask: np.ndarray, device: torch.device) -> torch.Tensor | slice:
    if mask.all():
        return slice(None)
    return torch.from_numpy(np.flatnonzero(mask)).to(device)


def _band_factor(mask: np.ndarray, device: torch.device) -> torch.Tensor | None:
    if mask.all():
        return None
    return torch.from_numpy(mask.astype(np.float32)).to(device)[None, :, None, None]


class _Meter:
    """Running sums of loss terms (kept on the device; read at the end or for the bar)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, **terms: torch.Tensor) -> None:
        for k, v in terms.items():
            v = v.detach()
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
            self.counts[k] = self.counts.get(k, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: float(self.sums[k]) / self.counts[k] for k in self.sums}


def _fit(
    options: _RunOptions,
    *,
    modules: dict[str, nn.Module],
    optimisers: dict[str, torch.optim.Optimizer],
    run_epoch: Callable[[int, Any], dict[str, float]],
    steps_in_epoch: Callable[[int], int],
    sampler: PatchSampler,
    signature: dict[str, Any],
    desc: str,
) -> tuple[list[dict[str, float]], list[float]]:
    """Run epochs ``[start, epochs)``, saving the state after each; returns history and times."""
    epochs, lr, lr_halving_epochs = options.epochs, options.lr, options.lr_halving_epochs
    checkpoint, resume, progress = options.checkpoint, options.resume, options.progress
    history: list[dict[str, float]] = []
    seconds: list[float] = []
    start = 0
    signature = _jsonable(signature)
    if checkpoint is not None and resume and all(p.exists() for p in _state_paths(checkpoint)):
        saved = json.loads(_state_paths(checkpoint)[1].read_text())
        if saved.get("signature") != signature:
            diff = sorted(
                k
                for k in set(signature) | set(saved.get("signature", {}))
                if signature.get(k) != saved.get("signature", {}).get(k)
            )
            raise ParameterError(
                f"the training state beside {checkpoint} was made with other settings ({', '.join(diff)} differ): "
                "use the same settings to resume, resume=False to start afresh, or another checkpoint path"
            )
        meta = _load_state(checkpoint, modules, optimisers)
        start = int(meta["epoch"])
        history = list(meta["history"])
        seconds = list(meta["seconds_per_epoch"])
        sampler.rng_state = meta["sampler_rng"]
    total = sum(steps_in_epoch(e) for e in range(start, epochs))
    done = 0
    for epoch in range(start, epochs):
        lr_now = lr * 0.5 ** (epoch // lr_halving_epochs) if lr_halving_epochs else lr
        for opt in optimisers.values():
            for group in opt.param_groups:
                group["lr"] = lr_now
        for module in modules.values():
            module.train()
        t0 = time.perf_counter()
        with _StepBar(
            total=steps_in_epoch(epoch),
            desc=f"{desc} epoch {epoch + 1}/{epochs}",
            disable=not progress,
            leave=False,
            on_progress=options.on_progress,
            done=done,
            run_total=total,
        ) as bar:
            losses = run_epoch(epoch, bar)
        done += steps_in_epoch(epoch)
        if options.device.type == "cuda":
            torch.cuda.synchronize(options.device)
        seconds.append(time.perf_counter() - t0)
        history.append({"epoch": epoch + 1, "lr": lr_now, **losses})
        if progress:
            terms = ", ".join(f"{k} {v:.4g}" for k, v in losses.items())
            tqdm.write(f"{desc} epoch {epoch + 1}/{epochs}: {terms} ({seconds[-1]:.1f} s)")
        if checkpoint is not None:
            _save_state(
                checkpoint,
                modules,
                optimisers,
                {
                    "epoch": epoch + 1,
                    "history": history,
                    "seconds_per_epoch": seconds,
                    "sampler_rng": sampler.rng_state,
                    "signature": signature,
                },
            )
    for module in modules.values():
        module.eval()
    return history, seconds


class _StepBar(tqdm):
    """The progress bar of one epoch, which also reports every step to ``on_progress``.

    ``on_progress(done, total)`` counts the optimiser steps of all epochs run in this call.
    """

    def __init__(
        self,
        *args: Any,
        on_progress: Callable[[int, int], None] | None,
        done: int,
        run_total: int,
        **kwargs: Any,
    ) -> None:
        self.on_progress, self.done, self.run_total = on_progress, done, run_total
        super().__init__(*args, **kwargs)

    def update(self, n: int = 1) -> bool | None:
        shown = super().update(n)
        self.done += n
        if self.on_progress is not None:
            self.on_progress(self.done, self.run_total)
        return shown


def _postfix(bar: Any, meter: _Meter, step: int) -> None:
    bar.update(1)
    if not bar.disable and (step % 10 == 0):
        bar.set_postfix({k: f"{v:.4g}" for k, v in meter.means().items()})


def band_coordinates(cube: xr.DataArray) -> dict[str, list[float]]:
    """The ``wavelength`` and ``fwhm`` band coordinates of ``cube`` (those it has), as lists."""
    return {
        name: [float(v) for v in np.asarray(cube[name].values)]
        for name in ("wavelength", "fwhm")
        if name in cube.coords and cube[name].ndim == 1
    }


def _data_paths(cubes: Sequence[xr.DataArray]) -> list[str | None]:
    return [c.encoding.get("source") for c in cubes]


#: endmember initialisations: VCA, VCA refined to typical pixels, random.
INITS = ("vca", "typical", "random")


def _check_init(init: str) -> None:
    if init not in INITS:
        raise ParameterError(f"init must be one of {INITS}, got {init!r}")


def _init_endmembers(
    net: UnmixingAutoencoder | SMILE, sampler: PatchSampler, n_endmembers: int, seed: int, init: str
) -> None:
    """Set the decoder's endmembers from VCA on sampled pixels (``"vca"``), refined to typical
    pixels (``"typical"``, :func:`~xr_unmixsr.unmixing.scene.typical_endmembers`); ``"random"``
    keeps the decoder's random initialisation."""
    if init == "random":
        return
    pixels = sampler.sample_pixels(4096)
    used = int(sampler.band_mask.sum())
    if used < n_endmembers or pixels.shape[0] < n_endmembers:
        raise ParameterError(
            f"VCA needs at least {n_endmembers} bands and pixels, got {used} used bands and {pixels.shape[0]} pixels: use fewer endmembers or init='random'"
        )
    em = robust_vca(pixels, n_endmembers, seed=seed)
    if init == "typical":
        em = typical_endmembers(pixels, em)
    full = np.zeros((n_endmembers, sampler.n_bands), np.float32)
    full[:, sampler.band_mask] = em
    net.init_endmembers_(full)


def _describe(kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """JSON-friendly summary of sampler arguments (data arrays by their shape only)."""
    out: dict[str, Any] = {}
    for k, v in (kwargs or {}).items():
        if isinstance(v, (str, int, float, bool, type(None))):
            out[k] = v
        elif isinstance(v, xr.DataArray):
            out[k] = [list(v.shape), v.encoding.get("source")]
        elif isinstance(v, (list, tuple)) and all(isinstance(c, xr.DataArray) for c in v):
            out[k] = [[list(c.shape), c.encoding.get("source")] for c in v]
        else:
            out[k] = np.asarray(v).tolist() if np.ndim(v) else repr(v)
    return out


def _check_common(epochs: int, steps_per_epoch: int, batch_size: int) -> None:
    if epochs < 0 or steps_per_epoch < 1 or batch_size < 1:
        raise ParameterError(
            f"need epochs >= 0, steps_per_epoch >= 1 and batch_size >= 1, got {epochs}, {steps_per_epoch}, {batch_size}"
        )


def _ae_step(
    ae: UnmixingAutoencoder,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    bands: torch.Tensor | slice,
    alpha: float,
    tv_weight: float,
) -> torch.Tensor:
    recon, _ = ae(x)
    loss = unmixing_loss(x[:, bands], recon[:, bands], ae.endmembers[:, bands], alpha, tv_weight)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    ae.clamp_endmembers_()
    return loss


def hardware(device: str | torch.device = "cpu") -> dict[str, Any]:
    """What the training ran on, for model cards: CPU model and cores, torch threads, GPU name."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    dev = torch.device(device)
    return {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "torch": torch.__version__,
    }


def _training_card(
    *,
    architecture: str,
    cubes: Sequence[xr.DataArray],
    sampler: PatchSampler,
    history: list[dict[str, float]],
    seconds: list[float],
    device: torch.device,
    settings: dict[str, Any],
    info: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "architecture": architecture,
        "data": _data_paths(cubes),
        "epochs": len(history),
        "seconds_per_epoch": seconds,
        "device": str(device),
        "hardware": hardware(device),
        "final_losses": {
            k: v for k, v in (history[-1] if history else {}).items() if k not in ("epoch", "lr")
        },
        "history": history,
        "excluded_bands": np.flatnonzero(~sampler.band_mask).tolist(),
        "normalisation": {"offset": sampler.offset, "gain": np.asarray(sampler.gain).tolist()},
        "degradation": sampler.degradation if sampler.lr_cubes is None else "paired",
        "settings": settings,
        **(info or {}),
    }


@dataclass(frozen=True)
class _RunOptions:
    """The arguments that all three trainers take alike, gathered once per trainer call."""

    epochs: int
    steps_per_epoch: int
    patch: int
    batch_size: int
    lr: float
    lr_halving_epochs: int | None
    seed: int
    device: torch.device
    checkpoint: Path | None
    resume: bool
    progress: bool
    on_progress: Callable[[int, int], None] | None
    sampler_kwargs: dict[str, Any] | None
    info: dict[str, Any] | None

    @classmethod
    def of(cls, arguments: dict[str, Any]) -> _RunOptions:
        """The options among a trainer's ``arguments`` (its ``locals()``), picked by name.

        The device is resolved and the checkpoint made a :class:`~pathlib.Path`.
        """
        kw = {f.name: arguments[f.name] for f in fields(cls)}
        kw["device"] = resolve_device(kw["device"])
        if kw["checkpoint"] is not None:
            kw["checkpoint"] = Path(kw["checkpoint"])
        return cls(**kw)

    def sampler(
        self, cubes: xr.DataArray | Sequence[xr.DataArray], scale: int, gain: Any = None
    ) -> PatchSampler:
        """The seeded patch sampler of ``patch`` pixels, with ``sampler_kwargs`` (and ``gain``)."""
        kw = dict(self.sampler_kwargs or {})
        if gain is not None:
            kw.setdefault("gain", gain)
        return PatchSampler(cubes, scale, self.patch, seed=self.seed, **kw)

    def settings(self) -> dict[str, Any]:
        """The training settings that all trainers record (in the card and resume signature)."""
        return {
            "patch": self.patch,
            "batch_size": self.batch_size,
            "steps_per_epoch": self.steps_per_epoch,
            "lr": self.lr,
            "lr_halving_epochs": self.lr_halving_epochs,
            "seed": self.seed,
            "sampler": _describe(self.sampler_kwargs),
        }


def _run(
    options: _RunOptions,
    *,
    network: nn.Module,
    architecture: str,
    scale: int,
    config: dict[str, Any],
    settings: dict[str, Any],
    modules: dict[str, nn.Module],
    optimisers: dict[str, torch.optim.Optimizer],
    run_epoch: Callable[[int, Any], dict[str, float]],
    sampler: PatchSampler,
    cubes: Any,
    steps_in_epoch: Callable[[int], int] | None = None,
    autoencoder: UnmixingAutoencoder | None = None,
    before_save: Callable[[], None] | None = None,
) -> TrainResult:
    """Train (resumably), then build the inference model, save it with its card, wrap it up.

    ``settings`` are the trainer's own, to which the :meth:`_RunOptions.settings` are added;
    ``steps_in_epoch`` defaults to ``steps_per_epoch`` in every epoch; ``before_save`` runs
    between training and saving (e.g. to switch a network to inference output).
    """
    settings = {**settings, **options.settings()}
    history, seconds = _fit(
        options,
        modules=modules,
        optimisers=optimisers,
        run_epoch=run_epoch,
        steps_in_epoch=steps_in_epoch or (lambda e: options.steps_per_epoch),
        sampler=sampler,
        signature=settings,
        desc=architecture,
    )
    if before_save is not None:
        before_save()
    card = _training_card(
        architecture=architecture,
        cubes=_as_list(cubes),
        sampler=sampler,
        history=history,
        seconds=seconds,
        device=options.device,
        settings=settings,
        info=options.info,
    )
    checkpoint = options.checkpoint
    network.eval()
    model = SRModel(
        name=checkpoint_stem(checkpoint).name if checkpoint else architecture,
        network=network,
        scale=scale,
        halo=int(network.halo),
        n_bands=sampler.n_bands,
        offset=np.float32(sampler.offset),
        gain=np.asarray(sampler.gain, np.float32),
        card={"config": config, "training": card},
    )
    path = None
    if checkpoint is not None:
        path = save_checkpoint(
            model,
            checkpoint,
            config=config,
            training=_jsonable(card),
            **band_coordinates(sampler.cubes[0]),
        )
    return TrainResult(
        network=network,
        model=model,
        history=history,
        seconds_per_epoch=seconds,
        device=str(options.device),
        autoencoder=autoencoder,
        band_mask=sampler.band_mask.copy(),
        checkpoint=path,
        config=config,
    )


# -- step I alone ------------------------------------------------------------------------------


def train_autoencoder(
    cubes: xr.DataArray | Sequence[xr.DataArray],
    n_endmembers: int,
    *,
    epochs: int = 10,
    steps_per_epoch: int = 100,
    patch: int = 32,
    batch_size: int = 8,
    lr: float = 5e-4,
    lr_halving_epochs: int | None = 40,
    seed: int = 0,
    device: str | torch.device = "auto",
    init: str = "vca",
    scale: int = 1,
    features: int = 32,
    n_grams: int = 2,
    alpha: float = 0.1,
    tv_weight: float = 1e-3,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = True,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    sampler_kwargs: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
) -> TrainResult:
    """Train the unmixing autoencoder alone (step I of UnmixingSR) with the unmixing loss (eq. 8).

    Args:
        cubes: one or more (band, y, x) DataArrays.
        n_endmembers: number of endmembers ``p``.
        epochs: epochs to train (in total, counting resumed ones).
        steps_per_epoch: optimiser steps per epoch.
        patch: patch size in pixels of the training patches (at the resolution given by ``scale``
            after degradation: windows of ``patch`` pixels are degraded to ``patch / scale``).
        batch_size: patches per step.
        lr: initial learning rate (Adam, betas (0.9, 0.99)).
        lr_halving_epochs: halve the learning rate every this many epochs (None: constant).
        seed: seed of the network initialisation and of the patch draws.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
        init: ``"vca"`` (endmembers from VCA on a pixel sample), ``"typical"`` (those refined
            to typical pixels, :func:`~xr_unmixsr.unmixing.scene.typical_endmembers`) or
            ``"random"``.
        scale: train on the LR patches of this factor (1: the scene's own pixels, which is what
            the autoencoder sees at inference inside UnmixingSR).
        features: feature channels of the encoder.
        n_grams: GRAMs in the encoder.
        alpha: weight of the SAD term.
        tv_weight: weight of the endmember spectral TV.
        checkpoint: where to save (``<stem>.safetensors``/``.json``, training state beside).
        resume: continue from the training state beside ``checkpoint`` when there is one.
        progress: show a progress bar with the running losses.
        on_progress: called as ``on_progress(done, total)`` after every optimiser step, counting
            the steps of the epochs run in this call; an exception it raises stops training
            (the state saved after the last finished epoch is kept, no final model is saved).
        sampler_kwargs: extra :class:`PatchSampler` arguments (``degradation``,
            ``normalisation``, ``lr_cubes``, ``augment``, ``band_dim``...).
        info: extra entries for the checkpoint's ``training`` card (command, arguments...).

    Returns:
        A :class:`TrainResult` whose ``network`` and ``autoencoder`` are the autoencoder; its
        ``model`` wraps it with ``scale=1`` (the checkpoint loads with
        :func:`~xr_unmixsr.models.load_checkpoint`, not as an SR model).
    """
    _check_common(epochs, steps_per_epoch, batch_size)
    _check_init(init)
    opts = _RunOptions.of(locals())
    dev = opts.device
    sampler = opts.sampler(cubes, scale)
    config = {
        "n_bands": sampler.n_bands,
        "n_endmembers": n_endmembers,
        "features": features,
        "n_grams": n_grams,
    }
    ae = _seeded(seed, lambda: UnmixingAutoencoder(**config))
    _init_endmembers(ae, sampler, n_endmembers, seed, init)
    ae.to(dev)
    opt = _adam(ae.parameters(), lr)
    bands = _band_index(sampler.band_mask, dev)

    def run_epoch(epoch: int, bar: Any) -> dict[str, float]:
        meter = _Meter()
        for step in range(steps_per_epoch):
            x, _ = sampler.sample(batch_size)
            loss = _ae_step(ae, opt, x.to(dev), bands, alpha, tv_weight)
            meter.add(unmixing=loss)
            _postfix(bar, meter, step)
        return meter.means()

    settings = {
        "kind": "autoencoder",
        "config": config,
        "init": init,
        "scale": scale,
        "alpha": alpha,
        "tv_weight": tv_weight,
    }
    return _run(
        opts,
        network=ae,
        architecture="unmixing_autoencoder",
        scale=1,
        config=config,
        settings=settings,
        modules={"ae": ae},
        optimisers={"ae": opt},
        run_epoch=run_epoch,
        sampler=sampler,
        cubes=cubes,
        autoencoder=ae,
    )


# -- SR ----------------------------------------------------------------------------------------


def _given_autoencoder(
    autoencoder: UnmixingAutoencoder | TrainResult | str | os.PathLike[str],
) -> tuple[UnmixingAutoencoder, dict[str, Any], Any]:
    """(module, its constructor config, its gain or None) of a given autoencoder."""
    gain = None
    if isinstance(autoencoder, TrainResult):
        ae = autoencoder.autoencoder
        if ae is None:
            raise ParameterError("this TrainResult holds no autoencoder")
        cfg = dict(autoencoder.config)
        if autoencoder.model is not None:
            gain = autoencoder.model.gain
    elif isinstance(autoencoder, UnmixingAutoencoder):
        ae = autoencoder
        cfg = {
            "n_bands": ae.n_bands,
            "n_endmembers": ae.n_endmembers,
            "features": ae.head[0].out_channels,
            "n_grams": len(ae.grams),
        }
    else:
        loaded = load_checkpoint(autoencoder)
        if not isinstance(loaded.network, UnmixingAutoencoder):
            raise ParameterError(f"{autoencoder} is not an unmixing autoencoder checkpoint")
        ae, cfg, gain = loaded.network, dict(loaded.card.get("config", {})), loaded.gain
    return ae, cfg, gain


def _fits(architecture: str, network: nn.Module) -> bool:
    """Whether ``architecture`` (one of :data:`ARCHITECTURES`) trains a network like ``network``."""
    if architecture.startswith("convsr"):
        return isinstance(network, ConvSR)
    has_mam = getattr(network, "mam", None) is not None
    return isinstance(network, UnmixingSR) and has_mam == (architecture == "unmixingsr")


class _Start(NamedTuple):
    """Where fine-tuning starts: the model, a trainable copy of its network, its config."""

    model: SRModel
    network: nn.Module
    config: dict[str, Any]


def _start_from(model: str | os.PathLike[str] | SRModel, scale: int, architecture: str) -> _Start:
    """The model to fine-tune, checked against ``architecture``.

    Raises:
        ModelError: unknown model; UnsupportedScaleError: it upsamples by another factor.
        ParameterError: ``architecture`` does not train its network, or its card has no config.
    """
    start = get_model(model, scale)
    if not _fits(architecture, start.network):
        fitting = [a for a in ARCHITECTURES if _fits(a, start.network)]
        hint = (
            f"fine-tune it with architecture one of {fitting}"
            if fitting
            else "only UnmixingSR and ConvSR models can be fine-tuned (of a cascade, its stages)"
        )
        raise ParameterError(
            f"model {start.name!r} is a {type(start.network).__name__} network that "
            f"architecture {architecture!r} does not train: {hint}"
        )
    config = start.card.get("config")
    if not isinstance(config, dict):
        raise ParameterError(
            f"model {start.name!r} has no network config in its card: fine-tune a checkpoint "
            "written by train_sr or xr-unmixsr train"
        )
    return _Start(start, copy.deepcopy(start.network).train(), dict(config))


def train_sr(
    cubes: xr.DataArray | Sequence[xr.DataArray],
    scale: int,
    *,
    architecture: str = "unmixingsr",
    n_endmembers: int = 8,
    features: int = 32,
    n_grams: int = 4,
    depth: int = 2,
    ae_features: int = 32,
    ae_grams: int = 2,
    epochs: int = 100,
    steps_per_epoch: int = 100,
    patch: int = 64,
    batch_size: int = 8,
    lr: float = 5e-4,
    lr_halving_epochs: int | None = 40,
    alpha: float = 0.1,
    abun_weight: float = 1e-3,
    tv_weight: float = 1e-3,
    ae_steps: int | None = None,
    ae_epochs: int | None = None,
    autoencoder: UnmixingAutoencoder | TrainResult | str | os.PathLike[str] | None = None,
    init: str = "vca",
    model: str | os.PathLike[str] | SRModel | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = True,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    sampler_kwargs: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a super-resolution network on self-supervised (or paired) patches, or fine-tune one.

    Args:
        cubes: one or more (band, y, x) DataArrays (the HR scenes).
        scale: SR factor (2, 3, 4, 8).
        architecture: ``"unmixingsr"`` (with MAM and AbunLoss, two-step alternating training),
            ``"unmixingsr-nomam"``, ``"convsr"``, ``"convsr-aux"`` or ``"unmixingsr-aux"`` (see
            the module docstring).
        n_endmembers: endmembers of the autoencoder.
        features: feature channels of the SR network.
        n_grams: GRAMs in the UnmixingSR body.
        depth: hidden convolutions of ConvSR.
        ae_features: feature channels of the autoencoder's encoder.
        ae_grams: GRAMs in the autoencoder's encoder.
        epochs: epochs in total (counting resumed ones).
        steps_per_epoch: step-II (SR) optimiser steps per epoch.
        patch: HR patch size (a multiple of ``scale``).
        batch_size: patches per step.
        lr: initial learning rate (paper 5e-4), for both steps.
        lr_halving_epochs: halve the learning rate every this many epochs (paper 40; None: never).
        alpha: weight of the SAD terms (paper 0.1).
        abun_weight: weight ``beta`` of the AbunLoss (paper eq. 12: 1e-3; Sec. IV-A: 0.2).
        tv_weight: weight of the endmember TV in the unmixing loss.
        ae_steps: step-I optimiser steps per epoch (default ``steps_per_epoch``).
        ae_epochs: run step I in the first ``ae_epochs`` epochs only (None: every epoch).
        autoencoder: a trained autoencoder (module, :class:`TrainResult` or checkpoint path) to
            use frozen instead of step I; a checkpoint's gain is reused for normalisation.
        init: endmember initialisation of step I, ``"vca"``, ``"typical"`` or ``"random"``.
        model: fine-tune this trained model (a shipped name, a checkpoint path or an
            :class:`SRModel` of UnmixingSR or ConvSR for ``scale``) instead of training a new
            network: training starts from its weights, with its configuration (``features``,
            ``n_grams``, ``depth`` and, for ``"unmixingsr"``, the autoencoder's shape and
            weights are the model's) and its normalisation. ``architecture`` must train such a
            network (e.g. ``"unmixingsr"`` for the shipped models) and the scenes must have the
            model's bands. A smaller ``lr`` and few epochs are the usual choice.
        seed: seed of the initialisation and of the patch draws.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
        checkpoint: where to save the final model (and, beside it, the training state).
        resume: continue from the training state beside ``checkpoint`` when there is one.
        progress: show a progress bar with the running losses.
        on_progress: called as ``on_progress(done, total)`` after every optimiser step, counting
            the steps of the epochs run in this call; an exception it raises stops training
            (the state saved after the last finished epoch is kept, no final model is saved).
        sampler_kwargs: extra :class:`PatchSampler` arguments (``degradation``,
            ``gaussian_sigma``, ``normalisation``, ``lr_cubes``, ``augment``, ``band_dim``...).
        info: extra entries for the checkpoint's ``training`` card (command, arguments...).

    Returns:
        A :class:`TrainResult`: ``model`` is an :class:`SRModel` (network in eval mode, halo,
        n_bands, offset/gain) for :func:`xr_unmixsr.upscale`; ``history`` has per epoch ``sr``
        (the step-II loss), ``abun`` (the AbunLoss, when used) and ``unmixing`` (step I, when
        run).

    Raises:
        ParameterError: unknown architecture or inconsistent settings, a ``model`` that
            ``architecture`` does not train, or a training state of other settings beside
            ``checkpoint``.
        BandMismatchError: the scenes do not have the bands of ``model``.
    """
    _check_common(epochs, steps_per_epoch, batch_size)
    if architecture not in ARCHITECTURES:
        raise ParameterError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    _check_init(init)
    scale = int(scale)
    opts = _RunOptions.of(locals())
    dev = opts.device
    uses_ae = architecture in _WITH_AUTOENCODER
    start = _start_from(model, scale, architecture) if model is not None else None
    # UnmixingSR with its MAM fine-tunes with the frozen autoencoder it holds
    inherits_ae = start is not None and architecture == "unmixingsr"
    if inherits_ae and autoencoder is not None:
        raise ParameterError(
            "the model to fine-tune holds its own autoencoder: leave autoencoder= out"
        )
    given = _given_autoencoder(autoencoder) if (uses_ae and autoencoder is not None) else None
    gain = start.model.gain if start is not None else (given[2] if given else None)
    sampler = opts.sampler(cubes, scale, gain=gain)
    n_bands = sampler.n_bands
    if start is not None and start.model.n_bands not in (None, n_bands):
        raise BandMismatchError(
            f"model {start.model.name!r} takes {start.model.n_bands} bands, the scenes have {n_bands}: "
            "fine-tuning keeps a model's bands; train a new model (without model=) on them"
        )
    ae_config = {
        "n_bands": n_bands,
        "n_endmembers": n_endmembers,
        "features": ae_features,
        "n_grams": ae_grams,
    }
    if inherits_ae and start is not None:
        ae_config.update(
            n_endmembers=start.config["n_endmembers"],
            features=start.config["ae_features"],
            n_grams=start.config["ae_grams"],
        )
    if given is not None:
        ae_config = {**ae_config, **{k: given[1][k] for k in ae_config if k in given[1]}}
        if ae_config["n_bands"] != n_bands:
            raise ParameterError(
                f"the given autoencoder takes {ae_config['n_bands']} bands, the scenes have {n_bands}"
            )

    def build() -> tuple[nn.Module, nn.Module, dict[str, Any], UnmixingAutoencoder | None]:
        ae = UnmixingAutoencoder(**ae_config) if uses_ae and not inherits_ae else None
        if start is not None:
            backbone, config = start.network, start.config
        elif architecture.startswith("unmixingsr"):
            config = {
                "n_bands": n_bands,
                "scale": scale,
                "features": features,
                "n_grams": n_grams,
                "n_endmembers": ae_config["n_endmembers"],
                "use_mam": architecture == "unmixingsr",
                "ae_features": ae_config["features"],
                "ae_grams": ae_config["n_grams"],
            }
            backbone: nn.Module = UnmixingSR(**config)
        else:
            config = {
                "n_bands": n_bands,
                "scale": scale,
                "features": features,
                "depth": depth,
                "negative_slope": TRAINING_NEGATIVE_SLOPE,
            }
            backbone = ConvSR(**config)
        if architecture.endswith("-aux"):
            wrapped = AuxiliaryUnmixing(backbone, UnmixingAutoencoder(**ae_config), scale)
            return wrapped, backbone, config, ae
        return backbone, backbone, config, ae

    net, infer_net, config, ae = _seeded(seed, build)
    if ae is not None:
        if given is not None:
            ae.load_state_dict(given[0].state_dict())
        else:
            _init_endmembers(ae, sampler, ae_config["n_endmembers"], seed, init)
    frozen_ae = net.autoencoder if uses_ae else None
    if frozen_ae is not None and ae is not None:
        frozen_ae.load_state_dict(ae.state_dict())
    net.to(dev)
    if ae is not None:
        ae.to(dev)
    train_params = [p for p in net.parameters() if p.requires_grad]
    opt = _adam(train_params, lr)
    modules: dict[str, nn.Module] = {"net": net}
    optimisers: dict[str, torch.optim.Optimizer] = {"net": opt}
    run_step_i = ae is not None and given is None
    ae_opt = None
    if run_step_i and ae is not None:
        ae_opt = _adam(ae.parameters(), lr)
        modules["ae"] = ae
        optimisers["ae"] = ae_opt
    n_ae_steps = steps_per_epoch if ae_steps is None else int(ae_steps)
    bands = _band_index(sampler.band_mask, dev)
    factor = _band_factor(sampler.band_mask, dev)

    def step_i_now(epoch: int) -> bool:
        return run_step_i and (ae_epochs is None or epoch < ae_epochs)

    def run_epoch(epoch: int, bar: Any) -> dict[str, float]:
        meter = _Meter()
        if step_i_now(epoch) and ae is not None and ae_opt is not None:
            for step in range(n_ae_steps):
                x, _ = sampler.sample(batch_size)
                meter.add(unmixing=_ae_step(ae, ae_opt, x.to(dev), bands, alpha, tv_weight))
                _postfix(bar, meter, step)
            if frozen_ae is not None:
                frozen_ae.load_state_dict(ae.state_dict())
                frozen_ae.eval()
        for step in range(steps_per_epoch):
            lr_b, hr_b = sampler.sample(batch_size)
            lr_b, hr_b = lr_b.to(dev), hr_b.to(dev)
            sr = net(lr_b)
            abun_sr = abun_lr_up = None
            if uses_ae:
                sr_used = sr if factor is None else sr * factor
                abun_sr, abun_lr_up = net.abundance_pair(lr_b, sr_used)
            loss = sr_loss(sr[:, bands], hr_b[:, bands], abun_sr, abun_lr_up, alpha, abun_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            terms = {"sr": loss}
            if abun_sr is not None and abun_lr_up is not None:
                terms["abun"] = abundance_loss(abun_sr.detach(), abun_lr_up)
            meter.add(**terms)
            _postfix(bar, meter, step)
        return meter.means()

    settings = {
        "kind": "sr",
        "architecture": architecture,
        "config": config,
        "ae_config": ae_config if uses_ae else None,
        "given_autoencoder": given is not None,
        "fine_tuned_from": start.model.name if start is not None else None,
        "init": init,
        "ae_steps": n_ae_steps if run_step_i else 0,
        "ae_epochs": ae_epochs,
        "alpha": alpha,
        "abun_weight": abun_weight,
        "tv_weight": tv_weight,
    }
    return _run(
        opts,
        network=infer_net,
        architecture=architecture,
        scale=scale,
        config=config,
        settings=settings,
        modules=modules,
        optimisers=optimisers,
        run_epoch=run_epoch,
        steps_in_epoch=lambda e: steps_per_epoch + (n_ae_steps if step_i_now(e) else 0),
        sampler=sampler,
        cubes=cubes,
        autoencoder=frozen_ae,
    )


# -- SMILE -------------------------------------------------------------------------------------


def train_smile(
    cubes: xr.DataArray | Sequence[xr.DataArray],
    scale: int,
    n_endmembers: int,
    *,
    features: int = 32,
    n_grams: int = 2,
    epochs: int = 100,
    steps_per_epoch: int = 100,
    patch: int = 64,
    batch_size: int = 8,
    lr: float = 5e-4,
    lr_halving_epochs: int | None = 40,
    alpha: float = 0.1,
    tv_weight: float = 1e-3,
    unmixing_weight: float = 1.0,
    init: str = "vca",
    seed: int = 0,
    device: str | torch.device = "auto",
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = True,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    sampler_kwargs: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
) -> TrainResult:
    """Train the SMILE multitask network with :func:`~xr_unmixsr.models.smile_loss`.

    One optimiser trains both heads and the shared decoder on (LR, HR) patches (the HR patch is
    the SR target); the endmembers start from VCA on LR pixels and are clamped non-negative after
    every step. The returned network and checkpoint have ``output="sr"`` (what the tiling engine
    calls); set ``network.output = "dict"`` for the abundances and endmembers.

    Args: as :func:`train_sr`, plus ``n_endmembers`` (endmembers of the unmixing head) and
    ``unmixing_weight`` (weight of the unmixing term of the loss).

    Returns:
        A :class:`TrainResult` with ``model`` for :func:`xr_unmixsr.upscale` and per-epoch
        ``loss`` in ``history``.
    """
    _check_common(epochs, steps_per_epoch, batch_size)
    _check_init(init)
    scale = int(scale)
    opts = _RunOptions.of(locals())
    dev = opts.device
    sampler = opts.sampler(cubes, scale)
    config = {
        "n_bands": sampler.n_bands,
        "scale": scale,
        "n_endmembers": n_endmembers,
        "features": features,
        "n_grams": n_grams,
    }
    net = _seeded(seed, lambda: SMILE(**config, output="dict"))
    _init_endmembers(net, sampler, n_endmembers, seed, init)
    net.to(dev)
    opt = _adam(net.parameters(), lr)
    bands = _band_index(sampler.band_mask, dev)

    def run_epoch(epoch: int, bar: Any) -> dict[str, float]:
        meter = _Meter()
        for step in range(steps_per_epoch):
            lr_b, hr_b = sampler.sample(batch_size)
            lr_b, hr_b = lr_b.to(dev), hr_b.to(dev)
            out = net(lr_b)
            used = {
                "sr": out["sr"][:, bands],
                "reconstruction": out["reconstruction"][:, bands],
                "endmembers": out["endmembers"][:, bands],
            }
            loss = smile_loss(
                used, lr_b[:, bands], hr_b[:, bands], alpha, tv_weight, unmixing_weight
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            net.clamp_endmembers_()
            meter.add(loss=loss)
            _postfix(bar, meter, step)
        return meter.means()

    settings = {
        "kind": "smile",
        "config": config,
        "init": init,
        "alpha": alpha,
        "tv_weight": tv_weight,
        "unmixing_weight": unmixing_weight,
    }
    return _run(
        opts,
        before_save=lambda: setattr(net, "output", "sr"),
        network=net,
        architecture="smile",
        scale=scale,
        config={**config, "output": "sr"},
        settings=settings,
        modules={"net": net},
        optimisers={"net": opt},
        run_epoch=run_epoch,
        sampler=sampler,
        cubes=cubes,
    )
