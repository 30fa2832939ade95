from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lightning_gan.layers import (
    Bias,
    GaussianNoise,
    MinibatchDiscrimination,
    Softplus,
    VirtualBatchNorm1d,
    VirtualBatchNorm2d,
    data_dependent_init,
    is_weight_normed,
    weight_norm_conv2d,
    weight_norm_conv_transpose2d,
    weight_norm_linear,
    weight_normalize,
)
from lightning_gan.networks import MNISTDiscriminator, MNISTGenerator


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


def test_per_layer_init_scale_overrides_the_default_scale():
    torch.manual_seed(0)
    net = nn.Sequential(weight_norm_linear(5, 6), nn.ReLU(), weight_norm_linear(6, 3, init_scale=0.1))
    x = torch.randn(200, 5) * 3
    data_dependent_init(net, x, init_scale=2.0)  # the default for layers without their own init_scale
    with torch.no_grad():
        first, last = _pre_activations(net, x)
    torch.testing.assert_close(first.std(0, unbiased=False), torch.full((6,), 2.0))
    torch.testing.assert_close(last.std(0, unbiased=False), torch.full((3,), 0.1))
    torch.testing.assert_close(last.mean(0), torch.zeros(3), atol=1e-6, rtol=0)
    assert not hasattr(net[0], "init_scale")
    with pytest.raises(ValueError, match="init_scale must be positive"):
        weight_norm_linear(2, 2, init_scale=0.0)


def test_data_dependent_init_of_a_transposed_conv_is_per_output_channel():
    torch.manual_seed(0)
    deconv = weight_norm_conv_transpose2d(4, 3, 5, stride=2, padding=2, output_padding=1)
    assert deconv.weight.shape == (4, 3, 5, 5)  # [in, out, k, k]: weight norm over dim 1
    g = deconv.parametrizations.weight.original0
    assert g.shape == (1, 3, 1, 1)
    torch.testing.assert_close(deconv.weight.square().sum(dim=(0, 2, 3)), torch.ones(3))  # ||W_c|| = g_c = 1
    x = torch.randn(16, 4, 6, 6) * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1) + 1
    with torch.no_grad():
        t = deconv(x)  # [16, 3, 12, 12], bias 0 before init
    std, mean = t.std(dim=(0, 2, 3), unbiased=False), t.mean(dim=(0, 2, 3))
    data_dependent_init(deconv, x, init_scale=0.5)
    torch.testing.assert_close(g.flatten(), 0.5 / std)
    torch.testing.assert_close(deconv.bias, -mean * 0.5 / std)
    with torch.no_grad():
        out = deconv(x)
    torch.testing.assert_close(out.std(dim=(0, 2, 3), unbiased=False), torch.full((3,), 0.5))
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(deconv.weight.square().sum(dim=(0, 2, 3)).sqrt(), g.flatten())  # still per channel


def test_weight_norm_conv2d_is_per_output_channel_and_weight_normalize_refuses_other_layers():
    torch.manual_seed(0)
    conv = weight_norm_conv2d(8, 16, 3, stride=2, padding=1, weight_std=0.05, train_scale=False)
    assert conv.parametrizations.weight.original0.shape == (16, 1, 1, 1) and conv.stride == (2, 2)
    assert not conv.parametrizations.weight.original0.requires_grad
    assert conv.parametrizations.weight.original1.std().item() == pytest.approx(0.05, rel=0.1)
    torch.testing.assert_close(conv.weight.flatten(1).norm(dim=1), torch.ones(16))
    x = torch.randn(8, 8, 10, 10)
    data_dependent_init(conv, x)
    with torch.no_grad():
        out = conv(x)
    torch.testing.assert_close(out.std(dim=(0, 2, 3), unbiased=False), torch.ones(16), atol=1e-5, rtol=1e-5)
    with pytest.raises(TypeError, match="linear or convolution"):
        weight_normalize(nn.BatchNorm1d(3))


