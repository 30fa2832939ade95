"""Unsupervised GAN training data: the images of a torchvision dataset, or a seeded fraction of them.

Training on a fraction of the data (data-efficient GANs, quick runs) only means something if the fraction is
reproducible and recorded: the subset is a pure function of the training targets, ``val_seed`` and
``fraction_seed`` (local ``numpy.random.default_rng``, untouched by ``seed_everything``), class-balanced where the
classes allow it, written to the run directory as ``data_subset.json`` and carried in checkpoints.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lightning_gan.datamodules.semi_supervised import UnlabelledImages, collate_gathered, default_data_dir
from lightning_gan.datamodules.splits import as_long_tensor, select_validation, targets_hash
from lightning_gan.datamodules.vision import check_files, download_vision_dataset, get_spec, load_vision_dataset

__all__ = ["DataSubset", "ImageDataModule", "select_fraction"]

SUBSET_FILENAME = "data_subset.json"


def _as_numpy(targets: Tensor | np.ndarray | list[int]) -> np.ndarray:
    return np.asarray(torch.as_tensor(targets, dtype=torch.long))


def select_fraction(
    targets: Tensor | np.ndarray | list[int], size: int, seed: int, exclude: np.ndarray | list[int] | None = None
) -> np.ndarray:
    """Pick ``size`` indices, as class-balanced as the classes allow, from a seeded permutation; sorted.

    Every class contributes its 1st image (in permutation order), then its 2nd, and so on, so class counts differ
    by at most one unless a class runs out (its images are then all taken and the others fill in). The order does
    not depend on ``size``: a smaller subset is contained in a larger one drawn with the same seed.

    Example:
        >>> targets = [0, 0, 0, 0, 1, 2, 2, 2, 2]
        >>> np.bincount(np.asarray(targets)[select_fraction(targets, 7, seed=0)]).tolist()
        [3, 1, 3]
        >>> set(select_fraction(targets, 4, seed=3)) <= set(select_fraction(targets, 8, seed=3))
        True
    """
    y = _as_numpy(targets)
    candidates = np.random.default_rng(seed).permutation(len(y))
    if exclude is not None and len(exclude) > 0:
        candidates = candidates[~np.isin(candidates, np.asarray(exclude))]
    if not 0 <= size <= len(candidates):
        raise ValueError(f"cannot pick {size} images out of {len(candidates)} candidates")
    classes = y[candidates]
    by_class = np.argsort(classes, kind="stable")  # positions grouped by class, permutation order inside
    first_of_class = np.searchsorted(classes[by_class], classes[by_class], side="left")
    rank = np.empty(len(candidates), dtype=np.int64)
    rank[by_class] = np.arange(len(candidates)) - first_of_class  # how many of its class come before it
    order = np.lexsort((np.arange(len(candidates)), rank))  # by rank, ties in permutation order
    return np.sort(candidates[order[:size]])


def _write_atomic(path: Path, text: str) -> Path:
    """Write through a temporary file and a rename, so a crash never leaves half a manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


