"""CPU (or GPU) time per training epoch of every trainer, on the real EnMAP mosaic.

    python benchmarks/bench_training.py [--steps 20] [--scales 2 4] [--threads N]

One epoch = ``--steps`` optimiser steps (UnmixingSR and the ``-aux`` baseline: that many step-I
autoencoder steps too, as in the shipped models' first epochs), batch 8, LR patches of 16 pixels
(HR ``16 * scale``), the default network sizes. Seconds per epoch are scaled to 50 steps, the
shipped models' epoch, and printed with their ratio to UnmixingSR's, both from this run.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch

from xr_unmixsr.errors import MissingCRSWarning
from xr_unmixsr.evaluation.datasets import load_sr_split
from xr_unmixsr.training import train_autoencoder, train_smile, train_sr

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", MissingCRSWarning)
    cube = load_sr_split("enmap", "train", args.data_dir).cube
    common = {"epochs": 1, "steps_per_epoch": args.steps, "seed": 0, "device": "cpu"}
    common["progress"] = False
    print(f"torch threads {args.threads}, {args.steps} steps per timed epoch, scaled to 50 steps")
    print("| trainer | scale | s / epoch (50 steps) | vs UnmixingSR |")
    print("|---|---|---|---|")
    for scale in args.scales:
        hr = {**common, "patch": 16 * scale}
        runs = [
            ("unmixingsr (step I + II)", train_sr, (cube, scale), hr),
            *[
                (arch, train_sr, (cube, scale), {**hr, "architecture": arch})
                for arch in ("unmixingsr-nomam", "convsr", "convsr-aux")
            ],
            ("smile", train_smile, (cube, scale, 8), hr),
            ("autoencoder (step I alone)", train_autoencoder, (cube, 8), {**common, "patch": 16}),
        ]
        base = None
        for label, trainer, positional, kwargs in runs:
            seconds = trainer(*positional, **kwargs).seconds_per_epoch[-1] * 50 / args.steps
            base = base or seconds
            print(f"| {label} | x{scale} | {seconds:.1f} | {seconds / base:.2f} |")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - start:.0f} s")
