"""Train full epochs with the default config and with the fp32 + PIL baseline, then test both.

The default VGG-5 Fashion-MNIST config (``precision: auto``, channels_last, batched augmentation
on the device) is compared with the same model and recipe run the usual PyTorch way: float32,
contiguous layout, per-sample torchvision transforms on PIL images. Both start from the same
seed; validation and the learning-rate scheduler are off, so the epochs do the same training work.
It prints the train-epoch seconds, images/s, test accuracy and the speed-up.

    python benchmarks/epoch_time.py --epochs 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from benchmarks.lightning_overhead import REPO_ROOT, run

VARIANTS = {
    "default": [],
    "fp32-pil": ["--trainer.precision=32-true", "--data.init_args.pipeline=pil", "--model.channels_last=false"],
}


def run_variant(name: str, config: str, epochs: int, workdir: Path) -> dict:
    """Fit for ``epochs`` full epochs, test the final weights and return the timer's record."""
    workdir.mkdir(parents=True)
    timing, checkpoints = workdir / "timing.json", workdir / "checkpoints"
    overlay = workdir / "overlay.yaml"
    overlay.write_text(
        "trainer:\n"
        "  callbacks:\n"
        "    - class_path: benchmarks.timing.ThroughputTimer\n"
        f"      init_args: {{output: {timing}}}\n"
        "    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        f"      init_args: {{dirpath: {checkpoints}, filename: final}}\n"
    )
    common = [
        "--config", config, "--config", str(overlay),
        f"--trainer.default_root_dir={workdir}",
        f"--trainer.logger.init_args.save_dir={workdir}",
        "--trainer.enable_progress_bar=false",
        *VARIANTS[name],
    ]  # fmt: skip
    run([sys.executable, "-m", "spinal_lightning", "fit", *common, f"--trainer.max_epochs={epochs}",
         "--trainer.limit_val_batches=0", "--model.scheduler=null"])  # fmt: skip
    record = json.loads(timing.read_text())
    run([sys.executable, "-m", "spinal_lightning", "test", *common, f"--ckpt_path={checkpoints / 'final.ckpt'}"])
    record.update(json.loads(timing.read_text()))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--head", choices=("spinal", "fc"), default="spinal")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["default", "fp32-pil"])
    args = parser.parse_args()
    config = str(REPO_ROOT / "configs" / f"vgg_{args.head}.yaml")

    records = {}
    with tempfile.TemporaryDirectory(prefix="spinal_epoch_") as folder:
        for name in args.variants:
            record = run_variant(name, config, args.epochs, Path(folder) / name)
            records[name] = record
            print(
                f"{name:9s} {record['precision']:10s} train epoch {record['train_epoch_seconds']:7.1f} s, "
                f"{record.get('images_per_second', float('nan')):6.1f} images/s, test/acc {100 * record['test/acc']:.2f} %",
                flush=True,
            )

    if {"default", "fp32-pil"} <= records.keys():
        fast, slow = records["default"], records["fp32-pil"]
        print(f"speed-up of the default config: {slow['train_epoch_seconds'] / fast['train_epoch_seconds']:.2f}x")
        print(f"test accuracy difference: {100 * (fast['test/acc'] - slow['test/acc']):+.2f} points")


if __name__ == "__main__":
    main()
