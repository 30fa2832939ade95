"""Seeded, class-balanced labelled subsets and their JSON manifest.

Pure functions of the targets and a seed, with a local ``numpy.random.default_rng``: the same seed gives
the same split on any machine and under any global seed (``seed_everything`` does not touch it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["LabelSplit", "select_labelled", "select_validation", "targets_hash"]


def _as_numpy(targets: Tensor | np.ndarray | list[int]) -> np.ndarray:
    if isinstance(targets, Tensor):
        return targets.detach().cpu().numpy().astype(np.int64)
    return np.asarray(targets, dtype=np.int64)


def targets_hash(targets: Tensor | np.ndarray | list[int]) -> str:
    """SHA-256 of the targets as little-endian int64: identifies the dataset a split belongs to.

    Example:
        >>> targets_hash([0, 1, 2]) == hashlib.sha256(np.array([0, 1, 2], dtype="<i8").tobytes()).hexdigest()
        True
    """
    return hashlib.sha256(_as_numpy(targets).astype("<i8").tobytes()).hexdigest()


def select_labelled(
    targets: Tensor | np.ndarray | list[int],
    num_labelled: int,
    seed: int,
    num_classes: int | None = None,
    exclude: np.ndarray | list[int] | None = None,
) -> np.ndarray:
    """Pick ``num_labelled / num_classes`` indices per class from a seeded permutation; sorted.

    As openai/improved-gan does: permute all indices with the seed, then take the first ``n`` of each
    class in permutation order. ``exclude`` removes indices (e.g. a validation set) from the candidates.

    Raises:
        ValueError: if ``num_labelled`` is not a positive multiple of the class count, or a class has
            fewer candidates than it needs.

    Example:
        >>> targets = [0, 1, 2] * 4
        >>> idx = select_labelled(targets, 6, seed=0)
        >>> np.bincount(np.asarray(targets)[idx]).tolist()
        [2, 2, 2]
        >>> (idx == select_labelled(targets, 6, seed=0)).all()
        np.True_
    """
    y = _as_numpy(targets)
    k = int(num_classes if num_classes is not None else y.max() + 1)
    if num_labelled <= 0 or num_labelled % k != 0:
        raise ValueError(
            f"num_labelled={num_labelled} must be a positive multiple of the number of classes ({k}) "
            f"so that every class gets the same number of labels; try {max(k, num_labelled // k * k)}"
        )
    per_class = num_labelled // k
    candidates = np.random.default_rng(seed).permutation(len(y))
    if exclude is not None and len(exclude) > 0:
        candidates = candidates[~np.isin(candidates, np.asarray(exclude))]
    chosen = []
    for c in range(k):
        of_class = candidates[y[candidates] == c]
        if len(of_class) < per_class:
            raise ValueError(
                f"num_labelled={num_labelled} needs {per_class} labelled images of class {c}, but the pool has only "
                f"{len(of_class)} (of {len(candidates)} candidate images); lower num_labelled"
            )
        chosen.append(of_class[:per_class])
    return np.sort(np.concatenate(chosen))


def select_validation(num_items: int, val_size: int, seed: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Pick ``val_size`` indices uniformly at random (seeded), never from ``exclude``; sorted.

    Example:
        >>> select_validation(10, 3, seed=0, exclude=np.arange(5)).min() >= 5
        np.True_
    """
    candidates = np.random.default_rng(seed).permutation(num_items)
    if exclude is not None and len(exclude) > 0:
        candidates = candidates[~np.isin(candidates, exclude)]
    if val_size > len(candidates):
        raise ValueError(f"val_size={val_size} is larger than the {len(candidates)} images left for validation")
    return np.sort(candidates[:val_size])


@dataclass
class LabelSplit:
    """The manifest of a labelled subset: which training images carry labels, and how they were chosen.

    Written as ``label_split.json`` into the run directory and kept in the data module's ``state_dict``.

    Example:
        >>> split = LabelSplit.create("toy", [0, 1, 0, 1], labelled_indices=[0, 1], seed=3)
        >>> split.per_class_counts
        {'0': 1, '1': 1}
        >>> LabelSplit.from_json(split.to_json()) == split
        True
    """

    dataset: str
    seed: int
    num_labelled: int
    labelled_indices: list[int]
    per_class_counts: dict[str, int]
    targets_sha256: str
    validation_indices: list[int] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        dataset: str,
        targets: Tensor | np.ndarray | list[int],
        labelled_indices: np.ndarray | list[int],
        seed: int,
        validation_indices: np.ndarray | list[int] = (),
    ) -> LabelSplit:
        """Build the manifest of ``labelled_indices`` into ``targets``."""
        y = _as_numpy(targets)
        idx = [int(i) for i in labelled_indices]
        counts = np.bincount(y[idx], minlength=int(y.max()) + 1)
        return cls(
            dataset=dataset,
            seed=int(seed),
            num_labelled=len(idx),
            labelled_indices=idx,
            per_class_counts={str(c): int(n) for c, n in enumerate(counts)},
            targets_sha256=targets_hash(y),
            validation_indices=[int(i) for i in validation_indices],
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LabelSplit:
        return cls(**json.loads(text))

    def save(self, path: str | Path) -> Path:
        """Write the manifest atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LabelSplit:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"label split file {path} does not exist; pass a label_split.json from a run")
        return cls.from_json(path.read_text())

    def check_targets(self, targets: Tensor | np.ndarray | list[int]) -> None:
        """Raise if this split was made for other targets (another dataset or another version of it)."""
        if targets_hash(targets) != self.targets_sha256:
            raise ValueError(
                f"the label split was made for dataset {self.dataset!r} "
                f"with targets hash {self.targets_sha256[:12]}..., "
                f"which does not match the training targets here ({targets_hash(targets)[:12]}...); "
                "use a split saved from this dataset or drop label_split to draw a new one"
            )


def as_long_tensor(indices: np.ndarray | list[int]) -> Tensor:
    """Indices as a ``torch.long`` tensor."""
    return torch.as_tensor(np.asarray(indices), dtype=torch.long)
