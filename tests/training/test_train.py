"""Tests of the trainers: loss decrease, determinism, resuming, checkpoints, real EnMAP data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr

import xr_unmixsr
from xr_unmixsr.demo import make_demo_scene
from xr_unmixsr.errors import BandMismatchError, ParameterError, UnsupportedScaleError
from xr_unmixsr.models import UnmixingAutoencoder, UnmixingSR, load_checkpoint
from xr_unmixsr.models.conv import TRAINING_NEGATIVE_SLOPE
from xr_unmixsr.training import ARCHITECTURES, train_autoencoder, train_smile, train_sr

TINY: dict[str, Any] = {
    "features": 8,
    "n_grams": 1,
    "ae_features": 8,
    "ae_grams": 1,
    "n_endmembers": 4,
    "patch": 16,
    "batch_size": 4,
    "steps_per_epoch": 4,
    "device": "cpu",
    "progress": False,
}
#: short runs of the unmixing trainers (autoencoder, SMILE)
SHORT: dict[str, Any] = {
    **{k: TINY[k] for k in ("features", "n_grams", "patch", "batch_size", "device", "progress")},
    "epochs": 2,
    "steps_per_epoch": 3,
}


@pytest.fixture(scope="module")
def scene() -> xr.DataArray:
    return make_demo_scene(48, 48, 24, seed=1)["reflectance"]


def _weights(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_train_sr_reduces_the_loss(scene: xr.DataArray, architecture: str) -> None:
    res = train_sr(scene, 2, architecture=architecture, epochs=4, seed=0, **TINY)
    losses = [h["sr"] for h in res.history]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    if architecture in ("unmixingsr", "convsr-aux", "unmixingsr-aux"):
        assert "abun" in res.history[-1] and "unmixing" in res.history[-1]
    model = res.model
    assert model is not None and not model.network.training
    assert model.n_bands == 24 and model.scale == 2 and model.halo == res.network.halo
    assert len(res.seconds_per_epoch) == 4 and res.device == "cpu"
    x = torch.from_numpy(model.normalise(scene.values[:, :12, :12]))[None]
    with torch.no_grad():
        assert model.network(x).shape == (1, 24, 24, 24)


def test_unmixingsr_autoencoder_is_frozen_and_endmembers_non_negative(
    scene: xr.DataArray,
) -> None:
    res = train_sr(scene, 2, epochs=1, seed=0, **TINY)
    net = res.network
    assert isinstance(net, UnmixingSR) and net.autoencoder is not None
    assert not any(p.requires_grad for p in net.autoencoder.parameters())
    assert (net.autoencoder.endmembers >= 0).all()


def test_same_seed_same_weights(scene: xr.DataArray) -> None:
    kw = {**TINY, "steps_per_epoch": 2}
    a = _weights(train_sr(scene, 2, epochs=1, seed=5, **kw).network)
    b = _weights(train_sr(scene, 2, epochs=1, seed=5, **kw).network)
    c = _weights(train_sr(scene, 2, epochs=1, seed=6, **kw).network)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("architecture", ["unmixingsr", "convsr"])
def test_resume_equals_an_uninterrupted_run(
    scene: xr.DataArray, tmp_path: Path, architecture: str
) -> None:
    kw = {**TINY, "steps_per_epoch": 2, "lr_halving_epochs": 2, "architecture": architecture}
    ckpt = tmp_path / "run.safetensors"
    first = train_sr(scene, 2, epochs=2, seed=0, checkpoint=ckpt, **kw)
    assert len(first.history) == 2
    assert (tmp_path / "run.train.safetensors").exists() and (tmp_path / "run.train.json").exists()
    resumed = train_sr(scene, 2, epochs=4, seed=0, checkpoint=ckpt, **kw)
    direct = train_sr(scene, 2, epochs=4, seed=0, **kw)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert resumed.history[2]["lr"] == pytest.approx(2.5e-4)
    a, b = _weights(resumed.network), _weights(direct.network)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)
    for h_r, h_d in zip(resumed.history, direct.history, strict=True):
        assert h_r["sr"] == pytest.approx(h_d["sr"], abs=1e-6)
    # nothing pickled: the state is safetensors + JSON
    meta = json.loads((tmp_path / "run.train.json").read_text())
    assert meta["epoch"] == 4


def test_resume_with_other_settings_raises(scene: xr.DataArray, tmp_path: Path) -> None:
    kw = {**TINY, "steps_per_epoch": 1, "architecture": "convsr"}
    ckpt = tmp_path / "run"
    train_sr(scene, 2, epochs=1, seed=0, checkpoint=ckpt, **kw)
    with pytest.raises(ParameterError, match="seed"):
        train_sr(scene, 2, epochs=2, seed=1, checkpoint=ckpt, **kw)
    fresh = train_sr(scene, 2, epochs=1, seed=1, checkpoint=ckpt, resume=False, **kw)
    assert len(fresh.history) == 1


def test_on_progress_counts_steps_and_can_stop_training(
    scene: xr.DataArray, tmp_path: Path
) -> None:
    kw = {**TINY, "steps_per_epoch": 2, "architecture": "unmixingsr", "ae_epochs": 1}
    calls: list[tuple[int, int]] = []
    train_sr(scene, 2, epochs=2, seed=0, on_progress=lambda d, t: calls.append((d, t)), **kw)
    # epoch 1: 2 step-I + 2 step-II steps, epoch 2: 2 step-II steps
    assert calls == [(d, 6) for d in range(1, 7)]

    class Stop(Exception):
        pass

    def stop_in_epoch_2(done: int, total: int) -> None:
        if done == 5:
            raise Stop

    ckpt = tmp_path / "run"
    with pytest.raises(Stop):
        train_sr(scene, 2, epochs=2, seed=0, checkpoint=ckpt, on_progress=stop_in_epoch_2, **kw)
    assert not (tmp_path / "run.safetensors").exists()  # no final model
    assert json.loads((tmp_path / "run.train.json").read_text())["epoch"] == 1  # resumable


@pytest.mark.parametrize("trainer", ["autoencoder", "smile"])
def test_on_progress_of_the_unmixing_trainers(scene: xr.DataArray, trainer: str) -> None:
    calls: list[tuple[int, int]] = []
    kw = {**SHORT, "steps_per_epoch": 2, "on_progress": lambda d, t: calls.append((d, t))}
    if trainer == "autoencoder":
        train_autoencoder(scene, 3, **kw)
    else:
        train_smile(scene, 2, 3, **kw)
    assert calls == [(d, 4) for d in range(1, 5)]


def test_checkpoint_upscales_with_geometry(scene: xr.DataArray, tmp_path: Path) -> None:
    ckpt = tmp_path / "unmixingsr_x2-beta0.2"  # a dot in the name is not a suffix
    res = train_sr(scene, 2, epochs=1, seed=0, checkpoint=ckpt, info={"command": "pytest"}, **TINY)
    assert res.checkpoint == tmp_path / "unmixingsr_x2-beta0.2.safetensors"
    assert (tmp_path / "unmixingsr_x2-beta0.2.train.json").exists()
    card = json.loads((tmp_path / "unmixingsr_x2-beta0.2.json").read_text())
    assert card["name"] == "unmixingsr_x2-beta0.2"
    assert card["architecture"] == "unmixingsr" and card["n_bands"] == 24
    training = card["training"]
    assert training["command"] == "pytest" and training["device"] == "cpu"
    assert training["epochs"] == 1 and len(training["seconds_per_epoch"]) == 1
    assert set(training["final_losses"]) == {"unmixing", "sr", "abun"}
    assert training["hardware"]["cpu_cores"] >= 1 and training["hardware"]["gpu"] is None
    np.testing.assert_allclose(card["wavelength"], scene["wavelength"].values)
    np.testing.assert_allclose(card["fwhm"], scene["fwhm"].values)
    out = xr_unmixsr.upscale(scene, 2, model=res.checkpoint, tile=16, device="cpu")
    assert out.shape == (24, 96, 96)
    assert out.rio.crs == scene.rio.crs
    assert out.rio.resolution() == pytest.approx(tuple(r / 2 for r in scene.rio.resolution()))
    assert out.rio.bounds() == pytest.approx(scene.rio.bounds())
    direct = xr_unmixsr.upscale(scene, 2, model=res.model, tile=16, device="cpu")
    np.testing.assert_allclose(out.values, direct.values, atol=1e-5)
    assert np.isfinite(out.values).all()
    # the network learnt something close to the scene, in its units (gain undone)
    assert abs(float(out.mean()) - float(scene.mean())) < 0.1 * float(scene.mean())


def test_band_mismatch_at_inference(scene: xr.DataArray, tmp_path: Path) -> None:
    res = train_sr(scene, 2, epochs=1, seed=0, checkpoint=tmp_path / "m", **TINY)
    with pytest.raises(BandMismatchError, match="fine-tune"):
        xr_unmixsr.upscale(scene.isel(band=slice(0, 20)), 2, model=res.checkpoint)


def test_train_autoencoder_and_reuse(scene: xr.DataArray, tmp_path: Path) -> None:
    ae = train_autoencoder(scene, 4, checkpoint=tmp_path / "ae", **SHORT)
    assert isinstance(ae.network, UnmixingAutoencoder)
    assert (ae.network.endmembers >= 0).all()
    assert all(np.isfinite(h["unmixing"]) for h in ae.history)
    loaded = load_checkpoint(tmp_path / "ae.safetensors")
    assert isinstance(loaded.network, UnmixingAutoencoder)
    res = train_sr(scene, 2, epochs=1, seed=0, autoencoder=tmp_path / "ae.json", **TINY)
    assert "unmixing" not in res.history[0]  # step I skipped: the given autoencoder is frozen
    assert res.network.autoencoder is not None
    torch.testing.assert_close(res.network.autoencoder.endmembers, ae.network.endmembers)


def test_train_smile(scene: xr.DataArray, tmp_path: Path) -> None:
    res = train_smile(scene, 2, 4, checkpoint=tmp_path / "smile", **SHORT)
    assert all(np.isfinite(h["loss"]) for h in res.history)
    out = xr_unmixsr.upscale(scene, 2, model=res.checkpoint, tile=16, device="cpu")
    assert out.shape == (24, 96, 96) and np.isfinite(out.values).all()


@pytest.mark.parametrize("architecture", ["convsr", "convsr-aux"])
def test_convsr_is_trained_leaky_and_its_card_says_so(
    scene: xr.DataArray, tmp_path: Path, architecture: str
) -> None:
    res = train_sr(
        scene, 2, architecture=architecture, epochs=1, seed=0, checkpoint=tmp_path / "c", **TINY
    )
    card = json.loads((tmp_path / "c.json").read_text())
    assert card["architecture"] == "convsr"
    assert card["config"]["negative_slope"] == TRAINING_NEGATIVE_SLOPE > 0
    loaded = load_checkpoint(res.checkpoint).network
    slopes = {m.negative_slope for m in loaded.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {TRAINING_NEGATIVE_SLOPE}


def test_gaussian_degradation_option(scene: xr.DataArray) -> None:
    res = train_sr(
        scene,
        2,
        architecture="convsr",
        epochs=1,
        seed=0,
        sampler_kwargs={"degradation": "gaussian"},
        **TINY,
    )
    assert np.isfinite(res.history[0]["sr"])


def test_enmap_nodata_bands_give_finite_losses(enmap_path: Path, tmp_path: Path) -> None:
    cube = xr_unmixsr.open_raster(enmap_path, chunks={"y": 32, "x": 32})
    res = train_sr(
        cube,
        2,
        epochs=1,
        seed=0,
        checkpoint=tmp_path / "enmap",
        **{**TINY, "batch_size": 2, "steps_per_epoch": 2},
    )
    assert np.flatnonzero(~res.band_mask).tolist() == [129, 130, 131, 132, 133, 134]
    assert all(np.isfinite(v) for v in res.final_losses.values())
    assert all(torch.isfinite(p).all() for p in res.network.parameters())
    out = xr_unmixsr.upscale(cube.isel(y=slice(0, 24), x=slice(0, 24)), 2, model=res.checkpoint)
    values = out.values
    assert (values[129:135] == -32768).all()
    assert np.isfinite(values).all()


@pytest.mark.parametrize("trainer", ["autoencoder", "smile", "unmixingsr"])
def test_typical_init_starts_from_typical_endmembers(
    scene: xr.DataArray, trainer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init="typical" hands VCA's endmembers through typical_endmembers before training; the
    run's card records it; an unknown init is refused."""
    import xr_unmixsr.training.train as train_module

    calls: list[int] = []

    def spy(pixels: np.ndarray, endmembers: np.ndarray) -> np.ndarray:
        calls.append(len(endmembers))
        return endmembers

    monkeypatch.setattr(train_module, "typical_endmembers", spy)
    run = {
        "autoencoder": lambda **kw: train_autoencoder(scene, 4, **SHORT, **kw),
        "smile": lambda **kw: train_smile(scene, 2, 4, **SHORT, **kw),
        "unmixingsr": lambda **kw: train_sr(scene, 2, epochs=1, **TINY, **kw),
    }[trainer]
    res = run(init="typical")
    assert calls == [4]
    assert res.model.card["training"]["settings"]["init"] == "typical"
    with pytest.raises(ParameterError, match="init must be one of"):
        run(init="pure")


