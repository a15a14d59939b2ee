"""Train the SR models of the evaluation tables on the training part of a benchmark scene.

    python benchmarks/train_sr_models.py --scene urban --scale 4 --architecture unmixingsr

writes ``benchmarks/_work/<scene>-<architecture>-x<scale>.safetensors`` (+ card). Every run of a
scene gets the same budget (``--epochs`` x ``--steps-per-epoch`` SR steps; step I of UnmixingSR in
the first third of the epochs, LR patches of 16 pixels), so "UnmixingSR vs the same network without the auxiliary task"
compares like with like. The shipped EnMAP models are the ``unmixingsr`` runs on ``enmap`` made
with ``xr-unmixsr train`` and the same settings (their cards hold the command).

More data from other sensors (``--extra jasper --extra indian-pines``): whole benchmark scenes
added to the training part, in the scene's units, and interpolated linearly onto its band centres
when both have a ``wavelength`` coordinate (else they need its band count). ``--model`` fine-tunes
a trained model on the training part instead (``train_sr(model=...)``), e.g. one pretrained with
``--extra``::

    python benchmarks/train_sr_models.py --scene enmap --scale 4 --extra indian-pines --extra jasper --tag=-xs
    python benchmarks/train_sr_models.py --scene enmap --scale 4 --model benchmarks/_work/enmap-unmixingsr-x4-xs.safetensors \
        --epochs 10 --lr 1.25e-4 --lr-halving-epochs 0 --tag=-xs-ft
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from xr_unmixsr.evaluation.datasets import SR_SPLITS, Benchmark, load_benchmark, load_sr_split
from xr_unmixsr.training import ARCHITECTURES, train_sr

WORK = Path(__file__).parent / "_work"
EXTRA = ("indian-pines", "jasper", "samson", "urban")


def resample_bands(cube: xr.DataArray, like: xr.DataArray) -> xr.DataArray:
    """``cube`` interpolated linearly along ``band`` onto the band centres of ``like`` (its
    ``wavelength`` coordinate, nm), with ``like``'s band coordinates; the end bands of ``cube``
    are held constant beyond its range."""
    src = cube["wavelength"].values
    order = np.argsort(src, kind="stable")
    ws, target = src[order], like["wavelength"].values
    hi = np.searchsorted(ws, target).clip(1, len(ws) - 1)
    w = np.clip((target - ws[hi - 1]) / np.maximum(ws[hi] - ws[hi - 1], 1e-9), 0.0, 1.0)
    values = cube.values[order]
    out = (1 - w)[:, None, None] * values[hi - 1] + w[:, None, None] * values[hi]
    bands = {k: v for k, v in like.coords.items() if v.dims == ("band",)}
    return xr.DataArray(
        out.astype(np.float32),
        dims=("band", "y", "x"),
        coords={**bands, "y": cube["y"].values, "x": cube["x"].values},
    )


def extra_cube(name: str, main: Benchmark, data_dir: str) -> xr.DataArray:
    """The whole benchmark ``name`` in the units (and, where both are known, bands) of ``main``."""
    extra = load_benchmark(name, data_dir)
    cube = (extra.cube * (main.data_scale / extra.data_scale)).astype("float32")
    if "wavelength" in cube.coords and "wavelength" in main.cube.coords:
        return resample_bands(cube, main.cube)
    if cube.sizes["band"] != main.cube.sizes["band"]:
        raise SystemExit(
            f"--extra {name}: {cube.sizes['band']} bands, no band centres to resample them to "
            f"the scene's {main.cube.sizes['band']}"
        )
    return cube


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", choices=sorted(SR_SPLITS), required=True)
    parser.add_argument("--scale", type=int, required=True)
    parser.add_argument("--architecture", choices=ARCHITECTURES, default="unmixingsr")
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        choices=EXTRA,
        help="add this whole benchmark scene to the training data, in the scene's units, "
        "resampled to its band centres (repeatable)",
    )
    parser.add_argument("--model", help="fine-tune this trained model instead of a new network")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument(
        "--lr-halving-epochs", type=int, help="default: a third of --epochs; 0: never"
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
    if args.scene in args.extra:
        raise SystemExit(f"--extra {args.scene} would add the held-out part of the scene")
    cubes = [main_part.cube] + [extra_cube(n, main_part, args.data_dir) for n in args.extra]
    out = WORK / f"{args.scene}-{args.architecture}-x{args.scale}{args.tag}.safetensors"
    third = max(1, args.epochs // 3)
    halving = third if args.lr_halving_epochs is None else (args.lr_halving_epochs or None)
    result = train_sr(
        cubes,
        args.scale,
        architecture=args.architecture,
        features=args.features,
        n_grams=args.n_grams,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        ae_epochs=third,
        lr=args.lr,
        lr_halving_epochs=halving,
        model=args.model,
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
