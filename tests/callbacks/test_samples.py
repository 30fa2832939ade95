from __future__ import annotations

from types import SimpleNamespace
from unittest.mock import MagicMock

import numpy as np
import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from PIL import Image

from lightning_gan.callbacks import ClassificationGrids, SampleGrid
from lightning_gan.callbacks.samples import log_grid, to_unit_range, value_range_of
from lightning_gan.models import GAN, SemiSupervisedGAN
from lightning_gan.networks import MNISTDiscriminator, MNISTGenerator, VanillaDiscriminator

pytestmark = pytest.mark.usefixtures("one_thread")


def small_ssl_gan() -> SemiSupervisedGAN:
    return SemiSupervisedGAN(
        MNISTGenerator(noise_dim=16, hidden_dim=32), MNISTDiscriminator(num_classes=3, hidden_dims=(64, 32))
    )


def small_gan(**kwargs) -> GAN:
    return GAN(MNISTGenerator(noise_dim=8, hidden_dim=16), VanillaDiscriminator(hidden_dims=(16,)), **kwargs)


def fit(tmp_path, model, datamodule, callbacks, max_epochs: int = 1, **kwargs) -> Trainer:
    kwargs.setdefault("logger", CSVLogger(tmp_path, name="run"))
    trainer = Trainer(
        max_epochs=max_epochs,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        default_root_dir=tmp_path,
        callbacks=callbacks,
        **kwargs,
    )
    trainer.fit(model, datamodule=datamodule)
    return trainer


def read_png(path) -> torch.Tensor:
    """[C, H, W] uint8, as torchvision's save_image wrote it (through PIL)."""
    return torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1)


class NoiseSpy(Callback):
    """Records the SampleGrid's noise after each epoch (it runs after the SampleGrid, in list order)."""

    def __init__(self, grid: SampleGrid) -> None:
        self.grid, self.seen = grid, []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seen.append(self.grid.noise.clone())


def test_grid_png_is_make_grid_sized_written_every_epoch_with_the_same_noise(tmp_path, tiny_datamodule):
    seed_everything(0)
    grid, sparse = SampleGrid(num_samples=64, nrow=8), SampleGrid(every_n_epochs=2, num_samples=4, nrow=2, key="sparse")
    spy = NoiseSpy(grid)
    trainer = fit(tmp_path, small_ssl_gan(), tiny_datamodule, [grid, sparse, spy], max_epochs=2, limit_train_batches=2)
    run = tmp_path / "run" / "version_0"
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch000.png", "epoch001.png"]
    assert sorted(p.name for p in (run / "sparse").iterdir()) == ["epoch001.png"]  # every 2nd epoch
    png = read_png(run / "samples" / "epoch001.png")
    side = 8 * (28 + 2) + 2  # make_grid: 8 images of 28 px per row and column, padding 2
    assert png.shape == (3, side, side)
    assert torch.equal(png, grid.last_grid.mul(255).add(0.5).clamp(0, 255).to(torch.uint8))
    assert read_png(run / "sparse" / "epoch001.png").shape == (3, 2 * 30 + 2, 2 * 30 + 2)
    assert len(spy.seen) == 2 and torch.equal(spy.seen[0], spy.seen[1])
    assert trainer.current_epoch == 2 and grid.state_key != sparse.state_key


def test_noise_is_seeded_leaves_the_global_rng_alone_and_round_trips_through_state_dict():
    model = small_ssl_gan()
    torch.manual_seed(1)
    before = torch.get_rng_state()
    noise = SampleGrid(num_samples=8, seed=3).fixed_noise(model)
    assert torch.equal(torch.get_rng_state(), before)  # training draws the same numbers with or without the grid
    assert noise.shape == (8, 16) and 0 <= noise.min() and noise.max() <= 1  # MNISTGenerator: z ~ U(0, 1)
    torch.manual_seed(2)
    assert torch.equal(SampleGrid(num_samples=8, seed=3).fixed_noise(model), noise)  # whatever the global seed
    assert not torch.equal(SampleGrid(num_samples=8, seed=4).fixed_noise(model), noise)

    grid = SampleGrid(num_samples=8, seed=3)
    grid.fixed_noise(model)
    state = grid.state_dict()
    restored = SampleGrid(num_samples=8, seed=99)  # a resumed run keeps the checkpoint's noise, not its own seed
    restored.load_state_dict(state)
    assert torch.equal(restored.fixed_noise(model), noise)
    assert set(state) == {"seed", "noise"} and isinstance(state["noise"], torch.Tensor)
    with pytest.warns(UserWarning, match="drawing a new fixed noise batch"):
        SampleGrid(num_samples=5).load_state_dict(state)


def test_ema_generator_draws_the_grid_and_every_module_gets_its_mode_back():
    gan = small_gan(ema_decay=0.5)
    with torch.no_grad():
        for p in gan.generator.parameters():
            p.add_(0.5)  # the live generator now differs from its average
    gan.train()
    frozen_bn = gan.ema_generator.module.hidden[1]
    frozen_bn.eval()  # a module someone froze in eval mode must stay there
    modes = {name: m.training for name, m in gan.named_modules()}

    grid = SampleGrid(num_samples=6)
    images = grid.generate(gan, value_range=(0.0, 1.0))
    assert {name: m.training for name, m in gan.named_modules()} == modes

    z = grid.fixed_noise(gan)
    with torch.no_grad():
        gan.eval()
        expected_ema, expected_live = gan.ema_generator.module(z), gan.generator(z)
    assert torch.equal(images, expected_ema)
    assert torch.equal(SampleGrid(num_samples=6, use_ema=False).generate(gan, (0.0, 1.0)), expected_live)
    assert not torch.equal(expected_ema, expected_live)
    assert SampleGrid().network(small_ssl_gan()) is not None  # no EMA generator: the generator itself


