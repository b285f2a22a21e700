"""Classifier heads: the SpinalNet head and the plain fully connected baseline.

Both are plain PyTorch modules that take ``in_features`` and ``num_classes`` first, so either can
be dropped after any feature extractor that returns flat features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "none": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """Build the activation layer called ``name`` (one of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ValueError(
            f"Unknown activation {name!r}. Expected one of {sorted(ACTIVATIONS)}; "
            "use 'none' for the linear style without an activation."
        )
    return ACTIVATIONS[name]()


def split_sizes(in_features: int, num_splits: int) -> list[int]:
    """Return the sizes of ``num_splits`` contiguous parts that cover all ``in_features``.

    The first ``in_features % num_splits`` parts get one extra feature, so an odd width such as
    2049 in two parts gives 1025 + 1024 and no feature is dropped.
    """
    base, extra = divmod(in_features, num_splits)
    return [base + 1 if index < extra else base for index in range(num_splits)]


def _require_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _dense_block(
    in_features: int, out_features: int, dropout: float, batch_norm: bool, activation: str
) -> nn.Sequential:
    """Dropout -> Linear -> optional BatchNorm1d -> activation, the order the SpinalNet VGG head uses."""
    layers: list[nn.Module] = []
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(in_features, out_features))
    if batch_norm:
        layers.append(nn.BatchNorm1d(out_features))
    layers.append(make_activation(activation))
    return nn.Sequential(*layers)


def _output_layer(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
    layers.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*layers)


class SpinalHead(nn.Module):
    """SpinalNet classifier head (Kabir et al., "SpinalNet: Deep Neural Network with Gradual Input").

    The flat feature vector is cut into ``num_splits`` contiguous parts. Spinal layer 1 reads part 1;
    spinal layer ``i > 1`` reads the next part (cycling through the parts) concatenated with the
    output of layer ``i - 1``. Every spinal layer has ``layer_width`` units, and one Linear over the
    concatenation of all spinal outputs gives the logits, so each layer reaches the loss directly.

    Args:
        in_features: width of the flat feature vector from the backbone.
        num_classes: number of output logits.
        layer_width: units per spinal layer (8 to 1024 in the SpinalNet paper).
        num_layers: number of spinal layers.
        num_splits: number of parts the features are cut into; parts differ by at most one feature.
        dropout: dropout probability before every Linear, the output layer included.
        batch_norm: add BatchNorm1d after each spinal Linear.
        activation: activation after each spinal layer, a key of ``ACTIVATIONS``.

    The paper's styles are argument choices: "VGG" is ``dropout=0.5, batch_norm=True``, "ResNet" is
    the defaults, and "linear" is ``activation="none"``.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        layer_width: int,
        num_layers: int = 4,
        num_splits: int = 2,
        dropout: float = 0.0,
        batch_norm: bool = False,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        _require_positive(
            in_features=in_features,
            num_classes=num_classes,
            layer_width=layer_width,
            num_layers=num_layers,
            num_splits=num_splits,
        )
        if num_splits > in_features:
            raise ValueError(
                f"num_splits={num_splits} is larger than in_features={in_features}; "
                "every part needs at least one feature."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        make_activation(activation)  # fail early on an unknown name

        self.in_features = in_features
        self.num_classes = num_classes
        self.layer_width = layer_width
        self.num_layers = num_layers
        self.num_splits = num_splits
        self.part_sizes = split_sizes(in_features, num_splits)

        layers = []
        for index in range(num_layers):
            part = self.part_sizes[index % num_splits]
            layer_in = part if index == 0 else part + layer_width
            layers.append(_dense_block(layer_in, layer_width, dropout, batch_norm, activation))
        self.spinal_layers = nn.ModuleList(layers)
        self.output = _output_layer(num_layers * layer_width, num_classes, dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        parts = torch.split(features.flatten(1), self.part_sizes, dim=1)

        outputs = []
        previous = None
        for index, layer in enumerate(self.spinal_layers):
            part = parts[index % self.num_splits]
            layer_input = part if previous is None else torch.cat([part, previous], dim=1)
            previous = layer(layer_input)
            outputs.append(previous)

        return self.output(torch.cat(outputs, dim=1))

    def extra_repr(self) -> str:
        return f"part_sizes={self.part_sizes}"


class FCHead(nn.Module):
    """Plain fully connected head, the baseline that a SpinalHead replaces.

    Args:
        in_features: width of the flat feature vector from the backbone.
        num_classes: number of output logits.
        hidden_features: widths of the hidden layers; an empty tuple gives a single Linear.
        dropout: dropout probability before every Linear, the output layer included.
        batch_norm: add BatchNorm1d after each hidden Linear.
        activation: activation after each hidden layer, a key of ``ACTIVATIONS``.

    VGG-5's default head is ``hidden_features=(512,), dropout=0.5, batch_norm=True``; AlexNet's
    stock classifier shape is ``hidden_features=(4096, 4096), dropout=0.5``.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden_features: Sequence[int] = (512,),
        dropout: float = 0.0,
        batch_norm: bool = False,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        _require_positive(in_features=in_features, num_classes=num_classes)
        for width in hidden_features:
            _require_positive(hidden_features=width)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        make_activation(activation)

        self.in_features = in_features
        self.num_classes = num_classes
        self.hidden_features = tuple(hidden_features)

        widths = [in_features, *self.hidden_features]
        self.hidden = nn.Sequential(
            *(
                _dense_block(widths[index], widths[index + 1], dropout, batch_norm, activation)
                for index in range(len(self.hidden_features))
            )
        )
        self.output = _output_layer(widths[-1], num_classes, dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.output(self.hidden(features.flatten(1)))
