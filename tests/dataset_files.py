"""Writers of small data files in the layouts torchvision downloads, so tests need no network."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

# IDX type codes (third byte of the magic number) of the dtypes written here.
IDX_TYPE_CODES = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write ``array`` (uint8, or int32 stored big-endian) as an IDX file, gzip-compressed if asked."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        array = array.astype(">i4")
    header = bytes([0, 0, IDX_TYPE_CODES[array.dtype], array.ndim])
    header += b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    data = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def random_images(count: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, *shape), dtype=np.uint8)


def write_mnist_split(
    folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, labels_suffix: str
) -> None:
    """Write ``<prefix>-images-idx3-ubyte.gz`` and ``<prefix>-labels-<labels_suffix>.gz`` into ``folder``."""
    write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
    write_idx(folder / f"{prefix}-labels-{labels_suffix}", labels)


def write_cifar(root: Path, num_classes: int, train_per_batch: int = 20, test_count: int = 20) -> None:
    """Write the CIFAR-10 (``num_classes`` 10) or CIFAR-100 python pickles under ``root``."""
    rng = np.random.default_rng(num_classes)

    def batch(count: int, label_key: str) -> dict:
        data = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        return {"data": data, label_key: rng.integers(0, num_classes, size=count).tolist()}

    if num_classes == 10:
        folder = root / "cifar-10-batches-py"
        files = {f"data_batch_{index}": train_per_batch for index in range(1, 6)}
        files["test_batch"] = test_count
        label_key = "labels"
    else:
        folder = root / "cifar-100-python"
        files = {"train": train_per_batch * 5, "test": test_count}
        label_key = "fine_labels"
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in files.items():
        with open(folder / name, "wb") as handle:
            pickle.dump(batch(count, label_key), handle)


def write_svhn(root: Path, split: str, count: int, seed: int = 0) -> np.ndarray:
    """Write ``<split>_32x32.mat`` as SVHN stores it: X (32, 32, 3, N), y (N, 1) with 10 for the digit 0."""
    import scipy.io

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(32, 32, 3, count), dtype=np.uint8)
    labels = np.arange(count) % 10 + 1
    root.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / f"{split}_32x32.mat", {"X": images, "y": labels.reshape(-1, 1).astype(np.uint8)})
    return images


def write_stl10(root: Path, train_count: int = 20, test_count: int = 10) -> np.ndarray:
    """Write STL-10's binary files; images are stored column-major per channel, labels 1..10."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    first = None
    for split, count in (("train", train_count), ("test", test_count)):
        images = rng.integers(0, 256, size=(count, 3, 96, 96), dtype=np.uint8)
        images.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")
        (np.arange(count) % 10 + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
        first = images if first is None else first
    return first


def write_png(path: Path, size: tuple[int, int] = (20, 24), seed: int = 0, mode: str = "RGB") -> Path:
    """Write a random PNG image of ``size`` (width, height)."""
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    pixels = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path)
    return path


def write_image_folder(root: Path, counts: dict[str, dict[str, int]]) -> Path:
    """Write ``root/<split>/<class>/<index>.png`` with ``counts[split][class]`` images each."""
    seed = 0
    for split, classes in counts.items():
        for name, count in classes.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for index in range(count):
                write_png(root / split / name / f"{index:03d}.png", seed=seed)
                seed += 1
    return root
