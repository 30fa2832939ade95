from __future__ import annotations

import time

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_gan.datamodules import SemiSupervisedMNIST
from lightning_gan.losses import ssl_discriminator_loss
from lightning_gan.models import SemiSupervisedGAN
from lightning_gan.models.semi_supervised import TRAIN_STATS
from lightning_gan.networks import MNISTDiscriminator, MNISTGenerator
from tests.conftest import mnist_dir, requires_mnist


def make_model(num_classes: int = 3, **kwargs) -> SemiSupervisedGAN:
    return SemiSupervisedGAN(MNISTGenerator(noise_dim=20), MNISTDiscriminator(num_classes=num_classes), **kwargs)


def make_trainer(tmp_path, max_steps: int, **kwargs) -> Trainer:
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    return Trainer(
        max_steps=max_steps,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
        **kwargs,
    )


@torch.no_grad()
def error_rate(model: SemiSupervisedGAN, x: torch.Tensor, y: torch.Tensor, ema: bool = False) -> float:
    model.eval()
    net = model.ema_discriminator if ema else model.discriminator
    return (net(x).argmax(1) != y).float().mean().item()


def test_learns_synthetic_classes_from_nine_labels(tmp_path, tiny_datamodule):
    seed_everything(0)
    model = make_model()
    trainer = make_trainer(tmp_path, max_steps=2 * 60, limit_val_batches=0)
    trainer.fit(model, datamodule=tiny_datamodule)
    assert trainer.global_step == 120  # Lightning counts the D and the G step: 2 per iteration
    tiny_datamodule.setup("test")
    x, y = tiny_datamodule._test
    assert error_rate(model, x, y) < 0.2  # chance is 2/3


class GradientIsolation(Callback):
    """Checks, just before each optimizer step, that the other player's parameters got no gradient."""

    def __init__(self) -> None:
        self.checked = {"d": 0, "g": 0}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        opt_d, _ = pl_module.optimizers()
        is_d = optimizer is opt_d.optimizer or optimizer is opt_d
        other = pl_module.generator if is_d else pl_module.discriminator
        assert all(p.grad is None or not p.grad.any() for p in other.parameters())
        mine = pl_module.discriminator if is_d else pl_module.generator
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in mine.parameters())
        self.checked["d" if is_d else "g"] += 1


def test_each_step_updates_only_its_own_player(tmp_path, tiny_datamodule):
    seed_everything(0)
    iso = GradientIsolation()
    trainer = make_trainer(tmp_path, max_steps=2 * 3, limit_val_batches=0, callbacks=[iso])
    trainer.fit(make_model(), datamodule=tiny_datamodule)
    assert iso.checked == {"d": 3, "g": 3}


def test_ema_starts_at_the_initialised_discriminator_and_follows_it(tiny_datamodule):
    model = make_model(ema_decay=0.9)
    tiny_datamodule.setup("fit")
    model.initialize(tiny_datamodule.init_batch())
    for a, b in zip(model.ema_discriminator.module.parameters(), model.discriminator.parameters(), strict=True):
        assert torch.equal(a, b)
    before = [p.clone() for p in model.ema_discriminator.module.parameters()]
    with torch.no_grad():
        for p in model.discriminator.parameters():
            p.add_(1.0)
    model.ema_discriminator.update(model.discriminator)
    # second sample with bias correction: weight (1 - 0.9) / (1 - 0.81) = 1/1.9 on the new weights
    for a, b in zip(model.ema_discriminator.module.parameters(), before, strict=True):
        torch.testing.assert_close(a, b + 1.0 / 1.9)


