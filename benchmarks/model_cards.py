"""Measure the shipped models on held-out data and write the figures into their model cards.

    python benchmarks/model_cards.py [--data-dir ../shared/data] [models/NAME.safetensors ...]

For each checkpoint (default: every ``models/*.safetensors``), the model and bicubic, each alone
and followed by ``CONVERGED_STEPS`` (5) back-projection steps, upscale the degraded held-out EnMAP
tiles (``xr_unmixsr.evaluation``: the 64 x 96 block north-west of the
training mosaic); the rows, the command and the date go into the card's ``metrics`` entry, the
total training time into ``training.total_seconds``, and the hardware (``training.hardware``) and
band wavelengths when the trainer did not record them (the run happened on this machine, on the
data named in the card).
Prints one Markdown row per model for ``models/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import warnings
from pathlib import Path

from xr_unmixsr.errors import MissingCRSWarning
from xr_unmixsr.evaluation.datasets import load_sr_split
from xr_unmixsr.evaluation.evaluate import evaluate_sr
from xr_unmixsr.io import open_raster
from xr_unmixsr.models.backprojection import CONVERGED_STEPS
from xr_unmixsr.training import band_coordinates, hardware

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", type=Path)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    warnings.simplefilter("ignore", MissingCRSWarning)
    paths = args.checkpoints or sorted(
        p
        for p in (ROOT / "models").glob("*.safetensors")
        if not p.name.endswith(".train.safetensors")
    )
    bench = load_sr_split("enmap", "test", args.data_dir)
    print("| model | scale | PSNR (dB) | bicubic | gain | SAM | bicubic SAM | training | size |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        card_path = path.with_suffix(".json")
        card = json.loads(card_path.read_text())
        scale = int(card["scale"])
        bicubic, bicubic_bp, model, model_bp = evaluate_sr(
            bench.cube,
            scale,
            {"bicubic": "bicubic", card["name"]: path},
            data_scale=10000.0,
            back_projection=CONVERGED_STEPS,
        )
        training = card.setdefault("training", {})
        if "wavelength" not in card:  # trained before cards recorded the band coordinates
            card.update(band_coordinates(open_raster(ROOT / training["data"][0])))
        if "hardware" not in training:  # trained here before cards recorded it: threads unknown
            found = hardware(training.get("device", "cpu"))
            training["hardware"] = {k: v for k, v in found.items() if k != "torch_threads"}
        training["total_seconds"] = round(sum(training.get("seconds_per_epoch", [])), 1)
        card["metrics"] = {
            "data": "EnMAP Potsdam, held-out 64 x 96 block (tiles 64..128 x 0..32), "
            "degraded by antialiased bicubic",
            "command": "python benchmarks/model_cards.py " + " ".join(sys.argv[1:]),
            "date": datetime.date.today().isoformat(),
            "model": model,
            "bicubic": bicubic,
            "back_projection_steps": CONVERGED_STEPS,
            "model_back_projection": model_bp,
            "bicubic_back_projection": bicubic_bp,
        }
        card_path.write_text(json.dumps(card, indent=2))
        size = path.stat().st_size / 2**20
        print(
            f"| {card['name']} | x{scale} | {model['psnr']:.2f} | {bicubic['psnr']:.2f} | "
            f"{model['psnr'] - bicubic['psnr']:+.2f} | {model['sam']:.2f} | {bicubic['sam']:.2f} | "
            f"{training['total_seconds'] / 60:.1f} min on {training['hardware']['cpu_cores']} "
            f"cores | {size:.1f} MB |"
        )


if __name__ == "__main__":
    main()