def test_value_range_is_mapped_to_unit_interval_exactly():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])
    assert torch.equal(to_unit_range(x, (-1.0, 1.0)), torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    y = torch.rand(100)
    assert torch.equal(to_unit_range(y, (0.0, 1.0)), y)
    assert torch.equal(to_unit_range(torch.tensor([0.0, 51.0, 255.0]), (0, 255)), torch.tensor([0.0, 0.2, 1.0]))
    assert torch.equal(to_unit_range(torch.tensor([-3.0, 3.0]), (-1, 1)), torch.tensor([0.0, 1.0]))  # clamped
    with pytest.raises(ValueError, match="high > low"):
        to_unit_range(x, (1.0, 1.0))

    gan = small_gan()  # sigmoid generator, value_range (0, 1); the data module's range wins
    assert value_range_of(SimpleNamespace(datamodule=SimpleNamespace(value_range=[-1, 1])), gan) == (-1.0, 1.0)
    assert value_range_of(SimpleNamespace(datamodule=None), gan) == (0.0, 1.0)


def test_grids_go_to_wandb_and_tensorboard_and_other_loggers_are_skipped():
    wandb, tensorboard, csv = MagicMock(spec=WandbLogger), MagicMock(spec=TensorBoardLogger), MagicMock(spec=CSVLogger)
    grid = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 3).expand(3, 2, 3)  # [3, H=2, W=3]
    log_grid(SimpleNamespace(loggers=[wandb, tensorboard, csv], global_step=7), "samples", grid, caption="epoch 0")

    (call,) = wandb.log_image.call_args_list
    assert call.kwargs["key"] == "samples" and call.kwargs["step"] == 7 and call.kwargs["caption"] == ["epoch 0"]
    (image,) = call.kwargs["images"]
    assert image.dtype == np.uint8 and image.shape == (2, 3, 3) and image[0, :, 0].tolist() == [0, 128, 255]
    tensorboard.experiment.add_image.assert_called_once_with("samples", grid, global_step=7)
    assert csv.method_calls == []


@torch.no_grad()
def ema_predictions(model: SemiSupervisedGAN, images: torch.Tensor) -> torch.Tensor:
    model.eval()
    return model.ema_discriminator(images).argmax(1)


def lookup(images: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """Index into ``pool`` of each image (exact match)."""
    same = (images.flatten(1)[:, None] == pool.flatten(1)[None]).all(-1)  # [N, M]
    assert (same.sum(1) == 1).all()
    return same.float().argmax(1)


def test_labelled_grid_shows_each_class_in_its_row(tmp_path, tiny_datamodule):
    seed_everything(0)
    grids = ClassificationGrids()
    fit(tmp_path, small_ssl_gan(), tiny_datamodule, [grids], limit_train_batches=1, limit_val_batches=0)
    assert (tmp_path / "run" / "version_0" / "classification" / "labelled.png").is_file()
    grid = grids.last_grids["labelled"]
    assert grid.shape == (3, 3 * 30 + 2, 3 * 30 + 2)  # 9 labels of 3 classes: 3 rows of 3
    images, targets = tiny_datamodule._train
    for c in range(3):
        for j in range(3):
            cell = grid[0, 2 + 30 * c : 30 * (c + 1), 2 + 30 * j : 30 * (j + 1)]  # [28, 28]
            (index,) = [i for i in tiny_datamodule.labelled_indices.tolist() if torch.equal(images[i, 0], cell)]
            assert targets[index] == c


def test_misclassified_grids_hold_only_misclassified_images_with_their_labels(tmp_path, tiny_datamodule):
    seed_everything(0)
    grids, capped = ClassificationGrids(num_images=64, nrow=8), ClassificationGrids(num_images=3, key="capped")
    model = small_ssl_gan()
    trainer = fit(tmp_path, model, tiny_datamodule, [grids, capped], limit_train_batches=2)
    trainer.test(model, datamodule=tiny_datamodule, verbose=False)
    run = tmp_path / "run" / "version_0" / "classification"
    assert {"misclassified_val_epoch000.png", "misclassified_test.png"} <= {p.name for p in run.iterdir()}

    train_images, train_targets = tiny_datamodule._train
    val = tiny_datamodule.validation_indices
    sets = {"misclassified_val": (train_images[val], train_targets[val]), "misclassified_test": tiny_datamodule._test}
    for name, (pool, labels) in sets.items():
        images, predicted, true = grids.last_misclassified[name]
        wrong = ema_predictions(model, pool) != labels
        assert len(images) == min(64, int(wrong.sum())) > 0, name
        where = lookup(images, pool)
        assert wrong[where].all()  # only misclassified images
        assert torch.equal(true, labels[where]) and torch.equal(predicted, ema_predictions(model, images))
        assert (predicted != true).all()
        capped_images = capped.last_misclassified[name][0]
        assert len(capped_images) == min(3, int(wrong.sum())) and torch.equal(capped_images, images[:3])


def test_classification_grids_warn_once_and_stay_idle_without_a_k_plus_one_model():
    grids = ClassificationGrids()
    trainer = SimpleNamespace(datamodule=None)
    with pytest.warns(UserWarning, match="ClassificationGrids needs a model with an ema_discriminator"):
        assert not grids.applies(trainer, small_gan())
    assert not grids.applies(trainer, small_gan())  # no second warning (pytest's filter would fail on it)
