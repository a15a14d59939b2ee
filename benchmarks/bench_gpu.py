"""Benchmark: engine throughput against the raw model forward on the same batches.

The engine's work around the network (normalising, cutting patches, host-device copies,
cropping, denormalising, masking) should cost little next to the network itself. This runs
``upscale_array`` on an in-memory ``--bands`` x ``--size`` x ``--size`` scene with a shipped
model, then the bare network on as many batches of the same shape already on the device, and
prints both throughputs (output megapixels per second) and their ratio (goal >= 0.8 on a GPU).
Each is timed after one warm-up run; CUDA work is synchronised before the clock stops.

Runs on any device (``--device auto`` picks CUDA when present); nothing is asserted. Usage::

    python benchmarks/bench_gpu.py [--model unmixingsr-enmap-x2] [--size 1024] [--tile 128]
        [--batch-size N] [--precision fp32|bf16|fp16] [--device auto]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from xr_unmixsr.engine import upscale_array
from xr_unmixsr.engine.tiling import auto_batch_size, precision_context
from xr_unmixsr.models import get_model
from xr_unmixsr.models.base import resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="unmixingsr-enmap-x2")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    dev = resolve_device(args.device)
    model = get_model(args.model, 2 if "x2" in args.model else 4).to(dev)
    bands, s, halo = model.n_bands or 64, model.scale, model.halo
    rng = np.random.default_rng(0)
    scene = (1000 * rng.random((bands, args.size, args.size))).astype(np.float32)
    patch = (bands, args.tile + 2 * halo, args.tile + 2 * halo)
    batch = args.batch_size or auto_batch_size(model, patch, dev, args.precision)
    n_patches = math.ceil(args.size / args.tile) ** 2
    out_mpix = (args.size * s) ** 2 / 1e6

    def engine() -> None:
        upscale_array(
            scene, model, tile=args.tile, batch_size=batch, device=dev, precision=args.precision
        )

    x = torch.randn((batch, *patch), device=dev)

    def raw() -> None:
        with torch.inference_mode(), precision_context(dev, args.precision):
            for _ in range(math.ceil(n_patches / batch)):
                model.network(x)
        _sync(dev)

    times = {}
    for name, fn in (("engine", engine), ("raw forward", raw)):
        fn()
        _sync(dev)
        start = time.perf_counter()
        fn()
        _sync(dev)
        times[name] = time.perf_counter() - start
    print(
        f"{args.model} on {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'CPU'}),"
        f" {bands} x {args.size} x {args.size}, tile {args.tile} + halo {halo}, batch {batch}, "
        f"{n_patches} patches, {args.precision}"
    )
    print("| engine (Mpx/s) | raw forward (Mpx/s) | engine / raw |")
    print("| --- | --- | --- |")
    print(
        f"| {out_mpix / times['engine']:.2f} | {out_mpix / times['raw forward']:.2f} | "
        f"{times['raw forward'] / times['engine']:.2f} |"
    )


if __name__ == "__main__":
    main()
