"""The tiling engine: seam-free, batched application of an SR model to arrays of any size.

How a scene is processed:

1. The array (bands, H, W) is split into dask blocks; every block gets a halo of ``halo`` pixels
   from its neighbours (``dask.array.overlap`` with edge replication at the scene border).
2. Each block is cut into patches of ``tile`` x ``tile`` core pixels plus the halo; all patches of
   a block have one shape (the last row/column of patches is shifted back inside the block rather
   than padded), so they stack into batches of ``batch_size`` per network call.
3. Each patch's output is cropped to its core and written into the block's output.

Because every output pixel depends only on input pixels within the model's receptive field
(``halo``), and every patch sees that much real context, the result is the same as one network call
on the whole scene padded by ``halo`` at its border (:func:`predict_array`), for any chunking.

Missing values (NaN or ``nodata``) are replaced by the normalisation offset (0 after
normalisation) for the model, and the output pixels whose source pixel was missing are set back to
missing (the mask is upsampled by nearest neighbour). Masking and filling are per element, so they
do not depend on tiling either.

Models whose outputs are not the input bands (``SRModel.out_channels``, e.g. abundance maps) go
through the same engine: their output has ``out_channels`` channels, is not denormalised, and is
NaN at every pixel where a band the model uses is missing (:meth:`SRModel.output_mask`).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
import weakref
from typing import Any

import dask
import dask.array as da
import numpy as np
import torch

from ..errors import TilingError
from ..geometry import mask_invalid
from ..models.base import SRModel, resolve_device


def _fill_and_normalise(
    model: SRModel, block: np.ndarray, nodata: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return the normalised block with missing values at 0, and the missing-value mask.

    The block is not modified; with an identity normalisation and nothing missing it is returned
    as it is (no copy: for cheap models such as bicubic every pass over the data counts).
    """
    block = np.asarray(block, dtype=np.float32)
    invalid = mask_invalid(block, nodata)
    has_invalid = invalid.any()
    if model.identity_normalisation and not has_invalid:
        return block, invalid
    normalised = model.normalise(block)
    if has_invalid:
        normalised[invalid] = 0.0
    return normalised, invalid


def _mark_missing(
    out: np.ndarray, model: SRModel, invalid_core: np.ndarray, nodata: float
) -> np.ndarray:
    """Set the output pixels whose source was missing to missing (nearest upsampling)."""
    mask = model.output_mask(invalid_core)
    if mask.any():
        s = model.scale
        mask = mask.repeat(s, axis=-2).repeat(s, axis=-1)
        np.copyto(out, np.float32(model.output_nodata(nodata)), where=mask)
    return out


PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
CPU_BATCH_SIZE = 8
CPU_BATCH_BYTES = 128 * 2**20
_placement_lock = threading.Lock()
_batch_sizes: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[Any, ...], int]] = (
    weakref.WeakKeyDictionary()
)


def precision_context(
    device: torch.device, precision: str
) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision for the network call: torch autocast to ``precision`` (fp32: none)."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _placed(model: SRModel, device: torch.device) -> SRModel:
    """``model`` with its network on ``device``: moved once, by the first task that needs it.

    A distributed worker holds one copy of the model (one graph key), so each worker (and each
    GPU it is given) loads the weights onto its device once, lazily, when its first block runs.
    """
    param = next(model.network.parameters(), None)
    if param is not None and not _on(param.device, device):
        with _placement_lock:
            if not _on(param.device, device):
                model.to(device)
    return model


def _on(where: torch.device, device: torch.device) -> bool:
    """Is a tensor on ``where`` on ``device``? (``cuda`` without an index: the current GPU)."""
    return where.type == device.type and device.index in (None, where.index)