def test_checkpoint_round_trip_and_resume_without_reinitialising(tmp_path, tiny_datamodule, monkeypatch):
    seed_everything(0)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    model = make_model()
    make_trainer(tmp_path, max_steps=2 * 4, limit_val_batches=0, enable_checkpointing=True, callbacks=[ckpt]).fit(
        model, datamodule=tiny_datamodule
    )
    path = tmp_path / "ckpt" / "last.ckpt"
    loaded = SemiSupervisedGAN.load_from_checkpoint(
        path, generator=MNISTGenerator(noise_dim=20), discriminator=MNISTDiscriminator(num_classes=3)
    )
    assert bool(loaded.initialized) and loaded.hparams.ema_decay == 0.9999
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert int(loaded.ema_discriminator.n_averaged) == 5  # the init sample + 4 D steps

    resumed = make_model()
    monkeypatch.setattr(resumed, "initialize", lambda *_: pytest.fail("re-initialised on resume"))
    trainer = make_trainer(tmp_path, max_steps=2 * 6, limit_val_batches=0)
    trainer.fit(resumed, datamodule=tiny_datamodule, ckpt_path=path)
    assert trainer.global_step == 12 and int(resumed.ema_discriminator.n_averaged) == 7


def test_clear_errors_for_mismatched_networks_and_missing_init_data(tmp_path, tiny_datamodule):
    with pytest.raises(
        ValueError, match="num_classes=3 but the discriminator MNISTDiscriminator was built for num_classes=10"
    ):
        make_trainer(tmp_path, max_steps=2).fit(make_model(num_classes=10), datamodule=tiny_datamodule)
    with pytest.raises(TypeError, match="has no sample_noise"):
        SemiSupervisedGAN(torch.nn.Linear(2, 2), MNISTDiscriminator())
    loaders = tiny_datamodule
    loaders.setup("fit")
    with pytest.raises(RuntimeError, match="call model.initialize"):
        make_trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(
            make_model(), train_dataloaders=loaders.train_dataloader()
        )


def test_validation_and_test_log_raw_and_ema_errors(tmp_path, tiny_datamodule):
    seed_everything(0)
    model = make_model()
    trainer = make_trainer(tmp_path, max_steps=-1, max_epochs=1)  # 9 iterations, then validation
    trainer.fit(model, datamodule=tiny_datamodule)
    assert {"val/error", "val/error_ema", "train/d_loss_unl_epoch", "train/g_loss_fm_epoch"} <= set(
        trainer.callback_metrics
    )
    (result,) = trainer.test(model, datamodule=tiny_datamodule, verbose=False)
    tiny_datamodule.setup("test")
    x, y = tiny_datamodule._test
    assert result["test/error"] == pytest.approx(error_rate(model, x, y), abs=1e-6)
    assert result["test/error_ema"] == pytest.approx(error_rate(model, x, y, ema=True), abs=1e-6)


@requires_mnist
def test_learns_mnist_from_100_labels(tmp_path):
    """Seeded learning test on real MNIST: 250 iterations with 100 labels, far below the 90 % chance error."""
    seed_everything(1)
    start = time.perf_counter()
    dm = SemiSupervisedMNIST(data_dir=str(mnist_dir()), num_labelled=100, label_seed=1, val_size=0)
    model = SemiSupervisedGAN(MNISTGenerator(), MNISTDiscriminator())
    make_trainer(tmp_path, max_steps=2 * 250).fit(model, datamodule=dm)
    dm.setup("test")
    x, y = dm._test
    error, error_ema = error_rate(model, x, y), error_rate(model, x, y, ema=True)
    seconds = time.perf_counter() - start
    print(f"MNIST-100 after 250 iterations: test error raw {error:.3f}, EMA {error_ema:.3f}, {seconds:.0f} s")
    assert error < 0.4 and error_ema < 0.4  # chance: 0.9; measured 0.28 (raw) on 2 CPU cores


