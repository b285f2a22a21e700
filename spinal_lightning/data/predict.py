"""Prediction inputs: a folder of image files, one image file, or a tensor file of images.

The datamodule decodes each file when its batch is loaded. A file that cannot be decoded becomes a
blank image with an error message in the batch, so ``PredictionCSVWriter`` lists it in the CSV and
the other files are still predicted.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from spinal_lightning.errors import CorruptDataError, DataNotFoundError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
TENSOR_SUFFIXES = (".pt", ".pth")


class ImageFilesDataset(Dataset):
    """Image files decoded on access to uint8 tensors of shape (C, H, W), resized to ``image_size``.

    Each item is ``(image, index, error)``; ``error`` is empty for a readable file.
    """

    def __init__(self, files: list[Path], in_channels: int, image_size: tuple[int, int]) -> None:
        self.files = files
        self.in_channels = in_channels
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        from PIL import Image, UnidentifiedImageError

        blank = torch.zeros(self.in_channels, *self.image_size, dtype=torch.uint8)
        try:
            with Image.open(self.files[index]) as image:
                image = image.convert("L" if self.in_channels == 1 else "RGB")
                # PIL sizes are (width, height); image_size is (height, width).
                image = image.resize((self.image_size[1], self.image_size[0]), Image.Resampling.BILINEAR)
                pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
        except (OSError, UnidentifiedImageError, ValueError) as error:
            return blank, index, f"{type(error).__name__}: {error}"
        if self.in_channels not in (1, 3):
            return blank, index, f"in_channels={self.in_channels} is not supported for image files (1 or 3)"
        height, width = self.image_size
        return pixels.view(height, width, self.in_channels).permute(2, 0, 1).contiguous(), index, ""


class TensorImagesDataset(Dataset):
    """Images stored in one tensor file: (N, C, H, W) or (N, H, W), uint8 or float in [0, 1]."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], index, ""


class PredictionDataModule(L.LightningDataModule):
    """Images to classify with ``predict``, normalised like the training data.

    Args:
        path: a folder (searched recursively for image files), one image file, or a ``.pt`` file
            holding a tensor of images, (N, C, H, W) or (N, H, W), uint8 in [0, 255] or float in
            [0, 1].
        num_classes: classes of the trained model; linked into the model like a training datamodule.
        in_channels: image channels of the trained model (1: grey, 3: RGB).
        image_size: (height, width) that image files are resized to.
        mean: per-channel mean of the training normalisation.
        std: per-channel standard deviation of the training normalisation.
        class_names: optional names of the classes, written to the CSV next to the class index.
        batch_size: images per batch.
        num_workers: DataLoader worker processes.

    The defaults match ``FashionMNISTDataModule``.
    """

    def __init__(
        self,
        path: str,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: tuple[int, int] = (28, 28),
        mean: tuple[float, ...] = (0.5,),
        std: tuple[float, ...] = (0.5,),
        class_names: list[str] | None = None,
        batch_size: int = 100,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if num_classes < 1 or in_channels < 1 or batch_size < 1 or min(image_size) < 1:
            raise ValueError(
                f"num_classes, in_channels, batch_size and image_size must be positive, got "
                f"num_classes={num_classes}, in_channels={in_channels}, batch_size={batch_size}, "
                f"image_size={tuple(image_size)}."
            )
        if len(mean) != in_channels or len(std) != in_channels:
            raise ValueError(
                f"mean {tuple(mean)} and std {tuple(std)} need one value per channel ({in_channels})."
            )
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names but num_classes={num_classes}.")
        self.path = path
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.image_size = tuple(image_size)
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.class_names = class_names
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.names: list[str] = []
        self.dataset: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        path = Path(self.path).expanduser()
        if path.is_file() and path.suffix.lower() in TENSOR_SUFFIXES:
            images = self._load_tensor_file(path)
            self.names = [f"{path}[{index}]" for index in range(len(images))]
            self.dataset = TensorImagesDataset(images)
            return

        if path.is_file():
            files = [path]
        elif path.is_dir():
            # Every file counts, not only known image suffixes, so a stray or misnamed file is
            # reported in the CSV rather than silently skipped. Hidden files are left out.
            files = sorted(
                file for file in path.rglob("*") if file.is_file() and not file.name.startswith(".")
            )
        else:
            raise DataNotFoundError(
                f"Prediction input {str(path)!r} not found. Pass a folder of images, an image file "
                "or a .pt tensor file."
            )
        if not files:
            raise DataNotFoundError(f"The folder {str(path)!r} contains no files to predict.")
        self.names = [str(file) for file in files]
        self.dataset = ImageFilesDataset(files, self.in_channels, self.image_size)

    def _load_tensor_file(self, path: Path) -> torch.Tensor:
        try:
            images = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises RuntimeError, UnpicklingError or EOFError here
            raise CorruptDataError(
                f"Tensor file {str(path)!r} cannot be read: {error}. Save the images with "
                "torch.save(tensor, path)."
            ) from error
        if not isinstance(images, torch.Tensor):
            raise ValueError(
                f"{str(path)!r} contains a {type(images).__name__}, expected one tensor of images."
            )
        if images.ndim == 3 and self.in_channels == 1:
            images = images.unsqueeze(1)
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"{str(path)!r} contains a tensor of shape {tuple(images.shape)}; expected "
                f"(N, {self.in_channels}, H, W) or, for grey images, (N, H, W)."
            )
        return images

    def predict_dataloader(self) -> DataLoader:
        if self.dataset is None:
            raise RuntimeError("PredictionDataModule.setup() must run before its dataloader is requested.")
        return DataLoader(
            self.dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers
        )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, indices, errors = batch
        images = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return (images - mean) / std, indices, errors
