from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lightning_gan.losses import (
    feature_matching_loss,
    feature_std_matching_loss,
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


def test_feature_std_matching_by_hand_gradient_and_collapse():
    real = torch.tensor([[0.0, 4.0, 1.0], [2.0, 0.0, 1.0]])  # population stds [1, 2, 0]
    fake = torch.tensor([[3.0, 2.0, 5.0], [3.0, 0.0, 1.0]], requires_grad=True)  # stds [0, 1, 2]
    eps_std = 1e-4  # sqrt(0 + 1e-8): the floor of a constant feature
    assert feature_std_matching_loss(real, fake, p=1).item() == pytest.approx((1 - eps_std + 1 + 2 - eps_std) / 3)
    by_hand = ((1 - eps_std) ** 2 + 1 + (2 - eps_std) ** 2) / 3
    assert feature_std_matching_loss(real, fake, p=2).item() == pytest.approx(by_hand)
    feature_std_matching_loss(real, fake, p=2).backward()
    # d s_f / d fake_ij = (fake_ij - m_j) / (B s_f): feature 1: (+-1) / 2; feature 2: (+-2) / 4; feature 0: 0 / 1e-4
    # d loss / d s_f = -2 (s_r - s_f) / F: feature 1: -2/3, feature 2: +4/3
    expected = torch.tensor([[0.0, -1 / 3, 2 / 3], [0.0, 1 / 3, -2 / 3]])
    torch.testing.assert_close(fake.grad, expected, atol=1e-4, rtol=0)  # the 1e-4 floor of the real feature 2
    assert torch.isfinite(fake.grad).all()  # a constant fake feature: finite, zero gradient
    collapsed = real.mean(0, keepdim=True).expand(2, 3)  # every sample at the real mean: the mean term is blind
    assert feature_matching_loss(real, collapsed).item() == 0.0
    assert feature_std_matching_loss(real, collapsed).item() == pytest.approx((1 + 4 + 0) / 3, rel=1e-3)
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        feature_std_matching_loss(real, fake, p=3)


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


# ----- the unsupervised GAN family ------------------------------------------------------------------------------
from torch import nn  # noqa: E402

from lightning_gan.losses import (  # noqa: E402
    GAN_DISCRIMINATOR_LOSSES,
    GAN_GENERATOR_LOSSES,
    bce_discriminator_loss,
    gradient_penalty,
    hinge_discriminator_loss,
    hinge_generator_loss,
    minimax_generator_loss,
    non_saturating_generator_loss,
    wasserstein_discriminator_loss,
    wasserstein_generator_loss,
)

LOG2, LOG3, LOG4 = math.log(2.0), math.log(3.0), math.log(4.0)
# logits 0 and log 3: sigmoid = 1/2 and 3/4, so
#   -log D      = softplus(-l) = log 2 and log(4/3)
#   -log(1 - D) = softplus(l)  = log 2 and log 4
SHAPES = pytest.mark.parametrize("shape", ["[B]", "[B, 1]"])


def _logits(values: list[float], shape: str) -> torch.Tensor:
    t = torch.tensor(values)
    return t if shape == "[B]" else t[:, None]


@SHAPES
def test_bce_discriminator_loss_by_hand(shape):
    real, fake = _logits([0.0, LOG3], shape), _logits([LOG3, 0.0], shape)
    # real: mean(-log D) = (log 2 + log 4/3) / 2; fake: mean(-log(1 - D)) = (log 4 + log 2) / 2
    by_hand = (LOG2 + math.log(4 / 3)) / 2 + (LOG4 + LOG2) / 2  # = log(64/3) / 2
    assert by_hand == pytest.approx(math.log(64 / 3) / 2)
    assert bce_discriminator_loss(real, fake).item() == pytest.approx(by_hand, rel=1e-6)


@SHAPES
def test_bce_one_sided_label_smoothing_by_hand(shape):
    real, fake = _logits([0.0, LOG3], shape), _logits([LOG3, 0.0], shape)
    # real term: mean(-0.9 log D - 0.1 log(1 - D)) = 0.9 (log 2 + log 4/3) / 2 + 0.1 (log 2 + log 4) / 2
    real_term = 0.9 * (LOG2 + math.log(4 / 3)) / 2 + 0.1 * (LOG2 + LOG4) / 2
    fake_term = (LOG4 + LOG2) / 2  # fake target stays 0
    smoothed = bce_discriminator_loss(real, fake, real_target=0.9)
    assert smoothed.item() == pytest.approx(real_term + fake_term, rel=1e-6)
    plain = bce_discriminator_loss(real, fake)
    # alpha = 0.9 really changes the loss: real term 0.5454 instead of (log 2 + log 4/3) / 2 = 0.4904
    assert smoothed.item() - plain.item() == pytest.approx(real_term - (LOG2 + math.log(4 / 3)) / 2, rel=1e-5)
    assert smoothed.item() - plain.item() > 0.05
    assert torch.equal(bce_discriminator_loss(real, fake, real_target=1.0), plain)
    for bad in (0.0, 1.1):
        with pytest.raises(ValueError, match=r"real_target .* must be in \(0, 1\]"):
            bce_discriminator_loss(real, fake, real_target=bad)


@SHAPES
def test_generator_losses_by_hand(shape):
    fake = _logits([0.0, LOG3], shape)  # D(G(z)) = 1/2 and 3/4
    # minimax: mean log(1 - D) = (log 1/2 + log 1/4) / 2 = -(log 2 + log 4) / 2 = -1.5 log 2
    assert minimax_generator_loss(fake).item() == pytest.approx(-1.5 * LOG2, rel=1e-6)
    # non-saturating: -mean log D = (log 2 + log 4/3) / 2
    assert non_saturating_generator_loss(fake).item() == pytest.approx((LOG2 + math.log(4 / 3)) / 2, rel=1e-6)


@SHAPES
def test_wasserstein_losses_by_hand(shape):
    real, fake = _logits([1.0, 3.0], shape), _logits([-1.0, 0.5], shape)
    # critic: mean f(fake) - mean f(real) = -0.25 - 2 = -2.25; generator: -mean f(fake) = 0.25
    assert wasserstein_discriminator_loss(real, fake).item() == pytest.approx(-2.25)
    assert wasserstein_generator_loss(fake).item() == pytest.approx(0.25)


@SHAPES
def test_hinge_losses_by_hand(shape):
    real, fake = _logits([0.5, 2.0], shape), _logits([-3.0, 0.5], shape)
    # real: mean relu(1 - [0.5, 2]) = (0.5 + 0) / 2 = 0.25; fake: mean relu(1 + [-3, 0.5]) = (0 + 1.5) / 2 = 0.75
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(1.0)
    assert hinge_generator_loss(fake).item() == pytest.approx(1.25)  # -mean([-3, 0.5])


@pytest.mark.parametrize("loss", [wasserstein_discriminator_loss, hinge_discriminator_loss])
def test_target_free_losses_reject_label_smoothing(loss):
    real, fake = torch.tensor([1.0, 2.0]), torch.tensor([0.0, -1.0])
    with pytest.raises(ValueError, match="label smoothing does not apply"):
        loss(real, fake, real_target=0.9)
    loss(real, fake, real_target=1.0)  # the uniform signature accepts the default


def test_registries_map_names_to_the_right_functions():
    names = {"minimax", "non_saturating", "wasserstein", "hinge"}
    assert set(GAN_DISCRIMINATOR_LOSSES) == names and set(GAN_GENERATOR_LOSSES) == names
    assert GAN_DISCRIMINATOR_LOSSES["minimax"] is bce_discriminator_loss
    assert GAN_DISCRIMINATOR_LOSSES["non_saturating"] is bce_discriminator_loss  # the same D loss
    assert GAN_DISCRIMINATOR_LOSSES["wasserstein"] is wasserstein_discriminator_loss
    assert GAN_DISCRIMINATOR_LOSSES["hinge"] is hinge_discriminator_loss
    assert GAN_GENERATOR_LOSSES["minimax"] is minimax_generator_loss
    assert GAN_GENERATOR_LOSSES["non_saturating"] is non_saturating_generator_loss
    assert GAN_GENERATOR_LOSSES["wasserstein"] is wasserstein_generator_loss
    assert GAN_GENERATOR_LOSSES["hinge"] is hinge_generator_loss
    # the two cross-entropy G losses really differ: at logit 0, log(1 - 1/2) = -log 2 vs -log(1/2) = +log 2
    zero = torch.zeros(1)
    assert GAN_GENERATOR_LOSSES["minimax"](zero).item() == pytest.approx(-LOG2)
    assert GAN_GENERATOR_LOSSES["non_saturating"](zero).item() == pytest.approx(LOG2)


def _mlp_critic() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))  # [B, 1, 2, 2] -> [B, 1]


