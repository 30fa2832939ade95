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
