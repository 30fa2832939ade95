"""The labelled-subset mechanism shared by every semi-supervised data module.

From a classification training set it builds

- a validation set (``val_size`` images of the training set, seeded by ``val_seed``),
- a class-balanced labelled subset of ``num_labelled`` images chosen only from ``label_seed``
  (:func:`~lightning_gan.datamodules.splits.select_labelled`), never overlapping validation,
- the unlabelled pool: every training image outside the validation set, labelled ones included as
  in openai/improved-gan. Unlabelled batches are bare image tensors, with no labels at all.

One training epoch is one pass over the unlabelled pool; the labelled set is cycled alongside it
by Lightning's ``CombinedLoader(mode="max_size_cycle")``. The pool is read twice per iteration, by two
independently shuffled loaders: the reference feeds the generator's feature-matching step a second
unlabelled batch. Images are held in memory as float tensors (MNIST: 188 MB), so loading is indexing.
"""

from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import CombinedLoader
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lightning_gan.datamodules.splits import LabelSplit, as_long_tensor, select_labelled, select_validation

__all__ = [
    "InMemorySemiSupervised",
    "LabelledImages",
    "SemiSupervisedDataModule",
    "UnlabelledImages",
    "default_data_dir",
]

LABEL_SPLIT_FILENAME = "label_split.json"


def default_data_dir() -> str:
    """``$LIGHTNING_GAN_DATA`` if set, else ``./data``."""
    return os.environ.get("LIGHTNING_GAN_DATA") or "./data"


class LabelledImages(Dataset):
    """``(image, label)`` pairs of ``images[indices]``."""

    def __init__(self, images: Tensor, targets: Tensor, indices: Tensor) -> None:
        self.images, self.targets, self.indices = images, targets, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        j = self.indices[i]
        return self.images[j], self.targets[j]


class UnlabelledImages(Dataset):
    """Bare images of ``images[indices]``: an unlabelled batch has no labels to leak."""

    def __init__(self, images: Tensor, indices: Tensor) -> None:
        self.images, self.indices = images, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Tensor:
        return self.images[self.indices[i]]