@dataclass
class DataSubset:
    """The manifest of the training images a run uses: which ones, how they were chosen, from which data.

    Example:
        >>> subset = DataSubset.create("toy", [0, 1, 0, 1], indices=[0, 1], fraction=0.5, fraction_seed=2, val_seed=0)
        >>> subset.per_class_counts
        {'0': 1, '1': 1}
        >>> DataSubset.from_json(subset.to_json()) == subset
        True
    """

    dataset: str
    fraction: float
    fraction_seed: int
    val_seed: int
    num_train_images: int
    indices: list[int]
    validation_indices: list[int]
    per_class_counts: dict[str, int]
    targets_sha256: str

    @classmethod
    def create(
        cls,
        dataset: str,
        targets: Tensor | np.ndarray | list[int],
        indices: np.ndarray | list[int],
        fraction: float,
        fraction_seed: int,
        val_seed: int,
        validation_indices: np.ndarray | list[int] = (),
        num_classes: int | None = None,
    ) -> DataSubset:
        """Build the manifest of ``indices`` into ``targets``."""
        y = _as_numpy(targets)
        idx = [int(i) for i in indices]
        counts = np.bincount(y[idx], minlength=int(num_classes or y.max() + 1))
        return cls(
            dataset=dataset,
            fraction=float(fraction),
            fraction_seed=int(fraction_seed),
            val_seed=int(val_seed),
            num_train_images=len(y),
            indices=idx,
            validation_indices=[int(i) for i in validation_indices],
            per_class_counts={str(c): int(n) for c, n in enumerate(counts)},
            targets_sha256=targets_hash(y),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> DataSubset:
        return cls(**json.loads(text))

    def save(self, path: str | Path) -> Path:
        """Write the manifest atomically (temporary file, then rename)."""
        return _write_atomic(Path(path), json.dumps(asdict(self), indent=1))

    def check(self, targets: Tensor | np.ndarray | list[int], source: str) -> None:
        """Raise if this subset was drawn from other data, or is not a valid subset of ``targets``."""
        if targets_hash(targets) != self.targets_sha256:
            raise ValueError(
                f"the data subset from {source} was drawn from dataset {self.dataset!r} with targets hash "
                f"{self.targets_sha256[:12]}..., which does not match the training targets here "
                f"({targets_hash(targets)[:12]}...): the data changed. Point data_dir at the data of that run, "
                "or start a new run instead of resuming"
            )
        n, kept, held_out = len(targets), set(self.indices), set(self.validation_indices)
        if len(kept) != len(self.indices) or len(held_out) != len(self.validation_indices):
            raise ValueError(f"the data subset from {source} lists an index twice")
        every = [*self.indices, *self.validation_indices]
        if every and not 0 <= min(every) <= max(every) < n:
            raise ValueError(f"the data subset from {source} has indices outside the {n} training images")
        if kept & held_out:
            raise ValueError(f"the data subset from {source} trains on {len(kept & held_out)} validation images")


class ImageDataModule(LightningDataModule):
    """Images of a torchvision dataset for unsupervised GAN training; a batch is a bare ``[B, C, H, W]`` tensor.

    ``val_size`` training images are held out (seeded by ``val_seed``); of the rest, ``round(fraction * rest)``
    are kept for training, class-balanced where the classes allow it, chosen by ``fraction_seed`` alone. The kept
    subset is written to ``<log_dir>/data_subset.json`` and stored in checkpoints, so a resumed run trains on the
    same images. Pixels are scaled linearly from [0, 1] to ``value_range`` (``(-1, 1)`` for a tanh generator).

    Args:
        dataset: ``mnist``, ``fashion_mnist`` or ``cifar10`` (a key of ``VISION_DATASETS``).
        data_dir: folder holding the files in torchvision's layout (default ``$LIGHTNING_GAN_DATA``, else
            ``./data``).
        download: download missing files with torchvision in ``prepare_data``; otherwise missing files are an error.
        fraction: share of the non-validation training images to train on, in (0, 1].
        fraction_seed: the only seed the kept subset depends on (given the validation set).
        batch_size: images per batch; the last incomplete training batch is dropped.
        val_size: training images held out for validation (0: no validation set).
        val_seed: seed of the validation hold-out.
        value_range: ``(low, high)`` the pixels are scaled to.
        num_workers: DataLoader workers (0 is fastest for in-memory tensors).

    Example:
        >>> import os
        >>> dm = ImageDataModule("mnist", fraction=0.1, val_size=5000, value_range=(-1.0, 1.0))
        >>> dm.dataset_name, dm.num_classes, dm.image_shape, dm.value_range
        ('mnist', 10, (1, 28, 28), (-1.0, 1.0))
        >>> if os.path.isfile(os.path.join(dm.data_dir, "MNIST", "raw", "train-images-idx3-ubyte")):
        ...     dm.setup("fit")
        ...     assert dm.train_indices.numel() == 5500 and next(iter(dm.train_dataloader())).shape == (64, 1, 28, 28)
    """

    def __init__(
        self,
        dataset: str = "mnist",
        data_dir: str | None = None,
        download: bool = False,
        fraction: float = 1.0,
        fraction_seed: int = 0,
        batch_size: int = 64,
        val_size: int = 5000,
        val_seed: int = 0,
        value_range: tuple[float, float] = (-1.0, 1.0),
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        spec = get_spec(dataset)
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if val_size < 0:
            raise ValueError(f"val_size must be >= 0, got {val_size}")
        low, high = (float(v) for v in value_range)
        if not low < high:
            raise ValueError(f"value_range must be (low, high) with low < high, got {tuple(value_range)}")
        self.dataset_name = dataset
        self.num_classes = spec.num_classes
        self.image_shape = spec.image_shape
        self.value_range = (low, high)
        self.data_dir = str(data_dir if data_dir is not None else default_data_dir())
        self.download = download
        self.fraction = float(fraction)
        self.fraction_seed = fraction_seed
        self.batch_size = batch_size
        self.val_size = val_size
        self.val_seed = val_seed
        self.num_workers = num_workers
        self.subset: DataSubset | None = None
        self._restored: DataSubset | None = None  # from a checkpoint read before setup
        self._train: tuple[Tensor, Tensor] | None = None
        self._test: Tensor | None = None

    # ----- reading -------------------------------------------------------------------------------------------
    def _load(self, train: bool) -> tuple[Tensor, Tensor]:
        images, targets = load_vision_dataset(self.dataset_name, self.data_dir, train=train, download=False)
        low, high = self.value_range
        if (low, high) != (0.0, 1.0):
            images.mul_(high - low).add_(low)
        return images, targets

    def _ensure_train(self) -> tuple[Tensor, Tensor]:
        """Read the training split and draw (or restore) the subset, once."""
        if self._train is None:
            self._train = self._load(train=True)
        if self._restored is not None:
            self.subset, self._restored = self._checked(self._restored, "the checkpoint"), None
        if self.subset is None:
            self.subset = self._draw_subset(self._train[1])
        return self._train

    def _ensure_test(self) -> Tensor:
        if self._test is None:
            self._test = self._load(train=False)[0]
        return self._test

    def _draw_subset(self, targets: Tensor) -> DataSubset:
        validation = select_validation(len(targets), self.val_size, self.val_seed)
        size = round(self.fraction * (len(targets) - len(validation)))
        kept = select_fraction(targets, size, self.fraction_seed, exclude=validation)
        return DataSubset.create(
            self.dataset_name,
            targets,
            kept,
            self.fraction,
            self.fraction_seed,
            self.val_seed,
            validation,
            num_classes=self.num_classes,
        )

    def _checked(self, subset: DataSubset, source: str) -> DataSubset:
        assert self._train is not None
        subset.check(self._train[1], source)
        configured = (self.dataset_name, self.fraction, self.fraction_seed, self.val_seed)
        if (subset.dataset, subset.fraction, subset.fraction_seed, subset.val_seed) != configured:
            warnings.warn(
                f"using the data subset from {source} (dataset {subset.dataset!r}, fraction {subset.fraction}, "
                f"fraction_seed {subset.fraction_seed}, val_seed {subset.val_seed}) instead of the configured "
                f"dataset={self.dataset_name!r}, fraction={self.fraction}, fraction_seed={self.fraction_seed}, "
                f"val_seed={self.val_seed}",
                stacklevel=3,
            )
        return subset

    # ----- the subset ----------------------------------------------------------------------------------------
    @property
    def train_indices(self) -> Tensor:
        """Sorted indices into the training split of the images trained on; available after ``setup("fit")``."""
        return as_long_tensor(self._require_subset().indices)

    @property
    def validation_indices(self) -> Tensor:
        """Sorted indices into the training split of the held-out validation images."""
        return as_long_tensor(self._require_subset().validation_indices)

    def _require_subset(self) -> DataSubset:
        if self.subset is None:
            raise RuntimeError(f"{type(self).__name__}: call setup('fit') before using the data subset")
        return self.subset

    def _require_train(self) -> tuple[Tensor, Tensor]:
        if self._train is None:
            raise RuntimeError(f"{type(self).__name__}: call setup('fit') before using the training data")
        return self._train

    def save_subset(self, directory: str | Path) -> Path:
        """Write ``data_subset.json`` into ``directory`` and return its path."""
        return self._require_subset().save(Path(directory) / SUBSET_FILENAME)

    def _save_to_run_dir(self) -> None:
        """Write the manifest into the logger's folder on rank 0 (``log_dir`` is read on every rank: it broadcasts)."""
        trainer = self.trainer
        if trainer is None or not trainer.loggers:
            return
        log_dir = trainer.log_dir
        if trainer.is_global_zero and log_dir:
            self.save_subset(log_dir)

    def real_images(self, n: int | None = None, split: str = "train") -> Tensor:
        """The first ``n`` (default all) real images of ``split`` in ``value_range``, e.g. for FID or IS.

        ``split`` is ``"train"`` (the kept subset, in index order), ``"val"`` (the held-out images) or ``"test"``;
        the data is read on first use if ``setup`` has not read it yet.
        """
        if split == "test":
            return self._ensure_test()[:n].clone()
        images, _ = self._ensure_train()
        chosen = {"train": self.train_indices, "val": self.validation_indices}
        if split not in chosen:
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        return images[chosen[split][:n]]

    # ----- LightningDataModule hooks -------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Download the files if asked to; otherwise only check that they are there (no state: rank 0 only)."""
        if self.download:
            download_vision_dataset(self.dataset_name, self.data_dir)
        check_files(self.dataset_name, self.data_dir)

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", "validate", None):
            self._ensure_train()
            if stage == "fit":
                self._save_to_run_dir()
        if stage in ("test", "predict", None):
            self._ensure_test()

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train,
            collate_fn=collate_gathered,  # UnlabelledImages gathers whole batches
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        images, _ = self._require_train()
        indices = self.train_indices
        if len(indices) < self.batch_size:
            raise ValueError(
                f"the training subset has {len(indices)} images ({self.dataset_name}, fraction={self.fraction}, "
                f"val_size={self.val_size}), fewer than one batch of {self.batch_size}, and the last incomplete "
                "batch is dropped; raise fraction, lower batch_size or lower val_size"
            )
        return self._loader(UnlabelledImages(images, indices), train=True)

    def val_dataloader(self) -> DataLoader | list:
        images, _ = self._require_train()
        if len(self.validation_indices) == 0:
            return []
        return self._loader(UnlabelledImages(images, self.validation_indices), train=False)

    def test_dataloader(self) -> DataLoader:
        if self._test is None:
            raise RuntimeError(f"{type(self).__name__}: call setup('test') before test_dataloader()")
        return self._loader(UnlabelledImages(self._test, torch.arange(len(self._test))), train=False)

    def predict_dataloader(self) -> DataLoader:
        """The test images, read only when ``predict`` is asked for, like ``test``."""
        return self.test_dataloader()

    def state_dict(self) -> dict[str, Any]:
        """The subset travels with the checkpoint, so a resumed run trains on the same images."""
        return {"data_subset": self.subset.to_json()} if self.subset is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume with the checkpoint's subset (checked against the data) and rewrite the run's manifest."""
        if "data_subset" not in state_dict:
            return
        saved = DataSubset.from_json(state_dict["data_subset"])
        if self._train is None:  # restored before setup: checked when the data is read
            self._restored, self.subset = saved, None
            return
        self.subset = self._checked(saved, "the checkpoint")
        self._save_to_run_dir()
