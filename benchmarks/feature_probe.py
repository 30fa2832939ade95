"""How well does a trained semi-supervised discriminator's feature layer separate the classes?

    python benchmarks/feature_probe.py runs/mnist_ssl_refadam_n20_seed1/version_0/checkpoints/last.ckpt \\
        --num-labelled 20 --label-seed 1 [--data-dir DIR] [--json PATH]

Loads a :class:`~lightning_gan.models.SemiSupervisedGAN` checkpoint of an MNIST run and its label split (the data
module rebuilds it from ``--num-labelled`` and ``--label-seed``), takes the averaged (EMA) discriminator in eval mode
(noise off) and reports, on the 10,000 test images:

- ``test_errors``: the classifier's own errors (``test_errors_ema`` of the run);
- ``nearest_labelled_feature_errors``: each test image gets the label of the labelled training image whose
  feature vector (the feature-matching layer) is closest in cosine similarity;
- ``nearest_labelled_pixel_errors``: the same in pixel space: what the labelled images alone give, without training;
- ``linear_probe_errors``: a logistic regression (L-BFGS, a little L2) on the standardised features of
  ``--probe-size`` pool images *with their labels*: how separable the classes are in the features, whatever the
  run's own labels made of them.

Used in ``docs/reproduction.md`` (section 3) to show that with 20 labels the features do not separate the classes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import use_data_dir, write_json  # noqa: E402

from lightning_gan.datamodules import SemiSupervisedMNIST  # noqa: E402
from lightning_gan.models import SemiSupervisedGAN  # noqa: E402
from lightning_gan.networks import MNISTDiscriminator  # noqa: E402


@torch.no_grad()
def logits_and_features(discriminator: torch.nn.Module, images: Tensor, batch: int = 1000) -> tuple[Tensor, Tensor]:
    """The discriminator's class logits [N, K] and feature-matching features [N, F], in batches."""
    logits, features = zip(*(discriminator.forward_with_features(x) for x in images.split(batch)), strict=True)
    return torch.cat(logits), torch.cat(features)


def nearest_labels(queries: Tensor, keys: Tensor, key_labels: Tensor) -> Tensor:
    """The label of each query's most cosine-similar key."""
    similarity = F.normalize(queries.flatten(1), dim=1) @ F.normalize(keys.flatten(1), dim=1).T  # [Q, K]
    return key_labels[similarity.argmax(1)]


def linear_probe(train: Tensor, train_labels: Tensor, num_classes: int, steps: int = 200) -> torch.nn.Linear:
    """A multinomial logistic regression on standardised features (statistics of ``train``), fit with L-BFGS."""
    mean, std = train.mean(0), train.std(0) + 1e-6
    probe = torch.nn.Linear(train.shape[1], num_classes)
    torch.nn.init.zeros_(probe.weight)
    torch.nn.init.zeros_(probe.bias)
    optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=steps)
    x = (train - mean) / std

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(probe(x), train_labels) + 1e-4 * probe.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():  # fold the standardisation into the layer
        probe.bias -= probe.weight @ (mean / std)
        probe.weight /= std
    return probe


def averaged_discriminator(path: Path, checkpoint: dict[str, Any]) -> torch.nn.Module:
    """The EMA discriminator of the ``SemiSupervisedGAN`` checkpoint at ``path`` (``checkpoint``: its contents).

    A LightningCLI run saves its networks' configuration, so the module is rebuilt from it; a module built in Python
    saves none, and then the paper's MNIST discriminator (``MNISTDiscriminator()``) receives the averaged weights.
    """
    try:
        return SemiSupervisedGAN.load_from_checkpoint(path, map_location="cpu").ema_discriminator.module
    except TypeError:  # no saved networks: __init__ misses generator and discriminator
        prefix = "ema_discriminator.module."
        state = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
        discriminator = MNISTDiscriminator()
        discriminator.load_state_dict(state)
        return discriminator


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--num-labelled", type=int, required=True)
    parser.add_argument("--label-seed", type=int, required=True)
    parser.add_argument("--val-size", type=int, default=5000, help="the run's validation hold-out (default recipe)")
    parser.add_argument("--probe-size", type=int, default=10_000, help="labelled pool images for the linear probe")
    parser.add_argument("--data-dir", default=None, help="folder holding MNIST/raw (default $LIGHTNING_GAN_DATA)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    use_data_dir(args.data_dir)
    torch.set_num_threads(args.threads)

    checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    discriminator = averaged_discriminator(args.checkpoint, checkpoint).eval()
    dm = SemiSupervisedMNIST(num_labelled=args.num_labelled, label_seed=args.label_seed, val_size=args.val_size)
    dm.setup("fit")
    dm.setup("test")
    train_images, train_labels = dm.load_images(train=True)
    test_images, test_labels = dm.load_images(train=False)
    labelled = dm.labelled_indices

    test_logits, test_features = logits_and_features(discriminator, test_images)
    _, labelled_features = logits_and_features(discriminator, train_images[labelled])
    pool = dm.unlabelled_indices
    probe_indices = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))[: args.probe_size]]
    _, probe_features = logits_and_features(discriminator, train_images[probe_indices])
    probe = linear_probe(probe_features, train_labels[probe_indices], test_logits.shape[1])

    def errors(predicted: Tensor) -> int:
        return int((predicted != test_labels).sum())

    result = {
        "checkpoint": str(args.checkpoint),
        "num_labelled": args.num_labelled,
        "label_seed": args.label_seed,
        "epoch": int(checkpoint["epoch"]),
        "test_total": len(test_labels),
        "test_errors": errors(test_logits.argmax(1)),
        "nearest_labelled_feature_errors": errors(
            nearest_labels(test_features, labelled_features, train_labels[labelled])
        ),
        "nearest_labelled_pixel_errors": errors(
            nearest_labels(test_images, train_images[labelled], train_labels[labelled])
        ),
        "linear_probe_errors": errors(probe(test_features).argmax(1)),
        "probe_size": len(probe_indices),
    }
    print(json.dumps(result))
    if args.json is not None:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
