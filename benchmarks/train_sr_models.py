"""Train the SR models of the evaluation tables on the training part of a benchmark scene.

    python benchmarks/train_sr_models.py --scene urban --scale 4 --architecture unmixingsr

writes ``benchmarks/_work/<scene>-<architecture>-x<scale>.safetensors`` (+ card). Every run of a
scene gets the same budget (``--epochs`` x ``--steps-per-epoch`` SR steps; step I of UnmixingSR in
the first third of the epochs, LR patches of 16 pixels), so "UnmixingSR vs the same network without the auxiliary task"
compares like with like. The shipped EnMAP models are the ``unmixingsr`` runs on ``enmap`` made
with ``xr-unmixsr train`` and the same settings (their cards hold the command).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from xr_unmixsr.evaluation.datasets import SR_SPLITS, load_sr_split
from xr_unmixsr.training import ARCHITECTURES, train_sr

WORK = Path(__file__).parent / "_work"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", choices=sorted(SR_SPLITS), required=True)
    parser.add_argument("--scale", type=int, required=True)
    parser.add_argument("--architecture", choices=ARCHITECTURES, default="unmixingsr")
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        choices=sorted(SR_SPLITS),
        help="add the training part of another scene with the same band count (rescaled to "
        "the scene's units)",
    )
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--n-grams", type=int, default=4)
    parser.add_argument(
        "--abun-weight",
        type=float,
        default=1e-3,
        help="weight beta of the AbunLoss (paper eq. 12: 1e-3; its Sec. IV-A: 0.2)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="suffix of the output name")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--data-dir", default=str(Path(__file__).parents[2] / "shared" / "data"))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    main_part = load_sr_split(args.scene, "train", args.data_dir)
    cubes = [main_part.cube]
    for name in args.extra:
        extra = load_sr_split(name, "train", args.data_dir)
        cubes.append((extra.cube * (main_part.data_scale / extra.data_scale)).astype("float32"))
    out = WORK / f"{args.scene}-{args.architecture}-x{args.scale}{args.tag}.safetensors"
    third = max(1, args.epochs // 3)
    result = train_sr(
        cubes,
        args.scale,
        architecture=args.architecture,
        features=args.features,
        n_grams=args.n_grams,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        ae_epochs=third,
        lr_halving_epochs=third,
        patch=16 * args.scale,
        abun_weight=args.abun_weight,
        seed=args.seed,
        device="cpu",
        checkpoint=out,
        progress=False,
        info={"command": "python benchmarks/train_sr_models.py " + " ".join(sys.argv[1:])},
    )
    print(f"{out}: {sum(result.seconds_per_epoch):.0f} s, final {result.final_losses}")


if __name__ == "__main__":
    main()
