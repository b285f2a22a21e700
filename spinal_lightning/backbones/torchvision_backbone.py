"""torchvision classification networks with the stock classifier removed, used as feature extractors."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

# Families this wrapper can cut. The value names the attribute that contains the stock
# classifier and the attribute path of the first convolution (replaced for non-RGB inputs).
FAMILIES = {
    "alexnet": ("classifier", "features.0"),
    "vgg": ("classifier", "features.0"),
    "resnet": ("fc", "conv1"),
    "wide_resnet": ("fc", "conv1"),
    "resnext": ("fc", "conv1"),
}

SUPPORTED_NAMES = (
    "alexnet",
    *(f"vgg{depth}{bn}" for depth in (11, 13, 16, 19) for bn in ("", "_bn")),
    *(f"resnet{depth}" for depth in (18, 34, 50, 101, 152)),
    "wide_resnet50_2",
    "wide_resnet101_2",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
)


def _family(name: str) -> str:
    for family in sorted(FAMILIES, key=len, reverse=True):
        if name.startswith(family):
            return family
    raise ValueError(f"Unknown torchvision backbone {name!r}. Expected one of: {', '.join(SUPPORTED_NAMES)}.")


def _get_submodule_parent(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    parent_path, _, child = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    return parent, child


def _classifier_shape(classifier: nn.Module) -> tuple[int, tuple[int, ...]]:
    """Return (in_features, hidden widths) of a stock classifier made of Linear layers."""
    linears = [module for module in classifier.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"No Linear layer found in classifier {classifier!r}.")
    hidden = tuple(layer.out_features for layer in linears[:-1])
    return linears[0].in_features, hidden


def _is_local_file(weights: str) -> bool:
    return os.sep in weights or weights.endswith((".pt", ".pth", ".ckpt", ".bin")) or Path(weights).exists()


def load_local_weights(model: nn.Module, path: str | os.PathLike, skip_prefix: str) -> None:
    """Load a torchvision-style state dict from ``path`` into ``model``, leaving out the classifier.

    The file may hold a plain state dict or a dict with a ``state_dict`` entry (as written by
    Lightning). It is read with ``weights_only=True``, so it cannot run code on load.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Backbone weights file {str(path)!r} not found. Pass an existing checkpoint path, a "
            "torchvision weight name such as 'DEFAULT' or 'IMAGENET1K_V1', or null for random weights."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {key: value for key, value in state.items() if not key.startswith(skip_prefix + ".")}

    own_keys = {key for key in model.state_dict() if not key.startswith(skip_prefix + ".")}
    missing = sorted(own_keys - set(state))
    unexpected = sorted(set(state) - own_keys)
    if missing or unexpected:
        raise ValueError(
            f"Backbone weights file {str(path)!r} does not match the architecture: "
            f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}, "
            f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}. "
            "Save the file from the same torchvision architecture (model.state_dict())."
        )
    model.load_state_dict(state, strict=False)


def _adapt_first_conv(model: nn.Module, conv_path: str, in_channels: int) -> None:
    """Replace the first convolution so it reads ``in_channels`` channels.

    Pretrained RGB filters are summed into one grey channel (which keeps the response to a grey
    image equal to that of the same image repeated on RGB), or cycled and rescaled for other counts.
    """
    parent, child = _get_submodule_parent(model, conv_path)
    old: nn.Conv2d = getattr(parent, child)
    if old.in_channels == in_channels:
        return
    new = nn.Conv2d(
        in_channels,
        old.out_channels,
        kernel_size=old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        bias=old.bias is not None,
    )
    with torch.no_grad():
        if in_channels == 1:
            new.weight.copy_(old.weight.sum(dim=1, keepdim=True))
        else:
            repeats = -(-in_channels // old.in_channels)
            tiled = old.weight.repeat(1, repeats, 1, 1)[:, :in_channels]
            new.weight.copy_(tiled * old.in_channels / in_channels)
        if old.bias is not None:
            new.bias.copy_(old.bias)
    setattr(parent, child, new)


class TorchvisionBackbone(nn.Module):
    """A torchvision classification network (AlexNet, VGG, ResNet family) without its classifier.

    ``forward`` returns the flat vector the stock classifier would have read: 9216 features for
    AlexNet, 25088 for VGG, 512 or 2048 for the ResNet family.

    Args:
        name: torchvision model name, such as ``"alexnet"``, ``"vgg19_bn"`` or ``"wide_resnet101_2"``.
        in_channels: channels of the input images; other than 3 replaces the first convolution.
            In a config, the CLI passes the datamodule's value.
        weights: ``None`` for random weights, a torchvision weight name (``"DEFAULT"``,
            ``"IMAGENET1K_V1"``), which torchvision downloads and caches, or the path of a local
            checkpoint file for machines without network.

    Attributes:
        num_features: width of the flat feature vector.
        stock_hidden_features: hidden widths of the removed classifier, for comparing a head
            against the FC head it replaces (``(4096, 4096)`` for AlexNet and VGG, ``()`` for ResNet).
    """

    def __init__(self, name: str, in_channels: int = 3, weights: str | None = None) -> None:
        super().__init__()
        import torchvision  # imported here so that the heads and VGG-5 work without torchvision

        family = _family(name)
        classifier_attr, conv_path = FAMILIES[family]
        if in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}.")

        if weights is not None and _is_local_file(str(weights)):
            model = torchvision.models.get_model(name, weights=None)
            load_local_weights(model, weights, skip_prefix=classifier_attr)
        else:
            model = torchvision.models.get_model(name, weights=self._resolve_weight_name(name, weights))

        self.num_features, self.stock_hidden_features = _classifier_shape(getattr(model, classifier_attr))
        setattr(model, classifier_attr, nn.Identity())
        _adapt_first_conv(model, conv_path, in_channels)

        self.name = name
        self.in_channels = in_channels
        self.model = model

    @staticmethod
    def _resolve_weight_name(name: str, weights: str | None):
        if weights is None:
            return None
        import torchvision

        enum = torchvision.models.get_model_weights(name)
        try:
            return enum[weights] if weights != "DEFAULT" else enum.DEFAULT
        except KeyError:
            raise ValueError(
                f"Unknown weights {weights!r} for {name}. Expected one of "
                f"{['DEFAULT', *enum.__members__]}, the path of a local checkpoint, or null."
            ) from None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images).flatten(1)
