from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lightning_gan.losses import (
    feature_matching_loss,
    ssl_discriminator_loss,
    ssl_generator_loss,
    ssl_real_probability,
)


def test_ssl_loss_parts_match_hand_computation():
    # labelled: logits [1, 0], label 0 -> CE = -log(e/(e+1)) = log(1 + e^-1)
    lab = torch.tensor([[1.0, 0.0]])
    # unlabelled: Z = e^0 + e^0 = 2 -> D = 2/3 -> -log D = log 1.5
    unl = torch.tensor([[0.0, 0.0]])
    # fake: Z = e^{log 3} = 3 (second logit -inf-ish) -> D = 3/4 -> -log(1 - D) = log 4
    fake = torch.tensor([[math.log(3.0), -1e4]])
    parts = ssl_discriminator_loss(lab, torch.tensor([0]), unl, fake, unsupervised_weight=0.5)
    assert parts.label.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    assert parts.unlabelled.item() == pytest.approx(math.log(1.5), abs=1e-6)
    assert parts.fake.item() == pytest.approx(math.log(4.0), abs=1e-6)
    expected_total = math.log(1 + math.exp(-1)) + 0.5 / 2 * (math.log(1.5) + math.log(4.0))
    assert parts.total.item() == pytest.approx(expected_total, abs=1e-6)


def test_ssl_loss_equals_reference_formulation():
    torch.manual_seed(0)
    lab, unl, fake = torch.randn(5, 10), torch.randn(7, 10), torch.randn(6, 10)
    y = torch.randint(0, 10, (5,))
    parts = ssl_discriminator_loss(lab, y, unl, fake)
    lse_u, lse_f = torch.logsumexp(unl, 1), torch.logsumexp(fake, 1)
    # openai/improved-gan: loss_unl = -0.5 mean(lse_u) + 0.5 mean(softplus(lse_u)) + 0.5 mean(softplus(lse_f))
    loss_unl = -0.5 * lse_u.mean() + 0.5 * F.softplus(lse_u).mean() + 0.5 * F.softplus(lse_f).mean()
    loss_lab = -lab[torch.arange(5), y].mean() + torch.logsumexp(lab, 1).mean()
    torch.testing.assert_close(parts.total, loss_lab + loss_unl)


@pytest.mark.parametrize("scale", [1e3, -1e3, 1e30, -1e30])
def test_ssl_loss_is_finite_for_extreme_logits(scale):
    logits = torch.full((4, 10), scale, requires_grad=True)
    parts = ssl_discriminator_loss(logits, torch.zeros(4, dtype=torch.long), logits, logits)
    parts.total.backward()
    assert all(torch.isfinite(p) for p in parts)
    assert torch.isfinite(logits.grad).all()
    lse = scale + math.log(10)
    if scale > 0:  # D(x) = 1: unlabelled term 0, fake term ~ lse
        assert parts.unlabelled.item() == pytest.approx(0.0, abs=1e-6)
        assert parts.fake.item() == pytest.approx(lse, rel=1e-5)
    else:  # D(x) = 0: unlabelled term ~ -lse, fake term 0
        assert parts.unlabelled.item() == pytest.approx(-lse, rel=1e-5)
        assert parts.fake.item() == pytest.approx(0.0, abs=1e-6)


def test_real_probability_is_z_over_z_plus_one():
    logits = torch.tensor([[0.5, -1.0, 2.0], [-3.0, -3.0, -3.0]])
    z = logits.exp().sum(1)
    torch.testing.assert_close(ssl_real_probability(logits), z / (z + 1))
    lse = torch.logsumexp(logits, 1)
    torch.testing.assert_close(ssl_real_probability(logits).log(), lse - F.softplus(lse))  # log D(x)
    torch.testing.assert_close((1 - ssl_real_probability(logits)).log(), -F.softplus(lse))  # log(1 - D(x))