@requires_mnist
@pytest.mark.slow
def test_reproduction_script_records_one_epoch(tmp_path, monkeypatch):
    """One full epoch of the paper's setup through benchmarks/mnist_ssl_reproduction.py (about 1 minute)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("LIGHTNING_GAN_DATA", str(mnist_dir()))
    cmd = [
        sys.executable,
        str(root / "benchmarks" / "mnist_ssl_reproduction.py"),
        "--config",
        str(root / "configs" / "mnist_ssl_100.yaml"),
    ]
    cmd += ["--seed", "5", "--max-epochs", "1", "--name", "slowtest", "--results", str(tmp_path)]
    subprocess.run(cmd, check=True, cwd=tmp_path)
    (row,) = [json.loads(line) for line in (tmp_path / "slowtest_n100_seed5.jsonl").read_text().splitlines()]
    assert row["epoch"] == 0 and row["test_total"] == 10000
    assert row["test_errors_ema"] < 4000 and row["test_errors_raw"] < 4000  # measured ~2000-2600 after one epoch


def test_batch_dependent_path_gives_the_same_losses_for_a_batch_independent_discriminator():
    torch.manual_seed(0)
    model = SemiSupervisedGAN(
        MNISTGenerator(noise_dim=20), MNISTDiscriminator(num_classes=3, input_noise=0.0, hidden_noise=0.0)
    )
    x_lab, x_unl, x_fake = torch.rand(4, 1, 28, 28), torch.rand(6, 1, 28, 28), torch.rand(6, 1, 28, 28)
    y = torch.tensor([0, 1, 2, 0])
    joint = model._d_logits(x_lab, x_unl, x_fake)
    model.discriminator.batch_dependent = True
    separate = model._d_logits(x_lab, x_unl, x_fake)
    for a, b in zip(joint, separate, strict=True):
        torch.testing.assert_close(a, b)
    loss_joint, loss_separate = (
        ssl_discriminator_loss(*joint[:1], y, *joint[1:]),
        ssl_discriminator_loss(*separate[:1], y, *separate[1:]),
    )
    for a, b in zip(loss_joint, loss_separate, strict=True):
        torch.testing.assert_close(a, b)


def test_minibatch_discriminator_gets_each_batch_in_its_own_forward():
    d = MNISTDiscriminator(num_classes=3, minibatch_kernels=7)
    assert d.batch_dependent and not MNISTDiscriminator().batch_dependent
    assert d.features(torch.rand(2, 1, 28, 28)).shape == (2, 250)  # features stay before the minibatch layer
    sizes: list[int] = []
    d.register_forward_hook(lambda module, inputs, output: sizes.append(len(inputs[0])))
    model = SemiSupervisedGAN(MNISTGenerator(noise_dim=20), d)
    model._d_logits(torch.rand(4, 1, 28, 28), torch.rand(6, 1, 28, 28), torch.rand(5, 1, 28, 28))
    assert sizes == [4, 6, 5]


def test_feature_layer_by_name_is_captured_with_a_hook():
    torch.manual_seed(0)
    model = make_model(feature_layer="hidden.4")  # the last hidden block: the default features
    model.eval()
    x = torch.rand(5, 1, 28, 28)
    logits, features = model._d_features(x, with_logits=True)
    torch.testing.assert_close(features, model.discriminator.features(x))
    torch.testing.assert_close(logits, model.discriminator(x))
    model = make_model(feature_layer="hidden.1").eval()
    assert model._d_features(x)[1].shape == (5, 500)
    with pytest.raises(ValueError, match="'hidden.9' is not a submodule of MNISTDiscriminator; choose one of"):
        make_model(feature_layer="hidden.9")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"generator_loss": "wasserstein"}, "generator_loss must be one of"),
        ({"feature_matching_weight": 1.0}, "set generator_loss='non_saturating'"),
        ({"generator_loss": "non_saturating", "feature_matching_weight": -1.0}, "must be >= 0"),
        ({"generator_steps": 0}, "generator_steps must be >= 1"),
        ({"real_target": 0.0}, r"real_target .* must be in \(0, 1\]"),
    ],
)
def test_clear_errors_for_bad_technique_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_model(**kwargs)


def test_non_saturating_loss_with_several_generator_steps(tmp_path, tiny_datamodule):
    seed_everything(0)
    iso = GradientIsolation()
    model = make_model(generator_loss="non_saturating", feature_matching_weight=0.5, generator_steps=2)
    trainer = make_trainer(tmp_path, max_steps=3 * 2, limit_val_batches=0, callbacks=[iso])
    trainer.fit(model, datamodule=tiny_datamodule)
    assert trainer.global_step == 6 and iso.checked == {"d": 2, "g": 4}  # 1 + generator_steps per iteration


def test_learns_with_every_technique_on(tmp_path, tiny_datamodule):
    """MBD + non-saturating loss with feature matching, VBN generator, label smoothing and historical averaging."""
    from lightning_gan.callbacks import HistoricalAveraging

    seed_everything(0)
    model = SemiSupervisedGAN(  # smaller hidden layers than the paper's, to keep the test short
        MNISTGenerator(noise_dim=20, hidden_dim=100, norm="virtual_batch", ref_batch_size=30),
        MNISTDiscriminator(num_classes=3, minibatch_kernels=20, hidden_dims=(250, 250)),
        generator_loss="non_saturating",
        feature_matching_weight=1.0,
        real_target=0.9,
    )
    ha = HistoricalAveraging(weight=1e-3)
    trainer = make_trainer(tmp_path, max_steps=2 * 30, limit_val_batches=0, callbacks=[ha])
    trainer.fit(model, datamodule=tiny_datamodule)
    assert set(ha.counts.values()) == {30}
    tiny_datamodule.setup("test")
    x, y = tiny_datamodule._test
    assert error_rate(model, x, y) < 0.2  # chance is 2/3; measured 0.0 (0.02 after 60 iterations)


def test_lr_scheduler_is_stepped_once_per_epoch_for_both_players_and_resumes(tmp_path, tiny_datamodule):
    """LinearDecayLR(total 3, decay 2): factors 1, 1, 0.5, 0 at epochs 0-3, i.e. min((3 - epoch) / 2, 1), >= 0."""
    from functools import partial

    from lightning_gan.optim import LinearDecayLR

    seen = []

    class LearningRates(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            seen.append([opt.param_groups[0]["lr"] for opt in pl_module.optimizers()])

    seed_everything(0)
    schedule = partial(LinearDecayLR, total_epochs=3, decay_epochs=2)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    model = make_model(lr_scheduler=schedule)  # paper_adam: lr 0.003
    trainer = make_trainer(
        tmp_path, max_steps=-1, max_epochs=3, limit_train_batches=2, limit_val_batches=0, enable_checkpointing=True,
        callbacks=[LearningRates(), ckpt],
    )  # fmt: skip
    trainer.fit(model, datamodule=tiny_datamodule)
    assert seen == [[0.003, 0.003], [0.003, 0.003], [0.0015, 0.0015]]
    resumed = make_model(lr_scheduler=schedule)
    trainer = make_trainer(
        tmp_path, max_steps=-1, max_epochs=4, limit_train_batches=2, limit_val_batches=0, callbacks=[LearningRates()]
    )
    trainer.fit(resumed, datamodule=tiny_datamodule, ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert seen[-1] == [0.0, 0.0]  # epoch 3 after the restart: the schedulers' state came back from the checkpoint


def test_lr_warmup_ramps_both_players_rates_and_leaves_the_optimizers_rates_alone(tmp_path, tiny_datamodule):
    """lr_warmup=4, SGD lr 0.1: D step k at max(k, 1)/4 of the rate, G step k at (k + 1)/4, then the full rate."""
    from functools import partial

    seen = {"d": [], "g": []}

    class StepRates(Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:  # inside optimizer.step()
            player = "d" if optimizer is pl_module.optimizers()[0].optimizer else "g"
            seen[player].append(round(optimizer.param_groups[0]["lr"], 6))

    seed_everything(0)
    sgd = partial(torch.optim.SGD, lr=0.1)
    model = make_model(optimizer_d=sgd, optimizer_g=sgd, lr_warmup=4)
    trainer = make_trainer(tmp_path, max_steps=2 * 6, limit_val_batches=0, callbacks=[StepRates()])
    trainer.fit(model, datamodule=tiny_datamodule)
    assert seen["d"] == [0.025, 0.025, 0.05, 0.075, 0.1, 0.1]
    assert seen["g"] == [0.025, 0.05, 0.075, 0.1, 0.1, 0.1]
    assert [opt.param_groups[0]["lr"] for opt in model.optimizers()] == [0.1, 0.1]  # restored after every step
    with pytest.raises(ValueError, match="lr_warmup"):
        make_model(lr_warmup=-1)


def test_init_generator_runs_the_data_dependent_init_on_the_generator(tiny_datamodule):
    from lightning_gan.layers import is_weight_normed

    seed_everything(0)
    model = make_model(init_generator=True, init_noise_size=200)
    tiny_datamodule.setup("fit")
    (out,) = [m for m in model.generator.modules() if is_weight_normed(m)]  # MNISTGenerator: the output layer
    pre: list[torch.Tensor] = []
    handle = out.register_forward_hook(lambda m, i, o: pre.append(o))
    model.initialize(tiny_datamodule.init_batch())
    model.generator.train()
    with torch.no_grad():
        model.generator(model.generator.sample_noise(200))
    handle.remove()
    std, mean = pre[-1].std(0), pre[-1].mean(0)  # fresh noise: near, not exactly, 1 and 0 per unit
    assert 0.7 < float(std.median()) < 1.3 and float(mean.abs().median()) < 0.3
    assert not make_model().init_generator  # the MNIST reference does not initialise G


def _train_recording_losses(tmp_path, datamodule, step_impl: str, iterations: int, **kwargs):
    """Train a noise-free D (no random draws in D) and record every back-propagated loss."""
    seed_everything(0)
    model = SemiSupervisedGAN(
        MNISTGenerator(noise_dim=20),
        MNISTDiscriminator(num_classes=3, input_noise=0.0, hidden_noise=0.0),
        step_impl=step_impl,
        **kwargs,
    )
    losses: list[float] = []
    step_on = model.optimizer_step_on
    model.optimizer_step_on = lambda opt, loss: (losses.append(loss.item()), step_on(opt, loss))[1]
    trainer = make_trainer(tmp_path, max_steps=2 * iterations, limit_val_batches=0)
    trainer.fit(model, datamodule=datamodule)
    return model, losses, trainer.callback_metrics


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"generator_loss": "non_saturating", "feature_matching_weight": 0.5}, {"feature_std_weight": 1.0}],
    ids=["fm", "ns+fm", "fm+std"],
)
def test_fast_and_straightforward_steps_give_the_same_losses(tmp_path, tiny_datamodule, kwargs):
    # Three iterations: the two differ by float rounding only, and the game roughly doubles that difference every
    # iteration (relative 3e-7 on the first loss, 3e-6 after three iterations, 3e-5 after five on one machine).
    fast, fast_losses, fast_metrics = _train_recording_losses(tmp_path, tiny_datamodule, "fast", 3, **kwargs)
    plain, plain_losses, plain_metrics = _train_recording_losses(
        tmp_path, tiny_datamodule, "straightforward", 3, **kwargs
    )
    assert len(fast_losses) == len(plain_losses) == 6  # D and G loss of 3 iterations
    assert fast_losses == pytest.approx(plain_losses, rel=1e-5, abs=1e-6)
    for (name, a), b in zip(fast.state_dict().items(), plain.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)
    for name in ("train/d_loss_epoch", "train/g_loss_fm_epoch", "train/d_real_acc_epoch", "train/g_loss_epoch"):
        torch.testing.assert_close(fast_metrics[name], plain_metrics[name], rtol=1e-5, atol=1e-6, msg=name)


def test_the_fused_adam_trains_like_the_foreach_adam(tmp_path, tiny_datamodule):
    """ReferenceAdam(fused=True) (a compiled update) through the whole module: the same losses and weights."""
    import functools

    from lightning_gan.models import paper_adam

    fused = functools.partial(paper_adam, fused=True)
    model, fused_losses, _ = _train_recording_losses(
        tmp_path, tiny_datamodule, "fast", 5, optimizer_d=fused, optimizer_g=fused
    )
    assert all(group["fused"] for opt in model.optimizers() for group in opt.optimizer.param_groups)  # no fallback
    plain, plain_losses, _ = _train_recording_losses(tmp_path, tiny_datamodule, "fast", 5)
    assert fused_losses == pytest.approx(plain_losses, rel=1e-5, abs=1e-6)
    for (name, a), b in zip(model.state_dict().items(), plain.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)


def test_augment_labelled_translates_the_labelled_images_only(tmp_path, tiny_datamodule):
    seed_everything(0)
    model = make_model(augment_labelled="translation")
    seen: dict[str, torch.Tensor] = {}
    step, d_logits = model.training_step, model._d_logits

    def training_step(batch, batch_idx):
        seen["batch_lab"], seen["batch_unl"] = batch["labelled"][0].clone(), batch["unlabelled"].clone()
        return step(batch, batch_idx)

    def logits(x_lab, x_unl, x_fake):
        seen["d_lab"], seen["d_unl"] = x_lab.clone(), x_unl.clone()
        return d_logits(x_lab, x_unl, x_fake)

    model.training_step, model._d_logits = training_step, logits
    make_trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(model, datamodule=tiny_datamodule)
    assert torch.equal(seen["d_unl"], seen["batch_unl"])  # the GAN game sees clean images
    assert seen["d_lab"].shape == seen["batch_lab"].shape and not torch.equal(seen["d_lab"], seen["batch_lab"])
    # a translation with zero fill moves pixels and drops those shifted out: no image gains mass
    assert (seen["d_lab"].flatten(1).sum(1) <= seen["batch_lab"].flatten(1).sum(1) + 1e-4).all()
    with pytest.raises(ValueError, match="policy"):
        make_model(augment_labelled="rotate")


def test_feature_std_weight_adds_the_std_term_to_the_generator_loss(tmp_path, tiny_datamodule):
    """The same run with and without the std term: the G loss differs by exactly weight * the logged std term."""
    _, plain_losses, plain = _train_recording_losses(tmp_path, tiny_datamodule, "fast", 1)
    _, std_losses, with_std = _train_recording_losses(tmp_path, tiny_datamodule, "fast", 1, feature_std_weight=2.0)
    assert std_losses[0] == plain_losses[0]  # the D step comes first: identical
    fm, std = with_std["train/g_loss_fm_epoch"], with_std["train/g_loss_fm_std_epoch"]
    assert float(std) > 0 and float(plain["train/g_loss_fm_std_epoch"]) == pytest.approx(float(std))
    assert std_losses[1] == pytest.approx(float(fm + 2.0 * std), rel=1e-5)
    assert plain_losses[1] == pytest.approx(float(plain["train/g_loss_fm_epoch"]), rel=1e-5)
    with pytest.raises(ValueError, match="feature_std_weight"):
        make_model(feature_std_weight=-1.0)


class ForwardsAndLogs(Callback):
    """Per training batch: the batch sizes of D's forward calls and the (name, type) of every ``self.log`` value."""

    def __init__(self) -> None:
        self.forwards: dict[int, list[int]] = {}
        self.logged: dict[int, list[tuple[str, type]]] = {}
        self.batch = -1  # before the first batch: the data-dependent initialisation in on_fit_start

    def setup(self, trainer, pl_module, stage) -> None:
        pl_module.discriminator.register_forward_hook(self.record_forward)
        log = pl_module.log

        def recording_log(name, value, *args, **kwargs):
            self.logged.setdefault(self.batch, []).append((name, type(value)))
            return log(name, value, *args, **kwargs)

        pl_module.log = recording_log

    def record_forward(self, module, inputs, output) -> None:
        self.forwards.setdefault(self.batch, []).append(len(inputs[0]))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batch = batch_idx
        self.sizes = (len(batch["labelled"][0]), len(batch["unlabelled"]))


