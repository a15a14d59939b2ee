"""UnmixingSR: material-aware HSI super-resolution with unmixing as an auxiliary task.

Network (paper Sec. III-D, Fig. 6):

1. a 3x3 head convolution to ``features`` channels;
2. ``n_grams`` GRAMs and a 3x3 convolution, with a residual connection around this body;
3. progressive pixel-shuffle upsampling (:func:`upsampling_factors`): x2 for scale 2, x3 for 3,
   x2 then x2 for 4, and "x n/2 then x2" for 8 (x4 done as x2, x2; then x2). Each step is a 3x3
   convolution to ``features * f**2`` channels and a pixel shuffle by ``f``;
4. the material-aware module (MAM, :class:`MaterialAwareModule`) at the last upsampling stage, i.e.
   on the features right after the last pixel shuffle (on the HR grid);
5. a 3x3 tail convolution to the bands, plus the global residual: the bicubic upsampling of the
   input (:func:`xr_unmixsr.models.bicubic.bicubic_resize`).

MAM. The abundances ``A(LR)`` of the LR input, from the encoder of a frozen
:class:`~xr_unmixsr.models.autoencoder.UnmixingAutoencoder` (a submodule, so one checkpoint holds
both), are upsampled by nearest neighbour to the HR grid, embedded by a 3x3 convolution and a
LeakyReLU, and modulate the features spatially (SFT-style):
``features * (1 + gamma(A)) + beta(A)``, ``gamma`` and ``beta`` 1x1 convolutions initialised at
zero so that the MAM starts as the identity and learns how much the materials should steer each
feature. Modulation rather than concatenation keeps the feature width and lets the abundances act
as a per-pixel, per-feature gain, which is what "material-aware" asks for. ``use_mam=False`` is the
same network without the MAM and without the autoencoder (the ablation baseline; it can still be
trained with the AbunLoss through :class:`~xr_unmixsr.models.auxiliary.AuxiliaryUnmixing`).

AbunLoss (eq. 11). ``A(SR)`` and ``A(LR)`` come from the frozen autoencoder; ``A(LR)`` is brought to
the HR grid by **nearest-neighbour** upsampling (:func:`upsample_abundances`): the paper's Fig. 2
states that an LR pixel and its ``scale x scale`` HR counterpart region share the same material
proportions, which is exactly a nearest upsampling; it also keeps the upsampled abundances on the
simplex (bicubic overshoots below 0 and above 1) and adds no receptive field.

Receptive field (``halo``, in LR pixels). Layers in sequence add their radii, parallel branches
take the maximum. A 3x3 convolution on the LR grid adds 1; on a grid ``f`` times finer it adds
``ceil(1 / f) = 1`` LR pixel (a fine pixel's neighbours lie in the same or an adjacent LR pixel),
pixel shuffles and nearest upsampling add 0, bicubic upsampling adds 2. So::

    main = 1 (head) + n_grams * (attention_radius + 3) + 1 (body conv) + len(steps)
    mam  = autoencoder.radius + 1 (embedding conv)
    halo = max(max(main, mam) + 1 (tail), 2 (bicubic residual))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .autoencoder import UnmixingAutoencoder, spectral_angle_loss
from .bicubic import BICUBIC_HALO, bicubic_resize
from .gram import DEFAULT_ATTENTION_RADIUS, gram_stack
from .registry import register_architecture

__all__ = [
    "MaterialAwareModule",
    "UnmixingSR",
    "Upsampler",
    "abundance_loss",
    "sr_loss",
    "upsample_abundances",
    "upsampling_factors",
]


def upsampling_factors(scale: int) -> list[int]:
    """The pixel-shuffle factors of the progressive upsampler for ``scale``.

    Scale 2: ``[2]``; 3: ``[3]``; 4: ``[2, 2]``; 8: ``[2, 2, 2]`` (the paper's x4 = n/2 stage as
    two x2 shuffles, then x2). Any product of 2s and 3s is accepted (the 3s first).

    Raises:
        ValueError: ``scale`` is not a product of 2s and 3s.
    """
    if scale < 2:
        raise ValueError(f"scale must be >= 2, got {scale}")
    rest, factors = scale, []
    for f in (3, 2):
        while rest % f == 0:
            factors.append(f)
            rest //= f
    if rest != 1:
        raise ValueError(f"scale {scale} is not a product of 2s and 3s: use 2, 3, 4 or 8")
    return factors


class Upsampler(nn.Module):
    """Progressive upsampling: per factor ``f`` a 3x3 conv to ``channels * f**2`` and a shuffle.

    Attributes:
        factors: the shuffle factors, in order.
        radius: receptive field in input pixels, one per step (see the module docstring).
    """

    def __init__(self, channels: int, scale: int) -> None:
        super().__init__()
        self.factors = upsampling_factors(scale)
        self.steps = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels * f * f, 3, padding=1), nn.PixelShuffle(f))
            for f in self.factors
        )
        self.radius = len(self.factors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample (N, C, h, w) features to (N, C, h*scale, w*scale)."""
        for step in self.steps:
            x = step(x)
        return x


