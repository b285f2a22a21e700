"""Parameter counts of a backbone + head model, including the FC head that a SpinalNet head replaces.

Every count is read off a built ``nn.Module``, never computed from a formula, so a count is right
for any head or backbone configuration. Imports torch only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from spinal_lightning.backbones.vgg5 import VGG5
from spinal_lightning.heads import FCHead, SpinalHead

HeadFactory = Callable[[int, int], nn.Module]  # (in_features, num_classes) -> head

# Prefix of the keys in a run's config and summary, for example ``model/params/head``.
KEY_PREFIX = "model/params"


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Return the number of parameter elements of ``module`` (shared parameters counted once)."""
    return sum(
        parameter.numel()
        for parameter in module.parameters()
        if parameter.requires_grad or not trainable_only
    )


def default_fc_head_factory(backbone: nn.Module) -> HeadFactory | None:
    """Return a factory of the FC head that the backbone is normally used with, or ``None``.

    A torchvision backbone reports the hidden widths of the classifier it came with
    (``stock_hidden_features``): AlexNet and VGG have two hidden layers of 4096. VGG-5's FC head in
    the SpinalNet paper is Dropout(0.5), 256 -> 512, BatchNorm1d, ReLU, Dropout(0.5), 512 -> classes.
    Any other backbone has no known FC head, so the caller has to configure one.
    """
    stock_hidden_features = getattr(backbone, "stock_hidden_features", None)
    if stock_hidden_features is not None:

        def stock_head(in_features: int, num_classes: int) -> nn.Module:
            return FCHead(in_features, num_classes, hidden_features=tuple(stock_hidden_features))

        return stock_head

    if isinstance(backbone, VGG5):

        def vgg5_head(in_features: int, num_classes: int) -> nn.Module:
            return FCHead(in_features, num_classes, hidden_features=(512,), dropout=0.5, batch_norm=True)

        return vgg5_head

    return None


def count_head_parameters(head_factory: HeadFactory, in_features: int, num_classes: int) -> int:
    """Build a head on the meta device, which allocates no memory, and return its parameter count."""
    with torch.device("meta"):
        head = head_factory(in_features, num_classes)
    return count_parameters(head)


def parameter_counts(
    backbone: nn.Module,
    head: nn.Module,
    num_classes: int,
    fc_head_factory: HeadFactory | None = None,
) -> dict[str, int | float]:
    """Return the parameter counts of a backbone + head model under ``model/params/...`` keys.

    Keys: ``total``, ``trainable``, ``backbone``, ``head``. For a ``SpinalHead`` also
    ``replaced_fc_head``, the parameters of the FC head it replaces (``fc_head_factory``, or
    the backbone's default FC head), and ``head_reduction``, that count divided by the Spinal
    head's count (2.0 means the Spinal head has half the parameters).
    """
    model = nn.ModuleDict({"backbone": backbone, "head": head})
    counts: dict[str, int | float] = {
        "total": count_parameters(model),
        "trainable": count_parameters(model, trainable_only=True),
        "backbone": count_parameters(backbone),
        "head": count_parameters(head),
    }

    if isinstance(head, SpinalHead):
        factory = fc_head_factory or default_fc_head_factory(backbone)
        if factory is not None:
            replaced = count_head_parameters(factory, head.in_features, num_classes)
            counts["replaced_fc_head"] = replaced
            counts["head_reduction"] = round(replaced / counts["head"], 4)

    return {f"{KEY_PREFIX}/{name}": value for name, value in counts.items()}