def _explicit_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Gulrajani et al. eq. 3 written out: x_hat, per-sample grad of the summed critic, L2 over all dims."""
    x_hat = eps[:, None, None, None] * real + (1 - eps[:, None, None, None]) * fake
    x_hat.requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norms = grad.square().sum(dim=(1, 2, 3)).sqrt()  # [B]
    return ((norms - 1) ** 2).mean()


def test_gradient_penalty_equals_explicit_computation():
    critic = _mlp_critic()
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(3, 1, 2, 2, generator=g), torch.randn(3, 1, 2, 2, generator=g)
    eps = torch.tensor([0.2, 0.5, 0.9])
    expected = _explicit_penalty(critic, real, fake, eps)
    assert expected.item() > 1e-3  # not trivially zero
    torch.testing.assert_close(gradient_penalty(critic, real, fake, epsilon=eps), expected)
    # a different epsilon gives a different penalty (epsilon is really used)
    other = gradient_penalty(critic, real, fake, epsilon=torch.tensor([0.9, 0.1, 0.3]))
    assert not torch.allclose(other, expected)


def test_gradient_penalty_backpropagates_into_the_critic():
    critic = _mlp_critic()
    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    gradient_penalty(critic, real, fake).backward()
    _, first, _, last = critic  # Flatten, Linear, Tanh, Linear
    for p in (first.weight, first.bias, last.weight):  # everything that shapes grad_x f gets a gradient
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert last.bias.grad is None  # the output bias does not change grad_x f


def test_gradient_penalty_of_a_linear_critic_by_hand():
    # f(x) = w . x has grad_x f = w everywhere: ||w|| = ||(0, 3, 0, 4)|| = 5, penalty (5 - 1)^2 = 16 for any x, eps
    w = nn.Parameter(torch.tensor([0.0, 3.0, 0.0, 4.0]))

    def critic(x):
        return x.flatten(1) @ w

    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    gp = gradient_penalty(critic, real, fake)
    assert gp.item() == pytest.approx(16.0, rel=1e-6)
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = 2 * 4 * (0, 0.6, 0, 0.8) = (0, 4.8, 0, 6.4)
    gp.backward()
    torch.testing.assert_close(w.grad, torch.tensor([0.0, 4.8, 0.0, 6.4]))
    # a unit-norm w (0.6, 0.8, 0, 0) is already 1-Lipschitz: no penalty
    with torch.no_grad():
        w.copy_(torch.tensor([0.6, 0.8, 0.0, 0.0]))
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_rejects_mismatched_shapes():
    critic = _mlp_critic()
    with pytest.raises(ValueError, match=r"real \[3, 1, 2, 2\] and fake \[2, 1, 2, 2\] shapes differ"):
        gradient_penalty(critic, torch.zeros(3, 1, 2, 2), torch.zeros(2, 1, 2, 2))
