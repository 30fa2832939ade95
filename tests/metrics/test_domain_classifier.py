from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch

import lightning_gan.metrics.domain_classifier as dc
from lightning_gan.metrics.domain_classifier import DigitClassifier, default_weights_path, load_domain_classifier
from tests.conftest import mnist_dir, requires_mnist

SHIPPED = dc.WEIGHTS_DIR / "mnist_classifier.pt"
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_domain_classifier.py"


def test_logits_and_features_have_the_documented_shapes():
    net = DigitClassifier().eval()
    x = torch.rand(5, 1, 28, 28)
    assert net(x).shape == (5, net.num_classes) == (5, 10)
    assert net.features(x).shape == (5, net.num_features) == (5, 128)
    assert torch.equal(net.logits_from_features(net.features(x)), net(x))


def test_features_are_after_the_relu():
    assert (DigitClassifier().features(torch.rand(3, 1, 28, 28)) >= 0).all()


@pytest.mark.parametrize("shape", [(2, 28, 28), (2, 3, 28, 28), (2, 1, 32, 32)])
def test_wrong_input_shape_is_a_value_error_naming_both_shapes(shape):
    with pytest.raises(ValueError, match=r"\[B, 1, 28, 28\].*got \[" + ", ".join(map(str, shape)) + r"\]"):
        DigitClassifier()(torch.zeros(shape))


def test_shipped_weights_load_with_weights_only_and_stay_small():
    state = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    DigitClassifier().load_state_dict(state)  # strict: same keys and shapes
    assert all(v.dtype == torch.float32 for v in state.values())
    assert SHIPPED.stat().st_size < 1.5e6


def test_shipped_weights_match_their_manifest():
    info = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert info["sha256"] == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    assert info["test_accuracy"] >= 0.993 and info["num_test"] == 10_000


def test_loaded_classifier_is_frozen_and_in_eval_mode():
    net = load_domain_classifier()
    assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_user_weights_path_is_used(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "mine.pt"
    torch.save(DigitClassifier().state_dict(), path)
    net = load_domain_classifier("fashion_mnist", weights_path=path)
    assert torch.equal(net.head[1].weight, torch.load(path, weights_only=True)["head.1.weight"])


def test_unknown_dataset_lists_the_available_ones():
    with pytest.raises(ValueError, match="available: mnist, fashion_mnist"):
        load_domain_classifier("cifar10")


def test_missing_weights_name_the_file_and_the_training_command(monkeypatch, tmp_path):
    monkeypatch.setattr(dc, "WEIGHTS_DIR", tmp_path)  # as if nothing had been trained, whatever is installed
    with pytest.raises(FileNotFoundError) as err:
        load_domain_classifier("fashion_mnist")
    message = str(err.value)
    assert str(tmp_path / "fashion_mnist_classifier.pt") in message
    assert "python benchmarks/train_domain_classifier.py --dataset fashion_mnist" in message
    assert default_weights_path("fashion_mnist") == tmp_path / "fashion_mnist_classifier.pt"


def test_missing_user_weights_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_domain_classifier("mnist", weights_path=tmp_path / "nothing.pt")


@requires_mnist
def test_shipped_classifier_is_at_least_99_percent_right_on_2000_mnist_test_images():
    from lightning_gan.datamodules import load_vision_dataset

    images, targets = load_vision_dataset("mnist", mnist_dir(), train=False)
    net = load_domain_classifier("mnist")
    with torch.no_grad():
        predicted = torch.cat([net(images[i : i + 500]).argmax(1) for i in range(0, 2000, 500)])
    assert (predicted == targets[:2000]).float().mean().item() >= 0.99


@requires_mnist
def test_training_script_smoke_writes_weights_and_manifest(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("train_domain_classifier", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = ["--data-dir", str(mnist_dir()), "--out-dir", str(tmp_path), "--epochs", "1", "--threads", "1"]
    info = script.main([*argv, "--train-limit", "256", "--test-limit", "100"])
    assert "test accuracy" in capsys.readouterr().out
    weights = tmp_path / "mnist_classifier.pt"
    load_domain_classifier("mnist", weights_path=weights)
    assert json.loads(weights.with_suffix(".json").read_text()) == info
    assert info["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert not list(tmp_path.glob("*.tmp"))


def test_random_shift_moves_each_image_within_the_bound():
    spec = importlib.util.spec_from_file_location("train_domain_classifier", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 14, 14] = 1.0
    shifted = script.random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape and torch.equal(shifted.sum((1, 2, 3)), torch.ones(64))
    rows, cols = shifted[:, 0].nonzero()[:, 1], shifted[:, 0].nonzero()[:, 2]
    assert rows.min() >= 12 and rows.max() <= 16 and cols.min() >= 12 and cols.max() <= 16
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 5
