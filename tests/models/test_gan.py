"""The unsupervised GAN LightningModule: step schedule, clipping, penalty, DiffAugment, EMA, checkpoints, checks.

Tiny MLPs on 8x8 images keep every fit to a few milliseconds per step.
"""

from __future__ import annotations

import functools
import warnings

import pytest
import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer, seed_everything
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_gan.models.gan as gan_module
from lightning_gan.losses import gradient_penalty
from lightning_gan.models import GAN, SemiSupervisedGAN
from lightning_gan.networks import MNISTDiscriminator, MNISTGenerator, VanillaDiscriminator, VanillaGenerator

SHAPE = (1, 8, 8)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        # tiny loaders: fewer batches than the logging interval, no workers, no validation, non-resumable mid-epoch
        pattern = ".*(num_workers|log_every_n_steps|resum|weights_only|val_dataloader).*"
        warnings.filterwarnings("ignore", message=pattern)
        yield


def nets(seed: int = 0) -> tuple[VanillaGenerator, VanillaDiscriminator]:
    torch.manual_seed(seed)
    return (
        VanillaGenerator(noise_dim=4, hidden_dims=(16,), image_shape=SHAPE),
        VanillaDiscriminator(image_shape=SHAPE, hidden_dims=(16,)),
    )


def images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=g) * 2 - 1  # tanh range


def loader(n_batches: int, batch_size: int = 4, seed: int = 0) -> DataLoader:
    """(images,) batches, in order."""
    return DataLoader(TensorDataset(images(n_batches * batch_size, seed)), batch_size=batch_size)


def make_trainer(tmp_path, max_steps: int, **kwargs) -> Trainer:
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    kwargs.setdefault("num_sanity_val_steps", 0)
    return Trainer(
        max_steps=max_steps,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
        **kwargs,
    )


class CountingSGD(torch.optim.SGD):
    """SGD whose ``step`` adds one to ``counts[key]``."""

    def __init__(self, params, counts: dict[str, int], key: str, lr: float = 0.01) -> None:
        super().__init__(params, lr=lr)
        self.counts, self.key = counts, key

    def step(self, closure=None):
        self.counts[self.key] += 1
        return super().step(closure)


class BatchCounter(Callback):
    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1


def generator_outputs(model) -> list[torch.Tensor]:
    """Every output of ``model.generator`` from now on, in call order."""
    outputs: list[torch.Tensor] = []
    model.generator.register_forward_hook(lambda module, inputs, output: outputs.append(output))
    return outputs


# ----- 1, 2: the n_critic schedule and max_steps --------------------------------------------------------------
def test_n_critic_5_steps_the_generator_once_per_five_discriminator_steps(tmp_path):
    counts = {"d": 0, "g": 0}
    model = GAN(
        *nets(),
        n_critic=5,
        optimizer_d=functools.partial(CountingSGD, counts=counts, key="d"),
        optimizer_g=functools.partial(CountingSGD, counts=counts, key="g"),
    )
    trainer = make_trainer(tmp_path, max_steps=-1, max_epochs=1)
    trainer.fit(model, loader(10))
    assert counts == {"d": 10, "g": 2}
    assert (model.d_steps, model.g_steps, trainer.global_step) == (10, 2, 12)
    opt_d, opt_g = (o.optimizer for o in model.optimizers())
    assert {id(p) for p in opt_d.param_groups[0]["params"]} == {id(p) for p in model.discriminator.parameters()}
    assert {id(p) for p in opt_g.param_groups[0]["params"]} == {id(p) for p in model.generator.parameters()}


@pytest.mark.parametrize(
    "n_critic, max_steps, batches, g_steps",
    [
        (5, 12, 10, 2),  # docstring: max_steps counts D + G steps, N + floor(N / 5) = 12 for N = 10
        (1, 10, 5, 5),  # two optimizer steps per batch
    ],
)
def test_max_steps_counts_the_steps_of_both_players(tmp_path, n_critic, max_steps, batches, g_steps):
    counter = BatchCounter()
    model = GAN(*nets(), n_critic=n_critic)
    trainer = make_trainer(tmp_path, max_steps=max_steps, callbacks=[counter])
    trainer.fit(model, loader(20))  # more batches than the run takes: max_steps ends it
    assert counter.batches == batches
    assert (model.d_steps, model.g_steps, trainer.global_step) == (batches, g_steps, max_steps)


