from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from lightning_gan.augment import (
    POLICIES,
    DiffAugment,
    diff_augment,
    rand_brightness,
    rand_contrast,
    rand_cutout,
    rand_saturation,
    rand_translation,
)

ALL = "color,translation,cutout"
SHAPES = [(4, 1, 28, 28), (4, 3, 32, 32)]


def per_sample_factor(out: torch.Tensor, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """The least-squares factor f per sample with out - mean = f (x - mean); asserts the fit is exact."""
    dx, dout = x - mean, out - mean
    f = (dout * dx).sum(dim=[1, 2, 3]) / (dx * dx).sum(dim=[1, 2, 3])
    torch.testing.assert_close(dout, f.view(-1, 1, 1, 1) * dx)
    return f


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=["28x28x1", "32x32x3"])
@pytest.mark.parametrize("policy", [*POLICIES, ALL])
def test_shape_and_dtype_are_kept(policy, shape, dtype):
    torch.manual_seed(0)
    out = diff_augment(torch.rand(shape, dtype=dtype), policy)
    assert out.shape == shape and out.dtype == dtype and out.is_contiguous()


def test_gradients_reach_the_input():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32).requires_grad_()
    diff_augment(x, ALL).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_brightness_adds_one_offset_per_sample_in_minus_half_to_half():
    torch.manual_seed(0)
    x = torch.full((2000, 3, 4, 4), 0.25, dtype=torch.float64)
    offset = rand_brightness(x) - x
    per_sample = offset[:, :1, :1, :1]
    torch.testing.assert_close(offset, per_sample.expand_as(offset))
    assert per_sample.min() >= -0.5 and per_sample.max() <= 0.5
    assert per_sample.min() < -0.4 and per_sample.max() > 0.4


def test_saturation_scales_deviation_from_channel_mean_by_zero_to_two():
    torch.manual_seed(0)
    m = torch.rand(2000, 1, 4, 4, dtype=torch.float64)
    d = 0.1 + torch.rand(2000, 1, 4, 4, dtype=torch.float64)
    x = torch.cat([m + d, m - 2 * d, m + d], dim=1)  # channel mean is exactly m
    f = per_sample_factor(rand_saturation(x), x, m)
    assert f.min() >= 0 and f.max() <= 2
    assert f.min() < 0.1 and f.max() > 1.9


def test_contrast_scales_deviation_from_image_mean_by_half_to_one_and_a_half():
    torch.manual_seed(0)
    m = torch.rand(2000, 1, 1, 1, dtype=torch.float64)
    d = 0.1 + torch.rand(2000, 3, 4, 2, dtype=torch.float64)
    x = m + torch.cat([d, -d], dim=3)  # image mean is exactly m
    f = per_sample_factor(rand_contrast(x), x, m)
    assert f.min() >= 0.5 and f.max() <= 1.5
    assert f.min() < 0.55 and f.max() > 1.45


