from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from lightning.pytorch import LightningDataModule, LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor, nn
from torch.utils.data import DataLoader

from lightning_gan.callbacks import ImageQualityMetrics
from lightning_gan.callbacks.image_quality import ImageQuality, OutputSlice, _share
from lightning_gan.metrics.extractors import FeatureExtractor
from lightning_gan.models import GAN
from lightning_gan.networks import VanillaDiscriminator, VanillaGenerator
from tests.conftest import requires_mnist, synthetic_digits

METRIC_NAMES = {"metrics/fid", "metrics/is_mean", "metrics/is_std", "metrics/mode_score"}
KID_NAMES = {"metrics/kid_mean", "metrics/kid_std"}


# ----- stand-ins ----------------------------------------------------------------------------------------------
class TinyExtractor(FeatureExtractor):
    """4x4 average-pooled pixels as features, a fixed random linear map of them as logits; counts its passes."""

    num_features, num_classes = 49, 10

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(49, 10)
        with torch.no_grad():  # fixed weights: the name (with their digest) is the same in every instance
            self.head.weight.copy_(torch.linspace(-3, 3, 490).reshape(10, 49).sin() * 4)
            self.head.bias.zero_()
        self.freeze()
        self.name = "tiny"
        self.calls: list[int] = []  # batch size of each pass

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self.calls.append(len(x))
        features = nn.functional.avg_pool2d(x, 4).flatten(1)  # [B, 49]
        return features, self.head(features - 0.3)


class LookupExtractor(FeatureExtractor):
    """Returns given features and logits: an "image" is a 1x1x1 tensor holding its row index."""

    def __init__(self, features: Tensor, logits: Tensor) -> None:
        super().__init__()
        self.register_buffer("features", features)
        self.register_buffer("logits", logits)
        self.num_features, self.num_classes = features.shape[1], logits.shape[1]
        self.name = "lookup"

    def prepare(self, images: Tensor, value_range: tuple[float, float]) -> Tensor:
        return images.flatten(1)[:, 0].round().long()  # [B] row indices

    def forward(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        return self.features[rows], self.logits[rows]


class Replay(LightningModule):
    """A "generator" whose samples are given images, served in order (wrapping around)."""

    def __init__(self, images: Tensor) -> None:
        super().__init__()
        self.images = images
        self.position = 0

    def sample(self, n: int) -> Tensor:
        rows = (torch.arange(n) + self.position) % len(self.images)
        self.position += n
        return self.images[rows].to(self.device)


class InMemoryImages(LightningDataModule):
    """Images in memory with the attributes the callback reads; batches are bare tensors."""

    def __init__(self, images: Tensor, name: str = "tiny", value_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__()
        self.images = images
        self.dataset_name = name
        self.value_range = value_range
        self.image_shape = tuple(images.shape[1:])
        self.reads = 0

    def real_images(self, n: int | None = None, split: str = "train") -> Tensor:
        self.reads += 1
        return self.images[:n]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.images, batch_size=32, shuffle=True, drop_last=True)


def index_images(start: int, stop: int) -> Tensor:
    return torch.arange(start, stop, dtype=torch.float32).reshape(-1, 1, 1, 1)


def tiny_gan() -> GAN:
    return GAN(
        VanillaGenerator(noise_dim=4, hidden_dims=(16,), image_shape=(1, 28, 28), output="sigmoid"),
        VanillaDiscriminator(hidden_dims=(16,)),
    )


# ----- the formulas, through the callback's own path ------------------------------------------------------------
def numpy_fid(real: np.ndarray, fake: np.ndarray) -> float:
    mu_r, mu_f = real.mean(0), fake.mean(0)
    s_r, s_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_r @ s_f).real
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(s_r + s_f - 2 * covmean))


def numpy_inception_score(logits: np.ndarray, splits: int, order: np.ndarray) -> tuple[float, float]:
    p = np.exp(logits - logits.max(1, keepdims=True))
    p = (p / p.sum(1, keepdims=True))[order]
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(0)
        scores.append(np.exp((part * (np.log(part) - np.log(marginal))).sum(1).mean()))
    return float(np.mean(scores)), float(np.std(scores, ddof=1))


def numpy_kid(real: np.ndarray, fake: np.ndarray, subsets: int, size: int, seed: int) -> tuple[float, float]:
    g = torch.Generator().manual_seed(seed)  # the callback's seeded global RNG draws the same permutations
    d, values = real.shape[1], []
    for _ in range(subsets):
        r = real[torch.randperm(len(real), generator=g)[:size].numpy()]
        f = fake[torch.randperm(len(fake), generator=g)[:size].numpy()]
        k_rr, k_ff, k_rf = ((a @ b.T / d + 1) ** 3 for a, b in ((r, r), (f, f), (r, f)))
        off = size * (size - 1)
        values.append((k_rr.sum() - np.trace(k_rr)) / off + (k_ff.sum() - np.trace(k_ff)) / off - 2 * k_rf.mean())
    return float(np.mean(values)), float(np.std(values))


