"""Every datamodule on small files written in the torchvision layouts, plus real Fashion-MNIST."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from dataset_files import (
    random_images,
    write_cifar,
    write_idx,
    write_image_folder,
    write_mnist_split,
    write_png,
    write_stl10,
    write_svhn,
)

from spinal_lightning.data import (
    Caltech101DataModule,
    CIFAR10DataModule,
    CIFAR100DataModule,
    DigitsDataModule,
    EMNISTDataModule,
    FashionMNISTDataModule,
    ImageFolderDataModule,
    KMNISTDataModule,
    MNISTDataModule,
    QMNISTDataModule,
    STL10DataModule,
    SVHNDataModule,
)
from spinal_lightning.data.base import IMAGENET_MEAN
from spinal_lightning.data.mnist import EMNIST_CLASSES
from spinal_lightning.errors import CorruptDataError, DataNotFoundError


def first_batch(datamodule, loader: str = "train_dataloader"):
    """Return the first batch of a loader after the datamodule's device-side conversion."""
    batch = next(iter(getattr(datamodule, loader)()))
    return datamodule.on_after_batch_transfer(batch, 0)


def write_mnist_layout(root, train_labels, test_labels, shape=(28, 28)):
    raw = root / "MNIST" / "raw"
    write_mnist_split(
        raw,
        "train",
        random_images(len(train_labels), shape),
        np.asarray(train_labels, np.uint8),
        "idx1-ubyte",
    )
    write_mnist_split(
        raw,
        "t10k",
        random_images(len(test_labels), shape, 1),
        np.asarray(test_labels, np.uint8),
        "idx1-ubyte",
    )


@pytest.mark.parametrize("module_class, folder", [(MNISTDataModule, "MNIST"), (KMNISTDataModule, "KMNIST")])
def test_mnist_layout_loads(tmp_path, module_class, folder):
    raw = tmp_path / folder / "raw"
    write_mnist_split(raw, "train", random_images(30, (28, 28)), np.arange(30) % 10, "idx1-ubyte")
    write_mnist_split(raw, "t10k", random_images(12, (28, 28), 1), np.arange(12) % 10, "idx1-ubyte")

    datamodule = module_class(data_dir=str(tmp_path), batch_size=8, val_size=6)
    datamodule.setup()

    assert (datamodule.num_classes, datamodule.in_channels, datamodule.image_size) == (10, 1, (28, 28))
    assert (len(datamodule.train_set), len(datamodule.val_set), len(datamodule.test_set)) == (24, 6, 12)
    images, labels = first_batch(datamodule)
    assert images.shape == (8, 1, 28, 28)
    assert images.dtype == torch.float32
    assert labels.dtype == torch.int64


def test_mnist_default_augmentation_is_perspective_and_rotation():
    augmentation = MNISTDataModule().augmentation
    assert augmentation.rotation_degrees == 10.0
    assert augmentation.perspective_distortion == 0.5
    assert augmentation.perspective_probability == 0.5
    assert MNISTDataModule.mean == (0.1307,)


def test_mnist_labels_out_of_range_rejected(tmp_path):
    write_mnist_layout(tmp_path, train_labels=[0, 1, 12, 3, 4, 5], test_labels=[0, 1])
    datamodule = MNISTDataModule(data_dir=str(tmp_path), val_size=2)
    with pytest.raises(ValueError, match="labels range from 0 to 12.*num_classes=10"):
        datamodule.setup("fit")


def test_qmnist_uses_first_label_column(tmp_path):
    raw = tmp_path / "QMNIST" / "raw"
    labels = np.zeros((20, 8), dtype=np.int64)
    labels[:, 0] = np.arange(20) % 10
    labels[:, 1] = 2000 + np.arange(20)  # the NIST writer id, not a class
    write_mnist_split(raw, "qmnist-train", random_images(20, (28, 28)), labels, "idx2-int")
    write_mnist_split(raw, "qmnist-test", random_images(10, (28, 28)), labels[:10], "idx2-int")

    datamodule = QMNISTDataModule(data_dir=str(tmp_path), val_size=5)
    datamodule.setup()

    assert sorted(datamodule.test_set.tensors[1].tolist()) == list(range(10))
    assert datamodule.train_set.tensors[1].max() == 9


