from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer

from lightning_gan.models import GAN, SemiSupervisedGAN
from lightning_gan.networks import VanillaDiscriminator, VanillaGenerator
from lightning_gan.turing.checkpoint import (
    CheckpointError,
    infer_dataset,
    is_classifier,
    load_model,
    load_real_images,
    read_checkpoint,
)


@pytest.mark.parametrize("fixture, cls", [("gan_ckpt", GAN), ("ssl_ckpt", SemiSupervisedGAN)])
def test_cli_checkpoints_load_alone_on_the_cpu_in_eval_mode(request, fixture, cls):
    path = request.getfixturevalue(fixture)
    model = load_model(path)
    assert type(model) is cls and not model.training and model.device == torch.device("cpu")
    assert is_classifier(model) == (cls is SemiSupervisedGAN)
    weights, loaded = torch.load(path, weights_only=True)["state_dict"], model.state_dict()
    assert weights.keys() == loaded.keys() and all(torch.equal(weights[k], loaded[k]) for k in weights)
    assert model.sample(3).shape == (3, 1, 28, 28)


@pytest.mark.parametrize("fixture", ["gan_ckpt", "ssl_ckpt"])
def test_the_dataset_is_read_from_the_data_modules_manifest(request, fixture):
    assert infer_dataset(read_checkpoint(request.getfixturevalue(fixture))) == "mnist"
    assert infer_dataset({"state_dict": {}}) is None


def test_a_missing_checkpoint_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*nope\.ckpt; pass --ckpt the \.ckpt file"):
        load_model(tmp_path / "nope.ckpt")


def test_a_file_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "notes.ckpt"
    bad.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a readable PyTorch checkpoint"):
        load_model(bad)
    torch.save({"weights": torch.zeros(2)}, bad)
    with pytest.raises(CheckpointError, match="is not a Lightning checkpoint"):
        load_model(bad)


def test_a_checkpoint_of_another_model_is_refused_without_importing_it(tmp_path, gan_ckpt):
    checkpoint = torch.load(gan_ckpt, weights_only=True)
    checkpoint["hyper_parameters"]["_class_path"] = "os.system"
    torch.save(checkpoint, other := tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not a checkpoint of a lightning_gan model: .*'os.system'"):
        load_model(other)
    checkpoint["hyper_parameters"]["_class_path"] = "lightning_gan.models.EMA"
    torch.save(checkpoint, other)
    with pytest.raises(CheckpointError, match="not a lightning_gan adversarial model"):
        load_model(other)


def test_a_checkpoint_of_a_model_built_in_python_says_how_to_make_one_that_loads(tmp_path):
    model = GAN(VanillaGenerator(noise_dim=4, hidden_dims=(8,)), VanillaDiscriminator(hidden_dims=(8,)))
    trainer = Trainer(max_steps=0, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path := tmp_path / "python.ckpt")
    with pytest.raises(
        CheckpointError, match="does not describe its model class and networks .*`python -m lightning_gan fit`"
    ):
        load_model(path)


def test_missing_real_data_names_the_files_and_the_option(tmp_path, data_dir):
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte.* not found\. Pass --real-data DIR.*MNIST/"):
        load_real_images("mnist", tmp_path)
    images, labels = load_real_images("mnist", data_dir)
    assert images.shape == (60, 1, 28, 28) and images.dtype == torch.float32 and labels.bincount().tolist() == [6] * 10
