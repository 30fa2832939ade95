"""DiffAugment: differentiable augmentation for data-efficient GAN training.

A port of ``DiffAugment_pytorch.py`` from mit-han-lab/data-efficient-gans, the reference code of
Zhao, Liu, Lin, Zhu and Han 2020, "Differentiable Augmentation for Data-Efficient GAN Training" (NeurIPS 2020).

The same random augmentation T must be applied to the real *and* the generated images, in both the
discriminator step (D sees T(x) and T(G(z))) and the generator step (G is trained through D(T(G(z)))).
Every augmentation here is differentiable, so gradients flow through T into G. Augmenting only the real
images changes the distribution D learns to accept, and G learns to produce augmented images.

Policies (comma-separated, applied in the order given):

- ``"color"``: :func:`rand_brightness` (+U(-0.5, 0.5)), :func:`rand_saturation` (x U(0, 2)),
  :func:`rand_contrast` (x U(0.5, 1.5)), each one random factor per sample.
- ``"translation"``: :func:`rand_translation`, an integer shift of up to 1/8 of the size per axis, zero fill.
- ``"cutout"``: :func:`rand_cutout`, a zeroed square of half the size per axis at a random centre, clipped
  at the border.

All random numbers come from torch's global RNG, so ``torch.manual_seed`` makes them reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "POLICIES",
    "TRANSLATION_RATIO",
    "DiffAugment",
    "diff_augment",
    "rand_brightness",
    "rand_contrast",
    "rand_cutout",
    "rand_saturation",
    "rand_translation",
]


def _per_sample_uniform(x: Tensor) -> Tensor:
    """U(0, 1) of shape [B, 1, 1, 1], with the dtype and device of ``x``."""
    return torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)


def rand_brightness(x: Tensor) -> Tensor:
    """Adds U(-0.5, 0.5) to each sample of an [B, C, H, W] batch."""
    return x + (_per_sample_uniform(x) - 0.5)


def rand_saturation(x: Tensor) -> Tensor:
    """Scales each sample's deviation from its per-pixel channel mean by U(0, 2)."""
    x_mean = x.mean(dim=1, keepdim=True)
    return (x - x_mean) * (_per_sample_uniform(x) * 2) + x_mean


def rand_contrast(x: Tensor) -> Tensor:
    """Scales each sample's deviation from its overall mean by U(0.5, 1.5)."""
    x_mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - x_mean) * (_per_sample_uniform(x) + 0.5) + x_mean


TRANSLATION_RATIO = 0.125  # the reference's largest translation, as a share of the size: 4 pixels on 28 x 28


def rand_translation(x: Tensor, ratio: float = TRANSLATION_RATIO) -> Tensor:
    """Shifts each sample by an integer in [-s, s] per axis, s = int(size * ratio + 0.5), filling with zeros."""
    shift_x, shift_y = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    translation_x = torch.randint(-shift_x, shift_x + 1, size=[x.size(0), 1, 1], device=x.device)
    translation_y = torch.randint(-shift_y, shift_y + 1, size=[x.size(0), 1, 1], device=x.device)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0), dtype=torch.long, device=x.device),
        torch.arange(x.size(2), dtype=torch.long, device=x.device),
        torch.arange(x.size(3), dtype=torch.long, device=x.device),
        indexing="ij",
    )
    grid_x = torch.clamp(grid_x + translation_x + 1, 0, x.size(2) + 1)
    grid_y = torch.clamp(grid_y + translation_y + 1, 0, x.size(3) + 1)
    x_pad = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return x_pad.permute(0, 2, 3, 1).contiguous()[grid_batch, grid_x, grid_y].permute(0, 3, 1, 2)


def rand_cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zeroes a square of int(size * ratio + 0.5) per axis at a random centre in each sample, clipped at the border."""
    cutout_size = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    offset_x = torch.randint(0, x.size(2) + (1 - cutout_size[0] % 2), size=[x.size(0), 1, 1], device=x.device)
    offset_y = torch.randint(0, x.size(3) + (1 - cutout_size[1] % 2), size=[x.size(0), 1, 1], device=x.device)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0), dtype=torch.long, device=x.device),
        torch.arange(cutout_size[0], dtype=torch.long, device=x.device),
        torch.arange(cutout_size[1], dtype=torch.long, device=x.device),
        indexing="ij",
    )
    grid_x = torch.clamp(grid_x + offset_x - cutout_size[0] // 2, min=0, max=x.size(2) - 1)
    grid_y = torch.clamp(grid_y + offset_y - cutout_size[1] // 2, min=0, max=x.size(3) - 1)
    mask = torch.ones(x.size(0), x.size(2), x.size(3), dtype=x.dtype, device=x.device)
    mask[grid_batch, grid_x, grid_y] = 0
    return x * mask.unsqueeze(1)


POLICIES: dict[str, tuple[Callable[[Tensor], Tensor], ...]] = {
    "color": (rand_brightness, rand_saturation, rand_contrast),
    "translation": (rand_translation,),
    "cutout": (rand_cutout,),
}


def _parse_policy(policy: str) -> tuple[str, ...]:
    """Splits a comma-separated policy into names, stripping whitespace; raises ValueError on an unknown name."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown[0]!r} in {policy!r}; valid policies: {sorted(POLICIES)}")
    return names


