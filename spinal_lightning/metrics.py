"""Metrics that torchmetrics does not ship."""

from __future__ import annotations

from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy


class MulticlassErrorRate(MulticlassAccuracy):
    """Fraction of misclassified samples, ``1 - accuracy``; takes the arguments of ``MulticlassAccuracy``."""

    higher_is_better = False

    def compute(self) -> Tensor:
        return 1 - super().compute()