def test_fine_tuning_starts_from_the_model_and_keeps_its_shape(
    scene: xr.DataArray, tmp_path: Path
) -> None:
    base = train_sr(scene, 2, epochs=1, seed=0, checkpoint=tmp_path / "base", **TINY)
    start = load_checkpoint(base.checkpoint)
    before = _weights(start.network)
    # epochs=0: nothing trained, the result is the model itself (its weights, gain, config)
    same = train_sr(scene, 2, model=base.checkpoint, epochs=0, **{**TINY, "features": 16})
    assert same.config == base.config and same.config["features"] == TINY["features"]
    for k, v in _weights(same.network).items():
        torch.testing.assert_close(v, before[k])
    np.testing.assert_array_equal(same.model.gain, start.gain)
    tuned = train_sr(
        scene, 2, model=base.checkpoint, epochs=1, lr=1e-4, checkpoint=tmp_path / "t", **TINY
    )
    assert "unmixing" not in tuned.history[0]  # UnmixingSR keeps its own frozen autoencoder
    ae_before = {
        k[len("autoencoder.") :]: v for k, v in before.items() if k.startswith("autoencoder.")
    }
    for k, v in _weights(tuned.network.autoencoder).items():
        torch.testing.assert_close(v, ae_before[k])
    changed = [k for k, v in _weights(tuned.network).items() if not torch.equal(v, before[k])]
    assert changed and all(not k.startswith("autoencoder.") for k in changed)
    for k, v in _weights(start.network).items():  # the loaded (cached) model is not modified
        torch.testing.assert_close(v, before[k])
    card = json.loads((tmp_path / "t.json").read_text())
    assert card["training"]["settings"]["fine_tuned_from"] == "base"
    # a fitted SRModel can be fine-tuned again, from the accessor
    again = scene.unmixsr.fit(2, model=tuned.model, epochs=1, **TINY)
    assert again.network is not tuned.network and again.scale == 2


