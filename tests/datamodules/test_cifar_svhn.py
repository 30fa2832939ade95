"""SemiSupervisedCIFAR10 / SemiSupervisedSVHN on generated files in the real on-disk formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10

from lightning_gan.datamodules import (
    SemiSupervisedCIFAR10,
    SemiSupervisedDataModule,
    SemiSupervisedFashionMNIST,
    SemiSupervisedSVHN,
)
from tests.fake_datasets import patch_cifar10_md5, patch_svhn_md5, write_cifar10, write_mnist_like, write_svhn

MODULES = {"cifar10": SemiSupervisedCIFAR10, "svhn": SemiSupervisedSVHN}


@pytest.fixture(params=sorted(MODULES))
def written(request, tmp_path, monkeypatch):
    """(dataset name, data_dir, {"train"/"test": (uint8 [N, 3, 32, 32], labels)}) with 200 training images."""
    name = request.param
    if name == "cifar10":
        arrays = write_cifar10(tmp_path, n_per_batch=40, n_test=30)
        patch_cifar10_md5(monkeypatch, tmp_path)
    else:
        arrays = write_svhn(tmp_path, n_train=200, n_test=30)
        patch_svhn_md5(monkeypatch, tmp_path)
    return name, str(tmp_path), arrays


def _module(name: str, data_dir: str, **kwargs):
    kwargs = {"num_labelled": 50, "val_size": 30, "batch_size": 20, **kwargs}
    dm = MODULES[name](data_dir=data_dir, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_images_are_scaled_to_minus_one_one_and_keep_their_pixels(written):
    name, data_dir, arrays = written
    dm = _module(name, data_dir)
    images, targets = dm._train
    raw, labels = arrays["train"]
    assert images.shape == (200, 3, 32, 32) and images.dtype == torch.float32 and dm.value_range == (-1.0, 1.0)
    assert torch.allclose(images, torch.from_numpy(raw).float() / 127.5 - 1.0, atol=1e-6)
    assert targets.tolist() == labels.tolist()
    batch, _, _ = next(iter(dm.train_dataloader()))
    x_lab, y_lab = batch["labelled"]
    assert x_lab.shape == (20, 3, 32, 32) and y_lab.dtype == torch.long
    assert isinstance(batch["unlabelled"], torch.Tensor) and batch["unlabelled"].shape == (20, 3, 32, 32)
    assert -1.0 <= float(batch["unlabelled"].min()) and float(batch["unlabelled"].max()) <= 1.0
    dm.setup("test")
    assert dm._test[0].shape == (30, 3, 32, 32)


def test_split_is_balanced_seeded_disjoint_and_saved(written, tmp_path):
    name, data_dir, _ = written
    dm = _module(name, data_dir, label_seed=3)
    labelled, targets = dm.labelled_indices, dm._train[1]
    assert torch.bincount(targets[labelled], minlength=10).tolist() == [5] * 10
    assert not set(labelled.tolist()) & set(dm.validation_indices.tolist())
    assert dm.unlabelled_indices.numel() == 170 and set(labelled.tolist()) <= set(dm.unlabelled_indices.tolist())
    # the labelled subset depends on label_seed only, not on batch size or the validation seed
    same = _module(name, data_dir, label_seed=3, batch_size=7, val_seed=5)
    assert torch.equal(same.labelled_indices, labelled)
    assert not torch.equal(_module(name, data_dir, label_seed=4).labelled_indices, labelled)
    # the manifest names the dataset and can be reused
    path = dm.save_label_split(tmp_path / "run")
    manifest = json.loads(path.read_text())
    assert manifest["dataset"] == name and manifest["num_labelled"] == 50 and manifest["seed"] == 3
    reused = _module(name, data_dir, label_seed=3, label_split=str(path))
    assert torch.equal(reused.labelled_indices, labelled)


def test_labels_never_reach_the_unlabelled_batches(written):
    name, data_dir, _ = written
    dm = _module(name, data_dir)
    for batch, _, _ in dm.train_dataloader():
        assert set(batch) == {"labelled", "unlabelled", "unlabelled_g"}
        assert torch.is_tensor(batch["unlabelled"]) and torch.is_tensor(batch["unlabelled_g"])
        assert batch["labelled"][1].numel() == 20


def test_the_generic_module_takes_the_dataset_by_name(written):
    name, data_dir, _ = written
    generic = SemiSupervisedDataModule(name, data_dir=data_dir, num_labelled=50, val_size=30, batch_size=20)
    generic.setup("fit")
    specific = _module(name, data_dir)
    assert torch.equal(generic.labelled_indices, specific.labelled_indices)
    assert torch.equal(generic._train[0], specific._train[0])


def test_the_paper_defaults_and_a_too_large_label_count(written):
    name, data_dir, _ = written
    assert MODULES[name]().num_labelled == {"cifar10": 4000, "svhn": 1000}[name]
    dm = MODULES[name](data_dir=data_dir, val_size=30)  # 4000 / 1000 labels of a 200-image file
    with pytest.raises(ValueError, match="num_labelled=.* is larger than the 170 training images"):
        dm.setup("fit")
    with pytest.raises(ValueError, match="multiple of the number of classes"):
        _module(name, data_dir, num_labelled=55)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_missing_files_name_the_paths_and_the_fix(name, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(cifar-10-batches-py/data_batch_1|train_32x32.mat).*download=True"):
        MODULES[name](data_dir=str(tmp_path)).prepare_data()


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown dataset 'cifar100'; valid names: cifar10, fashion_mnist, mnist"):
        SemiSupervisedDataModule("cifar100")


def test_download_goes_through_torchvision(tmp_path, monkeypatch):
    calls = []

    def fake_download(self: CIFAR10) -> None:  # stands in for the network: writes what the archive holds
        calls.append(self.train)
        write_cifar10(self.root, n_per_batch=20, n_test=10)
        patch_cifar10_md5(monkeypatch, self.root)

    monkeypatch.setattr(CIFAR10, "download", fake_download)
    dm = SemiSupervisedCIFAR10(data_dir=str(tmp_path), download=True, num_labelled=20, val_size=10)
    dm.prepare_data()
    dm.setup("fit")
    assert calls and dm._train[0].shape == (100, 3, 32, 32)


def test_fashion_mnist_is_the_same_mechanism(tmp_path):
    write_mnist_like(tmp_path, folder="FashionMNIST", n_train=100, n_test=20)
    dm = SemiSupervisedFashionMNIST(data_dir=str(tmp_path), num_labelled=20, val_size=10, batch_size=10)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.value_range == (0.0, 1.0) and dm._train[0].shape == (100, 1, 28, 28)
    assert np.bincount(dm._train[1][dm.labelled_indices].numpy(), minlength=10).tolist() == [2] * 10


def test_fit_after_validate_still_writes_the_split_into_the_run_directory(tmp_path):
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import CSVLogger

    from lightning_gan.datamodules import InMemorySemiSupervised

    dm = InMemorySemiSupervised(torch.rand(60, 1, 4, 4), torch.arange(60) % 3, num_labelled=6, val_size=9)
    dm.setup("validate")  # e.g. trainer.validate(model, datamodule=dm) before fitting
    trainer = Trainer(logger=CSVLogger(tmp_path), enable_progress_bar=False)
    dm.trainer = trainer
    dm.setup("fit")
    assert (Path(trainer.log_dir) / "label_split.json").is_file()


@pytest.mark.parametrize("tile", [False, True])
def test_a_labelled_set_smaller_than_a_batch_is_tiled_only_on_request(tile):
    from lightning_gan.datamodules import InMemorySemiSupervised

    images, targets = torch.rand(200, 1, 4, 4), torch.arange(200) % 4
    dm = InMemorySemiSupervised(images, targets, num_labelled=8, val_size=0, batch_size=24, tile_labelled=tile)
    dm.setup("fit")
    for _ in range(3):  # the labelled loader is cycled several times per epoch
        batch, _, _ = next(iter(dm.train_dataloader()))
        x, y = batch["labelled"]
        # each labelled image is a distinct random image: match rows to indices
        rows = (x.flatten(1)[:, None] == images[dm.labelled_indices].flatten(1)[None]).all(-1).float().argmax(1)
        counts = torch.bincount(rows, minlength=8)
        if tile:  # as the reference: a batch of 24 holds each of the 8 images 3 times
            assert len(y) == 24 and counts.tolist() == [3] * 8
        else:  # the set itself, each image once
            assert len(y) == 8 and counts.tolist() == [1] * 8
        assert torch.equal(y, targets[dm.labelled_indices][rows])
