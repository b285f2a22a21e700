"""Parameter counts from built modules, checked against exact counts of the SpinalNet models."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from spinal_lightning import VGG5, FCHead, SpinalHead, TorchvisionBackbone
from spinal_lightning.params import count_head_parameters, count_parameters, parameter_counts


def vgg_spinal_head(in_features: int = 256, num_classes: int = 10) -> SpinalHead:
    return SpinalHead(in_features, num_classes, layer_width=128, num_layers=4, dropout=0.5, batch_norm=True)


class FlatBackbone(nn.Module):
    """A backbone this project does not know, so it has no default FC head."""

    num_features = 16

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, self.num_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(images.flatten(1))


def test_vgg5_spinal_counts():
    counts = parameter_counts(VGG5(1), vgg_spinal_head(), num_classes=10)

    assert counts == {
        "model/params/total": 3_629_770,
        "model/params/trainable": 3_629_770,
        "model/params/backbone": 3_508_416,
        "model/params/head": 121_354,
        "model/params/replaced_fc_head": 137_738,
        "model/params/head_reduction": 1.135,
    }


def test_vgg5_fc_counts_have_no_replaced_head():
    head = FCHead(256, 10, hidden_features=(512,), dropout=0.5, batch_norm=True)
    counts = parameter_counts(VGG5(1), head, num_classes=10)

    assert counts == {
        "model/params/total": 3_646_154,
        "model/params/trainable": 3_646_154,
        "model/params/backbone": 3_508_416,
        "model/params/head": 137_738,
    }


def test_alexnet_spinal_replaces_stock_classifier():
    backbone = TorchvisionBackbone("alexnet", in_channels=3)
    head = SpinalHead(9216, 10, layer_width=20, num_layers=4)
    counts = parameter_counts(backbone, head, num_classes=10)

    assert counts["model/params/head"] == 370_730
    assert counts["model/params/replaced_fc_head"] == 54_575_114
    assert counts["model/params/head_reduction"] == pytest.approx(54_575_114 / 370_730, abs=1e-4)


def test_configured_fc_head_overrides_default():
    fc_head = partial(FCHead, hidden_features=(1024,))
    counts = parameter_counts(VGG5(1), vgg_spinal_head(), num_classes=10, fc_head_factory=fc_head)

    # 256 -> 1024 -> 10 with biases.
    assert counts["model/params/replaced_fc_head"] == 256 * 1024 + 1024 + 1024 * 10 + 10


def test_unknown_backbone_has_no_replaced_head():
    counts = parameter_counts(FlatBackbone(), SpinalHead(16, 3, layer_width=4), num_classes=3)

    assert "model/params/replaced_fc_head" not in counts
    assert "model/params/head_reduction" not in counts
    assert counts["model/params/backbone"] == 4 * 16 + 16


def test_frozen_backbone_counts_only_head_as_trainable():
    backbone = VGG5(1).requires_grad_(False)
    counts = parameter_counts(backbone, vgg_spinal_head(), num_classes=10)

    assert counts["model/params/trainable"] == 121_354
    assert counts["model/params/total"] == 3_629_770


def test_head_counted_on_meta_device_matches_real():
    factory = partial(FCHead, hidden_features=(4096, 4096))

    assert count_head_parameters(factory, 9216, 10) == count_parameters(factory(9216, 10))


def test_shared_parameter_counted_once():
    linear = nn.Linear(3, 3)
    model = nn.Sequential(linear, linear)

    assert count_parameters(model) == 12
