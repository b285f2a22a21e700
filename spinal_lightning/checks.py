"""Checks that the model fits the data, run before the first step so a mismatch fails early."""

from __future__ import annotations

from torch import nn

from spinal_lightning.errors import ConfigMismatchError


def output_width(head: nn.Module) -> int | None:
    """Return ``out_features`` of the last Linear layer of ``head``, or ``None`` if it has none."""
    linears = [module for module in head.modules() if isinstance(module, nn.Linear)]
    return linears[-1].out_features if linears else None


def check_model_matches_data(model: nn.Module, datamodule) -> None:
    """Raise ``ConfigMismatchError`` when the model's class count or input channels differ from the data's.

    ``model`` needs ``num_classes`` and ``head`` attributes (as ``SpinalClassifier`` has); sizes
    the datamodule does not report are not checked.
    """
    data_name = getattr(datamodule, "name", type(datamodule).__name__)
    data_classes = getattr(datamodule, "num_classes", None)
    if data_classes is not None:
        widths = {
            "num_classes": getattr(model, "num_classes", None),
            "head output width": output_width(model.head),
        }
        for label, width in widths.items():
            if width is not None and width != data_classes:
                raise ConfigMismatchError(
                    f"The model's {label} is {width}, but the data set {data_name} has {data_classes} "
                    "classes. Leave model.num_classes unset so the CLI links it from the data, or "
                    "build the head with num_classes equal to datamodule.num_classes."
                )

    data_channels = getattr(datamodule, "in_channels", None)
    model_channels = getattr(model, "hparams", {}).get("in_channels")
    if data_channels is not None and model_channels is not None and data_channels != model_channels:
        raise ConfigMismatchError(
            f"The model was built for in_channels={model_channels}, but the data set {data_name} has "
            f"{data_channels}-channel images. Leave model.in_channels unset so the CLI links it."
        )
