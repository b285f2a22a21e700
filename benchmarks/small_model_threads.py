"""Time one training step of the digits model with 1 and with 2 intra-op threads, side by side.

    PYTHONPATH=$PWD python benchmarks/small_model_threads.py

Prints wall and CPU milliseconds per step for each thread count, twice in alternation, so a change
in machine load affects both settings alike.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from spinal_lightning.backbones import SmallCNN
from spinal_lightning.data import BatchAugment
from spinal_lightning.heads import SpinalHead

STEPS = 100


def time_steps(threads: int) -> tuple[float, float]:
    """Return (wall ms, CPU ms) per step of the digits config's model, batch 64, on ``threads`` threads."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    backbone = SmallCNN(in_channels=1)
    head = SpinalHead(backbone.num_features, 10, layer_width=64, dropout=0.2, batch_norm=True)
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=3e-3)
    augment = BatchAugment(rotation_degrees=10.0, max_shift_pixels=1)
    images, labels = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))

    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for _ in range(STEPS):
        loss = F.cross_entropy(head(backbone(augment(images))), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    wall = (time.perf_counter() - wall_start) * 1000 / STEPS
    cpu = (time.process_time() - cpu_start) * 1000 / STEPS
    return wall, cpu


if __name__ == "__main__":
    for threads in (1, 2, 1, 2):
        wall, cpu = time_steps(threads)
        print(f"threads={threads}: {wall:.1f} ms wall per step, {cpu:.1f} ms CPU per step")
