"""UnmixingSR and the auxiliary-unmixing wrapper: shapes, halo, seam-free tiling, losses, checkpoints."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import torch

from xr_unmixsr.engine import predict_array, upscale_array
from xr_unmixsr.models import (
    AuxiliaryUnmixing,
    ConvSR,
    SRModel,
    UnmixingAutoencoder,
    UnmixingSR,
    load_checkpoint,
    save_checkpoint,
    sr_loss,
)
from xr_unmixsr.models.bicubic import bicubic_resize
from xr_unmixsr.models.unmixingsr import upsample_abundances, upsampling_factors
from xr_unmixsr.unmixing.synthetic import smooth_mixture_cube

BANDS, P = 6, 3
#: a small configuration: halo = 1 + 5 + 1 + len(steps) + 1
SMALL = dict(
    n_bands=BANDS,
    features=8,
    n_grams=1,
    n_endmembers=P,
    attention_radius=2,
    ae_features=8,
    ae_grams=1,
    mam_features=8,
)


def _net(scale: int, **kw) -> UnmixingSR:
    """A seeded small UnmixingSR whose MAM is switched on (its gamma/beta start at zero)."""
    torch.manual_seed(0)
    net = UnmixingSR(scale=scale, **{**SMALL, **kw})
    if net.mam is not None:
        with torch.no_grad():
            for conv in (net.mam.gamma, net.mam.beta):
                conv.weight.normal_(0.0, 0.3)
    return net.eval()


def _hr_cube(size: int = 24, seed: int = 0) -> torch.Tensor:
    """A (1, BANDS, size, size) cube mixed from spatially smooth abundances."""
    cube = smooth_mixture_cube(size, BANDS, P, seed=seed)
    return torch.from_numpy(cube[None].astype(np.float32))


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
@pytest.mark.parametrize("use_mam", [True, False])
def test_output_shapes(scale: int, use_mam: bool) -> None:
    net = _net(scale, use_mam=use_mam)
    with torch.no_grad():
        y = net(torch.rand(2, BANDS, 7, 5))
    assert y.shape == (2, BANDS, 7 * scale, 5 * scale)
    assert torch.isfinite(y).all()
    assert (net.autoencoder is not None) is use_mam is net.use_mam


def test_upsampling_is_progressive() -> None:
    assert upsampling_factors(2) == [2]
    assert upsampling_factors(3) == [3]
    assert upsampling_factors(4) == [2, 2]
    assert upsampling_factors(8) == [2, 2, 2]
    with pytest.raises(ValueError, match="2s and 3s"):
        upsampling_factors(5)


def test_default_halo_and_size() -> None:
    for scale, halo in {2: 32, 3: 32, 4: 33, 8: 34}.items():
        net = UnmixingSR(n_bands=10, scale=scale)
        # 1 (head) + 4 GRAMs * 7 + 1 (body conv) + 1 per upsampling step + 1 (tail)
        assert net.halo == halo
        assert UnmixingSR(n_bands=10, scale=scale, use_mam=False).halo == halo
    assert UnmixingSR(n_bands=10, scale=4, n_grams=9).halo == 33 + 5 * 7


def _changed_lr_distances(net: UnmixingSR, size: int) -> torch.Tensor:
    """LR-grid Chebyshev distances from the perturbed LR pixel of the HR pixels that change."""
    net = net.double()
    torch.manual_seed(1)
    x = torch.rand(1, BANDS, size, size, dtype=torch.float64)
    c = size // 2
    x2 = x.clone()
    x2[0, :, c, c] += torch.rand(BANDS, dtype=torch.float64)
    with torch.no_grad():
        diff = (net(x2) - net(x)).abs().amax(dim=(0, 1))
    s = net.scale
    idx = torch.arange(size * s) // s
    yy, xx = torch.meshgrid(idx, idx, indexing="ij")
    return torch.maximum((yy - c).abs(), (xx - c).abs())[diff > 1e-12]


@pytest.mark.parametrize(
    ("scale", "kw"),
    [(2, {}), (3, {}), (4, {}), (8, {}), (2, {"use_mam": False}), (2, {"ae_grams": 3})],
    ids=["x2", "x3", "x4", "x8", "x2-no-mam", "x2-encoder-dominant"],
)
def test_halo_is_a_tight_bound_of_the_receptive_field(scale: int, kw: dict) -> None:
    net = _net(scale, **kw)
    dist = _changed_lr_distances(net, 2 * net.halo + 5)
    assert int(dist.max()) <= net.halo
    assert int(dist.max()) >= net.halo / 2
    if kw.get("ae_grams") == 3:
        # the abundance path (encoder + MAM) reaches farther than the SR body: the halo must
        # account for it, and does
        main_only = _net(scale, **{**kw, "use_mam": False}).halo
        assert net.halo > main_only
        assert int(dist.max()) > main_only


@pytest.mark.parametrize("scale", [2, 3])
def test_seam_free_through_the_engine(scale: int) -> None:
    net = _net(scale)
    model = SRModel(name="unmixingsr", network=net, scale=scale, halo=net.halo, n_bands=BANDS)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:29, 0:23]
    scene = np.stack([np.sin(yy / (3 + b)) * np.cos(xx / (2 + b)) for b in range(BANDS)])
    scene = (0.5 + 0.3 * scene + 0.2 * rng.random(scene.shape)).astype(np.float32)
    ref = predict_array(model, scene, device="cpu")

    def tiled(m: SRModel) -> np.ndarray:
        arr = da.from_array(scene, chunks=(-1, 10, 7))  # ragged: 29 = 10+10+9, 23 = 7+7+7+2
        return upscale_array(arr, m, tile=net.halo, batch_size=3, device="cpu").compute()

    out = tiled(model)
    assert out.shape == ref.shape == (BANDS, 29 * scale, 23 * scale)
    span = float(scene.max() - scene.min())
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4 * span)
    # the comparison is sensitive: with half the halo as context the tiles show seams
    short = SRModel(name="short", network=net, scale=scale, halo=net.halo // 2, n_bands=BANDS)
    assert float(np.abs(tiled(short) - ref).max()) > 1e-3 * span


def test_mam_starts_as_identity() -> None:
    torch.manual_seed(0)
    with_mam = UnmixingSR(scale=2, **SMALL).eval()
    without = UnmixingSR(scale=2, **{**SMALL, "use_mam": False}).eval()
    missing, unexpected = without.load_state_dict(with_mam.state_dict(), strict=False)
    assert not missing and unexpected
    x = torch.rand(1, BANDS, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(with_mam(x), without(x))


def test_sr_loss_decreases_with_frozen_autoencoder() -> None:
    hr = _hr_cube()
    lr = bicubic_resize(hr, 0.5)
    net = _net(2).train()
    ae_before = {k: v.clone() for k, v in net.autoencoder.state_dict().items()}
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=2e-3)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        sr = net(lr)
        abun_sr, abun_lr_up = net.abundance_pair(lr, sr)
        loss = sr_loss(sr, hr, abun_sr, abun_lr_up, beta=0.2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
    assert all(p.grad is None for p in net.autoencoder.parameters())
    for k, v in net.autoencoder.state_dict().items():
        assert torch.equal(v, ae_before[k]), k


def test_sr_loss_terms() -> None:
    hr = _hr_cube(8)
    sr = hr + 0.01
    a = torch.softmax(torch.randn(1, P, 8, 8), dim=1)
    base = sr_loss(sr, hr)
    with_abun = sr_loss(sr, hr, a, torch.full_like(a, 1 / P), beta=0.5)
    assert float(with_abun - base) == pytest.approx(0.5 * float((a - 1 / P).abs().mean()))
    up = upsample_abundances(a, 3)
    assert up.shape == (1, P, 24, 24)
    torch.testing.assert_close(up.sum(dim=1), torch.ones(1, 24, 24))


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path) -> None:
    net = _net(4)
    config = {**SMALL, "scale": 4}
    path = save_checkpoint(
        SRModel(name="u", network=net, scale=4, halo=net.halo, n_bands=BANDS),
        tmp_path / "u",
        config,
    )
    loaded = load_checkpoint(path)
    assert type(loaded.network) is UnmixingSR and loaded.halo == net.halo
    assert not any(p.requires_grad for p in loaded.network.autoencoder.parameters())
    x = torch.rand(1, BANDS, 9, 9)
    with torch.no_grad():
        assert torch.equal(loaded.network(x), net(x))


def test_load_autoencoder_copies_and_freezes() -> None:
    net = _net(2)
    torch.manual_seed(5)
    ae = UnmixingAutoencoder(BANDS, P, features=8, n_grams=1, attention_radius=2)
    net.load_autoencoder_(ae)
    assert torch.equal(net.autoencoder.endmembers, ae.endmembers.detach())
    assert not any(p.requires_grad for p in net.autoencoder.parameters())
    with pytest.raises(ValueError, match="no autoencoder"):
        _net(2, use_mam=False).load_autoencoder_(ae)


def _aux(scale: int = 2) -> tuple[AuxiliaryUnmixing, ConvSR]:
    torch.manual_seed(0)
    backbone = ConvSR(BANDS, scale, features=8)
    ae = UnmixingAutoencoder(BANDS, P, features=8, n_grams=1, attention_radius=2)
    return AuxiliaryUnmixing(backbone, ae, scale), backbone


def test_auxiliary_unmixing_wraps_convsr() -> None:
    wrapper, backbone = _aux()
    assert wrapper.halo == backbone.halo
    wrapper.train()
    assert not wrapper.autoencoder.training and wrapper.backbone.training
    hr = _hr_cube(16)
    lr = bicubic_resize(hr, 0.5)
    sr = wrapper(lr)
    assert torch.equal(sr, backbone(lr))
    aux = wrapper.aux_loss(lr, sr)
    assert aux.ndim == 0 and torch.isfinite(aux) and aux.item() > 0
    (sr_loss(sr, hr) + 0.2 * aux).backward()
    assert all(p.grad is None for p in wrapper.autoencoder.parameters())
    assert all(not p.requires_grad for p in wrapper.autoencoder.parameters())
    # the AbunLoss alone reaches every backbone parameter
    wrapper.zero_grad()
    wrapper.aux_loss(lr, wrapper(lr)).backward()
    for name, p in wrapper.backbone.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_auxiliary_unmixing_checkpoint_from_specs(tmp_path) -> None:
    config = {
        "backbone": {"architecture": "convsr", "config": {"n_bands": BANDS, "scale": 2}},
        "autoencoder": {"n_bands": BANDS, "n_endmembers": P, "features": 8, "n_grams": 1},
        "scale": 2,
    }
    torch.manual_seed(0)
    wrapper = AuxiliaryUnmixing(**config).eval()
    path = save_checkpoint(
        SRModel(name="aux", network=wrapper, scale=2, halo=wrapper.halo, n_bands=BANDS),
        tmp_path / "aux",
        config,
    )
    loaded = load_checkpoint(path).network
    x = torch.rand(1, BANDS, 6, 6)
    with torch.no_grad():
        assert torch.equal(loaded(x), wrapper(x))
        assert torch.equal(loaded.aux_loss(x, loaded(x)), wrapper.aux_loss(x, wrapper(x)))
    with pytest.raises(ValueError, match="registered architecture"):
        AuxiliaryUnmixing({"architecture": "nope"}, config["autoencoder"], 2)
