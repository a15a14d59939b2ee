"""Fine-tune the shipped x2 model on the scene it is to upscale, then score it (EnMAP, held out).

    python benchmarks/fine_tune_on_input.py --epochs 5 --lr 1e-4 --data-dir ../shared/data

What a user does with ``cube.unmixsr.fit(2, model="unmixingsr-enmap-x2")`` before upscaling
``cube``: the held-out EnMAP tiles degraded x2 are the scene (the user's native resolution), the
model is fine-tuned on it self-supervised (its own x2-degraded copy as the LR side; no HR is
used), and both models upscale it and are scored against the HR tiles, with and without 5
back-projection steps.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from xr_unmixsr.evaluation.datasets import load_sr_split
from xr_unmixsr.evaluation.evaluate import evaluate_sr, markdown_table
from xr_unmixsr.sr import degrade

SHIPPED = "unmixingsr-enmap-x2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--patch", type=int, default=32, help="HR-side patch (the scene's pixels)")
    parser.add_argument("--data-dir", default=str(Path(__file__).parents[2] / "shared" / "data"))
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hr = load_sr_split("enmap", "test", args.data_dir).cube
    scene = degrade(hr, 2)
    start = time.perf_counter()
    tuned = scene.unmixsr.fit(
        2,
        model=SHIPPED,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        lr=args.lr,
        lr_halving_epochs=None,
        patch=args.patch,
        device="cpu",
        progress=False,
    )
    print(
        f"fine-tuned on the {scene.sizes['y']} x {scene.sizes['x']} scene in "
        f"{time.perf_counter() - start:.0f} s"
    )
    label = f"{SHIPPED} fine-tuned on the scene ({args.epochs} epochs, lr {args.lr:g})"
    rows = evaluate_sr(
        hr, 2, {SHIPPED: SHIPPED, label: tuned}, data_scale=10000.0, device="cpu", back_projection=5
    )
    print(markdown_table(rows, ["model", "psnr", "ssim", "sam", "ergas"]))


if __name__ == "__main__":
    main()
