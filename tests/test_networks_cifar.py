"""The CIFAR-10 / SVHN networks of openai/improved-gan ``train_cifar_feature_matching.py``."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer
from torch import nn

from lightning_gan.datamodules import InMemorySemiSupervised
from lightning_gan.layers import data_dependent_init, is_weight_normed
from lightning_gan.models import SemiSupervisedGAN
from lightning_gan.networks import CIFARDiscriminator, CIFARGenerator, build_net

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_D = (8, 16)  # channels of a fast discriminator; the architecture is the paper's
SMALL_G = (32, 16, 8)


def _weight_normed(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if is_weight_normed(m)]


def _pre_activations(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Outputs (W x + b) of every weight-normalised layer, in forward order."""
    outs: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda m, i, o: outs.append(o)) for m in _weight_normed(net)]
    try:
        net(x)
    finally:
        for h in handles:
            h.remove()
    return outs


def _unit_stats(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dims = [d for d in range(t.dim()) if d != 1]  # per channel / unit: over the batch and all positions
    return t.mean(dims), t.std(dims, unbiased=False)


def test_output_shapes_of_the_cifar_and_svhn_discriminators():
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    for channels in (SMALL_D, (64, 128)):  # (64, 128): the SVHN discriminator
        d = CIFARDiscriminator(channels=channels)
        logits, features = d.forward_with_features(x)
        assert logits.shape == (5, 10) and features.shape == (5, channels[1])
        assert d(x).shape == (5, 10) and d.features(x).shape == (5, channels[1])
    assert d.num_classes == 10 and d.image_shape == (3, 32, 32) and not d.batch_dependent
    assert CIFARDiscriminator(num_classes=4, channels=SMALL_D)(x).shape == (5, 4)
    assert isinstance(build_net("cifar_discriminator", channels=SMALL_D), CIFARDiscriminator)


def test_discriminator_architecture_is_the_paper_nine_layer_cnn():
    d = CIFARDiscriminator(channels=SMALL_D).eval()
    convs = [m for m in d.hidden if isinstance(m, nn.Conv2d)]
    c1, c2 = SMALL_D
    assert [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0]) for m in convs] == [
        (3, c1, 3, 1, 1),
        (c1, c1, 3, 1, 1),
        (c1, c1, 3, 2, 1),
        (c1, c2, 3, 1, 1),
        (c2, c2, 3, 1, 1),
        (c2, c2, 3, 2, 1),
        (c2, c2, 3, 1, 0),  # no padding
        (c2, c2, 1, 1, 0),  # NIN
        (c2, c2, 1, 1, 0),  # NIN
    ]
    assert [m.p for m in d.hidden if isinstance(m, nn.Dropout)] == [0.2, 0.5, 0.5]
    acts = [m for m in d.hidden if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 9 and all(a.negative_slope == 0.2 for a in acts)
    sizes = [o.shape[-1] for o in _pre_activations(d, torch.rand(2, 3, 32, 32))[:-1]]
    assert sizes == [32, 32, 16, 16, 16, 8, 6, 6, 6]
    assert isinstance(d.head, nn.Linear) and (d.head.in_features, d.head.out_features) == (c2, 10)


def test_forward_with_features_equals_forward_and_features_in_eval_mode():
    torch.manual_seed(0)
    d = CIFARDiscriminator(channels=SMALL_D)
    x = torch.rand(6, 3, 32, 32) * 2 - 1
    data_dependent_init(d.train(), x)
    d.eval()
    logits, features = d.forward_with_features(x)
    torch.testing.assert_close(logits, d(x))
    torch.testing.assert_close(features, d.features(x))
    torch.testing.assert_close(logits, d.head(features))
    assert not torch.equal(d.train()(x), d.train()(x))  # dropout on in training mode


def test_data_dependent_init_standardises_every_layer_and_the_last_one_to_std_0_1():
    torch.manual_seed(0)
    d = CIFARDiscriminator(channels=SMALL_D).train()  # dropout on, as in the reference's init pass
    x = torch.rand(40, 3, 32, 32) * 2 - 1
    torch.manual_seed(1)
    data_dependent_init(d, x)
    torch.manual_seed(1)  # the same dropout masks again: the init batch's pre-activations are exactly standardised
    with torch.no_grad():
        pre = _pre_activations(d, x)
    assert len(pre) == 10  # 7 convs, 2 NIN, 1 linear
    for i, t in enumerate(pre):
        mean, std = _unit_stats(t)
        target = 0.1 if i == len(pre) - 1 else 1.0  # reference: init_stdv=0.1 on the last layer only
        torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-4 * target, rtol=0)
        torch.testing.assert_close(std, torch.full_like(std, target), atol=1e-4, rtol=1e-4)


def test_generator_data_dependent_init_of_the_weight_normed_deconv_is_per_output_channel():
    torch.manual_seed(0)
    g = CIFARGenerator(channels=SMALL_G).train()  # batch norm with batch statistics, as in the reference's init pass
    z = g.sample_noise(32)
    data_dependent_init(g, z)
    assert _weight_normed(g) == [g.out]
    with torch.no_grad():
        (pre,) = _pre_activations(g, z)  # [32, 3, 32, 32]
    mean, std = _unit_stats(pre)
    torch.testing.assert_close(mean, torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, torch.full((3,), 0.1), atol=1e-5, rtol=1e-4)  # reference: init_stdv=0.1


