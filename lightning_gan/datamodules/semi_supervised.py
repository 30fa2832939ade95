"""The labelled-subset mechanism shared by every semi-supervised data module.

:class:`SemiSupervisedDataModule` takes any torchvision classification dataset of
:data:`~lightning_gan.datamodules.vision.VISION_DATASETS` by name (``SemiSupervisedMNIST``, ``SemiSupervisedCIFAR10``,
... are thin configurations of it). From its training set it builds

- a validation set (``val_size`` images of the training set, seeded by ``val_seed``),
- a class-balanced labelled subset of ``num_labelled`` images chosen only from ``label_seed``
  (:func:`~lightning_gan.datamodules.splits.select_labelled`), never overlapping validation,
- the unlabelled pool: every training image outside the validation set, labelled ones included as
  in openai/improved-gan. Unlabelled batches are bare image tensors, with no labels at all.

One training epoch is one pass over the unlabelled pool; the labelled set is cycled alongside it
by Lightning's ``CombinedLoader(mode="max_size_cycle")``. The pool is read twice per iteration, by two
independently shuffled loaders: the reference feeds the generator's feature-matching step a second
unlabelled batch. Images are held in memory as float tensors (MNIST: 188 MB), so loading is indexing.

Under DDP every rank derives the same split from the same seeds (no communication), and the three training loaders
are sharded with their own ``DistributedSampler``s, seeded differently so that the two unlabelled loaders do not
walk the pool in the same order; ``batch_size`` is per process, as everywhere in Lightning.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import CombinedLoader
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lightning_gan.datamodules.splits import LabelSplit, as_long_tensor, select_labelled, select_validation
from lightning_gan.datamodules.vision import check_files, download_vision_dataset, get_spec, load_vision_dataset

__all__ = [
    "InMemorySemiSupervised",
    "LabelledImages",
    "ReshufflingDistributedSampler",
    "SemiSupervisedDataModule",
    "UnlabelledImages",
    "collate_for",
    "collate_gathered",
    "default_data_dir",
]

LABEL_SPLIT_FILENAME = "label_split.json"
DEFAULT_VALUE_RANGE = {  # the pixel scaling of openai/improved-gan for each benchmark
    "mnist": (0.0, 1.0),  # x / 255, sigmoid generator
    "fashion_mnist": (0.0, 1.0),
    "cifar10": (-1.0, 1.0),  # the reference: (x - 127.5) / 128; here x / 127.5 - 1, the tanh generator's range
    "svhn": (-1.0, 1.0),
}


def default_data_dir() -> str:
    """``$LIGHTNING_GAN_DATA`` if set, else ``./data``."""
    return os.environ.get("LIGHTNING_GAN_DATA") or "./data"


def collate_gathered(batch: Any) -> Any:
    """``collate_fn`` for the datasets here, whose ``__getitems__`` already returns the whole batch.

    The DataLoader hands ``__getitems__`` the batch's indices and passes its result to ``collate_fn``. One gather
    (``images[indices]``) replaces a ``__getitem__`` call per image and ``default_collate``'s ``torch.stack``: the
    same batch, in a third of the time (``benchmarks/ssl_throughput.py``).
    """
    return batch


class LabelledImages(Dataset):
    """``(image, label)`` pairs of ``images[indices]``; use with ``collate_fn=collate_gathered``.

    Example:
        >>> ds = LabelledImages(torch.zeros(5, 1, 2, 2), torch.arange(5), torch.tensor([4, 2]))
        >>> images, labels = collate_gathered(ds.__getitems__([1, 0]))  # what a DataLoader batch of 2 does
        >>> images.shape, labels.tolist()
        (torch.Size([2, 1, 2, 2]), [2, 4])
    """

    def __init__(self, images: Tensor, targets: Tensor, indices: Tensor) -> None:
        self.images, self.targets, self.indices = images, targets, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        j = self.indices[i]
        return self.images[j], self.targets[j]

    def __getitems__(self, batch: list[int]) -> list[Tensor]:
        """The batch as ``default_collate`` would build it (``[images, labels]``), with one gather each."""
        j = self.indices[torch.as_tensor(batch, dtype=torch.long)]
        return [self.images[j], self.targets[j]]  # [B, C, H, W], [B]


class UnlabelledImages(Dataset):
    """Bare images of ``images[indices]``: an unlabelled batch has no labels to leak."""

    def __init__(self, images: Tensor, indices: Tensor) -> None:
        self.images, self.indices = images, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Tensor:
        return self.images[self.indices[i]]

    def __getitems__(self, batch: list[int]) -> Tensor:
        """The batch with one gather; use with ``collate_fn=collate_gathered``."""
        return self.images[self.indices[torch.as_tensor(batch, dtype=torch.long)]]  # [B, C, H, W]


def collate_for(dataset: Dataset) -> Any:
    """:func:`collate_gathered` for the datasets here, ``None`` (the DataLoader's ``default_collate``) for others."""
    return collate_gathered if isinstance(dataset, (LabelledImages, UnlabelledImages)) else None


class ReshufflingDistributedSampler(DistributedSampler):
    """A ``DistributedSampler`` that draws a new permutation each time it is iterated, not only each epoch.

    Hand-written because torch's sampler repeats one permutation per epoch, and the small labelled set is cycled
    many times within an epoch (``max_size_cycle``): with it every cycle would show each rank the same batches in
    the same order. Ranks iterate in lockstep, so they agree on the pass count, and their shards stay disjoint.

    Example:
        >>> a, b = (ReshufflingDistributedSampler(range(6), num_replicas=2, rank=r, seed=0) for r in (0, 1))
        >>> first, again = list(a), list(a)
        >>> sorted(first + list(b)) == list(range(6)), first != again
        (True, True)
    """

    def __init__(self, dataset: Any, num_replicas: int, rank: int, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.passes = 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.passes = 0

    def __iter__(self) -> Any:
        generator = torch.Generator()
        generator.manual_seed(self.seed + 1_000_003 * self.epoch + self.passes)
        self.passes += 1
        indices = torch.randperm(len(self.dataset), generator=generator).tolist()
        repeats = -(-self.total_size // len(indices))  # pad by wrapping around, as DistributedSampler does
        indices = (indices * repeats)[: self.total_size]
        return iter(indices[self.rank : self.total_size : self.num_replicas])


class SemiSupervisedDataModule(LightningDataModule):
    """Any torchvision classification dataset as a labelled subset plus an unlabelled pool.

    Args:
        dataset: a key of :data:`~lightning_gan.datamodules.VISION_DATASETS` (``mnist``, ``fashion_mnist``,
            ``cifar10``, ``svhn``). Subclasses that read their own images (:class:`InMemorySemiSupervised`) pass
            ``None`` and override :meth:`load_images`.
        data_dir: folder holding the files in torchvision's layout (default ``$LIGHTNING_GAN_DATA``, else ``./data``).
        download: download missing files with torchvision in ``prepare_data``; otherwise missing files are an error.
        num_labelled: number of labelled training images, a multiple of the class count.
        label_seed: the only seed the labelled subset depends on.
        batch_size: images per batch and process, for labelled, unlabelled and evaluation batches alike.
        tile_labelled: fill the labelled batch to ``batch_size`` with copies of a labelled set smaller than a batch,
            as the reference does (20 labels: each image 5 times per batch, each copy seen through its own noise in
            D); ``False``: the labelled batch is the set itself, once (the loss has the same mean, its gradient more
            variance; the runs of ``docs/reproduction.md`` section 3, where tiling did not help in the run measured).
        val_size: training images held out for validation (0: no validation set).
        val_seed: seed of the validation hold-out.
        label_split: path of a saved ``label_split.json`` to reuse instead of drawing a new split.
        num_workers: DataLoader workers (0 is fastest for in-memory tensors).
        init_size: images returned by :meth:`init_batch` for data-dependent initialisation.
        value_range: ``(low, high)`` the pixels [0, 255] are mapped to linearly; default: the reference's scaling of
            the dataset, [0, 1] for MNIST-like data (sigmoid generators), [-1, 1] for CIFAR-10 and SVHN (tanh).

    Example:
        >>> dm = SemiSupervisedDataModule("cifar10", num_labelled=4000, data_dir="/nonexistent")
        >>> dm.dataset_name, dm.num_classes, dm.image_shape, dm.value_range
        ('cifar10', 10, (3, 32, 32), (-1.0, 1.0))
        >>> dm.prepare_data()
        Traceback (most recent call last):
        ...
        FileNotFoundError: cifar10 files not found: /nonexistent/cifar-10-batches-py/data_batch_1, ...
    """

    dataset_name: str = "dataset"
    num_classes: int = 10
    image_shape: tuple[int, int, int] = (1, 28, 28)
    value_range: tuple[float, float] = (0.0, 1.0)  # pixel values of the images load_images returns

    def __init__(
        self,
        dataset: str | None = "mnist",
        data_dir: str | None = None,
        download: bool = False,
        num_labelled: int = 100,
        label_seed: int = 1,
        batch_size: int = 100,
        val_size: int = 5000,
        val_seed: int = 0,
        label_split: str | None = None,
        num_workers: int = 0,
        init_size: int = 500,  # reference: init_param(trainx[:500])
        value_range: tuple[float, float] | None = None,
        tile_labelled: bool = False,  # the reference tiles (True); the reported runs did not
    ) -> None:
        super().__init__()
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if val_size < 0:
            raise ValueError(f"val_size must be >= 0, got {val_size}")
        self.dataset = dataset
        if dataset is not None:
            spec = get_spec(dataset)  # unknown names: a ValueError listing the known ones
            self.dataset_name, self.num_classes, self.image_shape = dataset, spec.num_classes, spec.image_shape
            value_range = value_range if value_range is not None else DEFAULT_VALUE_RANGE.get(dataset, (0.0, 1.0))
        if value_range is not None:
            low, high = (float(v) for v in value_range)
            if not low < high:
                raise ValueError(f"value_range must be (low, high) with low < high, got {tuple(value_range)}")
            self.value_range = (low, high)
        self.data_dir = str(data_dir if data_dir is not None else default_data_dir())
        self.download = download
        self.num_labelled = num_labelled
        self.label_seed = label_seed
        self.batch_size = batch_size
        self.val_size = val_size
        self.val_seed = val_seed
        self.label_split_path = label_split
        self.num_workers = num_workers
        self.init_size = init_size
        self.tile_labelled = tile_labelled
        self.split: LabelSplit | None = None
        self._train: tuple[Tensor, Tensor] | None = None
        self._test: tuple[Tensor, Tensor] | None = None

    # ----- reading ---------------------------------------------------------------------------------------
    def _require_dataset(self) -> str:
        if self.dataset is None:
            raise TypeError(f"{type(self).__name__} has no dataset name: pass dataset= or override load_images")
        return self.dataset

    def prepare_data(self) -> None:
        """Download the dataset if asked to (local rank 0 only, as Lightning calls it); else check the files."""
        name = self._require_dataset()
        if self.download:
            download_vision_dataset(name, self.data_dir)
        check_files(name, self.data_dir)

    def load_images(self, train: bool) -> tuple[Tensor, Tensor]:
        """``(images [N, C, H, W] float in value_range, targets [N] long)`` of the train or test split."""
        images, targets = load_vision_dataset(self._require_dataset(), self.data_dir, train=train, download=False)
        low, high = self.value_range
        if (low, high) != (0.0, 1.0):
            images.mul_(high - low).add_(low)
        return images, targets

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
        """Write the split into the run directory (the logger's folder) on rank 0, when there is a logger."""
        trainer = self.trainer
        if trainer is None or not trainer.loggers:
            return
        log_dir = trainer.log_dir  # read on every rank: under DDP it broadcasts rank 0's
        if trainer.is_global_zero and log_dir:
            self.save_label_split(log_dir)

    # ----- LightningDataModule hooks ----------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", "validate", None) and self._train is None:
            self._train = self.load_images(train=True)
            self.split = self._make_split(self._train[1])
        if stage == "fit":  # every fit's run directory gets the split, also when validate() read the data first
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
            collate_fn=collate_for(dataset),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _train_loader(self, dataset: Dataset, batch_size: int, seed_offset: int) -> DataLoader:
        """A shuffling, batch-dropping loader; under DDP sharded by its own sampler (seed: global seed + offset)."""
        trainer = self.trainer
        world_size = trainer.world_size if trainer is not None else 1
        if world_size == 1:
            return self._loader(dataset, batch_size, train=True)
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) + seed_offset  # seed_everything's seed, the same on every rank
        sampler = ReshufflingDistributedSampler(dataset, num_replicas=world_size, rank=trainer.global_rank, seed=seed)
        return DataLoader(
            dataset,
            batch_size=min(batch_size, sampler.num_samples),
            sampler=sampler,
            drop_last=True,
            collate_fn=collate_for(dataset),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> CombinedLoader:
        images, targets = self._require_train()
        indices = self.labelled_indices
        if self.tile_labelled and len(indices) < self.batch_size:
            indices = indices.repeat(-(-self.batch_size // len(indices)))  # whole copies, at least one batch
        labelled = LabelledImages(images, targets, indices)
        pool = UnlabelledImages(images, self.unlabelled_indices)
        loaders = {
            "labelled": self._train_loader(labelled, min(self.batch_size, len(labelled)), seed_offset=0),
            "unlabelled": self._train_loader(pool, self.batch_size, seed_offset=1),
            "unlabelled_g": self._train_loader(pool, self.batch_size, seed_offset=2),  # second batch for the G step
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
        **kwargs: the arguments of :class:`SemiSupervisedDataModule` but ``dataset``, ``data_dir`` and ``download``;
            ``value_range`` declares the range the given images are in (default [0, 1]), they are not rescaled.

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
        super().__init__(dataset=None, **kwargs)
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

    def prepare_data(self) -> None:
        """Nothing to fetch: the tensors are in memory."""

    def load_images(self, train: bool) -> tuple[Tensor, Tensor]:
        if train not in self._tensors:
            raise ValueError("InMemorySemiSupervised was given no test_images/test_targets; pass them to run test")
        return self._tensors[train]
