import io

import numpy as np
import pytest
import torch

from lightning_gan.optim import LinearDecayLR, ReferenceAdam


def reference_adam_numpy(p, grads, lr, b1, b2, eps):
    """openai/improved-gan nn.adam_updates, step by step."""
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        p = p - lr * (m / (1 - b1**t)) / np.sqrt(v / (1 - b2**t) + eps)
    return p


def run(opt_cls, p0, grads, **kwargs):
    p = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = opt_cls([p], **kwargs)
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return p.detach().numpy(), opt


def test_steps_equal_the_reference_formula():
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=5)
    grads = [rng.normal(size=5) * scale for scale in (1.0, 1e-3, 1e-5, 1e-6, 2.0, 1e-7)]
    got, _ = run(ReferenceAdam, p0, grads, lr=0.003, betas=(0.5, 0.999), eps=1e-8)
    np.testing.assert_allclose(got, reference_adam_numpy(p0, grads, 0.003, 0.5, 0.999, 1e-8), rtol=1e-12)


def test_large_gradients_step_like_torch_adam_vanishing_ones_far_less():
    p0 = np.zeros(3)
    big = [np.array([1.0, -2.0, 0.5])] * 3
    ours, _ = run(ReferenceAdam, p0, big, lr=0.01, betas=(0.5, 0.999), eps=1e-8)
    torchs, _ = run(torch.optim.Adam, p0, big, lr=0.01, betas=(0.5, 0.999), eps=1e-8)
    np.testing.assert_allclose(ours, torchs, rtol=1e-6)
    tiny = [np.full(3, 1e-7)] * 3  # sqrt(v_hat) = 1e-7: torch steps lr * 1e-7 / (1e-7 + 1e-8), we lr * 1e-7 / 1e-4
    ours, _ = run(ReferenceAdam, p0, tiny, lr=0.01, betas=(0.5, 0.999), eps=1e-8)
    torchs, _ = run(torch.optim.Adam, p0, tiny, lr=0.01, betas=(0.5, 0.999), eps=1e-8)
    assert np.all(np.abs(torchs) > 500 * np.abs(ours))
    np.testing.assert_allclose(np.abs(ours), 3 * 0.01 * 1e-7 / np.sqrt(1e-14 + 1e-8), rtol=1e-6)


def test_state_round_trips_through_a_weights_only_checkpoint():
    rng = np.random.default_rng(1)
    grads = [rng.normal(size=4) for _ in range(4)]
    _, opt = run(ReferenceAdam, np.zeros(4), grads[:2], lr=0.1)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    p = torch.nn.Parameter(torch.tensor(opt.param_groups[0]["params"][0].detach().numpy()))
    resumed = ReferenceAdam([p], lr=0.1)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for g in grads[2:]:
        p.grad = torch.tensor(g)
        resumed.step()
    whole, _ = run(ReferenceAdam, np.zeros(4), grads, lr=0.1)
    np.testing.assert_allclose(p.detach().numpy(), whole, rtol=1e-12)


@pytest.mark.parametrize("kwargs", [{"lr": -1.0}, {"eps": -1e-8}, {"betas": (1.0, 0.999)}])
def test_bad_hyperparameters_are_refused(kwargs):
    with pytest.raises(ValueError, match="ReferenceAdam"):
        ReferenceAdam([torch.nn.Parameter(torch.zeros(1))], **kwargs)


def _sgd(lr: float = 3e-4, groups: int = 1) -> torch.optim.SGD:
    groups_ = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr * (i + 1)} for i in range(groups)]
    return torch.optim.SGD(groups_)


@pytest.mark.parametrize("total, decay", [(1200, 400), (900, 300)])  # reference CIFAR-10, SVHN
def test_linear_decay_follows_the_reference_schedule_epoch_by_epoch(total, decay):
    opt = _sgd(groups=2)
    sched = LinearDecayLR(opt, total_epochs=total, decay_epochs=decay)
    lrs = []
    for _epoch in range(total + 3):  # a few epochs past the end: clamped at 0
        lrs.append([group["lr"] for group in opt.param_groups])
        opt.step()
        sched.step()
    for epoch in (0, 1, total - decay - 1, total - decay, total - decay + 1, total - decay // 2, total - 1):
        # openai/improved-gan: lr = learning_rate * np.minimum(3. - epoch/400., 1.) (CIFAR-10; /300. for SVHN)
        reference = 3e-4 * min(3.0 - epoch / decay, 1.0)
        assert lrs[epoch] == pytest.approx([reference, 2 * reference], rel=1e-9, abs=1e-15), epoch
    assert lrs[total - decay] == pytest.approx([3e-4, 6e-4])  # the last constant epoch
    assert lrs[total] == lrs[total + 2] == [0.0, 0.0]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_linear_decay_state_dict_round_trip_resumes_the_same_rates():
    opt = _sgd()
    sched = LinearDecayLR(opt, total_epochs=10, decay_epochs=4)
    for _ in range(7):
        opt.step()
        sched.step()
    buffer = io.BytesIO()
    torch.save(sched.state_dict(), buffer)  # plain attributes: loads under weights_only
    buffer.seek(0)
    opt2 = _sgd(lr=1.0)  # a fresh optimizer; base_lrs come from the state dict
    resumed = LinearDecayLR(opt2, total_epochs=1, decay_epochs=1)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert (resumed.total_epochs, resumed.decay_epochs, resumed.last_epoch) == (10, 4, 7)
    rates = []
    for s, o in ((sched, opt), (resumed, opt2)):
        o.step()
        s.step()
        rates.append(s.get_last_lr())
    assert rates[0] == rates[1] == pytest.approx([3e-4 * 2 / 4])  # epoch 8: (10 - 8) / 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"total_epochs": 0, "decay_epochs": 1}, "total_epochs must be a positive integer"),
        ({"total_epochs": 10, "decay_epochs": 0}, "decay_epochs must be a positive integer"),
        ({"total_epochs": 10.5, "decay_epochs": 2}, "total_epochs must be a positive integer"),
        ({"total_epochs": 10, "decay_epochs": 11}, "must not exceed total_epochs"),
    ],
)
def test_linear_decay_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LinearDecayLR(_sgd(), **kwargs)


