"""Fashion-MNIST datamodule on the real files: lookup order, split, batches and data errors."""

import gzip
import shutil

import pytest
import torch

from spinal_lightning.data import FashionMNISTDataModule
from spinal_lightning.data.idx import read_idx
from spinal_lightning.errors import CorruptDataError, DataNotFoundError


@pytest.fixture(scope="module")
def datamodule(fashion_mnist_dir, tmp_path_factory):
    # An empty data_dir makes the lookup fall through to the Debian package folder.
    module = FashionMNISTDataModule(data_dir=str(tmp_path_factory.mktemp("empty")), batch_size=64)
    module.setup("fit")
    module.setup("test")
    return module


def test_sizes_of_real_splits(datamodule):
    assert len(datamodule.train_set) == 55_000
    assert len(datamodule.val_set) == 5_000
    assert len(datamodule.test_set) == 10_000


def test_reported_shape_and_classes(datamodule):
    images, labels = datamodule.train_set[0]

    assert (datamodule.num_classes, datamodule.in_channels, datamodule.image_size) == (10, 1, (28, 28))
    assert images.shape == (1, 28, 28)
    assert images.dtype == torch.uint8
    assert len(datamodule.classes) == 10


def test_every_class_in_validation_split(datamodule):
    labels = datamodule.val_set.tensors[1]

    counts = torch.bincount(labels, minlength=10)

    # 5,000 of 60,000 balanced samples: about 500 per class.
    assert counts.min().item() > 400


def test_split_is_fixed_by_split_seed(fashion_mnist_dir, tmp_path):
    first = FashionMNISTDataModule(data_dir=str(tmp_path), split_seed=7)
    second = FashionMNISTDataModule(data_dir=str(tmp_path), split_seed=7)
    other = FashionMNISTDataModule(data_dir=str(tmp_path), split_seed=8)
    for module in (first, second, other):
        module.setup("fit")

    assert torch.equal(first.val_set.tensors[0], second.val_set.tensors[0])
    assert not torch.equal(first.val_set.tensors[0], other.val_set.tensors[0])


def test_data_dir_takes_precedence(fashion_mnist_dir, tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for path in fashion_mnist_dir.glob("*.gz"):
        shutil.copy(path, raw / path.name)

    module = FashionMNISTDataModule(data_dir=str(tmp_path))

    assert module.find_files(train=False)[0] == raw / "t10k-images-idx3-ubyte.gz"


def test_first_test_images_match_raw_file(fashion_mnist_dir, datamodule):
    with gzip.open(fashion_mnist_dir / "t10k-labels-idx1-ubyte.gz") as handle:
        raw_labels = handle.read()[8:18]

    assert datamodule.test_set.tensors[1][:10].tolist() == list(raw_labels)


def test_batches_are_normalised_and_augmented_only_in_training(datamodule):
    images = datamodule.test_set.tensors[0][:8]
    labels = datamodule.test_set.tensors[1][:8]

    evaluated, _ = datamodule.on_after_batch_transfer((images, labels), 0)

    assert evaluated.dtype == torch.float32
    assert evaluated.min().item() == pytest.approx(-1.0)
    assert torch.allclose(evaluated, images.float() / 255 * 2 - 1)


def test_missing_data_names_all_ways_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(FashionMNISTDataModule, "system_dirs", (str(tmp_path / "no-package"),))
    module = FashionMNISTDataModule(data_dir=str(tmp_path / "data"))

    with pytest.raises(DataNotFoundError) as error:
        module.setup("fit")

    message = str(error.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "data") in message
    assert "download: true" in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_truncated_idx_file_is_reported(fashion_mnist_dir, tmp_path):
    broken = tmp_path / "t10k-labels-idx1-ubyte"
    broken.write_bytes(gzip.decompress((fashion_mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())[:100])

    with pytest.raises(CorruptDataError, match="truncated or corrupt: its header declares shape"):
        read_idx(broken)


def test_file_that_is_not_idx_is_reported(tmp_path):
    bogus = tmp_path / "train-images-idx3-ubyte"
    bogus.write_text("<html>not found</html>")

    with pytest.raises(CorruptDataError, match="is not an IDX file"):
        read_idx(bogus)


def test_val_size_larger_than_training_set_is_rejected(fashion_mnist_dir, tmp_path):
    module = FashionMNISTDataModule(data_dir=str(tmp_path), val_size=60_000)

    with pytest.raises(ValueError, match="val_size=60000 gives 60000 samples, but it must be between 1 and the 59999"):
        module.setup("fit")
