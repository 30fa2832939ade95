from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.utilities.data import dim_zero_sum

from lightning_gan.metrics import ModeScore, mode_score


def numpy_mode_score(probs: np.ndarray, prior: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y)) - KL(p(y) || p*(y))), written out with numpy."""
    marginal = probs.mean(axis=0)
    kl_x = (probs * (np.log(probs) - np.log(marginal))).sum(axis=1).mean()
    kl_prior = (marginal * (np.log(marginal) - np.log(prior))).sum()
    return float(np.exp(kl_x - kl_prior))


def test_uniform_predictions_score_one():
    # p(y|x) uniform for every x: exp(0 - KL(uniform || uniform)) = 1, from logits and from probabilities
    assert mode_score(torch.zeros(7, 5)).item() == pytest.approx(1.0, abs=1e-6)
    assert mode_score(torch.full((7, 5), 0.2), probabilities=True).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("k", [2, 3, 10])
def test_confident_and_balanced_predictions_score_k_for_a_uniform_prior(k):
    # one-hot p(y|x), every class equally often: E_x KL(onehot || uniform) = log K, KL(uniform || uniform) = 0
    probs = torch.eye(k).repeat(3, 1)  # [3K, K]
    assert mode_score(probs, probabilities=True).item() == pytest.approx(k, rel=1e-6)
    logits = 50.0 * torch.eye(k).repeat(3, 1)  # confident logits: softmax is one-hot to float precision
    assert mode_score(logits).item() == pytest.approx(k, rel=1e-5)


def test_collapsed_generator_is_penalised_by_the_prior():
    # every sample confidently class 0: E_x KL(p(y|x) || p(y)) = 0, KL(p(y) || uniform) = log K -> 1 / K
    probs = torch.zeros(6, 4)
    probs[:, 0] = 1.0
    assert mode_score(probs, probabilities=True).item() == pytest.approx(0.25, rel=1e-6)
    # against a prior that is itself all class 0 there is nothing to penalise
    assert mode_score(probs, prior=[1.0, 0.0, 0.0, 0.0], probabilities=True).item() == pytest.approx(1.0)


def test_matches_numpy_on_random_logits_and_prior():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(200, 6, generator=g)
    prior = torch.rand(6, generator=g) + 0.1
    expected = numpy_mode_score(logits.double().softmax(1).numpy(), (prior / prior.sum()).double().numpy())
    assert mode_score(logits, prior=prior).item() == pytest.approx(expected, rel=1e-5)
    metric = ModeScore(num_classes=6, prior=prior)
    for chunk in logits.split(64):  # batch by batch: the same as all at once
        metric.update(chunk)
    assert metric.compute().item() == pytest.approx(expected, rel=1e-5)


def test_prior_in_both_kls_would_be_the_inception_score():
    # why p(y), not p*(y), is in the first KL: with p* in both, the prior cancels and the score is IS (one split)
    g = torch.Generator().manual_seed(1)
    probs = (2 * torch.randn(100, 4, generator=g)).softmax(1).double().numpy()
    marginal = probs.mean(0)
    inception_score = np.exp((probs * (np.log(probs) - np.log(marginal))).sum(1).mean())
    for prior in (np.full(4, 0.25), np.array([0.7, 0.1, 0.1, 0.1])):
        literal = np.exp(
            (probs * (np.log(probs) - np.log(prior))).sum(1).mean() - (marginal * np.log(marginal / prior)).sum()
        )
        assert literal == pytest.approx(inception_score, rel=1e-10)
    # ours: IS times exp(-KL(p(y) || p*)), equal to IS only for a prior equal to the marginal
    ours = mode_score(torch.from_numpy(probs), prior=[0.7, 0.1, 0.1, 0.1], probabilities=True).item()
    kl = (marginal * np.log(marginal / np.array([0.7, 0.1, 0.1, 0.1]))).sum()
    assert ours == pytest.approx(inception_score * math.exp(-kl), rel=1e-5)
    assert mode_score(torch.from_numpy(probs), prior=marginal, probabilities=True).item() == pytest.approx(
        inception_score, rel=1e-5
    )


def test_states_are_sums_so_merging_ranks_is_exact():
    metric = ModeScore(num_classes=3)
    assert metric.higher_is_better is True
    assert metric.is_differentiable is False
    assert metric.full_state_update is False
    assert set(metric._reductions) == {"neg_entropy_sum", "prob_sum", "count"}
    assert all(fn is dim_zero_sum for fn in metric._reductions.values())
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(30, 3, generator=g), torch.randn(11, 3, generator=g)
    rank0, rank1 = ModeScore(num_classes=3), ModeScore(num_classes=3)
    rank0.update(a)
    rank1.update(b)
    rank0.merge_state(rank1)  # what the DDP sum reduction does
    assert rank0.compute().item() == pytest.approx(mode_score(torch.cat([a, b])).item(), rel=1e-6)


def test_reset_keeps_the_prior_and_set_prior_recomputes():
    metric = ModeScore(num_classes=2, prior=[0.9, 0.1], probabilities=True)
    metric.update(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    before = metric.compute()
    metric.set_prior(None)  # uniform: balanced confident predictions score K = 2
    assert metric.compute().item() == pytest.approx(2.0) and before.item() < 2.0
    metric.reset()
    torch.testing.assert_close(metric.prior, torch.tensor([0.5, 0.5], dtype=torch.float64))
    with pytest.warns(UserWarning, match="before the ``update``"), pytest.raises(RuntimeError, match="one sample"):
        metric.compute()


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="3 non-negative"):
        ModeScore(num_classes=3, prior=[0.5, 0.5])
    with pytest.raises(ValueError, match="non-negative"):
        mode_score(torch.zeros(2, 2), prior=[1.5, -0.5])
    with pytest.raises(ValueError, match="expected 3 classes"):
        ModeScore(num_classes=3).update(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\[N, K\]"):
        mode_score(torch.zeros(2, 2, 2))
