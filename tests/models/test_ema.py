from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_gan.models import EMA
from lightning_gan.models.ema import debiased_decay


def test_bias_corrected_average_equals_the_normalised_exponential_weights():
    decay = 0.9
    net = nn.Linear(1, 1, bias=False)
    ema = EMA(net, decay=decay)
    values = [2.0, -1.0, 5.0, 0.5, 3.0]
    for i, v in enumerate(values):
        with torch.no_grad():
            net.weight.fill_(v)
        ema.restart(net) if i == 0 else ema.update(net)
    weights = [decay ** (len(values) - 1 - i) for i in range(len(values))]
    expected = sum(w * v for w, v in zip(weights, values, strict=True)) / sum(weights)
    assert ema.module.weight.item() == pytest.approx(expected, rel=1e-6)


def test_decay_tends_to_the_nominal_value():
    assert debiased_decay(0.9999, 1) == 0.0
    assert debiased_decay(0.9999, 10**6) == pytest.approx(0.9999, abs=1e-9)


def test_buffers_follow_the_live_model_and_the_average_is_not_trained():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = EMA(net, decay=0.99)
    ema.restart(net)
    net.train()
    net(torch.randn(16, 3) * 3 + 1)  # moves the BN running statistics
    ema.update(net)
    torch.testing.assert_close(ema.module[1].running_mean, net[1].running_mean)
    torch.testing.assert_close(ema.module[1].running_var, net[1].running_var)
    assert not any(p.requires_grad for p in ema.parameters())
    with pytest.raises(ValueError, match="decay must be in"):
        EMA(net, decay=1.0)


def _trajectory(foreach: bool) -> EMA:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    ema = EMA(net, decay=0.9)
    for i in range(5):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        net(torch.randn(8, 3))  # moves the BN statistics
        ema.restart(net) if i == 0 else ema.update(net, foreach=foreach)
    return ema


def test_foreach_update_and_the_per_parameter_loop_give_the_same_numbers():
    fast, loop = _trajectory(foreach=True), _trajectory(foreach=False)
    for (name, a), b in zip(fast.state_dict().items(), loop.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert fast.num_averaged == loop.num_averaged == int(fast.n_averaged) == 5


def test_update_never_reads_the_count_tensor():
    # a meta tensor has no data: any host read (int(), bool(), item()) of it raises, device-side add_ works
    net = nn.Linear(2, 2)
    ema = EMA(net, decay=0.9)
    ema.restart(net)
    ema.n_averaged = torch.ones((), dtype=torch.long, device="meta")
    ema.update(net)
    ema.update(net)
    assert ema.num_averaged == 3
    with pytest.raises((RuntimeError, NotImplementedError)):
        ema.update(net, foreach=False)  # the plain loop reads the count from the tensor


def test_count_is_checkpointed_and_read_back_after_loading():
    trained = _trajectory(foreach=True)
    fresh = EMA(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)), decay=0.9)
    assert fresh.num_averaged == 0
    fresh.load_state_dict(trained.state_dict())
    assert fresh.num_averaged == 5
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    trained.update(net)
    fresh.update(net)  # the sixth sample: decay debiased_decay(0.9, 6) in both
    for a, b in zip(trained.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