def diff_augment(
    x: Tensor,
    policy: str = "color,translation,cutout",
    channels_first: bool = True,
    translation_ratio: float = TRANSLATION_RATIO,
) -> Tensor:
    """Applies the DiffAugment policies to a batch of images, differentiably.

    Args:
        x: images, [B, C, H, W] (or [B, H, W, C] with ``channels_first=False``), of any range.
        policy: comma-separated policy names from :data:`POLICIES`, applied in the order given.
            The empty string disables augmentation.
        channels_first: whether ``x`` is [B, C, H, W] rather than [B, H, W, C].
        translation_ratio: the largest shift of ``"translation"`` as a share of the size (the reference's 1/8: 4
            pixels on 28 x 28). On MNIST with the DCGAN of ``configs/`` 4 pixels made the generator stop drawing
            strokes, 1 pixel (1/28) did not (``README``, DiffAugment).

    Returns:
        A contiguous tensor of the shape and dtype of ``x``; ``x`` itself when the policy is empty.

    Raises:
        ValueError: on an unknown policy name, or a non-4-D ``x`` with a non-empty policy.

    Example:
        >>> x = torch.rand(8, 3, 32, 32)
        >>> diff_augment(x, "color,translation,cutout").shape
        torch.Size([8, 3, 32, 32])
        >>> diff_augment(x, "") is x
        True
    """
    names = _parse_policy(policy)
    if not names:
        return x
    if x.dim() != 4:
        expected = "[B, C, H, W]" if channels_first else "[B, H, W, C]"
        raise ValueError(f"diff_augment expects a 4-D {expected} tensor, got shape {list(x.shape)}")
    if not channels_first:
        x = x.permute(0, 3, 1, 2)
    for name in names:
        for fn in POLICIES[name]:
            x = fn(x, translation_ratio) if fn is rand_translation else fn(x)
    if not channels_first:
        x = x.permute(0, 2, 3, 1)
    return x.contiguous()


class DiffAugment(nn.Module):
    """:func:`diff_augment` as a module; apply the same instance to real and generated images in D and G steps.

    Args:
        policy: comma-separated policy names from :data:`POLICIES`, validated here; "" disables it.
        translation_ratio: the largest shift of ``"translation"`` as a share of the size, in [0, 0.5)
            (:func:`diff_augment`).

    Attributes:
        policy: the normalised policy, e.g. ``"color,cutout"`` for ``" color , cutout "``.
        enabled: False for the empty policy, where :meth:`forward` returns its input.

    Example:
        >>> augment = DiffAugment("color, translation")
        >>> augment
        DiffAugment(policy='color,translation')
        >>> augment(torch.rand(4, 1, 28, 28)).shape
        torch.Size([4, 1, 28, 28])
        >>> DiffAugment("").enabled
        False
    """

    def __init__(self, policy: str = "color,translation,cutout", translation_ratio: float = TRANSLATION_RATIO) -> None:
        super().__init__()
        if not 0 <= translation_ratio < 0.5:
            raise ValueError(f"DiffAugment: translation_ratio must be in [0, 0.5), got {translation_ratio!r}")
        self.policy = ",".join(_parse_policy(policy))
        self.translation_ratio = float(translation_ratio)
        self.enabled = bool(self.policy)

    def forward(self, x: Tensor) -> Tensor:
        """Augments ``x`` ([B, C, H, W]) with :attr:`policy`."""
        return diff_augment(x, self.policy, translation_ratio=self.translation_ratio)

    def extra_repr(self) -> str:
        ratio = f", translation_ratio={self.translation_ratio:g}" if self.translation_ratio != TRANSLATION_RATIO else ""
        return f"policy={self.policy!r}{ratio}"
