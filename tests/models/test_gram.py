"""GRAM building blocks: per-pixel layer norm, local channel attention, declared receptive fields."""

from __future__ import annotations

import pytest
import torch

from xr_unmixsr.models.gram import (
    GRAM,
    LayerNorm2d,
    LocalChannelAttention,
    SpatialResidualBlock,
    SpectralResidualBlock,
    gram_stack,
)


def _changed_distances(module: torch.nn.Module, channels: int, size: int) -> torch.Tensor:
    """Chebyshev distances from the centre of the output pixels that change when the centre
    input pixel is perturbed (float64, so that only true dependencies show)."""
    torch.manual_seed(0)
    module = module.double().eval()
    x = torch.rand(1, channels, size, size, dtype=torch.float64)
    c = size // 2
    x2 = x.clone()
    # a random spectrum, not a constant shift (a layer norm would cancel that)
    x2[0, :, c, c] += torch.randn(channels, dtype=torch.float64)
    with torch.no_grad():
        diff = (module(x2) - module(x)).abs().amax(dim=(0, 1))
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    dist = torch.maximum((yy - c).abs(), (xx - c).abs())
    return dist[diff > 1e-12]


# factories, so that every module gets its weights from a fixed seed; reduction=1 keeps the
# attention MLP wide enough that ReLU does not switch it off (constant weights hide the window)
MODULES = {
    "ca-r3": lambda: LocalChannelAttention(8, radius=3, reduction=1),
    "ca-r0": lambda: LocalChannelAttention(8, radius=0, reduction=1),
    "spectral": lambda: SpectralResidualBlock(8, attention_radius=2, reduction=1),
    "spatial": lambda: SpatialResidualBlock(8),
    "gram-r2": lambda: GRAM(8, attention_radius=2, reduction=1),
    "gram-r4": lambda: GRAM(8, attention_radius=4, reduction=1),
    "stack3": lambda: gram_stack(8, 3, attention_radius=1, reduction=1),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_declared_radius_is_exact_receptive_field(name: str) -> None:
    torch.manual_seed(0)
    module = MODULES[name]()
    dist = _changed_distances(module, 8, 2 * module.radius + 9)
    assert int(dist.max()) == module.radius


def test_radii_add_up() -> None:
    assert GRAM(8, attention_radius=4).radius == 7
    assert gram_stack(8, 3, attention_radius=2).radius == 15
    assert gram_stack(8, 0).radius == 0


def test_layer_norm_normalises_each_pixel_over_channels() -> None:
    x = torch.randn(2, 6, 5, 4) * 3 + 7
    y = LayerNorm2d(6)(x)
    torch.testing.assert_close(y.mean(dim=1), torch.zeros(2, 5, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=1, unbiased=False), torch.ones(2, 5, 4), atol=1e-3, rtol=0)


def test_local_attention_is_global_attention_on_small_inputs() -> None:
    """With a window covering the whole input the weights are those of classic (global-pool)
    squeeze-and-excitation: one weight per channel, the same at every pixel."""
    torch.manual_seed(1)
    ca = LocalChannelAttention(6, radius=10).eval()
    x = torch.rand(1, 6, 7, 5) + 0.1
    with torch.no_grad():
        weights = ca(x) / x
        expected = ca.excite(x.mean(dim=(2, 3), keepdim=True))
    torch.testing.assert_close(weights, expected.expand_as(x), atol=1e-5, rtol=1e-5)


def test_local_attention_weights_vary_over_the_image() -> None:
    torch.manual_seed(2)
    ca = LocalChannelAttention(6, radius=1).eval()
    x = torch.rand(1, 6, 12, 12) + 0.1
    with torch.no_grad():
        weights = ca(x) / x
    assert float(weights.std(dim=(2, 3)).min()) > 1e-4
    assert float(weights.min()) > 0 and float(weights.max()) < 1


def test_gram_is_residual_shape_preserving_and_trainable() -> None:
    torch.manual_seed(3)
    gram = GRAM(8, attention_radius=2)
    x = torch.rand(2, 8, 9, 11)
    y = gram(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in gram.parameters())


def test_negative_radius_rejected() -> None:
    with pytest.raises(ValueError, match="radius"):
        LocalChannelAttention(4, radius=-1)