def test_only_the_last_layer_scale_is_trained_in_both_networks():
    d, g = CIFARDiscriminator(channels=SMALL_D), CIFARGenerator(channels=SMALL_G)
    scales = [m.parametrizations.weight.original0.requires_grad for m in _weight_normed(d)]
    assert scales == [False] * 9 + [True]  # reference: train_g=True on the last layer only
    assert [getattr(m, "init_scale", None) for m in _weight_normed(d)] == [None] * 9 + [0.1]
    assert g.out.parametrizations.weight.original0.requires_grad and g.out.init_scale == 0.1
    # every other parameter trains, including the weight-norm directions v and the biases
    frozen = {n for n, p in d.named_parameters() if not p.requires_grad}
    hidden_scales = {n for n, _ in d.named_parameters() if n.endswith("original0") and n.startswith("hidden.")}
    assert frozen == hidden_scales and len(frozen) == 9
    assert all(p.requires_grad for p in g.parameters())


def test_parameter_count_and_initial_directions_of_the_paper_discriminator():
    torch.manual_seed(0)
    d = CIFARDiscriminator()
    # each weight-normed layer: v (out * in * k * k) + g (out) + bias (out)
    #   conv 3->96:      96*3*9   = 2,592   + 192 =   2,784
    #   2 x conv 96->96: 96*96*9  = 82,944  + 192 =  83,136 each
    #   conv 96->192:    192*96*9 = 165,888 + 384 = 166,272
    #   3 x conv 192->192 (two padded, one not): 192*192*9 = 331,776 + 384 = 332,160 each
    #   2 x NIN 192->192: 192*192 = 36,864 + 384 = 37,248 each
    #   linear 192->10:  1,920 + 10 + 10 = 1,940
    # total 2,784 + 2*83,136 + 166,272 + 3*332,160 + 2*37,248 + 1,940 = 1,408,244
    assert sum(p.numel() for p in d.parameters()) == 1_408_244
    # frozen g: 3*96 + 6*192 = 1,440; trainable = the reference's ll.get_all_params(disc_layers, trainable=True)
    assert sum(p.numel() for p in d.parameters() if p.requires_grad) == 1_408_244 - 1_440
    v = d.hidden[5].parametrizations.weight.original1  # conv 96->96, 82,944 directions
    assert v.std().item() == pytest.approx(0.05, rel=0.02)  # reference: W=Normal(0.05)
    assert torch.equal(d.hidden[5].bias, torch.zeros(96))


def test_discriminator_rejects_wrong_input_shape_and_too_small_images():
    d = CIFARDiscriminator(channels=SMALL_D)
    with pytest.raises(
        ValueError, match=r"CIFARDiscriminator expects inputs of shape \[B, 3, 32, 32\].*\[2, 1, 28, 28\]"
    ):
        d(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"expects inputs of shape"):
        d.features(torch.rand(2, 3 * 32 * 32))
    with pytest.raises(ValueError, match="too small"):
        CIFARDiscriminator(image_shape=(3, 8, 8))
    assert CIFARDiscriminator(image_shape=(1, 28, 28), channels=SMALL_D)(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="dropout"):
        CIFARDiscriminator(dropout=1.0)


def test_generator_output_shape_range_and_noise():
    torch.manual_seed(0)
    g = CIFARGenerator()  # full size: cheap for a small batch
    z = g.sample_noise(500)
    assert z.shape == (500, 100) and z.min() >= 0 and z.max() <= 1  # reference: uniform(0, 1)
    x = g(z[:4])
    assert x.shape == (4, 3, 32, 32) and x.min() > -1 and x.max() < 1
    assert g.noise_dim == 100 and g.image_shape == (3, 32, 32) and g.value_range == (-1.0, 1.0)
    # the reference's layer sizes: 100 -> 4*4*512 (BN per unit) -> 256@8x8 -> 128@16x16 -> 3@32x32
    assert g.project[0].weight.shape == (4 * 4 * 512, 100) and g.project[1].num_features == 8192
    deconvs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in deconvs] == [
        (512, 256, (5, 5), (2, 2)),
        (256, 128, (5, 5), (2, 2)),
        (128, 3, (5, 5), (2, 2)),
    ]
    bns = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 3 and all(not bn.affine and bn.eps == 1e-6 for bn in bns)  # no scale; the shift is Bias
    assert CIFARGenerator(image_shape=(1, 16, 24), channels=SMALL_G)(torch.rand(2, 100)).shape == (2, 1, 16, 24)
    with pytest.raises(ValueError, match="multiples of 8"):
        CIFARGenerator(image_shape=(3, 28, 28))


def test_a_few_semi_supervised_training_steps_on_random_cifar_sized_images(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(200, 3, 32, 32) * 2 - 1  # pixels in [-1, 1], as the reference's (x - 127.5) / 128
    y = torch.arange(200) % 10
    dm = InMemorySemiSupervised(x, y, num_labelled=20, val_size=20, batch_size=10, init_size=50)
    dm.value_range = (-1.0, 1.0)  # the images above, for SemiSupervisedGAN's compatibility check
    model = SemiSupervisedGAN(CIFARGenerator(), CIFARDiscriminator(channels=(16, 32)), feature_matching_p=1)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer = Trainer(
        max_steps=6,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert bool(model.initialized) and trainer.global_step == 6
    logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
    assert any(k.startswith("train/d_loss") for k in logged) and any(k.startswith("train/g_loss_fm") for k in logged)
    assert all(torch.isfinite(torch.tensor(v)) for v in logged.values()), logged
    changed = {n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])}
    assert any(n.startswith("generator.") for n in changed) and any(n.startswith("discriminator.") for n in changed)
    assert all(n in changed for n in before if n.startswith(("generator.", "discriminator."))), set(before) - changed
