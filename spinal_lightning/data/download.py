"""Download through a torchvision dataset class, turning network failures into one clear message."""

from __future__ import annotations

from collections.abc import Callable

from spinal_lightning.errors import DataNotFoundError


def download_with_torchvision(
    name: str, data_dir: str, class_name: str, how_to_get_data: str, calls: list[dict]
) -> None:
    """Instantiate ``torchvision.datasets.<class_name>(data_dir, download=True, **kwargs)`` per call.

    torchvision writes the files in the layout this project reads; its own loading is not used.
    """
    import torchvision

    dataset_class: Callable = getattr(torchvision.datasets, class_name)
    for kwargs in calls:
        try:
            dataset_class(data_dir, download=True, **kwargs)
        except Exception as error:  # offline, torchvision raises URLError, RuntimeError or OSError
            raise DataNotFoundError(
                f"Downloading {name} into {data_dir!r} failed: {error}. {how_to_get_data}"
            ) from error
