from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from lightning_gan.layers import data_dependent_init, is_weight_normed
from lightning_gan.networks import (
    NETWORKS,
    DCGANDiscriminator,
    DCGANGenerator,
    MNISTDiscriminator,
    MNISTGenerator,
    VanillaDiscriminator,
    VanillaGenerator,
    build_net,
)


def _input_for(net: torch.nn.Module, batch: int = 8) -> torch.Tensor:
    if hasattr(net, "sample_noise"):
        return net.sample_noise(batch)
    return torch.rand(batch, *net.image_shape)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_registered_network_shapes_gradients_and_no_nan(name):
    torch.manual_seed(0)
    net = build_net(name)
    x = _input_for(net)
    if any(is_weight_normed(m) for m in net.modules()):
        data_dependent_init(net, x)
    out = net(x)
    if hasattr(net, "sample_noise"):
        expected = (8, *net.image_shape)
    else:  # K class logits (semi-supervised D) or one raw output per sample (GAN discriminator / critic)
        expected = (8, net.num_classes) if hasattr(net, "num_classes") else (8,)
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
        "import sys, lightning_gan.networks, lightning_gan.losses, lightning_gan.layers, lightning_gan.augment, "
        "lightning_gan.optim; "
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


def test_vanilla_gan_matches_the_brief_layer_sizes():
    from torch import nn

    g, d = VanillaGenerator(), VanillaDiscriminator()
    assert [(m.in_features, m.out_features) for m in g.modules() if isinstance(m, nn.Linear)] == [
        (100, 500), (500, 500), (500, 784)
    ]  # fmt: skip
    assert [(m.in_features, m.out_features) for m in d.modules() if isinstance(m, nn.Linear)] == [
        (784, 500), (500, 500), (500, 1)
    ]  # fmt: skip
    x = g(g.sample_noise(64))
    assert x.shape == (64, 1, 28, 28) and x.min() >= -1 and x.max() <= 1 and g.value_range == (-1.0, 1.0)
    assert VanillaGenerator(output="sigmoid").value_range == (0.0, 1.0)
    toy = VanillaGenerator(noise_dim=2, hidden_dims=(16,), image_shape=(2,), output=None)
    assert toy(toy.sample_noise(5)).shape == (5, 2) and toy.value_range is None


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_dcgan_shapes_follow_the_dcgan_rules(shape):
    from torch import nn

    g, d = DCGANGenerator(image_shape=shape, base_channels=8), DCGANDiscriminator(image_shape=shape, base_channels=8)
    x = g(g.sample_noise(3))
    assert x.shape == (3, *shape) and x.abs().max() <= 1
    assert d(x).shape == (3,)
    # strided convolutions only, no pooling and no hidden fully connected layer
    assert not any(isinstance(m, (nn.Linear, nn.MaxPool2d, nn.AvgPool2d)) for m in [*g.modules(), *d.modules()])
    # batch norm everywhere except the generator output and the discriminator input
    assert not isinstance(g.net[-2], nn.BatchNorm2d) and isinstance(d.net[1], nn.LeakyReLU)
    n_up = 3 if shape[1] == 32 else 2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == n_up
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == n_up - 1
    assert not any(isinstance(m, nn.BatchNorm2d) for m in DCGANDiscriminator(image_shape=shape, norm=None).modules())


@pytest.mark.parametrize(
    "make",
    [
        lambda: VanillaDiscriminator(spectral_norm=True),
        lambda: DCGANDiscriminator(base_channels=8, norm=None, spectral_norm=True),
    ],
)
def test_spectral_norm_bounds_every_layer_by_one(make):
    from torch import nn
    from torch.nn.utils import parametrize

    torch.manual_seed(0)
    d = make()
    layers = [m for m in d.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    for _ in range(30):  # power iterations run in training-mode forwards
        d(torch.rand(4, *d.image_shape))
    d.eval()
    for m in layers:
        sigma = float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2))
        assert sigma == pytest.approx(1.0, abs=0.05)


def test_gan_discriminators_reject_wrong_image_shape():
    with pytest.raises(ValueError, match=r"expects inputs of shape \[B, 1, 28, 28\], got \[2, 3, 32, 32\]"):
        DCGANDiscriminator(base_channels=4)(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="square images"):
        DCGANGenerator(image_shape=(3, 32, 16))
