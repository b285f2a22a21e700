"""Reader for the IDX files that MNIST-style data sets ship as (optionally gzip-compressed)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from spinal_lightning.errors import CorruptDataError

# The third byte of the magic number names the element type; MNIST-style files use unsigned bytes.
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an IDX file (``.gz`` or raw) into a tensor of the shape its header declares."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise CorruptDataError(
            f"Cannot read IDX file {str(path)!r}: {error}. Delete it and get the data again "
            "(download: true, or reinstall the Debian package)."
        ) from error

    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise CorruptDataError(
            f"{str(path)!r} is not an IDX file: its header {data[:4].hex()} does not start with "
            "00 00 <type> <ndim>. Delete it and get the data again."
        )
    dtype = np.dtype(IDX_DTYPES[data[2]])
    ndim = data[3]
    header_end = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * axis : 8 + 4 * axis], "big") for axis in range(ndim))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header_end != expected:
        raise CorruptDataError(
            f"IDX file {str(path)!r} is truncated or corrupt: its header declares shape {shape} "
            f"({expected} bytes of data) but it holds {len(data) - header_end}. Delete it and get "
            "the data again."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_end).reshape(shape)
    return torch.from_numpy(array.astype(array.dtype.newbyteorder("="), copy=True))
