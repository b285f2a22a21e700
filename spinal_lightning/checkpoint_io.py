"""Checkpoint files that survive a kill mid-write and load without running pickled code.

``AtomicCheckpointIO`` is a Lightning ``CheckpointIO`` plugin. It writes each checkpoint to a
temporary file in the target folder, flushes it to disk with ``fsync`` and renames it over the
target with ``os.replace``. A rename within one file system is atomic on POSIX, so a reader (or a
resumed run) sees either the previous complete file or the new complete file, never a prefix.
Loading uses ``torch.load(weights_only=True)`` unless the caller passes ``weights_only=False``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import _load as load_with_fsspec
from lightning.pytorch.plugins.io import TorchCheckpointIO

from spinal_lightning.errors import CheckpointError, CheckpointNotFoundError

TEMPORARY_SUFFIX = ".partial"

# File name under which Lightning 2.6's ddp_spawn launcher hands the trained weights (a bare state
# dict, not a Lightning checkpoint) from the worker process back to the main process.
SPAWN_WEIGHTS_NAME = ".temp.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write checkpoints atomically (temporary file, fsync, rename) and load them weights-only."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(
                f"AtomicCheckpointIO.save_checkpoint takes no storage_options, got {storage_options!r}."
            )
        write_atomically(checkpoint, Path(path))

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None):
        path_text = str(path)
        if "://" not in path_text and not Path(path_text).is_file():
            raise CheckpointNotFoundError(describe_missing_checkpoint(Path(path_text)))

        # torch >= 2.6 already defaults to weights_only=True; stating it keeps the guarantee if an
        # older torch is installed, and Lightning passes None when the user did not choose.
        if weights_only is None:
            weights_only = True
        if map_location is None:
            map_location = lambda storage, location: storage  # noqa: E731 - keep tensors on the CPU
        try:
            checkpoint = load_with_fsspec(path, map_location=map_location, weights_only=weights_only)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
            raise CheckpointError(describe_load_failure(path_text, error)) from error
        if Path(path_text).name == SPAWN_WEIGHTS_NAME:
            return checkpoint
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            keys = sorted(checkpoint)[:6] if isinstance(checkpoint, dict) else type(checkpoint).__name__
            raise CheckpointError(
                f"Checkpoint {path_text!r} has no 'state_dict' entry (it contains {keys}), so it is not a "
                "Lightning checkpoint. Pass a .ckpt file written by `fit` of this project."
            )
        return checkpoint


def describe_load_failure(path: str, error: BaseException) -> str:
    """Return the one-paragraph message for a checkpoint that ``torch.load`` could not read."""
    text = str(error).strip()
    if isinstance(error, pickle.UnpicklingError):
        # torch's message is a page long; its last "Unsupported global" line names the object.
        detail = next(
            (line.strip() for line in text.splitlines() if "Unsupported global" in line),
            text.splitlines()[0] if text else "",
        )
        detail = detail.split(" was not an allowed global")[0].replace("WeightsUnpickler error: ", "")
        return (
            f"Checkpoint {path!r} contains Python objects that a weights-only load rejects ({detail}). "
            "Loading them would run code stored in the file. If you trust where the file came "
            "from, pass --weights_only=false."
        )
    first_line = text.splitlines()[0] if text else "no message"
    return (
        f"Checkpoint {path!r} cannot be read ({type(error).__name__}: {first_line}). The file is "
        "truncated, corrupt or not a PyTorch checkpoint. Resume from another checkpoint of the "
        "run, for example last.ckpt or the best one by val/acc."
    )


def write_atomically(checkpoint: dict[str, Any], path: Path) -> None:
    """Save ``checkpoint`` to ``path`` so that ``path`` is never left holding a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # os.open with mode 0o666 honours the umask like a plain open(); mkstemp would make it 0o600.
    temporary_name = str(path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMPORARY_SUFFIX}")
    try:
        descriptor = os.open(temporary_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise CheckpointError(describe_write_failure(path, error)) from error
    try:
        with os.fdopen(descriptor, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary_name, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.remove(temporary_name)
        raise CheckpointError(describe_write_failure(path, error)) from error
    except BaseException:
        # A KeyboardInterrupt or a bug while pickling: drop the partial file and keep the old one.
        with contextlib.suppress(OSError):
            os.remove(temporary_name)
        raise

    # The rename is durable only once the folder entry itself is on disk.
    fsync_directory(path.parent)


def fsync_directory(folder: Path) -> None:
    """Flush a folder's entries to disk; a no-op where folders cannot be opened (Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def describe_write_failure(path: Path, error: OSError) -> str:
    """Return the one-paragraph message for a checkpoint that could not be written."""
    kept = (
        "The previous file at that path is unchanged."
        if path.exists()
        else "No partial file was left behind."
    )
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        free = shutil.disk_usage(path.parent).free if path.parent.exists() else 0
        return (
            f"Writing checkpoint {str(path)!r} failed: the disk is full ({error.strerror}; "
            f"{free / 2**20:.1f} MiB free in {str(path.parent)!r}). {kept} Free space, or point "
            "the checkpoint callback's dirpath to a disk with room, then resume with --ckpt_path last."
        )
    return (
        f"Writing checkpoint {str(path)!r} failed: {error.strerror or error}. {kept} Check that "
        "the folder is writable, then resume with --ckpt_path last."
    )


def describe_missing_checkpoint(path: Path) -> str:
    """Return the message for a ``--ckpt_path`` that does not exist, listing nearby checkpoints."""
    folder = path.parent if str(path.parent) else Path(".")
    nearby = sorted(str(candidate) for candidate in folder.glob("*.ckpt")) if folder.is_dir() else []
    hint = (
        f"Checkpoints in {str(folder)!r}: {', '.join(nearby[:10])}."
        if nearby
        else "Pass the path of a .ckpt file, or --ckpt_path last to resume the newest run of this config."
    )
    return f"Checkpoint {str(path)!r} not found. {hint}"