def upsample_abundances(abundances: torch.Tensor, scale: int) -> torch.Tensor:
    """Nearest-neighbour upsampling of (N, p, h, w) abundances to (N, p, h*scale, w*scale).

    Each LR pixel's proportions are given to its ``scale x scale`` HR region (paper Fig. 2); the
    result stays on the simplex.
    """
    return F.interpolate(abundances, scale_factor=scale, mode="nearest")


class MaterialAwareModule(nn.Module):
    """Spatial feature modulation by abundance maps: ``f * (1 + gamma(A)) + beta(A)``.

    ``A`` (N, p, H, W) is embedded by a 3x3 convolution and a LeakyReLU; ``gamma`` and ``beta`` are
    1x1 convolutions to ``features`` channels initialised at zero (the module starts as the
    identity). ``radius = 1`` (in pixels of the grid it works on).
    """

    radius: int = 1

    def __init__(self, features: int, n_endmembers: int, embed_features: int = 32) -> None:
        super().__init__()
        self.embed = nn.Sequential(
            nn.Conv2d(n_endmembers, embed_features, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)
        )
        self.gamma = nn.Conv2d(embed_features, features, 1)
        self.beta = nn.Conv2d(embed_features, features, 1)
        for conv in (self.gamma, self.beta):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, features: torch.Tensor, abundances: torch.Tensor) -> torch.Tensor:
        """Modulate (N, C, H, W) ``features`` by (N, p, H, W) ``abundances`` on the same grid."""
        e = self.embed(abundances)
        return features * (1.0 + self.gamma(e)) + self.beta(e)


