from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import MNIST

from lightning_gan.datamodules import VISION_DATASETS, load_vision_dataset, missing_files
from tests.fake_datasets import patch_cifar10_md5, patch_svhn_md5, write_cifar10, write_mnist_like, write_svhn


def _write(name: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Generate dataset ``name`` under ``root``; returns {"train"/"test": (uint8 [N, C, H, W], labels)}."""
    if name == "cifar10":
        written = write_cifar10(root, n_per_batch=6, n_test=10)
        patch_cifar10_md5(monkeypatch, root)
        return written
    if name == "svhn":
        written = write_svhn(root, n_train=30, n_test=20)
        patch_svhn_md5(monkeypatch, root)
        return written
    folder = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}[name]
    written = write_mnist_like(root, folder=folder, n_train=40, n_test=20)
    return {split: (x[:, None], y) for split, (x, y) in written.items()}


WRITTEN_BY_TESTS = {"mnist", "fashion_mnist", "cifar10", "svhn"}


def test_every_registered_dataset_has_a_generated_test():
    assert set(VISION_DATASETS) == WRITTEN_BY_TESTS, "add a writer to tests/fake_datasets.py for the new dataset"


@pytest.mark.parametrize("name", sorted(WRITTEN_BY_TESTS))
@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
def test_generated_files_load_as_float_images_and_long_targets(name, train, tmp_path, monkeypatch):
    written = _write(name, tmp_path, monkeypatch)
    assert missing_files(name, tmp_path) == []
    images, targets = load_vision_dataset(name, tmp_path, train=train)
    raw_images, raw_labels = written["train" if train else "test"]
    spec = VISION_DATASETS[name]
    assert images.shape == (len(raw_images), *spec.image_shape) and images.dtype == torch.float32
    assert images.is_contiguous() and 0.0 <= images.min() and images.max() <= 1.0
    assert torch.equal(images, torch.from_numpy(raw_images).float() / 255.0)
    assert targets.dtype == torch.long and targets.tolist() == raw_labels.tolist()
    assert int(targets.max()) < spec.num_classes


def test_missing_files_error_names_the_paths_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_vision_dataset("cifar10", tmp_path, train=True)
    message = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in message
    assert "download=True" in message and "LIGHTNING_GAN_DATA" in message and "data_dir" in message


def test_missing_files_lists_exactly_the_absent_ones(tmp_path):
    write_mnist_like(tmp_path, n_train=10, n_test=10)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    assert missing_files("mnist", tmp_path) == [tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"]
    assert len(missing_files("fashion_mnist", tmp_path)) == 4
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_vision_dataset("mnist", tmp_path, train=True)  # torchvision needs both splits' files


def test_unknown_dataset_lists_the_valid_names(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*cifar10, fashion_mnist, mnist, svhn"):
        load_vision_dataset("imagenet", tmp_path, train=True)
    with pytest.raises(ValueError, match="valid names"):
        missing_files("MNIST", tmp_path)


def test_cifar10_checksums_are_still_checked(tmp_path):
    write_cifar10(tmp_path, n_per_batch=2, n_test=2)  # md5s differ from the real archive's, and are not patched
    with pytest.raises(RuntimeError, match="do not match.*download=True"):
        load_vision_dataset("cifar10", tmp_path, train=False)


def test_download_true_lets_torchvision_fetch_missing_files(tmp_path, monkeypatch):
    calls = []

    def fake_download(self: MNIST) -> None:  # stands in for the network: writes the files torchvision would
        calls.append(self.train)
        write_mnist_like(self.root, n_train=10, n_test=10)

    monkeypatch.setattr(MNIST, "download", fake_download)
    images, targets = load_vision_dataset("mnist", tmp_path, train=False, download=True)
    assert calls == [False] and images.shape == (10, 1, 28, 28) and targets.shape == (10,)


def test_fake_cifar_pickles_read_like_the_real_files_with_either_encoding(tmp_path):
    write_cifar10(tmp_path, n_per_batch=3, n_test=4)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb") as f:
        as_bytes = pickle.load(f, encoding="bytes")
    assert sorted(as_bytes) == [b"batch_label", b"data", b"filenames", b"labels"]
    assert as_bytes[b"data"].dtype == np.uint8 and as_bytes[b"data"].shape == (4, 3072)
    with open(tmp_path / "cifar-10-batches-py" / "batches.meta", "rb") as f:
        meta = pickle.load(f, encoding="latin1")
    assert meta["label_names"][0] == "airplane" and meta["num_vis"] == 3072


def test_svhn_checksums_are_still_checked(tmp_path):
    write_svhn(tmp_path, n_train=10, n_test=10)  # md5s differ from the real files', and are not patched
    with pytest.raises(RuntimeError, match="do not match.*download=True"):
        load_vision_dataset("svhn", tmp_path, train=True)


def test_fake_svhn_mat_files_are_laid_out_like_the_real_ones(tmp_path, monkeypatch):
    from scipy.io import loadmat

    written = write_svhn(tmp_path, n_train=20, n_test=10)
    raw = loadmat(tmp_path / "train_32x32.mat")
    assert raw["X"].shape == (32, 32, 3, 20) and raw["X"].dtype == np.uint8
    assert raw["y"].shape == (20, 1) and set(raw["y"].ravel().tolist()) == set(range(1, 11))  # 10 is digit 0
    patch_svhn_md5(monkeypatch, tmp_path)
    images, targets = load_vision_dataset("svhn", tmp_path, train=True)
    assert torch.equal(targets, torch.from_numpy(written["train"][1]).long()) and int(targets.min()) == 0
    # pixel (row 0, column 1) of image 3, green channel: X[h, w, c, n]
    assert images[3, 1, 0, 1] == float(raw["X"][0, 1, 1, 3]) / 255.0
