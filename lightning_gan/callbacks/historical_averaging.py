"""Historical averaging (Salimans et al. 2016, section 3.3) as a callback.

Each chosen player's cost gets the term ``lambda * ||theta - (1/t) sum_{i=1..t} theta[i]||^2``, where theta[i]
is the value of the parameters at past time i. The callback adds its gradient to ``.grad`` just before the
player's optimizer step, so it works with any model and any optimizer, under automatic or manual optimization
(Lightning calls ``on_before_optimizer_step`` from ``LightningOptimizer.step`` in both cases).
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor
from typing_extensions import override

__all__ = ["HistoricalAveraging"]

PLAYERS = {"generator": ("generator",), "discriminator": ("discriminator",), "both": ("generator", "discriminator")}


class HistoricalAveraging(Callback):
    """Add the gradient of ``weight * ||theta - mean of past theta||^2`` before each chosen optimizer step.

    Definition of "past": at the t-th optimizer step that updates a parameter, theta[1..t] are the values the
    parameter had just before each of its steps 1..t, the current value included, so the penalty is
    ``lambda ||theta[t] - (1/t) sum_{i=1..t} theta[i]||^2`` (zero at the first step). The mean is a constant of
    the step (no gradient flows through it), so the added gradient is ``2 lambda (theta - mean)``. The mean is
    exact: the callback keeps the sum of the past values and their count per parameter, not a moving average.

    Which player an optimizer steps is told by its parameters: a parameter is averaged when it belongs to
    ``pl_module.<player>`` for a chosen player (``pl_module.generator`` / ``pl_module.discriminator``). Only
    parameters the optimizer updates are touched (frozen ones are in no optimizer).

    Under DDP gradients are all-reduced before the optimizer step and the parameters are identical on every
    rank after each step, so the sums, the means and the added gradients are identical on every rank too:
    no communication is needed, and the state saved by rank 0 is every rank's state.

    The sums and counts are saved with the checkpoint (``state_dict``: plain tensors and ints, per parameter
    name), so a resumed run continues the same average. ``state_key`` includes the arguments, so several
    instances can coexist.

    Args:
        weight: lambda, the weight of the penalty.
        modules: ``"generator"``, ``"discriminator"`` or ``"both"``: whose parameters are averaged.

    Example:
        >>> from lightning.pytorch import Trainer
        >>> ha = HistoricalAveraging(weight=0.01, modules="discriminator")
        >>> trainer = Trainer(callbacks=[ha], logger=False, enable_progress_bar=False)
        >>> ha.state_key
        "HistoricalAveraging{'weight': 0.01, 'modules': 'discriminator'}"
    """

    def __init__(self, weight: float, modules: str = "both") -> None:
        if weight < 0:
            raise ValueError(f"HistoricalAveraging: weight must be >= 0, got {weight}")
        if modules not in PLAYERS:
            raise ValueError(f"HistoricalAveraging: modules must be one of {sorted(PLAYERS)}, got {modules!r}")
        self.weight = weight
        self.modules = modules
        self.sums: dict[str, Tensor] = {}  # parameter name -> sum of its past values
        self.counts: dict[str, int] = {}  # parameter name -> number of past values in the sum

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(weight=self.weight, modules=self.modules)

    def _chosen_parameters(self, pl_module: LightningModule) -> dict[int, tuple[str, Tensor]]:
        chosen: dict[int, tuple[str, Tensor]] = {}
        for player in PLAYERS[self.modules]:
            net = getattr(pl_module, player, None)
            if net is None:
                raise AttributeError(
                    f"HistoricalAveraging(modules={self.modules!r}) needs pl_module.{player}, "
                    f"which {type(pl_module).__name__} does not have"
                )
            chosen.update({id(p): (f"{player}.{name}", p) for name, p in net.named_parameters()})
        return chosen

    @torch.no_grad()
    def apply(self, pl_module: LightningModule, optimizer: torch.optim.Optimizer) -> None:
        """Update the running sums with the parameters ``optimizer`` is about to step and add the gradients."""
        chosen = self._chosen_parameters(pl_module)
        for group in optimizer.param_groups:
            for p in group["params"]:
                if id(p) not in chosen:
                    continue
                name, _ = chosen[id(p)]
                past = self.sums.get(name)
                self.sums[name] = p.detach().clone() if past is None else past.to(p.device).add_(p)
                self.counts[name] = self.counts.get(name, 0) + 1
                mean = self.sums[name] / self.counts[name]
                grad = (p - mean).mul_(2.0 * self.weight)  # d/dtheta lambda ||theta - mean||^2
                if p.grad is None:
                    p.grad = grad
                else:
                    p.grad.add_(grad)

    @override
    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        self.apply(pl_module, optimizer)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"sums": {k: v.detach().cpu().clone() for k, v in self.sums.items()}, "counts": dict(self.counts)}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.sums = {k: v.clone() for k, v in state_dict["sums"].items()}  # moved to the parameter's device on use
        self.counts = {k: int(v) for k, v in state_dict["counts"].items()}