@pytest.mark.parametrize("generator_loss", ["feature_matching", "non_saturating"])
def test_straightforward_step_runs_separate_forwards_and_logs_every_step(tmp_path, tiny_datamodule, generator_loss):
    records = {}
    for step_impl in ("fast", "straightforward"):
        seed_everything(0)
        records[step_impl] = ForwardsAndLogs()
        make_trainer(tmp_path, max_steps=2 * 2, limit_val_batches=0, callbacks=[records[step_impl]]).fit(
            make_model(generator_loss=generator_loss, step_impl=step_impl), datamodule=tiny_datamodule
        )
    fast, plain = records["fast"], records["straightforward"]
    n_lab, n_unl = fast.sizes
    d_step = [n_lab, n_unl, n_unl]
    g_step = [n_unl] if generator_loss == "non_saturating" else []  # logits of the fakes (features: features())
    assert fast.forwards == {-1: [60], 0: [sum(d_step)], 1: [sum(d_step)]}  # 60: the init batch
    assert plain.forwards == {-1: [60], 0: d_step + g_step, 1: d_step + g_step}
    assert 0 not in fast.logged  # the window of 50 iterations is flushed at the end of the fit only
    for batch in (0, 1):
        assert [name for name, _ in plain.logged[batch]] == [*TRAIN_STATS, "g_fm"]
        assert all(kind is float for _, kind in plain.logged[batch])  # .item() every step


