"""Learning-rate schedulers that torch does not ship."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau


class RandomPlateauLR(ReduceLROnPlateau):
    """After ``patience`` epochs without a new best metric, draw a new learning rate at random.

    The new rate is ``base_lr * U ** power`` with ``U`` uniform in [0, 1), the rule of the
    SpinalNet VGG-5 training scripts (``power=3``, ``base_lr=0.005``): small rates are drawn most
    often, with an occasional large one that can leave a poor basin.

    Args:
        optimizer: the wrapped optimizer.
        base_lr: the rate that the random draw scales; defaults to the optimizer's first rate.
        power: exponent applied to the uniform draw.
        mode: ``"max"`` for accuracy-like metrics, ``"min"`` for losses.
        patience: epochs without improvement before a new rate is drawn (0: after every such epoch).
        seed: seed of the draws, so a run with the same seed draws the same rates.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        base_lr: float | None = None,
        power: float = 3.0,
        mode: str = "max",
        patience: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(optimizer, mode=mode, patience=patience)
        self.base_lr = base_lr if base_lr is not None else optimizer.param_groups[0]["lr"]
        self.power = power
        self.generator = torch.Generator().manual_seed(seed)

    def _reduce_lr(self, epoch) -> None:
        draw = torch.rand((), generator=self.generator).item()
        new_lr = self.base_lr * draw**self.power
        for group in self.optimizer.param_groups:
            group["lr"] = new_lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        # The generator object itself is not a tensor, so a weights-only checkpoint load would
        # reject it; its state is a uint8 tensor that loads safely.
        state = {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "generator")}
        state["generator_state"] = self.generator.get_state()
        return state

    def load_state_dict(self, state_dict) -> None:
        state_dict = dict(state_dict)
        generator_state = state_dict.pop("generator_state", None)
        super().load_state_dict(state_dict)
        if generator_state is not None:
            self.generator.set_state(generator_state)
