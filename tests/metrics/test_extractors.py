from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from lightning_gan.metrics import extractors
from lightning_gan.metrics.extractors import (
    INCEPTION_WEIGHTS_FILENAME,
    INCEPTION_WEIGHTS_URL,
    DomainExtractor,
    FeatureExtractor,
    InceptionExtractor,
    build_extractor,
    to_unit_range,
    weights_digest,
)

requires_torch_fidelity = pytest.mark.skipif(
    importlib.util.find_spec("torch_fidelity") is None,
    reason="torch-fidelity is not installed (pip install -e '.[dev]')",
)
SHIPPED_WEIGHTS = Path(extractors.__file__).parent / "weights" / "mnist_classifier.pt"
requires_shipped_classifier = pytest.mark.skipif(
    not SHIPPED_WEIGHTS.is_file(), reason=f"the shipped domain classifier {SHIPPED_WEIGHTS} is not there yet"
)


class CountingClassifier(nn.Module):
    """A DigitClassifier look-alike (features -> head) that counts trunk passes."""

    num_features, num_classes = 6, 10

    def __init__(self, with_head: bool = True) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(784, 6), nn.ReLU())
        self.fc = nn.Linear(6, 10)
        if with_head:
            self.head = self.fc
        self.trunk_calls = 0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.trunk_calls += 1
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def inception_template_state_dict(monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.Tensor]:
    """Keys, shapes and dtypes of torch-fidelity's InceptionV3 weights file, without the file or the network."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    with monkeypatch.context() as m:
        m.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: {})  # no file, no network
        m.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
        net = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    return net.state_dict()


def random_like_inception(template: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values in the file's exact format, scaled so activations stay finite (He-scaled conv weights)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, t in template.items():
        if not t.is_floating_point():
            out[name] = torch.zeros_like(t)
        elif name.endswith("running_var"):
            out[name] = 0.5 + torch.rand(t.shape, generator=g)
        elif name.endswith("bn.weight"):
            out[name] = 1.0 + 0.1 * torch.randn(t.shape, generator=g)
        elif t.ndim >= 2:
            out[name] = torch.randn(t.shape, generator=g) * (2.0 / t[0].numel()) ** 0.5
        else:
            out[name] = 0.1 * torch.randn(t.shape, generator=g)
    return out


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights file of random values with the real file's keys and shapes, written by this test."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        template = inception_template_state_dict(monkeypatch)
    assert len(template) == 566 and sum(t.numel() for t in template.values()) == 23_885_486
    path = tmp_path_factory.mktemp("inception") / INCEPTION_WEIGHTS_FILENAME
    torch.save(random_like_inception(template), path)
    return path


def test_to_unit_range_maps_and_clamps():
    x = torch.tensor([-1.0, 0.0, 1.0, 1.5])
    torch.testing.assert_close(to_unit_range(x, (-1.0, 1.0)), torch.tensor([0.0, 0.5, 1.0, 1.0]))
    torch.testing.assert_close(to_unit_range(x, (0.0, 1.0)), torch.tensor([0.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="high > low"):
        to_unit_range(x, (1.0, 1.0))


def test_domain_extractor_runs_the_trunk_once_when_the_classifier_has_a_head():
    clf = CountingClassifier()
    extractor = DomainExtractor(clf, name="counting")
    x = extractor.prepare(torch.rand(5, 1, 28, 28) * 2 - 1, value_range=(-1.0, 1.0))
    assert x.min() >= 0 and x.max() <= 1
    features, logits = extractor(x)
    assert features.shape == (5, 6) and logits.shape == (5, 10)
    assert clf.trunk_calls == 1
    torch.testing.assert_close(logits, clf.fc(clf.trunk(x)))
    # without a head the classifier's own forward gives the logits (a second trunk pass, same values)
    headless = CountingClassifier(with_head=False)
    headless.load_state_dict({k: v for k, v in clf.state_dict().items() if not k.startswith("head.")})
    torch.testing.assert_close(DomainExtractor(headless)(x)[1], logits)
    assert headless.trunk_calls == 2


def test_extractors_stay_frozen_in_eval_mode():
    clf = CountingClassifier()
    clf.trunk.append(nn.Dropout(0.5))
    ext = DomainExtractor(clf)
    assert isinstance(ext, FeatureExtractor)
    ext.train()
    assert not any(m.training for m in ext.modules())
    assert not any(p.requires_grad for p in ext.parameters())


def test_weights_digest_names_the_weights():
    a = DomainExtractor(CountingClassifier(), name="digits")
    b = DomainExtractor(CountingClassifier(), name="digits")
    assert a.name.startswith("digits@") and a.name != b.name  # different random weights
    b.classifier.load_state_dict(a.classifier.state_dict())
    assert weights_digest(a.classifier) == weights_digest(b.classifier)


@requires_torch_fidelity
def test_missing_inception_weights_name_the_file_and_never_download(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("tried to download"))
    with pytest.raises(FileNotFoundError) as err:
        InceptionExtractor()
    message = str(err.value)
    assert INCEPTION_WEIGHTS_FILENAME in message and INCEPTION_WEIGHTS_URL in message and "download=True" in message
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        InceptionExtractor(weights_path=tmp_path / "nowhere.pth")
    with pytest.raises(FileNotFoundError, match=INCEPTION_WEIGHTS_FILENAME):  # "auto" for RGB data is Inception
        build_extractor("auto", image_shape=(3, 32, 32), dataset_name="cifar10")


@requires_torch_fidelity
def test_inception_weights_load_from_a_local_file_in_the_exact_format(inception_weights):
    extractor = InceptionExtractor(weights_path=inception_weights)  # strict load_state_dict: every key and shape
    assert extractor.name.startswith("inception-v3-compat-antialias@") and extractor.antialias
    x = extractor.prepare(torch.rand(1, 1, 28, 28) * 2 - 1, value_range=(-1.0, 1.0))  # grayscale in [-1, 1]
    assert x.dtype == torch.uint8 and x.shape == (1, 3, 28, 28)  # repeated to RGB, torchmetrics' uint8 convention
    features, logits = extractor(x)  # one pass, resized to 299x299 inside (about 4 s on a slow CPU core)
    assert features.shape == (1, 2048) and logits.shape == (1, 1008)
    assert torch.isfinite(features).all() and torch.isfinite(logits).all()
    tf_resize = InceptionExtractor(weights_path=inception_weights, antialias=False)
    assert tf_resize.name.startswith("inception-v3-compat-tf1-bilinear@")  # the resize mode is part of the name
    assert tf_resize.name.split("@")[1] == extractor.name.split("@")[1]  # same weights digest


@requires_torch_fidelity
@pytest.mark.slow
def test_inception_outputs_equal_torchmetrics_fid_and_is_networks(inception_weights):
    from torchmetrics.image.fid import NoTrainInceptionV3

    images = torch.rand(2, 1, 28, 28)
    rgb_uint8 = (images.repeat(1, 3, 1, 1) * 255).byte()  # what FID / IS(normalize=True) feed their network
    for antialias in (True, False):
        extractor = InceptionExtractor(weights_path=inception_weights, antialias=antialias)
        features, logits = extractor(extractor.prepare(images, value_range=(0.0, 1.0)))
        path = str(inception_weights)
        fid_net = NoTrainInceptionV3("inception-v3-compat", ["2048"], path, antialias=antialias)
        is_net = NoTrainInceptionV3("inception-v3-compat", ["logits_unbiased"], path, antialias=antialias)
        torch.testing.assert_close(features, fid_net(rgb_uint8))
        torch.testing.assert_close(logits, is_net(rgb_uint8))
        if antialias:
            antialiased_features = features
    assert not torch.allclose(antialiased_features, features)  # the two resize modes differ


@requires_torch_fidelity
def test_download_only_when_asked_into_the_torch_hub_cache(monkeypatch, tmp_path, inception_weights):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    fetched = []

    def fake_download(url: str, dst: str, progress: bool = True) -> None:
        fetched.append(url)
        Path(dst).write_bytes(inception_weights.read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    path = InceptionExtractor.resolve_weights(None, download=True)
    assert fetched == [INCEPTION_WEIGHTS_URL]
    assert path == tmp_path / "hub" / "checkpoints" / INCEPTION_WEIGHTS_FILENAME and path.is_file()
    # once in the cache it is found there without download=True, and not fetched again
    assert InceptionExtractor.resolve_weights(None) == path and len(fetched) == 1


def test_build_extractor_passes_instances_through_and_refuses_unknown_names():
    ext = DomainExtractor(CountingClassifier())
    assert build_extractor(ext, image_shape=(3, 32, 32)) is ext
    with pytest.raises(ValueError, match="'auto', 'domain', 'inception'"):
        build_extractor("resnet", image_shape=(1, 28, 28))


def test_auto_picks_the_domain_classifier_for_digit_images(monkeypatch):
    import lightning_gan.metrics.domain_classifier as dc

    asked = []
    monkeypatch.setattr(
        dc, "load_domain_classifier", lambda dataset, weights_path=None: asked.append(dataset) or CountingClassifier()
    )
    assert build_extractor("auto", image_shape=(1, 28, 28), dataset_name="MNIST").name.startswith("mnist_classifier@")
    assert build_extractor("auto", image_shape=(1, 28, 28), dataset_name="fashion_mnist").name.startswith(
        "fashion_mnist_classifier@"
    )
    assert asked == ["mnist", "fashion_mnist"]


@requires_shipped_classifier
def test_shipped_domain_classifier_as_extractor():
    extractor = build_extractor("domain", dataset_name="mnist")
    assert isinstance(extractor, DomainExtractor)
    features, logits = extractor(extractor.prepare(torch.rand(3, 1, 28, 28), (0.0, 1.0)))
    assert features.shape == (3, extractor.num_features) and logits.shape == (3, 10)