@register_architecture("unmixingsr")
class UnmixingSR(nn.Module):
    """The UnmixingSR network (see the module docstring).

    Args:
        n_bands: number of spectral bands.
        scale: upsampling factor (2, 3, 4, 8, or another product of 2s and 3s).
        features: feature channels of the SR branch (paper: 64).
        n_grams: GRAMs in the body (paper: 9; default 4 to keep CPU use reasonable).
        n_endmembers: endmembers of the auxiliary autoencoder.
        attention_radius: half-width of the local channel-attention window of every GRAM.
        reduction: channel reduction of the attention MLPs.
        use_mam: with the MAM and the autoencoder (False: the plain SR baseline).
        ae_features: feature channels of the autoencoder's encoder.
        ae_grams: GRAMs in the autoencoder's encoder.
        mam_features: channels of the MAM's abundance embedding.

    Attributes:
        autoencoder: the frozen unmixing autoencoder (None without MAM). Its parameters have
            ``requires_grad=False``; set them with :meth:`load_autoencoder_` after step I.
        halo: receptive-field radius in LR pixels.
    """

    def __init__(
        self,
        n_bands: int,
        scale: int,
        features: int = 64,
        n_grams: int = 4,
        n_endmembers: int = 8,
        attention_radius: int = DEFAULT_ATTENTION_RADIUS,
        reduction: int = 4,
        use_mam: bool = True,
        ae_features: int = 32,
        ae_grams: int = 2,
        mam_features: int = 32,
    ) -> None:
        super().__init__()
        self.n_bands = n_bands
        self.scale = scale
        self.head = nn.Conv2d(n_bands, features, 3, padding=1)
        self.grams = gram_stack(features, n_grams, attention_radius, reduction)
        self.body_conv = nn.Conv2d(features, features, 3, padding=1)
        self.upsampler = Upsampler(features, scale)
        self.tail = nn.Conv2d(features, n_bands, 3, padding=1)
        main = 1 + self.grams.radius + 1 + self.upsampler.radius
        self.autoencoder: UnmixingAutoencoder | None
        self.mam: MaterialAwareModule | None
        if use_mam:
            self.autoencoder = UnmixingAutoencoder(
                n_bands, n_endmembers, ae_features, ae_grams, attention_radius, reduction
            )
            self.autoencoder.requires_grad_(False)
            self.mam = MaterialAwareModule(features, n_endmembers, mam_features)
            main = max(main, self.autoencoder.radius + self.mam.radius)
        else:
            self.autoencoder = None
            self.mam = None
        self.halo = max(main + 1, BICUBIC_HALO)

    @property
    def use_mam(self) -> bool:
        """Whether the network has the MAM (and the autoencoder)."""
        return self.mam is not None

    def load_autoencoder_(self, autoencoder: UnmixingAutoencoder) -> None:
        """Copy the weights of a trained autoencoder (step I) into the frozen submodule."""
        if self.autoencoder is None:
            raise ValueError("this UnmixingSR has no autoencoder (use_mam=False)")
        self.autoencoder.load_state_dict(autoencoder.state_dict())
        self.autoencoder.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample a (N, bands, h, w) cube to (N, bands, h*scale, w*scale)."""
        feat = self.head(x)
        feat = feat + self.body_conv(self.grams(feat))
        feat = self.upsampler(feat)
        if self.mam is not None and self.autoencoder is not None:
            abundances = upsample_abundances(self.autoencoder.encode(x), self.scale)
            feat = self.mam(feat, abundances)
        return self.tail(feat) + bicubic_resize(x, self.scale)

    def abundance_pair(
        self, lr: torch.Tensor, sr: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A(SR), Up(A(LR)))`` from the frozen autoencoder, the two sides of the AbunLoss.

        ``A(SR)`` keeps the gradient with respect to ``sr``; ``A(LR)`` is computed without one.
        """
        if self.autoencoder is None:
            raise ValueError("this UnmixingSR has no autoencoder (use_mam=False)")
        with torch.no_grad():
            abun_lr_up = upsample_abundances(self.autoencoder.encode(lr), self.scale)
        return self.autoencoder.encode(sr), abun_lr_up


def abundance_loss(abun_sr: torch.Tensor, abun_lr_up: torch.Tensor) -> torch.Tensor:
    """AbunLoss = mean |A(SR) - Up(A(LR))| (paper eq. 11)."""
    return F.l1_loss(abun_sr, abun_lr_up)


def sr_loss(
    sr: torch.Tensor,
    hr: torch.Tensor,
    abun_sr: torch.Tensor | None = None,
    abun_lr_up: torch.Tensor | None = None,
    alpha: float = 0.1,
    beta: float = 1e-3,
) -> torch.Tensor:
    """Loss_SR = mean |HR - SR| + alpha * SAD(HR, SR) + beta * AbunLoss (paper eqs. 9-12).

    Args:
        sr: the network output (N, bands, H, W).
        hr: the reference HR cube, same shape.
        abun_sr: abundances of ``sr`` by the frozen autoencoder (N, p, H, W); None drops the
            AbunLoss term (the baseline without auxiliary unmixing).
        abun_lr_up: abundances of the LR input, upsampled to the HR grid (nearest).
        alpha: weight of the spectral-angle term (paper 0.1).
        beta: weight of the AbunLoss (paper eq. 12: 1e-3; Sec. IV-A uses 0.2).
    """
    loss = F.l1_loss(sr, hr) + alpha * spectral_angle_loss(hr, sr)
    if abun_sr is not None and abun_lr_up is not None:
        loss = loss + beta * abundance_loss(abun_sr, abun_lr_up)
    return loss
