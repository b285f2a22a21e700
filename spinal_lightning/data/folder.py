"""Image classification data stored as one folder per class, read image by image with PIL.

Layout: ``data_dir/train/<class>/<image>``, optionally with ``val/`` (or ``valid/``,
``validation/``) and ``test/`` beside it holding the same class folders. Bird-225, Fruits-360,
Oxford-102 and Stanford Cars are distributed this way (or can be arranged so). Without a
validation or test folder, that set is carved out of the training images with a fixed seed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset

from spinal_lightning.data.base import ImageDataModule, resolve_size
from spinal_lightning.data.transforms import ImageTransforms
from spinal_lightning.errors import CorruptDataError, DataNotFoundError

log = logging.getLogger(__name__)

# File name endings that PIL can read and torchvision's ImageFolder accepts.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
VAL_FOLDER_NAMES = ("val", "valid", "validation")
TEST_FOLDER_NAMES = ("test",)
BAD_FILE_POLICIES = ("error", "skip")
# How many bad files an error message lists before it only counts the rest.
LISTED_BAD_FILES = 10


@dataclass(frozen=True)
class BadFile:
    """A file or folder that cannot be used, with the reason."""

    path: Path
    reason: str


def is_hidden(name: str) -> bool:
    # Files such as .DS_Store or Thumbs.db that file managers leave behind are not data.
    return name.startswith(".") or name == "Thumbs.db"


def list_class_folders(folder: Path) -> tuple[list[str], list[BadFile]]:
    """Return the sorted class folder names in ``folder`` and the stray files beside them."""
    names, bad = [], []
    for entry in sorted(os.scandir(folder), key=lambda entry: entry.name):
        if is_hidden(entry.name):
            continue
        if entry.is_dir():
            names.append(entry.name)
        else:
            bad.append(BadFile(Path(entry.path), "a file where only class folders are expected"))
    return names, bad


def list_images(class_folder: Path) -> tuple[list[Path], list[BadFile]]:
    """Return the image files of one class folder and the other entries found there."""
    images, bad = [], []
    for entry in sorted(os.scandir(class_folder), key=lambda entry: entry.name):
        if is_hidden(entry.name):
            continue
        if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS):
            images.append(Path(entry.path))
        else:
            kind = "a folder" if entry.is_dir() else "not an image file"
            bad.append(BadFile(Path(entry.path), f"{kind} (expected {', '.join(IMAGE_EXTENSIONS)})"))
    return images, bad


def check_image(path: Path) -> str | None:
    """Return why ``path`` cannot be read as an image, or ``None`` when its header and data check out.

    ``verify`` checks the structure (and, for PNG, the checksums) without decoding all pixels.
    """
    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        return f"not a readable image ({error})"
    return None


class ImageFileDataset(Dataset):
    """(image, label) pairs read from files; a file that fails to decode raises with its path."""

    def __init__(self, samples: list[tuple[Path, int]], transform, mode: str) -> None:
        self.samples = samples
        self.transform = transform
        self.mode = mode

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            with Image.open(path) as image:
                image = image.convert(self.mode)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise CorruptDataError(
                f"Cannot decode the image {str(path)!r}: {error}. Replace or delete the file."
            ) from error
        return self.transform(image), label


class ImageFolderDataModule(ImageDataModule):
    """Class-per-folder image data read with PIL and transformed image by image.

    Args:
        data_dir: folder holding ``train/`` and optionally a validation and a test folder.
        batch_size: samples per batch on each device.
        val_size: images carved from the training images for validation when there is no
            validation folder, a count or a fraction in (0, 1).
        split_seed: seed of the carved splits.
        num_workers: DataLoader worker processes that decode images.
        download: unused, since there is nothing to download for a folder of your own.
        augment: apply the random training transforms; off, training images get the evaluation
            pipeline.
        transforms: the training and evaluation pipelines; ``None`` uses ``ImageTransforms`` with
            ``image_size``.
        image_size: side in pixels of the images the model receives, when ``transforms`` is unset.
        in_channels: 3 converts every image to RGB, 1 to grey.
        test_size: images carved from the training images as the test set when there is no test
            folder (drawn before the validation set, with ``split_seed + 1``); 0 leaves no test set.
        train_folder: name of the training folder inside ``data_dir``.
        val_folder: name of the validation folder; ``None`` looks for val, valid or validation.
        test_folder: name of the test folder; ``None`` looks for test.
        on_bad_file: ``error`` raises at setup with the list of stray files, empty class folders
            and unreadable images. ``skip`` leaves them out and logs a warning with the list.
        verify_images: open every image once at setup, so corrupt files are found before training.
    """

    name = "image folder"

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 32,
        global_batch_size: int | None = None,
        val_size: int | float = 0.1,
        split_seed: int | None = None,
        num_workers: int = 4,
        download: bool = False,
        seed: int | None = None,
        augment: bool = True,
        transforms: ImageTransforms | None = None,
        image_size: int = 224,
        in_channels: int = 3,
        test_size: int | float = 0.1,
        train_folder: str = "train",
        val_folder: str | None = None,
        test_folder: str | None = None,
        on_bad_file: str = "error",
        verify_images: bool = True,
    ) -> None:
        super().__init__(
            data_dir=data_dir,
            batch_size=batch_size,
            global_batch_size=global_batch_size,
            val_size=val_size,
            split_seed=split_seed,
            num_workers=num_workers,
            download=download,
            seed=seed,
        )
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (grey) or 3 (RGB), got {in_channels!r}.")
        if on_bad_file not in BAD_FILE_POLICIES:
            raise ValueError(f"on_bad_file must be one of {BAD_FILE_POLICIES}, got {on_bad_file!r}.")
        resolve_size(test_size, 1, "test_size")
        self.augment = augment
        self.transforms = transforms or ImageTransforms(image_size=image_size)
        self.in_channels = in_channels
        self.image_size = (self.transforms.image_size, self.transforms.image_size)
        self.test_size = test_size
        self.train_folder = train_folder
        self.val_folder = val_folder
        self.test_folder = test_folder
        self.on_bad_file = on_bad_file
        self.verify_images = verify_images
        self._classes: list[str] | None = None

    # Folders and classes.

    def root(self) -> Path:
        return Path(self.data_dir).expanduser()

    def train_root(self) -> Path:
        return self.root() / self.train_folder

    def optional_root(self, name: str | None, candidates: tuple[str, ...]) -> Path | None:
        """Return the named folder (which must exist) or the first existing candidate, else ``None``."""
        if name is not None:
            folder = self.root() / name
            if not folder.is_dir():
                raise DataNotFoundError(f"The folder {str(folder)!r} set in the config does not exist.")
            return folder
        for candidate in candidates:
            if (self.root() / candidate).is_dir():
                return self.root() / candidate
        return None

    def val_root(self) -> Path | None:
        return self.optional_root(self.val_folder, VAL_FOLDER_NAMES)

    def test_root(self) -> Path | None:
        return self.optional_root(self.test_folder, TEST_FOLDER_NAMES)

    def excluded_classes(self) -> set[str]:
        """Class folder names that are not classes (none for a plain image folder)."""
        return set()

    def how_to_get_data(self) -> str:
        return (
            f"Expected the layout {str(self.train_root())}/<class>/<image>, optionally with val/ "
            "(or valid/, validation/) and test/ beside it holding the same class folders. Set "
            "data.data_dir to the folder that holds them, or data.train_folder to its name."
        )

    def find_classes(self) -> tuple[list[str], list[BadFile]]:
        """Return the class names (from the training folder) and the bad entries found there."""
        folder = self.train_root()
        if not folder.is_dir():
            raise DataNotFoundError(
                f"{self.name} data not found: {str(folder)!r} is not a folder. {self.how_to_get_data()}"
            )
        names, bad = list_class_folders(folder)
        names = [name for name in names if name not in self.excluded_classes()]
        if self.on_bad_file == "skip":
            empty = [name for name in names if not list_images(folder / name)[0]]
            names = [name for name in names if name not in empty]
            bad += [BadFile(folder / name, "an empty class folder") for name in empty]
        if not names:
            raise DataNotFoundError(
                f"{self.name} data not found: {str(folder)!r} contains no class folders with images. "
                f"{self.how_to_get_data()}"
            )
        return names, bad

    @property
    def classes(self) -> list[str]:
        """Class names, sorted; label ``i`` is ``classes[i]``."""
        if self._classes is None:
            self._classes = self.find_classes()[0]
        return self._classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    # Scanning.

    def scan(self, folder: Path, classes: list[str]) -> tuple[list[tuple[Path, int]], list[BadFile]]:
        """Return the (path, label) samples under ``folder`` and every bad entry found there.

        A validation or test folder may lack some classes. A class folder that the training
        folder lacks is a bad entry, because its label would be undefined.
        """
        bad = []
        if folder != self.train_root():
            # find_classes already reported the training folder's own stray entries.
            names, bad = list_class_folders(folder)
            known = set(classes) | self.excluded_classes()
            bad += [
                BadFile(folder / name, f"a class folder not in {self.train_folder}/")
                for name in names
                if name not in known
            ]

        samples = []
        for label, name in enumerate(classes):
            class_folder = folder / name
            if not class_folder.is_dir():
                continue
            images, stray = list_images(class_folder)
            bad += stray
            if self.verify_images:
                checked = [(path, check_image(path)) for path in images]
                bad += [BadFile(path, reason) for path, reason in checked if reason]
                images = [path for path, reason in checked if not reason]
            if not images:
                bad.append(BadFile(class_folder, "an empty class folder"))
            samples += [(path, label) for path in images]
        return samples, bad

    def report_bad_files(self, bad: list[BadFile]) -> None:
        """Raise (``on_bad_file: error``) or log (``skip``) the bad entries, listed by path."""
        if not bad:
            return
        listed = "; ".join(f"{str(item.path)!r}: {item.reason}" for item in bad[:LISTED_BAD_FILES])
        more = f" and {len(bad) - LISTED_BAD_FILES} more" if len(bad) > LISTED_BAD_FILES else ""
        if self.on_bad_file == "error":
            raise CorruptDataError(
                f"Found {len(bad)} unusable entries in {str(self.root())!r}: {listed}{more}. Move or "
                "delete them, or set data.on_bad_file: skip to leave them out."
            )
        log.warning("Skipped %d unusable entries in %s: %s%s", len(bad), self.root(), listed, more)

    # Lightning hooks.

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None or self.test_set is not None:
            return
        classes, bad = self.find_classes()
        self._classes = classes
        samples, found = self.scan(self.train_root(), classes)
        bad += found

        test_folder = self.test_root()
        if test_folder is not None:
            test_samples, found = self.scan(test_folder, classes)
            bad += found
        elif resolve_size(self.test_size, len(samples), "test_size") > 0:
            keep, carved = self.split_indices(len(samples), self.test_size, "test_size", offset=1)
            test_samples = [samples[index] for index in carved]
            samples = [samples[index] for index in keep]
        else:
            test_samples = []

        val_folder = self.val_root()
        if val_folder is not None:
            val_samples, found = self.scan(val_folder, classes)
            bad += found
        else:
            keep, carved = self.split_indices(len(samples), self.val_size)
            val_samples = [samples[index] for index in carved]
            samples = [samples[index] for index in keep]

        # An empty class folder has no samples to drop; everything else bad was already left out.
        bad_classes = {item.path for item in bad if item.reason == "an empty class folder"}
        if self.on_bad_file == "skip" and bad_classes & {self.train_root() / name for name in classes}:
            raise CorruptDataError(
                f"After skipping unreadable images, a class of {str(self.train_root())!r} has no "
                f"image left: {sorted(str(path) for path in bad_classes)}. Fix or remove that class folder."
            )
        self.report_bad_files(bad)

        mode = "RGB" if self.in_channels == 3 else "L"
        train_transform = self.transforms.build(train=self.augment, channels=self.in_channels)
        eval_transform = self.transforms.build(train=False, channels=self.in_channels)
        self.train_set = ImageFileDataset(samples, train_transform, mode)
        self.val_set = ImageFileDataset(val_samples, eval_transform, mode)
        self.test_set = ImageFileDataset(test_samples, eval_transform, mode) if test_samples else None

    def test_dataloader(self):
        if self.test_set is None and self.train_set is not None:
            raise DataNotFoundError(
                f"{str(self.root())!r} has no test folder and test_size is 0, so there is no test set. "
                "Add a test/ folder with the same class folders, or set data.test_size."
            )
        return super().test_dataloader()


class Caltech101DataModule(ImageFolderDataModule):
    """Caltech-101: 8,677 colour images of 101 object classes of varying size, read as image files.

    The layout is the one torchvision's ``Caltech101`` downloads:
    ``data_dir/caltech101/101_ObjectCategories/<class>/image_0001.jpg``. The ``BACKGROUND_Google``
    folder is not a class and is left out, as torchvision does. The data set has no official split,
    so the test and validation sets are carved out with ``split_seed``.
    """

    name = "Caltech-101"

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 32,
        global_batch_size: int | None = None,
        val_size: int | float = 0.1,
        split_seed: int | None = None,
        num_workers: int = 4,
        download: bool = False,
        seed: int | None = None,
        augment: bool = True,
        transforms: ImageTransforms | None = None,
        image_size: int = 224,
        in_channels: int = 3,
        test_size: int | float = 0.2,
        on_bad_file: str = "error",
        verify_images: bool = True,
    ) -> None:
        super().__init__(
            data_dir=data_dir,
            batch_size=batch_size,
            global_batch_size=global_batch_size,
            val_size=val_size,
            split_seed=split_seed,
            num_workers=num_workers,
            download=download,
            seed=seed,
            augment=augment,
            transforms=transforms,
            image_size=image_size,
            in_channels=in_channels,
            test_size=test_size,
            train_folder="caltech101/101_ObjectCategories",
            on_bad_file=on_bad_file,
            verify_images=verify_images,
        )

    def val_root(self) -> Path | None:
        return None

    def test_root(self) -> Path | None:
        return None

    def excluded_classes(self) -> set[str]:
        return {"BACKGROUND_Google"}

    def how_to_get_data(self) -> str:
        return (
            f"Expected the folder {str(self.train_root())!r} with one folder of images per class "
            "(the layout torchvision's Caltech101 downloads). Set data.download: true to download it."
        )

    def find_classes(self) -> tuple[list[str], list[BadFile]]:
        # The class list is needed when the CLI links num_classes, before prepare_data runs.
        if not self.train_root().is_dir() and self.download:
            self.prepare_data()
        return super().find_classes()

    def prepare_data(self) -> None:
        if self.train_root().is_dir() or not self.download:
            return
        from spinal_lightning.data.download import download_with_torchvision

        calls = [{"target_type": "category"}]
        download_with_torchvision(self.name, self.data_dir, "Caltech101", self.how_to_get_data(), calls)