# ----- 3: WGAN weight clipping --------------------------------------------------------------------------------
def test_weight_clipping_keeps_every_critic_parameter_in_the_box(tmp_path):
    model = GAN(
        *nets(),
        loss="wasserstein",
        clip_value=0.01,
        optimizer_d=functools.partial(torch.optim.SGD, lr=1.0),
        optimizer_g=functools.partial(torch.optim.SGD, lr=1.0),
    )
    initial = torch.cat([p.detach().flatten() for p in model.discriminator.parameters()])
    assert initial.abs().max() > 0.05  # the default init is far outside the box: clipping has work to do
    make_trainer(tmp_path, max_steps=6).fit(model, loader(3))
    params = torch.cat([p.detach().flatten() for p in model.discriminator.parameters()])
    assert params.abs().max() <= 0.01
    at_bound = torch.isclose(params.abs(), torch.tensor(0.01))
    assert at_bound.sum() > 10  # lr 1.0 pushes many of them to +-0.01
    assert not at_bound.all()  # but clamping is not "set everything to the bound"
    # the generator is not clipped
    assert max(p.detach().abs().max() for p in model.generator.parameters()) > 0.05


# ----- 4: gradient penalty wiring -----------------------------------------------------------------------------
class GradRecordingSGD(torch.optim.SGD):
    """SGD that keeps a copy of the gradients it is asked to apply, per step."""

    def __init__(self, params, lr: float = 0.01) -> None:
        super().__init__(params, lr=lr)
        self.grads: list[list[torch.Tensor]] = []

    def step(self, closure=None):
        self.grads.append([p.grad.detach().clone() for p in self.param_groups[0]["params"]])
        return super().step(closure)


def test_gradient_penalty_enters_the_critic_gradient(tmp_path, monkeypatch):
    eps = torch.tensor([0.1, 0.4, 0.6, 0.9])
    calls = []

    def fixed_eps_penalty(critic, real, fake):  # the library's penalty with a known epsilon
        calls.append((real.detach().clone(), fake.detach().clone()))
        return gradient_penalty(critic, real, fake, epsilon=eps)

    monkeypatch.setattr(gan_module, "gradient_penalty", fixed_eps_penalty)
    g, d = nets()
    d_start = VanillaDiscriminator(image_shape=SHAPE, hidden_dims=(16,))
    d_start.load_state_dict(d.state_dict())
    model = GAN(g, d, loss="wasserstein", gradient_penalty=10.0, optimizer_d=GradRecordingSGD)
    fakes = generator_outputs(model)
    trainer = make_trainer(tmp_path, max_steps=2, log_every_n_steps=1)  # one D step, one G step
    data = loader(1)
    trainer.fit(model, data)

    ((real, fake),), (grads,) = calls, model.optimizers()[0].optimizer.grads
    torch.testing.assert_close(real, data.dataset.tensors[0])  # the batch
    torch.testing.assert_close(fake, fakes[0])  # the D step's generated images
    # by hand: WGAN critic loss mean f(fake) - mean f(real), plus 10 * the explicit penalty at the same eps
    params = list(d_start.parameters())
    critic_loss = d_start(fake).mean() - d_start(real).mean()
    x_hat = (eps[:, None, None, None] * real + (1 - eps[:, None, None, None]) * fake).requires_grad_(True)
    (grad_x,) = torch.autograd.grad(d_start(x_hat).sum(), x_hat, create_graph=True)
    penalty = ((grad_x.flatten(1).square().sum(1).sqrt() - 1) ** 2).mean()
    expected = torch.autograd.grad(critic_loss + 10.0 * penalty, params, retain_graph=True)
    without_penalty = torch.autograd.grad(critic_loss, params)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want)
    assert any(not torch.allclose(w, p) for w, p in zip(expected, without_penalty, strict=True))
    assert trainer.callback_metrics["train/gp"].item() == pytest.approx(penalty.item(), rel=1e-5)
    assert penalty.item() > 1e-3


