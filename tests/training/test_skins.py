"""The accessor's ``fit`` and the CLI's ``train`` are thin skins over ``train_sr``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from affine import Affine

import xr_unmixsr
from xr_unmixsr.cli import build_parser, main
from xr_unmixsr.demo import make_demo_scene
from xr_unmixsr.io import write_raster
from xr_unmixsr.models import load_checkpoint
from xr_unmixsr.training import DEGRADATIONS, train_sr

TINY = dict(
    architecture="convsr", features=8, epochs=2, steps_per_epoch=3, patch=16, batch_size=2, seed=3
)


def _scene():
    return make_demo_scene(48, 48, 100, seed=1)["reflectance"]


def test_fit_equals_train_sr_and_upscales() -> None:
    cube = _scene()
    fitted = cube.unmixsr.fit(2, progress=False, device="cpu", **TINY)
    direct = train_sr(cube, 2, progress=False, device="cpu", **TINY).model
    a = xr_unmixsr.upscale(cube, 2, model=fitted).values
    b = xr_unmixsr.upscale(cube, 2, model=direct).values
    np.testing.assert_array_equal(a, b)
    assert a.shape == (100, 96, 96)


def test_cli_train_writes_a_checkpoint_upscale_can_use(tmp_path: Path, capsys) -> None:
    scene = tmp_path / "scene.tif"
    write_raster(_scene(), scene)
    ckpt = tmp_path / "model.safetensors"
    args = ["train", str(scene), "--output", str(ckpt), "--scale", "2", "--architecture", "convsr"]
    args += ["--features", "8", "--epochs", "2", "--steps-per-epoch", "3", "--patch", "16"]
    args += ["--batch-size", "2", "--device", "cpu", "--quiet"]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    card = json.loads(ckpt.with_suffix(".json").read_text())
    assert card["training"]["command"] == "xr-unmixsr " + " ".join(args)
    assert card["scale"] == 2 and card["n_bands"] == 100
    out = tmp_path / "sr.tif"
    assert (
        main(["upscale", str(scene), str(out), "--scale", "2", "--model", str(ckpt), "--quiet"])
        == 0
    )
    assert xr_unmixsr.open_raster(out).shape == (100, 96, 96)


def test_cli_train_fine_tunes_a_model_like_train_sr(tmp_path: Path) -> None:
    scene = tmp_path / "scene.tif"
    write_raster(_scene(), scene)
    base = tmp_path / "base.safetensors"
    common = ["--scale", "2", "--architecture", "convsr", "--epochs", "1", "--steps-per-epoch"]
    common += ["2", "--patch", "16", "--batch-size", "2", "--device", "cpu", "--quiet"]
    assert main(["train", str(scene), "--output", str(base), "--features", "8", *common]) == 0
    tuned = tmp_path / "tuned.safetensors"
    assert main(["train", str(scene), "--output", str(tuned), "--model", str(base), *common]) == 0
    card = json.loads(tuned.with_suffix(".json").read_text())
    assert card["training"]["settings"]["fine_tuned_from"] == "base"
    assert card["config"]["features"] == 8  # the model's shape, not --features' default (32)
    direct = train_sr(
        xr_unmixsr.open_raster(scene, chunks={"band": -1, "y": 512, "x": 512}),
        2,
        model=base,
        **{**TINY, "epochs": 1, "steps_per_epoch": 2, "seed": 0, "features": 32},
        progress=False,
        device="cpu",
    )
    got = load_checkpoint(tuned).network.state_dict()
    for k, v in direct.network.state_dict().items():
        np.testing.assert_allclose(got[k].numpy(), v.numpy(), rtol=1e-5, atol=1e-6)


def test_cli_train_paired_and_gaussian_options_reach_the_sampler(tmp_path: Path) -> None:
    cube = _scene()
    hr, lr = tmp_path / "hr.tif", tmp_path / "lr.tif"
    write_raster(cube, hr)
    low = cube.coarsen(x=2, y=2).mean()
    write_raster(low.rio.write_transform(cube.rio.transform() * Affine.scale(2)), lr)
    common = ["--scale", "2", "--architecture", "convsr", "--features", "8", "--epochs", "1"]
    common += ["--steps-per-epoch", "2", "--patch", "16", "--batch-size", "2", "--quiet"]
    common += ["--device", "cpu", "--seed", "3"]
    paired = tmp_path / "paired.safetensors"
    assert main(["train", str(hr), "--lr-inputs", str(lr), "--output", str(paired), *common]) == 0
    card = json.loads(paired.with_suffix(".json").read_text())["training"]
    assert card["degradation"] == "paired"
    chunks = {"band": -1, "y": 512, "x": 512}
    direct = train_sr(
        xr_unmixsr.open_raster(hr, chunks=chunks),
        2,
        **{**TINY, "epochs": 1, "steps_per_epoch": 2},
        progress=False,
        device="cpu",
        sampler_kwargs={"lr_cubes": [xr_unmixsr.open_raster(lr, chunks=chunks)]},
    )
    got = load_checkpoint(paired).network.state_dict()
    for k, v in direct.network.state_dict().items():
        np.testing.assert_allclose(got[k].numpy(), v.numpy(), rtol=1e-5, atol=1e-6)
    psf = tmp_path / "psf.safetensors"
    args = ["train", str(hr), "--output", str(psf), "--degradation", "gaussian"]
    assert main([*args, "--gaussian-sigma", "1.5", *common]) == 0
    settings = json.loads(psf.with_suffix(".json").read_text())["training"]
    assert settings["degradation"] == "gaussian"
    assert settings["settings"]["sampler"]["gaussian_sigma"] == 1.5


def test_cli_degradations_are_the_samplers() -> None:
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    (action,) = [a for a in train._actions if a.dest == "degradation"]
    assert tuple(action.choices) == DEGRADATIONS