def shifted(x: torch.Tensor, tx: int, ty: int) -> torch.Tensor:
    """out[..., i, j] = x[..., i + tx, j + ty], zero outside."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(0, -tx) : h - max(0, tx), max(0, -ty) : w - max(0, ty)] = x[
        ..., max(0, tx) : h + min(0, tx), max(0, ty) : w + min(0, ty)
    ]
    return out


def test_translation_of_ones_leaves_at_most_four_zero_rows_and_columns_at_one_edge():
    torch.manual_seed(0)
    out = rand_translation(torch.ones(500, 1, 28, 28))
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    for img in out[:, 0]:
        zero_rows = (img == 0).all(dim=1).nonzero().flatten().tolist()
        zero_cols = (img == 0).all(dim=0).nonzero().flatten().tolist()
        assert len(zero_rows) <= 4 and len(zero_cols) <= 4
        h, w = 28 - len(zero_rows), 28 - len(zero_cols)
        assert int(img.sum()) == h * w  # the ones form one (28 - |tx|) x (28 - |ty|) block
        for zeros in (zero_rows, zero_cols):
            assert zeros in ([], list(range(len(zeros))), list(range(28 - len(zeros), 28)))


def test_translation_is_one_zero_filled_integer_shift_and_all_shifts_occur():
    torch.manual_seed(0)
    x = torch.rand(300, 2, 28, 28) + 0.5
    out = rand_translation(x)
    seen = set()
    for xi, oi in zip(x, out, strict=True):
        matches = [(tx, ty) for tx in range(-4, 5) for ty in range(-4, 5) if torch.equal(oi, shifted(xi, tx, ty))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert {tx for tx, _ in seen} == set(range(-4, 5)) and {ty for _, ty in seen} == set(range(-4, 5))


def test_translation_ratio_bounds_the_shift_everywhere_it_is_passed():
    """``translation_ratio`` 1/28: shifts of -1, 0, 1 pixels only, through the function, the module and a model."""
    from lightning_gan.models import GAN
    from lightning_gan.networks import DCGANDiscriminator, DCGANGenerator

    x = torch.rand(200, 1, 28, 28) + 0.5
    model = GAN(DCGANGenerator(base_channels=8), DCGANDiscriminator(base_channels=8), augment="translation",
                augment_translation_ratio=1 / 28)  # fmt: skip
    module = DiffAugment("translation", translation_ratio=1 / 28)
    assert model.augment.translation_ratio == module.translation_ratio == pytest.approx(1 / 28)
    for augment in (lambda t: diff_augment(t, "translation", translation_ratio=1 / 28), module, model.augment):
        torch.manual_seed(0)
        out = augment(x)
        seen = set()
        for xi, oi in zip(x, out, strict=True):
            (match,) = [(tx, ty) for tx in range(-4, 5) for ty in range(-4, 5) if torch.equal(oi, shifted(xi, tx, ty))]
            seen.add(match)
        assert {tx for tx, _ in seen} == {ty for _, ty in seen} == {-1, 0, 1}
    assert "translation_ratio=0.0357143" in repr(module)
    with pytest.raises(ValueError, match="translation_ratio must be in"):
        DiffAugment("translation", translation_ratio=0.5)


def fully_inside_fraction(size: int, ratio: float = 0.5) -> Fraction:
    """Per axis: the fraction of cutout offsets randint(0, size + 1 - c % 2) whose square lies in the image."""
    c = int(size * ratio + 0.5)
    offsets = range(size + 1 - c % 2)
    return Fraction(sum(0 <= o - c // 2 and o - c // 2 + c <= size for o in offsets), len(offsets))


def test_fully_inside_fraction_is_15_of_29_for_28x28():
    assert fully_inside_fraction(28) == Fraction(15, 29)
    assert fully_inside_fraction(30) == Fraction(16, 30)  # odd square side 15: one fewer offset
    assert fully_inside_fraction(32) == Fraction(17, 33)


@pytest.mark.parametrize("size", [28, 30, 32])
def test_cutout_zeroes_one_clipped_square_of_a_quarter_of_the_area(size):
    torch.manual_seed(0)
    n, c = 4000, size // 2
    out = rand_cutout(torch.ones(n, 2, size, size))
    torch.testing.assert_close(out[:, 0], out[:, 1])  # one mask for all channels
    zero = out[:, 0] == 0
    rows, cols = zero.any(dim=2), zero.any(dim=1)
    heights, widths = rows.sum(dim=1), cols.sum(dim=1)
    area = zero.sum(dim=[1, 2])
    assert (area <= size * size // 4).all()
    # one axis-aligned rectangle: zero rows and columns are contiguous and their product is filled
    assert torch.equal(area, heights * widths)
    offsets = range(size + 1 - c % 2)  # randint(0, size + (1 - c % 2)) per axis
    for r in (rows, cols):
        first, last = r.float().argmax(dim=1), size - 1 - r.flip(1).float().argmax(dim=1)
        assert torch.equal(last - first + 1, r.sum(dim=1))
        # the square spans offset - c // 2 .. offset - c // 2 + c - 1: recover the offset, all occur about equally
        offset = torch.where(first > 0, first + c // 2, last - c + 1 + c // 2)
        counts = torch.bincount(offset, minlength=len(offsets))
        assert len(counts) == len(offsets) and counts.min() > 0.6 * n / len(offsets)
        # a clipped (short) side always touches the border; a side away from the border is full
        away = (first > 0) & (last < size - 1)
        assert (r.sum(dim=1)[away] == c).all()
        assert (r.sum(dim=1) >= c // 2).all()
    full = (heights == c) & (widths == c)
    assert (area[full] == size * size // 4).all()
    p = float(fully_inside_fraction(size))
    assert abs((heights == c).float().mean().item() - p) < 0.04
    assert abs((widths == c).float().mean().item() - p) < 0.04
    assert abs(full.float().mean().item() - p * p) < 0.035


def test_policies_apply_in_the_order_given():
    x = torch.rand(8, 3, 16, 16)
    torch.manual_seed(1)
    out = diff_augment(x, " translation , color ")
    torch.manual_seed(1)
    expected = rand_contrast(rand_saturation(rand_brightness(rand_translation(x))))
    torch.testing.assert_close(out, expected)


def test_channels_last_matches_channels_first():
    x = torch.rand(4, 3, 16, 16)
    torch.manual_seed(2)
    first = diff_augment(x, ALL)
    torch.manual_seed(2)
    last = diff_augment(x.permute(0, 2, 3, 1), ALL, channels_first=False)
    assert last.shape == (4, 16, 16, 3) and last.is_contiguous()
    torch.testing.assert_close(last.permute(0, 3, 1, 2), first)


def test_empty_policy_returns_the_input_itself():
    x = torch.rand(3)  # any shape: nothing to do
    assert diff_augment(x, "") is x
    assert DiffAugment("")(x) is x and not DiffAugment("").enabled


def test_unknown_policy_raises_naming_it_and_the_valid_ones():
    with pytest.raises(ValueError, match="colour") as info:
        diff_augment(torch.rand(2, 3, 8, 8), "translation,colour")
    assert all(name in str(info.value) for name in POLICIES)


def test_non_4d_input_raises_with_the_expected_and_actual_shape():
    with pytest.raises(ValueError, match=r"\[B, C, H, W\].*\[28, 28\]"):
        diff_augment(torch.rand(28, 28), "color")


def test_module_validates_at_construction_and_shows_its_policy():
    with pytest.raises(ValueError, match="flip"):
        DiffAugment("color,flip")
    augment = DiffAugment(" color , cutout ")
    assert augment.policy == "color,cutout" and augment.enabled
    assert "policy='color,cutout'" in repr(augment)
    x = torch.rand(2, 3, 8, 8)
    torch.manual_seed(3)
    out = augment(x)
    torch.manual_seed(3)
    torch.testing.assert_close(out, diff_augment(x, "color,cutout"))


def test_same_seed_gives_the_same_output_and_another_seed_does_not():
    x = torch.rand(8, 3, 32, 32)
    outs = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        outs.append(diff_augment(x, ALL))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])
