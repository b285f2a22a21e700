"""SpinalHead and FCHead: exact parameter counts, feature coverage and argument checks."""

import pytest
import torch

from spinal_lightning.heads import FCHead, SpinalHead, split_sizes


def count_parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


VGG_STYLE = {"dropout": 0.5, "batch_norm": True}


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (lambda: SpinalHead(9216, 10, layer_width=20), 370_730),
        (lambda: FCHead(9216, 10, hidden_features=(4096, 4096), dropout=0.5), 54_575_114),
        (lambda: SpinalHead(256, 10, layer_width=128, **VGG_STYLE), 121_354),
        (lambda: FCHead(256, 10, hidden_features=(512,), **VGG_STYLE), 137_738),
    ],
    ids=["alexnet-spinal", "alexnet-fc", "vgg5-spinal", "vgg5-fc"],
)
def test_head_parameter_counts(head, expected):
    assert count_parameters(head()) == expected


@pytest.mark.parametrize(("in_features", "num_splits"), [(2049, 3), (2049, 2), (7, 4), (256, 2)])
def test_every_feature_gets_gradient(in_features, num_splits):
    torch.manual_seed(0)
    head = SpinalHead(in_features, 5, layer_width=8, num_layers=4, num_splits=num_splits)
    features = torch.randn(6, in_features, requires_grad=True)

    head(features).square().sum().backward()

    untouched = (features.grad.abs().sum(dim=0) == 0).nonzero().flatten().tolist()
    assert untouched == []


def test_split_sizes_cover_all_features():
    assert split_sizes(2049, 3) == [683, 683, 683]
    assert split_sizes(2049, 2) == [1025, 1024]
    assert split_sizes(10, 4) == [3, 3, 2, 2]


def test_spinal_layer_inputs_cycle_through_parts():
    head = SpinalHead(10, 3, layer_width=4, num_layers=5, num_splits=3)

    in_widths = [layer[0].in_features for layer in head.spinal_layers]

    # Parts are 4, 3, 3 wide; layers after the first also read the previous layer's 4 outputs.
    assert in_widths == [4, 3 + 4, 3 + 4, 4 + 4, 3 + 4]
    assert head.output[-1].in_features == 5 * 4


def test_vgg_style_layer_order():
    head = SpinalHead(256, 10, layer_width=128, **VGG_STYLE)

    layer_types = [type(module).__name__ for module in head.spinal_layers[0]]

    assert layer_types == ["Dropout", "Linear", "BatchNorm1d", "ReLU"]
    assert [type(module).__name__ for module in head.output] == ["Dropout", "Linear"]


def test_linear_style_has_no_activation():
    head = SpinalHead(32, 4, layer_width=8, activation="none")

    assert all(type(layer[-1]).__name__ == "Identity" for layer in head.spinal_layers)


def test_heads_output_logits_shape():
    features = torch.randn(3, 256)

    assert SpinalHead(256, 7, layer_width=16)(features).shape == (3, 7)
    assert FCHead(256, 7, hidden_features=())(features).shape == (3, 7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layer_width": 0}, "layer_width must be a positive integer, got 0"),
        ({"layer_width": 8, "num_layers": -1}, "num_layers must be a positive integer, got -1"),
        ({"layer_width": 8, "num_splits": 300}, "num_splits=300 is larger than in_features=256"),
        ({"layer_width": 8, "dropout": 1.5}, "dropout must be in [0, 1), got 1.5"),
        ({"layer_width": 8, "activation": "swish"}, "Unknown activation 'swish'"),
    ],
)
def test_spinal_head_rejects_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        SpinalHead(256, 10, **kwargs)

    assert message in str(error.value)


def test_fc_head_rejects_zero_width():
    with pytest.raises(ValueError, match="hidden_features must be a positive integer, got 0"):
        FCHead(256, 10, hidden_features=(512, 0))
