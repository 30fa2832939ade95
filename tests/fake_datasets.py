"""Tiny datasets written in the exact on-disk formats torchvision reads, so the real reading code runs in tests.

- ``write_mnist_like``: the four idx files of MNIST / FashionMNIST (big-endian header, uint8 payload).
- ``write_cifar10``: ``cifar-10-batches-py/`` as the real archive unpacks it: Python 2 protocol-2 pickles whose
  strings are Python 2 ``str`` (``pickle.load(f, encoding="latin1")`` gives str keys, as torchvision reads them;
  ``encoding="bytes"`` gives ``b"data"``, ``b"labels"``, ..., as the CIFAR page's recipe reads them).
- ``patch_cifar10_md5``: torchvision checks the md5 of every CIFAR-10 file against the real archive's; tests point
  those checksums at the generated files so the check itself still runs.
- ``write_svhn``: ``train_32x32.mat`` / ``test_32x32.mat`` as the Stanford site serves them: MATLAB files with ``X``
  uint8 ``[32, 32, 3, N]`` (height, width, channel, image) and ``y`` uint8 ``[N, 1]`` in 1..10, where 10 is digit 0;
  ``patch_svhn_md5`` points torchvision's checksums at them.

Every image carries a class-dependent bright band (row band ``c`` of 10, in colour channel ``c % 3`` for CIFAR),
so the classes are distinguishable, on top of seeded noise.
"""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from torchvision.datasets import CIFAR10, SVHN

__all__ = [
    "CIFAR10_FILES",
    "MNIST_FILES",
    "patch_cifar10_md5",
    "patch_svhn_md5",
    "write_cifar10",
    "write_mnist_like",
    "write_svhn",
]

MNIST_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_FILES = (*CIFAR10_TRAIN_BATCHES, "test_batch", "batches.meta")
CIFAR10_LABEL_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def _balanced_labels(n: int, rng: np.random.Generator, num_classes: int = 10) -> np.ndarray:
    return rng.permutation(np.arange(n) % num_classes).astype(np.uint8)