def test_fid_is_kid_and_mode_score_match_numpy_and_scipy_through_the_callback():
    g = torch.Generator().manual_seed(0)
    n_real, n_fake, f, k = 400, 300, 6, 5
    mixing = torch.randn(f, f, generator=g)
    features = torch.randn(n_real + n_fake, f, generator=g) @ mixing  # correlated features
    features[n_real:] += 0.5  # the generated ones are shifted
    logits = 2 * torch.randn(n_real + n_fake, k, generator=g)
    callback = ImageQualityMetrics(
        num_samples=n_fake, batch_size=64, num_real=n_real, extractor=LookupExtractor(features, logits),
        kid=True, kid_subsets=4, kid_subset_size=50, cache_dir=None, seed=3, progress=False,
    )  # fmt: skip
    scores = callback.evaluate(Replay(index_images(n_real, n_real + n_fake)), InMemoryImages(index_images(0, n_real)))
    assert set(scores) == METRIC_NAMES | KID_NAMES
    real, fake = features[:n_real].double().numpy(), features[n_real:].double().numpy()
    assert scores["metrics/fid"] == pytest.approx(numpy_fid(real, fake), rel=1e-4)
    order = torch.randperm(n_fake, generator=torch.Generator().manual_seed(3)).numpy()  # IS shuffles, seeded
    is_mean, is_std = numpy_inception_score(logits[n_real:].double().numpy(), 10, order)
    assert scores["metrics/is_mean"] == pytest.approx(is_mean, rel=1e-5)
    assert scores["metrics/is_std"] == pytest.approx(is_std, rel=1e-4)
    kid_mean, kid_std = numpy_kid(features[:n_real].numpy(), features[n_real:].numpy(), 4, 50, seed=3)
    assert scores["metrics/kid_mean"] == pytest.approx(kid_mean, rel=1e-4)
    assert scores["metrics/kid_std"] == pytest.approx(kid_std, rel=1e-3)
    # mode score with p*(y) = the mean prediction on the real images ("real", the default)
    p_fake, p_real = logits[n_real:].double().softmax(1).numpy(), logits[:n_real].double().softmax(1).numpy()
    marginal, prior = p_fake.mean(0), p_real.mean(0)
    log_ms = (p_fake * np.log(p_fake / marginal)).sum(1).mean() - (marginal * np.log(marginal / prior)).sum()
    assert scores["metrics/mode_score"] == pytest.approx(math.exp(log_ms), rel=1e-5)


def test_fid_of_a_set_against_itself_is_zero():
    features = torch.randn(300, 8, generator=torch.Generator().manual_seed(1))
    callback = ImageQualityMetrics(
        num_samples=300, batch_size=100, num_real=300, extractor=LookupExtractor(features, torch.randn(300, 3)),
        cache_dir=None, progress=False,
    )  # fmt: skip
    scores = callback.evaluate(Replay(index_images(0, 300)), InMemoryImages(index_images(0, 300)))
    assert abs(scores["metrics/fid"]) < 1e-4


# ----- one extractor pass per batch ---------------------------------------------------------------------------
def test_each_batch_goes_through_the_extractor_once_for_all_metrics():
    extractor = TinyExtractor()
    quality = ImageQuality(extractor, value_range=(-1.0, 1.0), kid=True, kid_subsets=2, kid_subset_size=10)
    images = torch.rand(60, 1, 28, 28) * 2 - 1
    for batch in images.split(20):
        quality.update_real(batch)
    assert extractor.calls == [20, 20, 20]
    extractor.calls.clear()
    for batch in images.split(15):
        quality.update_fake(batch)
    assert extractor.calls == [15, 15, 15, 15]  # one pass per batch, whatever the number of metrics
    assert int(quality.fid.fake_features_num_samples) == 60 and len(quality.kid.fake_features) == 4
    assert len(quality.inception_score.features) == 4 and int(quality.mode_score.count) == 60
    assert set(quality.compute()) == {"fid", "is_mean", "is_std", "kid_mean", "kid_std", "mode_score"}
    assert len(extractor.calls) == 4  # compute runs no network