def test_without_gradient_penalty_none_is_computed_or_logged(tmp_path, monkeypatch):
    monkeypatch.setattr(gan_module, "gradient_penalty", lambda *a: pytest.fail("penalty computed with lambda 0"))
    model = GAN(*nets(), loss="wasserstein")
    trainer = make_trainer(tmp_path, max_steps=2, log_every_n_steps=1)
    trainer.fit(model, loader(1))
    assert trainer.callback_metrics["train/gp"].item() == 0.0


# ----- 5, 6: DiffAugment on every discriminator input of a training step --------------------------------------
class SpyAugment(nn.Module):
    """Identity that records what it is given; ``enabled`` as ``DiffAugment`` has it."""

    enabled = True

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(
            {
                "x": x.detach().clone(),
                "requires_grad": x.requires_grad,
                "grad_enabled": torch.is_grad_enabled(),
                "training": self.training,  # Lightning puts the module in eval mode for validation
            }
        )
        return x


def test_augmentation_sees_real_and_fake_in_the_d_step_and_fake_with_grad_in_the_g_step(tmp_path):
    model = GAN(*nets(), augment="translation")
    assert model.augment.enabled and model.augment.policy == "translation"
    spy = model.augment = SpyAugment()
    fakes = generator_outputs(model)
    data = loader(1)
    trainer = make_trainer(tmp_path, max_steps=2)  # one batch: D step, G step, then validation
    trainer.fit(model, data, val_dataloaders=DataLoader(images(4, seed=1), batch_size=4))
    assert "val/d_real_out" in trainer.callback_metrics  # validation ran ...
    assert len(spy.calls) == 3 and all(c["training"] for c in spy.calls)  # ... without augmentation
    real, fake_d, fake_g = spy.calls
    torch.testing.assert_close(real["x"], data.dataset.tensors[0])
    torch.testing.assert_close(fake_d["x"], fakes[0])
    torch.testing.assert_close(fake_g["x"], fakes[1].detach())
    assert not real["requires_grad"] and not fake_d["requires_grad"]  # D step: G is not trained
    assert fake_g["requires_grad"] and fake_g["grad_enabled"]  # G step: gradients flow through T into G


class GeneratorGradients(Callback):
    """Sum of |grad| of the generator's parameters at each generator optimizer step."""

    def __init__(self) -> None:
        self.g_grad_sums: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if optimizer is pl_module.optimizers()[1].optimizer:
            self.g_grad_sums.append(sum(p.grad.abs().sum().item() for p in pl_module.generator.parameters()))


def test_generator_learns_through_a_real_diffaugment_policy(tmp_path):
    seed_everything(0)
    model = GAN(*nets(), augment="translation,cutout")
    before = [p.detach().clone() for p in model.generator.parameters()]
    grads = GeneratorGradients()
    make_trainer(tmp_path, max_steps=2, callbacks=[grads]).fit(model, loader(1))
    assert len(grads.g_grad_sums) == 1 and grads.g_grad_sums[0] > 0
    assert all(not torch.equal(a, b) for a, b in zip(before, model.generator.parameters(), strict=True))