@pytest.mark.parametrize("split", list(EMNIST_CLASSES))
def test_emnist_split_class_counts(tmp_path, split):
    classes = EMNIST_CLASSES[split]
    raw = tmp_path / "EMNIST" / "raw"
    # The letters files number their classes 1..26; the others start at 0.
    first = 1 if split == "letters" else 0
    labels = (np.arange(2 * classes) % classes + first).astype(np.uint8)
    write_mnist_split(
        raw, f"emnist-{split}-train", random_images(len(labels), (28, 28)), labels, "idx1-ubyte"
    )
    write_mnist_split(
        raw, f"emnist-{split}-test", random_images(classes, (28, 28)), labels[:classes], "idx1-ubyte"
    )

    datamodule = EMNISTDataModule(split=split, data_dir=str(tmp_path), val_size=2)
    datamodule.setup()

    assert datamodule.num_classes == classes
    assert datamodule.test_set.tensors[1].min() == 0
    assert datamodule.test_set.tensors[1].max() == classes - 1


def test_emnist_images_transposed_upright(tmp_path):
    raw = tmp_path / "EMNIST" / "raw"
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    images[:, 0, 5] = 255  # stored transposed: row 0, column 5
    write_mnist_split(raw, "emnist-digits-train", images, np.arange(4, dtype=np.uint8), "idx1-ubyte")
    write_mnist_split(raw, "emnist-digits-test", images, np.arange(4, dtype=np.uint8), "idx1-ubyte")

    upright = EMNISTDataModule(split="digits", data_dir=str(tmp_path), val_size=1)
    upright.setup("test")
    stored = EMNISTDataModule(split="digits", data_dir=str(tmp_path), val_size=1, upright=False)
    stored.setup("test")

    assert upright.test_set.tensors[0][0, 0, 5, 0] == 255
    assert stored.test_set.tensors[0][0, 0, 0, 5] == 255


def test_emnist_unknown_split_rejected():
    with pytest.raises(ValueError, match="Unknown EMNIST split 'words'"):
        EMNISTDataModule(split="words")