def test_weight_normalisation_is_shared_by_the_g_steps_two_d_forwards(tmp_path, tiny_datamodule, monkeypatch):
    calls = {"n": 0}
    weight_norm = torch._weight_norm
    monkeypatch.setattr(torch, "_weight_norm", lambda *a: (calls.__setitem__("n", calls["n"] + 1), weight_norm(*a))[1])

    class Count(Callback):
        def __init__(self) -> None:
            self.per_iteration: list[int] = []

        def on_train_batch_start(self, *args) -> None:
            calls["n"] = 0

        def on_train_batch_end(self, *args) -> None:
            self.per_iteration.append(calls["n"])

    per_impl = {}
    for step_impl in ("fast", "straightforward"):
        seed_everything(0)
        count = Count()
        make_trainer(tmp_path, max_steps=2 * 2, limit_val_batches=0, callbacks=[count]).fit(
            make_model(step_impl=step_impl), datamodule=tiny_datamodule
        )
        per_impl[step_impl] = count.per_iteration
    # 6 weight-normed D layers (5 before the features), 1 in G. D step: G + D; G step: G + D's 5 hidden layers once
    assert per_impl["fast"] == [1 + 6 + 1 + 5] * 2
    # D step: G + 3 D forwards; G step: G + 2 feature forwards
    assert per_impl["straightforward"] == [1 + 3 * 6 + 1 + 2 * 5] * 2