def test_semi_supervised_gan_augments_every_training_input_but_not_evaluation(tmp_path, tiny_datamodule):
    seed_everything(0)
    model = SemiSupervisedGAN(
        MNISTGenerator(noise_dim=8, hidden_dim=16),
        MNISTDiscriminator(num_classes=3, hidden_dims=(32, 16)),
        augment="translation,cutout",
    )
    assert model.augment.policy == "translation,cutout"
    spy = model.augment = SpyAugment()
    fakes = generator_outputs(model)
    batches = []

    class RecordBatch(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            batches.append(batch)

    trainer = make_trainer(
        tmp_path, max_steps=2, val_check_interval=1, limit_val_batches=1, callbacks=[RecordBatch()]
    )  # one iteration (D step + G step), then one validation batch
    trainer.fit(model, datamodule=tiny_datamodule)
    assert "val/error" in trainer.callback_metrics  # validation ran, with no augmentation call
    assert len(spy.calls) == 3 and all(c["training"] for c in spy.calls)
    (batch,) = batches
    x_lab, x_unl, x_unl_g = batch["labelled"][0], batch["unlabelled"], batch["unlabelled_g"]
    d_step, g_real, g_fake = spy.calls
    # D step: labelled, unlabelled and fake images in one augmented batch (one forward through D)
    n_lab, n_unl = len(x_lab), len(x_unl)
    assert len(d_step["x"]) == n_lab + 2 * n_unl
    torch.testing.assert_close(d_step["x"][:n_lab], x_lab)
    torch.testing.assert_close(d_step["x"][n_lab : n_lab + n_unl], x_unl)
    torch.testing.assert_close(d_step["x"][n_lab + n_unl :], fakes[0])
    assert not d_step["requires_grad"]
    # G step: the real images whose features are matched (no grad), then the fakes (with grad, into G)
    torch.testing.assert_close(g_real["x"], x_unl_g)
    assert not g_real["grad_enabled"]
    torch.testing.assert_close(g_fake["x"], fakes[1].detach())
    assert g_fake["requires_grad"] and g_fake["grad_enabled"]


# ----- 7: EMA of the generator --------------------------------------------------------------------------------
def test_sample_uses_the_ema_generator(tmp_path):
    model = GAN(*nets(), ema_decay=0.5, optimizer_g=functools.partial(torch.optim.SGD, lr=0.5))
    make_trainer(tmp_path, max_steps=6).fit(model, loader(3))
    assert int(model.ema_generator.n_averaged) == 3
    live, ema = list(model.generator.parameters()), list(model.ema_generator.module.parameters())
    assert any(not torch.allclose(a, b) for a, b in zip(live, ema, strict=True))
    torch.manual_seed(5)
    samples = model.sample(6)
    torch.manual_seed(5)
    z = model.generator.sample_noise(6)
    with torch.no_grad():
        from_ema = model.ema_generator.module.eval()(z)
        from_live = model.generator(z)
    torch.testing.assert_close(samples, from_ema)
    assert not torch.allclose(samples, from_live)
    torch.testing.assert_close(model(z), from_ema)  # forward too


def test_without_ema_sample_uses_the_generator(tmp_path):
    model = GAN(*nets())
    make_trainer(tmp_path, max_steps=2).fit(model, loader(1))
    assert model.ema_generator is None
    torch.manual_seed(5)
    samples = model.sample(6)
    torch.manual_seed(5)
    with torch.no_grad():
        expected = model.generator(model.generator.sample_noise(6))
    torch.testing.assert_close(samples, expected)
    assert model.generator.training  # sample() restores the mode


# ----- 8, 11: checkpoints -------------------------------------------------------------------------------------
class CountedNoiseGenerator(VanillaGenerator):
    """Noise drawn from a counter that is checkpointed (a buffer), not from the global RNG.

    Lightning does not checkpoint torch's global RNG, and creating a DataLoader iterator draws from it, so a
    resumed run's noise would otherwise differ from an uninterrupted run's and the weights could not be compared.
    """

    def __init__(self) -> None:
        super().__init__(noise_dim=4, hidden_dims=(16,), image_shape=SHAPE)
        self.register_buffer("draws", torch.zeros((), dtype=torch.long))

    def sample_noise(self, batch_size, device=None):
        g = torch.Generator().manual_seed(1000 + int(self.draws))
        self.draws += 1
        return torch.randn(batch_size, self.noise_dim, generator=g).to(device)


def resumable_gan() -> GAN:
    torch.manual_seed(0)
    critic = VanillaDiscriminator(image_shape=SHAPE, hidden_dims=(16,))
    return GAN(CountedNoiseGenerator(), critic, n_critic=3, ema_decay=0.5)


def same_batch_loader(n_batches: int) -> DataLoader:
    """Every batch holds the same 4 images, so restarting the (non-resumable) loader changes nothing."""
    return DataLoader(images(4).repeat(n_batches, 1, 1, 1), batch_size=4)


def test_resume_continues_the_n_critic_schedule_like_an_uninterrupted_run(tmp_path):
    # uninterrupted: 12 batches, G steps after D steps 3, 6, 9, 12: global_step 12 + 4
    full = resumable_gan()
    make_trainer(tmp_path / "full", max_steps=16).fit(full, same_batch_loader(13))
    assert (full.d_steps, full.g_steps) == (12, 4)

    # interrupted after 7 batches (G steps after 3 and 6: global_step 9), resumed to the same 16
    first = resumable_gan()
    trainer = make_trainer(tmp_path / "a", max_steps=9)
    trainer.fit(first, same_batch_loader(13))
    assert (first.d_steps, first.g_steps, trainer.global_step) == (7, 2, 9)
    trainer.save_checkpoint(tmp_path / "mid.ckpt")
    resumed = resumable_gan()
    trainer = make_trainer(tmp_path / "b", max_steps=16)
    trainer.fit(resumed, same_batch_loader(13), ckpt_path=tmp_path / "mid.ckpt")
    assert (resumed.d_steps, resumed.g_steps, trainer.global_step) == (12, 4, 16)
    assert int(resumed.ema_generator.n_averaged) == int(full.ema_generator.n_averaged) == 4
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_load_from_checkpoint_needs_the_networks_and_restores_everything_else(tmp_path):
    model = GAN(*nets(), loss="hinge", n_critic=2, ema_decay=0.9)
    trainer = make_trainer(tmp_path, max_steps=4)  # 3 batches: D, D+G, D
    trainer.fit(model, loader(5))
    assert (model.d_steps, model.g_steps) == (3, 1)
    path = tmp_path / "gan.ckpt"
    trainer.save_checkpoint(path)
    with pytest.raises(TypeError, match="generator"):
        GAN.load_from_checkpoint(path)
    loaded = GAN.load_from_checkpoint(path, generator=nets(seed=1)[0], discriminator=nets(seed=1)[1])
    assert (loaded.loss, loaded.n_critic, loaded.hparams.loss, loaded.hparams.n_critic) == ("hinge", 2, "hinge", 2)
    assert loaded.hparams.ema_decay == 0.9 and loaded.ema_generator is not None
    assert (loaded.d_steps, loaded.g_steps) == (3, 1)
    state = model.state_dict()
    assert set(state) == set(loaded.state_dict())
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, state[name]), name
    # not just the defaults of a fresh network: the seed-1 networks differed from the trained ones
    assert not torch.equal(nets(seed=1)[1].net[0].weight, state["discriminator.net.0.weight"])