def _banded_images(labels: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """uint8 images ``[n, C, H, W]``: noise in [0, 64) plus a bright band whose height (and channel) is the class."""
    n, (c, h, w) = len(labels), shape
    images = rng.integers(0, 64, size=(n, c, h, w), dtype=np.uint8)
    band = h // 10
    for cls in range(10):
        rows = slice(cls * band, (cls + 1) * band)
        of_class = labels == cls
        images[of_class, cls % c, rows, :] = rng.integers(192, 256, size=(int(of_class.sum()), band, w), dtype=np.uint8)
    return images


# ----- MNIST / FashionMNIST -------------------------------------------------------------------------------------------
def _write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    """An idx file: big-endian magic (0x08 = uint8, then the number of dims), big-endian dims, raw bytes."""
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist_like(
    root: str | Path, folder: str = "MNIST", n_train: int = 200, n_test: int = 50, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write ``<root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` in the real MNIST format.

    Returns:
        ``{"train": (images uint8 [n, 28, 28], labels uint8 [n]), "test": (...)}``: exactly the bytes written.
    """
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for train, n in ((True, n_train), (False, n_test)):
        labels = _balanced_labels(n, rng)
        images = _banded_images(labels, (1, 28, 28), rng)[:, 0]
        image_file, label_file = MNIST_FILES[train]
        _write_idx(raw / image_file, 2051, images)
        _write_idx(raw / label_file, 2049, labels)
        written["train" if train else "test"] = (images, labels)
    return written


# ----- CIFAR-10 -------------------------------------------------------------------------------------------------------
class _Python2Pickler(pickle._Pickler):
    """Protocol-2 pickler that writes ``bytes`` as Python 2 ``str`` (BINSTRING), as the real CIFAR files hold them.

    Python 3 would write ``bytes`` as a ``_codecs.encode`` call, which loads back as ``bytes`` whatever the
    ``encoding`` argument; a Python 2 ``str`` is decoded with it, which is what torchvision relies on.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_python2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_python2_str


def _write_python2_pickle(path: Path, obj: Any) -> None:
    with open(path, "wb") as f:
        _Python2Pickler(f, protocol=2).dump(obj)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_cifar10(root: str | Path, n_per_batch: int = 20, n_test: int = 20, seed: int = 0) -> dict[str, Any]:
    """Write ``<root>/cifar-10-batches-py/`` (five training batches, ``test_batch``, ``batches.meta``).

    Each batch is ``{b"batch_label", b"labels" (list of int), b"data" (uint8 [n, 3072], each row the red, then
    green, then blue 32x32 plane, row-major), b"filenames"}``; the meta file is ``{b"num_cases_per_batch",
    b"label_names", b"num_vis"}``.

    Returns:
        ``{"md5": {file name: md5}, "train": (images uint8 [5 * n_per_batch, 3, 32, 32], labels),
        "test": (images, labels)}``: the bytes written, training batches concatenated in order.
    """
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = [(name, f"training batch {i} of 5", n_per_batch) for i, name in enumerate(CIFAR10_TRAIN_BATCHES, 1)]
    batches.append(("test_batch", "testing batch 1 of 1", n_test))
    arrays: dict[str, list[np.ndarray]] = {"train_x": [], "train_y": [], "test_x": [], "test_y": []}
    for name, batch_label, n in batches:
        labels = _balanced_labels(n, rng)
        images = _banded_images(labels, (3, 32, 32), rng)
        entry = {
            b"batch_label": batch_label.encode(),
            b"labels": [int(y) for y in labels],
            b"data": images.reshape(n, 3072),
            b"filenames": [f"{CIFAR10_LABEL_NAMES[y]}_s_{i:06d}.png".encode() for i, y in enumerate(labels)],
        }
        _write_python2_pickle(folder / name, entry)
        split = "test" if name == "test_batch" else "train"
        arrays[f"{split}_x"].append(images)
        arrays[f"{split}_y"].append(labels)
    meta = {
        b"num_cases_per_batch": n_per_batch,
        b"label_names": [s.encode() for s in CIFAR10_LABEL_NAMES],
        b"num_vis": 3072,
    }
    _write_python2_pickle(folder / "batches.meta", meta)
    return {
        "md5": {name: _md5(folder / name) for name in CIFAR10_FILES},
        "train": (np.concatenate(arrays["train_x"]), np.concatenate(arrays["train_y"])),
        "test": (np.concatenate(arrays["test_x"]), np.concatenate(arrays["test_y"])),
    }


def patch_cifar10_md5(monkeypatch: pytest.MonkeyPatch, root: str | Path) -> dict[str, str]:
    """Make torchvision's CIFAR10 expect the md5s of the files under ``root`` (undone when the test ends)."""
    folder = Path(root) / "cifar-10-batches-py"
    md5 = {name: _md5(folder / name) for name in CIFAR10_FILES}
    monkeypatch.setattr(CIFAR10, "train_list", [[name, md5[name]] for name in CIFAR10_TRAIN_BATCHES])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5["batches.meta"]})
    return md5


def write_svhn(root: str | Path, n_train: int = 40, n_test: int = 20, seed: int = 0) -> dict[str, Any]:
    """Write ``<root>/train_32x32.mat`` and ``<root>/test_32x32.mat`` (MATLAB 5 format, as scipy and the site do).

    Returns:
        ``{"train": (images uint8 [n, 3, 32, 32], digit labels 0..9), "test": (...)}``: what torchvision must read.
    """
    from scipy.io import savemat  # torchvision's SVHN reads the files with scipy.io.loadmat

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        digits = _balanced_labels(n, rng)
        images = _banded_images(digits, (3, 32, 32), rng)  # [n, C, H, W]
        stored = np.where(digits == 0, 10, digits).astype(np.uint8)[:, None]  # [n, 1], digit 0 stored as 10
        savemat(root / f"{split}_32x32.mat", {"X": images.transpose(2, 3, 1, 0), "y": stored})  # X: [H, W, C, n]
        written[split] = (images, digits)
    return written


def patch_svhn_md5(monkeypatch: pytest.MonkeyPatch, root: str | Path) -> dict[str, str]:
    """Make torchvision's SVHN expect the md5s of the files under ``root`` (undone when the test ends)."""
    md5 = {split: _md5(Path(root) / f"{split}_32x32.mat") for split in ("train", "test")}
    patched = {k: [url, name, md5[k]] if k in md5 else [url, name, h] for k, (url, name, h) in SVHN.split_list.items()}
    monkeypatch.setattr(SVHN, "split_list", patched)
    return md5
