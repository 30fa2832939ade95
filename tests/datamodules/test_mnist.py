from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger

from lightning_gan.datamodules import SemiSupervisedMNIST
from tests.conftest import mnist_dir, requires_mnist


@pytest.fixture(scope="module")
def mnist() -> SemiSupervisedMNIST:
    dm = SemiSupervisedMNIST(data_dir=str(mnist_dir()), num_labelled=100, label_seed=1)
    dm.prepare_data()
    dm.setup("fit")
    return dm


@requires_mnist
def test_labelled_subset_is_balanced_and_disjoint_from_validation(mnist):
    idx = mnist.labelled_indices
    targets = mnist._train[1]
    assert idx.numel() == 100
    assert torch.bincount(targets[idx], minlength=10).tolist() == [10] * 10
    assert not set(idx.tolist()) & set(mnist.validation_indices.tolist())
    assert mnist.validation_indices.numel() == 5000
    # the pool is the training set minus validation (labelled images included, as in the paper)
    assert mnist.unlabelled_indices.numel() == 55000
    assert set(idx.tolist()) <= set(mnist.unlabelled_indices.tolist())


@requires_mnist
def test_label_split_is_pinned_for_seed_1(mnist):
    # same seed, same split, on any machine: the first indices of label_seed=1 are fixed
    assert mnist.labelled_indices[:5].tolist() == [831, 923, 1176, 1719, 1841]


@requires_mnist
def test_unlabelled_batches_carry_no_labels_and_an_epoch_is_one_pass(mnist):
    loader = mnist.train_dataloader()
    iterator = iter(loader)
    assert len(loader) == 550  # 55,000 unlabelled images / 100
    batch, _, _ = next(iterator)
    assert isinstance(batch["unlabelled"], torch.Tensor) and batch["unlabelled"].shape == (100, 1, 28, 28)
    assert isinstance(batch["unlabelled_g"], torch.Tensor)
    x_lab, y_lab = batch["labelled"]
    assert x_lab.shape == (100, 1, 28, 28) and sorted(y_lab.tolist()) == sorted([c for c in range(10)] * 10)
    assert 0.0 <= batch["unlabelled"].min() and batch["unlabelled"].max() <= 1.0


class PerImage(torch.utils.data.Dataset):
    """A dataset's items one by one, without its ``__getitems__``: the DataLoader's per-image path."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return self.dataset[i]


@requires_mnist
def test_gathered_batches_equal_per_image_batches(mnist):
    """One gather per batch (``__getitems__``) yields exactly what per-image loading with default_collate does."""
    from torch.utils.data import DataLoader

    from lightning_gan.datamodules import LabelledImages, UnlabelledImages, collate_for, collate_gathered

    images, targets = mnist._train
    labelled = LabelledImages(images, targets, mnist.labelled_indices)
    for dataset in (labelled, UnlabelledImages(images, mnist.validation_indices)):
        assert collate_for(dataset) is collate_gathered
        torch.manual_seed(0)
        gathered = list(DataLoader(dataset, batch_size=32, shuffle=True, collate_fn=collate_for(dataset)))
        torch.manual_seed(0)
        per_image = list(DataLoader(PerImage(dataset), batch_size=32, shuffle=True))  # default_collate
        assert len(gathered) == len(per_image) > 1
        for a, b in zip(gathered, per_image, strict=True):
            a, b = (a, b) if isinstance(a, list) else ([a], [b])
            assert len(a) == len(b)
            for u, v in zip(a, b, strict=True):
                assert u.dtype == v.dtype and torch.equal(u, v)
    assert collate_for(PerImage(labelled)) is None  # other datasets keep the DataLoader's default_collate


@requires_mnist
def test_test_set_is_loaded_only_for_test(mnist):
    assert mnist._test is None
    dm = SemiSupervisedMNIST(data_dir=str(mnist_dir()))
    dm.setup("test")
    assert dm._train is None and len(dm.test_dataloader().dataset) == 10000


@requires_mnist
def test_split_is_written_to_the_run_directory_and_can_be_reused(tmp_path):
    dm = SemiSupervisedMNIST(data_dir=str(mnist_dir()), num_labelled=20, label_seed=4)
    dm.trainer = Trainer(logger=CSVLogger(tmp_path, name="", version=""))
    dm.setup("fit")
    saved = json.loads((tmp_path / "label_split.json").read_text())
    assert saved["dataset"] == "MNIST" and saved["seed"] == 4 and sorted(saved["per_class_counts"].values()) == [2] * 10
    assert saved["labelled_indices"] == dm.labelled_indices.tolist() and len(saved["targets_sha256"]) == 64
    again = SemiSupervisedMNIST(
        data_dir=str(mnist_dir()), label_seed=99, label_split=str(tmp_path / "label_split.json")
    )
    again.setup("fit")
    assert torch.equal(again.labelled_indices, dm.labelled_indices)
    assert torch.equal(again.validation_indices, dm.validation_indices)


@requires_mnist
def test_state_dict_restores_the_split(mnist):
    other = SemiSupervisedMNIST(data_dir=str(mnist_dir()), label_seed=2)
    other.setup("fit")
    with pytest.warns(UserWarning, match=r"from the checkpoint \(100 labels, seed 1\) instead of the configured"):
        other.load_state_dict(mnist.state_dict())
    assert torch.equal(other.labelled_indices, mnist.labelled_indices)


def test_missing_files_name_the_path_and_the_download_option(tmp_path):
    dm = SemiSupervisedMNIST(data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"MNIST/raw/train-images-idx3-ubyte.*download=True"):
        dm.prepare_data()


@requires_mnist
def test_bad_label_counts_are_rejected():
    with pytest.raises(ValueError, match="multiple of the number of classes"):
        SemiSupervisedMNIST(data_dir=str(mnist_dir()), num_labelled=55).setup("fit")
    with pytest.raises(ValueError, match="larger than the"):
        SemiSupervisedMNIST(data_dir=str(mnist_dir()), num_labelled=60000).setup("fit")


def test_data_dir_defaults_to_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("LIGHTNING_GAN_DATA", str(tmp_path))
    assert SemiSupervisedMNIST().data_dir == str(tmp_path)
    monkeypatch.delenv("LIGHTNING_GAN_DATA")
    assert SemiSupervisedMNIST().data_dir == "./data"


@requires_mnist
def test_a_corrupt_split_file_is_refused(tmp_path, mnist):
    bad = json.loads(mnist.split.to_json())
    bad["validation_indices"][0] = bad["labelled_indices"][0]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    dm = SemiSupervisedMNIST(data_dir=str(mnist_dir()), label_split=str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="puts 1 labelled images in validation"):
        dm.setup("fit")