# ----- 9: validation and training logs ------------------------------------------------------------------------
class RecordDLoss:
    """Wraps ``model.accumulate_stats`` to keep each step's D loss."""

    def __init__(self, model: GAN) -> None:
        self.d_losses: list[float] = []
        original = model.accumulate_stats

        def wrapper(names, values):
            if "train/d_loss" in names:
                self.d_losses.append(values[names.index("train/d_loss")].item())
            original(names, values)

        model.accumulate_stats = wrapper


def test_validation_and_training_metrics(tmp_path):
    model = GAN(*nets(), loss="wasserstein", gradient_penalty=10.0)
    record = RecordDLoss(model)
    val_images = images(6, seed=3)
    trainer = make_trainer(tmp_path, max_steps=-1, max_epochs=1, log_every_n_steps=2)  # windows of 2, 2, 1
    trainer.fit(model, loader(5), val_dataloaders=DataLoader(val_images, batch_size=6))
    metrics = trainer.callback_metrics
    for key in ("train/d_loss", "train/g_loss", "train/d_real_acc", "train/gp", "val/d_real_out", "val/d_real_acc"):
        assert key in metrics, key
    with torch.no_grad():
        out = model.discriminator(val_images)  # D is unchanged since validation ran at the end
    assert metrics["val/d_real_out"].item() == pytest.approx(out.mean().item(), rel=1e-5)
    assert metrics["val/d_real_acc"].item() == pytest.approx((out > 0).float().mean().item())
    assert metrics["train/gp"].item() > 0
    # the windowed logging keeps the epoch mean exact over all five steps
    assert len(record.d_losses) == 5
    assert metrics["train/d_loss_epoch"].item() == pytest.approx(sum(record.d_losses) / 5, rel=1e-5)