def batch_for_memory(
    free_bytes: int, per_patch_bytes: int, *, fraction: float = 0.5, cap: int = 256
) -> int:
    """Patches per network call that fit ``fraction`` of ``free_bytes`` (1 to ``cap``)."""
    return int(max(1, min(cap, fraction * free_bytes // max(per_patch_bytes, 1))))


def auto_batch_size(
    model: SRModel, patch_shape: tuple[int, int, int], device: torch.device, precision: str
) -> int:
    """The batch size for ``patch_shape`` patches: sized to the free memory of a CUDA device.

    On CUDA one patch is run through the network to measure its peak memory, and the batch
    fills half of the device's free memory (at most 256 patches); measured once per model,
    device and patch shape. On other devices: :data:`CPU_BATCH_SIZE` patches, fewer when their
    float32 output would exceed :data:`CPU_BATCH_BYTES` (larger batches do not run faster on a
    CPU, they only take memory).
    """
    if device.type != "cuda":
        channels, ph, pw = patch_shape
        out_bytes = 4 * (model.out_channels or channels) * ph * pw * model.scale**2
        return max(1, min(CPU_BATCH_SIZE, CPU_BATCH_BYTES // out_bytes))
    key = (str(device), patch_shape, precision)
    cache = _batch_sizes.setdefault(model.network, {})
    if key not in cache:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        with torch.inference_mode(), precision_context(device, precision):
            model.network(torch.zeros((1, *patch_shape), device=device))
        per_patch = torch.cuda.max_memory_allocated(device) - before
        cache[key] = batch_for_memory(torch.cuda.mem_get_info(device)[0], per_patch)
    return cache[key]


def _launch(
    model: SRModel, batch: np.ndarray, device: torch.device, precision: str
) -> tuple[torch.Tensor, Any]:
    """Start the network on ``batch``; return the (host) output and an event to wait for.

    On CUDA the copies go through pinned memory without blocking, so the caller can prepare and
    launch the next batch, or post-process the previous one, while this one runs.
    """
    x = torch.from_numpy(np.ascontiguousarray(batch))
    cuda = device.type == "cuda"
    x = x.pin_memory().to(device, non_blocking=True) if cuda else x.to(device)
    with precision_context(device, precision):
        y = model.network(x).float()
    if not cuda:
        return y.cpu(), None
    host = torch.empty(y.shape, dtype=torch.float32, pin_memory=True)
    host.copy_(y, non_blocking=True)
    done = torch.cuda.Event()
    done.record()
    return host, done


def _landed(launched: tuple[torch.Tensor, Any]) -> np.ndarray:
    """The output of :func:`_launch` as numpy, once it has arrived."""
    host, done = launched
    if done is not None:
        done.synchronize()
    return host.numpy()


def _starts(length: int, tile: int) -> list[int]:
    """Patch start offsets covering ``length`` with patches of ``min(tile, length)``."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile))
    return [*starts, length - tile]


def upscale_block(
    block: np.ndarray,
    *,
    model: SRModel,
    halo: int,
    tile: int,
    batch_size: int | None,
    device: str | torch.device,
    nodata: float,
    precision: str = "fp32",
) -> np.ndarray:
    """Upscale one block that carries ``halo`` pixels of context on each side.

    Args:
        block: (bands, h + 2*halo, w + 2*halo) values.
        model: the model (moved to ``device`` by the first block that runs there).
        halo: context pixels on each side of the block.
        tile: core size of the patches the block is cut into.
        batch_size: patches per network call; None: :func:`auto_batch_size`.
        device: where the network runs; ``"auto"`` is resolved where the block runs (on a
            distributed worker: that worker's GPU, if it has one).
        nodata: the value marking missing data (NaN for none).
        precision: ``"fp32"``, or ``"bf16"``/``"fp16"`` for mixed precision (torch autocast).

    Returns:
        (channels, h*scale, w*scale) float32: the model's output on the core of the block;
        channels are the bands, or ``model.out_channels``.
    """
    s = model.scale
    # dask already runs one task per core: torch's own intra-op threads in a worker thread would
    # oversubscribe the CPU (measured: 10-40 % slower, see docs/benchmarks.md). The setting is
    # per thread, so the caller's main thread keeps all its torch threads.
    if threading.current_thread() is not threading.main_thread() and torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    dev = resolve_device(device)
    _placed(model, dev)
    x, invalid = _fill_and_normalise(model, block, nodata)
    bands, hp, wp = x.shape
    h, w = hp - 2 * halo, wp - 2 * halo
    th, tw = min(tile, h), min(tile, w)
    windows = [(y0, x0) for y0 in _starts(h, th) for x0 in _starts(w, tw)]
    out = np.empty((model.out_channels or bands, h * s, w * s), np.float32)
    if batch_size is None:
        batch_size = auto_batch_size(model, (bands, th + 2 * halo, tw + 2 * halo), dev, precision)

    def unpack(chunk: list[tuple[int, int]], launched: tuple[torch.Tensor, Any]) -> None:
        for (y0, x0), patch in zip(chunk, _landed(launched), strict=True):
            model.denormalise_into(
                patch[:, halo * s : (halo + th) * s, halo * s : (halo + tw) * s],
                out[:, y0 * s : (y0 + th) * s, x0 * s : (x0 + tw) * s],
            )

    # on a GPU one batch is in flight: the next batch is cut and launched before the previous
    # one's output is unpacked on the CPU; on a CPU nothing runs in the background, so each
    # batch is unpacked at once and only one batch output is in memory
    in_flight = dev.type == "cuda"
    pending = None
    with torch.inference_mode():
        for i in range(0, len(windows), batch_size):
            chunk = windows[i : i + batch_size]
            batch = np.stack(
                [x[:, y0 : y0 + th + 2 * halo, x0 : x0 + tw + 2 * halo] for y0, x0 in chunk]
            )
            launched = (chunk, _launch(model, batch, dev, precision))
            if pending is not None:
                unpack(*pending)
                pending = None
            if in_flight:
                pending = launched
            else:
                unpack(*launched)
        if pending is not None:
            unpack(*pending)
    return _mark_missing(out, model, invalid[:, halo : halo + h, halo : halo + w], nodata)


def predict_array(
    model: SRModel,
    array: np.ndarray,
    *,
    device: str | torch.device = "auto",
    nodata: float = np.nan,
    precision: str = "fp32",
) -> np.ndarray:
    """One network call on a whole in-memory (bands, H, W) array, padded by the halo at its border.

    This is the reference the tiled engine reproduces exactly; use it for small arrays, tests and
    benchmarks.
    """
    dev = resolve_device(device)
    _placed(model, dev)
    padded = np.pad(
        np.asarray(array), ((0, 0), (model.halo, model.halo), (model.halo, model.halo)), mode="edge"
    )
    x, invalid = _fill_and_normalise(model, padded, nodata)
    with torch.inference_mode():
        out = _landed(_launch(model, x[None], dev, precision))[0]
    h, w = array.shape[-2:]
    s, hl = model.scale, model.halo
    result = np.empty((out.shape[0], h * s, w * s), np.float32)
    model.denormalise_into(out[:, hl * s : (hl + h) * s, hl * s : (hl + w) * s], result)
    return _mark_missing(result, model, invalid[:, hl : hl + h, hl : hl + w], nodata)


def _min_chunks(chunks: tuple[int, ...], minimum: int) -> tuple[int, ...]:
    """Merge neighbouring chunks until each is at least ``minimum`` long (the last absorbs the rest)."""
    merged: list[int] = []
    acc = 0
    for c in chunks:
        acc += c
        if acc >= minimum:
            merged.append(acc)
            acc = 0
    if acc:
        if merged:
            merged[-1] += acc
        else:
            merged.append(acc)
    return tuple(merged)


def upscale_array(
    data: np.ndarray | da.Array,
    model: SRModel,
    *,
    tile: int = 256,
    overlap: int | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "auto",
    nodata: float = np.nan,
    precision: str = "fp32",
) -> np.ndarray | da.Array:
    """Upscale a (bands, H, W) array with ``model``, tiled and batched, seam-free.

    Args:
        data: numpy array (processed now) or dask array (processed lazily, block by block).
        model: the model.
        tile: core size of the patches fed to the network.
        overlap: context pixels around each patch and block; at least the model's halo
            (default: the halo).
        batch_size: patches per network call; None: 8 on a CPU, sized to the free memory on a
            CUDA device (:func:`auto_batch_size`).
        device: "auto" (CUDA when available where each block runs), "cpu", "cuda", "cuda:1"...
        nodata: value marking missing data besides NaN.
        precision: "fp32" (default), or "bf16"/"fp16": mixed precision (torch autocast) for
            the network; the output stays float32.

    Returns:
        (bands, H*scale, W*scale) float32, numpy or dask like ``data`` (``model.out_channels``
        channels instead of the bands when the model sets it).

    Raises:
        TilingError: ``overlap`` smaller than the model's halo, ``tile`` smaller than the halo,
            ``batch_size < 1`` or an unknown ``precision``.
    """
    halo = model.halo if overlap is None else overlap
    if halo < model.halo:
        raise TilingError(
            f"overlap={overlap} is smaller than the receptive field of model {model.name!r} "
            f"({model.halo} pixels): tiles would show seams; use overlap>={model.halo} or leave it unset"
        )
    if tile < max(halo, 1):
        raise TilingError(
            f"tile={tile} is smaller than the halo of {halo} pixels: use tile>={max(halo, 1)} "
            "(tiles of 64 to 512 pixels are efficient)"
        )
    if batch_size is not None and batch_size < 1:
        raise TilingError(f"batch_size={batch_size} must be at least 1 (or None: automatic)")
    if precision not in PRECISIONS:
        raise TilingError(f"precision={precision!r}: use one of {', '.join(PRECISIONS)}")
    # the device is resolved, and the model moved there, where the blocks run (_placed)
    engine: dict[str, Any] = dict(
        tile=tile, batch_size=batch_size, device=device, nodata=nodata, precision=precision
    )
    kwargs: dict[str, Any] = dict(model=model, halo=halo, **engine)
    s = model.scale
    if not isinstance(data, da.Array):
        padded = np.pad(np.asarray(data), ((0, 0), (halo, halo), (halo, halo)), mode="edge")
        return upscale_block(padded, **kwargs)
    # dask cannot give a block more context than the array holds: pad tiny dimensions by edge
    # replication first (what the border handling does anyway) and crop their output after
    pad_y, pad_x = max(0, halo - data.shape[1]), max(0, halo - data.shape[2])
    if pad_y or pad_x:
        padded = da.pad(data, ((0, 0), (pad_y, pad_y), (pad_x, pad_x)), mode="edge")
        out = upscale_array(padded, model, overlap=halo, **engine)
        h, w = data.shape[1:]
        return out[:, pad_y * s : (pad_y + h) * s, pad_x * s : (pad_x + w) * s]
    data = data.rechunk(
        {0: -1, 1: _min_chunks(data.chunks[1], halo), 2: _min_chunks(data.chunks[2], halo)}
    )
    overlapped = da.overlap.overlap(
        data, depth={0: 0, 1: halo, 2: halo}, boundary={0: "none", 1: "nearest", 2: "nearest"}
    )
    out_chunks = (
        (model.out_channels,) if model.out_channels else data.chunks[0],
        tuple(c * s for c in data.chunks[1]),
        tuple(c * s for c in data.chunks[2]),
    )
    # the model enters the graph once, as one key every block task depends on: a distributed
    # worker receives it once (not once per task); the threaded scheduler passes the same object
    kwargs["model"] = _model_key(model)
    return overlapped.map_blocks(
        upscale_block,
        chunks=out_chunks,
        dtype=np.float32,
        meta=np.empty((0, 0, 0), np.float32),
        **kwargs,
    )


def _model_key(model: SRModel) -> Any:
    """``model`` as a single-key dask Delayed, for block tasks to depend on.

    Passed as an argument of ``map_blocks`` the model itself would be embedded (and pickled) in
    every block task; as a key it is stored once in the graph, sent once to each distributed worker
    that needs it and held there in memory. The key is unique per call (no tokenising of weights).
    """
    return dask.delayed(model, name=f"srmodel-{model.name}-{uuid.uuid4().hex}")