def test_bias_shifts_the_channel_dimension():
    b = Bias(3)
    with torch.no_grad():
        b.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(b(torch.zeros(2, 3)), torch.tensor([[1.0, 2.0, 3.0]] * 2))
    out = b(torch.zeros(2, 3, 4, 5))
    torch.testing.assert_close(out, torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1).expand(2, 3, 4, 5))


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


def test_gaussian_noise_is_x_plus_sigma_times_randn_bit_for_bit_and_passes_gradients():
    x = torch.rand(7, 33, requires_grad=True)
    torch.manual_seed(3)
    out = GaussianNoise(0.3)(x)
    torch.manual_seed(3)
    assert torch.equal(out, x + 0.3 * torch.randn_like(x))
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_minibatch_features_of_three_samples_by_hand():
    mbd = MinibatchDiscrimination(2, num_kernels=2, kernel_dim=2)
    with torch.no_grad():
        mbd.T.copy_(torch.stack([torch.eye(2), 2 * torch.eye(2)], dim=1))  # kernel 0: M = f, kernel 1: M = 2f
        mbd.bias.copy_(torch.tensor([-1.0, 0.5]))
    f = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]])
    # L1 distances of kernel 0: d01 = 1, d02 = 3, d12 = 2; kernel 1 doubles them
    e = math.exp
    o0 = [e(-1) + e(-3) - 1.0, e(-1) + e(-2) - 1.0, e(-3) + e(-2) - 1.0]
    o1 = [e(-2) + e(-6) + 0.5, e(-2) + e(-4) + 0.5, e(-6) + e(-4) + 0.5]
    expected = torch.cat([f, torch.tensor([o0, o1]).T], dim=1)  # [3, 2 + 2]
    torch.testing.assert_close(mbd(f), expected)
    # self term excluded: a batch of one gets only the bias
    torch.testing.assert_close(mbd(f[:1]), torch.tensor([[0.0, 0.0, -1.0, 0.5]]))


def test_minibatch_discrimination_init_matches_the_reference_and_every_parameter_learns():
    torch.manual_seed(0)
    mbd = MinibatchDiscrimination(250)
    assert mbd.T.shape == (250, 100, 5) and mbd.T.std().item() == pytest.approx(0.05, rel=0.02)
    assert torch.equal(mbd.bias, torch.full((100,), -1.0))
    out = mbd(torch.randn(6, 250))
    assert out.shape == (6, 350)
    out.square().sum().backward()
    assert mbd.T.grad.abs().sum() > 0 and mbd.bias.grad.abs().sum() > 0


def _vbn_by_hand(ref: torch.Tensor, x: torch.Tensor, gamma, beta, eps: float) -> torch.Tensor:
    """Explicit formula for one example x of shape [C, ...]: statistics of ref [B, C, ...] and x, weight 1/(B+1)."""
    b = len(ref)
    dims = tuple(range(1, x.dim()))  # positions
    ref_dims = (0, *(d + 1 for d in dims))
    mu = (b * ref.mean(ref_dims) + (x.mean(dims) if dims else x)) / (b + 1)
    m2 = (b * ref.square().mean(ref_dims) + (x.square().mean(dims) if dims else x.square())) / (b + 1)
    shape = [-1] + [1] * len(dims)
    return gamma.view(shape) * (x - mu.view(shape)) / (m2 - mu.square() + eps).sqrt().view(shape) + beta.view(shape)


@pytest.mark.parametrize("cls, shape", [(VirtualBatchNorm1d, (3,)), (VirtualBatchNorm2d, (3, 4, 5))])
def test_virtual_batch_norm_of_one_example_matches_the_explicit_formula(cls, shape):
    torch.manual_seed(0)
    vbn = cls(3, ref_size=6, eps=1e-3)
    with torch.no_grad():
        vbn.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
        vbn.bias.copy_(torch.tensor([0.1, 0.0, 3.0]))
    ref, x = torch.randn(6, *shape) * 2 + 1, torch.randn(4, *shape)
    out = vbn(torch.cat([ref, x]))  # [6 + 4, ...]
    for i in range(4):
        torch.testing.assert_close(out[6 + i], _vbn_by_hand(ref, x[i], vbn.weight, vbn.bias, 1e-3))
    # reference rows: plain batch norm with the reference statistics
    torch.testing.assert_close(
        out[:6], nn.functional.batch_norm(ref, None, None, vbn.weight, vbn.bias, training=True, eps=1e-3)
    )
    # each example depends on the reference only, not on the other examples; train and eval agree
    torch.testing.assert_close(vbn(torch.cat([ref, x[2:3]]))[6], out[8])
    torch.testing.assert_close(vbn.eval()(torch.cat([ref, x])), out)
    with pytest.raises(ValueError, match="reference rows"):
        vbn(ref[:3])