@pytest.mark.parametrize(
    "n_critic, max_steps, batches",
    [
        (1, 10, 5),  # 5 of 20 batches, windows of 2, 2, then a partial 1
        (5, 13, 11),  # 11 D + 2 G steps = 13: windows of 2 x 5, then a partial 1
    ],
)
def test_epoch_mean_covers_the_steps_of_an_epoch_ended_by_max_steps(tmp_path, n_critic, max_steps, batches):
    """Regression: flush_stats once flushed only at a window end or the epoch's last batch, so an epoch cut short
    by max_steps lost its trailing partial window (and a run shorter than one window logged no train/* at all)."""
    model = GAN(*nets(), n_critic=n_critic)
    record = RecordDLoss(model)
    trainer = make_trainer(tmp_path, max_steps=max_steps, log_every_n_steps=2)
    trainer.fit(model, loader(20))
    assert len(record.d_losses) == batches
    assert "train/d_loss_epoch" in trainer.callback_metrics
    mean = sum(record.d_losses) / batches
    assert trainer.callback_metrics["train/d_loss_epoch"].item() == pytest.approx(mean, rel=1e-5)


# ----- 10: bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"loss": "least_squares"}, r"loss must be one of \['hinge', 'minimax', 'non_saturating', 'wasserstein'\]"),
        ({"n_critic": 0}, "n_critic must be >= 1, got 0"),
        ({"clip_value": -0.01}, "clip_value must be positive"),
        ({"loss": "hinge", "real_target": 0.9}, "applies to the cross-entropy losses only, not 'hinge'"),
        ({"gradient_penalty": -1.0}, "gradient_penalty must be >= 0"),
        ({"ema_decay": 1.0}, r"ema_decay must be in \(0, 1\)"),
    ],
)
def test_clear_errors_for_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GAN(*nets(), **kwargs)


def test_generator_without_sample_noise_is_rejected():
    with pytest.raises(TypeError, match="generator Linear has no sample_noise"):
        GAN(nn.Linear(4, 64), nets()[1])


class RandomImages(LightningDataModule):
    def __init__(self, image_shape, value_range) -> None:
        super().__init__()
        self.image_shape, self.value_range = tuple(image_shape), tuple(value_range)

    def train_dataloader(self) -> DataLoader:
        low, high = self.value_range
        return DataLoader(torch.rand(8, *self.image_shape) * (high - low) + low, batch_size=4)


def test_data_module_that_does_not_fit_the_networks_is_rejected_at_setup(tmp_path):
    with pytest.raises(ValueError, match=r"image_shape=\(1, 28, 28\) but the generator .* image_shape=\(1, 8, 8\)"):
        make_trainer(tmp_path, max_steps=2).fit(GAN(*nets()), datamodule=RandomImages((1, 28, 28), (-1, 1)))
    with pytest.raises(ValueError, match=r"value_range=\(0.0, 1.0\) but the generator .* value_range=\(-1.0, 1.0\)"):
        make_trainer(tmp_path, max_steps=2).fit(GAN(*nets()), datamodule=RandomImages(SHAPE, (0, 1)))
    model = GAN(*nets())  # matching shape and range: trains
    make_trainer(tmp_path, max_steps=2).fit(model, datamodule=RandomImages(SHAPE, (-1, 1)))
    assert model.d_steps == 1


def test_plain_tensor_batches_train(tmp_path):
    """Batches may be bare image tensors as well as (images, labels) tuples."""
    model = GAN(*nets(), loss="minimax", real_target=0.9)
    make_trainer(tmp_path, max_steps=4).fit(model, DataLoader(images(8), batch_size=4))
    assert (model.d_steps, model.g_steps) == (2, 2)
