"""Every bad input in the README's table: each ends with one clear paragraph and exit status 1.

The cases run ``spinal_lightning.cli.main`` in this process (the same code path as the command
line, without paying the torch import again per case). Files the cases need (corrupt data, wrong
checkpoints) are written by the ``workspace`` fixture.
"""

from __future__ import annotations

import errno
import gzip
import struct
import sys
from pathlib import Path

import lightning
import pytest
import torch

from spinal_lightning.backbones import VGG5
from spinal_lightning.cli import main
from spinal_lightning.heads import FCHead, SpinalHead
from spinal_lightning.module import SpinalClassifier
from tests.conftest import CONFIGS, FAST_TRAINER_ARGS

SPINAL = str(CONFIGS / "vgg_spinal.yaml")
TINY_FIT = [*FAST_TRAINER_ARGS, "--trainer.limit_train_batches=3", "--trainer.limit_val_batches=1"]


def write_idx(path: Path, array: torch.Tensor) -> None:
    """Write a uint8 tensor as a gzip IDX file (magic 0x0000 08 <ndim>, big-endian sizes)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", size) for size in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.numpy().tobytes())


def write_mnist_style(folder: Path, labels_value: int | None = None, truncate: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    for prefix, count in (("train", 120), ("t10k", 40)):
        images = torch.randint(0, 256, (count, 28, 28), dtype=torch.uint8, generator=generator)
        labels = torch.arange(count, dtype=torch.uint8) % 10
        if labels_value is not None:
            labels[-1] = labels_value
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    if truncate:
        path = folder / "train-images-idx3-ubyte.gz"
        raw = gzip.decompress(path.read_bytes())
        path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    return folder


def lightning_checkpoint(head, num_classes: int = 10) -> dict:
    model = SpinalClassifier(backbone=VGG5, head=head, num_classes=num_classes)
    return {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": lightning.__version__,
        "global_step": 0,
        "epoch": 0,
    }


class NotATensor:
    """A pickled Python object, which a weights-only load rejects."""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("bad_inputs"))


def build_workspace(root: Path) -> Path:
    """Write the data folders, checkpoints and config files that the cases point at."""
    write_mnist_style(root / "corrupt", truncate=True)
    write_mnist_style(root / "labels12", labels_value=12)
    write_mnist_style(root / "tiny")
    (root / "empty").mkdir()

    # The head of configs/vgg_spinal.yaml, so only the class count differs.
    def spinal(in_features: int, num_classes: int) -> SpinalHead:
        return SpinalHead(
            in_features, num_classes, layer_width=128, dropout=0.5, batch_norm=True, activation="relu"
        )

    torch.save(lightning_checkpoint(lambda f, c: FCHead(f, c, hidden_features=[512])), root / "fc_head.ckpt")
    torch.save(lightning_checkpoint(spinal, num_classes=5), root / "five_classes.ckpt")
    torch.save({"weights": torch.zeros(3)}, root / "plain.ckpt")
    good = root / "good.ckpt"
    torch.save(lightning_checkpoint(spinal), good)
    (root / "truncated.ckpt").write_bytes(good.read_bytes()[:5000])
    unsafe = lightning_checkpoint(spinal)
    unsafe["extra"] = NotATensor()
    torch.save(unsafe, root / "unsafe.ckpt")

    (root / "typo.yaml").write_text("trainer:\n  max_epoch: 3\n")
    (root / "broken.yaml").write_text("trainer: [max_epochs: 3\n")
    return root


def fashion(data_dir: str) -> list[str]:
    return [
        f"--data.init_args.data_dir={data_dir}",
        "--data.init_args.val_size=20",
        "--data.init_args.batch_size=10",
    ]


# id -> (arguments given the workspace folder, substrings the message must contain)
CASES = {
    "unknown key": (
        lambda w: ["fit", "--config", SPINAL, "--model.head.init_args.layer_widht=3"],
        ["Option 'layer_widht' is not accepted", "--help"],
    ),
    "unknown key in config file": (
        lambda w: ["fit", "--config", SPINAL, "--config", str(w / "typo.yaml")],
        ["max_epoch", "--help"],
    ),
    "invalid YAML": (
        lambda w: ["fit", "--config", str(w / "broken.yaml")],
        ["Problems parsing config", "line 1, column 10"],
    ),
    "missing config file": (
        lambda w: ["fit", "--config", str(w / "nope.yaml")],
        ["nope.yaml"],
    ),
    "wrong type": (
        lambda w: ["fit", "--config", SPINAL, "--trainer.max_epochs=ten"],
        ["trainer.max_epochs", "ten"],
    ),
    "negative batch size": (
        lambda w: ["fit", "--config", SPINAL, "--data.init_args.batch_size=-4"],
        ["batch_size must be a positive integer, got -4"],
    ),
    "negative layer width": (
        lambda w: ["fit", "--config", SPINAL, "--model.head.init_args.layer_width=-1"],
        ["layer_width must be a positive integer, got -1"],
    ),
    "validation larger than data": (
        lambda w: [
            "fit",
            "--config",
            SPINAL,
            *TINY_FIT,
            *fashion(str(w / "tiny")),
            "--data.init_args.val_size=500",
        ],
        ["val_size=500 gives 500 samples, but it must be between 1 and the 119 of the 120 training samples"],
    ),
    "missing data": (
        lambda w: ["fit", "--config", SPINAL, *TINY_FIT, *fashion(str(w / "empty"))],
        ["Fashion-MNIST data not found", "train-images-idx3-ubyte.gz", "download: true"],
    ),
    "corrupt data": (
        lambda w: ["fit", "--config", SPINAL, *TINY_FIT, *fashion(str(w / "corrupt"))],
        ["is truncated or corrupt", "train-images-idx3-ubyte.gz"],
    ),
    "labels beyond class count": (
        lambda w: ["fit", "--config", SPINAL, *TINY_FIT, *fashion(str(w / "labels12"))],
        ["labels range from 0 to 12", "num_classes=10"],
    ),
    "class count set on model": (
        lambda w: ["fit", "--config", SPINAL, "--model.num_classes=5"],
        ["num_classes"],
    ),
    "checkpoint of another head": (
        lambda w: [
            "validate",
            "--config",
            SPINAL,
            *TINY_FIT,
            *fashion(str(w / "tiny")),
            "--ckpt_path",
            str(w / "fc_head.ckpt"),
        ],
        ["does not fit the configured SpinalClassifier", "missing from the checkpoint", "not in the model"],
    ),
    "checkpoint of another class count": (
        lambda w: [
            "validate",
            "--config",
            SPINAL,
            *TINY_FIT,
            *fashion(str(w / "tiny")),
            "--ckpt_path",
            str(w / "five_classes.ckpt"),
        ],
        ["shape mismatch (2)", "(5, 512) in the checkpoint vs (10, 512) in the model", "num_classes=5"],
    ),
    "checkpoint not found": (
        lambda w: [
            "validate",
            "--config",
            SPINAL,
            *TINY_FIT,
            *fashion(str(w / "tiny")),
            "--ckpt_path",
            str(w / "missing.ckpt"),
        ],
        ["missing.ckpt' not found", "fc_head.ckpt"],
    ),
    "truncated checkpoint": (
        lambda w: [
            "validate",
            "--config",
            SPINAL,
            *TINY_FIT,
            *fashion(str(w / "tiny")),
            "--ckpt_path",
            str(w / "truncated.ckpt"),
        ],
        ["cannot be read", "truncated, corrupt or not a PyTorch checkpoint"],
    ),
    "checkpoint with pickled objects": (
        lambda w: [
            "validate",
            "--config",
            SPINAL,
            *TINY_FIT,
            *fashion(str(w / "tiny")),
            "--ckpt_path",
            str(w / "unsafe.ckpt"),
        ],
        ["contains Python objects that a weights-only load rejects", "--weights_only=false"],
    ),
    "not a Lightning checkpoint": (
        lambda w: [
            "validate",
            "--config",
            SPINAL,
            *TINY_FIT,
            *fashion(str(w / "tiny")),
            "--ckpt_path",
            str(w / "plain.ckpt"),
        ],
        ["has no 'state_dict' entry"],
    ),
    "negative checkpoint interval": (
        lambda w: [
            "fit",
            "--config",
            SPINAL,
            "--trainer.callbacks=spinal_lightning.callbacks.checkpoint.RunCheckpoint",
            "--trainer.callbacks.last_every_n_train_steps=-5",
        ],
        ["last_every_n_train_steps must be >= 0", "-5"],
    ),
    "invalid precision": (
        lambda w: ["fit", "--config", SPINAL, "--trainer.precision=64-mixed"],
        ["64-mixed"],
    ),
    "infinite learning rate (NaN loss)": (
        lambda w: [
            "fit",
            "--config",
            SPINAL,
            *TINY_FIT,
            *fashion(str(w / "tiny")),
            "--model.optimizer.init_args.lr=.inf",
            "--model.head.init_args.dropout=0.0",
        ],
        [
            "The training loss is nan at global step 1 (epoch 0, batch 1)",
            "No checkpoint was written before it",
        ],
    ),
}


def run_main(args: list[str], capsys, monkeypatch) -> tuple[int, str]:
    # LightningCLI warns when both sys.argv (pytest's) and args are given.
    monkeypatch.setattr(sys, "argv", ["spinal_lightning"])
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr().err


def last_error_message(stderr: str) -> str:
    """Return the text from the last line that starts with ``error: `` to the end."""
    start = stderr.rindex("\nerror: ") + 1 if "\nerror: " in stderr else stderr.index("error: ")
    return stderr[start:]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_message(case, workspace, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPINAL_LIGHTNING_TRACEBACK", raising=False)
    # The Debian copy of Fashion-MNIST would be found after data_dir, so hide it for these cases.
    monkeypatch.setattr("spinal_lightning.data.mnist.FashionMNISTDataModule.system_dirs", ())
    build_args, expected = CASES[case]

    code, stderr = run_main(build_args(workspace), capsys, monkeypatch)

    message = last_error_message(stderr)
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert message.count("\n") == 2, f"expected one paragraph and the traceback hint, got:\n{message}"
    for fragment in expected:
        assert fragment in message, message


def test_full_disk_keeps_previous_checkpoint(workspace, tmp_path, monkeypatch, capsys):
    """A write that fails with ENOSPC leaves the previous last.ckpt intact and no partial file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("spinal_lightning.data.mnist.FashionMNISTDataModule.system_dirs", ())
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    previous = b"previous complete checkpoint"
    (folder / "last.ckpt").write_bytes(previous)

    real_save = torch.save

    def save_until_disk_full(obj, handle, *args, **kwargs):
        handle.write(b"partial bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("spinal_lightning.checkpoint_io.torch.save", save_until_disk_full)
    args = [
        "fit",
        "--config",
        SPINAL,
        *TINY_FIT,
        *fashion(str(workspace / "tiny")),
        "--trainer.callbacks=spinal_lightning.callbacks.checkpoint.RunCheckpoint",
        f"--trainer.callbacks.dirpath={folder}",
        "--trainer.callbacks.save_last=true",
        "--trainer.callbacks.last_every_n_train_steps=2",
    ]
    code, stderr = run_main(args, capsys, monkeypatch)
    monkeypatch.setattr("spinal_lightning.checkpoint_io.torch.save", real_save)

    message = last_error_message(stderr)
    assert code == 1, stderr
    assert "the disk is full (No space left on device" in message
    assert "The previous file at that path is unchanged" in message
    assert (folder / "last.ckpt").read_bytes() == previous
    assert sorted(path.name for path in folder.iterdir()) == ["config.yaml", "last.ckpt"]