def test_foreach_and_the_plain_loop_give_the_same_parameters():
    shapes = [(3, 4), (4,), (2, 2, 2)]
    results = []
    for foreach in (True, False):
        params = [torch.nn.Parameter(torch.ones(s, dtype=torch.float64)) for s in shapes]
        opt = ReferenceAdam(params, lr=0.01, betas=(0.5, 0.999), foreach=foreach)
        grad_rng = np.random.default_rng(3)
        for _ in range(4):
            for p in params:
                p.grad = torch.tensor(grad_rng.normal(size=p.shape) * 1e-4)
            opt.step()
        results.append([p.detach().clone() for p in params])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    assert not torch.equal(results[0][0], torch.ones(3, 4, dtype=torch.float64))  # they moved


def test_fused_update_equals_the_reference_formula_with_a_changing_lr():
    rng = np.random.default_rng(4)
    p0 = rng.normal(size=(3, 5))
    grads = [rng.normal(size=(3, 5)) * scale for scale in (1.0, 1e-3, 1e-6, 2.0, 1e-7, 0.5)]
    p = torch.nn.Parameter(torch.tensor(p0))
    q = torch.nn.Parameter(torch.tensor(p0[0]))  # a second shape in the same group
    opt = ReferenceAdam([p, q], lr=0.003, betas=(0.5, 0.999), eps=1e-8, fused=True)
    expected_p, expected_q = p0.copy(), p0[0].copy()
    for k in range(len(grads)):
        lr = 0.003 if k < 3 else 0.001  # the step size is a tensor argument: a new lr must not be a stale constant
        opt.param_groups[0]["lr"] = lr
        p.grad, q.grad = torch.tensor(grads[k]), torch.tensor(grads[k][1])
        opt.step()
    # the numpy reference with the same lr schedule: lr only scales each step, so run it step by step
    m_p, v_p, m_q, v_q = (np.zeros_like(expected_p), np.zeros_like(expected_p), np.zeros(5), np.zeros(5))
    for t, g in enumerate(grads, start=1):
        lr = 0.003 if t <= 3 else 0.001
        for state, grad in ((0, g), (1, g[1])):
            m, v, x = (m_p, v_p, expected_p) if state == 0 else (m_q, v_q, expected_q)
            m[...] = 0.5 * m + 0.5 * grad
            v[...] = 0.999 * v + 0.001 * grad**2
            x[...] = x - lr * (m / (1 - 0.5**t)) / np.sqrt(v / (1 - 0.999**t) + 1e-8)
    np.testing.assert_allclose(p.detach().numpy(), expected_p, rtol=1e-12)
    np.testing.assert_allclose(q.detach().numpy(), expected_q, rtol=1e-12)
    assert opt.param_groups[0]["fused"]  # it compiled; no fallback


def test_fused_falls_back_to_foreach_with_a_warning_when_compiling_fails(monkeypatch):
    import lightning_gan.optim as optim

    def broken() -> None:
        def update(*args) -> None:
            raise RuntimeError("no C++ compiler")

        return update

    monkeypatch.setattr(optim, "_compiled_update", broken)
    rng = np.random.default_rng(5)
    grads = [rng.normal(size=4) for _ in range(3)]
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = ReferenceAdam([p], lr=0.1, fused=True)
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*no C\\+\\+ compiler.*foreach"):
        for g in grads:
            p.grad = torch.tensor(g)
            opt.step()
    assert not opt.param_groups[0]["fused"]
    np.testing.assert_allclose(p.detach().numpy(), reference_adam_numpy(np.zeros(4), grads, 0.1, 0.9, 0.999, 1e-8))
