from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from lightning_gan.layers import data_dependent_init
from lightning_gan.networks import NETWORKS, MNISTDiscriminator, MNISTGenerator, build_net


def _input_for(net: torch.nn.Module, batch: int = 8) -> torch.Tensor:
    if hasattr(net, "sample_noise"):
        return net.sample_noise(batch)
    return torch.rand(batch, *net.image_shape)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_registered_network_shapes_gradients_and_no_nan(name):
    torch.manual_seed(0)
    net = build_net(name)
    x = _input_for(net)
    if not hasattr(net, "sample_noise"):
        data_dependent_init(net, x)
    out = net(x)
    expected = (8, *net.image_shape) if hasattr(net, "sample_noise") else (8, net.num_classes)
    assert tuple(out.shape) == expected
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for pname, p in net.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname


def test_generator_samples_uniform_noise_and_sigmoid_pixels():
    g = MNISTGenerator()
    z = g.sample_noise(1000)
    assert z.shape == (1000, 100) and z.min() >= 0 and z.max() <= 1
    x = g(z[:16])
    assert x.min() >= 0 and x.max() <= 1


def test_discriminator_rejects_wrong_image_shape():
    with pytest.raises(ValueError, match=r"expects images of shape \[B, 1, 28, 28\].*got \[2, 3, 32, 32\]"):
        MNISTDiscriminator()(torch.rand(2, 3, 32, 32))


def test_unknown_network_name_lists_the_registered_ones():
    with pytest.raises(KeyError, match="mnist_generator"):
        build_net("resnet_gan")


def test_networks_and_losses_import_without_lightning():
    code = (
        "import sys, lightning_gan.networks, lightning_gan.losses, lightning_gan.layers; "
        "assert not any(m.split('.')[0] in ('lightning', 'pytorch_lightning') for m in sys.modules), "
        "'lightning imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_paper_mnist_architecture_is_pinned():
    """openai/improved-gan train_mnist_feature_matching.py, layer by layer."""
    from torch import nn

    from lightning_gan.layers import Bias, GaussianNoise, is_weight_normed

    d = MNISTDiscriminator()
    kinds = [type(m).__name__.replace("Parametrized", "") for block in d.hidden for m in block]
    kinds += [type(m).__name__.replace("Parametrized", "") for m in d.head]
    assert kinds == ["GaussianNoise", "Linear", "ReLU"] * 5 + ["GaussianNoise", "Linear"]
    linears = [m for m in d.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 1000), (1000, 500), (500, 250), (250, 250), (250, 250), (250, 10)
    ]  # fmt: skip
    assert all(is_weight_normed(m) for m in linears)
    assert [m.sigma for m in d.modules() if isinstance(m, GaussianNoise)] == [0.3, 0.5, 0.5, 0.5, 0.5, 0.5]
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28)
    d.eval()
    torch.testing.assert_close(d.features(x), d.hidden(x.flatten(1)))  # features: last 250-unit ReLU output
    assert d.features(x).shape == (4, 250) and (d.features(x) >= 0).all()

    g = MNISTGenerator()
    kinds = [type(m).__name__ for m in g.hidden]
    assert kinds == ["Linear", "BatchNorm1d", "Bias", "Softplus"] * 2
    bns = [m for m in g.hidden if isinstance(m, nn.BatchNorm1d)]
    assert all(not bn.affine and bn.eps == 1e-6 for bn in bns)  # shift (Bias) but no scale
    assert all(isinstance(m, Bias) for m in g.hidden if type(m).__name__ == "Bias")
    assert [m.bias is None for m in g.hidden if isinstance(m, nn.Linear)] == [True, True]
    assert is_weight_normed(g.out) and g.out.parametrizations.weight.original0.requires_grad  # trainable scale
    assert (g.out.in_features, g.out.out_features) == (500, 784)
