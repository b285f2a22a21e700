"""A minimal hand-written PyTorch training loop, the yardstick for the Lightning CLI's overhead.

It does the work of one ``fit`` training step with the default VGG-5 Fashion-MNIST config and the
tensor pipeline. uint8 batches come from a DataLoader and are moved to the device, converted,
augmented with ``BatchAugment`` and normalised there. Then come the forward pass under the same
autocast, cross-entropy, backward, the Adam step and a running accuracy. It prints one JSON line with images/s over the same window as
``timing.ThroughputTimer`` (batch ``warmup`` to the last).

    python benchmarks/plain_loop.py --batches 60 --head spinal --precision auto
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

# `python benchmarks/<script>.py` puts only benchmarks/ on sys.path; the imports below need the root.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.timing import synchronize  # noqa: E402
from spinal_lightning import VGG5, FCHead, SpinalHead
from spinal_lightning.data import FashionMNISTDataModule
from spinal_lightning.precision import resolve_precision

AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def build_model(head: str, num_classes: int = 10) -> torch.nn.Module:
    """VGG-5 with the head of configs/vgg_spinal.yaml or configs/vgg_fc.yaml."""
    backbone = VGG5(1)
    if head == "spinal":
        classifier = SpinalHead(backbone.num_features, num_classes, layer_width=128, dropout=0.5, batch_norm=True)
    else:
        classifier = FCHead(backbone.num_features, num_classes, hidden_features=(512,), dropout=0.5, batch_norm=True)
    return torch.nn.Sequential(backbone, classifier)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=60, help="training batches to run")
    parser.add_argument("--warmup", type=int, default=5, help="first batches left out of the timing")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--head", choices=("spinal", "fc"), default="spinal")
    parser.add_argument("--precision", default="auto", help="auto, 32-true, bf16-mixed or 16-mixed")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device.type)

    # Data: the same uint8 tensors, augmentation and normalisation as the datamodule.
    datamodule = FashionMNISTDataModule()
    images, labels = datamodule.load_images(train=True)
    loader = DataLoader(TensorDataset(images, labels), batch_size=args.batch_size, shuffle=True)
    augment = datamodule.default_augmentation()
    mean = torch.tensor(datamodule.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(datamodule.std, device=device).view(1, -1, 1, 1)

    model = build_model(args.head).to(device, memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
    autocast_dtype = AUTOCAST_DTYPES.get(precision)

    correct = seen = 0
    start = None
    timed_images = 0
    for step, (batch_images, batch_labels) in enumerate(loader):
        if step == args.batches:
            break
        if step == args.warmup:
            synchronize(device)
            start = time.perf_counter()

        batch_images = batch_images.to(device).float().div_(255)
        batch_labels = batch_labels.to(device)
        batch_images = (augment(batch_images) - mean) / std
        batch_images = batch_images.contiguous(memory_format=torch.channels_last)

        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            logits = model(batch_images)
            loss = F.cross_entropy(logits, batch_labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        correct += (logits.argmax(dim=1) == batch_labels).sum()
        seen += len(batch_labels)
        if start is not None:
            timed_images += len(batch_labels)

    synchronize(device)
    seconds = time.perf_counter() - start
    result = {
        "images_per_second": timed_images / seconds,
        "timed_batches": args.batches - args.warmup,
        "timed_seconds": seconds,
        "precision": str(precision),
        "train_accuracy": float(correct) / seen,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