def test_output_slices_pick_features_and_logits():
    out = torch.arange(12.0).reshape(2, 6)
    torch.testing.assert_close(OutputSlice(0, 4)(out), out[:, :4])
    assert OutputSlice(4, 6).num_features == 2


# ----- real statistics: computed once, cached in the state dict and on disk -----------------------------------
@pytest.fixture
def digits() -> InMemoryImages:
    images, _ = synthetic_digits(256, num_classes=4)
    return InMemoryImages(images)


def fit(
    callback: ImageQualityMetrics, data: InMemoryImages, root: Path, max_epochs: int, ckpt_path: Path | None = None
) -> Trainer:
    seed_everything(0)
    trainer = Trainer(
        max_epochs=max_epochs,
        limit_train_batches=2,
        callbacks=[callback, ModelCheckpoint(dirpath=root / "ckpt", save_last=True)],
        logger=CSVLogger(root, name="logs", version=0),
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(tiny_gan(), datamodule=data, ckpt_path=ckpt_path)
    return trainer


def make_callback(extractor: FeatureExtractor, cache_dir: Path | None, **kwargs) -> ImageQualityMetrics:
    options = dict(num_samples=96, batch_size=32, num_real=128, kid=True, kid_subsets=3, kid_subset_size=32)
    return ImageQualityMetrics(extractor=extractor, cache_dir=cache_dir, progress=False, **{**options, **kwargs})


def test_in_a_fit_real_statistics_are_computed_once_and_every_epoch_is_logged(tmp_path, digits):
    extractor = TinyExtractor()
    callback = make_callback(extractor, tmp_path / "cache")
    trainer = fit(callback, digits, tmp_path, max_epochs=2)
    # 4 real batches once, then 3 generated batches in each of the 2 epochs; the end of fit adds nothing (just done)
    assert extractor.calls == [32] * 4 + [32] * 3 + [32] * 3
    assert METRIC_NAMES | KID_NAMES <= set(trainer.callback_metrics)
    csv = (tmp_path / "logs" / "version_0" / "metrics.csv").read_text().splitlines()
    assert METRIC_NAMES <= set(csv[0].split(",")) and sum("," in row for row in csv[1:]) >= 2
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1  # the disk cache was written
    # the checkpoint holds the statistics as plain tensors (loadable with weights_only=True)
    checkpoint = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    state = checkpoint["callbacks"][callback.state_key]
    assert {"fid_sum", "fid_cov_sum", "count", "prob_sum", "kid_features"} == set(state["real_stats"])
    assert int(state["real_stats"]["count"]) == 128 and '"num_real": 128' in state["real_key"]

    # resumed from the checkpoint without a disk cache: the statistics come from the checkpoint
    resumed_extractor = TinyExtractor()
    resumed = make_callback(resumed_extractor, cache_dir=None)
    fit(resumed, digits, tmp_path / "resume", max_epochs=3, ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert resumed_extractor.calls == [32] * 3  # epoch 3's generated batches only


def test_statistics_restore_from_state_dict_and_disk_cache_without_recomputation(tmp_path, digits):
    model = tiny_gan()
    first = make_callback(TinyExtractor(), tmp_path / "cache")
    scores = first.evaluate(model, digits)
    assert len(first.quality.extractor.calls) == 4 + 3

    from_state = make_callback(TinyExtractor(), cache_dir=None)
    from_state.load_state_dict(first.state_dict())
    assert from_state.evaluate(model, digits) == scores  # same noise (seeded), same statistics
    assert from_state.quality.extractor.calls == [32] * 3

    from_disk = make_callback(TinyExtractor(), tmp_path / "cache")
    assert from_disk.evaluate(model, digits) == scores
    assert from_disk.quality.extractor.calls == [32] * 3

    # another key (here fewer real images) is not taken from either cache
    other = make_callback(TinyExtractor(), tmp_path / "cache", num_real=96)
    other.load_state_dict(first.state_dict())
    with pytest.warns(UserWarning, match="computed for"):
        other.evaluate(model, digits)
    assert other.quality.extractor.calls == [32] * 3 + [32] * 3
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2


def test_a_disk_cache_entry_with_another_key_is_ignored(tmp_path, digits):
    first = make_callback(TinyExtractor(), tmp_path / "cache")
    first.evaluate(tiny_gan(), digits)
    path = next((tmp_path / "cache").glob("*.pt"))
    saved = torch.load(path, weights_only=True)
    saved["key"] = saved["key"].replace('"split": "train"', '"split": "test"')  # e.g. a hash collision, a copy
    torch.save(saved, path)
    again = make_callback(TinyExtractor(), tmp_path / "cache")
    with pytest.warns(UserWarning, match="another key"):
        again.evaluate(tiny_gan(), digits)
    assert len(again.quality.extractor.calls) == 4 + 3  # recomputed


def test_changed_images_change_the_key(tmp_path, digits):
    first = make_callback(TinyExtractor(), tmp_path / "cache")
    first.evaluate(tiny_gan(), digits)
    changed = InMemoryImages(digits.images.flip(-1))  # same name, split and count, other pixels
    second = make_callback(TinyExtractor(), tmp_path / "cache")
    second.evaluate(tiny_gan(), changed)
    assert len(second.quality.extractor.calls) == 4 + 3


def test_evaluation_is_reproducible_and_leaves_the_global_rng_alone(digits):
    callback = make_callback(TinyExtractor(), cache_dir=None)
    model = tiny_gan()
    state = torch.get_rng_state()
    first = callback.evaluate(model, digits)
    assert torch.equal(torch.get_rng_state(), state)
    assert callback.evaluate(model, digits) == first
    other_seed = make_callback(TinyExtractor(), cache_dir=None, seed=1).evaluate(model, digits)
    assert other_seed["metrics/fid"] != first["metrics/fid"]


def test_only_at_the_end_of_fit(tmp_path, digits):
    extractor = TinyExtractor()
    callback = make_callback(extractor, cache_dir=None, every_n_epochs=0, kid=False)
    trainer = fit(callback, digits, tmp_path, max_epochs=2)
    assert extractor.calls == [32] * 4 + [32] * 3
    rows = (tmp_path / "logs" / "version_0" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    logged = [dict(zip(header, row.split(","), strict=True)) for row in rows[1:]]
    ends = [row for row in logged if row.get("metrics/fid")]
    assert len(ends) == 1 and int(ends[0]["step"]) == trainer.global_step
    assert set(callback.last_metrics) == METRIC_NAMES


def test_ddp_shares_add_up_and_real_statistics_are_counted_once():
    assert [_share(10, r, 3) for r in range(3)] == [4, 3, 3]
    quality = ImageQuality(TinyExtractor(), kid=True, kid_subset_size=5)
    for batch in torch.rand(50, 1, 28, 28).split(25):
        quality.update_real(batch)
    stats = quality.real_statistics()
    ranks = [ImageQuality(TinyExtractor(), kid=True, kid_subset_size=5) for _ in range(2)]
    for rank, q in enumerate(ranks):
        q.load_real_statistics(stats, rank=rank, world_size=2)
    total = sum(q.fid.real_features_sum for q in ranks)
    torch.testing.assert_close(total, stats["fid_sum"])  # summed over ranks: counted once
    assert sum(int(q.fid.real_features_num_samples) for q in ranks) == 50
    torch.testing.assert_close(torch.cat([q.kid.real_features[0] for q in ranks]), stats["kid_features"])


def test_progress_bar_only_on_a_terminal(monkeypatch, capsys, digits):
    callback = make_callback(TinyExtractor(), cache_dir=None, kid=False)
    callback.progress = True
    callback.evaluate(tiny_gan(), digits)  # pytest's captured output is no terminal: nothing printed
    assert capsys.readouterr().out == ""
    import rich
    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr(rich, "get_console", lambda: Console(file=screen, force_terminal=True, width=100))
    callback.evaluate(tiny_gan(), digits)
    assert "metrics" in screen.getvalue()


def test_missing_data_module_attributes_are_reported():
    callback = make_callback(TinyExtractor(), cache_dir=None)
    with pytest.raises(ValueError, match="needs a data module"):
        callback.evaluate(tiny_gan(), None)
    with pytest.raises(AttributeError, match="real_images"):
        callback.evaluate(tiny_gan(), object())
    with pytest.raises(ValueError, match="kid_subset_size"):
        ImageQualityMetrics(num_samples=100, kid=True, kid_subset_size=1000)


class ShardedReplayGAN(GAN):
    """A tiny GAN whose "samples" are rank r's share of given images: images[r::world_size], in order."""

    def __init__(self, images: Tensor) -> None:
        super().__init__(
            VanillaGenerator(noise_dim=4, hidden_dims=(16,), image_shape=(1, 28, 28), output="sigmoid"),
            VanillaDiscriminator(hidden_dims=(16,)),
        )
        self.replayed = images
        self.position = 0

    def sample(self, n: int) -> Tensor:
        mine = self.replayed[self.global_rank :: self.trainer.world_size]
        out = mine[self.position : self.position + n]
        self.position += n
        return out.to(self.device)


@pytest.mark.slow
def test_under_ddp_the_ranks_samples_are_scored_together(tmp_path, digits):
    # the ranks' samples together are exactly the real images: FID ~ 0 only if the states of both ranks are summed
    # and the real statistics counted once
    callback = make_callback(TinyExtractor(), cache_dir=None, num_samples=128, num_real=128, kid=False)
    # find_unused_parameters: each of the GAN's manual D and G steps leaves the other player's parameters unused
    trainer = Trainer(
        strategy="ddp_spawn_find_unused_parameters_true", accelerator="cpu", devices=2, max_epochs=1,
        limit_train_batches=2,
        callbacks=[callback], logger=CSVLogger(tmp_path, name="logs", version=0), enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(ShardedReplayGAN(digits.images[:128]), datamodule=digits)
    rows = (tmp_path / "logs" / "version_0" / "metrics.csv").read_text().splitlines()
    logged = dict(zip(rows[0].split(","), rows[-1].split(","), strict=True))
    assert abs(float(logged["metrics/fid"])) < 1e-3
    single = make_callback(TinyExtractor(), cache_dir=None, num_samples=128, num_real=128, kid=False)
    alone = single.evaluate(Replay(digits.images[:128]), digits)  # the same 128 images in one process
    assert float(logged["metrics/mode_score"]) == pytest.approx(alone["metrics/mode_score"], rel=1e-4)


# ----- real MNIST with the shipped domain classifier ----------------------------------------------------------
SHIPPED_WEIGHTS = Path(__file__).resolve().parents[2] / "lightning_gan" / "metrics" / "weights" / "mnist_classifier.pt"
requires_shipped_classifier = pytest.mark.skipif(
    not SHIPPED_WEIGHTS.is_file(), reason=f"the shipped domain classifier {SHIPPED_WEIGHTS} is not there"
)


def erase_random_quarter(images: Tensor, seed: int = 0) -> Tensor:
    """Each image with one of its four 14x14 quadrants (chosen at random) set to black."""
    out = images.clone()
    quadrant = torch.randint(0, 4, (len(images),), generator=torch.Generator().manual_seed(seed))
    for q in range(4):
        rows, cols = divmod(q, 2)
        out[quadrant == q, :, rows * 14 : rows * 14 + 14, cols * 14 : cols * 14 + 14] = 0.0
    return out


def mnist_scores(n: int) -> dict[str, dict[str, float]]:
    """Scores of MNIST test, erased test and other training images against the first n training images."""
    from lightning_gan.datamodules import load_vision_dataset
    from tests.conftest import mnist_dir

    train, _ = load_vision_dataset("mnist", mnist_dir(), train=True)
    test, _ = load_vision_dataset("mnist", mnist_dir(), train=False)
    # in [-1, 1] like a tanh GAN's data: the callback maps them back to [0, 1] for the classifier
    real = InMemoryImages(train[:n] * 2 - 1, name="mnist", value_range=(-1.0, 1.0))
    callback = ImageQualityMetrics(num_samples=n, num_real=n, batch_size=500, cache_dir=None, progress=False)
    generated = {
        "test": test[:n],
        "erased": erase_random_quarter(test[:n]),
        "train": train[n : 2 * n],  # other training images: the FID floor of n samples from the same distribution
    }
    return {name: callback.evaluate(Replay(images * 2 - 1), real) for name, images in generated.items()}


def check_mnist_scores(scores: dict[str, dict[str, float]], erased_over_test: float) -> None:
    print({name: {k.split("/")[1]: round(v, 3) for k, v in s.items()} for name, s in scores.items()})
    fid = {name: s["metrics/fid"] for name, s in scores.items()}
    # train vs test is close to the finite-sample floor (two draws of the training distribution) ...
    assert fid["test"] < 3 * fid["train"]
    # ... and far below a visibly different set (measured, 128-d features of variance ~1400: 2,000 images
    # train/test/erased 15.6/29.7/220; 10,000 images 2.9/4.3/200)
    assert fid["erased"] > erased_over_test * fid["test"]
    assert scores["test"]["metrics/is_mean"] > 9.0  # real digits: confident and balanced, close to 10
    assert scores["test"]["metrics/mode_score"] > 9.0
    assert scores["erased"]["metrics/is_mean"] < scores["test"]["metrics/is_mean"]


@requires_mnist
@requires_shipped_classifier
def test_mnist_train_vs_test_fid_is_small_and_far_below_erased_digits():
    check_mnist_scores(mnist_scores(2000), erased_over_test=5)


@pytest.mark.slow
@requires_mnist
@requires_shipped_classifier
def test_mnist_scores_with_10k_images():
    check_mnist_scores(mnist_scores(10_000), erased_over_test=20)
