from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_gan.layers import GaussianNoise, data_dependent_init, is_weight_normed, weight_norm_linear
from lightning_gan.networks import MNISTDiscriminator


def _pre_activations(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Outputs (W x + b) of every weight-normalised layer, in forward order."""
    outs: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda m, i, o: outs.append(o)) for m in net.modules() if is_weight_normed(m)]
    net(x)
    for h in handles:
        h.remove()
    return outs


def test_data_dependent_init_normalises_every_layer_of_the_paper_discriminator():
    torch.manual_seed(0)
    d = MNISTDiscriminator().train()  # noise on, as in the reference's init pass
    x = torch.rand(500, 1, 28, 28)
    torch.manual_seed(1)
    data_dependent_init(d, x)
    torch.manual_seed(1)  # same noise again: the init batch's pre-activations are exactly standardised
    with torch.no_grad():
        pre = _pre_activations(d, x)
    assert len(pre) == 6
    for t in pre:
        torch.testing.assert_close(t.mean(0), torch.zeros(t.shape[1]), atol=1e-4, rtol=0)
        torch.testing.assert_close(t.std(0, unbiased=False), torch.ones(t.shape[1]), atol=1e-4, rtol=0)


def test_data_dependent_init_sets_gain_and_bias_from_the_batch_statistics():
    torch.manual_seed(0)
    layer = weight_norm_linear(3, 2)
    x = torch.randn(100, 3) * 5 + 2
    with torch.no_grad():
        t = x @ layer.weight.T  # bias is 0 before init
    data_dependent_init(layer, x, init_scale=2.0)
    g = layer.parametrizations.weight.original0.squeeze(1)
    torch.testing.assert_close(g, 2.0 / t.std(0, unbiased=False))
    torch.testing.assert_close(layer.bias, -t.mean(0) * 2.0 / t.std(0, unbiased=False))
    with pytest.raises(ValueError, match="no weight-normalised layer"):
        data_dependent_init(nn.Linear(3, 2), x)


def test_weight_norm_linear_freezes_scale_only_when_asked():
    frozen, free = weight_norm_linear(4, 3, train_scale=False), weight_norm_linear(4, 3)
    assert not frozen.parametrizations.weight.original0.requires_grad
    assert free.parametrizations.weight.original0.requires_grad
    with torch.no_grad():
        free.parametrizations.weight.original0.fill_(2.0)
    torch.testing.assert_close(free.weight.norm(dim=1), torch.full((3,), 2.0))  # ||W_i|| = g_i


def test_paper_discriminator_trains_only_the_last_scale():
    d = MNISTDiscriminator()
    scales = {n: p.requires_grad for n, p in d.named_parameters() if n.endswith("original0")}
    assert [v for k, v in scales.items() if k.startswith("head")] == [True]
    assert not any(v for k, v in scales.items() if k.startswith("hidden"))


def test_gaussian_noise_on_in_training_off_in_eval():
    torch.manual_seed(0)
    noise = GaussianNoise(0.5)
    x = torch.zeros(20000)
    assert noise(x).std().item() == pytest.approx(0.5, rel=0.03)
    assert torch.equal(noise.eval()(x), x)
