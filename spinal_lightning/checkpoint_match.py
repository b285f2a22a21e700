"""Compare a checkpoint's weights with a model before loading, and name every part that differs.

``Module.load_state_dict`` raises one long ``RuntimeError`` deep inside Lightning's restore code.
This check runs first (from the model's ``on_load_checkpoint`` hook) and raises one
``CheckpointMismatchError`` that lists missing keys, unexpected keys and shape mismatches.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from spinal_lightning.errors import CheckpointMismatchError

# Enough entries to recognise which block differs, without a screen of key names.
MAX_LISTED = 6


def find_mismatches(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> dict[str, list[str]]:
    """Return the keys missing from ``state_dict``, the keys it has in excess, and shape mismatches."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    shapes = [
        f"{key} {tuple(state_dict[key].shape)} in the checkpoint vs {tuple(tensor.shape)} in the model"
        for key, tensor in expected.items()
        if key in state_dict
        and isinstance(state_dict[key], torch.Tensor)
        and tuple(state_dict[key].shape) != tuple(tensor.shape)
    ]
    return {"missing from the checkpoint": missing, "not in the model": unexpected, "shape mismatch": shapes}


def check_checkpoint_matches(model: nn.Module, checkpoint: Mapping, source: str = "the checkpoint") -> None:
    """Raise ``CheckpointMismatchError`` when ``checkpoint['state_dict']`` does not fit ``model``."""
    state_dict = checkpoint.get("state_dict")
    if not isinstance(state_dict, Mapping):
        raise CheckpointMismatchError(
            f"{source} has no 'state_dict' entry (its keys: {sorted(checkpoint)[:MAX_LISTED]}), so it "
            "is not a Lightning checkpoint of this project. Pass a .ckpt file written by `fit`."
        )

    mismatches = {kind: keys for kind, keys in find_mismatches(model, state_dict).items() if keys}
    if not mismatches:
        return

    parts = []
    for kind, keys in mismatches.items():
        listed = "; ".join(keys[:MAX_LISTED])
        more = f"; and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else ""
        parts.append(f"{kind} ({len(keys)}): {listed}{more}")
    trained_with = checkpoint.get("hyper_parameters", {})
    trained_classes = trained_with.get("num_classes") if isinstance(trained_with, Mapping) else None
    classes_hint = (
        f" The checkpoint was trained with num_classes={trained_classes}."
        if trained_classes is not None
        else ""
    )
    raise CheckpointMismatchError(
        f"{source} does not fit the configured {type(model).__name__}: {'. '.join(parts)}.{classes_hint} "
        "Use the config the checkpoint was trained with (config.yaml beside it) or a checkpoint of "
        "this backbone, head and data set."
    )
