from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger
from torchvision.datasets import MNIST

from lightning_gan.datamodules import ImageDataModule, missing_files
from lightning_gan.datamodules.images import select_fraction
from tests.fake_datasets import patch_cifar10_md5, write_cifar10, write_mnist_like

N_TRAIN, N_TEST, VAL = 200, 50, 20  # 180 training images outside validation


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("data")
    return root, write_mnist_like(root, n_train=N_TRAIN, n_test=N_TEST, seed=3)


def make(data, **kwargs) -> ImageDataModule:
    kwargs = {"data_dir": str(data[0]), "val_size": VAL, "batch_size": 16, **kwargs}
    dm = ImageDataModule("mnist", **kwargs)
    dm.setup("fit")
    return dm


def counts(data, dm: ImageDataModule) -> np.ndarray:
    return np.bincount(data[1]["train"][1][dm.train_indices.numpy()], minlength=10)


# ----- construction --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "imagenet"}, "unknown dataset 'imagenet'.*cifar10, fashion_mnist, mnist"),
        ({"fraction": 0.0}, r"fraction must be in \(0, 1\], got 0.0"),
        ({"fraction": 1.5}, r"fraction must be in \(0, 1\]"),
        ({"batch_size": 0}, "batch_size must be positive"),
        ({"val_size": -1}, "val_size must be >= 0"),
        ({"value_range": (1.0, 1.0)}, "low < high"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageDataModule(**kwargs)


def test_dataset_attributes_are_known_before_setup(tmp_path):
    dm = ImageDataModule("cifar10", data_dir=str(tmp_path), value_range=[0, 1])
    assert (dm.dataset_name, dm.num_classes, dm.image_shape, dm.value_range) == ("cifar10", 10, (3, 32, 32), (0.0, 1.0))


def test_prepare_data_checks_files_and_downloads_only_when_asked(tmp_path, monkeypatch):
    dm = ImageDataModule(data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*download=True"):
        dm.prepare_data()
    monkeypatch.setattr(MNIST, "download", lambda self: write_mnist_like(self.root, n_train=10, n_test=10))
    dm = ImageDataModule(data_dir=str(tmp_path), download=True)
    dm.prepare_data()
    assert missing_files("mnist", tmp_path) == []
    assert dm.subset is None and dm._train is None  # no state: prepare_data runs on rank 0 only


# ----- values and the subset -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("value_range", [(-1.0, 1.0), (0.0, 1.0), (-0.5, 2.0)])
def test_pixels_are_the_bytes_scaled_to_value_range(data, value_range):
    dm = make(data, val_size=0, value_range=value_range)
    low, high = value_range
    raw = torch.from_numpy(data[1]["train"][0]).unsqueeze(1)
    expected = raw.float() / 255.0 * (high - low) + low
    assert torch.equal(dm.real_images(), expected)  # bit for bit: the same float32 operations
    assert dm.real_images()[raw == 0].eq(low).all() and dm.real_images()[raw == 255].eq(high).all()
    if value_range == (0.0, 1.0):
        assert torch.equal(dm.real_images(), raw.float() / 255.0)
    test = dm.real_images(split="test")
    assert torch.equal(test, torch.from_numpy(data[1]["test"][0]).unsqueeze(1).float() / 255.0 * (high - low) + low)


@pytest.mark.parametrize(("fraction", "size"), [(0.1, 18), (0.2, 36), (1.0, 180)])
def test_fraction_sets_the_subset_size(data, fraction, size):
    dm = make(data, fraction=fraction)
    assert dm.train_indices.numel() == size and dm.validation_indices.numel() == VAL
    assert torch.equal(dm.train_indices, dm.train_indices.sort().values)


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5])
def test_subset_is_class_balanced_and_disjoint_from_validation(data, fraction):
    dm = make(data, fraction=fraction, fraction_seed=7)
    per_class = counts(data, dm)
    assert per_class.max() - per_class.min() <= 1 and per_class.sum() == round(fraction * 180)
    assert not set(dm.train_indices.tolist()) & set(dm.validation_indices.tolist())


def test_subset_depends_on_fraction_seed_only(data):
    torch.manual_seed(0)
    np.random.seed(0)
    first = make(data, fraction=0.2, fraction_seed=1).train_indices
    torch.manual_seed(123)
    np.random.seed(123)
    assert torch.equal(make(data, fraction=0.2, fraction_seed=1).train_indices, first)  # global seeds do not matter
    assert not torch.equal(make(data, fraction=0.2, fraction_seed=2).train_indices, first)
    # a smaller fraction with the same seed is part of a larger one
    assert set(make(data, fraction=0.1, fraction_seed=1).train_indices.tolist()) <= set(first.tolist())


def test_whole_classes_are_taken_when_a_class_runs_short():
    targets = np.array([0] * 50 + [1] * 3 + [2] * 50)
    per_class = np.bincount(targets[select_fraction(targets, 30, seed=0)])
    assert per_class[1] == 3 and sorted(per_class[[0, 2]].tolist()) == [13, 14]


# ----- loaders -------------------------------------------------------------------------------------------------------
def test_batches_are_bare_images_and_the_last_partial_batch_is_dropped(data):
    dm = make(data, batch_size=64)  # 180 training images: two batches of 64, 52 dropped
    batches = list(dm.train_dataloader())
    assert len(batches) == 2 and all(isinstance(b, torch.Tensor) and b.shape == (64, 1, 28, 28) for b in batches)
    assert {b.dtype for b in batches} == {torch.float32} and all(b.min() >= -1 and b.max() <= 1 for b in batches)
    val = list(dm.val_dataloader())
    assert [b.shape[0] for b in val] == [VAL] and torch.equal(val[0], dm.real_images(split="val"))
    assert make(data, val_size=0).val_dataloader() == []