class SemiSupervisedDataModule(LightningDataModule, ABC):
    """Base class: subclasses say how to read the train and test images (:meth:`load_images`).

    Args:
        num_labelled: number of labelled training images, a multiple of the class count.
        label_seed: the only seed the labelled subset depends on.
        batch_size: images per batch, for labelled, unlabelled and evaluation batches alike
            (a labelled set smaller than a batch is one batch of all of it).
        val_size: training images held out for validation (0: no validation set).
        val_seed: seed of the validation hold-out.
        label_split: path of a saved ``label_split.json`` to reuse instead of drawing a new split.
        num_workers: DataLoader workers (0 is fastest for in-memory tensors).
        init_size: images returned by :meth:`init_batch` for data-dependent initialisation.
    """

    dataset_name: str = "dataset"
    num_classes: int = 10
    image_shape: tuple[int, int, int] = (1, 28, 28)
    value_range: tuple[float, float] = (0.0, 1.0)  # pixel values of the images load_images returns

    def __init__(
        self,
        num_labelled: int = 100,
        label_seed: int = 1,
        batch_size: int = 100,
        val_size: int = 5000,
        val_seed: int = 0,
        label_split: str | None = None,
        num_workers: int = 0,
        init_size: int = 500,  # reference: init_param(trainx[:500])
    ) -> None:
        super().__init__()
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if val_size < 0:
            raise ValueError(f"val_size must be >= 0, got {val_size}")
        self.num_labelled = num_labelled
        self.label_seed = label_seed
        self.batch_size = batch_size
        self.val_size = val_size
        self.val_seed = val_seed
        self.label_split_path = label_split
        self.num_workers = num_workers
        self.init_size = init_size
        self.split: LabelSplit | None = None
        self._train: tuple[Tensor, Tensor] | None = None
        self._test: tuple[Tensor, Tensor] | None = None

    # ----- what subclasses provide -------------------------------------------------------------
    @abstractmethod
    def load_images(self, train: bool) -> tuple[Tensor, Tensor]:
        """Return ``(images [N, C, H, W] float, targets [N] long)`` of the train or test split."""

    # ----- the split -----------------------------------------------------------------------------
    @property
    def labelled_indices(self) -> Tensor:
        """Indices into the training set of the labelled images (sorted); available after ``setup("fit")``."""
        return as_long_tensor(self._require_split().labelled_indices)

    @property
    def validation_indices(self) -> Tensor:
        """Indices into the training set of the validation images (sorted)."""
        return as_long_tensor(self._require_split().validation_indices)

    @property
    def unlabelled_indices(self) -> Tensor:
        """Indices of the unlabelled pool: every training image outside the validation set."""
        images, _ = self._require_train()
        keep = torch.ones(len(images), dtype=torch.bool)
        keep[self.validation_indices] = False
        return keep.nonzero().squeeze(1)

    def _require_split(self) -> LabelSplit:
        if self.split is None:
            raise RuntimeError(f"{type(self).__name__}: call setup('fit') before using the label split")
        return self.split

    def _require_train(self) -> tuple[Tensor, Tensor]:
        if self._train is None:
            raise RuntimeError(f"{type(self).__name__}: call setup('fit') before using the training data")
        return self._train

    def _make_split(self, targets: Tensor) -> LabelSplit:
        if self.label_split_path is not None:
            return self._checked(LabelSplit.load(self.label_split_path), targets, source=str(self.label_split_path))
        if self.num_labelled > len(targets) - self.val_size:
            raise ValueError(
                f"num_labelled={self.num_labelled} is larger than the {len(targets) - self.val_size} training images "
                f"outside the validation set; lower num_labelled or val_size"
            )
        labelled = select_labelled(targets, self.num_labelled, self.label_seed, num_classes=self.num_classes)
        validation = select_validation(len(targets), self.val_size, self.val_seed, exclude=labelled)
        return LabelSplit.create(self.dataset_name, targets, labelled, self.label_seed, validation)

    def _checked(self, split: LabelSplit, targets: Tensor, source: str) -> LabelSplit:
        """Validate a split that comes from a file or a checkpoint against these training targets."""
        split.check_targets(targets)
        labelled, validation = set(split.labelled_indices), set(split.validation_indices)
        indices = [*split.labelled_indices, *split.validation_indices]
        if len(labelled) != len(split.labelled_indices) or len(validation) != len(split.validation_indices):
            raise ValueError(f"the label split from {source} lists an index twice")
        if indices and not 0 <= min(indices) <= max(indices) < len(targets):
            raise ValueError(f"the label split from {source} has indices outside the {len(targets)} training images")
        if labelled & validation:
            raise ValueError(
                f"the label split from {source} puts {len(labelled & validation)} labelled images in validation"
            )
        if (split.num_labelled, split.seed) != (self.num_labelled, self.label_seed):
            warnings.warn(
                f"using the label split from {source} ({split.num_labelled} labels, seed {split.seed}) instead of the "
                f"configured num_labelled={self.num_labelled}, label_seed={self.label_seed}",
                stacklevel=3,
            )
        return split

    def save_label_split(self, directory: str | Path) -> Path:
        """Write ``label_split.json`` into ``directory`` and return its path."""
        return self._require_split().save(Path(directory) / LABEL_SPLIT_FILENAME)

    def _save_to_run_dir(self) -> None:
        """Write the split into the run directory (the logger's folder), on rank 0, when there is a logger."""
        trainer = self.trainer
        if trainer is not None and trainer.loggers and trainer.is_global_zero and trainer.log_dir:
            self.save_label_split(trainer.log_dir)

    # ----- LightningDataModule hooks ----------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", "validate", None) and self._train is None:
            self._train = self.load_images(train=True)
            self.split = self._make_split(self._train[1])
            if stage == "fit":
                self._save_to_run_dir()
        if stage in ("test", "predict", None) and self._test is None:
            self._test = self.load_images(train=False)

    def real_images(self, n: int | None = None, split: str = "test") -> Tensor:
        """The first ``n`` images (all when ``None``) of the ``"train"`` unlabelled pool, ``"val"`` or ``"test"`` set.

        For metric callbacks that compare generated images with real ones; loads the split if needed.
        """
        if split == "test":
            if self._test is None:
                self.setup("test")
            images = self._test[0]
        elif split in ("train", "val"):
            if self._train is None:
                self.setup("fit")
            indices = self.unlabelled_indices if split == "train" else self.validation_indices
            images = self._train[0][indices[:n] if n is not None else indices]
        else:
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        return images[:n] if n is not None else images

    def init_batch(self, size: int | None = None) -> Tensor:
        """Random images of the unlabelled pool (global RNG) for data-dependent initialisation."""
        images, _ = self._require_train()
        pool = self.unlabelled_indices
        return images[pool[torch.randperm(len(pool))[: size or self.init_size]]]

    def _loader(self, dataset: Dataset, batch_size: int, train: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train,
            drop_last=train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> CombinedLoader:
        images, targets = self._require_train()
        labelled = LabelledImages(images, targets, self.labelled_indices)
        pool = UnlabelledImages(images, self.unlabelled_indices)
        loaders = {
            "labelled": self._loader(labelled, min(self.batch_size, len(labelled)), train=True),
            "unlabelled": self._loader(pool, self.batch_size, train=True),
            "unlabelled_g": self._loader(pool, self.batch_size, train=True),  # second batch for the G step
        }
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self) -> DataLoader | list:
        images, targets = self._require_train()
        if self.val_size == 0:
            return []
        return self._loader(LabelledImages(images, targets, self.validation_indices), self.batch_size, train=False)

    def test_dataloader(self) -> DataLoader:
        if self._test is None:
            raise RuntimeError(f"{type(self).__name__}: call setup('test') before test_dataloader()")
        images, targets = self._test
        return self._loader(LabelledImages(images, targets, torch.arange(len(images))), self.batch_size, train=False)

    def predict_dataloader(self) -> DataLoader:
        """The test images with their labels, read only when ``predict`` is asked for, like ``test``."""
        return self.test_dataloader()

    def state_dict(self) -> dict[str, Any]:
        """The label split travels with the checkpoint, so a resumed run trains on the same labels."""
        return {"label_split": self.split.to_json()} if self.split is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume with the checkpoint's split (checked against the data), and rewrite the run's split file."""
        if "label_split" not in state_dict:
            return
        saved = LabelSplit.from_json(state_dict["label_split"])
        if self._train is not None:
            saved = self._checked(saved, self._train[1], source="the checkpoint")
        self.split = saved
        self._save_to_run_dir()


class InMemorySemiSupervised(SemiSupervisedDataModule):
    """A semi-supervised data module over tensors you already have (synthetic data, notebooks, tests).

    Args:
        train_images: ``[N, C, H, W]`` float images.
        train_targets: ``[N]`` integer class labels.
        test_images: ``[M, C, H, W]`` test images (defaults to none: ``test`` is then unavailable).
        test_targets: ``[M]`` test labels.
        num_classes: number of classes (default: ``max(train_targets) + 1``).
        name: dataset name written into the label manifest.
        **kwargs: the arguments of :class:`SemiSupervisedDataModule`.

    Example:
        >>> x, y = torch.rand(60, 1, 28, 28), torch.arange(60) % 3
        >>> dm = InMemorySemiSupervised(x, y, num_labelled=6, val_size=9, batch_size=10)
        >>> dm.setup("fit")
        >>> dm.labelled_indices.numel(), dm.validation_indices.numel(), dm.unlabelled_indices.numel()
        (6, 9, 51)
        >>> batch, _, _ = next(iter(dm.train_dataloader()))
        >>> sorted(batch), batch["unlabelled"].shape
        (['labelled', 'unlabelled', 'unlabelled_g'], torch.Size([10, 1, 28, 28]))
    """

    def __init__(
        self,
        train_images: Tensor,
        train_targets: Tensor,
        test_images: Tensor | None = None,
        test_targets: Tensor | None = None,
        num_classes: int | None = None,
        name: str = "in_memory",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if train_images.dim() != 4 or len(train_images) != len(train_targets):
            raise ValueError(
                f"train_images must be [N, C, H, W] with one target each; got images {list(train_images.shape)} "
                f"and {len(train_targets)} targets"
            )
        self.dataset_name = name
        self.num_classes = int(num_classes if num_classes is not None else int(train_targets.max()) + 1)
        self.image_shape = tuple(train_images.shape[1:])
        self._tensors = {True: (train_images.float(), train_targets.long())}
        if test_images is not None and test_targets is not None:
            self._tensors[False] = (test_images.float(), test_targets.long())

    def load_images(self, train: bool) -> tuple[Tensor, Tensor]:
        if train not in self._tensors:
            raise ValueError("InMemorySemiSupervised was given no test_images/test_targets; pass them to run test")
        return self._tensors[train]
