"""Chain models into one checkpoint: how the shipped ``unmixingsr-enmap-x4`` is made.

    python benchmarks/make_cascade.py models/unmixingsr-enmap-x4.safetensors \\
        unmixingsr-enmap-x2:2 bicubic:2

Each stage is ``MODEL:SCALE``, the model a name or checkpoint path as ``upscale`` takes it. The
first learned stage's card lends the cascade its bands, normalisation, band coordinates and
training record (what the cascade's learned weights came from, and how to reproduce them), with
the stages and this command added. Then ``python benchmarks/model_cards.py`` measures it.
"""

from __future__ import annotations

import argparse
import sys

from xr_unmixsr.models import cascade_model, get_model, save_checkpoint
from xr_unmixsr.models.base import SRModel


def _stage(spec: str) -> SRModel:
    name, _, scale = spec.rpartition(":")
    return get_model(name, int(scale))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="the cascade's .safetensors path")
    parser.add_argument("stages", nargs="+", help="MODEL:SCALE, e.g. unmixingsr-enmap-x2:2")
    args = parser.parse_args()
    stages = [_stage(s) for s in args.stages]
    name = args.output.rsplit("/", 1)[-1].removesuffix(".safetensors")
    model, config = cascade_model(name, stages)
    learned = next(m for m in stages if m.card)
    card = learned.card
    training = {
        **card.get("training", {}),
        "cascade_of": args.stages,
        "cascade_command": "python benchmarks/make_cascade.py " + " ".join(sys.argv[1:]),
    }
    coordinates = {k: card[k] for k in ("wavelength", "fwhm") if k in card}
    path = save_checkpoint(model, args.output, config=config, training=training, **coordinates)
    print(f"wrote {path}: x{model.scale}, halo {model.halo}, stages {args.stages}")


if __name__ == "__main__":
    main()
