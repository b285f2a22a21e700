"""Data paths of the in-memory datamodules: tensor, on-device index batches and the PIL pipeline."""

import pytest
import torch

from spinal_lightning.data import FashionMNISTDataModule
from spinal_lightning.data.device import DeviceTensorDataset, IndexBatch
from spinal_lightning.data.pil import PILImageDataset, build_pil_transform

_SLICES = {}


class SliceFashionMNIST(FashionMNISTDataModule):
    """Fashion-MNIST cut to its first 1200 images, read from disk once per test session."""

    def load_images(self, train):
        if train not in _SLICES:
            images, labels = super().load_images(train)
            _SLICES[train] = images[:1200].clone(), labels[:1200].clone()
        return _SLICES[train]


def make_datamodule(fashion_mnist_dir, **arguments):
    datamodule = SliceFashionMNIST(data_dir=str(fashion_mnist_dir), val_size=200, batch_size=50, **arguments)
    datamodule.setup()
    return datamodule


def test_device_batches_equal_tensor_batches(fashion_mnist_dir):
    plain = make_datamodule(fashion_mnist_dir, augment=False)
    on_device = make_datamodule(fashion_mnist_dir, augment=False, data_on_device=True)

    index_batch = next(iter(on_device.val_dataloader()))
    images, labels = on_device.on_after_batch_transfer(index_batch, 0)
    expected_images, expected_labels = plain.on_after_batch_transfer(next(iter(plain.val_dataloader())), 0)

    assert isinstance(on_device.val_set, DeviceTensorDataset)
    assert isinstance(index_batch, IndexBatch)
    assert index_batch.split == "val"
    assert index_batch.indices.tolist() == list(range(50))
    assert torch.equal(images, expected_images)
    assert torch.equal(labels, expected_labels)


def test_device_loader_covers_training_set_once(fashion_mnist_dir):
    datamodule = make_datamodule(fashion_mnist_dir, data_on_device=True)

    indices = torch.cat([batch.indices for batch in datamodule.train_dataloader()])

    assert sorted(indices.tolist()) == list(range(1000))


def test_pil_eval_batches_equal_tensor_batches(fashion_mnist_dir):
    tensor = make_datamodule(fashion_mnist_dir)
    pil = make_datamodule(fashion_mnist_dir, pipeline="pil")

    images, labels = pil.on_after_batch_transfer(next(iter(pil.test_dataloader())), 0)
    expected_images, expected_labels = tensor.on_after_batch_transfer(next(iter(tensor.test_dataloader())), 0)

    assert isinstance(pil.test_set, PILImageDataset)
    assert images.dtype == torch.float32
    torch.testing.assert_close(images, expected_images, atol=1e-6, rtol=0)
    assert torch.equal(labels, expected_labels)


def test_pil_training_transform_mirrors_batch_augment(fashion_mnist_dir):
    datamodule = make_datamodule(fashion_mnist_dir, pipeline="pil")

    names = [type(step).__name__ for step in datamodule.train_set.transform.transforms]

    assert names == ["RandomRotation", "RandomResizedCrop", "ToTensor", "Normalize"]
    assert datamodule.train_set.transform.transforms[0].degrees == [-10.0, 10.0]
    assert datamodule.train_set.transform.transforms[1].scale == (0.95, 1.0)
    assert [type(step).__name__ for step in datamodule.val_set.transform.transforms] == ["ToTensor", "Normalize"]


def test_augmented_statistics_match_pil_pipeline(fashion_mnist_dir):
    """The Fashion-MNIST recipe on real images: pixel statistics of both paths agree."""
    torch.manual_seed(0)
    datamodule = make_datamodule(fashion_mnist_dir)
    images = datamodule.train_set.tensors[0][:600]
    augment = datamodule.default_augmentation()

    batched = augment(images.float() / 255)
    transform = build_pil_transform(augment, (28, 28), (0.0,), (1.0,))
    per_sample = PILImageDataset(images, torch.zeros(len(images), dtype=torch.long), transform)
    pil = torch.stack([per_sample[index][0] for index in range(len(images))])
    original = images.float() / 255

    # Both move pixels by the same random amounts, so statistics match while pixels differ.
    assert abs(batched.mean() - pil.mean()) < 0.005
    assert abs(batched.std() - pil.std()) < 0.005
    assert abs((batched - original).abs().mean() - (pil - original).abs().mean()) < 0.01
    assert (batched - original).abs().mean() > 0.02


def test_combined_options_are_rejected(fashion_mnist_dir):
    with pytest.raises(ValueError, match="data_on_device: true needs pipeline: tensor"):
        SliceFashionMNIST(data_dir=str(fashion_mnist_dir), pipeline="pil", data_on_device=True)


def test_unknown_pipeline_is_rejected(fashion_mnist_dir):
    with pytest.raises(ValueError, match=r"pipeline must be one of \('tensor', 'pil'\), got 'numpy'"):
        SliceFashionMNIST(data_dir=str(fashion_mnist_dir), pipeline="numpy")


def test_pil_dataset_rejects_two_channels():
    with pytest.raises(ValueError, match="1 or 3 channels"):
        PILImageDataset(
            torch.zeros(2, 2, 8, 8, dtype=torch.uint8),
            torch.zeros(2),
            build_pil_transform(None, (8, 8), (0.5,), (0.5,)),
        )
