"""ConvSR: the activation's negative slope, old cards, and why the trainer uses a leaky one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xr_unmixsr.models import ConvSR
from xr_unmixsr.models.conv import TRAINING_NEGATIVE_SLOPE
from xr_unmixsr.models.registry import build_network

BANDS = 6


def _slopes(net: torch.nn.Module) -> list[float]:
    return [m.negative_slope for m in net.modules() if isinstance(m, torch.nn.LeakyReLU)]


def test_a_card_without_the_slope_builds_the_plain_relu_it_was_trained_with() -> None:
    net = build_network({"architecture": "convsr", "config": {"n_bands": BANDS, "scale": 2}})
    assert _slopes(net) == [0.0, 0.0]
    x = -torch.rand(1, BANDS, 5, 5)
    torch.testing.assert_close(net.body[1](net.body[0](x)), F.relu(net.body[0](x)))


@pytest.mark.parametrize(("slope", "revived"), [(0.0, False), (TRAINING_NEGATIVE_SLOPE, True)])
def test_a_dead_first_layer_learns_only_with_a_leaky_activation(
    slope: float, revived: bool
) -> None:
    torch.manual_seed(0)
    net = ConvSR(BANDS, 2, features=8, depth=2, negative_slope=slope)
    first = net.body[0]
    with torch.no_grad():
        first.bias.fill_(-100.0)  # every unit negative on every (non-negative) reflectance
    lr = torch.rand(4, BANDS, 8, 8)
    hr = torch.rand(4, BANDS, 16, 16)
    F.l1_loss(net(lr), hr).backward()
    moved = bool(first.weight.grad.abs().max() > 0)
    assert moved is revived
