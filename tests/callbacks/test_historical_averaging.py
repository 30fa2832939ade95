from __future__ import annotations

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer, seed_everything
from torch import nn

from lightning_gan.callbacks import HistoricalAveraging
from lightning_gan.models import SemiSupervisedGAN
from lightning_gan.networks import MNISTDiscriminator, MNISTGenerator


class TwoPlayers(LightningModule):
    """A stand-in with a ``generator`` and a ``discriminator``, for calling the callback outside a Trainer."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = nn.Linear(2, 1, bias=False)
        self.discriminator = nn.Linear(1, 1, bias=False)


def test_gradient_and_exact_running_mean_after_several_steps_by_hand():
    model = TwoPlayers()
    opt_g = torch.optim.SGD(model.generator.parameters(), lr=1.0)
    opt_d = torch.optim.SGD(model.discriminator.parameters(), lr=1.0)
    ha = HistoricalAveraging(weight=0.5, modules="generator")
    values = [torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 0.0]]), torch.tensor([[5.0, 7.0]])]
    for t, value in enumerate(values, start=1):
        with torch.no_grad():
            model.generator.weight.copy_(value)
        model.generator.weight.grad = torch.full((1, 2), 0.25)  # the player's own loss gradient
        ha.apply(model, opt_g)
        mean = torch.stack(values[:t]).mean(0)  # (1/t) sum_{i<=t} theta[i], current value included
        torch.testing.assert_close(ha.sums["generator.weight"] / ha.counts["generator.weight"], mean)
        assert ha.counts["generator.weight"] == t
        torch.testing.assert_close(model.generator.weight.grad, 0.25 + 2 * 0.5 * (value - mean))
    # by hand at t = 3: mean = [3, 3], theta - mean = [2, 4], added gradient 2 * 0.5 * [2, 4]
    torch.testing.assert_close(model.generator.weight.grad, torch.tensor([[2.25, 4.25]]))
    # the discriminator is not chosen: its optimizer step is left alone
    model.discriminator.weight.grad = None
    ha.apply(model, opt_d)
    assert model.discriminator.weight.grad is None and "discriminator.weight" not in ha.sums


def test_state_round_trip_continues_the_same_average():
    model = TwoPlayers()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ha = HistoricalAveraging(weight=0.1)
    for _ in range(3):
        model.zero_grad()
        ha.apply(model, opt)
        opt.step()
    state = ha.state_dict()
    assert all(type(v) is torch.Tensor for v in state["sums"].values())
    assert state["counts"] == {"generator.weight": 3, "discriminator.weight": 3}
    restored = HistoricalAveraging(weight=0.1)
    restored.load_state_dict(torch.load(_save(state), weights_only=True))
    assert restored.counts == ha.counts
    for k in ha.sums:
        assert torch.equal(restored.sums[k], ha.sums[k])
    # one more step from the same parameters gives the same gradients and state
    twin = TwoPlayers()
    twin.load_state_dict(model.state_dict())
    model.zero_grad()
    ha.apply(model, opt)
    restored.apply(twin, torch.optim.SGD(twin.parameters(), lr=0.1))
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)
    assert all(torch.equal(ha.sums[k], restored.sums[k]) for k in ha.sums) and ha.counts == restored.counts
    assert HistoricalAveraging(0.1, "generator").state_key != HistoricalAveraging(0.1, "both").state_key


def _save(state):
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def test_clear_errors_for_bad_arguments():
    with pytest.raises(ValueError, match="modules must be one of"):
        HistoricalAveraging(0.1, modules="critic")
    with pytest.raises(ValueError, match="weight must be >= 0"):
        HistoricalAveraging(-1.0)


def _fit(tmp_path, datamodule, callbacks, steps: int = 2 * 4) -> SemiSupervisedGAN:
    seed_everything(0)
    model = SemiSupervisedGAN(MNISTGenerator(noise_dim=20), MNISTDiscriminator(num_classes=3))
    Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=tmp_path,
        callbacks=callbacks,
    ).fit(model, datamodule=datamodule)
    return model


def test_changes_the_updates_inside_a_manual_optimization_fit(tmp_path, tiny_datamodule):
    plain = _fit(tmp_path, tiny_datamodule, [])
    ha = HistoricalAveraging(weight=10.0, modules="generator")
    averaged = _fit(tmp_path, tiny_datamodule, [ha])
    # the hook ran once per generator step (4 iterations) and never on the discriminator's steps
    assert set(ha.counts.values()) == {4} and all(k.startswith("generator.") for k in ha.counts)
    trainable = {n for n, p in averaged.generator.named_parameters() if p.requires_grad}
    assert set(ha.counts) == {f"generator.{n}" for n in trainable}
    # the first G step has a zero penalty; later ones pull the generator back: its parameters differ
    assert any(
        not torch.equal(a, b)
        for a, b in zip(plain.generator.parameters(), averaged.generator.parameters(), strict=True)
    )
    # the seeded run without the callback is reproducible, so the difference is the callback's
    again = _fit(tmp_path, tiny_datamodule, [])
    for a, b in zip(plain.generator.parameters(), again.generator.parameters(), strict=True):
        assert torch.equal(a, b)
    # the running mean is the mean of the values before each of the 4 steps: not the final value
    name = "generator.out.bias"
    final = dict(averaged.named_parameters())[name].detach()
    assert not torch.allclose(ha.sums[name] / 4, final)