def test_test_and_predict_loaders_give_the_test_images(data):
    dm = ImageDataModule("mnist", data_dir=str(data[0]), batch_size=32)
    dm.setup("test")
    assert dm._train is None  # the training split is not read for test
    test = torch.cat(list(dm.test_dataloader()))
    assert test.shape == (N_TEST, 1, 28, 28) and torch.equal(test, dm.real_images(split="test"))
    assert [b.shape[0] for b in dm.predict_dataloader()] == [32, 18]


def test_a_subset_smaller_than_one_batch_is_an_error_naming_the_fix(data):
    dm = make(data, fraction=0.1, batch_size=64)
    with pytest.raises(ValueError, match="18 images.*one batch of 64.*raise fraction, lower batch_size"):
        dm.train_dataloader()


def test_real_images_are_the_first_kept_images(data):
    dm = make(data, fraction=0.5, value_range=(0.0, 1.0))
    first = dm.real_images(5)
    raw = torch.from_numpy(data[1]["train"][0][dm.train_indices[:5].numpy()]).unsqueeze(1)
    assert first.shape == (5, 1, 28, 28) and torch.equal(first, raw.float() / 255.0)
    with pytest.raises(ValueError, match="split must be"):
        dm.real_images(split="validation")


def test_cifar10_batches(tmp_path, monkeypatch):
    write_cifar10(tmp_path, n_per_batch=8, n_test=10)
    patch_cifar10_md5(monkeypatch, tmp_path)
    dm = ImageDataModule("cifar10", data_dir=str(tmp_path), fraction=0.5, val_size=10, batch_size=4)
    dm.setup("fit")
    assert dm.train_indices.numel() == 15
    assert next(iter(dm.train_dataloader())).shape == (4, 3, 32, 32)


# ----- the manifest and resuming -------------------------------------------------------------------------------------
def test_save_subset_writes_the_manifest(data, tmp_path):
    dm = make(data, fraction=0.2, fraction_seed=4, val_seed=2)
    path = dm.save_subset(tmp_path / "run")
    saved = json.loads(path.read_text())
    assert path.name == "data_subset.json" and not list(path.parent.glob("*.tmp"))
    assert (saved["dataset"], saved["fraction"], saved["fraction_seed"], saved["val_seed"]) == ("mnist", 0.2, 4, 2)
    assert (
        saved["indices"] == dm.train_indices.tolist() and saved["validation_indices"] == dm.validation_indices.tolist()
    )
    assert len(saved["targets_sha256"]) == 64 and sum(saved["per_class_counts"].values()) == 36


def test_state_dict_restores_the_subset_into_a_fresh_module(data):
    dm = make(data, fraction=0.2, fraction_seed=1)
    state = dm.state_dict()
    after_setup = make(data, fraction=0.2, fraction_seed=9)
    with pytest.warns(UserWarning, match="data subset from the checkpoint"):
        after_setup.load_state_dict(state)
    assert torch.equal(after_setup.train_indices, dm.train_indices)
    before_setup = ImageDataModule("mnist", data_dir=str(data[0]), fraction=0.2, fraction_seed=1, val_size=VAL)
    before_setup.load_state_dict(state)
    before_setup.setup("fit")
    assert torch.equal(before_setup.train_indices, dm.train_indices)
    assert torch.equal(before_setup.validation_indices, dm.validation_indices)


def test_a_subset_from_other_data_is_refused(data, tmp_path):
    state = make(data, fraction=0.2).state_dict()
    write_mnist_like(tmp_path, n_train=N_TRAIN, n_test=N_TEST, seed=4)  # same sizes, other labels
    other = ImageDataModule("mnist", data_dir=str(tmp_path), fraction=0.2, val_size=VAL)
    other.setup("fit")
    with pytest.raises(ValueError, match="targets hash.*does not match.*data changed"):
        other.load_state_dict(state)


class TinyModel(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(28 * 28, 1)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self.layer(batch.flatten(1)).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _trainer(tmp_path: Path, max_steps: int) -> Trainer:
    return Trainer(
        max_steps=max_steps,
        logger=CSVLogger(tmp_path),
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
    )


def test_fit_writes_the_manifest_into_log_dir_and_resume_keeps_the_subset(data, tmp_path):
    dm = ImageDataModule("mnist", data_dir=str(data[0]), fraction=0.5, fraction_seed=3, val_size=VAL, batch_size=16)
    trainer = _trainer(tmp_path, max_steps=1)
    trainer.fit(TinyModel(), datamodule=dm)
    saved = json.loads((Path(trainer.log_dir) / "data_subset.json").read_text())
    assert saved["indices"] == dm.train_indices.tolist() and len(saved["indices"]) == 90
    trainer.save_checkpoint(tmp_path / "last.ckpt")

    resumed = ImageDataModule("mnist", data_dir=str(data[0]), fraction=0.5, fraction_seed=8, val_size=VAL)
    trainer = _trainer(tmp_path, max_steps=2)
    with pytest.warns(UserWarning, match="data subset from the checkpoint"):
        trainer.fit(TinyModel(), datamodule=resumed, ckpt_path=tmp_path / "last.ckpt")
    assert torch.equal(resumed.train_indices, dm.train_indices)
    assert json.loads((Path(trainer.log_dir) / "data_subset.json").read_text())["indices"] == saved["indices"]