def test_mnist_missing_data_message(tmp_path):
    datamodule = MNISTDataModule(data_dir=str(tmp_path))
    with pytest.raises(DataNotFoundError) as caught:
        datamodule.setup("fit")
    message = str(caught.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte.gz" in message
    assert "download: true" in message


def test_fashion_mnist_real_files(tmp_path, fashion_mnist_dir):
    datamodule = FashionMNISTDataModule(data_dir=str(tmp_path), batch_size=100, val_size=5000)
    datamodule.setup()

    assert (len(datamodule.train_set), len(datamodule.val_set), len(datamodule.test_set)) == (
        55000,
        5000,
        10000,
    )
    assert torch.bincount(datamodule.test_set.tensors[1]).tolist() == [1000] * 10
    images, _ = first_batch(datamodule, "test_dataloader")
    assert images.shape == (100, 1, 28, 28)
    # Normalised with (0.5, 0.5), pixels lie in [-1, 1].
    assert images.min() >= -1.0
    assert images.max() <= 1.0


def test_fashion_mnist_missing_names_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(FashionMNISTDataModule, "system_dirs", (str(tmp_path / "nowhere"),))
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        FashionMNISTDataModule(data_dir=str(tmp_path)).setup("fit")


@pytest.mark.parametrize("module_class, classes", [(CIFAR10DataModule, 10), (CIFAR100DataModule, 100)])
def test_cifar_pickles_load(tmp_path, module_class, classes):
    write_cifar(tmp_path, classes)
    datamodule = module_class(data_dir=str(tmp_path), batch_size=10, val_size=0.2)
    datamodule.setup()

    assert (datamodule.num_classes, datamodule.in_channels, datamodule.image_size) == (classes, 3, (32, 32))
    assert (len(datamodule.train_set), len(datamodule.val_set), len(datamodule.test_set)) == (80, 20, 20)
    images, _ = first_batch(datamodule)
    assert images.shape == (10, 3, 32, 32)


def test_cifar_default_augmentation_pads_and_flips():
    augmentation = CIFAR10DataModule().augmentation
    assert augmentation.pad_crop == 4
    assert augmentation.hflip_probability == 0.5


def test_cifar_imagenet_transforms_resize(tmp_path):
    write_cifar(tmp_path, 10)
    datamodule = CIFAR10DataModule(
        data_dir=str(tmp_path), batch_size=4, val_size=10, imagenet_transforms=True
    )
    datamodule.setup("fit")

    assert datamodule.image_size == (224, 224)
    assert datamodule.mean == IMAGENET_MEAN
    images, _ = first_batch(datamodule, "val_dataloader")
    assert images.shape == (4, 3, 224, 224)


def test_cifar_missing_data_message(tmp_path):
    with pytest.raises(DataNotFoundError) as caught:
        CIFAR100DataModule(data_dir=str(tmp_path)).setup("fit")
    assert str(tmp_path / "cifar-100-python") in str(caught.value)
    assert "download: true" in str(caught.value)


def test_svhn_mat_files_load(tmp_path):
    stored = write_svhn(tmp_path, "train", 30)
    write_svhn(tmp_path, "test", 10, seed=1)
    datamodule = SVHNDataModule(data_dir=str(tmp_path), val_size=5)
    datamodule.setup()

    images, labels = datamodule.test_set.tensors
    assert images.shape == (10, 3, 32, 32)
    # Label 10 stands for the digit 0.
    assert labels[:10].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    train_images = torch.cat([datamodule.train_set.tensors[0], datamodule.val_set.tensors[0]])
    assert any(
        torch.equal(image, torch.from_numpy(stored[..., 0]).permute(2, 0, 1)) for image in train_images
    )


def test_svhn_extra_missing_message(tmp_path):
    write_svhn(tmp_path, "train", 10)
    write_svhn(tmp_path, "test", 10)
    with pytest.raises(DataNotFoundError, match="extra_32x32.mat"):
        SVHNDataModule(data_dir=str(tmp_path), val_size=2, include_extra=True).setup("fit")


def test_stl10_binary_loads(tmp_path):
    first = write_stl10(tmp_path)
    datamodule = STL10DataModule(data_dir=str(tmp_path), val_size=4)
    datamodule.setup()

    assert datamodule.image_size == (96, 96)
    assert len(datamodule.train_set) + len(datamodule.val_set) == 20
    images, labels = datamodule.test_set.tensors
    assert images.shape == (10, 3, 96, 96)
    assert labels.tolist() == list(range(10))
    train_images = torch.cat([datamodule.train_set.tensors[0], datamodule.val_set.tensors[0]])
    assert any(torch.equal(image, torch.from_numpy(first[0])) for image in train_images)


def test_digits_splits_are_disjoint_and_seeded():
    datamodule = DigitsDataModule(val_size=0.1, test_size=0.2)
    datamodule.setup()
    again = DigitsDataModule(val_size=0.1, test_size=0.2)
    again.setup()

    sizes = (len(datamodule.train_set), len(datamodule.val_set), len(datamodule.test_set))
    assert sizes == (1294, 144, 359)
    assert torch.equal(datamodule.val_set.tensors[0], again.val_set.tensors[0])
    flat = lambda dataset: {tuple(image.flatten().tolist()) for image in dataset.tensors[0]}  # noqa: E731
    # Different images may look alike, so compare against the duplicate-free count of the whole set.
    assert len(flat(datamodule.train_set) | flat(datamodule.val_set) | flat(datamodule.test_set)) >= 1790
    images, _ = first_batch(datamodule, "test_dataloader")
    assert images.shape == (64, 1, 8, 8)


# Image folders.


def test_image_folder_three_splits(tmp_path):
    counts = {"train": {"cat": 4, "dog": 3}, "valid": {"cat": 2, "dog": 1}, "test": {"cat": 1, "dog": 2}}
    write_image_folder(tmp_path, counts)
    datamodule = ImageFolderDataModule(data_dir=str(tmp_path), batch_size=4, image_size=16, num_workers=0)

    assert datamodule.num_classes == 2
    datamodule.setup()
    assert datamodule.classes == ["cat", "dog"]
    assert (len(datamodule.train_set), len(datamodule.val_set), len(datamodule.test_set)) == (7, 3, 3)
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.shape == (4, 3, 16, 16)
    assert set(labels.tolist()) <= {0, 1}


def test_image_folder_train_only_carves_splits(tmp_path):
    write_image_folder(tmp_path, {"train": {"a": 10, "b": 10}})
    datamodule = ImageFolderDataModule(
        data_dir=str(tmp_path), val_size=4, test_size=0.2, image_size=8, in_channels=1
    )
    datamodule.setup()

    assert (len(datamodule.train_set), len(datamodule.val_set), len(datamodule.test_set)) == (12, 4, 4)
    paths = [
        set(path for path, _ in dataset.samples)
        for dataset in (datamodule.train_set, datamodule.val_set, datamodule.test_set)
    ]
    assert not paths[0] & paths[1]
    assert not paths[0] & paths[2]
    assert datamodule.test_set[0][0].shape == (1, 8, 8)


def test_image_folder_bad_files_reported_by_path(tmp_path):
    write_image_folder(tmp_path, {"train": {"a": 3, "b": 3}, "test": {"a": 1}})
    (tmp_path / "train" / "notes.txt").write_text("not a class")
    (tmp_path / "train" / "empty").mkdir()
    (tmp_path / "train" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    datamodule = ImageFolderDataModule(data_dir=str(tmp_path), val_size=1, image_size=8)

    with pytest.raises(CorruptDataError) as caught:
        datamodule.setup()
    message = str(caught.value)
    assert "Found 3 unusable entries" in message
    assert str(tmp_path / "train" / "notes.txt") in message
    assert str(tmp_path / "train" / "empty") + "': an empty class folder" in message
    assert str(tmp_path / "train" / "a" / "broken.png") + "': not a readable image" in message
    assert "on_bad_file: skip" in message


def test_image_folder_skip_leaves_bad_files_out(tmp_path, caplog):
    write_image_folder(tmp_path, {"train": {"a": 3, "b": 3}, "test": {"a": 1, "b": 1}})
    (tmp_path / "train" / "empty").mkdir()
    (tmp_path / "train" / "b" / "readme.md").write_text("stray")
    (tmp_path / "train" / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    datamodule = ImageFolderDataModule(data_dir=str(tmp_path), val_size=1, image_size=8, on_bad_file="skip")

    assert datamodule.num_classes == 2
    with caplog.at_level(logging.WARNING):
        datamodule.setup()
    assert len(datamodule.train_set) + len(datamodule.val_set) == 6
    assert "Skipped 3 unusable entries" in caplog.text
    assert "broken.jpg" in caplog.text


def test_image_folder_unknown_class_in_test(tmp_path):
    write_image_folder(tmp_path, {"train": {"a": 2, "b": 2}, "test": {"a": 1, "c": 1}})
    with pytest.raises(CorruptDataError, match="test/c': a class folder not in train/"):
        ImageFolderDataModule(data_dir=str(tmp_path), val_size=1, image_size=8).setup()


def test_image_folder_missing_message(tmp_path):
    datamodule = ImageFolderDataModule(data_dir=str(tmp_path / "birds"))
    with pytest.raises(DataNotFoundError) as caught:
        _ = datamodule.num_classes
    assert str(tmp_path / "birds" / "train") in str(caught.value)
    assert "<class>/<image>" in str(caught.value)


def test_image_folder_bad_policy_rejected(tmp_path):
    with pytest.raises(ValueError, match="on_bad_file must be one of"):
        ImageFolderDataModule(data_dir=str(tmp_path), on_bad_file="ignore")


def test_caltech101_layout(tmp_path):
    root = tmp_path / "caltech101" / "101_ObjectCategories"
    for name in ("BACKGROUND_Google", "Faces", "accordion", "airplanes"):
        for index in range(5):
            write_png(root / name / f"image_{index:04d}.jpg".replace(".jpg", ".png"), seed=index)
    write_png(root / "accordion" / "grey.png", mode="L")
    datamodule = Caltech101DataModule(data_dir=str(tmp_path), val_size=2, test_size=3, image_size=8)

    assert datamodule.classes == ["Faces", "accordion", "airplanes"]
    datamodule.setup()
    assert (len(datamodule.train_set), len(datamodule.val_set), len(datamodule.test_set)) == (11, 2, 3)
    # Grey images are converted to RGB.
    assert all(
        datamodule.train_set[index][0].shape == (3, 8, 8) for index in range(len(datamodule.train_set))
    )


def test_caltech101_missing_message(tmp_path):
    with pytest.raises(DataNotFoundError, match="101_ObjectCategories.*download: true"):
        _ = Caltech101DataModule(data_dir=str(tmp_path)).num_classes


def test_uncompressed_idx_found(tmp_path):
    raw = tmp_path / "KMNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte", random_images(10, (28, 28)), compress=False)
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(10, dtype=np.uint8), compress=False)
    write_idx(raw / "t10k-images-idx3-ubyte", random_images(4, (28, 28)), compress=False)
    write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(4, dtype=np.uint8), compress=False)
    datamodule = KMNISTDataModule(data_dir=str(tmp_path), val_size=2)
    datamodule.setup()
    assert len(datamodule.test_set) == 4
