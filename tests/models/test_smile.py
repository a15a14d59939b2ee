"""The SMILE-style multitask network: HR abundances, shared decoder, halo, losses, engine."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import torch

from xr_unmixsr.engine import predict_array, upscale_array
from xr_unmixsr.models import SMILE, SRModel, load_checkpoint, save_checkpoint, smile_loss
from xr_unmixsr.models.bicubic import bicubic_resize
from xr_unmixsr.models.smile import degrade
from xr_unmixsr.unmixing.synthetic import smooth_mixture_cube

BANDS, P = 8, 3
SMALL = dict(n_bands=BANDS, n_endmembers=P, features=8, n_grams=1, attention_radius=2)


def _net(scale: int, **kw) -> SMILE:
    torch.manual_seed(0)
    return SMILE(scale=scale, **{**SMALL, **kw}).eval()


def _hr_cube(size: int = 24, seed: int = 0) -> torch.Tensor:
    """A (1, BANDS, size, size) cube mixed from spatially smooth abundances."""
    cube = smooth_mixture_cube(size, BANDS, P, seed=seed)
    return torch.from_numpy(cube[None].astype(np.float32))


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_outputs_on_the_hr_grid(scale: int) -> None:
    net = _net(scale)
    with torch.no_grad():
        out = net(torch.rand(2, BANDS, 6, 5))
    h, w = 6 * scale, 5 * scale
    assert out["sr"].shape == (2, BANDS, h, w)
    assert out["abundances"].shape == (2, P, h, w)
    assert out["reconstruction"].shape == (2, BANDS, h, w)
    assert out["endmembers"].shape == (P, BANDS)
    assert float(out["abundances"].min()) >= 0
    torch.testing.assert_close(out["abundances"].sum(dim=1), torch.ones(2, h, w))
    mixed = torch.einsum("npyx,pb->nbyx", out["abundances"], out["endmembers"])
    torch.testing.assert_close(out["reconstruction"], mixed)


def test_sr_output_mode() -> None:
    x = torch.rand(1, BANDS, 6, 6)
    net = _net(2)
    with torch.no_grad():
        full = net(x)
        net.output = "sr"
        assert torch.equal(net(x), full["sr"])
    with pytest.raises(ValueError, match="output"):
        SMILE(BANDS, 2, output="abundances")


@pytest.mark.parametrize("scale", [2, 4])
def test_halo_bounds_every_output(scale: int) -> None:
    net = _net(scale).double()
    assert net.halo == 1 + 5 + 1 + len(net.sr_up.factors) + 1
    size = 2 * net.halo + 5
    torch.manual_seed(1)
    x = torch.rand(1, BANDS, size, size, dtype=torch.float64)
    c = size // 2
    x2 = x.clone()
    x2[0, :, c, c] += torch.rand(BANDS, dtype=torch.float64)
    with torch.no_grad():
        o1, o2 = net(x), net(x2)
    idx = torch.arange(size * scale) // scale
    yy, xx = torch.meshgrid(idx, idx, indexing="ij")
    dist = torch.maximum((yy - c).abs(), (xx - c).abs())
    for key in ("sr", "abundances", "reconstruction"):
        changed = dist[(o2[key] - o1[key]).abs().amax(dim=(0, 1)) > 1e-12]
        assert int(changed.max()) <= net.halo, key
        assert int(changed.max()) >= net.halo / 2, key


def test_seam_free_through_the_engine() -> None:
    net = _net(2, output="sr")
    model = SRModel(name="smile", network=net, scale=2, halo=net.halo, n_bands=BANDS)
    scene = np.random.default_rng(0).random((BANDS, 27, 22), dtype=np.float32)
    ref = predict_array(model, scene, device="cpu")
    arr = da.from_array(scene, chunks=(-1, 11, 8))
    out = upscale_array(arr, model, tile=net.halo, batch_size=2, device="cpu").compute()
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)


def test_endmembers_projected_non_negative() -> None:
    net = _net(2)
    opt = torch.optim.SGD(net.parameters(), lr=10.0)
    net.endmembers.sum().backward()
    opt.step()
    assert float(net.endmembers.detach().min()) < 0
    net.clamp_endmembers_()
    assert float(net.endmembers.detach().min()) >= 0
    net.init_endmembers_(np.full((P, BANDS), 0.5))
    assert torch.equal(net.endmembers.detach(), torch.full((P, BANDS), 0.5))


@pytest.mark.parametrize("supervised", [True, False], ids=["with-hr", "self-supervised"])
def test_smile_loss_decreases(supervised: bool) -> None:
    hr = _hr_cube()
    lr = bicubic_resize(hr, 0.5)
    net = _net(2).train()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = smile_loss(net(lr), lr, hr if supervised else None)
        loss.backward()
        opt.step()
        net.clamp_endmembers_()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert float(net.endmembers.detach().min()) >= 0
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses


def test_degrade_inverts_the_grid() -> None:
    hr = _hr_cube(12)
    lr = degrade(hr, (4, 4))
    assert lr.shape == (1, BANDS, 4, 4)
    torch.testing.assert_close(lr, bicubic_resize(hr, 1 / 3))


def test_checkpoint_round_trip(tmp_path) -> None:
    net = _net(3, output="sr")
    config = {**SMALL, "scale": 3, "output": "sr"}
    path = save_checkpoint(
        SRModel(name="s", network=net, scale=3, halo=net.halo, n_bands=BANDS),
        tmp_path / "s",
        config,
    )
    loaded = load_checkpoint(path).network
    assert type(loaded) is SMILE
    x = torch.rand(1, BANDS, 7, 7)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