def test_step_impl_is_checked():
    with pytest.raises(ValueError, match="step_impl must be one of"):
        make_model(step_impl="quick")


def test_only_the_straightforward_g_step_back_propagates_into_the_discriminator(tmp_path, tiny_datamodule):
    """The fast G step freezes D; the straightforward one (as Lightning's GAN example) computes D's gradients too.

    Either way D's optimizer steps on the D loss's gradients alone: the same-losses test above would fail otherwise.
    """

    class DGradsAtGStep(Callback):
        def __init__(self) -> None:
            self.d_grads: list[bool] = []  # per G step: does any D parameter hold a gradient?

        def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
            if optimizer is trainer.optimizers[1]:  # [D, G]
                self.d_grads.append(any(p.grad is not None for p in pl_module.discriminator.parameters()))

        def on_train_batch_end(self, trainer, pl_module, *args) -> None:  # dropped before the next D step
            assert all(p.grad is None for p in pl_module.discriminator.parameters())

    seen = {}
    for step_impl in ("fast", "straightforward"):
        seed_everything(0)
        seen[step_impl] = DGradsAtGStep()
        make_trainer(tmp_path, max_steps=2 * 2, limit_val_batches=0, callbacks=[seen[step_impl]]).fit(
            make_model(step_impl=step_impl), datamodule=tiny_datamodule
        )
    assert seen["fast"].d_grads == [False, False]
    assert seen["straightforward"].d_grads == [True, True]
