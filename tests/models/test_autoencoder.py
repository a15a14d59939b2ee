"""The unmixing autoencoder: simplex abundances, non-negative endmembers, receptive field, loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xr_unmixsr.models import SRModel, UnmixingAutoencoder, load_checkpoint, save_checkpoint
from xr_unmixsr.models.autoencoder import endmember_tv, spectral_angle_loss, unmixing_loss
from xr_unmixsr.unmixing import vca
from xr_unmixsr.unmixing.synthetic import linear_mixtures

BANDS, P = 12, 3


def _cube(size: int = 16, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """A (1, BANDS, size, size) linear-mixture cube and its true endmembers."""
    pixels, endmembers, _ = linear_mixtures(
        size * size, BANDS, P, noise=0.002, concentration=0.5, pure_per_endmember=2, seed=seed
    )
    cube = torch.from_numpy(pixels.T.reshape(1, BANDS, size, size).astype(np.float32))
    return cube, endmembers


def _ae(**kw) -> UnmixingAutoencoder:
    torch.manual_seed(0)
    cfg = dict(n_bands=BANDS, n_endmembers=P, features=8, n_grams=1, attention_radius=2)
    return UnmixingAutoencoder(**{**cfg, **kw})


def test_abundances_on_the_simplex_and_shapes() -> None:
    ae = _ae()
    x = torch.randn(2, BANDS, 9, 7) * 5  # also for wild inputs
    with torch.no_grad():
        recon, abundances = ae(x)
        torch.testing.assert_close(ae.encode(x), abundances)
        assert ae.endmembers.shape == (P, BANDS)
        # the decoder is the linear mixing model with the endmembers as weights
        mixed = torch.einsum("npyx,pb->nbyx", abundances, ae.endmembers)
    torch.testing.assert_close(recon, mixed)
    assert recon.shape == x.shape
    assert abundances.shape == (2, P, 9, 7)
    assert float(abundances.min()) >= 0
    torch.testing.assert_close(abundances.sum(dim=1), torch.ones(2, 9, 7))


def test_endmembers_start_non_negative_and_stay_so_after_a_step_pushing_them_negative() -> None:
    ae = _ae()
    assert float(ae.endmembers.detach().min()) >= 0
    opt = torch.optim.SGD(ae.parameters(), lr=10.0)
    ae.endmembers.sum().backward()  # gradient +1 everywhere: the step drives every entry to < 0
    opt.step()
    assert float(ae.endmembers.detach().min()) < 0  # the step did push them negative ...
    ae.clamp_endmembers_()
    assert float(ae.endmembers.detach().min()) >= 0  # ... and the projection undoes it
    assert float(ae.endmembers.detach().max()) == 0


def test_init_endmembers_from_vca() -> None:
    cube, true_e = _cube()
    pixels = cube[0].reshape(BANDS, -1).T.numpy().astype(np.float64)
    e, _ = vca(pixels, P, seed=0)
    ae = _ae()
    ae.init_endmembers_(e)
    np.testing.assert_allclose(ae.endmembers.detach().numpy(), np.clip(e, 0, None), rtol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        ae.init_endmembers_(e[:, :-1])


def test_declared_halo_bounds_the_receptive_field_and_is_not_loose() -> None:
    ae = _ae(attention_radius=2, n_grams=2).double().eval()
    assert ae.halo == ae.radius == 1 + 2 * (2 + 3)
    size = 2 * ae.halo + 7
    x = torch.rand(1, BANDS, size, size, dtype=torch.float64)
    c = size // 2
    x2 = x.clone()
    x2[0, :, c, c] += torch.rand(BANDS, dtype=torch.float64)
    with torch.no_grad():
        (r1, a1), (r2, a2) = ae(x), ae(x2)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    dist = torch.maximum((yy - c).abs(), (xx - c).abs())
    for d in ((r2 - r1).abs().amax(dim=(0, 1)), (a2 - a1).abs().amax(dim=(0, 1))):
        changed = dist[d > 1e-12]
        assert int(changed.max()) <= ae.halo
        assert int(changed.max()) >= ae.halo / 2


def test_loss_terms() -> None:
    x = torch.rand(2, BANDS, 4, 4) + 0.1
    assert float(spectral_angle_loss(x, x)) < 2e-3  # arccos(1 - 1e-6)
    assert math.isclose(float(spectral_angle_loss(x, 3 * x)), float(spectral_angle_loss(x, x)))
    e = torch.tensor([[0.0, 1.0, 3.0], [2.0, 2.0, 1.0]])
    assert float(endmember_tv(e)) == pytest.approx(1 + 2 + 0 + 1)
    ae = _ae()
    with torch.no_grad():
        recon, _ = ae(x)
        loss = unmixing_loss(x, recon, ae.endmembers)
    assert torch.isfinite(loss)
    # a perfect reconstruction leaves the (tiny) SAD floor and the TV term
    assert float(unmixing_loss(x, x, e, beta=1.0)) == pytest.approx(4.0, abs=1e-3)


def test_unmixing_loss_decreases_and_endmembers_stay_non_negative() -> None:
    cube, _ = _cube()
    ae = _ae(features=16)
    e, _ = vca(cube[0].reshape(BANDS, -1).T.numpy().astype(np.float64), P, seed=0)
    ae.init_endmembers_(e)
    opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        recon, _ = ae(cube)
        loss = unmixing_loss(cube, recon, ae.endmembers)
        loss.backward()
        opt.step()
        ae.clamp_endmembers_()
        assert float(ae.endmembers.detach().min()) >= 0
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


def test_checkpoint_round_trip(tmp_path) -> None:
    ae = _ae().eval()
    cfg = dict(n_bands=BANDS, n_endmembers=P, features=8, n_grams=1, attention_radius=2)
    path = save_checkpoint(
        SRModel(name="ae", network=ae, scale=1, halo=ae.halo, n_bands=BANDS), tmp_path / "ae", cfg
    )
    loaded = load_checkpoint(path).network
    assert type(loaded) is UnmixingAutoencoder
    x = torch.rand(1, BANDS, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], ae(x)[0])