def test_fine_tuning_an_auxiliary_backbone_trains_a_fresh_autoencoder(
    scene: xr.DataArray,
) -> None:
    base = train_sr(scene, 2, architecture="unmixingsr-nomam", epochs=1, seed=0, **TINY)
    tuned = train_sr(scene, 2, architecture="unmixingsr-aux", model=base.model, epochs=1, **TINY)
    assert "unmixing" in tuned.history[0] and "abun" in tuned.history[0]
    assert tuned.config == base.config


def test_fine_tuning_refuses_what_does_not_fit(scene: xr.DataArray, tmp_path: Path) -> None:
    conv = train_sr(scene, 2, architecture="convsr", epochs=1, checkpoint=tmp_path / "c", **TINY)
    with pytest.raises(ParameterError, match=r"ConvSR.*\['convsr', 'convsr-aux'\]"):
        train_sr(scene, 2, model=conv.checkpoint, epochs=1, **TINY)
    with pytest.raises(BandMismatchError, match="train a new model"):
        train_sr(
            scene.isel(band=slice(0, 20)), 2, architecture="convsr", model=conv.checkpoint, **TINY
        )
    with pytest.raises(UnsupportedScaleError, match="upsamples by 2, not 4"):
        train_sr(scene, 4, architecture="convsr", model=conv.checkpoint, **{**TINY, "patch": 32})
    with pytest.raises(ParameterError, match="cascade"):
        train_sr(scene, 4, model="unmixingsr-enmap-x4", **{**TINY, "patch": 32})
    ae = train_autoencoder(scene, 4, **SHORT)
    sr = train_sr(scene, 2, epochs=1, **TINY)
    with pytest.raises(ParameterError, match="leave autoencoder= out"):
        train_sr(scene, 2, model=sr.model, autoencoder=ae, epochs=1, **TINY)