def test_vbn_generator_reference_batch_survives_a_checkpoint_and_train_equals_eval():
    torch.manual_seed(0)
    g = MNISTGenerator(noise_dim=10, norm="virtual_batch", ref_batch_size=7)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in g.modules())
    assert sum(isinstance(m, VirtualBatchNorm1d) for m in g.modules()) == 2
    torch.manual_seed(1)
    other = MNISTGenerator(noise_dim=10, norm="virtual_batch", ref_batch_size=7)
    assert not torch.equal(g.ref_noise, other.ref_noise)
    other.load_state_dict(g.state_dict())  # ref_noise is a buffer: restored from the checkpoint
    assert torch.equal(other.ref_noise, g.ref_noise)
    z = g.sample_noise(5)
    with torch.no_grad():
        out_train = g.train()(z)
        torch.testing.assert_close(other(z), out_train)
        torch.testing.assert_close(g.eval()(z), out_train)  # no running statistics: eval = train
        torch.testing.assert_close(g(z[3:4]), out_train[3:4])  # examples are independent of each other
    # the reference is propagated through the current weights: after a change of the first layer, the output
    # equals a VBN forward whose reference statistics come from the new weights
    with torch.no_grad():
        g.hidden[0].weight.add_(0.5 * torch.randn_like(g.hidden[0].weight))
        h_ref, h_z = g.hidden[0](g.ref_noise), g.hidden[0](z)  # [7, 500], [5, 500]
        by_hand = torch.stack([_vbn_by_hand(h_ref, h, g.hidden[1].weight, g.hidden[1].bias, 1e-6) for h in h_z])
        torch.testing.assert_close(g.hidden[1](torch.cat([h_ref, h_z]))[7:], by_hand)
        assert not torch.allclose(g(z), out_train, atol=1e-3)
    with pytest.raises(ValueError, match="norm must be"):
        MNISTGenerator(norm="layer")


@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 5e-7), (torch.float64, 1e-15)])
def test_softplus_equals_torch_to_a_few_ulp_and_has_torch_gradients(dtype, rtol):
    special = torch.tensor(
        [-math.inf, -100.0, -20.0, -1e-3, -1e-30, 0.0, 1e-30, 1e-3, 19.9, 20.0, 20.1, 100.0, math.inf]
    )
    x = torch.cat([special, torch.linspace(-30, 30, 20001), torch.randn(10000) * 3]).to(dtype).requires_grad_()
    ours = Softplus()(x)
    theirs = nn.functional.softplus(x)
    finite = theirs.isfinite()
    tiny = torch.finfo(dtype).tiny  # below it (denormals, softplus(-100) in float32) only absolute error is meaningful
    torch.testing.assert_close(ours[finite], theirs[finite], rtol=rtol, atol=tiny)  # relative: small values too
    assert ours[0] == 0 and ours[12] == math.inf  # softplus(-inf) = 0, softplus(inf) = inf
    assert torch.equal(ours[x > 20], x[x > 20])  # as torch: x itself above the threshold
    grad = torch.randn_like(x)
    (ours_grad,) = torch.autograd.grad(ours, x, grad)
    (theirs_grad,) = torch.autograd.grad(theirs, x, grad)
    assert torch.equal(ours_grad, theirs_grad)
    assert torch.isnan(Softplus()(torch.tensor([math.nan], dtype=dtype))).all()