def test_feature_matching_by_hand_and_gradient_goes_to_fake_only():
    real = torch.tensor([[0.0, 4.0, 1.0], [2.0, 0.0, 1.0]])  # means [1, 2, 1]
    fake = torch.tensor([[3.0, 2.0, 0.0], [3.0, 0.0, 0.0]], requires_grad=True)  # means [3, 1, 0]
    assert feature_matching_loss(real, fake, p=2).item() == pytest.approx((4 + 1 + 1) / 3)
    assert feature_matching_loss(real, fake, p=1).item() == pytest.approx((2 + 1 + 1) / 3)
    feature_matching_loss(real, fake, p=2).backward()
    # d/d fake_ij of mean_j (m_r - m_f)^2 = -2 (m_r - m_f)_j / (F * B) = -(m_r - m_f)_j / 3
    expected = (-(torch.tensor([1.0, 2.0, 1.0]) - torch.tensor([3.0, 1.0, 0.0])) / 3).expand(2, 3)
    torch.testing.assert_close(fake.grad, expected)
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        feature_matching_loss(real, fake, p=3)


def test_one_sided_label_smoothing_by_hand():
    lab, y = torch.tensor([[0.0, 0.0]]), torch.tensor([0])
    unl = torch.tensor([[math.log(3.0), -100.0], [0.0, 0.0]])  # D = 3/4 and 2/3
    fake = torch.tensor([[0.0, -100.0]])  # D = 1/2
    parts = ssl_discriminator_loss(lab, y, unl, fake, real_target=0.9)
    # -0.9 log D - 0.1 log(1 - D), averaged over the two unlabelled examples
    by_hand = (-0.9 * math.log(0.75) - 0.1 * math.log(0.25) - 0.9 * math.log(2 / 3) - 0.1 * math.log(1 / 3)) / 2
    assert parts.unlabelled.item() == pytest.approx(by_hand, rel=1e-5)
    assert parts.fake.item() == pytest.approx(math.log(2), rel=1e-5)  # fake target stays 0: -log(1 - D)
    assert parts.total.item() == pytest.approx(math.log(2) + (by_hand + math.log(2)) / 2, rel=1e-5)
    unsmoothed = ssl_discriminator_loss(lab, y, unl, fake)
    assert unsmoothed.unlabelled.item() == pytest.approx(-(math.log(0.75) + math.log(2 / 3)) / 2, rel=1e-5)
    assert torch.equal(ssl_discriminator_loss(lab, y, unl, fake, real_target=1.0).total, unsmoothed.total)
    with pytest.raises(ValueError, match=r"real_target must be in \(0, 1\]"):
        ssl_discriminator_loss(lab, y, unl, fake, real_target=1.1)


def test_smoothed_loss_is_minimised_at_d_equal_alpha():
    """Per example, alpha softplus(-s) + (1 - alpha) softplus(s) is minimal where D = sigmoid(s) = alpha."""
    s = torch.linspace(-3, 5, 8001)
    losses = torch.stack([ssl_discriminator_loss(
        torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), torch.tensor([[v]]), torch.zeros(1, 1), real_target=0.9
    ).unlabelled for v in s[::40]])  # fmt: skip
    best = s[::40][losses.argmin()]
    assert torch.sigmoid(best).item() == pytest.approx(0.9, abs=0.01)


def test_non_saturating_generator_loss_by_hand_and_finite_for_extreme_logits():
    logits = torch.tensor([[math.log(3.0), -100.0], [0.0, 0.0]])  # D = 3/4 and 2/3
    assert ssl_generator_loss(logits).item() == pytest.approx(-(math.log(0.75) + math.log(2 / 3)) / 2, rel=1e-5)
    extreme = torch.tensor([[-1e4, -1e4], [1e4, 0.0]], requires_grad=True)
    loss = ssl_generator_loss(extreme)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(extreme.grad).all()
    assert loss.item() == pytest.approx(1e4 / 2, rel=1e-4)  # -log D(G(z)) ~ 1e4 for the rejected sample
