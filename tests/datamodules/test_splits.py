from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lightning_gan.datamodules import LabelSplit, select_labelled, select_validation


def test_select_labelled_is_balanced_sorted_and_seeded_only_by_its_seed():
    targets = np.random.default_rng(0).integers(0, 10, size=5000)
    np.random.seed(123)
    torch.manual_seed(123)
    a = select_labelled(targets, 100, seed=5)
    np.random.seed(999)  # the global seeds must not matter
    torch.manual_seed(999)
    b = select_labelled(targets, 100, seed=5)
    assert np.array_equal(a, b)
    assert np.array_equal(a, np.sort(a)) and len(np.unique(a)) == 100
    assert np.bincount(targets[a], minlength=10).tolist() == [10] * 10
    assert not np.array_equal(a, select_labelled(targets, 100, seed=6))


def test_select_labelled_follows_the_reference_recipe():
    # first `per_class` images of each class in the seeded permutation (openai/improved-gan)
    targets = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    perm = np.random.default_rng(7).permutation(8)
    expected = np.sort(np.concatenate([perm[targets[perm] == c][:2] for c in (0, 1)]))
    assert np.array_equal(select_labelled(targets, 4, seed=7), expected)


def test_select_labelled_rejects_bad_counts():
    targets = np.arange(100) % 10
    with pytest.raises(ValueError, match="multiple of the number of classes"):
        select_labelled(targets, 25, seed=0)
    with pytest.raises(ValueError, match="needs 11 labelled images of class 0, but the pool has only 10"):
        select_labelled(targets, 110, seed=0)
    with pytest.raises(ValueError, match="pool has only 5"):
        select_labelled(targets, 100, seed=0, exclude=np.arange(50))


def test_validation_never_overlaps_excluded_indices():
    labelled = select_labelled(np.arange(1000) % 10, 50, seed=0)
    val = select_validation(1000, 300, seed=0, exclude=labelled)
    assert len(val) == 300 and not set(val) & set(labelled)


def test_manifest_round_trip_and_target_check(tmp_path):
    targets = np.arange(30) % 3
    split = LabelSplit.create("toy", targets, select_labelled(targets, 6, seed=1), seed=1, validation_indices=[0, 5])
    path = split.save(tmp_path / "label_split.json")
    data = json.loads(path.read_text())
    assert data["per_class_counts"] == {"0": 2, "1": 2, "2": 2} and data["seed"] == 1
    assert LabelSplit.load(path) == split
    split.check_targets(targets)
    with pytest.raises(ValueError, match="does not match the training targets"):
        split.check_targets(targets[::-1].copy())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LabelSplit.load(tmp_path / "missing.json")
